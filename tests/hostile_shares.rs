//! SPEC §9 "Exactly once needs memory", "Fair shares", "One memory
//! budget": the attack rows of issue 13 that these defences answer,
//! reproduced against one engine with simulated time, plus one test per
//! limit of `SharesConfig` that hits it. Floods are bounded in count;
//! assertions are on work done (what is delivered, sent, held), never time.
//!
//! Attackers and honest peers are distinct `SocketAddr`s: `10.a.b.c`
//! addresses spread over many /24s for floods "from many addresses",
//! `192.0.2.x` for the honest peers.

use acorn::budget::BufferKind;
use acorn::engine::{
    CloseReason, Config, Endpoint, EngineError, EngineLimit, Event, IncomingId, SharesConfig,
    Transmit,
};
use acorn::wire::{ParseOptions, Pdu, PduBuilder};
use bytes::Bytes;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

mod shares_support;
use shares_support::get;

const UNIX_NOW: Duration = Duration::from_secs(1_800_000_000);

/// The honest client.
fn honest(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), 5000)
}

/// Attacker `i`, each in its own /24 (up to 2^16 of them).
fn spread(i: u32) -> SocketAddr {
    let [_, _, b, c] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, 1)), 6000)
}

/// One attacker IP, a different port per `i`.
fn one_ip(i: u32) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(10, 66, 0, 1)),
        1024 + (i % 60_000) as u16,
    )
}

fn text(lines: &[String], body: &[u8]) -> Bytes {
    let mut s = lines.join("\r\n").into_bytes();
    s.extend_from_slice(b"\r\n\r\n");
    s.extend_from_slice(body);
    Bytes::from(s)
}

fn parse(t: &Transmit) -> Pdu {
    Pdu::parse_datagram(t.payload.clone(), &ParseOptions::default()).expect("engine output parses")
}

fn hdr(p: &Pdu, name: &str) -> Option<String> {
    p.header(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A server engine and the test's hand on its inputs and outputs.
struct Server {
    ep: Endpoint,
    now: Instant,
    /// Events seen, kept for counting.
    seen: Vec<Event>,
}

impl Server {
    fn new(shares: SharesConfig, tune: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config {
            shares,
            ..Config::default()
        };
        // The hand-written REGs here are smaller than SPEC §9's 3x budget
        // needs for an ACK and a reply toward an unproven address; the
        // shares are the point (the 3x rule is tests/hostile_paths.rs).
        cfg.paths.amplification_factor = 10;
        tune(&mut cfg);
        let now = Instant::now();
        Server {
            ep: Endpoint::new(cfg, 13, now, UNIX_NOW),
            now,
            seen: Vec::new(),
        }
    }

    /// Hand in a datagram; return what the engine sent and record events.
    fn input(&mut self, from: SocketAddr, lines: &[String], body: &[u8]) -> Vec<Pdu> {
        self.ep.handle_datagram(self.now, from, text(lines, body));
        self.drain()
    }

    fn drain(&mut self) -> Vec<Pdu> {
        self.seen
            .extend(std::iter::from_fn(|| self.ep.poll_event()));
        std::iter::from_fn(|| self.ep.poll_transmit())
            .map(|t| parse(&t))
            .collect()
    }

    fn advance(&mut self, by: Duration) -> Vec<Pdu> {
        let target = self.now + by;
        let mut out = Vec::new();
        while let Some(at) = self.ep.poll_timeout().filter(|t| *t <= target) {
            self.now = self.now.max(at);
            self.ep.handle_timeout(self.now);
            out.extend(self.drain());
        }
        self.now = target;
        out
    }

    /// Answer every delivered request with `body`; returns how many.
    fn answer_all(&mut self, body: &[u8]) -> usize {
        let ids: Vec<IncomingId> = self.take_received();
        for id in &ids {
            let mut r = PduBuilder::reply(200, "OK").unwrap();
            r.body(Bytes::copy_from_slice(body));
            self.ep.respond(self.now, *id, r).unwrap();
        }
        self.drain();
        ids.len()
    }

    /// Requests delivered since the last call.
    fn take_received(&mut self) -> Vec<IncomingId> {
        let mut ids = Vec::new();
        self.seen.retain(|e| match e {
            Event::RequestReceived { id, .. } => {
                ids.push(*id);
                false
            }
            _ => true,
        });
        ids
    }

    fn limits(&self, which: EngineLimit) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, Event::LimitReached { limit, .. } if *limit == which))
            .count()
    }

    fn closed(&self, why: CloseReason) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, Event::SessionClosed { reason, .. } if *reason == why))
            .count()
    }

    /// `REG` from `from`; returns the statuses sent back and the
    /// Session-ID and `200`'s Message-ID when it was accepted.
    fn reg(&mut self, from: SocketAddr, tx: &str) -> (Vec<u16>, Option<(String, String)>) {
        let out = self.input(
            from,
            &[
                "REG /s ACORN/1.0".into(),
                format!("TX-ID: {tx}"),
                "Seq: 0".into(),
                "Request-Session-Mode: ordered".into(),
            ],
            b"",
        );
        let statuses = out.iter().filter_map(Pdu::status).collect();
        let ok = out
            .iter()
            .find(|p| p.status() == Some(200))
            .map(|p| (hdr(p, "Session-ID").unwrap(), hdr(p, "Message-ID").unwrap()));
        (statuses, ok)
    }

    /// A client opens a session and confirms it (ACK of the 200 with the
    /// Session-ID); returns the Session-ID.
    fn open_confirmed(&mut self, from: SocketAddr, tx: &str) -> String {
        let (st, ok) = self.reg(from, tx);
        let (sid, mid) = ok.unwrap_or_else(|| panic!("REG from {from} refused: {st:?}"));
        let out = self.input(
            from,
            &[
                "ACORN/1.0 000 ACK".into(),
                format!("TX-ID: {tx}"),
                format!("Ack-Message-ID: {mid}"),
                "Seq: 1".into(),
                format!("Session-ID: {sid}"),
            ],
            b"",
        );
        assert!(out.is_empty(), "an ACK is not answered");
        sid
    }

    /// A request in session `sid` at `seq` (no `Ack-Seq`: the attacker
    /// acknowledges nothing).
    fn put(&mut self, from: SocketAddr, sid: &str, seq: u64, body: &[u8]) -> Vec<Pdu> {
        self.input(
            from,
            &[
                "PUT /x ACORN/1.0".into(),
                format!("TX-ID: {from}-{seq}"),
                format!("Seq: {seq}"),
                format!("Session-ID: {sid}"),
            ],
            body,
        )
    }
}

fn statuses(out: &[Pdu]) -> Vec<u16> {
    out.iter().filter_map(Pdu::status).collect()
}

// ------------------------------------------------------------ exactly once

/// Row "6,000 fresh transactions from anyone between a request and its
/// retransmission", from one source: the honest request's retransmission
/// is answered from the cache (the same reply, not delivered again); the
/// attacker gets 503 once its share is used; an honest newcomer still gets
/// in.
#[test]
fn six_thousand_transactions_from_one_source_do_not_evict_a_young_answer() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    let share = s.ep.config().shares.reply_cache_per_source;
    s.input(honest(1), &get("legit", "1/5"), b"");
    assert_eq!(s.answer_all(b"the answer"), 1);
    // (The reply is lost on its way: the client will retransmit.)
    let (mut taken, mut refused) = (0, 0);
    for i in 0..6_000u32 {
        let out = s.input(one_ip(i), &get(&format!("flood-{i}"), "1/5"), b"");
        match statuses(&out).as_slice() {
            [0] => taken += 1,
            [503] => refused += 1,
            other => panic!("unexpected answer {other:?}"),
        }
        s.answer_all(b"flood answer"); // answered, never acknowledged
    }
    assert_eq!(taken, share, "the attacker's share");
    assert_eq!(refused, 6_000 - share);
    assert_eq!(s.limits(EngineLimit::ReplyCacheSource), 6_000 - share);
    // The retransmission: the cached reply, nothing delivered twice.
    let out = s.input(honest(1), &get("legit", "2/5"), b"");
    assert_eq!(statuses(&out), [200]);
    assert_eq!(out[0].body(), b"the answer");
    assert!(s.take_received().is_empty(), "not processed twice");
    // Another honest source is not locked out by the flood.
    let out = s.input(honest(2), &get("newcomer", "1/5"), b"");
    assert_eq!(statuses(&out), [0]);
    assert_eq!(s.take_received().len(), 1);
}

/// The same row from 6,000 addresses in as many /24s: the cache's total
/// (`max_reply_cache`) is the bound; full of young answers it answers 503
/// and never forgets the honest one. Once the flood's answers are past
/// their senders' horizon, they are forgotten and new transactions get in.
#[test]
fn six_thousand_transactions_from_many_sources_get_503_not_eviction() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    let total = s.ep.config().limits.max_reply_cache;
    s.input(honest(1), &get("legit", "1/5"), b"");
    assert_eq!(s.answer_all(b"the answer"), 1);
    let mut refused = 0;
    for i in 0..6_000u32 {
        let out = s.input(spread(i), &get(&format!("f{i}"), "1/5"), b"");
        if statuses(&out) == [503] {
            refused += 1;
        }
        s.answer_all(b"x");
        assert!(s.ep.remembered_requests() <= total);
    }
    assert_eq!(refused, 6_000 - (total - 1));
    assert_eq!(s.limits(EngineLimit::ReplyCache), refused);
    let out = s.input(honest(1), &get("legit", "3/5"), b"");
    assert_eq!(statuses(&out), [200]);
    assert_eq!(out[0].body(), b"the answer");
    assert!(s.take_received().is_empty(), "not processed twice");
    // Past the horizons (request 15.5 s, our reply's 15.5 s) all is forgotten.
    s.advance(Duration::from_secs(40));
    assert_eq!(s.ep.remembered_requests(), 0);
    let out = s.input(honest(2), &get("after", "1/5"), b"");
    assert_eq!(statuses(&out), [0]);
    assert!(s.ep.memory_budget().used_by(BufferKind::ReplyCache) > 0);
}

/// `reply_cache_per_prefix`: many addresses of one /24 share one share.
#[test]
fn reply_cache_per_prefix_bounds_one_network() {
    let shares = SharesConfig {
        reply_cache_per_source: 100,
        reply_cache_per_prefix: 10,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let mut ok = 0;
    for i in 0..30u8 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 7, 7, i)), 9);
        if statuses(&s.input(from, &get(&format!("p{i}"), "1/5"), b"")) == [0] {
            ok += 1;
        }
    }
    assert_eq!(ok, 10);
    assert_eq!(s.limits(EngineLimit::ReplyCachePrefix), 20);
    assert_eq!(statuses(&s.input(honest(1), &get("h", "1/5"), b"")), [0]);
}

/// An acknowledged answer has reached its sender: it makes room for a new
/// transaction of the same source, so an honest client that acknowledges
/// is never throttled by its own share.
#[test]
fn acknowledged_answers_make_room_in_the_share() {
    let shares = SharesConfig {
        reply_cache_per_source: 4,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    for i in 0..50 {
        let tx = format!("a{i}");
        assert_eq!(statuses(&s.input(honest(1), &get(&tx, "1/5"), b"")), [0]);
        s.answer_all(b"ok");
        s.input(
            honest(1),
            &["ACORN/1.0 000 ACK".into(), format!("TX-ID: {tx}")],
            b"",
        );
        assert!(s.ep.remembered_requests() <= 4);
    }
    assert_eq!(s.limits(EngineLimit::ReplyCacheSource), 0);
}

/// `max_reply_horizon`: a request claiming a thousand attempts is kept at
/// most that long; the default policy's horizon follows `Attempt`.
#[test]
fn max_reply_horizon_caps_what_attempt_claims() {
    let shares = SharesConfig {
        max_reply_horizon: Duration::from_secs(20),
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |c| c.retry.max_attempts = 1);
    s.input(honest(1), &get("long", "1/1000"), b"");
    s.input(honest(1), &get("last", "1/1"), b"");
    let ids = s.take_received();
    assert_eq!(ids.len(), 2);
    s.advance(Duration::from_millis(600)); // past "1/1"'s one wait (0.5 s)
    s.input(honest(9), &get("tick", "1/1"), b"");
    // Unanswered: the application holds them, so both stay.
    assert_eq!(s.ep.remembered_requests(), 3);
    for id in ids {
        s.ep.respond(s.now, id, PduBuilder::reply(200, "OK").unwrap())
            .unwrap();
    }
    s.drain();
    s.advance(Duration::from_secs(19));
    let out = s.input(honest(1), &get("long", "2/1000"), b"");
    assert_eq!(statuses(&out), [200], "still inside the capped horizon");
    s.advance(Duration::from_secs(2));
    // Forgotten lazily, at the next admission (or timer).
    s.input(honest(9), &get("tock", "1/1"), b"");
    assert_eq!(
        s.ep.remembered_requests(),
        2,
        "capped at 20 s: only the unanswered tick and tock remain"
    );
}

// ------------------------------------------------- half-open and sessions

/// Row "10,000 REGs never ACKed from many addresses": the half-open table
/// stays within `max_half_open` (the oldest dropped first), an honest
/// client opens a session meanwhile and keeps it, and the flood's sessions
/// end with `half_open_timeout`.
#[test]
fn ten_thousand_unconfirmed_regs_do_not_lock_out_a_new_session() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    let max = s.ep.config().shares.max_half_open;
    for i in 0..10_000u32 {
        if i == 5_000 {
            let sid = s.open_confirmed(honest(1), "honest-reg");
            let out = s.put(honest(1), &sid, 2, b"hello");
            assert_eq!(statuses(&out), [0]);
            assert_eq!(s.take_received().len(), 1);
        }
        let (st, _) = s.reg(spread(i), &format!("r{i}"));
        assert_eq!(st, [0, 200], "never refused: the oldest half-open goes");
        assert!(s.ep.half_open_sessions() <= max);
    }
    assert_eq!(s.ep.session_count(), max + 1, "the flood's newest and ours");
    assert_eq!(s.closed(CloseReason::NeverConfirmed), 10_000 - max);
    assert!(s.limits(EngineLimit::HalfOpen) >= 10_000 - max);
    // A second honest client during the flood's tail.
    let sid2 = s.open_confirmed(honest(2), "honest-2");
    s.advance(s.ep.config().shares.half_open_timeout);
    assert_eq!(s.ep.half_open_sessions(), 0);
    assert_eq!(
        s.ep.session_count(),
        2,
        "only the confirmed sessions remain"
    );
    let out = s.put(honest(2), &sid2, 2, b"still here");
    assert_eq!(statuses(&out), [0]);
}

/// `half_open_per_source` and `half_open_per_prefix`: one address (or one
/// network) churns only its own half-open sessions.
#[test]
fn half_open_shares_per_source_and_prefix() {
    let shares = SharesConfig {
        half_open_per_source: 3,
        half_open_per_prefix: 5,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let other = s.reg(spread(1), "other").1.unwrap(); // half-open, elsewhere
    for i in 0..20 {
        s.reg(one_ip(i), &format!("o{i}"));
    }
    assert_eq!(s.ep.half_open_sessions(), 1 + 3);
    for i in 0..20u8 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 66, 0, 10 + i)), 7);
        s.reg(from, &format!("n{i}"));
    }
    assert_eq!(s.ep.half_open_sessions(), 1 + 5, "the /24's share");
    // The other source's half-open session was never touched: it confirms.
    let out = s.put(spread(1), &other.0, 1, b"");
    assert_eq!(statuses(&out), [0]);
    assert_eq!(s.ep.half_open_sessions(), 5);
}

/// `sessions_per_source` and `sessions_per_prefix`: confirmed sessions of
/// one address (one network) are bounded; the next REG is answered 503.
#[test]
fn session_shares_per_source_and_prefix() {
    let shares = SharesConfig {
        sessions_per_source: 2,
        sessions_per_prefix: 3,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    s.open_confirmed(one_ip(1), "a");
    s.open_confirmed(one_ip(2), "b");
    assert_eq!(s.reg(one_ip(3), "c").0, [503]);
    assert_eq!(s.limits(EngineLimit::SessionsSource), 1);
    let neighbour = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 66, 0, 2)), 7);
    s.open_confirmed(neighbour, "d");
    let next = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 66, 0, 3)), 7);
    assert_eq!(s.reg(next, "e").0, [503]);
    assert_eq!(s.limits(EngineLimit::SessionsPrefix), 1);
    s.open_confirmed(honest(1), "f");
    assert_eq!(s.ep.session_count(), 4);
}

/// `half_open_timeout`: an unconfirmed session ends after it, a confirmed
/// one lives on.
#[test]
fn half_open_timeout_ends_unconfirmed_sessions() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    s.reg(spread(1), "lonely");
    s.open_confirmed(honest(1), "fine");
    assert_eq!(s.ep.half_open_sessions(), 1);
    s.advance(Duration::from_secs(11));
    assert_eq!(s.ep.session_count(), 1);
    assert_eq!(s.closed(CloseReason::NeverConfirmed), 1);
}

// ----------------------------------------------------------- reassembly

fn segment(tx: &str, i: u64, n: u64, body: &[u8]) -> Vec<String> {
    vec![
        "PUT /big ACORN/1.0".into(),
        format!("TX-ID: {tx}"),
        format!("Message-ID: {tx}-{i}"),
        format!("Segment: {i}/{n}"),
    ]
    .into_iter()
    .chain(std::iter::once(format!("Content-Length: {}", body.len())))
    .collect()
}

/// Send a whole 3-segment payload from `from`; true when it was delivered.
fn transfer(s: &mut Server, from: SocketAddr, tx: &str) -> bool {
    for i in 1..=3 {
        let out = s.input(from, &segment(tx, i, 3, b"0123456789"), b"0123456789");
        if statuses(&out).contains(&503) {
            return false;
        }
    }
    s.seen
        .iter()
        .any(|e| matches!(e, Event::RequestReceived { pdu, .. } if pdu.body().len() == 30))
}

/// Row "64 datagrams of 95 B starting segmented transfers", from one
/// source: it holds its share (`reassemblies_per_source`), the rest are
/// refused 503, and another sender's segmented transfer succeeds.
#[test]
fn sixty_four_small_first_segments_from_one_source() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    let share = s.ep.config().shares.reassemblies_per_source;
    let mut refused = 0;
    for i in 0..64u32 {
        let lines = segment(&format!("atk{i}"), 1, 1000, b"x");
        assert!(text(&lines, b"x").len() <= 95, "a small datagram");
        if statuses(&s.input(one_ip(i), &lines, b"x")).contains(&503) {
            refused += 1;
        }
    }
    assert_eq!(s.ep.reassemblies(), share);
    assert_eq!(refused, 64 - share);
    assert_eq!(s.limits(EngineLimit::ReassembliesSource), 64 - share);
    assert!(
        transfer(&mut s, honest(1), "legit"),
        "the other sender's transfer"
    );
}

/// The same from 64 networks (the total, `max_reassemblies`, is full): a
/// slot idle for `reassembly_idle_timeout` is given up for a new transfer
/// (its next segment answered 503), so the honest transfer succeeds.
#[test]
fn sixty_four_first_segments_from_many_networks_yield_when_idle() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    for i in 0..64u32 {
        s.input(spread(i), &segment(&format!("atk{i}"), 1, 1000, b"x"), b"x");
    }
    assert_eq!(s.ep.reassemblies(), 64);
    assert!(
        !transfer(&mut s, honest(1), "early"),
        "all slots busy and fresh"
    );
    assert_eq!(s.limits(EngineLimit::Reassemblies), 1);
    s.advance(s.ep.config().shares.reassembly_idle_timeout);
    assert!(transfer(&mut s, honest(1), "legit"), "an idle slot yielded");
    // The attacker whose slot went is told: 503 for its next segment.
    let told = (0..64u32)
        .filter(|i| {
            let out = s.input(
                spread(*i),
                &segment(&format!("atk{i}"), 2, 1000, b"x"),
                b"x",
            );
            statuses(&out).contains(&503)
        })
        .count();
    assert_eq!(told, 1);
}

/// `reassemblies_per_prefix`: addresses of one /24 share one share.
#[test]
fn reassemblies_per_prefix_bounds_one_network() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    let share = s.ep.config().shares.reassemblies_per_prefix;
    for i in 0..64u8 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 5, 5, i)), 7);
        s.input(from, &segment(&format!("n{i}"), 1, 10, b"x"), b"x");
    }
    assert_eq!(s.ep.reassemblies(), share);
    assert_eq!(s.limits(EngineLimit::ReassembliesPrefix), 64 - share);
}

// -------------------------------------------------------- memory budget

/// Row "16 sessions feeding the reorder / retransmission buffers": 16
/// sessions from 16 sources send out-of-order PDUs (held for reordering)
/// and in-order requests whose large answers they never acknowledge (kept
/// for retransmission and in the reply cache). The bytes held never pass
/// the configured budget nor any source's share of it; the honest session
/// keeps working (its request delivered, its answer kept); everything is
/// given back when the sessions end.
#[test]
fn sixteen_sessions_feeding_the_buffers_stay_under_the_budget() {
    const BUDGET: usize = 2 * 1024 * 1024;
    const SHARE: usize = BUDGET / 32;
    let shares = SharesConfig {
        memory_budget: BUDGET,
        memory_per_source: SHARE,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let honest_sid = s.open_confirmed(honest(1), "honest");
    let attackers: Vec<(SocketAddr, String)> = (0..16u32)
        .map(|i| (spread(i), s.open_confirmed(spread(i), &format!("atk{i}"))))
        .collect();
    let big = vec![b'z'; 8 * 1024];
    let mut peak = 0;
    for round in 0..64u64 {
        for (from, sid) in &attackers {
            s.put(*from, sid, 2 + round, b""); // in order: answered below
            s.put(*from, sid, 1_000 + round, &big); // a gap before it: held
        }
        s.answer_all(&big); // never acknowledged
        peak = peak.max(s.ep.memory_used());
        for (from, _) in &attackers {
            assert!(s.ep.memory_budget().used_from(from.ip()) <= SHARE);
        }
    }
    assert!(peak <= BUDGET, "held {peak} > budget {BUDGET}");
    assert!(
        s.limits(EngineLimit::MemoryBudget) > 0,
        "the shares were reached"
    );
    let b = s.ep.memory_budget();
    assert!(b.refusals(BufferKind::Reorder) > 0);
    assert!(b.refusals(BufferKind::Retransmit) > 0);
    assert!(b.refusals(BufferKind::ReplyCache) > 0);
    // The honest session still delivers, and its answer is kept (a
    // retransmission of its request gets it again).
    let out = s.put(honest(1), &honest_sid, 2, b"hello");
    assert_eq!(statuses(&out), [0]);
    assert_eq!(s.answer_all(b"welcome"), 1);
    let again = s.put(honest(1), &honest_sid, 2, b"hello");
    assert!(again.iter().any(|p| p.body() == b"welcome"), "kept");
    // Every byte is given back when the sessions end.
    s.advance(Duration::from_secs(200));
    assert_eq!(s.ep.session_count(), 0);
    s.input(honest(2), &get("after", "1/5"), b""); // forgets past horizons
    s.advance(Duration::from_secs(60));
    s.input(honest(2), &get("later", "1/5"), b"");
    let held = s.ep.memory_budget().used_by(BufferKind::ReplyCache);
    assert_eq!(s.ep.memory_used(), held, "only the newest entry's bytes");
    assert!(held < 1024);
}

/// The total, without per-source shares: once the budget is used up,
/// held PDUs are dropped (a NACK recovers them), `send` is refused with
/// `EngineError::MemoryBudget` (back-pressure) and new transactions are
/// answered 503; the total is never passed.
#[test]
fn memory_budget_total_back_pressure() {
    const BUDGET: usize = 512 * 1024;
    let shares = SharesConfig {
        memory_budget: BUDGET,
        memory_per_source: usize::MAX,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let sid = s.open_confirmed(spread(1), "a");
    let h = s
        .seen
        .iter()
        .find_map(|e| match e {
            Event::SessionOpened { session, .. } => Some(*session),
            _ => None,
        })
        .unwrap();
    let big = vec![b'z'; 8 * 1024];
    for seq in 0..200u64 {
        s.put(spread(1), &sid, 10 + seq, &big);
        assert!(s.ep.memory_used() <= BUDGET);
    }
    assert!(s.ep.memory_budget().available() < acorn::engine::endpoint::MIN_SEND_ROOM);
    assert!(s.ep.memory_budget().refusals(BufferKind::Reorder) > 0);
    let r =
        s.ep.send(s.now, h, PduBuilder::request("GET", "/x").unwrap());
    assert_eq!(r.err(), Some(EngineError::MemoryBudget));
    assert_eq!(statuses(&s.input(honest(1), &get("t", "1/5"), b"")), [503]);
    // Inside an ordered session the refusal takes the session's next Seq,
    // as any answer there must.
    let out = s.put(spread(1), &sid, 2, b"");
    let busy = out.iter().find(|p| p.status() == Some(503)).expect("503");
    assert!(
        hdr(busy, "Seq").is_some(),
        "in-session refusal carries a Seq"
    );
    assert_eq!(hdr(busy, "Session-ID").as_deref(), Some(sid.as_str()));
}

/// The budget over reassembly and the reply cache: a new transfer or
/// transaction that finds no room is answered 503.
#[test]
fn memory_budget_refuses_new_transfers_and_transactions_503() {
    const BUDGET: usize = 64 * 1024;
    let shares = SharesConfig {
        memory_budget: BUDGET,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    // Segments larger than `MIN_ROOM`, so the reassembler's own charge is
    // what refuses (smaller ones meet the reply cache's admission first).
    let seg = vec![b'q'; 6000];
    let mut refused = 0;
    for i in 0..100u32 {
        let out = s.input(spread(i), &segment(&format!("b{i}"), 1, 100, &seg), &seg);
        if statuses(&out).contains(&503) {
            refused += 1;
        }
        assert!(s.ep.memory_used() <= BUDGET);
    }
    assert!(refused > 0);
    assert!(s.limits(EngineLimit::MemoryBudget) > 0);
    assert!(s.ep.memory_budget().refusals(BufferKind::Reassembly) > 0);
    // Transactions: answered with large replies, never acknowledged.
    let chunk = vec![b'q'; 1000];
    let mut s = Server::new(shares, |_| {});
    let mut busy = 0;
    for i in 0..200u32 {
        let out = s.input(spread(i), &get(&format!("t{i}"), "1/5"), b"");
        if statuses(&out) == [503] {
            busy += 1;
        }
        s.answer_all(&chunk);
        assert!(s.ep.memory_used() <= BUDGET);
    }
    assert!(busy > 0, "new transactions refused once the budget is used");
    assert!(s.limits(EngineLimit::MemoryBudget) > 0);
}

// --------------------------------------------------------- resume guesses

/// `resume_failures_per_prefix`: guesses of Session-IDs spread over the
/// addresses of one /24 share one budget; past it even a fresh address of
/// that /24 gets the `404` without a lookup, while another network's
/// client resumes.
#[test]
fn resume_guesses_are_counted_per_prefix() {
    let shares = SharesConfig {
        resume_failures_per_prefix: 6,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let victim = s.open_confirmed(honest(1), "victim");
    let resume = |s: &mut Server, from: SocketAddr, tx: &str, sid: &str| {
        let out = s.input(
            from,
            &[
                "REG /s ACORN/1.0".into(),
                format!("TX-ID: {tx}"),
                format!("Session-ID: {sid}"),
                "Seq: 1".into(),
                "Ack-Seq: 1".into(),
            ],
            b"",
        );
        statuses(&out)
    };
    // Three guessers of 10.8.8.0/24, two guesses each (under their own
    // budget of 5): six failures, the prefix's whole budget.
    for host in 1..=3u8 {
        for g in 0..2 {
            let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 8, 8, host)), 9);
            assert_eq!(
                resume(&mut s, from, &format!("g{host}-{g}"), "guess"),
                [404]
            );
        }
    }
    // A fresh address of that /24 is refused even with the right id.
    let fresh = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 8, 8, 200)), 9);
    assert_eq!(resume(&mut s, fresh, "x", &victim), [404]);
    assert!(!s
        .seen
        .iter()
        .any(|e| matches!(e, Event::SessionResumed { .. })));
    // The victim itself, from its own network, resumes.
    let back = s.input(
        honest(7),
        &[
            "REG /s ACORN/1.0".into(),
            "TX-ID: back".into(),
            format!("Session-ID: {victim}"),
            "Seq: 2".into(),
            "Ack-Seq: 1".into(),
        ],
        b"",
    );
    assert_eq!(statuses(&back), [200]);
    assert!(s
        .seen
        .iter()
        .any(|e| matches!(e, Event::SessionResumed { .. })));
}

/// A new `REG` from the same address and port replaces its session; the
/// replaced one, never confirmed, takes its `REG`'s answer with it, so a
/// stream of `REG`s from one socket holds one session and one answer.
#[test]
fn replaced_half_open_sessions_take_their_reg_along() {
    let mut s = Server::new(SharesConfig::default(), |_| {});
    for i in 0..5_000 {
        let (st, _) = s.reg(spread(1), &format!("again-{i}"));
        assert_eq!(st, [0, 200]);
    }
    assert_eq!(s.ep.session_count(), 1);
    assert_eq!(s.ep.remembered_requests(), 1);
    s.open_confirmed(honest(1), "ok");
}

/// A peer that acknowledges with a bare ACK and never echoes the
/// Session-ID (SPEC §10) proves nothing, but its session is active: the
/// half-open timeout does not end it (the idle timeout would); under
/// pressure it is still the first to go.
#[test]
fn active_half_open_sessions_outlive_the_timeout_not_the_pressure() {
    let shares = SharesConfig {
        max_half_open: 2,
        ..SharesConfig::default()
    };
    let mut s = Server::new(shares, |_| {});
    let (st, _) = s.reg(honest(5), "bare");
    assert_eq!(st, [0, 200]);
    // A bare ACK of the 200, then a request: no Session-ID, no Ack-Message-ID.
    s.input(
        honest(5),
        &[
            "ACORN/1.0 000 ACK".into(),
            "TX-ID: bare".into(),
            "Seq: 1".into(),
        ],
        b"",
    );
    let out = s.input(
        honest(5),
        &[
            "PUT /x ACORN/1.0".into(),
            "TX-ID: p".into(),
            "Seq: 2".into(),
        ],
        b"",
    );
    assert_eq!(statuses(&out), [0]);
    assert_eq!(s.ep.half_open_sessions(), 1, "still unproven");
    s.advance(Duration::from_secs(30));
    assert_eq!(s.ep.session_count(), 1, "the half-open timeout spared it");
    assert_eq!(s.closed(CloseReason::NeverConfirmed), 0);
    // Pressure: two new half-open sessions; the oldest (ours) goes first.
    s.reg(spread(1), "x1");
    s.reg(spread(2), "x2");
    assert_eq!(s.closed(CloseReason::NeverConfirmed), 1);
    assert_eq!(s.ep.half_open_sessions(), 2);
}
