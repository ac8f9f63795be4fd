//! SPEC §10 at the wire layer: what the encoder emits (the common subset a
//! basic peer reads) and what the parser accepts from such a peer.

use acorn::wire::{parse_datagram, parse_head, Attempt, ErrorKind, ParseOptions, PduBuilder};
use std::path::Path;
use std::process::Command;

fn strict() -> ParseOptions {
    ParseOptions::strict()
}

/// The start line and header lines of an encoded PDU.
fn head_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    head.split("\r\n").map(str::to_owned).collect()
}

/// Whether a start line's target is in the common subset: `[A-Za-z0-9/]+`
/// unquoted, or quoted.
fn target_is_common(start: &str) -> bool {
    let Some(rest) = start.split_once(' ').map(|(_, r)| r) else {
        return false;
    };
    let Some((target, _version)) = rest.rsplit_once(' ') else {
        return false;
    };
    target.starts_with('"') && target.ends_with('"') && target.len() >= 2
        || !target.is_empty()
            && target
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/')
}

#[test]
fn targets_outside_letters_digits_slash_are_quoted() {
    for (target, wire) in [
        ("/index.html", "\"/index.html\""),
        ("/a-b_c", "\"/a-b_c\""),
        ("/a?b=1&c=2", "\"/a?b=1&c=2\""),
        ("*", "\"*\""),
        ("/ünïcødé/✓", "\"/ünïcødé/✓\""),
        ("/a\"b\\c", "\"/a\\\"b\\\\c\""),
        ("", "\"\""),
        ("/path/to/whatever", "/path/to/whatever"),
        ("/", "/"),
        ("Abc09/x", "Abc09/x"),
    ] {
        let bytes = PduBuilder::request("GET", target).unwrap().to_bytes();
        let start = &head_lines(&bytes)[0];
        assert_eq!(start, &format!("GET {wire} ACORN/1.0"), "target {target:?}");
        let back = parse_datagram(&bytes, &strict()).unwrap();
        assert_eq!(back.target().as_deref(), Some(target), "round trip");
    }
    // The parser keeps accepting the wide literal form.
    let pdu = parse_datagram(b"GET /a?b=1&c=2 ACORN/1.0\r\n\r\n", &strict()).unwrap();
    assert_eq!(pdu.target().as_deref(), Some("/a?b=1&c=2"));
}

#[test]
fn empty_values_keep_the_space_after_the_colon() {
    let mut b = PduBuilder::request("REG", "/").unwrap();
    b.header("X-Empty", "").unwrap();
    let bytes = b.to_bytes();
    assert_eq!(&bytes[..], b"REG / ACORN/1.0\r\nX-Empty: \r\n\r\n");
    // `X-Note: ""` is an empty value, written `X-Note: ` and read back empty.
    let raw = b"REG / ACORN/1.0\r\nX-Note: \"\"\r\n\r\n";
    let pdu = parse_datagram(raw, &strict()).unwrap();
    let canon = pdu.to_canonical();
    assert_eq!(&canon[..], b"REG / ACORN/1.0\r\nX-Note: \r\n\r\n");
    let again = parse_datagram(&canon, &strict()).unwrap();
    let note = again.header_ref("X-Note").unwrap();
    assert!(note.text().is_empty(), "empty after the round trip");
    assert_eq!(again.to_canonical(), canon, "a fixed point");
}

#[test]
fn fmt_of_every_accepted_corpus_case_uses_only_the_common_subset() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/pdu");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.starts_with("accept-") && name.ends_with(".acorn")) || name.contains("-stream-") {
            continue;
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_acorn-cli"));
        cmd.arg("fmt");
        if name.contains("lenient") {
            cmd.arg("--lenient");
        }
        let out = cmd.arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{name}");
        let lines = head_lines(&out.stdout);
        let start = &lines[0];
        if !start.to_ascii_uppercase().starts_with("ACORN/") {
            assert!(target_is_common(start), "{name}: start line {start:?}");
        }
        for line in &lines[1..] {
            let (n, _) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{name}: {line:?}"));
            assert!(
                line[n.len()..].starts_with(": "),
                "{name}: header line {line:?} is not `Name: value`"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} cases formatted");
}

#[test]
fn a_datagram_head_may_end_after_its_last_line_a_stream_head_may_not() {
    for raw in [
        &b"ACORN/1.0 000 ACK\r\n"[..],
        b"ACORN/1.0 001 NACK\r\nTX-ID: 11\r\nNeed-Seq: 12..17,19\r\n",
        b"REG /path ACORN/1.0\r\nTX-ID: 11\r\nSeq: 0\r\nRequest-Session-Mode: ordered\r\n",
    ] {
        let pdu = parse_datagram(raw, &strict()).unwrap();
        pdu.validate(&strict().limits).unwrap();
        assert!(pdu.body().is_empty());
        assert_eq!(pdu.layout().head_len(), raw.len());
        let e = parse_head(raw, &strict()).unwrap_err();
        assert_eq!(
            e.kind,
            ErrorKind::UnterminatedHead,
            "a stream waits for more"
        );
    }
    let e = parse_datagram(b"ACORN/1.0 000 ACK", &strict()).unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::UnterminatedHead,
        "the line end is needed"
    );
    let e = parse_datagram(b"REG / ACORN/1.0\r\nContent-Length: 1\r\n", &strict()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::ContentLengthMismatch);
    // The bare-LF leniency applies as well.
    let lenient = ParseOptions::lenient();
    assert!(parse_datagram(b"ACORN/1.0 000 ACK\nTX-ID: 1\n", &lenient).is_ok());
}

#[test]
fn retry_attempt_is_the_attempt_number_without_a_maximum() {
    let pdu = parse_datagram(b"REG / ACORN/1.0\r\nRetry-Attempt: 3\r\n\r\n", &strict()).unwrap();
    assert_eq!(
        pdu.attempt().unwrap(),
        Some(Attempt {
            current: 3,
            max: None
        })
    );
    let both = b"REG / ACORN/1.0\r\nRetry-Attempt: 3\r\nAttempt: 2/5\r\n\r\n";
    let pdu = parse_datagram(both, &strict()).unwrap();
    assert_eq!(
        pdu.attempt().unwrap(),
        Some(Attempt {
            current: 2,
            max: Some(5)
        }),
        "Attempt wins"
    );
    let bad = b"REG / ACORN/1.0\r\nRetry-Attempt: x\r\n\r\n";
    let e = parse_datagram(bad, &strict())
        .unwrap()
        .validate(&strict().limits)
        .unwrap_err();
    assert_eq!(e.kind.code(), "invalid-value:Retry-Attempt");
}

#[test]
fn an_unusual_content_type_is_carried_as_it_is() {
    let raw = b"ACORN/1.0 200 OK\r\nContent-Type: application/vnd.api+json; charset=\\\"utf-8\\\"\r\nContent-Length: 2\r\n\r\n{}";
    let pdu = parse_datagram(raw, &strict()).unwrap();
    pdu.validate(&strict().limits).unwrap();
    assert_eq!(
        pdu.content_type().as_deref(),
        Some(&b"application/vnd.api+json; charset=\\\"utf-8\\\""[..])
    );
    assert!(pdu.media_type().is_err(), "not an HTTP media type");
    let canon = pdu.to_canonical();
    let again = parse_datagram(&canon, &strict()).unwrap();
    assert_eq!(again.content_type(), pdu.content_type(), "re-encoded as is");
    let usual = parse_datagram(
        b"REG / ACORN/1.0\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n",
        &strict(),
    )
    .unwrap();
    assert_eq!(
        usual.media_type().unwrap(),
        Some("text/plain; charset=\"utf-8\"")
    );
}
