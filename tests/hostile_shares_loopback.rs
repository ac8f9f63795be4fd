//! Issue 13's rows about the server's shares, reproduced over loopback
//! against `acorn-cli listen` (port 0): floods from distinct `127.x.y.z`
//! sources (each its own /24 where the row says "many addresses"), bounded
//! in count, every wait bounded. The honest client is a plain UDP socket on
//! 127.0.0.1 speaking the protocol by hand, so what it receives is exactly
//! what `listen` sent.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

mod cli_support;
mod shares_support;
use cli_support::Listener;
use shares_support::get;

/// A socket on `ip`, port 0, with a short read timeout.
fn socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}: {e}"));
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s
}

fn pdu(lines: &[String], body: &str) -> Vec<u8> {
    format!("{}\r\n\r\n{body}", lines.join("\r\n")).into_bytes()
}

/// A received datagram: its status code (0 for ACK; `None` for a request)
/// and its header lines.
struct Got {
    status: Option<u16>,
    text: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.text
            .split("\r\n")
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }

    fn body(&self) -> &str {
        self.text.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }
}

/// Read until a datagram with `TX-ID: tx` and a status in `want` arrives
/// (others are skipped), within 5 s.
fn wait_for(s: &UdpSocket, tx: &str, want: &[u16]) -> Got {
    wait_within(s, tx, want, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no answer {want:?} for {tx} within 5 s"))
}

fn wait_within(s: &UdpSocket, tx: &str, want: &[u16], limit: Duration) -> Option<Got> {
    let end = Instant::now() + limit;
    let mut buf = vec![0u8; 65_536];
    while Instant::now() < end {
        let Ok(n) = s.recv(&mut buf) else { continue };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        let status = text
            .strip_prefix("ACORN/1.0 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok());
        let g = Got { status, text };
        if g.header("TX-ID") == Some(tx) && g.status.is_some_and(|c| want.contains(&c)) {
            return Some(g);
        }
    }
    None
}

/// Send `data` and wait for an answer as a real client does: sent again
/// after 1, 2, 4 and 8 s (a flood may overrun the listener's socket
/// buffer, or keep a debug build busy for a while), five tries at most.
fn ask(s: &UdpSocket, to: SocketAddr, data: &[u8], tx: &str, want: &[u16]) -> Got {
    let mut wait = Duration::from_secs(1);
    for _ in 0..5 {
        s.send_to(data, to).unwrap();
        if let Some(g) = wait_within(s, tx, want, wait) {
            return g;
        }
        wait *= 2;
    }
    panic!("no answer {want:?} for {tx} in five tries");
}

/// Everything already waiting on `s` (bounded), as statuses.
fn drain(s: &UdpSocket) -> Vec<u16> {
    let mut buf = vec![0u8; 65_536];
    let mut out = Vec::new();
    s.set_nonblocking(true).unwrap();
    while let Ok(n) = s.recv(&mut buf) {
        if let Some(c) = std::str::from_utf8(&buf[..n.min(13)])
            .ok()
            .and_then(|t| t.strip_prefix("ACORN/1.0 "))
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
        {
            out.push(c);
        }
        if out.len() > 100_000 {
            break;
        }
    }
    s.set_nonblocking(false).unwrap();
    out
}

/// Everything still on its way: drains until nothing has come for 500 ms
/// (bounded at 10 s), so a listener slowed by a loaded machine still has
/// its late answers counted.
fn drain_until_quiet(s: &UdpSocket) -> Vec<u16> {
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    let mut quiet = Duration::ZERO;
    while quiet < Duration::from_millis(500) && start.elapsed() < Duration::from_secs(10) {
        let got = drain(s);
        if got.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
            quiet += Duration::from_millis(100);
        } else {
            quiet = Duration::ZERO;
            out.extend(got);
        }
    }
    out
}

/// The last lines of a log, for a failure message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn reg(tx: &str) -> Vec<String> {
    vec![
        "REG /s ACORN/1.0".into(),
        format!("TX-ID: {tx}"),
        "Seq: 0".into(),
        "Request-Session-Mode: ordered".into(),
    ]
}

/// Row "6,000 fresh transactions from anyone between a request and its
/// retransmission": the honest request's retransmission gets the very
/// reply it got first (same `Message-ID`: answered from the cache, not
/// processed twice), and the flood's source gets 503 once its share is
/// used.
#[test]
fn six_thousand_transactions_between_a_request_and_its_retransmission() {
    let l = Listener::start(&["udp://127.0.0.1:0"]);
    let to: SocketAddr = l.socket_addr();
    let me = socket("127.0.0.1");
    me.send_to(&pdu(&get("legit", "1/5"), ""), to).unwrap();
    let first = wait_for(&me, "legit", &[200]);
    let first_id = first.header("Message-ID").unwrap().to_owned();
    // (We "lose" it: no ACK.) The flood, in paced batches so the
    // listener's socket buffer does not drop it.
    let flood = socket("127.2.0.1");
    let mut statuses = Vec::new();
    for batch in 0..60 {
        for i in 0..100 {
            let tx = format!("f{}", batch * 100 + i);
            flood.send_to(&pdu(&get(&tx, "1/5"), ""), to).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        statuses.extend(drain(&flood));
    }
    statuses.extend(drain_until_quiet(&flood));
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert!(
        busy > 0,
        "the flood's source was refused once its share was used"
    );
    // The retransmission.
    let again = ask(&me, to, &pdu(&get("legit", "2/5"), ""), "legit", &[200]);
    assert_eq!(
        again.header("Message-ID"),
        Some(first_id.as_str()),
        "from the cache"
    );
    assert_eq!(again.body(), first.body());
}

/// Row "10,000 REGs never ACKed from many addresses": from 100 sources in
/// 100 /24s; meanwhile an honest client opens a session, confirms it and
/// is answered in it.
#[test]
fn ten_thousand_unacknowledged_regs_do_not_lock_out_a_session() {
    let l = Listener::start(&["udp://127.0.0.1:0"]);
    let to: SocketAddr = l.socket_addr();
    let sources: Vec<UdpSocket> = (0..100).map(|n| socket(&format!("127.3.{n}.1"))).collect();
    for round in 0..100 {
        for (n, s) in sources.iter().enumerate() {
            s.send_to(&pdu(&reg(&format!("r{n}-{round}")), ""), to)
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
        for s in &sources {
            drain(s);
        }
    }
    let me = socket("127.0.0.1");
    let ok = ask(&me, to, &pdu(&reg("honest"), ""), "honest", &[200, 503]);
    assert_eq!(
        ok.status,
        Some(200),
        "the honest REG is accepted; listen's log ends:\n{}",
        tail(&l.log())
    );
    let sid = ok.header("Session-ID").unwrap().to_owned();
    let mid = ok.header("Message-ID").unwrap().to_owned();
    let ack = [
        "ACORN/1.0 000 ACK".to_owned(),
        "TX-ID: honest".into(),
        format!("Ack-Message-ID: {mid}"),
        "Seq: 1".into(),
        format!("Session-ID: {sid}"),
    ];
    me.send_to(&pdu(&ack, ""), to).unwrap();
    let put = [
        "PUT /x ACORN/1.0".to_owned(),
        "TX-ID: p1".into(),
        "Seq: 2".into(),
        format!("Session-ID: {sid}"),
        "Content-Length: 5".into(),
    ];
    let answer = ask(&me, to, &pdu(&put, "hello"), "p1", &[200]);
    assert_eq!(answer.header("Session-ID"), Some(sid.as_str()));
}

/// Row "64 datagrams of 95 B starting segmented transfers": from one
/// source; another sender's segmented transfer still succeeds.
#[test]
fn sixty_four_first_segments_do_not_block_another_transfer() {
    let l = Listener::start(&["udp://127.0.0.1:0"]);
    let to: SocketAddr = l.socket_addr();
    let attacker = socket("127.4.0.1");
    let seg = |tx: &str, i: u32, n: u32, body: &str| {
        pdu(
            &[
                "PUT /big ACORN/1.0".into(),
                format!("TX-ID: {tx}"),
                format!("Message-ID: {tx}-{i}"),
                format!("Segment: {i}/{n}"),
                format!("Content-Length: {}", body.len()),
            ],
            body,
        )
    };
    for i in 0..64 {
        let d = seg(&format!("a{i}"), 1, 1000, "x");
        assert!(d.len() <= 95);
        attacker.send_to(&d, to).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let st = drain(&attacker);
    assert!(st.contains(&503), "past its share the attacker is refused");
    let me = socket("127.0.0.1");
    // All three segments each try (any may be lost to the flood's
    // backlog); duplicates are acknowledged and not held twice.
    let r = (0..5)
        .find_map(|_| {
            for i in 1..=3 {
                me.send_to(&seg("legit", i, 3, "0123456789"), to).unwrap();
            }
            wait_within(&me, "legit", &[200, 503], Duration::from_secs(1))
        })
        .expect("an answer to the honest transfer in five tries");
    assert_eq!(r.status, Some(200), "the honest transfer is reassembled");
}
