//! The examples run and do what their docs say: `parse` on the shipped
//! corpus file, `client` standalone (its in-process echo server), and
//! `client` over TCP against the `server` example's own process.
//!
//! **Decision**: the built example binaries are run directly (from
//! `target/<profile>/examples/`, beside this test's own `deps/`), after one
//! `cargo build --examples` in the same profile: a no-op under a plain
//! `cargo test` (which has just built them), and what keeps
//! `cargo test --test examples` from running stale or missing binaries.
//! Each run is bounded by a deadline and killed past it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long one example run may take (the client's calls answer in
/// milliseconds on loopback; this only bounds a hang).
const DEADLINE: Duration = Duration::from_secs(60);

/// `target/<profile>/examples/<name>`, brought up to date first.
fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    let exe = std::env::current_exe().expect("test path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let path = profile_dir.join("examples").join(name);
    BUILD.call_once(|| {
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--offline", "--examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let st = cmd.status().expect("cargo build runs");
        assert!(st.success(), "cargo build --examples failed");
    });
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Wait for `child` until [`DEADLINE`], killing it past that.
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "example ran past {DEADLINE:?}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(name: &str, args: &[&str]) -> String {
    let child = Command::new(example(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn example");
    let out = finish(child);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The client's lines for a full run: the request, three ordered replies, BYE.
fn assert_client_transcript(out: &str) {
    assert!(out.contains("request: 200 hello\n"), "{out}");
    assert!(out.contains("session open (Ordered)\n"), "{out}");
    let replies: Vec<&str> = out.lines().filter(|l| l.starts_with("reply ")).collect();
    assert_eq!(
        replies,
        [
            "reply 1: 200 message 1",
            "reply 2: 200 message 2",
            "reply 3: 200 message 3"
        ],
        "{out}"
    );
    assert!(out.ends_with("session closed\n"), "{out}");
}

#[test]
fn parse_example_reads_the_shipped_corpus_file() {
    let out = run("parse", &["corpus/pdu/accept-spec-example.acorn"]);
    assert!(
        out.starts_with("request REG /path/to/whatever (ACORN/1.0)\n"),
        "{out}"
    );
    assert!(out.contains("  Message-ID: my-unique-id\n"), "{out}");
    assert!(out.contains("TX-ID (typed): tx-1\n"), "{out}");
    assert!(out.contains("body: 2 bytes\n"), "{out}");
    assert!(
        out.contains("Content-Length: 2\r\n\r\n{}"),
        "canonical form: {out}"
    );
}

#[test]
fn parse_example_rejects_a_malformed_pdu() {
    let dir = std::env::temp_dir().join(format!("acorn-example-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.acorn");
    std::fs::write(&bad, b"REG / ACORN/1.0\nSeq: 1\n\n").unwrap(); // bare LF: strict parse refuses
    let out = Command::new(example("parse"))
        .arg(&bad)
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid PDU"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn client_example_runs_standalone() {
    let out = run("client", &[]);
    assert!(
        out.starts_with("started an echo server on udp://127.0.0.1:"),
        "{out}"
    );
    assert_client_transcript(&out);
}

#[test]
fn client_example_talks_tcp_to_the_server_example() {
    let mut server = Command::new(example("server"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn server");
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").expect("utf-8");
    // "listening on udp://A and tcp://B (Ctrl-C stops)"
    let tcp = first
        .split_whitespace()
        .find(|w| w.starts_with("tcp://"))
        .unwrap_or_else(|| panic!("no tcp address in {first:?}"))
        .to_owned();
    let out = run("client", &[&tcp]);
    assert_client_transcript(&out);
    let _ = server.kill();
    let _ = server.wait();
    // The server printed one line per request: PUT /hello, the REG, three PUT /chat, the BYE.
    let seen: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(
        seen.iter().filter(|l| l.starts_with("PUT /chat ")).count(),
        3,
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|l| l.starts_with("PUT /hello ")),
        "{seen:?}"
    );
}
