//! SPEC §9 "TCP" against the runtime over loopback: slowloris heads, peers
//! that never read, half-closing clients, idle connections, one address
//! taking every connection, the internal channel bounds, SO_RCVBUF.
//!
//! Every limit is set small so each attack is bounded in count and time;
//! the assertions are on work done (counters, bytes queued, replies
//! received), never on how long something took.

use acorn::codec::StreamCodec;
use acorn::engine::Config;
use acorn::runtime::{
    ChannelLimits, Dest, Peer, PeerBuilder, PeerEvent, TcpLimits, TcpStats, WireDirection,
};
use acorn::wire::{Pdu, PduBuilder};
use futures::StreamExt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout};
use tokio_util::codec::FramedRead;

mod runtime_support;
use runtime_support::{client, put, LOCAL};

/// How long any single wait in these tests may take.
const WAIT: Duration = Duration::from_secs(20);

/// A server on loopback UDP and TCP with these limits that answers every
/// request `200 OK` echoing its body, after `delay`.
async fn server(
    limits: TcpLimits,
    channels: ChannelLimits,
    delay: Duration,
) -> (Peer, mpsc::Receiver<PeerEvent>) {
    let (peer, mut incoming, events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .tcp(SocketAddr::from(LOCAL))
        .tcp_limits(limits)
        .channel_limits(channels)
        .tap(true)
        .start()
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            tokio::spawn(async move {
                sleep(delay).await;
                let mut r = PduBuilder::reply(200, "OK").unwrap();
                r.body(req.pdu.body_bytes());
                let _ = req.respond(r);
            });
        }
    });
    (peer, events)
}

fn limits() -> TcpLimits {
    TcpLimits::default()
}

/// A connection table of `max` slots, `per_ip` per address, heads
/// allowed `header` to arrive.
fn table(max: usize, per_ip: usize, header: Duration) -> TcpLimits {
    TcpLimits {
        max_connections: max,
        max_connections_per_ip: per_ip,
        header_timeout: header,
        ..limits()
    }
}

/// An echo server with these TCP limits; its TCP address.
async fn tcp_server(l: TcpLimits) -> (Peer, SocketAddr) {
    let (peer, _events) = server(l, ChannelLimits::default(), Duration::ZERO).await;
    let addr = peer.tcp_addr().unwrap();
    (peer, addr)
}

/// A raw request PDU as a TCP client writes it.
fn raw_request(tx: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "PUT /m ACORN/1.0\r\nTX-ID: {tx}\r\nMessage-ID: {tx}-m\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// A TCP connection to `to` from `from_ip` (any port).
async fn connect_from(from_ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::from((from_ip, 0))).unwrap();
    s.connect(to).await.unwrap()
}

/// Read PDUs until one carries `body` (the final reply); bounded.
async fn reply_with(frames: &mut FramedRead<TcpStream, StreamCodec>, body: &[u8]) -> Pdu {
    timeout(WAIT, async {
        loop {
            let pdu = frames
                .next()
                .await
                .expect("the connection stays up until the reply")
                .unwrap();
            if pdu.body() == body {
                return pdu;
            }
        }
    })
    .await
    .expect("a reply within the wait")
}

/// One request over a fresh TCP connection from `from_ip`; its reply.
async fn served_from(from_ip: [u8; 4], to: SocketAddr, tx: &str) -> Pdu {
    let mut s = connect_from(from_ip, to).await;
    s.write_all(&raw_request(tx, tx.as_bytes())).await.unwrap();
    let mut frames = FramedRead::new(s, StreamCodec::default());
    reply_with(&mut frames, tx.as_bytes()).await
}

/// Poll the TCP counters until `done` holds (bounded).
async fn until(peer: &Peer, what: &str, done: impl Fn(&TcpStats) -> bool) -> TcpStats {
    let end = tokio::time::Instant::now() + WAIT;
    loop {
        let s = peer.tcp_stats().await.unwrap();
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "never reached: {what}: {s:?}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the server closed `s` (end of stream or reset), bounded.
async fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    timeout(WAIT, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_time_out_and_a_new_client_is_served_meanwhile() {
    // 64 connections (the whole table) trickling a head from one address,
    // reconnecting whenever they are closed, for the length of the test.
    let (peer, addr) = tcp_server(table(64, 64, Duration::from_millis(300))).await;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut attackers = Vec::new();
    for _ in 0..64 {
        let mut stop = stop.clone();
        attackers.push(tokio::spawn(async move {
            let mut conns = 0u32;
            while !*stop.borrow() && conns < 50 {
                conns += 1;
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    continue;
                };
                // One byte of a head that never ends, every 50 ms.
                for b in b"PUT /slow ACORN/1.0\r\nX-Slow: ".iter().cycle().take(1000) {
                    if *stop.borrow() || s.write_all(&[*b]).await.is_err() {
                        break;
                    }
                    tokio::select! {
                        _ = sleep(Duration::from_millis(50)) => {}
                        _ = stop.changed() => break,
                    }
                }
            }
        }));
    }
    // The table fills, and the header timeout starts emptying it.
    until(&peer, "every slot taken, then heads timed out", |s| {
        s.header_timeouts >= 64
    })
    .await;
    // A new client gets in while the attack goes on: its head is whole.
    let mut served = 0;
    for i in 0..5 {
        let tx = format!("legit-{i}");
        let c = timeout(WAIT, async {
            loop {
                let mut s = TcpStream::connect(addr).await.unwrap();
                s.write_all(&raw_request(&tx, tx.as_bytes())).await.unwrap();
                let mut frames = FramedRead::new(s, StreamCodec::default());
                // Refused while the table is full: try again.
                while let Some(Ok(pdu)) = frames.next().await {
                    if pdu.body() == tx.as_bytes() {
                        return pdu;
                    }
                }
                sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("a legitimate client is served during the attack");
        assert_eq!(c.status(), Some(200));
        served += 1;
    }
    assert_eq!(served, 5);
    let s = peer.tcp_stats().await.unwrap();
    assert!(s.open <= 64, "{s:?}");
    assert!(s.header_timeouts >= 64, "{s:?}");
    stop_tx.send(true).unwrap();
    for a in attackers {
        timeout(WAIT, a).await.unwrap().unwrap();
    }
    peer.shutdown().await.unwrap();
}

/// A client that pipelines `n` requests of `size` bytes and never reads;
/// its receive buffer is small, so the server's queue must hold the rest.
/// It holds the connection until told to let go.
struct NonReader {
    task: tokio::task::JoinHandle<()>,
    release: tokio::sync::oneshot::Sender<()>,
}

async fn non_reader(addr: SocketAddr, n: usize, size: usize, tag: &str) -> NonReader {
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    let mut s = s.connect(addr).await.unwrap();
    let body = vec![b'x'; size];
    let tag = tag.to_owned();
    let (release, released) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        for i in 0..n {
            let pdu = raw_request(&format!("{tag}-{i}"), &body);
            let w = s.write_all(&pdu);
            // The server stops reading when its queue for us fills.
            match timeout(Duration::from_secs(2), w).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
        let _ = timeout(WAIT, released).await;
    });
    NonReader { task, release }
}

/// Start a non-reader against `peer`, wait until `hit` holds, and check
/// that its connection never held more than `cap` bytes.
async fn attack_by_non_reader(
    peer: &Peer,
    cap: usize,
    hit: impl Fn(&TcpStats) -> bool,
) -> (TcpStats, NonReader) {
    let attacker = non_reader(peer.tcp_addr().unwrap(), 2000, 4096, "nr").await;
    let s = until(peer, "the non-reader stopped", hit).await;
    assert!(
        s.peak_connection_queue <= cap,
        "one connection never holds more than {cap}: {s:?}"
    );
    (s, attacker)
}

/// A client from `ip` is served while `attacker` holds its connection;
/// then the attack and the server end.
async fn served_during(peer: &Peer, ip: [u8; 4], attacker: NonReader) {
    let r = served_from(ip, peer.tcp_addr().unwrap(), "legit").await;
    assert_eq!(r.status(), Some(200));
    attacker.let_go().await;
    peer.shutdown().await.unwrap();
}

impl NonReader {
    async fn let_go(self) {
        let _ = self.release.send(());
        timeout(WAIT, self.task).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_bounded_and_others_are_served() {
    let (peer, _) = tcp_server(TcpLimits {
        max_write_queue: 64 * 1024,
        ..limits()
    })
    .await;
    // Its queue passes half the limit (the reader pauses), then the
    // engine's retransmitted replies pass the limit: it is closed.
    let (s, attacker) = attack_by_non_reader(&peer, 64 * 1024, |s| s.queue_overflows >= 1).await;
    assert!(s.peak_connection_queue > 32 * 1024, "{s:?}");
    // Its bytes were freed with it.
    let after = until(&peer, "the queue freed", |s| s.queued_bytes < 8 * 1024).await;
    assert!(after.peak_queued_bytes <= 64 * 1024 + 8 * 1024, "{after:?}");
    // A client from another address is served meanwhile (one from the
    // attacker's own address may find its memory share spent).
    served_during(&peer, [127, 0, 0, 2], attacker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_total_write_queue_is_bounded_by_closing_the_longest() {
    let (peer, addr) = tcp_server(TcpLimits {
        max_write_queue: 64 * 1024,
        max_write_queue_total: 96 * 1024,
        ..limits()
    })
    .await;
    let mut attackers = Vec::new();
    for i in 0..3 {
        attackers.push(non_reader(addr, 2000, 4096, &format!("t{i}")).await);
    }
    let s = until(&peer, "queues overflowed", |s| s.queue_overflows >= 2).await;
    assert!(
        s.peak_queued_bytes <= 96 * 1024,
        "all connections together never hold more than the total: {s:?}"
    );
    assert!(s.peak_connection_queue <= 64 * 1024, "{s:?}");
    let r = served_from([127, 0, 0, 2], addr, "legit").await;
    assert_eq!(r.status(), Some(200));
    for a in attackers {
        a.let_go().await;
    }
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_clients_get_every_reply_over_tcp_none_over_udp() {
    // The application answers after the half-close has arrived: what the
    // old driver then sent over UDP to the clients' ports.
    let roomy = ChannelLimits {
        events: 1 << 16,
        ..ChannelLimits::default()
    };
    let (peer, mut events) = server(limits(), roomy, Duration::from_millis(200)).await;
    let addr = peer.tcp_addr().unwrap();
    let mut clients = Vec::new();
    for i in 0..50 {
        clients.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let me = s.local_addr().unwrap();
            let tx = format!("hc-{i}");
            s.write_all(&raw_request(&tx, tx.as_bytes())).await.unwrap();
            s.shutdown().await.unwrap(); // half-close: we send no more
            let mut all = Vec::new();
            timeout(WAIT, s.read_to_end(&mut all))
                .await
                .expect("the server closes once the reply is written")
                .unwrap();
            let mut codec = StreamCodec::default();
            let mut buf = bytes::BytesMut::from(&all[..]);
            let mut bodies = Vec::new();
            while let Some(pdu) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap()
            {
                bodies.push(pdu.body().to_vec());
            }
            assert!(buf.is_empty(), "whole PDUs only");
            assert!(
                bodies.iter().any(|b| b == tx.as_bytes()),
                "{tx}: the reply came over TCP"
            );
            me
        }));
    }
    let mut addrs = Vec::new();
    for c in clients {
        addrs.push(timeout(WAIT, c).await.unwrap().unwrap());
    }
    let s = until(&peer, "every half-close seen", |s| s.half_closed >= 50).await;
    assert_eq!(s.open, 0, "each connection closed after its reply: {s:?}");
    // Give the engine's reply retransmissions a chance to go wrong.
    sleep(Duration::from_millis(1200)).await;
    let s = peer.tcp_stats().await.unwrap();
    // Either the driver kept the engine's retransmissions off UDP, or the
    // engine made none: once a connection closes its address is no longer
    // a stream peer, and SPEC §9 sends no timer retransmission toward an
    // address that never proved itself.
    let withheld = peer.stats().await.unwrap().paths.retransmits_withheld;
    assert!(
        s.kept_off_udp > 0 || withheld > 0,
        "retransmissions were kept off UDP: {s:?}, withheld {withheld}"
    );
    peer.shutdown().await.unwrap();
    let mut udp_out = 0;
    while let Ok(Some(e)) = timeout(Duration::from_secs(2), events.recv()).await {
        if let PeerEvent::Wire {
            direction: WireDirection::Out,
            peer: Dest::Udp(to),
            ..
        } = e
        {
            assert!(!addrs.contains(&to), "sent over UDP to a TCP client {to}");
            udp_out += 1;
        }
    }
    assert_eq!(udp_out, 0, "nothing left over UDP at all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_kept() {
    let (peer, addr) = tcp_server(TcpLimits {
        idle_timeout: Duration::from_millis(400),
        ..limits()
    })
    .await;
    // Silent from the start.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    // One request, then silence.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    quiet.write_all(&raw_request("q1", b"q1")).await.unwrap();
    // A request every 100 ms: never idle for 400 ms.
    let busy = tokio::spawn(async move {
        let s = TcpStream::connect(addr).await.unwrap();
        let (r, mut w) = s.into_split();
        let mut frames = FramedRead::new(r, StreamCodec::default());
        for i in 0..15 {
            let tx = format!("busy-{i}");
            w.write_all(&raw_request(&tx, tx.as_bytes())).await.unwrap();
            loop {
                let pdu = timeout(WAIT, frames.next())
                    .await
                    .unwrap()
                    .unwrap()
                    .unwrap();
                if pdu.body() == tx.as_bytes() {
                    break;
                }
            }
            sleep(Duration::from_millis(100)).await;
        }
    });
    assert!(closed_by_server(&mut silent).await);
    assert!(closed_by_server(&mut quiet).await);
    timeout(WAIT, busy)
        .await
        .unwrap()
        .expect("the busy connection was served throughout");
    let s = peer.tcp_stats().await.unwrap();
    assert!(s.idle_timeouts >= 2, "{s:?}");
    peer.shutdown().await.unwrap();
}

/// A connection from `from_ip` that has sent one request and got its reply.
async fn spoken_from(
    from_ip: [u8; 4],
    to: SocketAddr,
    tx: &str,
) -> FramedRead<TcpStream, StreamCodec> {
    let mut s = connect_from(from_ip, to).await;
    s.write_all(&raw_request(tx, tx.as_bytes())).await.unwrap();
    let mut frames = FramedRead::new(s, StreamCodec::default());
    reply_with(&mut frames, tx.as_bytes()).await;
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_connection() {
    let (peer, addr) = tcp_server(table(16, 4, limits().header_timeout)).await;
    let mut held = Vec::new();
    for i in 0..4 {
        held.push(spoken_from([127, 0, 0, 1], addr, &format!("h1-{i}")).await);
    }
    let mut fifth = connect_from([127, 0, 0, 1], addr).await;
    assert!(closed_by_server(&mut fifth).await, "over the per-IP share");
    let s = until(&peer, "refused per IP", |s| s.refused_per_ip >= 1).await;
    assert_eq!(s.refused_total, 0, "{s:?}");
    // Another address still connects and is served.
    let r = served_from([127, 0, 0, 2], addr, "other-ip").await;
    assert_eq!(r.status(), Some(200));
    // The held ones are still open.
    let s = peer.tcp_stats().await.unwrap();
    assert!(s.open >= 4, "{s:?}");
    until(&peer, "the other address's connection finished", |s| {
        s.open == 4
    })
    .await;
    // The total: 12 more (all of which have spoken) from 127.0.0.3..=5
    // fill the table; the next is refused.
    for ip in 3..=5u8 {
        for i in 0..4 {
            held.push(spoken_from([127, 0, 0, ip], addr, &format!("h{ip}-{i}")).await);
        }
    }
    let mut over = connect_from([127, 0, 0, 6], addr).await;
    assert!(closed_by_server(&mut over).await, "over the total");
    let s = until(&peer, "refused in total", |s| s.refused_total >= 1).await;
    assert_eq!(s.evicted_silent, 0, "{s:?}");
    assert!(s.open >= 16, "{s:?}");
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_from_many_addresses_make_room_for_a_new_client() {
    // A slowloris spread over four addresses fills the whole table within
    // the per-IP share; the header timeout is long. A new client still
    // gets in: the oldest silent connection makes room for it.
    let (peer, addr) = tcp_server(table(16, 4, Duration::from_secs(60))).await;
    let mut silent = Vec::new();
    for ip in 1..=4u8 {
        for _ in 0..4 {
            let mut s = connect_from([127, 0, 0, ip], addr).await;
            s.write_all(b"PUT /slow ACORN/1.0\r\n").await.unwrap();
            silent.push(s);
        }
    }
    until(&peer, "the table full", |s| s.open >= 16).await;
    for i in 0..3 {
        let r = served_from([127, 0, 0, 9], addr, &format!("new-{i}")).await;
        assert_eq!(r.status(), Some(200));
    }
    // The first made room; later ones find the room their predecessors
    // left when they closed, or make their own.
    let s = peer.tcp_stats().await.unwrap();
    assert!(s.evicted_silent >= 1, "{s:?}");
    assert_eq!(s.refused_total, 0, "{s:?}");
    assert!(s.open <= 16, "{s:?}");
    // The first silent connections were the ones closed.
    assert!(closed_by_server(&mut silent[0]).await);
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_bounds_push_back_without_losing_anything() {
    let tiny = ChannelLimits {
        commands: 1,
        connection_events: 1,
        ..ChannelLimits::default()
    };
    let (peer, _events) = server(limits(), tiny, Duration::ZERO).await;
    // 200 requests pipelined in one write: the reader waits for room in
    // the one-slot channel each time; every one is answered, in order.
    let s = TcpStream::connect(peer.tcp_addr().unwrap()).await.unwrap();
    let (r, mut w) = s.into_split();
    let mut all = Vec::new();
    for i in 0..200 {
        all.extend(raw_request(&format!("p-{i}"), format!("p-{i}").as_bytes()));
    }
    w.write_all(&all).await.unwrap();
    let mut frames = FramedRead::new(r, StreamCodec::default());
    let mut got = std::collections::BTreeSet::new();
    timeout(WAIT, async {
        while got.len() < 200 {
            let pdu = frames.next().await.unwrap().unwrap();
            if pdu.status() == Some(200) && !pdu.body().is_empty() {
                got.insert(String::from_utf8(pdu.body().to_vec()).unwrap());
            }
        }
    })
    .await
    .expect("every pipelined request answered");
    assert_eq!(got.len(), 200);
    // 50 calls at once through a one-slot command channel: each waits its
    // turn, none is lost.
    let c = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .channel_limits(tiny)
        .start()
        .await
        .unwrap()
        .0;
    let dest = Dest::Udp(peer.udp_addr().unwrap());
    let calls: Vec<_> = (0..50)
        .map(|i| c.request(dest, put(&format!("c-{i}"))))
        .collect();
    let replies = timeout(WAIT, futures::future::join_all(calls))
        .await
        .unwrap();
    for (i, r) in replies.into_iter().enumerate() {
        assert_eq!(r.unwrap().body(), format!("c-{i}").as_bytes());
    }
    c.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_incoming_channel_answers_503() {
    // The application never takes requests: two wait, the rest are 503.
    let (peer, _incoming, _events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .channel_limits(ChannelLimits {
            incoming: 2,
            ..ChannelLimits::default()
        })
        .start()
        .await
        .unwrap();
    let c = client().await;
    let dest = Dest::Udp(peer.udp_addr().unwrap());
    let mut busy = 0;
    for i in 0..5 {
        let r = timeout(
            Duration::from_secs(3),
            c.request(dest, put(&format!("i-{i}"))),
        )
        .await;
        if let Ok(Ok(pdu)) = r {
            assert_eq!(pdu.status(), Some(503));
            busy += 1;
        }
    }
    assert_eq!(busy, 3, "two queued for the application, three refused");
    c.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_udp_receive_buffer_is_applied() {
    let asked = 96 * 1024;
    let (peer, _incoming, _events) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .udp_recv_buffer(asked)
        .start()
        .await
        .unwrap();
    let got = peer.udp_recv_buffer().expect("a UDP socket");
    if cfg!(target_os = "linux") {
        // Linux doubles what it grants (for its bookkeeping), capped by
        // net.core.rmem_max.
        let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(usize::MAX);
        assert_eq!(got, 2 * asked.min(max), "SO_RCVBUF read back");
    } else {
        assert!(got >= asked.min(64 * 1024), "{got}");
    }
    // Without the option the system default stays, and differs.
    let (other, _i, _e) = PeerBuilder::new(Config::default())
        .udp(SocketAddr::from(LOCAL))
        .udp_recv_buffer(8 * 1024)
        .start()
        .await
        .unwrap();
    assert!(other.udp_recv_buffer().unwrap() < got);
    other.shutdown().await.unwrap();
    peer.shutdown().await.unwrap();
}

/// An echo server whose engine's memory budget gives one address at most
/// `per_source` bytes (SPEC §9 "One memory budget").
async fn budgeted_server(per_source: usize) -> (Peer, SocketAddr) {
    let mut cfg = Config::default();
    cfg.shares.memory_per_source = per_source;
    let (peer, mut incoming, _events) = PeerBuilder::new(cfg)
        .udp(SocketAddr::from(LOCAL))
        .tcp(SocketAddr::from(LOCAL))
        .start()
        .await
        .unwrap();
    tokio::spawn(async move {
        while let Some(req) = incoming.recv().await {
            let mut r = PduBuilder::reply(200, "OK").unwrap();
            r.body(req.pdu.body_bytes());
            let _ = req.respond(r);
        }
    });
    let addr = peer.tcp_addr().unwrap();
    (peer, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_queues_are_charged_to_the_memory_budget() {
    // The address's share of the budget (256 KiB) is far below the
    // connection's queue limit (1 MiB): the budget is what stops it.
    let (peer, _) = budgeted_server(256 * 1024).await;
    let (_, attacker) = attack_by_non_reader(&peer, 256 * 1024, |s| s.budget_refusals >= 1).await;
    until(&peer, "the queue freed", |s| s.queued_bytes == 0).await;
    // Another address is served meanwhile.
    served_during(&peer, [127, 0, 0, 2], attacker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_buffers_are_charged_to_the_memory_budget() {
    let (peer, addr) = budgeted_server(256 * 1024).await;
    // A head announcing 1 MiB, then 512 KiB of the body: the read buffer
    // cannot hold it within the address's 256 KiB share.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /big ACORN/1.0\r\nTX-ID: big\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'b'; 16 * 1024];
    for _ in 0..32 {
        if timeout(Duration::from_secs(2), s.write_all(&chunk))
            .await
            .map_or(true, |r| r.is_err())
        {
            break;
        }
    }
    assert!(closed_by_server(&mut s).await, "closed, not buffered");
    let st = until(&peer, "the budget refused the read buffer", |s| {
        s.budget_refusals >= 1
    })
    .await;
    assert_eq!(st.open, 0, "{st:?}");
    // A PDU that fits is read as usual, from the same address.
    let r = served_from([127, 0, 0, 1], addr, "small").await;
    assert_eq!(r.status(), Some(200));
    peer.shutdown().await.unwrap();
}
