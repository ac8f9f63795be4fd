//! StreamCodec: framing under every split, linear work, limits, smuggling,
//! truncation, failure state, encoder output.

mod codec_support;

use acorn::codec::{CodecError, StreamCodec};
use acorn::wire::encode::ContentLength;
use acorn::wire::{ErrorKind, Limit, Limits, ParseOptions, Pdu, PduBuilder};
use bytes::{Bytes, BytesMut};
use codec_support::{
    all_cases, corpus_files, corpus_options, decode_chunked, drain, typical, Case,
};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

fn opts_with(f: impl FnOnce(&mut Limits)) -> ParseOptions {
    let mut o = ParseOptions::default();
    f(&mut o.limits);
    o
}

/// Decode all of `bytes` at once and return the first error.
fn decode_err(opts: ParseOptions, bytes: &[u8]) -> CodecError {
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::from(bytes);
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(_)) => continue,
            Ok(None) => match codec.decode_eof(&mut buf) {
                Err(e) => return e,
                Ok(_) => panic!("no error for {:?}", String::from_utf8_lossy(bytes)),
            },
            Err(e) => return e,
        }
    }
}

fn kind(e: &CodecError) -> ErrorKind {
    e.kind()
        .unwrap_or_else(|| panic!("not a framing error: {e}"))
}

// ---------------------------------------------------------------- splits

#[test]
fn every_split_point_of_every_case() {
    let cases = all_cases();
    assert!(cases.len() >= 11);
    for case in &cases {
        let expected = case.expected();
        let n = case.bytes.len();
        for k in 0..=n {
            let mut codec = StreamCodec::new(case.opts);
            let mut buf = BytesMut::from(&case.bytes[..k]);
            let first = codec.decode(&mut buf).unwrap();
            if k < n {
                assert!(first.is_none(), "{}: PDU before its end (k={k})", case.name);
                buf.extend_from_slice(&case.bytes[k..]);
                let pdu = codec.decode(&mut buf).unwrap();
                assert_eq!(pdu.as_ref(), Some(&expected), "{} split at {k}", case.name);
            } else {
                assert_eq!(first.as_ref(), Some(&expected), "{} whole", case.name);
            }
            assert!(buf.is_empty());
            assert!(codec.decode(&mut buf).unwrap().is_none());
            assert!(codec.decode_eof(&mut buf).unwrap().is_none());
            // One parse when the head is complete at the first look; else
            // the first look and one parse of the completed head.
            let head_len = expected.head().len();
            let calls = if k > 0 && k < head_len { 2 } else { 1 };
            assert_eq!(codec.parse_calls(), calls, "{} split at {k}", case.name);
        }
    }
}

fn pipelined(cases: &[Case]) -> (Vec<u8>, Vec<Pdu>) {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    for c in cases {
        bytes.extend_from_slice(&c.bytes);
        expected.push(c.expected());
    }
    (bytes, expected)
}

/// Every split point of the pipelined sequence of all cases. The decoder
/// starts afresh after each PDU, so a split inside PDU `i` is checked with
/// its neighbours `i-1` and `i+1` in the same buffer (the bytes before and
/// after the split are pipelined exactly as in the whole sequence), which
/// keeps the test linear in the corpus size instead of quadratic.
#[test]
fn every_split_point_of_a_pipelined_sequence() {
    // Strict cases only: one codec decodes the whole sequence.
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| !c.opts.allow_bare_lf)
        .collect();
    let (bytes, expected) = pipelined(&cases);
    let opts = ParseOptions::default();
    assert_eq!(decode_chunked(opts, &bytes, &[]), expected);
    for i in 0..cases.len() {
        let window = &cases[i.saturating_sub(1)..(i + 2).min(cases.len())];
        let (bytes, expected) = pipelined(window);
        for k in 0..=bytes.len() {
            assert_eq!(
                decode_chunked(opts, &bytes, &[k]),
                expected,
                "around {} split at {k}",
                cases[i].name
            );
        }
    }
}

#[test]
fn byte_at_a_time_sequence() {
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| !c.opts.allow_bare_lf)
        .collect();
    let (bytes, expected) = pipelined(&cases);
    let got = decode_chunked(ParseOptions::default(), &bytes, &vec![1; bytes.len()]);
    assert_eq!(got, expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Random sequences of the cases cut into random chunks decode to the
    /// same PDUs as the sequence fed whole.
    #[test]
    fn random_chunkings(
        picks in prop::collection::vec(0usize..1000, 1..12),
        sizes in prop::collection::vec(0usize..200, 0..64),
    ) {
        let cases: Vec<Case> = all_cases().into_iter().filter(|c| !c.opts.allow_bare_lf).collect();
        let seq: Vec<Case> = picks.iter().map(|&i| cases[i % cases.len()].clone()).collect();
        let (bytes, expected) = pipelined(&seq);
        let got = decode_chunked(ParseOptions::default(), &bytes, &sizes);
        prop_assert_eq!(got, expected);
    }

    /// PDUs with random bodies (any bytes) and random header values survive
    /// encode → random chunking → decode.
    #[test]
    fn random_pdus_random_chunks(
        bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..6),
        value in "[ -~]{0,40}",
        sizes in prop::collection::vec(1usize..64, 0..40),
    ) {
        let mut bytes = BytesMut::new();
        let mut builders = Vec::new();
        let mut codec = StreamCodec::default();
        for (i, body) in bodies.iter().enumerate() {
            let mut b = typical(i as u64, body);
            b.header("X-Value", value.clone()).unwrap();
            codec.encode(&b, &mut bytes).unwrap();
            builders.push(b);
        }
        let got = decode_chunked(ParseOptions::default(), &bytes, &sizes);
        prop_assert_eq!(got.len(), builders.len());
        for (p, b) in got.iter().zip(&builders) {
            prop_assert_eq!(p.body(), &b.body_bytes()[..]);
            prop_assert_eq!(&p.header_ref("X-Value").unwrap().text()[..], value.as_bytes());
        }
    }
}

// ---------------------------------------------------------- linear work

/// A head just under `max_head_len`, fed one byte per decode call.
#[test]
fn byte_at_a_time_near_limit_head_is_linear() {
    let limits = Limits::default();
    let mut b = PduBuilder::request("PUT", "/big").unwrap();
    // 124 headers of 524 bytes: about 63.5 KiB, under the 64 KiB head
    // limit and the 8 KiB line limit.
    for i in 0..124 {
        b.header(format!("X-Fill-{i:03}").as_str(), "v".repeat(510))
            .unwrap();
    }
    b.body("tail");
    let mut bytes = BytesMut::new();
    b.encode_for_stream(&mut bytes);
    let head_len = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(head_len > limits.max_head_len - 2048 && head_len <= limits.max_head_len);

    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::new();
    let mut got = None;
    for (i, &byte) in bytes.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        if let Some(p) = codec.decode(&mut buf).unwrap() {
            assert_eq!(i, bytes.len() - 1, "PDU returned before its last byte");
            got = Some(p);
        }
    }
    let pdu = got.expect("PDU decoded");
    assert_eq!(pdu.header_count(), 125);
    assert_eq!(pdu.body(), b"tail");
    // Over ~65,000 calls, every head byte is scanned exactly once (a rescan
    // from the start on each call would be ~2·10^9 bytes), and the parser
    // runs twice: the first look at one byte, then the completed head.
    assert_eq!(codec.bytes_scanned(), head_len as u64);
    assert_eq!(codec.parse_calls(), 2);
    assert_eq!(codec.bytes_parsed(), 1 + head_len as u64);
}

#[test]
fn scanned_bytes_stay_linear_for_any_chunking() {
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| !c.opts.allow_bare_lf)
        .collect();
    let (bytes, expected) = pipelined(&cases);
    let head_total: usize = expected.iter().map(|p| p.head().len()).sum();
    for chunk in [1, 2, 3, 7, 64, 1000, usize::MAX] {
        let mut codec = StreamCodec::default();
        let mut buf = BytesMut::new();
        let mut n = 0;
        for c in bytes.chunks(chunk) {
            buf.extend_from_slice(c);
            n += drain(&mut codec, &mut buf).len();
        }
        assert_eq!(n, expected.len());
        // Bodies are never scanned or parsed. A head byte is scanned at most
        // once and parsed at most twice (a first look that finds the head
        // unfinished, then the completed head).
        let (scanned, parsed) = (codec.bytes_scanned(), codec.bytes_parsed());
        let total = head_total as u64;
        assert!(
            scanned <= total,
            "chunk {chunk}: scanned {scanned} of {total}"
        );
        assert!(
            parsed >= total && parsed <= 2 * total,
            "chunk {chunk}: parsed {parsed} of {total}"
        );
        if chunk == 1 {
            assert_eq!(scanned, total, "one byte per call: all heads scanned");
        }
        if chunk >= bytes.len() {
            assert_eq!((scanned, parsed), (0, total), "all at once: parsed only");
        }
    }
}

// ---------------------------------------------------------------- limits

#[test]
fn head_over_limit_fails_as_soon_as_it_passes_the_limit() {
    let opts = opts_with(|l| l.max_head_len = 1000);
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::new();
    let line = b"X-Pad: 0123456789012345678901234567890123456789\r\n";
    let mut stream = b"PUT / ACORN/1.0\r\n".to_vec();
    while stream.len() < 5000 {
        stream.extend_from_slice(line);
    }
    for (i, &byte) in stream.iter().enumerate() {
        buf.extend_from_slice(&[byte]);
        match codec.decode(&mut buf) {
            Ok(None) => assert!(i < 1000, "no error after {} bytes", i + 1),
            Ok(Some(_)) => panic!("decoded a PDU"),
            Err(e) => {
                assert_eq!(buf.len(), 1001, "error when the head passed 1000 bytes");
                assert_eq!(e.limit(), Some(Limit::HeadSize));
                assert!(e.to_string().contains("max_head_len"), "{e}");
                assert!(e.to_string().contains("unusable"), "{e}");
                break;
            }
        }
    }
    assert!(codec.is_failed());
    // Scanning stops at the limit.
    assert!(codec.bytes_scanned() <= 1000);
}

#[test]
fn head_of_exactly_the_limit_is_accepted() {
    let mut bytes = b"PUT / ACORN/1.0\r\nX: ".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 200));
    bytes.extend_from_slice(b"\r\n\r\n");
    let opts = opts_with(|l| l.max_head_len = bytes.len());
    assert_eq!(decode_chunked(opts, &bytes, &[1; 300]).len(), 1);
    let opts = opts_with(|l| l.max_head_len = bytes.len() - 1);
    assert_eq!(
        decode_err(opts, &bytes).limit(),
        Some(Limit::HeadSize),
        "one byte over"
    );
}

#[test]
fn long_line_fails_before_its_end() {
    let opts = opts_with(|l| l.max_line_len = 100);
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::from(&b"PUT / ACORN/1.0\r\nX-Long: "[..]);
    let start = 17; // first byte of the long line
    let mut err = None;
    for _ in 0..1000 {
        buf.extend_from_slice(b"y");
        if let Err(e) = codec.decode(&mut buf) {
            err = Some(e);
            break;
        }
    }
    let e = err.expect("line limit enforced");
    assert_eq!(e.limit(), Some(Limit::LineLength));
    // 100 bytes of line plus CR are allowed; the 102nd byte without LF is not.
    assert_eq!(buf.len(), start + 102);
    assert!(e.to_string().contains("max_line_len"), "{e}");
    // A line of exactly 100 bytes is fine.
    let mut ok = b"PUT / ACORN/1.0\r\nX: ".to_vec();
    ok.extend(std::iter::repeat_n(b'q', 97));
    ok.extend_from_slice(b"\r\n\r\n");
    assert_eq!(decode_chunked(opts, &ok, &[1; 200]).len(), 1);
}

#[test]
fn body_over_limit_fails_before_the_body_arrives() {
    let opts = opts_with(|l| l.max_body_len = 1000);
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::from(&b"PUT / ACORN/1.0\r\nContent-Length: 1001\r\n\r\n"[..]);
    let e = codec.decode(&mut buf).unwrap_err();
    assert_eq!(e.limit(), Some(Limit::BodySize));
    assert!(e.to_string().contains("max_body_len"), "{e}");
    let mut ok = b"PUT / ACORN/1.0\r\nContent-Length: 1000\r\n\r\n".to_vec();
    ok.extend(std::iter::repeat_n(b'b', 1000));
    assert_eq!(decode_chunked(opts, &ok, &[7; 200])[0].body().len(), 1000);
}

#[test]
fn header_count_limit() {
    let opts = opts_with(|l| l.max_headers = 3);
    let e = decode_err(
        opts,
        b"PUT / ACORN/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
    );
    assert_eq!(e.limit(), Some(Limit::HeaderCount));
    assert_eq!(
        decode_chunked(
            opts,
            b"PUT / ACORN/1.0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
            &[1; 60]
        )
        .len(),
        1
    );
}

// ------------------------------------------------------------- smuggling

#[test]
fn content_length_smuggling_is_rejected() {
    let cases: &[(&str, ErrorKind)] = &[
        ("+5", ErrorKind::ContentLength),
        ("-5", ErrorKind::ContentLength),
        ("5 5", ErrorKind::ContentLength),
        ("5,5", ErrorKind::ContentLength),
        ("0x5", ErrorKind::ContentLength),
        ("5.0", ErrorKind::ContentLength),
        ("", ErrorKind::ContentLength),
        ("99999999999999999999", ErrorKind::ContentLength), // 20 digits, over u64
        ("184467440737095516160", ErrorKind::ContentLength), // 21 digits
        ("18446744073709551615", ErrorKind::Limit(Limit::BodySize)), // u64::MAX
        ("16777217", ErrorKind::Limit(Limit::BodySize)),    // max_body_len + 1
    ];
    for (value, want) in cases {
        let pdu = format!("PUT / ACORN/1.0\r\nContent-Length: {value}\r\n\r\nhello");
        let e = decode_err(ParseOptions::default(), pdu.as_bytes());
        assert_eq!(kind(&e), *want, "Content-Length: {value:?} gave {e}");
        // Split anywhere, the same verdict.
        for k in 0..pdu.len() {
            let mut codec = StreamCodec::default();
            let mut buf = BytesMut::from(&pdu.as_bytes()[..k]);
            let first = codec.decode(&mut buf);
            let e2 = match first {
                Err(e) => e,
                Ok(None) => {
                    buf.extend_from_slice(&pdu.as_bytes()[k..]);
                    codec.decode(&mut buf).unwrap_err()
                }
                Ok(Some(_)) => panic!("decoded {value:?}"),
            };
            assert_eq!(e2.parse_error(), e.parse_error(), "{value:?} split at {k}");
        }
    }
}

#[test]
fn conflicting_content_lengths_are_rejected() {
    for pdu in [
        &b"PUT / ACORN/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        b"PUT / ACORN/1.0\r\ncontent-length: 0\r\nCONTENT-LENGTH: 5\r\n\r\nhello",
        b"PUT / ACORN/1.0\r\nContent-Length: 5\r\nX: y\r\nContent-Length: 05x\r\n\r\nhello",
    ] {
        let e = decode_err(ParseOptions::default(), pdu);
        assert!(
            matches!(
                kind(&e),
                ErrorKind::ContentLengthConflict | ErrorKind::ContentLength
            ),
            "{e}"
        );
    }
    let e = decode_err(
        ParseOptions::default(),
        b"PUT / ACORN/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    );
    assert_eq!(kind(&e), ErrorKind::ContentLengthConflict);
    // Whitespace before the colon, folding and bare CR are not tolerated
    // around Content-Length either.
    for (pdu, want) in [
        (
            &b"PUT / ACORN/1.0\r\nContent-Length : 5\r\n\r\nhello"[..],
            ErrorKind::HeaderName,
        ),
        (
            b"PUT / ACORN/1.0\r\nContent-Length:\r\n 5\r\n\r\nhello",
            ErrorKind::ContentLength,
        ),
        (
            b"PUT / ACORN/1.0\r\nContent-Length: 5\rX: 1\r\n\r\nhello",
            ErrorKind::BareCr,
        ),
    ] {
        let e = decode_err(ParseOptions::default(), pdu);
        assert_eq!(kind(&e), want, "{e}");
    }
}

#[test]
fn leading_zeros_are_plain_decimal() {
    // Twenty digits that fit: read as 5, like every decimal parser would.
    let pdu = b"PUT / ACORN/1.0\r\nContent-Length: 00000000000000000005\r\n\r\nhelloREG / ACORN/1.0\r\n\r\n";
    let got = decode_chunked(ParseOptions::default(), pdu, &[3; 40]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body(), b"hello");
}

#[test]
fn bare_lf_strict_and_lenient() {
    let pdu = b"PUT / ACORN/1.0\nContent-Length: 2\n\nhiBYE / ACORN/1.0\r\n\n";
    let e = decode_err(ParseOptions::default(), pdu);
    assert_eq!(kind(&e), ErrorKind::BareLf);
    assert_eq!(e.parse_error().unwrap().offset, 15);
    let got = decode_chunked(ParseOptions::lenient(), pdu, &[1; 100]);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body(), b"hi");
    assert_eq!(got[1].method(), Some("BYE"));
}

#[test]
fn error_offsets_are_relative_to_the_pdu() {
    let good = b"PUT / ACORN/1.0\r\nContent-Length: 2\r\n\r\nhi";
    let mut bytes = good.to_vec();
    bytes.extend_from_slice(b"PUT / ACORN/1.0\r\nX: a\0b\r\n\r\n");
    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(codec.decode(&mut buf).unwrap().is_some());
    match codec.decode(&mut buf).unwrap_err() {
        CodecError::Parse { error, pdu_start } => {
            assert_eq!(pdu_start, good.len() as u64);
            assert_eq!(error.kind, ErrorKind::HeaderValue);
            assert_eq!(error.offset, 17 + 4);
        }
        other => panic!("{other}"),
    }
}

/// Every corpus reject case whose head is bad fails the stream decoder with
/// the parser's error (same kind, same offset), at every split point.
/// Excluded: failures of the datagram body rule (`Content-Length` versus
/// the datagram length, body size) and heads without their empty line,
/// which on a stream mean "wait for more" (then truncation at EOF), and
/// cases that only fail typed-header validation, which the codec does not
/// run.
#[test]
fn reject_corpus_heads_fail_the_stream_decoder_identically() {
    let mut checked = 0;
    for (name, bytes) in corpus_files("reject-") {
        let opts = corpus_options(&name);
        let Err(want) = acorn::wire::parse_datagram(&bytes, &opts) else {
            continue;
        };
        if matches!(
            want.kind,
            ErrorKind::ContentLengthMismatch
                | ErrorKind::UnterminatedHead
                | ErrorKind::Limit(Limit::BodySize)
        ) {
            continue;
        }
        checked += 1;
        // Large cases (the limit cases) get a sample of split points plus
        // byte-at-a-time feeding, which keeps the test linear in their size.
        let step = if bytes.len() <= 4096 { 1 } else { 61 };
        let splits = (0..=bytes.len()).step_by(step).chain([bytes.len()]);
        if step > 1 {
            let mut codec = StreamCodec::new(opts);
            let mut buf = BytesMut::new();
            let got = bytes
                .iter()
                .find_map(|&b| {
                    buf.extend_from_slice(&[b]);
                    codec.decode(&mut buf).err()
                })
                .unwrap_or_else(|| panic!("{name}: no error byte at a time"));
            assert_eq!(got.parse_error(), Some(&want), "{name} byte at a time");
        }
        for k in splits {
            let mut codec = StreamCodec::new(opts);
            let mut buf = BytesMut::from(&bytes[..k]);
            let got = match codec.decode(&mut buf) {
                Err(e) => e,
                Ok(Some(p)) => panic!("{name}: decoded {p:?} from {k} bytes"),
                Ok(None) => {
                    buf.extend_from_slice(&bytes[k..]);
                    match codec.decode(&mut buf) {
                        Err(e) => e,
                        Ok(p) => panic!("{name}: split at {k} gave {p:?}"),
                    }
                }
            };
            assert_eq!(got.parse_error(), Some(&want), "{name} split at {k}");
        }
    }
    let corpus_present = !corpus_files("reject-").is_empty();
    assert!(
        !corpus_present || checked > 20,
        "only {checked} reject cases checked"
    );
}

// ------------------------------------------------------- failure and EOF

#[test]
fn failed_decoder_refuses_everything_with_the_same_error() {
    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::from(&b"PUT / ACORN/1.0\r\nContent-Length: +5\r\n\r\nhello"[..]);
    let first = codec.decode(&mut buf).unwrap_err();
    assert!(first.is_connection_fatal());
    buf.extend_from_slice(b"BYE / ACORN/1.0\r\n\r\n");
    let again = codec.decode(&mut buf).unwrap_err();
    assert_eq!(again.parse_error(), first.parse_error());
    let at_eof = codec.decode_eof(&mut buf).unwrap_err();
    assert_eq!(at_eof.parse_error(), first.parse_error());
    // The encoder still works, so a node can answer before closing.
    let mut out = BytesMut::new();
    codec
        .encode(PduBuilder::reply(400, "Bad framing").unwrap(), &mut out)
        .unwrap();
    assert!(out.starts_with(b"ACORN/1.0 400 Bad framing\r\n"));
}

#[test]
fn eof_inside_a_pdu_is_an_error() {
    let whole = b"PUT / ACORN/1.0\r\nContent-Length: 5\r\n\r\nhello";
    let head_len = whole.len() - 5;
    for k in 1..whole.len() {
        let mut codec = StreamCodec::default();
        let mut buf = BytesMut::from(&whole[..k]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
        match codec.decode_eof(&mut buf).unwrap_err() {
            CodecError::TruncatedAtEof {
                buffered,
                expected,
                pdu_start,
            } => {
                assert_eq!(buffered, k);
                assert_eq!(pdu_start, 0);
                let want = (k >= head_len).then_some(whole.len());
                assert_eq!(expected, want, "k={k}");
            }
            other => panic!("{other}"),
        }
        // Then the decoder stays failed.
        assert!(matches!(
            codec.decode(&mut buf),
            Err(CodecError::TruncatedAtEof { .. })
        ));
    }
    // An empty buffer at EOF is a clean close, after any number of PDUs.
    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::from(&whole[..]);
    assert!(codec.decode_eof(&mut buf).unwrap().is_some());
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    assert!(StreamCodec::default()
        .decode_eof(&mut BytesMut::new())
        .unwrap()
        .is_none());
}

/// A stream that ends inside a head whose first line is already malformed
/// reports that line, however the bytes were split (found by the
/// `stream_chunks` fuzz target: fed whole, the first look reported the
/// method error; fed byte by byte, the truncation).
#[test]
fn eof_after_a_malformed_line_reports_the_line_for_any_split() {
    let data = b"\xb3RE\r\n\x03";
    for chunk in 1..=data.len() {
        let mut codec = StreamCodec::default();
        let mut buf = BytesMut::new();
        let mut err = None;
        for c in data.chunks(chunk) {
            buf.extend_from_slice(c);
            if let Err(e) = codec.decode(&mut buf) {
                err = Some(e);
                break;
            }
        }
        let err = err.unwrap_or_else(|| codec.decode_eof(&mut buf).unwrap_err());
        assert_eq!(err.kind(), Some(ErrorKind::Method), "chunk {chunk}: {err}");
    }
}

// ------------------------------------------------- buffers and zero copy

#[test]
fn pdus_are_cut_from_the_read_buffer_without_copying() {
    let case = typical(1, b"{}");
    let mut bytes = BytesMut::new();
    let mut codec = StreamCodec::default();
    codec.encode(&case, &mut bytes).unwrap();
    codec.encode(&case, &mut bytes).unwrap();
    let base = bytes.as_ptr() as usize;
    let one = bytes.len() / 2;
    let a = codec.decode(&mut bytes).unwrap().unwrap();
    let b = codec.decode(&mut bytes).unwrap().unwrap();
    assert_eq!(a.as_bytes().as_ptr() as usize, base);
    assert_eq!(b.as_bytes().as_ptr() as usize, base + one);
    assert_eq!(a.body_bytes().as_ptr() as usize, base + one - 2);
}

#[test]
fn buffer_is_reserved_for_the_whole_pdu_once_the_head_is_read() {
    let head = b"PUT / ACORN/1.0\r\nContent-Length: 200000\r\n\r\n";
    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(head);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= head.len() + 200_000);

    // A body above the reserve limit is reserved in steps.
    let mut codec = StreamCodec::default().with_reserve_limit(4096);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(head);
    assert!(codec.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() >= head.len() + 4096 && buf.capacity() < 100_000);
    buf.extend(std::iter::repeat_n(b'x', 200_000));
    let p = codec.decode(&mut buf).unwrap().unwrap();
    assert_eq!(p.body().len(), 200_000);
}

// ---------------------------------------------------------------- encoder

#[test]
fn encoder_always_writes_content_length_for_a_body() {
    let mut b = PduBuilder::request("PUT", "/x").unwrap();
    b.content_length(ContentLength::Never).body("abc");
    let mut out = BytesMut::new();
    StreamCodec::default().encode(&b, &mut out).unwrap();
    assert_eq!(
        &out[..],
        b"PUT /x ACORN/1.0\r\nContent-Length: 3\r\n\r\nabc"
    );
    // No body, no Content-Length.
    let mut out = BytesMut::new();
    StreamCodec::default()
        .encode(PduBuilder::ack(), &mut out)
        .unwrap();
    assert_eq!(&out[..], b"ACORN/1.0 000 ACK\r\n\r\n");
}

#[test]
fn forwarding_parsed_pdus() {
    let mut codec = StreamCodec::default();
    // Stream-framed PDU: forwarded byte for byte.
    let framed =
        Bytes::from_static(b"PUT /x ACORN/1.0\r\nx-odd:   v  \r\nContent-Length: 2\r\n\r\nhi");
    let p = Pdu::parse_datagram(framed.clone(), &ParseOptions::default()).unwrap();
    let mut out = BytesMut::new();
    codec.encode(&p, &mut out).unwrap();
    assert_eq!(&out[..], &framed[..]);
    // Datagram with a body and no Content-Length: the head is kept and the
    // header inserted before the empty line.
    let dgram = Bytes::from_static(b"PUT /x ACORN/1.0\r\nx-odd:   v  \r\n\r\nhi");
    let p = Pdu::parse_datagram(dgram, &ParseOptions::default()).unwrap();
    let mut out = BytesMut::new();
    codec.encode(p, &mut out).unwrap();
    assert_eq!(&out[..], &framed[..]);
    // Bare-LF PDU (parsed leniently): canonical CRLF bytes.
    let lf = Bytes::from_static(b"PUT /x ACORN/1.0\nA: 1\n\nhi");
    let p = Pdu::parse_datagram(lf, &ParseOptions::lenient()).unwrap();
    let mut out = BytesMut::new();
    codec.encode(&p, &mut out).unwrap();
    assert_eq!(
        &out[..],
        b"PUT /x ACORN/1.0\r\nA: 1\r\nContent-Length: 2\r\n\r\nhi"
    );
    let back = decode_chunked(ParseOptions::default(), &out, &[]);
    assert_eq!(back[0].body(), b"hi");
}
