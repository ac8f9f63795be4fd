//! What the CLI integration tests share: `acorn-cli listen` and
//! `acorn-cli send` as child processes over loopback (port 0), each killed
//! when its guard drops, every wait bounded.
//!
//! Each test binary uses its own part of this, so the rest is unused there.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_acorn-cli");

/// How long any one child process may run before the test gives up.
pub const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// A running `acorn-cli listen`, killed on drop. Its stdout (the log) is
/// collected by a thread so the pipe never fills.
pub struct Listener {
    pub child: Child,
    /// The bound addresses, from the `listening on` lines, in order.
    pub addrs: Vec<String>,
    log: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Listener {
    pub fn start(args: &[&str]) -> Listener {
        let expected = if args.contains(&"--udp") && args.contains(&"--tcp") {
            2
        } else {
            1
        };
        let mut child = Command::new(BIN)
            .arg("listen")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn acorn-cli listen");
        let log = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = log.clone();
        thread::spawn(move || {
            // Bytes, not lines of UTF-8: a log line the test did not expect
            // must not stop the collection.
            let mut r = BufReader::new(stdout);
            let mut buf = Vec::new();
            while r.read_until(b'\n', &mut buf).is_ok_and(|n| n > 0) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf));
                buf.clear();
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(err);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(a) = line.trim_end().strip_prefix("listening on ") {
                    let _ = tx.send(a.to_owned());
                }
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut l = Listener {
            child,
            addrs: Vec::new(),
            log,
            stderr,
        };
        for _ in 0..expected {
            let a = rx
                .recv_timeout(Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("no `listening on` line: {}", l.stderr()));
            l.addrs.push(a);
        }
        l
    }

    /// The first bound address (`udp://127.0.0.1:PORT` or `tcp://...`).
    pub fn addr(&self) -> &str {
        &self.addrs[0]
    }

    pub fn socket_addr(&self) -> SocketAddr {
        let a = self.addr();
        a[a.find("://").unwrap() + 3..].parse().unwrap()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Wait (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        wait_for("log", needle, || self.log())
    }

    /// Wait (bounded) until stderr contains `needle`.
    pub fn wait_stderr(&self, needle: &str) -> String {
        wait_for("stderr", needle, || self.stderr())
    }

    /// Wait (bounded) for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < end, "listener did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Poll `text` until it contains `needle` (at most 10 s); returns it.
fn wait_for(what: &str, needle: &str, text: impl Fn() -> String) -> String {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let t = text();
        if t.contains(needle) {
            return t;
        }
        assert!(Instant::now() < end, "{what} never showed {needle:?}:\n{t}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// A child process killed (and reaped) on drop, so a failed assertion
/// never leaves one behind.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a finished `acorn-cli` run left.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Run `acorn-cli send ARGS` with `input` on stdin, within [`CHILD_LIMIT`].
pub fn send(args: &[&str], input: &str) -> Finished {
    let mut all = vec!["send"];
    all.extend_from_slice(args);
    run(&all, input, CHILD_LIMIT)
}

/// Run `acorn-cli ARGS` with `input` on stdin to its end, within `limit`.
pub fn run(args: &[&str], input: &str, limit: Duration) -> Finished {
    let start = Instant::now();
    let mut child = Guard(
        Command::new(BIN)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn acorn-cli"),
    );
    let mut stdin = child.0.stdin.take().unwrap();
    let mut out = child.0.stdout.take().unwrap();
    let mut err = child.0.stderr.take().unwrap();
    // A child that ends early closes its stdin: the write then fails, and
    // its exit code and stderr (asserted by the caller) say why.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    // Bytes, then text: a reply body need not be UTF-8.
    let out_t = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    });
    let err_t = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < limit,
            "acorn-cli {args:?} did not finish within {limit:?}"
        );
        thread::sleep(Duration::from_millis(10));
    };
    Finished {
        code: status.code(),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        elapsed: start.elapsed(),
    }
}
