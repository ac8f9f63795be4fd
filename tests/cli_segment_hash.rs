//! `acorn-cli send --segment-size/--hash/--hmac-key-file` against
//! `acorn-cli listen`, which verifies and reassembles through the engine.
//! Child processes over loopback (port 0), killed on drop, bounded waits.

use base64::Engine as _;
use rand::{RngCore, SeedableRng};
use sha2::Digest;
use std::path::PathBuf;

mod cli_support;
use cli_support::{send, Listener};

/// A scratch directory for this test's files.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("acorn-cli-seg-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A PDU file with a `len`-byte random body; returns (path, SHA-256 b64).
fn big_put(dir: &std::path::Path, len: usize) -> (String, String) {
    let mut body = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(len as u64).fill_bytes(&mut body);
    let mut pdu = b"PUT /blob ACORN/1.0\nTX-ID: big-1\nMessage-ID: big-m\nContent-Type: application/octet-stream\n\n".to_vec();
    pdu.extend_from_slice(&body);
    let p = dir.join("put.pdu");
    std::fs::write(&p, pdu).unwrap();
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&body));
    (p.to_string_lossy().into_owned(), digest)
}

fn key_file(dir: &std::path::Path, name: &str, key: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("{key}\n")).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn a_segmented_signed_payload_arrives_whole_over_udp_and_tcp() {
    let dir = scratch("ok");
    let key = key_file(&dir, "key", "correct horse battery staple");
    let (file, digest) = big_put(&dir, 200_000);
    for transport in ["udp", "tcp"] {
        let l = Listener::start(&[
            &format!("{transport}://127.0.0.1:0"),
            "--hash",
            "sha256",
            "--hmac-key-file",
            &key,
        ]);
        let r = send(
            &[
                l.addr(),
                &file,
                "--segment-size",
                "1000",
                "--hash",
                "sha256",
                "--hmac-key-file",
                &key,
                "--retries",
                "5",
                "--timeout",
                "20s",
                "--check-status",
            ],
            "",
        );
        assert_eq!(r.code, Some(0), "{transport}: {}\n{}", r.stderr, r.stdout);
        // Only the final reply is printed: segment ACKs are consumed.
        assert!(r.stdout.starts_with("ACORN/1.0 200 OK\r\n"), "{}", r.stdout);
        assert!(!r.stdout.contains("000 ACK"), "{}", r.stdout);
        assert!(
            r.stdout
                .contains(&format!("received 200000 bytes, SHA-256 {digest}")),
            "{}",
            r.stdout
        );
        assert!(r.stdout.contains("Content-Hash-SHA256: "), "{}", r.stdout);
        // The log is written as the listener goes: wait for its reply.
        let log = l.wait_log("received 200000 bytes");
        assert!(log.contains("Segment: 200/200"), "{transport}");
        assert!(log.contains("Content-Hash-HMAC-SHA256: "));
        assert!(log.contains("Payload-Hash-SHA256: "));
        assert!(!log.contains("does not match"), "{log}");
        assert!(!log.contains("not checked"), "{log}");
        assert!(!log.contains("correct horse"), "the key was logged");
    }
}

#[test]
fn a_wrong_key_is_refused_400_and_logged() {
    let dir = scratch("bad");
    let mine = key_file(&dir, "mine", "one secret");
    let theirs = key_file(&dir, "theirs", "another secret");
    let (file, _) = big_put(&dir, 20_000);
    let l = Listener::start(&["udp://127.0.0.1:0", "--hmac-key-file", &theirs]);
    let r = send(
        &[
            l.addr(),
            &file,
            "--segment-size",
            "1000",
            "--hmac-key-file",
            &mine,
            "--check-status",
        ],
        "",
    );
    assert_eq!(r.code, Some(4), "{}\n{}", r.stderr, r.stdout);
    assert!(
        r.stdout.contains("ACORN/1.0 400 Content Hash Mismatch\r\n"),
        "{}",
        r.stdout
    );
    l.wait_log("does not match: answered 400");
    // Without segmentation or key: a plain --hash is checked by anyone.
    let r = send(
        &[l.addr(), &file, "--hash", "SHA-512", "--check-status"],
        "",
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stderr, r.stdout);
    assert!(r.stdout.contains("ACORN/1.0 200 OK\r\n"), "{}", r.stdout);
}

#[test]
fn usage_errors() {
    let dir = scratch("usage");
    let (file, _) = big_put(&dir, 3000);
    let empty = key_file(&dir, "empty", "");
    for args in [
        vec!["--hash", "md5"],
        vec!["--segment-size", "0"],
        vec!["--raw", "--hash", "sha256"],
        vec!["--hmac-key-file", empty.as_str()],
        vec!["--hmac-key-file", "/nonexistent/key"],
    ] {
        let mut a = vec!["udp://127.0.0.1:9", file.as_str()];
        a.extend(args.iter().copied());
        let r = send(&a, "");
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
    }
}
