//! The tokio runtime over real loopback sockets (port 0, bounded in time).

use acorn::engine::Config;
use acorn::runtime::{Dest, Peer, PeerBuilder};
use acorn::wire::SessionMode;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::timeout;

mod runtime_support;
use runtime_support::{client, put, Seen, LOCAL};

async fn echo_server(tcp: bool) -> (Peer, Seen) {
    let (peer, seen, _events) =
        runtime_support::echo_server(Config::default(), SocketAddr::from(LOCAL), tcp).await;
    (peer, seen)
}

async fn request_reply(dest: Dest) {
    let c = client().await;
    for i in 0..20 {
        let reply = c.request(dest, put(&format!("hello {i}"))).await.unwrap();
        assert_eq!(reply.status(), Some(200));
        assert_eq!(reply.body(), format!("hello {i}").as_bytes());
        assert!(reply.tx_id().unwrap().is_some());
    }
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_request_reply() {
    let (server, _) = echo_server(false).await;
    let dest = Dest::Udp(server.udp_addr().unwrap());
    timeout(Duration::from_secs(20), request_reply(dest))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_request_reply() {
    let (server, _) = echo_server(true).await;
    let dest = Dest::Tcp(server.tcp_addr().unwrap());
    timeout(Duration::from_secs(20), request_reply(dest))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

async fn ordered_session(dest: Dest, seen: Seen, n: usize) {
    let c = client().await;
    let s = c
        .open_session(dest, "/path", SessionMode::Ordered)
        .await
        .unwrap();
    assert_eq!(s.mode, SessionMode::Ordered);
    let sid = s.session_id.expect("server issues a Session-ID");
    assert!(sid.len() >= 32, "at least 128 bits of id: {sid}");
    // Many in flight at once: commands reach the driver in this order.
    let sends: Vec<_> = (0..n)
        .map(|i| c.send(s.handle, put(&format!("m{i}"))))
        .collect();
    let replies = futures::future::join_all(sends).await;
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap().body(), format!("m{i}").as_bytes());
    }
    let expected: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
    assert_eq!(*seen.lock().unwrap(), expected, "delivered once, in order");
    c.close_session(s.handle).await.unwrap();
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_ordered_session() {
    let (server, seen) = echo_server(false).await;
    let dest = Dest::Udp(server.udp_addr().unwrap());
    timeout(Duration::from_secs(30), ordered_session(dest, seen, 300))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_ordered_session() {
    let (server, seen) = echo_server(true).await;
    let dest = Dest::Tcp(server.tcp_addr().unwrap());
    timeout(Duration::from_secs(30), ordered_session(dest, seen, 1000))
        .await
        .unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_to_nobody_times_out() {
    let mut cfg = Config::default();
    cfg.retry.initial = Duration::from_millis(20);
    cfg.retry.max_attempts = 3;
    let (c, _, _) = PeerBuilder::new(cfg)
        .udp(SocketAddr::from(LOCAL))
        .start()
        .await
        .unwrap();
    // A bound socket that never answers.
    let silent = tokio::net::UdpSocket::bind(SocketAddr::from(LOCAL))
        .await
        .unwrap();
    let dest = Dest::Udp(silent.local_addr().unwrap());
    let r = timeout(Duration::from_secs(10), c.request(dest, put("x")))
        .await
        .unwrap();
    assert!(
        matches!(r, Err(acorn::runtime::RuntimeError::Timeout)),
        "{r:?}"
    );
    // It did try three times.
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while let Ok(Ok(_)) = timeout(Duration::from_millis(200), silent.recv_from(&mut buf)).await {
        got += 1;
    }
    assert_eq!(got, 3);
    c.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_garbage_is_reported_and_the_connection_closed() {
    use acorn::engine::{Event, Violation};
    use acorn::runtime::PeerEvent;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _incoming, mut events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .tcp(SocketAddr::from(LOCAL))
        .start()
        .await
        .unwrap();
    let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
        .await
        .unwrap();
    s.write_all(b"NOT  ACORN AT ALL\r\n\r\n").await.unwrap();
    let violation = timeout(Duration::from_secs(5), async {
        loop {
            if let Some(PeerEvent::Engine(Event::ProtocolViolation { violation, .. })) =
                events.recv().await
            {
                return violation;
            }
        }
    })
    .await
    .unwrap();
    assert!(
        matches!(violation, Violation::Malformed(_)),
        "{violation:?}"
    );
    let mut rest = Vec::new();
    let n = timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the server closed the connection");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_are_closed() {
    use tokio::io::AsyncReadExt;
    let (server, _incoming, _events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .tcp(SocketAddr::from(LOCAL))
        .max_connections(2)
        .start()
        .await
        .unwrap();
    let addr = server.tcp_addr().unwrap();
    let mut held = Vec::new();
    for i in 0..2 {
        use tokio::io::AsyncWriteExt;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        // A connection that has sent a whole PDU is never evicted for a
        // newcomer (a silent one would be: see tests/hostile_tcp.rs).
        s.write_all(format!("PUT /h ACORN/1.0\r\nTX-ID: held-{i}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        held.push(s);
    }
    // Let the driver adopt the two, and read their PDUs, before the third.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = timeout(Duration::from_secs(5), third.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the third connection is closed: {n:?}"
    );
    // The two held ones are still served.
    let mut first = held.remove(0);
    let r = timeout(Duration::from_millis(300), first.read(&mut buf)).await;
    // Nothing, or the answer to its PDU: not the end of the stream.
    assert!(
        !matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "a held connection stays open: {r:?}"
    );
    server.shutdown().await.unwrap();
}
