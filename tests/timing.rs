//! Timing headers (SPEC §3, §6) through the simulated network: `TS` or
//! `Date` stamped on send and refreshed on retransmission, `Timeout` as the
//! reply deadline, `Expire-At`/`Expire-Date` honoured — inside an ordered
//! session too, where an expired message's Seq still counts.
//!
//! The simulated endpoints believe the Unix time at the start is
//! 1,800,000,000 (2027-01-15T08:00:00Z).

use acorn::engine::{Config, Event, Timestamp};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{ParseOptions, Pdu, PduBuilder, SessionMode};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const T0: i64 = 1_800_000_000;

type Log = Arc<Mutex<Vec<(usize, Pdu)>>>;

/// Two nodes; every datagram logged; node 0's datagrams for which `drop`
/// says so are lost.
fn network(cfg: Config, drop: impl Fn(&Pdu) -> bool + Send + 'static) -> (Network, Log) {
    let mut net = Network::new(3, LinkConfig::default());
    net.add_node(cfg.clone());
    net.add_node(cfg);
    let log: Log = Arc::default();
    let l = log.clone();
    net.set_drop_filter(Some(Box::new(move |from, _, p: &Bytes| {
        let pdu = Pdu::parse_datagram(p.clone(), &ParseOptions::default()).unwrap();
        let lost = from == 0 && drop(&pdu);
        l.lock().unwrap().push((from, pdu));
        lost
    })));
    (net, log)
}

fn request(headers: &[(&str, String)]) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/t").unwrap();
    for (n, v) in headers {
        b.header(*n, v.clone()).unwrap();
    }
    b.body("x");
    b
}

/// Run until `until`; the server answers requests `200` when `answer`.
fn run(net: &mut Network, until: Duration, answer: bool) -> (Vec<Event>, Vec<Event>) {
    let until = net.now() + until;
    let (mut client, mut server) = (Vec::new(), Vec::new());
    loop {
        for e in net.take_events(1) {
            if let (true, Event::RequestReceived { id, .. }) = (answer, &e) {
                let now = net.now();
                net.endpoint(1)
                    .respond(now, *id, PduBuilder::reply(200, "OK").unwrap())
                    .unwrap();
            }
            server.push(e);
        }
        client.extend(net.take_events(0));
        if !net.step(until) {
            return (client, server);
        }
    }
}

fn num(p: &Pdu, h: &str) -> Option<i64> {
    p.header(h)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
}

#[test]
fn ts_is_stamped_and_refreshed_on_each_retransmission() {
    // The first two tries are lost; the third gets through.
    let (mut net, log) = network(Config::default(), |p| {
        p.is_request() && p.attempt().unwrap().is_some_and(|a| a.current < 3)
    });
    let (now, server) = (net.now(), net.addr(1));
    net.endpoint(0).request(now, server, request(&[])).unwrap();
    let (client, _) = run(&mut net, Duration::from_secs(10), true);
    assert!(client
        .iter()
        .any(|e| matches!(e, Event::ReplyReceived { .. })));
    let log = log.lock().unwrap();
    let tries: Vec<(u64, i64)> = log
        .iter()
        .filter(|(f, p)| *f == 0 && p.is_request())
        .map(|(_, p)| (p.attempt().unwrap().unwrap().current, num(p, "TS").unwrap()))
        .collect();
    // 500 ms then 1 s apart (SPEC §6): try 3 leaves 1.5 s after try 1.
    assert_eq!(tries, vec![(1, T0), (2, T0), (3, T0 + 1)]);
    // The reply is stamped too, and the message ids did not change.
    let reply = log
        .iter()
        .find(|(f, p)| *f == 1 && p.status() == Some(200))
        .unwrap();
    assert_eq!(num(&reply.1, "TS"), Some(T0 + 1));
    let mids: Vec<_> = log
        .iter()
        .filter(|(f, p)| *f == 0 && p.is_request())
        .map(|(_, p)| p.message_id().unwrap().unwrap().to_owned())
        .collect();
    assert!(mids.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn date_mode_writes_rfc3339_and_off_writes_nothing() {
    let cfg = Config {
        timestamp: Timestamp::Date,
        ..Config::default()
    };
    let (mut net, log) = network(cfg, |_| false);
    let (now, server) = (net.now(), net.addr(1));
    net.endpoint(0).request(now, server, request(&[])).unwrap();
    run(&mut net, Duration::from_secs(2), true);
    for (_, p) in log
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.status() != Some(0))
    {
        assert_eq!(p.header("Date"), Some(&b"2027-01-15T08:00:00Z"[..]));
        assert_eq!(p.date().unwrap(), Some(T0));
        assert!(p.header("TS").is_none());
    }
    let cfg = Config {
        timestamp: Timestamp::Off,
        ..Config::default()
    };
    let (mut net, log) = network(cfg, |_| false);
    let (now, server) = (net.now(), net.addr(1));
    net.endpoint(0).request(now, server, request(&[])).unwrap();
    run(&mut net, Duration::from_secs(2), true);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .all(|(_, p)| p.header("TS").is_none() && p.header("Date").is_none()));
}

#[test]
fn timeout_is_the_reply_deadline() {
    for (timeout, expect) in [
        (Some("2"), Duration::from_secs(2)),
        (None, Duration::from_secs(32)),
    ] {
        let (mut net, _) = network(Config::default(), |_| false);
        let (now, server) = (net.now(), net.addr(1));
        let h: Vec<(&str, String)> = timeout
            .map(|t| ("Timeout", t.to_owned()))
            .into_iter()
            .collect();
        let id = net.endpoint(0).request(now, server, request(&h)).unwrap();
        // The server ACKs and never answers.
        let mut acked_at = None;
        let deadline = net.now() + Duration::from_secs(60);
        let timed_out_at = loop {
            let evs = net.take_events(0);
            if evs
                .iter()
                .any(|e| matches!(e, Event::Acked { request } if *request == id))
            {
                acked_at = Some(net.now());
            }
            if evs
                .iter()
                .any(|e| matches!(e, Event::RequestTimedOut { request } if *request == id))
            {
                break net.now();
            }
            assert!(net.step(deadline), "no timeout");
        };
        let waited = timed_out_at - acked_at.unwrap();
        assert_eq!(waited, expect, "Timeout {timeout:?}");
    }
}

fn received(events: &[Event]) -> Vec<Vec<u8>> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::RequestReceived { pdu, .. } => Some(pdu.body().to_vec()),
            _ => None,
        })
        .collect()
}

fn expired(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Expired { .. }))
        .count()
}

#[test]
fn expired_messages_are_acknowledged_but_not_acted_on() {
    let cases = [
        ("Expire-At", (T0 - 1).to_string(), true),
        ("Expire-At", (T0 + 60).to_string(), false),
        ("Expire-Date", "2027-01-15T07:59:59Z".to_owned(), true),
        ("Expire-Date", "2027-01-15T08:01:00+00:00".to_owned(), false),
    ];
    for (h, v, gone) in cases {
        let (mut net, log) = network(Config::default(), |_| false);
        let (now, server) = (net.now(), net.addr(1));
        net.endpoint(0)
            .request(now, server, request(&[(h, v.clone())]))
            .unwrap();
        let (client, srv) = run(&mut net, Duration::from_secs(3), true);
        assert_eq!(received(&srv).is_empty(), gone, "{h}: {v}");
        assert_eq!(expired(&srv), usize::from(gone), "{h}: {v}");
        // Either way the request was ACKed (its retransmissions stop).
        assert!(
            client.iter().any(|e| matches!(e, Event::Acked { .. })),
            "{h}: {v}"
        );
        let tries = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(f, p)| *f == 0 && p.is_request())
            .count();
        // An expired request gets no final reply: the client polls for it
        // (`Attempt` up), and every copy after the first is a duplicate the
        // server does not act on.
        assert!(tries >= 1, "{h}: {v}");
        assert_eq!(
            net.endpoint(1).stats().duplicates,
            tries as u64 - 1,
            "{h}: {v}"
        );
    }
    // Expire-At wins over Expire-Date (like TS over Date).
    let (mut net, _) = network(Config::default(), |_| false);
    let (now, server) = (net.now(), net.addr(1));
    let h = [
        ("Expire-Date", "2027-01-15T07:00:00Z".to_owned()),
        ("Expire-At", (T0 + 60).to_string()),
    ];
    net.endpoint(0).request(now, server, request(&h)).unwrap();
    let (_, srv) = run(&mut net, Duration::from_secs(1), true);
    assert_eq!(received(&srv).len(), 1);
}

#[test]
fn an_expired_message_in_an_ordered_session_still_takes_its_seq() {
    let (mut net, _) = network(Config::default(), |_| false);
    let server = net.addr(1);
    let now = net.now();
    let s = net
        .endpoint(0)
        .open_session(now, server, "/", SessionMode::Ordered)
        .unwrap();
    run(&mut net, Duration::from_secs(1), true);
    for (i, expire) in [(1, T0 + 60), (2, T0 - 1), (3, T0 + 60)] {
        let mut b = request(&[("Expire-At", expire.to_string())]);
        b.body(format!("m{i}"));
        let now = net.now();
        net.endpoint(0).send(now, s, b).unwrap();
    }
    let (client, srv) = run(&mut net, Duration::from_secs(5), true);
    assert_eq!(received(&srv), vec![b"m1".to_vec(), b"m3".to_vec()]);
    assert!(srv.iter().any(|e| matches!(
        e,
        Event::Expired {
            session: Some(_),
            ..
        }
    )));
    // No gap was seen: nothing NACKed, nothing closed.
    assert_eq!(net.endpoint(1).stats().nacks_sent, 0);
    assert!(!client
        .iter()
        .chain(&srv)
        .any(|e| matches!(e, Event::SessionClosed { .. })));
    assert_eq!(
        client
            .iter()
            .filter(|e| matches!(e, Event::ReplyReceived { .. }))
            .count(),
        2
    );
}
