//! Shared pieces of the runtime tests: a loopback echo server and a client.

#![allow(dead_code)] // each test binary uses its own subset

use acorn::engine::Config;
use acorn::runtime::{Peer, PeerBuilder, PeerEvent};
use acorn::wire::PduBuilder;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Loopback, port 0: the OS picks a free port.
pub const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

/// Bodies in the order the server's application received them.
pub type Seen = Arc<Mutex<Vec<String>>>;

/// A server on `udp` (and a TCP listener on port 0 when `tcp`) that answers
/// every request `200 OK` echoing the body, recording bodies in delivery order.
pub async fn echo_server(
    cfg: Config,
    udp: SocketAddr,
    tcp: bool,
) -> (Peer, Seen, mpsc::Receiver<PeerEvent>) {
    let mut b = PeerBuilder::new(cfg).udp(udp);
    if tcp {
        b = b.tcp(SocketAddr::from(LOCAL));
    }
    let (peer, mut incoming, events) = b.start().await.unwrap();
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            log.lock()
                .unwrap()
                .push(String::from_utf8_lossy(req.pdu.body()).into_owned());
            let mut r = PduBuilder::reply(200, "OK").unwrap();
            r.body(req.pdu.body_bytes());
            let _ = req.respond(r);
        }
    });
    (peer, seen, events)
}

/// A client peer with default configuration on a loopback UDP port.
pub async fn client() -> Peer {
    PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .start()
        .await
        .unwrap()
        .0
}

/// `PUT /m` with `body`.
pub fn put(body: &str) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/m").unwrap();
    b.body(body.to_owned());
    b
}
