//! An Acorn server: answers every request `200 OK`, echoing its body.
//!
//! Listens on one address for UDP datagrams and TCP connections at once.
//! The engine inside the [`Peer`] does the protocol (ACKs, ordering,
//! deduplication, retransmission, sessions); the application only sees
//! each request once, in order within a session, and answers it.
//!
//! Run: `cargo run --example server -- 127.0.0.1:7077` (the default), then
//! `cargo run --example client -- udp://127.0.0.1:7077` (or `tcp://…`) or
//! `cargo run --bin acorn-cli -- send 127.0.0.1:7077` from another shell.
//! It prints one line per request; Ctrl-C stops it. `examples/client.rs` starts this same server in-process
//! when given no address, which is how `tests/examples.rs` exercises it.

use acorn::engine::Config;
use acorn::runtime::{Peer, PeerBuilder, RuntimeError};
use acorn::wire::PduBuilder;
use std::net::SocketAddr;

/// Bind UDP and TCP on `addr` (port 0 picks a free port, the same for both
/// only by luck, so TCP gets its own) and spawn the task answering requests.
pub async fn start(addr: SocketAddr) -> Result<Peer, RuntimeError> {
    let (peer, mut incoming, _events) = PeerBuilder::new(Config::default())
        .udp(addr)
        .tcp(addr)
        .start()
        .await?;
    tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            println!(
                "{} {} from {} ({} body bytes)",
                req.pdu.method().unwrap_or("?"),
                req.pdu.target().unwrap_or_default(),
                req.peer,
                req.pdu.body().len()
            );
            let mut ok = PduBuilder::reply(200, "OK").expect("a valid reason phrase");
            ok.body(req.pdu.body_bytes());
            // Fails only when the peer shuts down; nothing left to answer then.
            let _ = req.respond(ok);
        }
    });
    Ok(peer)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7077".to_owned())
        .parse()?;
    let peer = start(addr).await?;
    println!(
        "listening on udp://{} and tcp://{} (Ctrl-C stops)",
        peer.udp_addr().expect("bound"),
        peer.tcp_addr().expect("bound")
    );
    tokio::signal::ctrl_c().await?;
    peer.shutdown().await?;
    Ok(())
}
