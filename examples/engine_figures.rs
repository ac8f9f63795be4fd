//! The session engine's figures for the README, measured and asserted:
//!
//! 1. **Time to recover a single loss, in round trips.** A lossless
//!    simulated link with 5 ms one-way delay (RTT 10 ms) carries a steady
//!    ordered stream (one request per millisecond, each answered); exactly
//!    one chosen request is dropped with `Network::set_drop_filter`. The
//!    recovery time runs from when the lost PDU would have arrived to when
//!    its retransmission is delivered to the server application, divided by
//!    the RTT. Target: at most 1.5 RTT.
//! 2. **Bytes of engine state per idle session and per buffered PDU**, from
//!    a counting global allocator (live heap bytes): 10,000 sessions opened
//!    on one server engine by REGs from distinct loopback addresses, each
//!    handshake completed and the session left idle; then one session's
//!    retransmission buffer filled with 1,000 unacknowledged requests of a
//!    typical size.
//!
//! Run: `cargo run --release --example engine_figures`. Everything runs in
//! simulated time, so the figures are the same on every run and machine.

use acorn::engine::{Config, Endpoint, Event, SessionHandle};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{PduBuilder, SessionMode};
use bytes::Bytes;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

/// The system allocator, counting live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter only
// observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = System.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l);
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        let q = System.realloc(p, l, new_size);
        if !q.is_null() {
            LIVE.fetch_add(new_size as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

const ONE_WAY: Duration = Duration::from_millis(5);
const RTT: Duration = Duration::from_millis(10);
/// Requests in the stream, one per millisecond.
const STREAM: u64 = 300;
const TARGET_RTTS: f64 = 1.5;

fn body(i: u64) -> String {
    format!("msg-{i:06}")
}

/// One run with request `lost` dropped once on its way to the server.
/// Returns the recovery time in RTTs.
fn recovery(lost: u64) -> f64 {
    let link = LinkConfig {
        delay: ONE_WAY,
        ..LinkConfig::default()
    };
    let mut net = Network::new(lost, link);
    let c = net.add_node(Config::default());
    let s = net.add_node(Config::default());
    let server = net.addr(s);
    let now = net.now();
    let session = net
        .endpoint(c)
        .open_session(now, server, "/stream", SessionMode::Ordered)
        .expect("open");
    let marker = body(lost).into_bytes();
    let mut dropped = false;
    net.set_drop_filter(Some(Box::new(move |from, to, p: &Bytes| {
        let hit = !dropped && from == c && to == s && p.ends_with(&marker);
        dropped |= hit;
        hit
    })));
    let deadline = net.now() + Duration::from_secs(60);
    let mut open = false;
    let mut sent = 0u64;
    let mut next_send = net.now();
    let mut sent_at = None;
    let mut delivered: Vec<u64> = Vec::new();
    let mut delivered_at = None;
    let mut replies = 0;
    loop {
        for e in net.take_events(s) {
            if let Event::RequestReceived { id, pdu, .. } = e {
                let b = String::from_utf8_lossy(pdu.body()).into_owned();
                let i: u64 = b["msg-".len()..].parse().expect("body");
                if i == lost {
                    delivered_at = Some(net.now());
                }
                delivered.push(i);
                let now = net.now();
                let reply = PduBuilder::reply(200, "OK").expect("reply");
                net.endpoint(s).respond(now, id, reply).expect("respond");
            }
        }
        for e in net.take_events(c) {
            match e {
                Event::SessionOpened { .. } => {
                    open = true;
                    next_send = net.now();
                }
                Event::ReplyReceived { .. } => replies += 1,
                Event::SessionClosed { reason, .. } => panic!("session closed: {reason:?}"),
                Event::RequestTimedOut { .. } => panic!("a request timed out"),
                _ => {}
            }
        }
        if open && sent < STREAM && net.now() >= next_send {
            let now = net.now();
            let mut p = PduBuilder::request("PUT", "/stream").expect("request");
            p.body(body(sent));
            net.endpoint(c)
                .send(now, SessionHandle(session.0), p)
                .expect("send");
            if sent == lost {
                sent_at = Some(now);
            }
            sent += 1;
            next_send += Duration::from_millis(1);
            continue;
        }
        if replies == STREAM {
            break;
        }
        let limit = if open && sent < STREAM {
            next_send
        } else {
            deadline
        };
        if !net.step(limit) {
            assert!(limit < deadline, "the stream stalled");
            net.advance_to(limit);
        }
    }
    assert_eq!(delivered, (0..STREAM).collect::<Vec<_>>(), "in order, once");
    assert!(net.stats().lost == 1, "exactly one datagram lost");
    let would_arrive = sent_at.expect("sent") + ONE_WAY;
    let took = delivered_at.expect("delivered") - would_arrive;
    took.as_secs_f64() / RTT.as_secs_f64()
}

fn peer(i: u32) -> SocketAddr {
    let [_, b, c, d] = (i + 2).to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, b, c, d)), 7077)
}

fn datagram(lines: &[String]) -> Bytes {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n\r\n");
    Bytes::from(s)
}

/// Open a session from `from` and complete the handshake: REG, then the
/// client's ACK of the 200 with `Ack-Seq: 1` (it holds the server's 0 and
/// 1), so nothing waits for retransmission. Returns the session's handle.
fn open_idle(ep: &mut Endpoint, now: Instant, from: SocketAddr, i: u32) -> SessionHandle {
    let reg = datagram(&[
        "REG /idle ACORN/1.0".into(),
        format!("TX-ID: reg-{i}"),
        "Seq: 0".into(),
        "Request-Session-Mode: ordered".into(),
    ]);
    ep.handle_datagram(now, from, reg);
    let mut sid = String::new();
    while let Some(t) = ep.poll_transmit() {
        let text = String::from_utf8_lossy(&t.payload).into_owned();
        if let Some(v) = text.lines().find_map(|l| l.strip_prefix("Session-ID: ")) {
            sid = v.to_owned();
        }
    }
    let ack = datagram(&[
        "ACORN/1.0 000 ACK".into(),
        format!("TX-ID: reg-{i}"),
        "Seq: 1".into(),
        "Ack-Seq: 1".into(),
        format!("Session-ID: {sid}"),
    ]);
    ep.handle_datagram(now, from, ack);
    while ep.poll_transmit().is_some() {}
    let mut handle = None;
    while let Some(e) = ep.poll_event() {
        if let Event::SessionOpened { session, .. } = e {
            handle = Some(session);
        }
    }
    handle.expect("SessionOpened")
}

/// Live heap bytes per idle session, over `n` sessions.
fn bytes_per_idle_session(n: u32) -> f64 {
    let now = Instant::now();
    let unix = Duration::from_secs(1_800_000_000);
    let mut cfg = Config::default();
    cfg.limits.max_sessions = n as usize + 1;
    let mut ep = Endpoint::new(cfg, 1, now, unix);
    // One session first, so one-off allocations are not counted.
    open_idle(&mut ep, now, peer(u32::MAX - 3), u32::MAX);
    ep.poll_timeout();
    let before = live();
    for i in 0..n {
        open_idle(&mut ep, now, peer(i), i);
    }
    // Drop the timers of the acknowledged replies (popped lazily).
    ep.poll_timeout();
    assert_eq!(ep.session_count(), n as usize + 1);
    let after = live();
    (after - before) as f64 / f64::from(n)
}

/// Live heap bytes per request held for retransmission (its
/// retransmission-buffer entry and its pending-transaction record), and the
/// encoded size of that request.
fn bytes_per_buffered_pdu(k: usize) -> (f64, usize) {
    let now = Instant::now();
    let unix = Duration::from_secs(1_800_000_000);
    // A send window as large as the test, so every request goes out and
    // is held (the default window would queue them, unsent).
    let mut cfg = Config::default();
    cfg.limits.max_in_flight_per_session = k + 1;
    let mut ep = Endpoint::new(cfg, 2, now, unix);
    let h = open_idle(&mut ep, now, peer(0), 0);
    assert_eq!(ep.retransmit_buffer_len(h), Some(0), "handshake freed");
    let typical = "x".repeat(100);
    let make = || {
        let mut p = PduBuilder::request("PUT", "/sensors/7/reading").expect("request");
        p.header("Content-Type", "application/json")
            .expect("header");
        p.body(typical.clone());
        p
    };
    // One request first (one-off allocations), then measure K more.
    ep.send(now, h, make()).expect("send");
    let encoded = ep.poll_transmit().expect("sent").payload.len();
    let before = live();
    for _ in 0..k {
        ep.send(now, h, make()).expect("send");
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.retransmit_buffer_len(h), Some(k + 1));
    let after = live();
    ((after - before) as f64 / k as f64, encoded)
}

fn main() {
    // (a) Recovery of a single loss, for a spread of positions in the stream.
    let positions = [20u64, 57, 100, 151, 199, 250];
    let rtts: Vec<f64> = positions.iter().map(|&p| recovery(p)).collect();
    let max = rtts.iter().copied().fold(0.0, f64::max);
    let mean = rtts.iter().sum::<f64>() / rtts.len() as f64;
    println!(
        "single-loss recovery (RTT 10 ms, one request per ms, lost request #{positions:?}): \
         {:?} RTT; mean {mean:.2} RTT, max {max:.2} RTT (target <= {TARGET_RTTS})",
        rtts.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>()
    );

    // (b) Memory.
    const SESSIONS: u32 = 10_000;
    let per_session = bytes_per_idle_session(SESSIONS);
    println!("engine state per idle session: {per_session:.0} bytes ({SESSIONS} sessions)");
    const PDUS: usize = 1_000;
    let (per_pdu, encoded) = bytes_per_buffered_pdu(PDUS);
    println!(
        "engine state per buffered PDU: {per_pdu:.0} bytes ({PDUS} unacknowledged requests of \
         {encoded} encoded bytes each: retransmission-buffer entry + pending transaction)"
    );

    // Printed first, asserted after, so a regression still shows its figure.
    assert!(max <= TARGET_RTTS, "recovery {max:.2} RTT > {TARGET_RTTS}");
    assert!(
        max > 1.0,
        "a loss cannot be repaired in less than one round trip"
    );
    assert!(
        per_session > 100.0 && per_session < 4096.0,
        "{per_session} bytes per idle session"
    );
    assert!(
        per_pdu > encoded as f64 && per_pdu < 16.0 * encoded as f64,
        "{per_pdu} bytes per buffered PDU of {encoded} bytes"
    );
}
