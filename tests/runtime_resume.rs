//! Session resumption over real loopback sockets (SPEC §8, seeds 000–002):
//! a TCP connection cut under 1,000 in-flight ordered messages, a server
//! that restarted, guessed ids, idle expiry and second channels.

use acorn::engine::{CloseReason, Config, Event, ResumePolicy};
use acorn::runtime::{Dest, PeerBuilder, PeerEvent, Resumed, RuntimeError};
use acorn::wire::{parse_datagram, ParseOptions, SessionMode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio::time::timeout;

mod runtime_support;
use runtime_support::{client, echo_server, put, LOCAL};

/// A TCP relay whose current connection pair can be cut on demand.
async fn cuttable_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Notify>) {
    let listener = TcpListener::bind(SocketAddr::from(LOCAL)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(Notify::new());
    let c = cut.clone();
    tokio::spawn(async move {
        while let Ok((mut down, _)) = listener.accept().await {
            let mut up = TcpStream::connect(upstream).await.unwrap();
            let c = c.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                    _ = c.notified() => {}
                }
                // Dropping both ends cuts the connection in the middle of
                // whatever was in flight.
            });
        }
    });
    (addr, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_cut_under_a_thousand_in_flight_messages_loses_nothing() {
    if std::env::var("TRACE").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_test_writer()
            .try_init();
    }
    let (server, seen, _ev) = echo_server(Config::default(), SocketAddr::from(LOCAL), true).await;
    let (proxy, cut) = cuttable_proxy(server.tcp_addr().unwrap()).await;
    let (c, _incoming, mut client_events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .start()
        .await
        .unwrap();
    let run = async {
        let s = c
            .open_session(Dest::Tcp(proxy), "/path", SessionMode::Ordered)
            .await
            .unwrap();
        let n = 1000;
        let sends: Vec<_> = (0..n)
            .map(|i| c.send(s.handle, put(&format!("m{i}"))))
            .collect();
        let cutter = async {
            // Cut once the server is part-way through the stream.
            while seen.lock().unwrap().len() < 300 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            cut.notify_waiters();
        };
        let (replies, ()) = tokio::join!(futures::future::join_all(sends), cutter);
        for (i, r) in replies.into_iter().enumerate() {
            assert_eq!(r.unwrap().body(), format!("m{i}").as_bytes(), "reply {i}");
        }
        let expected: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        assert_eq!(
            *seen.lock().unwrap(),
            expected,
            "every message exactly once, in order"
        );
        let mut resumed = 0;
        while let Ok(e) = client_events.try_recv() {
            if let PeerEvent::Engine(Event::SessionResumed { .. }) = e {
                resumed += 1;
            }
        }
        assert!(resumed >= 1, "the cut forced a resumption");
    };
    timeout(Duration::from_secs(60), run)
        .await
        .expect("bounded");
    c.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

/// Start a server on a fixed UDP address, open a session from a client,
/// then replace the server with a fresh one (its state lost).
async fn restarted_server(policy: ResumePolicy) -> Result<Resumed, RuntimeError> {
    let (first, _, _) = echo_server(Config::default(), SocketAddr::from(LOCAL), false).await;
    let addr = first.udp_addr().unwrap();
    let c = client().await;
    let s = c
        .open_session(Dest::Udp(addr), "/", SessionMode::Ordered)
        .await
        .unwrap();
    c.send(s.handle, put("before")).await.unwrap();
    first.shutdown().await.unwrap();
    let cfg = Config {
        resume_policy: policy,
        ..Config::default()
    };
    let (second, seen, _) = echo_server(cfg, addr, false).await;
    let r = c.resume_session(s.handle).await;
    if r.is_ok() {
        // The renewed session works.
        let reply = c.send(s.handle, put("after")).await.unwrap();
        assert_eq!(reply.body(), b"after");
        assert_eq!(*seen.lock().unwrap(), vec!["after".to_owned()]);
    }
    c.shutdown().await.unwrap();
    second.shutdown().await.unwrap();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_refuses_by_default() {
    let r = timeout(
        Duration::from_secs(20),
        restarted_server(ResumePolicy::Refuse),
    )
    .await
    .unwrap();
    match r {
        Err(RuntimeError::SessionClosed(CloseReason::ResumeRefused { status })) => {
            assert_eq!(status, 404)
        }
        other => panic!("expected a 404 refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_server_can_adopt_the_id_as_a_new_session() {
    let r = timeout(
        Duration::from_secs(20),
        restarted_server(ResumePolicy::AdoptAsNew),
    )
    .await
    .unwrap();
    assert_eq!(r.unwrap(), Resumed::StateLost);
}

async fn udp_exchange(sock: &UdpSocket, to: SocketAddr, pdu: &str) -> acorn::wire::Pdu {
    sock.send_to(pdu.as_bytes(), to).await.unwrap();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, _) = timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let p = parse_datagram(&buf[..n], &ParseOptions::default())
            .unwrap()
            .to_owned_pdu();
        if p.status().is_some_and(|s| s >= 200) {
            return p;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_session_ids_get_one_same_refusal_and_are_rate_limited() {
    let (server, _, mut events) =
        echo_server(Config::default(), SocketAddr::from(LOCAL), false).await;
    let to = server.udp_addr().unwrap();
    // A legitimate session from the same address as the prober.
    let c = client().await;
    let legit = c
        .open_session(Dest::Udp(to), "/", SessionMode::Ordered)
        .await
        .unwrap();
    let sock = UdpSocket::bind(SocketAddr::from(LOCAL)).await.unwrap();
    let mut texts = Vec::new();
    for i in 0..8 {
        let reg =
            format!("REG / ACORN/1.0\r\nTX-ID: guess{i}\r\nSession-ID: {i:032x}\r\nSeq: 0\r\n\r\n");
        let reply = udp_exchange(&sock, to, &reg).await;
        texts.push((reply.status(), reply.status_text().map(<[u8]>::to_vec)));
    }
    assert!(
        texts
            .iter()
            .all(|t| *t == (Some(404), Some(b"Unknown Session".to_vec()))),
        "{texts:?}"
    );
    let mut rejected = 0;
    while let Ok(Some(e)) = timeout(Duration::from_millis(200), events.recv()).await {
        if let PeerEvent::Engine(Event::ProtocolViolation { .. }) = e {
            rejected += 1;
        }
    }
    assert_eq!(rejected, 8, "every failed attempt is reported");
    // Over its budget, the address is refused even with a valid id: ids
    // cannot be found by trying.
    let r = c.resume_session(legit.handle).await;
    assert!(
        matches!(
            r,
            Err(RuntimeError::SessionClosed(CloseReason::ResumeRefused {
                status: 404
            }))
        ),
        "{r:?}"
    );
    c.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_are_dropped() {
    let cfg = Config {
        session_idle_timeout: Duration::from_millis(150),
        ..Config::default()
    };
    let (server, _, mut events) = echo_server(cfg, SocketAddr::from(LOCAL), false).await;
    let c = client().await;
    c.open_session(
        Dest::Udp(server.udp_addr().unwrap()),
        "/",
        SessionMode::Ordered,
    )
    .await
    .unwrap();
    let closed = timeout(Duration::from_secs(5), async {
        loop {
            if let Some(PeerEvent::Engine(Event::SessionClosed { reason, .. })) =
                events.recv().await
            {
                return reason;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, CloseReason::Idle);
    c.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_channel_joins_with_its_token_and_closes_with_the_session() {
    let (server, _, _) = echo_server(Config::default(), SocketAddr::from(LOCAL), true).await;
    let c = client().await;
    let s = c
        .open_session(
            Dest::Udp(server.udp_addr().unwrap()),
            "/",
            SessionMode::Ordered,
        )
        .await
        .unwrap();
    let id = s.session_id.clone().unwrap();
    let token = s
        .channel_token
        .clone()
        .expect("the server issues a channel token");
    let run = async {
        // A wrong token is refused like an unknown id.
        let mut bad = TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let req = format!(
            "REG / ACORN/1.0\r\nTX-ID: j0\r\nSession-ID: {id}\r\nChannel-Token: {}\r\n\r\n",
            "0".repeat(32)
        );
        bad.write_all(req.as_bytes()).await.unwrap();
        let text = read_until_final(&mut bad).await;
        assert!(text.contains("ACORN/1.0 404 Unknown Session"), "{text}");
        // The right token binds a second channel.
        let mut second = TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let req = format!(
            "REG / ACORN/1.0\r\nTX-ID: j1\r\nSession-ID: {id}\r\nChannel-Token: {token}\r\n\r\n"
        );
        second.write_all(req.as_bytes()).await.unwrap();
        let text = read_until_final(&mut second).await;
        assert!(
            text.contains("ACORN/1.0 200 OK") && text.contains("Session-Status: joined"),
            "{text}"
        );
        // The token was one-time: using it again fails.
        let mut again = TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let req = format!(
            "REG / ACORN/1.0\r\nTX-ID: j2\r\nSession-ID: {id}\r\nChannel-Token: {token}\r\n\r\n"
        );
        again.write_all(req.as_bytes()).await.unwrap();
        assert!(read_until_final(&mut again).await.contains("404"));
        // Closing the session closes the second channel too.
        c.close_session(s.handle).await.unwrap();
        let mut rest = Vec::new();
        let n = timeout(Duration::from_secs(5), second.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        let _ = n; // EOF reached: the server closed the channel.
    };
    timeout(Duration::from_secs(20), run).await.unwrap();
    c.shutdown().await.unwrap();
    server.shutdown().await.unwrap();
}

async fn read_until_final(s: &mut TcpStream) -> String {
    let mut acc = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        acc.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&acc).into_owned();
        if n == 0
            || text
                .lines()
                .any(|l| l.starts_with("ACORN/1.0 ") && !l.contains(" 000") && !l.contains(" 001"))
        {
            return text;
        }
    }
}
