//! An Acorn client: one request outside any session, then an ordered
//! session carrying three messages, each answered, then `BYE`.
//!
//! Run: `cargo run --example client -- udp://127.0.0.1:7077` (or
//! `tcp://HOST:PORT`) against `examples/server.rs` or `acorn-cli listen`.
//! Given no address it starts the echo server of `examples/server.rs`
//! in-process on a free loopback port and talks to that, so it runs on its
//! own: `tests/examples.rs` runs it so and checks the replies it prints.
//! Every call has its own deadline (`tokio::time::timeout`), so a dead
//! address ends the example with an error instead of waiting on retries.

#[path = "server.rs"]
#[allow(dead_code)] // its `main` is not ours
mod server;

use acorn::engine::Config;
use acorn::runtime::{Dest, PeerBuilder};
use acorn::wire::{PduBuilder, SessionMode};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// How long one call may take, retransmissions included.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// `fut` within [`CALL_TIMEOUT`], its error and a timeout both as errors.
async fn within<T, E: std::error::Error + 'static>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, Box<dyn std::error::Error>> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(format!("{what}: no answer within {CALL_TIMEOUT:?}").into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (dest, local_server) = match std::env::args().nth(1) {
        Some(a) => (a.parse::<Dest>()?, None),
        None => {
            let s = server::start("127.0.0.1:0".parse()?).await?;
            let dest = Dest::Udp(s.udp_addr().expect("bound"));
            println!("started an echo server on {dest}");
            (dest, Some(s))
        }
    };
    // A UDP socket of the destination's family; TCP connections are dialled per Dest.
    let local: SocketAddr = if dest.addr().is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let (client, _incoming, _events) = PeerBuilder::new(Config::default())
        .udp(local)
        .start()
        .await?;

    // A request outside any session: retransmitted until answered.
    let mut hello = PduBuilder::request("PUT", "/hello")?;
    hello.body("hello");
    let reply = within("request", client.request(dest, hello)).await?;
    println!(
        "request: {} {}",
        reply.status().unwrap_or(0),
        String::from_utf8_lossy(reply.body())
    );

    // An ordered session: delivered once each, in order, or we are told why.
    let session = within(
        "open",
        client.open_session(dest, "/chat", SessionMode::Ordered),
    )
    .await?;
    println!("session open ({:?})", session.mode);
    for i in 1..=3 {
        let mut put = PduBuilder::request("PUT", "/chat")?;
        put.body(format!("message {i}"));
        let reply = within("send", client.send(session.handle, put)).await?;
        println!(
            "reply {i}: {} {}",
            reply.status().unwrap_or(0),
            String::from_utf8_lossy(reply.body())
        );
    }
    within("close", client.close_session(session.handle)).await?;
    println!("session closed");

    client.shutdown().await?;
    if let Some(s) = local_server {
        s.shutdown().await?;
    }
    Ok(())
}
