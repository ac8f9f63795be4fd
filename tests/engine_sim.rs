//! Ordered sessions over the simulated lossy network: every message is
//! delivered exactly once and in order, or both sides are told the session
//! ended. Seeded, simulated time, bounded.

use acorn::engine::{CloseReason, Config, Event, SessionHandle};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{PduBuilder, SessionMode};
use rand::{Rng, SeedableRng};
use std::time::Duration;

#[derive(Debug, Default)]
struct Outcome {
    delivered: Vec<u64>,
    sent: u64,
    replies: u64,
    timed_out: u64,
    client_closed: Option<CloseReason>,
    server_closed: Option<CloseReason>,
    opened: bool,
}

fn request(n: u64) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/msg").unwrap();
    b.body(n.to_string());
    b
}

/// Run one client/server ordered session sending `total` messages with
/// at most `window` outstanding.
fn run(
    seed: u64,
    link: LinkConfig,
    total: u64,
    window: u64,
    mode: SessionMode,
) -> (Outcome, Network) {
    let mut net = Network::new(seed, link);
    let c = net.add_node(Config::default());
    let s = net.add_node(Config::default());
    let server_addr = net.addr(s);
    let now = net.now();
    let session = net
        .endpoint(c)
        .open_session(now, server_addr, "/", mode)
        .unwrap();
    let mut out = Outcome::default();
    let deadline = net.now() + Duration::from_secs(900);
    let mut in_flight = 0u64;
    loop {
        for e in net.take_events(s) {
            match e {
                Event::RequestReceived {
                    id,
                    pdu,
                    session: Some(_),
                    ..
                } => {
                    let n: u64 = std::str::from_utf8(pdu.body()).unwrap().parse().unwrap();
                    out.delivered.push(n);
                    let mut r = PduBuilder::reply(200, "OK").unwrap();
                    r.body(pdu.body_bytes());
                    let now = net.now();
                    net.endpoint(s).respond(now, id, r).unwrap();
                }
                Event::SessionClosed { reason, .. } => out.server_closed = Some(reason),
                _ => {}
            }
        }
        for e in net.take_events(c) {
            match e {
                Event::SessionOpened { session: h, .. } => {
                    assert_eq!(h, session);
                    out.opened = true;
                }
                Event::ReplyReceived { .. } => {
                    out.replies += 1;
                    in_flight -= 1;
                }
                Event::RequestTimedOut { .. } => {
                    out.timed_out += 1;
                    in_flight = in_flight.saturating_sub(1);
                }
                Event::SessionClosed { reason, .. } => out.client_closed = Some(reason),
                _ => {}
            }
        }
        while out.opened && out.client_closed.is_none() && out.sent < total && in_flight < window {
            let now = net.now();
            net.endpoint(c)
                .send(now, SessionHandle(session.0), request(out.sent))
                .unwrap();
            out.sent += 1;
            in_flight += 1;
        }
        let finished = out.replies + out.timed_out == total
            || out.client_closed.is_some() && out.server_closed.is_some();
        if finished && out.client_closed.is_some() == out.server_closed.is_some() {
            break;
        }
        if !net.step(deadline) {
            break;
        }
    }
    (out, net)
}

fn check(seed: u64, o: &Outcome) {
    let in_order: Vec<u64> = (0..o.delivered.len() as u64).collect();
    assert_eq!(
        o.delivered, in_order,
        "seed {seed}: not exactly once in order"
    );
    if (o.delivered.len() as u64) < o.sent || o.replies < o.sent {
        assert!(
            o.client_closed.is_some() && o.server_closed.is_some(),
            "seed {seed}: lost messages without both sides told: {o:?}"
        );
    }
}

#[test]
fn ordered_sessions_over_a_thousand_lossy_seeds() {
    let mut told = 0;
    for seed in 0..1000u64 {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed ^ 0xACE);
        let link = LinkConfig {
            delay: Duration::from_millis(r.gen_range(1..20)),
            loss: r.gen_range(0.0..0.25),
            duplicate: r.gen_range(0.0..0.05),
            reorder: r.gen_range(0.0..0.2),
            reorder_delay: Duration::from_millis(r.gen_range(1..40)),
        };
        let (o, _) = run(seed, link, 40, 8, SessionMode::Ordered);
        check(seed, &o);
        if o.client_closed.is_some() {
            told += 1;
        }
    }
    // Most seeds complete; the ones that do not were told.
    assert!(told < 500, "{told} of 1000 sessions ended early");
}

#[test]
fn unordered_sessions_deliver_each_message_once() {
    for seed in 0..200u64 {
        let link = LinkConfig {
            loss: 0.1,
            duplicate: 0.05,
            reorder: 0.2,
            ..LinkConfig::default()
        };
        let (o, _) = run(seed, link, 40, 8, SessionMode::Unordered);
        let mut d = o.delivered.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(
            d.len(),
            o.delivered.len(),
            "seed {seed}: duplicate delivery"
        );
        if o.client_closed.is_none() {
            assert_eq!(o.replies, 40, "seed {seed}: {o:?}");
        }
    }
}

#[test]
fn lossless_ordered_session_needs_no_retransmission() {
    let (o, mut net) = run(7, LinkConfig::default(), 500, 32, SessionMode::Ordered);
    check(7, &o);
    assert_eq!(o.delivered.len(), 500);
    assert_eq!(o.replies, 500);
    for i in 0..2 {
        let st = net.endpoint(i).stats();
        assert_eq!(
            st.timer_retransmits + st.nack_retransmits + st.nacks_sent,
            0,
            "{st:?}"
        );
    }
}

/// Run the README scenario and return (outcome, retransmissions per lost
/// datagram, NACKs, lost, simulated time).
fn ten_thousand(reorder_delay: Duration) -> (Outcome, f64, u64, u64, Duration) {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        loss: 0.05,
        duplicate: 0.02,
        reorder: 0.05,
        reorder_delay,
    };
    let (o, mut net) = run(42, link, 10_000, 64, SessionMode::Ordered);
    let lost = net.stats().lost;
    let (a, b) = (net.endpoint(0).stats(), net.endpoint(1).stats());
    let retx = a.timer_retransmits + a.nack_retransmits + b.timer_retransmits + b.nack_retransmits;
    let elapsed = net.elapsed();
    (
        o,
        retx as f64 / lost.max(1) as f64,
        a.nacks_sent + b.nacks_sent,
        lost,
        elapsed,
    )
}

/// The README figures: 10,000 messages at 5 % loss, 5 % reordering, 2 %
/// duplication, 10 ms round trip.
#[test]
fn report_ten_thousand_messages_at_five_percent_loss() {
    for (label, reorder) in [
        ("reorder <= 0.2 RTT", Duration::from_millis(2)),
        ("reorder <= 1 RTT", Duration::from_millis(10)),
    ] {
        let (o, ratio, nacks, lost, elapsed) = ten_thousand(reorder);
        check(42, &o);
        eprintln!(
            "10k ordered @5% loss/5% {label}/2% dup: delivered {} exactly once in order, replies {}, \
             lost datagrams {lost}, retransmitted per lost {ratio:.3}, NACKs {nacks}, simulated time {elapsed:?}",
            o.delivered.len(),
            o.replies
        );
        assert_eq!(o.delivered.len(), 10_000);
        assert_eq!(o.replies, 10_000);
        assert!(o.client_closed.is_none() && o.server_closed.is_none());
        if reorder <= Duration::from_millis(2) {
            assert!(ratio <= 1.2, "retransmissions per lost datagram {ratio}");
        }
    }
}
