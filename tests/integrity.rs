//! Content and payload integrity (SPEC §3, §7): hashes added on send,
//! verified on receipt, a mismatch answered `400` and reported, a corrupted
//! body never delivered — for plain messages, for every segment of a
//! segmented payload, for replies, with SHA-256, SHA-512 and keyed HMAC.
//!
//! Corruption needs a hand on the wire, so these tests move datagrams
//! between two engines themselves ([`Wire`]): instant delivery, simulated
//! time, and a `tamper` hook that sees (and may change) every datagram.

use acorn::engine::integrity::Unchecked;
use acorn::engine::{
    Config, Endpoint, Event, HashAlg, HashSpec, HmacKey, IntegrityConfig, RequestId, SessionHandle,
};
use acorn::wire::{ParseOptions, Pdu, PduBuilder, SessionMode};
use base64::Engine as _;
use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>)>;

/// Two engines joined by a lossless, instant wire with a tamper hook.
struct Wire {
    ends: [Endpoint; 2],
    addrs: [SocketAddr; 2],
    now: Instant,
    events: [Vec<Event>; 2],
    tamper: Tamper,
    /// Answer every request the server (end 1) receives with `200`.
    answer: bool,
}

impl Wire {
    fn new(client: Config, server: Config) -> Wire {
        let now = Instant::now();
        let unix = Duration::from_secs(1_800_000_000);
        Wire {
            ends: [
                Endpoint::new(client, 1, now, unix),
                Endpoint::new(server, 2, now, unix),
            ],
            addrs: [
                "127.0.0.1:7001".parse().unwrap(),
                "127.0.0.2:7002".parse().unwrap(),
            ],
            now,
            events: [Vec::new(), Vec::new()],
            tamper: Box::new(|_, _| {}),
            answer: true,
        }
    }

    fn request(&mut self, b: PduBuilder) -> RequestId {
        let (now, to) = (self.now, self.addrs[1]);
        self.ends[0].request(now, to, b).unwrap()
    }

    /// Deliver everything and run timers until `for_` of simulated time.
    fn run(&mut self, for_: Duration) {
        let until = self.now + for_;
        loop {
            let mut moved = false;
            for i in 0..2 {
                while let Some(t) = self.ends[i].poll_transmit() {
                    moved = true;
                    let mut d = t.payload.to_vec();
                    (self.tamper)(i, &mut d);
                    let j = 1 - i;
                    assert_eq!(t.dest, self.addrs[j]);
                    let (now, from) = (self.now, self.addrs[i]);
                    self.ends[j].handle_datagram(now, from, Bytes::from(d));
                }
            }
            for i in 0..2 {
                while let Some(e) = self.ends[i].poll_event() {
                    moved = true;
                    if let (1, true, Event::RequestReceived { id, .. }) = (i, self.answer, &e) {
                        let mut r = PduBuilder::reply(200, "OK").unwrap();
                        r.body("fine");
                        self.ends[1].respond(self.now, *id, r).unwrap();
                    }
                    self.events[i].push(e);
                }
            }
            if moved {
                continue;
            }
            let next = [self.ends[0].poll_timeout(), self.ends[1].poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    for e in &mut self.ends {
                        e.handle_timeout(self.now);
                    }
                }
                _ => {
                    self.now = until;
                    return;
                }
            }
        }
    }

    fn delivered(&self) -> Vec<Vec<u8>> {
        self.events[1]
            .iter()
            .filter_map(|e| match e {
                Event::RequestReceived { pdu, .. } => Some(pdu.body().to_vec()),
                _ => None,
            })
            .collect()
    }

    fn integrity_failures(&self, end: usize) -> Vec<String> {
        self.events[end]
            .iter()
            .filter_map(|e| match e {
                Event::IntegrityFailed { header, .. } => Some(header.clone()),
                _ => None,
            })
            .collect()
    }

    fn reply(&self, id: RequestId) -> Option<(u16, Vec<u8>)> {
        self.events[0].iter().find_map(|e| match e {
            Event::ReplyReceived { request, pdu } if *request == id => {
                Some((pdu.status().unwrap(), pdu.status_text().unwrap().to_vec()))
            }
            _ => None,
        })
    }
}

fn hashing(send: Vec<HashSpec>) -> Config {
    Config {
        integrity: IntegrityConfig {
            send,
            ..Default::default()
        },
        ..Config::default()
    }
}

fn put(body: impl Into<Bytes>) -> PduBuilder {
    let mut b = PduBuilder::request("PUT", "/doc").unwrap();
    b.body(body.into());
    b
}

fn body_start(d: &[u8]) -> usize {
    d.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
}

fn parse(d: &[u8]) -> Pdu {
    Pdu::parse_datagram(Bytes::copy_from_slice(d), &ParseOptions::default()).unwrap()
}

/// Flip one bit of the body of the first copy of the request from end 0
/// for which `which` says so.
fn flip_once(which: impl Fn(&Pdu) -> bool + 'static) -> Tamper {
    let mut done = false;
    Box::new(move |from, d| {
        if from != 0 || done || d.len() == body_start(d) {
            return;
        }
        let p = parse(d);
        if p.is_request() && which(&p) {
            let at = body_start(d) + (d.len() - body_start(d)) / 2;
            d[at] ^= 0x20;
            done = true;
        }
    })
}

#[test]
fn hashes_are_added_and_verified() {
    for spec in [HashSpec::SHA256, HashSpec::SHA512] {
        let mut w = Wire::new(hashing(vec![spec]), hashing(vec![spec]));
        let seen: std::rc::Rc<std::cell::RefCell<Vec<Pdu>>> = Default::default();
        let s = seen.clone();
        w.tamper = Box::new(move |_, d| s.borrow_mut().push(parse(d)));
        let id = w.request(put("hello"));
        w.run(Duration::from_secs(2));
        assert_eq!(w.delivered(), vec![b"hello".to_vec()]);
        assert_eq!(w.reply(id).unwrap().0, 200);
        // Request and reply carry the header; the ACKs (no body) do not.
        let name = format!("Content-Hash-{}", spec.alg.wire_name());
        for p in seen.borrow().iter() {
            assert_eq!(p.header(&name).is_some(), !p.body().is_empty(), "{p:?}");
        }
        assert!(w.integrity_failures(1).is_empty() && w.integrity_failures(0).is_empty());
    }
}

#[test]
fn a_corrupted_body_is_refused_with_400_and_never_delivered() {
    let mut w = Wire::new(hashing(vec![HashSpec::SHA256]), Config::default());
    w.tamper = flip_once(|_| true);
    let id = w.request(put("the quick brown fox"));
    w.run(Duration::from_secs(5));
    assert!(w.delivered().is_empty());
    assert_eq!(w.reply(id), Some((400, b"Content Hash Mismatch".to_vec())));
    assert_eq!(
        w.integrity_failures(1),
        vec!["Content-Hash-SHA256".to_owned()]
    );
    // The refusal was ACKed like any reply: nothing is still retransmitted.
    assert_eq!(w.ends[0].pending_requests(), 0);
    assert!(w.ends[1].poll_timeout().is_none());
}

#[test]
fn a_flipped_byte_in_any_segment_is_caught() {
    let payload: Vec<u8> = (0..6000u32).map(|i| (i * 7 % 251) as u8).collect();
    // Count the segments of an untouched run first.
    let mut w = Wire::new(hashing(vec![HashSpec::SHA256]), Config::default());
    let id = w.request(put(payload.clone()));
    w.run(Duration::from_secs(5));
    assert_eq!(w.delivered(), vec![payload.clone()]);
    assert_eq!(w.reply(id).unwrap().0, 200);
    let count = {
        let mut w = Wire::new(hashing(vec![HashSpec::SHA256]), Config::default());
        let n = std::rc::Rc::new(std::cell::Cell::new(0u64));
        let c = n.clone();
        w.tamper = Box::new(move |_, d| {
            if let Ok(Some(s)) = parse(d).segment() {
                c.set(s.count);
            }
        });
        w.request(put(payload.clone()));
        w.run(Duration::from_secs(5));
        n.get()
    };
    assert!(count >= 5, "{count}");
    for k in 1..=count {
        // With Content-Hash on each segment and Payload-Hash on the first.
        let mut w = Wire::new(hashing(vec![HashSpec::SHA256]), Config::default());
        w.tamper = flip_once(move |p| p.segment().unwrap().is_some_and(|s| s.index == k));
        let id = w.request(put(payload.clone()));
        w.run(Duration::from_secs(5));
        assert!(w.delivered().is_empty(), "segment {k}");
        assert_eq!(
            w.reply(id),
            Some((400, b"Content Hash Mismatch".to_vec())),
            "segment {k}"
        );
        assert_eq!(w.integrity_failures(1).len(), 1, "segment {k}");
        assert_eq!(w.ends[1].reassemblies(), 0);

        // With only a Payload-Hash (written by the application): caught
        // when the payload is whole.
        let mut w = Wire::new(Config::default(), Config::default());
        w.tamper = flip_once(move |p| p.segment().unwrap().is_some_and(|s| s.index == k));
        let digest =
            base64::engine::general_purpose::STANDARD.encode(HashAlg::Sha512.digest(&payload));
        let mut b = put(payload.clone());
        b.header("Payload-Hash-SHA-512", digest).unwrap();
        let id = w.request(b);
        w.run(Duration::from_secs(5));
        assert!(w.delivered().is_empty(), "segment {k}");
        assert_eq!(
            w.reply(id),
            Some((400, b"Payload Hash Mismatch".to_vec())),
            "segment {k}"
        );
        assert_eq!(
            w.integrity_failures(1),
            vec!["Payload-Hash-SHA-512".to_owned()]
        );
    }
}

#[test]
fn an_application_content_hash_on_a_segmented_request_becomes_a_payload_hash() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let digest = base64::engine::general_purpose::STANDARD.encode(HashAlg::Sha256.digest(&payload));
    let seen: std::rc::Rc<std::cell::RefCell<Vec<Pdu>>> = Default::default();
    // Intact: delivered, the header moved to the first segment's payload scope.
    let mut w = Wire::new(Config::default(), Config::default());
    let s = seen.clone();
    w.tamper = Box::new(move |from, d| {
        if from == 0 {
            s.borrow_mut().push(parse(d));
        }
    });
    let mut b = put(payload.clone());
    b.header("Content-Hash-SHA256", digest.clone()).unwrap();
    let id = w.request(b);
    w.run(Duration::from_secs(5));
    assert_eq!(w.delivered(), vec![payload.clone()]);
    assert_eq!(w.reply(id).unwrap().0, 200);
    let segs: Vec<_> = seen
        .borrow()
        .iter()
        .filter(|p| p.is_request())
        .cloned()
        .collect();
    assert!(segs.len() > 1);
    assert!(segs
        .iter()
        .all(|p| p.header("Content-Hash-SHA256").is_none()));
    assert_eq!(
        segs[0].header("Payload-Hash-SHA256"),
        Some(digest.as_bytes())
    );
    // Corrupted: caught when the payload is whole.
    let mut w = Wire::new(Config::default(), Config::default());
    w.tamper = flip_once(|p| p.segment().unwrap().is_some_and(|s| s.index == 2));
    let mut b = put(payload);
    b.header("Content-Hash-SHA256", digest).unwrap();
    let id = w.request(b);
    w.run(Duration::from_secs(5));
    assert!(w.delivered().is_empty());
    assert_eq!(w.reply(id), Some((400, b"Payload Hash Mismatch".to_vec())));
}

#[test]
fn hmac_keys_per_peer_and_by_default() {
    let (ca, sa): (SocketAddr, SocketAddr) = (
        "127.0.0.1:7001".parse().unwrap(),
        "127.0.0.2:7002".parse().unwrap(),
    );
    let key = HmacKey::new(b"shared secret".to_vec());
    let keyed = |peer: SocketAddr, key: Option<HmacKey>| Config {
        integrity: IntegrityConfig {
            send: vec![HashSpec::HMAC_SHA256],
            default_key: None,
            peer_keys: key.into_iter().map(|k| (peer, k)).collect(),
        },
        ..Config::default()
    };
    // Same key on both sides: delivered, and the reply verified too.
    let mut w = Wire::new(keyed(sa, Some(key.clone())), keyed(ca, Some(key.clone())));
    let id = w.request(put("signed"));
    w.run(Duration::from_secs(2));
    assert_eq!(w.delivered(), vec![b"signed".to_vec()]);
    assert_eq!(w.reply(id).unwrap().0, 200);

    // A default key serves peers without their own.
    let dflt = Config {
        integrity: IntegrityConfig {
            send: vec![HashSpec::HMAC_SHA512],
            default_key: Some(key.clone()),
            ..Default::default()
        },
        ..Config::default()
    };
    let mut w = Wire::new(dflt.clone(), dflt);
    w.request(put("signed"));
    w.run(Duration::from_secs(2));
    assert_eq!(w.delivered().len(), 1);

    // A different key: refused.
    let other = HmacKey::new(b"another secret".to_vec());
    let mut w = Wire::new(keyed(sa, Some(key.clone())), keyed(ca, Some(other)));
    let id = w.request(put("signed"));
    w.run(Duration::from_secs(2));
    assert!(w.delivered().is_empty());
    assert_eq!(w.reply(id).unwrap().0, 400);
    assert_eq!(
        w.integrity_failures(1),
        vec!["Content-Hash-HMAC-SHA256".to_owned()]
    );

    // No key at the receiver: not checkable, so not a mismatch — delivered
    // and reported as unchecked.
    let mut w = Wire::new(keyed(sa, Some(key)), Config::default());
    w.request(put("signed"));
    w.run(Duration::from_secs(2));
    assert_eq!(w.delivered().len(), 1);
    assert!(w.events[1].iter().any(|e| matches!(
        e,
        Event::HashNotChecked {
            reason: Unchecked::NoKey,
            ..
        }
    )));

    // No key at the sender for this peer: the keyed hash is left out.
    let mut w = Wire::new(
        keyed(ca, Some(HmacKey::new(b"k".to_vec()))),
        Config::default(),
    );
    w.tamper = Box::new(|from, d| {
        if from == 0 {
            assert!(!String::from_utf8_lossy(d).contains("Hash"));
        }
    });
    w.request(put("unsigned"));
    w.run(Duration::from_secs(2));
    assert_eq!(w.delivered().len(), 1);
}

#[test]
fn unknown_algorithms_are_reported_not_refused_and_names_are_case_insensitive() {
    let mut w = Wire::new(Config::default(), Config::default());
    let mut b = put("body");
    b.header("Content-Hash-MD5", "XUFAKrxLKna5cZ2REBfFkg==")
        .unwrap();
    let good = base64::engine::general_purpose::STANDARD.encode(HashAlg::Sha256.digest(b"body"));
    b.header("content-hash-sha-256", good).unwrap();
    w.request(b);
    w.run(Duration::from_secs(2));
    assert_eq!(w.delivered(), vec![b"body".to_vec()]);
    assert!(w.events[1].iter().any(|e| matches!(
        e,
        Event::HashNotChecked { header, reason: Unchecked::UnknownAlgorithm, .. }
            if header == "Content-Hash-MD5"
    )));
    // The same spelling with a wrong digest is checked, and refused.
    let mut w = Wire::new(Config::default(), Config::default());
    let mut b = put("body");
    let bad = base64::engine::general_purpose::STANDARD.encode(HashAlg::Sha256.digest(b"bodY"));
    b.header("CONTENT-HASH-Sha256", bad).unwrap();
    let id = w.request(b);
    w.run(Duration::from_secs(2));
    assert!(w.delivered().is_empty());
    assert_eq!(w.reply(id).unwrap().0, 400);
}

#[test]
fn a_corrupted_reply_is_dropped_unacknowledged_and_never_delivered() {
    let mut w = Wire::new(Config::default(), hashing(vec![HashSpec::SHA256]));
    let mut done = false;
    w.tamper = Box::new(move |from, d| {
        if from == 1 && !done && parse(d).status() == Some(200) {
            let at = body_start(d);
            d[at] ^= 1;
            done = true;
        }
    });
    let id = w.request(put("question"));
    w.run(Duration::from_secs(5));
    assert_eq!(
        w.integrity_failures(0),
        vec!["Content-Hash-SHA256".to_owned()]
    );
    // SPEC §9: the client never echoed an id of the server's (it dropped
    // the reply), so the server's reply timer sends nothing toward it; the
    // client polls (its request again) and gets the intact cached reply —
    // once. Nothing corrupted was delivered.
    let replies: Vec<_> = w.events[0]
        .iter()
        .filter_map(|e| match e {
            Event::ReplyReceived { request, pdu } if *request == id => Some(pdu.status()),
            _ => None,
        })
        .collect();
    assert_eq!(replies, vec![Some(200)]);
    assert!(w.ends[0].stats().reply_polls >= 1);
    assert_eq!(w.integrity_failures(0).len(), 1, "only the corrupted copy");
}

#[test]
fn in_an_ordered_session_a_refused_message_still_takes_its_seq() {
    let cfg = hashing(vec![HashSpec::SHA256]);
    let mut w = Wire::new(cfg.clone(), cfg);
    w.tamper = flip_once(|p| p.body() == b"two");
    let (now, to) = (w.now, w.addrs[1]);
    let s: SessionHandle = w.ends[0]
        .open_session(now, to, "/", SessionMode::Ordered)
        .unwrap();
    w.run(Duration::from_secs(1));
    let ids: Vec<RequestId> = ["one", "two", "three"]
        .into_iter()
        .map(|m| {
            let now = w.now;
            w.ends[0].send(now, s, put(m)).unwrap()
        })
        .collect();
    w.run(Duration::from_secs(5));
    assert_eq!(w.delivered(), vec![b"one".to_vec(), b"three".to_vec()]);
    let statuses: Vec<u16> = ids.iter().map(|id| w.reply(*id).unwrap().0).collect();
    assert_eq!(statuses, vec![200, 400, 200]);
    assert_eq!(w.ends[1].stats().nacks_sent, 0);
    assert!(!w
        .events
        .iter()
        .flatten()
        .any(|e| matches!(e, Event::SessionClosed { .. })));
}

#[test]
fn keys_never_show_in_debug_output() {
    let cfg = Config {
        integrity: IntegrityConfig {
            send: vec![HashSpec::HMAC_SHA256],
            default_key: Some(HmacKey::new(b"hunter2-default".to_vec())),
            peer_keys: [(
                "127.0.0.1:1".parse().unwrap(),
                HmacKey::new(b"hunter2-peer".to_vec()),
            )]
            .into_iter()
            .collect(),
        },
        ..Config::default()
    };
    let dbg = format!("{cfg:?} {cfg:#?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("redacted"));
}
