//! SPEC §9 address and path rules against the real `acorn-cli listen`
//! (default settings: the 3x budget) over loopback UDP, one test per attack
//! row of issue 13 that these rules fix. Loopback cannot forge a source
//! address, so a "victim" or "third party" is another socket of the test
//! that counts what reaches it. Every flood is bounded in count, every wait
//! in time; a legitimate client from another socket keeps its session and
//! its answers throughout.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod cli_support;
use cli_support::Listener;

/// A raw UDP socket that counts the bytes it sends and receives.
struct Sock {
    s: UdpSocket,
    sent: u64,
    got: u64,
}

impl Sock {
    fn new() -> Sock {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        Sock { s, sent: 0, got: 0 }
    }

    fn addr(&self) -> SocketAddr {
        self.s.local_addr().unwrap()
    }

    fn send(&mut self, to: SocketAddr, lines: &[String], body: &str) {
        let mut d = lines.join("\r\n");
        d.push_str("\r\n");
        if !body.is_empty() {
            d.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        d.push_str("\r\n");
        d.push_str(body);
        self.sent += d.len() as u64;
        self.s.send_to(d.as_bytes(), to).unwrap();
    }

    /// Everything that arrives within `wait`.
    fn recv_for(&mut self, wait: Duration) -> Vec<String> {
        let end = Instant::now() + wait;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < end {
            if let Ok((n, _)) = self.s.recv_from(&mut buf) {
                self.got += n as u64;
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        out
    }

    /// Receive until `pred` holds for one PDU (bounded), returning all.
    fn recv_until(&mut self, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while Instant::now() < end {
            if let Ok((n, _)) = self.s.recv_from(&mut buf) {
                self.got += n as u64;
                let p = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = pred(&p);
                out.push(p);
                if done {
                    return out;
                }
            }
        }
        panic!("nothing matching arrived: {out:?}");
    }
}

fn header<'a>(pdu: &'a str, name: &str) -> Option<&'a str> {
    pdu.split("\r\n")
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

fn l(s: impl Into<String>) -> String {
    s.into()
}

/// A realistic REG (what the engine's own client sends, with From/To).
fn reg(me: SocketAddr, tx: &str) -> Vec<String> {
    vec![
        l("REG /s ACORN/1.0"),
        l("Request-Session-Mode: ordered"),
        format!("TX-ID: {tx}"),
        format!("Message-ID: m-{tx}"),
        l("Attempt: 1/5"),
        l("Seq: 0"),
        format!("From: client@{me}"),
    ]
}

/// A legitimate client: opens a session, proves its address by ACKing the
/// 200 (echoing its Message-ID and the Session-ID), and sends requests.
struct Client {
    sock: Sock,
    sid: String,
    next: u64,
}

impl Client {
    fn open(server: SocketAddr, tx: &str) -> Client {
        let mut sock = Sock::new();
        let me = sock.addr();
        sock.send(server, &reg(me, tx), "");
        let mut got = sock.recv_for(Duration::from_millis(300));
        if !got.iter().any(|p| p.starts_with("ACORN/1.0 200")) {
            // The 200 was withheld by the budget: retransmit the REG.
            let mut again = reg(me, tx);
            again[4] = l("Attempt: 2/5");
            sock.send(server, &again, "");
            got.extend(sock.recv_until(|p| p.starts_with("ACORN/1.0 200")));
        }
        let ok = got.iter().find(|p| p.starts_with("ACORN/1.0 200")).unwrap();
        let sid = header(ok, "Session-ID").unwrap().to_owned();
        let mid = header(ok, "Message-ID").unwrap().to_owned();
        let their_seq: u64 = header(ok, "Seq").unwrap().parse().unwrap();
        sock.send(
            server,
            &[
                l("ACORN/1.0 000 ACK"),
                format!("TX-ID: {tx}"),
                format!("Ack-Message-ID: {mid}"),
                l("Seq: 1"),
                format!("Session-ID: {sid}"),
                format!("Ack-Seq: {their_seq}"),
            ],
            "",
        );
        Client { sock, sid, next: 2 }
    }

    /// A PUT in the session; returns the server's echo of it.
    fn put(&mut self, server: SocketAddr, body: &str) -> String {
        let seq = self.next;
        self.next += 1;
        let tx = format!("put-{seq}-{}", self.sock.addr().port());
        self.sock.send(
            server,
            &[
                l("PUT /legit ACORN/1.0"),
                format!("TX-ID: {tx}"),
                format!("Message-ID: m-{tx}"),
                format!("Seq: {seq}"),
                format!("Session-ID: {}", self.sid),
            ],
            body,
        );
        let got = self
            .sock
            .recv_until(|p| p.starts_with("ACORN/1.0 200") && p.contains(&tx));
        got.into_iter()
            .find(|p| p.starts_with("ACORN/1.0 200"))
            .unwrap()
    }

    fn served(&mut self, server: SocketAddr) {
        let r = self.put(server, "still here");
        assert!(r.ends_with("still here"), "{r}");
    }
}

fn listen() -> Listener {
    Listener::start(&["udp://127.0.0.1:0", "--exit-after", "60s"])
}

/// Row: a REG never ACKed brings at most 3x back, and no timer
/// retransmission; a retransmitted REG gets the remembered answer.
#[test]
fn unacked_reg_gets_at_most_3x_and_no_timer_resend() {
    let listener = listen();
    let server = listener.socket_addr();
    let mut legit = Client::open(server, "legit");
    let mut a = Sock::new();
    let me = a.addr();
    a.send(server, &reg(me, "lonely"), "");
    // The reply timer would fire at 500 ms and 1.5 s.
    let got = a.recv_for(Duration::from_millis(1700));
    assert!(
        a.got <= 3 * a.sent,
        "{} out for {} in: {got:?}",
        a.got,
        a.sent
    );
    assert!(got.len() <= 2, "{got:?}");
    legit.served(server);
}

/// Row: requests with `Reply-To`/`Ack-To`/`From` naming a third party:
/// the third party gets nothing, the sender nothing either (the answers
/// belong to the named address).
#[test]
fn third_party_named_in_reply_to_gets_nothing() {
    let listener = listen();
    let server = listener.socket_addr();
    let mut legit = Client::open(server, "legit");
    let mut attacker = Sock::new();
    let mut third = Sock::new();
    let t = third.addr();
    for i in 0..50 {
        attacker.send(
            server,
            &[
                l("PUT /r ACORN/1.0"),
                format!("TX-ID: r{i}"),
                format!("Reply-To: {t}"),
                format!("Ack-To: victim@{t}"),
                format!("From: victim@{t}"),
            ],
            "answer my victim, five times please",
        );
    }
    let got = third.recv_for(Duration::from_millis(1200));
    assert!(got.is_empty(), "the third party got {got:?}");
    assert_eq!(third.got, 0);
    legit.served(server);
}

/// Rows: one NACK `Need-Seq: 0..u64::MAX` in a session whose replies were
/// never ACKed, and the same NACK without Session-ID. Without the
/// Session-ID nothing is resent; from another address with it, nothing
/// reaches that address; from the session's own path, at most what is held.
#[test]
fn full_range_nack_resends_only_when_it_proves_itself() {
    let listener = listen();
    let server = listener.socket_addr();
    let mut legit = Client::open(server, "legit");
    let mut peer = Client::open(server, "peer");
    // 20 replies the peer never ACKs (held for retransmission).
    for i in 0..20 {
        peer.put(server, &format!("fill {i}"));
    }
    let nack = |seq: u64, sid: Option<&str>| {
        let mut h = vec![
            l("ACORN/1.0 001 NACK"),
            format!("Seq: {seq}"),
            l("Need-Seq: 0..18446744073709551615"),
        ];
        if let Some(s) = sid {
            h.push(format!("Session-ID: {s}"));
        }
        h
    };
    // Without Session-ID, from the session's own socket: no resend.
    let seq = peer.next;
    for k in 0..20 {
        peer.sock.send(server, &nack(seq + k, None), "");
    }
    let blind = peer.sock.recv_for(Duration::from_millis(300));
    assert!(
        !blind.iter().any(|p| p.starts_with("ACORN/1.0 200")),
        "resent for a NACK without Session-ID: {blind:?}"
    );
    // With the Session-ID, from another socket: nothing reaches it.
    let mut other = Sock::new();
    for k in 0..20 {
        other.send(server, &nack(seq + k, Some(&peer.sid)), "");
    }
    let stray = other.recv_for(Duration::from_millis(300));
    assert!(other.got <= 3 * other.sent, "{stray:?}");
    assert!(!stray.iter().any(|p| p.starts_with("ACORN/1.0 200")));
    // From the session's path with its id: at most what is held.
    let mut sid_nack = nack(seq + 20, Some(&peer.sid));
    sid_nack.push(l("TX-ID: n1"));
    peer.sock.send(server, &sid_nack, "");
    let resent = peer.sock.recv_for(Duration::from_millis(500));
    let replies = resent
        .iter()
        .filter(|p| p.starts_with("ACORN/1.0 "))
        .count();
    assert!(replies <= 2 + 2 * 20 + 20, "{replies} PDUs for one NACK");
    legit.served(server);
}

/// Row: a BYE with a victim's Session-ID from another address does not end
/// the victim's session; requests injected with the id are refused.
#[test]
fn bye_with_victims_session_id_from_elsewhere_changes_nothing() {
    let listener = listen();
    let server = listener.socket_addr();
    let mut victim = Client::open(server, "victim");
    victim.served(server);
    let mut attacker = Sock::new();
    for i in 0..20u64 {
        attacker.send(
            server,
            &[
                l("BYE / ACORN/1.0"),
                format!("TX-ID: bye{i}"),
                format!("Seq: {}", 10 + i),
                format!("Session-ID: {}", victim.sid),
                l("Ignore-Seq: *"),
            ],
            "",
        );
        attacker.send(
            server,
            &[
                l("PUT /inject ACORN/1.0"),
                format!("TX-ID: inj{i}"),
                format!("Seq: {}", 10 + i),
                format!("Session-ID: {}", victim.sid),
            ],
            "injected",
        );
    }
    let got = attacker.recv_for(Duration::from_millis(300));
    assert!(attacker.got <= 3 * attacker.sent);
    assert!(
        got.iter().all(|p| p.starts_with("ACORN/1.0 404")),
        "only the unknown-session refusal: {got:?}"
    );
    victim.served(server);
    victim.served(server);
    // Nothing injected was answered 200, and the session never closed.
    assert!(!got.iter().any(|p| p.contains("200 OK")));
    assert!(
        !listener.log().contains("* session 1 closed"),
        "{}",
        listener.log()
    );
}

/// Row: `listen` killed and restarted on the same port mid-session: a PDU
/// with the old Session-ID gets `404 Unknown Session`, never a plain reply.
#[test]
fn restarted_listen_answers_the_old_session_id_404() {
    let first = listen();
    let server = first.socket_addr();
    let mut c = Client::open(server, "before");
    c.served(server);
    drop(first); // killed
    let _second = Listener::start(&[&format!("udp://{server}"), "--exit-after", "60s"]);
    let seq = c.next;
    c.sock.send(
        server,
        &[
            l("PUT /after ACORN/1.0"),
            l("TX-ID: after-1"),
            l("Message-ID: m-after-1"),
            format!("Seq: {seq}"),
            format!("Session-ID: {}", c.sid),
        ],
        "after the restart",
    );
    let got = c.sock.recv_until(|p| p.contains("TX-ID: after-1"));
    let answer = got.iter().find(|p| p.contains("TX-ID: after-1")).unwrap();
    assert!(answer.starts_with("ACORN/1.0 404"), "{answer}");
    assert!(
        !got.iter().any(|p| p.starts_with("ACORN/1.0 200")),
        "{got:?}"
    );
    // A new session with the restarted listener works.
    let mut fresh = Client::open(server, "fresh");
    fresh.served(server);
}
