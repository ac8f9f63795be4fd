//! Client polling (SPEC §9): toward a requester that never proved its
//! address the server runs no timer retransmission, so a final reply lost
//! after its ACK comes again only because the requester retransmits its
//! request and the server answers that duplicate from its reply cache.
//! Simulated network and time; losses chosen by a drop filter.

use acorn::engine::{Config, Event};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{ParseOptions, Pdu, PduBuilder};
use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What one request produced on each side.
#[derive(Debug, Default)]
struct Outcome {
    delivered: usize,
    acked: usize,
    replies: Vec<u16>,
    timed_out: bool,
    client_proven_on_delivery: Option<bool>,
}

/// Is datagram `p` a final reply (status 200 or more)?
fn final_reply(p: &Bytes) -> bool {
    Pdu::parse_datagram(p.clone(), &ParseOptions::default())
        .ok()
        .and_then(|pdu| pdu.status())
        .is_some_and(|s| s >= 200)
}

/// A network of a client (node 0) and a server (node 1) whose first final
/// reply from the server is lost. Returns it and the count of replies lost.
fn network() -> (Network, Arc<AtomicUsize>) {
    let mut net = Network::new(7, LinkConfig::default());
    net.add_node(Config::default());
    net.add_node(Config::default());
    let lost = Arc::new(AtomicUsize::new(0));
    let l = lost.clone();
    net.set_drop_filter(Some(Box::new(move |from, _to, p: &Bytes| {
        from == 1 && final_reply(p) && l.fetch_add(1, Ordering::Relaxed) == 0
    })));
    (net, lost)
}

/// Send `body` from the client, the server answering each delivery with a
/// `200`, for at most `limit` of simulated time.
fn run(net: &mut Network, body: Bytes, limit: Duration) -> Outcome {
    let server = net.addr(1);
    let client = net.addr(0);
    let now = net.now();
    let mut b = PduBuilder::request("PUT", "/blob").unwrap();
    b.body(body);
    let req = net.endpoint(0).request(now, server, b).unwrap();
    let deadline = net.now() + limit;
    let mut out = Outcome::default();
    loop {
        for e in net.take_events(1) {
            if let Event::RequestReceived { id, .. } = e {
                out.delivered += 1;
                out.client_proven_on_delivery = Some(net.endpoint(1).address_proven(client));
                let now = net.now();
                let r = PduBuilder::reply(200, "OK").unwrap();
                net.endpoint(1).respond(now, id, r).unwrap();
            }
        }
        for e in net.take_events(0) {
            match e {
                Event::Acked { request } if request == req => out.acked += 1,
                Event::ReplyReceived { request, pdu } if request == req => {
                    out.replies.push(pdu.status().unwrap_or(0));
                }
                Event::RequestTimedOut { request } if request == req => out.timed_out = true,
                _ => {}
            }
        }
        if !net.step(deadline) {
            return out;
        }
    }
}

fn assert_polled(net: &mut Network, lost: &AtomicUsize, out: &Outcome) {
    assert!(lost.load(Ordering::Relaxed) >= 1, "a reply was lost");
    assert_eq!(
        out.client_proven_on_delivery,
        Some(false),
        "client unproven"
    );
    assert_eq!(
        out.delivered, 1,
        "delivered to the server app once: {out:?}"
    );
    assert_eq!(out.acked, 1, "{out:?}");
    assert_eq!(
        out.replies,
        vec![200],
        "one reply to the client app: {out:?}"
    );
    assert!(!out.timed_out, "{out:?}");
    let (c, s) = (net.endpoint(0).stats(), net.endpoint(1).stats());
    assert!(c.reply_polls >= 1, "the client polled: {c:?}");
    assert!(
        s.duplicates >= 1,
        "the server saw the poll as a duplicate: {s:?}"
    );
    assert_eq!(
        s.paths.bytes_withheld, 0,
        "the polls earned the budget: {s:?}"
    );
    // Nothing left behind on the client.
    assert_eq!(net.endpoint(0).pending_requests(), 0);
}

#[test]
fn a_lost_reply_to_an_acked_request_is_fetched_by_polling() {
    let (mut net, lost) = network();
    let out = run(
        &mut net,
        Bytes::from_static(b"hello"),
        Duration::from_secs(60),
    );
    assert_polled(&mut net, &lost, &out);
    // Exactly one poll was needed: the first copy of the reply was the lost one.
    assert_eq!(net.endpoint(0).stats().reply_polls, 1);
}

#[test]
fn a_lost_reply_to_a_segmented_request_is_fetched_by_polling() {
    let (mut net, lost) = network();
    let body = Bytes::from(vec![7u8; 20_000]);
    let out = run(&mut net, body, Duration::from_secs(60));
    assert!(net.endpoint(1).stats().duplicates >= 1);
    assert_polled(&mut net, &lost, &out);
    assert_eq!(net.endpoint(1).reassemblies(), 0);
}

#[test]
fn a_reply_that_never_comes_still_times_out() {
    // Every final reply lost: the client polls its attempts out, then
    // times out at its reply deadline; the server delivers once.
    let mut net = Network::new(7, LinkConfig::default());
    net.add_node(Config::default());
    net.add_node(Config::default());
    net.set_drop_filter(Some(Box::new(|from, _to, p: &Bytes| {
        from == 1 && final_reply(p)
    })));
    let out = run(
        &mut net,
        Bytes::from_static(b"hello"),
        Duration::from_secs(120),
    );
    assert_eq!(out.delivered, 1, "{out:?}");
    assert!(out.replies.is_empty(), "{out:?}");
    assert!(out.timed_out, "{out:?}");
    let max = Config::default().retry.max_attempts as u64;
    // The first transmission was ACKed; the polls are the other attempts.
    assert_eq!(net.endpoint(0).stats().reply_polls, max - 1);
    assert_eq!(net.endpoint(0).pending_requests(), 0);
}
