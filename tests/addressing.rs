//! Node-to-node addressing (SPEC §5) through the simulated network:
//! where ACKs and replies go for every combination of `Ack-To`,
//! `Reply-To`, `From` and the transport source; `From`/`To` filled from
//! the configured identity; refusal of requests without `From`/`To`.
//!
//! Decision under test: the sans-IO engine resolves no host names. An
//! identity whose host is not an IP literal (`acme.example.com:7077`) is
//! skipped, and the next one in precedence is used — ultimately the
//! transport source.
//!
//! SPEC §9: an address named in `Reply-To`/`Ack-To`/`From` that is not the
//! transport source gets nothing unless the PDU is authenticated with a
//! per-peer HMAC key, so the client and server here share one and every
//! request carries a body with its `Content-Hash-HMAC-SHA256`. (The
//! unauthenticated case is tests/hostile_paths.rs.)

use acorn::engine::{Config, Event, HashSpec, HmacKey, Violation};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{ParseOptions, Pdu, PduBuilder};
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// (from node, to node, PDU) of every datagram put on the wire.
type Log = Arc<Mutex<Vec<(usize, usize, Pdu)>>>;

/// Nodes: 0 client, 1 server, 2 and 3 bystanders (ACK and reply sinks).
fn network(mut server: Config, mut client: Config) -> (Network, Log) {
    // Node i is 127.0.0.(i+1):7077 (see `Network::add_node`).
    let node = |i: u8| std::net::SocketAddr::from(([127, 0, 0, i + 1], 7077));
    let key = HmacKey::new(b"addressing tests".to_vec());
    server.integrity.peer_keys.insert(node(0), key.clone());
    client.integrity.peer_keys.insert(node(1), key);
    client.integrity.send = vec![HashSpec::HMAC_SHA256];
    let mut net = Network::new(11, LinkConfig::default());
    net.add_node(client);
    net.add_node(server);
    net.add_node(Config::default());
    net.add_node(Config::default());
    let log: Log = Arc::default();
    let l = log.clone();
    net.set_drop_filter(Some(Box::new(move |from, to, p: &Bytes| {
        let pdu = Pdu::parse_datagram(p.clone(), &ParseOptions::default()).unwrap();
        l.lock().unwrap().push((from, to, pdu));
        false
    })));
    (net, log)
}

/// Send a request with `headers` from node 0 to node 1; the server
/// answers every request `200`. Runs 3 simulated seconds; returns the
/// server's events.
fn exchange(net: &mut Network, headers: &[(&str, String)]) -> Vec<Event> {
    let mut b = PduBuilder::request("GET", "/where").unwrap();
    b.body("where?"); // the HMAC covers the body
    for (n, v) in headers {
        b.header(*n, v.clone()).unwrap();
    }
    let (now, server) = (net.now(), net.addr(1));
    net.endpoint(0).request(now, server, b).unwrap();
    let until = net.now() + Duration::from_secs(3);
    let mut events = Vec::new();
    while net.step(until) {
        for e in net.take_events(1) {
            if let Event::RequestReceived { id, .. } = e {
                let now = net.now();
                net.endpoint(1)
                    .respond(now, id, PduBuilder::reply(200, "OK").unwrap())
                    .unwrap();
            }
            events.push(e);
        }
    }
    events
}

/// The nodes the server sent its ACKs and its replies to.
fn destinations(log: &Log) -> (Vec<usize>, Vec<usize>) {
    let log = log.lock().unwrap();
    let mut acks: Vec<usize> = log
        .iter()
        .filter(|(f, _, p)| *f == 1 && p.status() == Some(0))
        .map(|(_, t, _)| *t)
        .collect();
    let mut replies: Vec<usize> = log
        .iter()
        .filter(|(f, _, p)| *f == 1 && p.status() == Some(200))
        .map(|(_, t, _)| *t)
        .collect();
    acks.dedup();
    replies.dedup();
    (acks, replies)
}

fn addr(net: &Network, i: usize) -> String {
    net.addr(i).to_string()
}

#[test]
fn ack_to_wins_for_acks_and_reply_to_for_replies() {
    let (mut net, log) = network(Config::default(), Config::default());
    let h = [
        ("Ack-To", format!("sink@{}", addr(&net, 2))),
        ("Reply-To", addr(&net, 3)),
        ("From", format!("client@{}", addr(&net, 0))),
    ];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![2], vec![3]));
}

#[test]
fn reply_to_takes_acks_when_there_is_no_ack_to() {
    let (mut net, log) = network(Config::default(), Config::default());
    let h = [("Reply-To", addr(&net, 3)), ("From", addr(&net, 2))];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![3], vec![3]));
}

#[test]
fn from_is_used_when_there_is_no_reply_to() {
    let (mut net, log) = network(Config::default(), Config::default());
    // `From` names another node than the transport source.
    let h = [("From", format!("elsewhere@{}", addr(&net, 2)))];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![2], vec![2]));
}

#[test]
fn the_transport_source_is_the_last_resort() {
    let (mut net, log) = network(Config::default(), Config::default());
    exchange(&mut net, &[]);
    assert_eq!(destinations(&log), (vec![0], vec![0]));
}

#[test]
fn a_host_name_is_skipped_for_the_next_in_precedence() {
    // Ack-To is a name: ACKs fall to Reply-To; replies use Reply-To.
    let (mut net, log) = network(Config::default(), Config::default());
    let h = [
        ("Ack-To", "acks.example.com:7077".to_owned()),
        ("Reply-To", addr(&net, 3)),
    ];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![3], vec![3]));

    // Reply-To is a name: both fall to From.
    let (mut net, log) = network(Config::default(), Config::default());
    let h = [
        ("Reply-To", "replies.example.com:7077".to_owned()),
        ("From", addr(&net, 2)),
    ];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![2], vec![2]));

    // Every identity is a name: the transport source.
    let (mut net, log) = network(Config::default(), Config::default());
    let h = [
        ("Ack-To", "a.example:1".to_owned()),
        ("Reply-To", "b.example:2".to_owned()),
        ("From", "node@c.example:3".to_owned()),
    ];
    exchange(&mut net, &h);
    assert_eq!(destinations(&log), (vec![0], vec![0]));
}

#[test]
fn ipv6_literals_are_addresses_too() {
    // The identity grammar brackets IPv6; the engine turns it into an
    // address (no IPv6 node in the simulation: the datagram is lost, but
    // its destination is what matters here).
    // SPEC §9: the named addresses are not the source, so the PDU is
    // authenticated with the source's own key.
    let from = "127.0.0.9:1".parse().unwrap();
    let key = HmacKey::new(b"v6".to_vec());
    let mut cfg = Config::default();
    cfg.integrity.peer_keys.insert(from, key.clone());
    let mut e = acorn::engine::Endpoint::new(
        cfg,
        1,
        std::time::Instant::now(),
        Duration::from_secs(1_800_000_000),
    );
    let (name, digest) = acorn::engine::integrity::hash_header(
        HashSpec::HMAC_SHA256,
        acorn::wire::HashScope::Content,
        Some(&key),
        b"v6",
    )
    .unwrap();
    let raw = format!(
        "PUT /x ACORN/1.0\r\nTX-ID: t1\r\nMessage-ID: m1\r\nAck-To: n@[::1]:7077\r\nReply-To: [2001:db8::1]:9\r\n{}: {}\r\nContent-Length: 2\r\n\r\nv6",
        name.as_str(),
        String::from_utf8_lossy(&digest)
    );
    e.handle_datagram(std::time::Instant::now(), from, Bytes::from(raw));
    let ack = e.poll_transmit().unwrap();
    assert_eq!(ack.dest, "[::1]:7077".parse().unwrap());
    let Some(Event::RequestReceived { id, .. }) = e.poll_event() else {
        panic!("not delivered")
    };
    e.respond(
        std::time::Instant::now(),
        id,
        PduBuilder::reply(200, "OK").unwrap(),
    )
    .unwrap();
    assert_eq!(
        e.poll_transmit().unwrap().dest,
        "[2001:db8::1]:9".parse().unwrap()
    );
}

#[test]
fn from_and_to_are_filled_from_the_configured_identity() {
    let client = Config {
        identity: Some("client@127.0.0.1:7077".into()),
        ..Config::default()
    };
    let server = Config {
        identity: Some("server@127.0.0.2:7077".into()),
        ..Config::default()
    };
    let (mut net, log) = network(server, client);
    exchange(&mut net, &[]);
    let log = log.lock().unwrap();
    let text = |p: &Pdu, h: &str| p.header(h).map(|v| String::from_utf8_lossy(v).into_owned());
    let req = log
        .iter()
        .find(|(f, _, p)| *f == 0 && p.is_request())
        .unwrap();
    assert_eq!(
        text(&req.2, "From").as_deref(),
        Some("client@127.0.0.1:7077")
    );
    // No To from the application: the destination's address.
    assert_eq!(text(&req.2, "To").as_deref(), Some("127.0.0.2:7077"));
    for (_, _, p) in log.iter().filter(|(f, _, _)| *f == 1) {
        assert_eq!(text(p, "From").as_deref(), Some("server@127.0.0.2:7077"));
        assert_eq!(text(p, "To").as_deref(), Some("client@127.0.0.1:7077"));
    }
    // The client's ACK of the reply is addressed back as well.
    let ack = log
        .iter()
        .find(|(f, _, p)| *f == 0 && p.status() == Some(0))
        .unwrap();
    assert_eq!(text(&ack.2, "To").as_deref(), Some("server@127.0.0.2:7077"));
}

#[test]
fn an_application_to_is_kept_and_reply_to_never_replaces_from() {
    let client = Config {
        identity: Some("client@127.0.0.1:7077".into()),
        ..Config::default()
    };
    let (mut net, log) = network(Config::default(), client);
    let h = [
        ("To", "server@127.0.0.2:7077".to_owned()),
        ("Reply-To", addr(&net, 3)),
    ];
    exchange(&mut net, &h);
    let log = log.lock().unwrap();
    let req = log
        .iter()
        .find(|(f, _, p)| *f == 0 && p.is_request())
        .unwrap();
    assert_eq!(req.2.header("To"), Some(&b"server@127.0.0.2:7077"[..]));
    assert_eq!(req.2.header("From"), Some(&b"client@127.0.0.1:7077"[..]));
    // The reply goes to Reply-To but is addressed To the sender's identity.
    let reply = log
        .iter()
        .find(|(f, _, p)| *f == 1 && p.status() == Some(200))
        .unwrap();
    assert_eq!(reply.1, 3);
    assert_eq!(reply.2.header("To"), Some(&b"client@127.0.0.1:7077"[..]));
}

#[test]
fn require_from_to_refuses_with_400_and_accepts_an_addressed_request() {
    let server = Config {
        require_from_to: true,
        ..Config::default()
    };
    // Without an identity the client sends neither From nor To.
    let (mut net, log) = network(server.clone(), Config::default());
    let events = exchange(&mut net, &[]);
    let refusals: Vec<(u16, Vec<u8>)> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(f, _, p)| *f == 1 && !p.is_request())
        .map(|(_, _, p)| (p.status().unwrap(), p.status_text().unwrap().to_vec()))
        .collect();
    assert_eq!(refusals[0], (400, b"From and To Required".to_vec()));
    assert!(events.iter().any(|e| matches!(
        e,
        Event::ProtocolViolation {
            violation: Violation::MissingAddressing,
            ..
        }
    )));
    // From alone is not enough.
    let (mut net, log) = network(server.clone(), Config::default());
    exchange(&mut net, &[("From", "c@127.0.0.1:7077".into())]);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .any(|(f, _, p)| *f == 1 && p.status() == Some(400)));
    // With an identity the engine adds both, and the request is served.
    let client = Config {
        identity: Some("client@127.0.0.1:7077".into()),
        ..Config::default()
    };
    let (mut net, log) = network(server, client);
    exchange(&mut net, &[]);
    let (_, replies) = destinations(&log);
    assert_eq!(replies, vec![0]);
    assert!(!log
        .lock()
        .unwrap()
        .iter()
        .any(|(f, _, p)| *f == 1 && p.status() == Some(400)));
}
