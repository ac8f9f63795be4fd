//! `acorn-cli load` and `acorn-cli relay` as child processes over loopback
//! sockets: load against `listen` directly and through a lossy relay, the
//! load generator's checks against peers that misbehave on purpose, and
//! the relay's routing, duplication and client eviction. Every child is
//! killed when its guard drops; every wait is bounded.

use acorn::engine::Config;
use acorn::runtime::PeerBuilder;
use acorn::wire::{parse_datagram, ParseOptions, PduBuilder};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

mod cli_support;
use cli_support::{run, BIN};

/// How long a `load` run may take before the test gives up.
const LOAD_LIMIT: Duration = Duration::from_secs(30);

/// A long-running child (`listen` or `relay`), killed on drop. Its stderr
/// lines are collected by a thread; the first `listening on` address is
/// handed over.
struct Daemon {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(args: &[&str]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn acorn-cli");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = lines.clone();
        thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.to_owned());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child,
            addr: String::new(),
            stderr: lines,
        };
        d.addr = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no `listening on` line from {args:?}: {:?}", d.lines()));
        d
    }

    fn lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// `HOST:PORT` of the bound address.
    fn socket_addr(&self) -> SocketAddr {
        self.addr.trim_start_matches("udp://").parse().unwrap()
    }

    /// Wait (bounded) for a JSON report on stderr that satisfies `ok`.
    fn wait_report(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.lines();
            let last = lines
                .iter()
                .rev()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|v| v.get("report").is_some());
            if let Some(v) = last.filter(|v| ok(v)) {
                return v;
            }
            assert!(
                Instant::now() < end,
                "no relay report with {what}: {lines:#?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn listen() -> Daemon {
    Daemon::start(&["listen", "udp://127.0.0.1:0", "--exit-after", "60s"])
}

fn relay(to: &str, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--to",
        to,
        "--report-every",
        "50ms",
        "--json",
        "--exit-after",
        "60s",
    ];
    args.extend_from_slice(extra);
    Daemon::start(&args)
}

/// A finished `acorn-cli load --json`: its exit code and summary.
struct Load {
    code: Option<i32>,
    summary: Value,
    stderr: String,
}

/// Run `acorn-cli load TARGET ARGS --json`, bounded in time.
fn load(target: &str, args: &[&str]) -> Load {
    let mut all = vec!["load", target];
    all.extend_from_slice(args);
    all.push("--json");
    let r = run(&all, "", LOAD_LIMIT);
    let summary = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "summary is not JSON ({e}): {:?}; stderr {}",
            r.stdout, r.stderr
        )
    });
    Load {
        code: r.code,
        summary,
        stderr: r.stderr,
    }
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

#[test]
fn lossless_load_against_listen_delivers_everything() {
    let l = listen();
    let r = load(
        &l.addr,
        &["--sessions", "4", "--messages", "100", "--window", "4"],
    );
    let s = &r.summary;
    assert_eq!(r.code, Some(0), "{s}\n{}", r.stderr);
    assert_eq!(
        (n(s, "opened"), n(s, "sent"), n(s, "received")),
        (4, 400, 400)
    );
    for key in [
        "lost",
        "duplicated",
        "out_of_order",
        "mismatched",
        "timeouts",
    ] {
        assert_eq!(n(s, key), 0, "{key}: {s}");
    }
    assert_eq!(s["mode"], "ordered");
    assert!(s["wire_check"].as_bool().unwrap());
    assert!(s["throughput"]["msg_per_s"].as_f64().unwrap() > 0.0);
    let lat = &s["latency_ms"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().unwrap(),
        lat["p99"].as_f64().unwrap(),
        lat["max"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lat}");
    // Each request and each reply ACK at least: the engines sent them.
    assert!(n(&s["engine"], "transmits") >= 800, "{s}");

    // Unordered sessions and plain transactions, at a set rate.
    let r = load(
        &l.addr,
        &["--sessions", "2", "--messages", "20", "--mode", "unordered"],
    );
    assert_eq!(r.code, Some(0), "{}", r.summary);
    assert_eq!(r.summary["mode"], "unordered");
    assert_eq!(n(&r.summary, "received"), 40);
    let start = Instant::now();
    let r = load(
        &l.addr,
        &[
            "--transactions",
            "--sessions",
            "2",
            "--messages",
            "10",
            "--rate",
            "100",
            "--payload",
            "300",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.summary);
    assert_eq!(r.summary["kind"], "transactions");
    assert_eq!(n(&r.summary, "received"), 20);
    // 20 messages at 100/s take at least 190 ms.
    assert!(start.elapsed() >= Duration::from_millis(190));
    assert!(
        r.summary["elapsed_s"].as_f64().unwrap() >= 0.19,
        "{}",
        r.summary
    );
}

#[test]
fn load_through_a_lossy_relay_loses_and_duplicates_nothing() {
    let l = listen();
    let to = l.socket_addr().to_string();
    let relay = relay(
        &to,
        &[
            "--loss",
            "0.05",
            "--reorder",
            "0.05",
            "--duplicate",
            "0.02",
            "--seed",
            "7",
        ],
    );
    let r = load(
        &relay.addr,
        &["--sessions", "4", "--messages", "200", "--window", "8"],
    );
    let s = &r.summary;
    assert_eq!(r.code, Some(0), "{s}\n{}", r.stderr);
    assert_eq!((n(s, "sent"), n(s, "received")), (800, 800), "{s}");
    for key in ["lost", "duplicated", "out_of_order", "mismatched"] {
        assert_eq!(n(s, key), 0, "{key}: {s}");
    }
    // The losses were repaired by retransmission.
    assert!(n(s, "retransmitted") > 0, "{s}");
    // The relay did drop, duplicate and reorder datagrams, both ways.
    let report = relay.wait_report("drops both ways", |v| {
        v["client_to_server"]["dropped"].as_u64() > Some(0)
            && v["server_to_client"]["dropped"].as_u64() > Some(0)
    });
    let up = &report["client_to_server"];
    let down = &report["server_to_client"];
    assert!(n(up, "duplicated") + n(down, "duplicated") > 0, "{report}");
    assert!(n(up, "reordered") + n(down, "reordered") > 0, "{report}");
    assert_eq!(n(&report["clients"], "seen"), 4, "{report}");
    assert_eq!(n(&report, "seed"), 7);
    // About 5 % of what the relay received was dropped.
    let received = n(up, "received") + n(down, "received");
    let dropped = n(up, "dropped") + n(down, "dropped");
    assert!(received > 1600, "{report}");
    let rate = dropped as f64 / received as f64;
    assert!((0.02..0.09).contains(&rate), "drop rate {rate}: {report}");
}

/// A peer over the library runtime that answers each pair of requests in
/// reverse order: the load generator must see the disorder in the Seqs
/// of the replies and exit with 5.
#[test]
fn load_reports_replies_out_of_order() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let peer = rt.block_on(async {
        let (peer, mut incoming, _events) = PeerBuilder::new(Config::default())
            .udp("127.0.0.1:0".parse().unwrap())
            .start()
            .await
            .unwrap();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let Some(second) = incoming.recv().await else {
                    return;
                };
                for req in [second, first] {
                    let mut ok = PduBuilder::reply(200, "OK").unwrap();
                    ok.body(req.pdu.body_bytes());
                    let _ = req.respond(ok);
                }
            }
        });
        peer
    });
    let target = format!("udp://{}", peer.udp_addr().unwrap());
    let r = load(
        &target,
        &["--sessions", "1", "--messages", "10", "--window", "2"],
    );
    let s = &r.summary;
    assert_eq!(r.code, Some(5), "{s}\n{}", r.stderr);
    assert_eq!((n(s, "received"), n(s, "lost")), (10, 0), "{s}");
    // Every second message was answered before the one sent before it.
    assert_eq!(n(s, "out_of_order"), 5, "{s}");
    rt.block_on(peer.shutdown()).unwrap();
}

/// A raw peer that answers every request twice, under two Message-IDs, as
/// if it had delivered it twice: the client engine keeps the first reply
/// and re-ACKs the second, so only the wire check can see it.
#[test]
fn load_reports_messages_answered_twice() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let target = format!("udp://{}", sock.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    let server = thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        let end = Instant::now() + LOAD_LIMIT;
        while !done.load(Ordering::Relaxed) && Instant::now() < end {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(req) = parse_datagram(&buf[..len], &ParseOptions::default()) else {
                continue;
            };
            let (Some(_), Some(tx), Some(mid)) =
                (req.method(), req.header("TX-ID"), req.header("Message-ID"))
            else {
                continue; // ACKs
            };
            for copy in 1..=2 {
                let mut ok = PduBuilder::reply(200, "OK").unwrap();
                ok.header("TX-ID", tx.to_vec()).unwrap();
                ok.header(
                    "Message-ID",
                    format!("r{copy}-{}", String::from_utf8_lossy(tx)),
                )
                .unwrap();
                ok.header("Ack-Message-ID", mid.to_vec()).unwrap();
                ok.body(req.body().to_vec());
                let _ = sock.send_to(&ok.to_bytes(), from);
            }
        }
    });
    // --hold keeps the client up a moment after its last reply, so the
    // second answer to the last message is seen even if the server thread
    // is descheduled between its two sends.
    let args = [
        "--transactions",
        "--messages",
        "5",
        "--timeout",
        "5s",
        "--hold",
        "500ms",
    ];
    let r = load(&target, &args);
    // Without the wire check the second answers go unnoticed.
    let unchecked = load(&target, &[&args[..], &["--no-wire-check"]].concat());
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let s = &r.summary;
    assert_eq!(r.code, Some(5), "{s}\n{}", r.stderr);
    assert_eq!((n(s, "received"), n(s, "lost")), (5, 0), "{s}");
    assert_eq!(n(s, "duplicated"), 5, "{s}");
    let s = &unchecked.summary;
    assert_eq!(unchecked.code, Some(0), "{s}");
    assert_eq!((n(s, "received"), n(s, "duplicated")), (5, 0), "{s}");
    // The client engines saw the second answers as duplicates and dropped them.
    assert!(n(&s["engine"], "duplicates_dropped") >= 5, "{s}");
}

#[test]
fn load_against_a_silent_peer_exits_3() {
    // Bound, never read: the REGs go nowhere.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("udp://{}", sock.local_addr().unwrap());
    let r = load(&target, &["--messages", "1", "--timeout", "700ms"]);
    let s = &r.summary;
    assert_eq!(r.code, Some(3), "{s}\n{}", r.stderr);
    assert_eq!(
        (n(s, "opened"), n(s, "open_failed"), n(s, "sent")),
        (0, 1, 0)
    );
    assert!(
        s["open_errors"][0].as_str().unwrap().contains("no answer"),
        "{s}"
    );
    let r = load(
        &target,
        &["--transactions", "--messages", "2", "--timeout", "700ms"],
    );
    let s = &r.summary;
    assert_eq!(r.code, Some(3), "{s}");
    assert_eq!(
        (n(s, "sent"), n(s, "lost"), n(s, "timeouts")),
        (2, 2, 2),
        "{s}"
    );
    drop(sock);
}

/// The relay routes each client's datagrams through its own upstream
/// socket, so replies find their way back; at --duplicate 100% every
/// datagram arrives twice, both ways.
#[test]
fn relay_routes_replies_back_and_duplicates_on_request() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let relay = relay(
        &server.local_addr().unwrap().to_string(),
        &["--duplicate", "100%", "--delay", "1ms", "--seed", "1"],
    );
    let clients: Vec<UdpSocket> = (0..2)
        .map(|_| {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        })
        .collect();
    for (i, c) in clients.iter().enumerate() {
        c.send_to(format!("hello {i}").as_bytes(), relay.socket_addr())
            .unwrap();
    }
    // Four datagrams arrive (two per client), from two distinct sources;
    // answer each.
    let mut buf = [0u8; 64];
    let mut sources = std::collections::HashMap::new();
    for _ in 0..4 {
        let (len, from) = server.recv_from(&mut buf).expect("a relayed datagram");
        let text = String::from_utf8_lossy(&buf[..len]).into_owned();
        *sources.entry((from, text.clone())).or_insert(0) += 1;
        server
            .send_to(format!("re: {text}").as_bytes(), from)
            .unwrap();
    }
    assert_eq!(sources.len(), 2, "{sources:?}");
    assert!(sources.values().all(|&k| k == 2), "{sources:?}");
    let upstream: std::collections::HashSet<_> = sources.keys().map(|(a, _)| *a).collect();
    assert_eq!(upstream.len(), 2, "one upstream socket per client");
    // Each client gets its own replies back: 2 replies, each duplicated.
    for (i, c) in clients.iter().enumerate() {
        for _ in 0..4 {
            let (len, from) = c.recv_from(&mut buf).expect("a reply through the relay");
            assert_eq!(from, relay.socket_addr());
            assert_eq!(&buf[..len], format!("re: hello {i}").as_bytes());
        }
    }
    let report = relay.wait_report("all 12 datagrams", |v| {
        v["server_to_client"]["relayed"].as_u64() == Some(8)
    });
    let up = &report["client_to_server"];
    assert_eq!(
        (
            n(up, "received"),
            n(up, "relayed"),
            n(up, "duplicated"),
            n(up, "dropped")
        ),
        (2, 4, 2, 0),
        "{report}"
    );
    let down = &report["server_to_client"];
    assert_eq!(
        (
            n(down, "received"),
            n(down, "relayed"),
            n(down, "duplicated")
        ),
        (4, 8, 4),
        "{report}"
    );
    assert_eq!(n(&report["clients"], "active"), 2, "{report}");
}

#[test]
fn relay_drops_everything_at_full_loss_and_evicts_the_oldest_client() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let relay = relay(
        &server.local_addr().unwrap().to_string(),
        &["--loss", "1", "--max-clients", "2"],
    );
    let clients: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for c in &clients {
        for _ in 0..3 {
            c.send_to(b"lost", relay.socket_addr()).unwrap();
        }
        // One client at a time, so "oldest" is well defined.
        thread::sleep(Duration::from_millis(20));
    }
    let report = relay.wait_report("9 datagrams dropped", |v| {
        v["client_to_server"]["dropped"].as_u64() == Some(9)
    });
    assert_eq!(n(&report["client_to_server"], "relayed"), 0, "{report}");
    let clients_seen = &report["clients"];
    assert_eq!(
        (
            n(clients_seen, "seen"),
            n(clients_seen, "active"),
            n(clients_seen, "evicted")
        ),
        (3, 2, 1),
        "{report}"
    );
    // Nothing reached the server.
    server
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(server.recv_from(&mut [0u8; 16]).is_err());
}

#[test]
fn relay_refuses_bad_rates_and_tcp() {
    for args in [
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--loss",
            "1.5",
        ][..],
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--reorder",
            "x",
        ],
        &["--listen", "tcp://127.0.0.1:0", "--to", "127.0.0.1:9"],
    ] {
        let out = Command::new(BIN)
            .arg("relay")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run acorn-cli relay");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
