//! The per-session send window: requests beyond `max_in_flight_per_session`
//! wait in a bounded queue and go out in order as earlier ones finish.

use acorn::engine::{Config, EngineError, EngineLimit, Event, RequestId};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{PduBuilder, SessionMode};
use std::time::Duration;

fn put(n: u32) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/w").unwrap();
    b.body(n.to_string());
    b
}

fn windowed(in_flight: usize, queued: usize) -> Config {
    let mut cfg = Config::default();
    cfg.limits.max_in_flight_per_session = in_flight;
    cfg.limits.max_queued_per_session = queued;
    cfg
}

/// A client (node 0) with an open ordered session to an echoing server (node 1).
fn open(cfg: Config) -> (Network, acorn::engine::SessionHandle) {
    let mut net = Network::new(3, LinkConfig::default());
    net.add_node(cfg);
    net.add_node(Config::default());
    let (now, to) = (net.now(), net.addr(1));
    let h = net
        .endpoint(0)
        .open_session(now, to, "/", SessionMode::Ordered)
        .unwrap();
    let limit = net.now() + Duration::from_secs(5);
    while !net
        .take_events(0)
        .iter()
        .any(|e| matches!(e, Event::SessionOpened { .. }))
    {
        assert!(net.step(limit), "session did not open");
    }
    (net, h)
}

#[test]
fn requests_beyond_the_window_wait_and_go_out_in_order() {
    let (mut net, h) = open(windowed(4, 100));
    let now = net.now();
    let ids: Vec<RequestId> = (0..20)
        .map(|i| net.endpoint(0).send(now, h, put(i)).unwrap())
        .collect();
    assert_eq!(
        net.endpoint(0).pending_requests(),
        4,
        "only the window is sent"
    );
    let mut delivered = Vec::new();
    let mut replies = Vec::new();
    let limit = net.now() + Duration::from_secs(30);
    while replies.len() < 20 {
        assert!(
            net.endpoint(0).pending_requests() <= 4,
            "never more than the window in flight"
        );
        for e in net.take_events(1) {
            if let Event::RequestReceived { id, pdu, .. } = e {
                delivered.push(String::from_utf8(pdu.body().to_vec()).unwrap());
                let now = net.now();
                net.endpoint(1)
                    .respond(now, id, PduBuilder::reply(200, "OK").unwrap())
                    .unwrap();
            }
        }
        for e in net.take_events(0) {
            if let Event::ReplyReceived { request, .. } = e {
                replies.push(request);
            }
        }
        assert!(net.step(limit), "stalled with {} replies", replies.len());
    }
    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(delivered, expected, "queued requests keep their order");
    assert_eq!(replies, ids, "each id the application holds gets its reply");
}

#[test]
fn a_full_queue_refuses_and_reports_the_limit() {
    let (mut net, h) = open(windowed(1, 2));
    let now = net.now();
    for i in 0..3 {
        net.endpoint(0).send(now, h, put(i)).unwrap();
    }
    assert_eq!(
        net.endpoint(0).send(now, h, put(3)),
        Err(EngineError::TooManyPending)
    );
    let events = net.take_events(0);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::LimitReached {
            limit: EngineLimit::PendingRequests,
            ..
        }
    )));
}

#[test]
fn queued_requests_are_reported_when_the_session_ends() {
    let (mut net, h) = open(windowed(1, 10));
    let now = net.now();
    let ids: Vec<RequestId> = (0..3)
        .map(|i| net.endpoint(0).send(now, h, put(i)).unwrap())
        .collect();
    // The server goes silent: the request in flight times out, the session
    // ends, and the two that never left are reported too.
    net.set_link(LinkConfig {
        loss: 1.0,
        ..LinkConfig::default()
    });
    let limit = net.now() + Duration::from_secs(120);
    let mut timed_out = Vec::new();
    let mut closed = false;
    while !closed {
        for e in net.take_events(0) {
            match e {
                Event::RequestTimedOut { request } => timed_out.push(request),
                Event::SessionClosed { .. } => closed = true,
                _ => {}
            }
        }
        if !closed {
            assert!(net.step(limit), "the session never ended");
        }
    }
    for e in net.take_events(0) {
        if let Event::RequestTimedOut { request } = e {
            timed_out.push(request);
        }
    }
    timed_out.sort();
    assert_eq!(
        timed_out, ids,
        "every request is accounted for, none silently"
    );
}
