//! SPEC §9 "TCP" against the real `acorn-cli listen` over loopback: a
//! slowloris flood while a new client is served, clients that half-close
//! after their request (every reply over TCP, none over UDP), and the
//! `--udp-recv-buffer` flag. Bounded in count and time; assertions are on
//! replies received and on the counters `listen` prints when it stops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

mod cli_support;
use cli_support::Listener;

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(20);

fn raw_request(tx: &str) -> Vec<u8> {
    format!(
        "PUT /m ACORN/1.0\r\nTX-ID: {tx}\r\nMessage-ID: {tx}-m\r\nContent-Length: {}\r\n\r\n{tx}",
        tx.len()
    )
    .into_bytes()
}

fn tcp_addr(l: &Listener) -> SocketAddr {
    let a = l.addrs.iter().find(|a| a.starts_with("tcp://")).unwrap();
    a["tcp://".len()..].parse().unwrap()
}

/// Stop the listener with SIGTERM and return its stderr (with the `tcp:`
/// counters line).
fn stop(mut l: Listener) -> String {
    let pid = l.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert!(l.wait_exit(WAIT).success(), "{}", l.stderr());
    l.stderr()
}

/// The number after `name ` in the `tcp:` line.
fn counter(stderr: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("tcp: "))
        .unwrap_or_else(|| panic!("no tcp: line in {stderr}"));
    let at = line
        .find(name)
        .unwrap_or_else(|| panic!("{name} not in {line}"));
    line[at + name.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Send one request over a new connection and read until its echo comes
/// back (`None` if the connection was refused or closed first).
fn one_request(to: SocketAddr, tx: &str) -> Option<Vec<u8>> {
    let mut s = TcpStream::connect(to).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(&raw_request(tx)).ok()?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(tx.as_bytes()) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    Some(got)
}

#[test]
fn listen_survives_a_slowloris_flood_and_serves_a_new_client() {
    let l = Listener::start(&[
        "--tcp",
        "127.0.0.1:0",
        "--max-tcp-connections",
        "32",
        "--max-tcp-connections-per-ip",
        "32",
        "--tcp-header-timeout",
        "300ms",
    ]);
    let to = tcp_addr(&l);
    let stop_flag = Arc::new(AtomicBool::new(false));
    // 48 threads (more than the table holds), each trickling a head one
    // byte per 50 ms and reconnecting when closed, at most 40 times.
    let attackers: Vec<_> = (0..48)
        .map(|_| {
            let stop_flag = stop_flag.clone();
            thread::spawn(move || {
                for _ in 0..40 {
                    if stop_flag.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(mut s) = TcpStream::connect(to) else {
                        continue;
                    };
                    for b in b"PUT /slow ACORN/1.0\r\nX-Slow: ".iter().cycle().take(400) {
                        if stop_flag.load(Ordering::Relaxed) || s.write_all(&[*b]).is_err() {
                            break;
                        }
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    // A new client is served while the flood goes on (it may be refused
    // while the table is full, and then tries again).
    thread::sleep(Duration::from_millis(500));
    let end = Instant::now() + WAIT;
    let mut served = 0;
    while served < 3 {
        assert!(
            Instant::now() < end,
            "no new client served during the flood"
        );
        if one_request(to, &format!("legit-{served}")).is_some() {
            served += 1;
        } else {
            thread::sleep(Duration::from_millis(20));
        }
    }
    stop_flag.store(true, Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    let stderr = stop(l);
    assert!(counter(&stderr, "header timeouts") >= 32, "{stderr}");
    assert!(counter(&stderr, "accepted") >= 35, "{stderr}");
}

#[test]
fn listen_answers_half_closing_clients_over_tcp_never_udp() {
    let l = Listener::start(&["--udp", "127.0.0.1:0", "--tcp", "127.0.0.1:0"]);
    let to = tcp_addr(&l);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(to).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                let me = s.local_addr().unwrap();
                let tx = format!("half-{i}");
                s.write_all(&raw_request(&tx)).unwrap();
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut all = Vec::new();
                s.read_to_end(&mut all)
                    .expect("the listener closes after the reply");
                let text = String::from_utf8_lossy(&all).into_owned();
                assert!(
                    text.contains(" 200 ") && text.ends_with(&tx),
                    "{tx}: the reply came over TCP: {text:?}"
                );
                me
            })
        })
        .collect();
    let addrs: Vec<SocketAddr> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    // Past the first reply retransmission (500 ms), which the old driver
    // sent over UDP once the connection was gone.
    thread::sleep(Duration::from_millis(1200));
    let log = l.log();
    for a in &addrs {
        assert!(
            !log.contains(&format!("> udp://{a}")),
            "sent over UDP to TCP client {a}"
        );
    }
    assert!(!log.contains("> udp://"), "nothing went out over UDP");
    let stderr = stop(l);
    assert_eq!(counter(&stderr, "half-closed"), 50, "{stderr}");
}

#[test]
fn listen_sets_the_udp_receive_buffer() {
    // Linux reports twice what it grants, capped by net.core.rmem_max.
    let max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(usize::MAX);
    let reported = |args: &[&str]| -> usize {
        let l = Listener::start(args);
        let stderr = l.wait_stderr("udp receive buffer: ");
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("udp receive buffer: "))
            .unwrap()
            .to_owned();
        line.split(' ').next().unwrap().parse().unwrap()
    };
    let asked = reported(&["udp://127.0.0.1:0", "--udp-recv-buffer", "65536"]);
    let default = reported(&["udp://127.0.0.1:0"]);
    if cfg!(target_os = "linux") {
        assert_eq!(asked, 2 * 65536usize.min(max));
        assert_eq!(default, 2 * (4usize << 20).min(max), "4 MiB by default");
    } else {
        assert!(asked >= 65536 && default >= asked);
    }
}
