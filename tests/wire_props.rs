//! Property tests of the wire layer: what the encoder writes the parser
//! reads back unchanged, nothing makes the parser or the typed accessors
//! panic, and nothing gets a line past the encoder.
//!
//! Case counts are bounded (a few hundred per property) so the suite stays
//! fast; the corpus mutations start from every `corpus/pdu` case, so new
//! corpus cases widen this test without editing it.

use acorn::wire::encode::ContentLength;
use acorn::wire::{
    parse_datagram, parse_head, HeaderName, Limits, Method, ParseOptions, PduBuilder, PduRef,
    Target,
};
use proptest::prelude::*;
use proptest::sample::{select, Index};
use std::path::Path;
use std::sync::OnceLock;

mod wire_support;
use wire_support::{proptest_config, roomy};

/// Cases per property, unless `PROPTEST_CASES` asks for a longer run (e.g.
/// `PROPTEST_CASES=100000` for a soak before a release).
const CASES: u32 = 384;

// ------------------------------------------------------------ strategies

/// `method = method-start *method-char` (no leading `-`).
fn method() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._][A-Za-z0-9._-]{0,11}"
}

/// Characters that stress quoting: space, quote, backslash, CR, LF, tab,
/// non-ASCII; plus anything else but NUL.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => select(vec![' ', '"', '\\', '\r', '\n', '\t', 'ü', '✓', '/', ':']),
        2 => (0x21u8..0x7f).prop_map(char::from),
        1 => any::<char>().prop_map(|c| if c == '\0' { '\u{1}' } else { c }),
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..24).prop_map(|v| v.into_iter().collect())
}

/// `header-name = ALPHA *name-char`, but never `Content-Length`, which the
/// builder manages itself.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z][A-Za-z0-9_-]{0,15}",
        select(vec![
            "Seq".to_owned(),
            "Need-Seq".to_owned(),
            "TX-ID".to_owned(),
            "From".to_owned(),
            "Injected".to_owned(),
        ]),
    ]
    .prop_map(|n| {
        if n.eq_ignore_ascii_case("content-length") {
            format!("X-{n}")
        } else {
            n
        }
    })
}

/// Any bytes but NUL, weighted towards those that need quoting.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => select(b" \t\r\n\"\\:".to_vec()),
            3 => 1u8..=255,
            1 => select(vec![0x80u8, 0xff, 0xc3]),
        ],
        0..32,
    )
}

/// `c` if it is not ASCII, else a Latin-1 letter (mapping rather than
/// filtering, so no generated case is thrown away).
fn non_ascii(c: char) -> char {
    if c.is_ascii() {
        char::from_u32(c as u32 + 0xc0).expect("U+00C0..U+013F are chars")
    } else {
        c
    }
}

/// Text a peer may put after the status: HTAB, SP, VCHAR, non-ASCII.
fn status_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            select(vec![' ', '\t']),
            (0x21u8..0x7f).prop_map(char::from),
            any::<char>().prop_map(non_ascii),
        ],
        0..20,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn content_length_mode() -> impl Strategy<Value = ContentLength> {
    select(vec![
        ContentLength::Auto,
        ContentLength::Always,
        ContentLength::Never,
    ])
}

#[derive(Debug, Clone)]
enum Start {
    Request { method: String, target: String },
    Reply { status: u16, text: String },
}

fn start() -> impl Strategy<Value = Start> {
    prop_oneof![
        (method(), target()).prop_map(|(method, target)| Start::Request { method, target }),
        (0u16..=999, status_text()).prop_map(|(status, text)| Start::Reply { status, text }),
    ]
}

#[derive(Debug, Clone)]
struct Spec {
    start: Start,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    mode: ContentLength,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        start(),
        prop::collection::vec((header_name(), value()), 0..12),
        prop::collection::vec(any::<u8>(), 0..48),
        content_length_mode(),
    )
        .prop_map(|(start, headers, body, mode)| Spec {
            start,
            headers,
            body,
            mode,
        })
}

fn build(spec: &Spec) -> PduBuilder {
    let mut b = match &spec.start {
        Start::Request { method, target } => PduBuilder::request(method, target),
        Start::Reply { status, text } => PduBuilder::reply(*status, text),
    }
    .expect("the strategies only make valid start lines");
    for (n, v) in &spec.headers {
        b.header(n.as_str(), v.clone())
            .expect("the strategies only make valid headers");
    }
    b.body(spec.body.clone()).content_length(spec.mode);
    b
}

/// Start lines that parse.
fn start_lines() -> Vec<&'static [u8]> {
    vec![
        b"REG / ACORN/1.0",
        b"REG / ACORN/1.0",
        b"ACORN/1.0 000 ACK",
        b"ACORN/1.0 001",
        b"ACORN/1.0 200 ",
        b"BYE \"a \\\"b\\r\" acorn/2.0.1.9",
        b"GET /\xc3\xbc\\ ACORN/1.0",
    ]
}

/// Start lines SPEC §1 calls malformed.
fn bad_start_lines() -> Vec<&'static [u8]> {
    vec![
        b"REG  / ACORN/1.0",
        b"ACORN/1.0 20 OK",
        b"REG / ACORN/1.0.0.0.0",
        b"R\tEG / ACORN/1.0",
        b"",
    ]
}

/// Header names: the typed ones, unknown ones, and broken ones.
fn header_names() -> Vec<&'static [u8]> {
    vec![
        b"Seq",
        b"Need-Seq",
        b"Ignore-Seq",
        b"Ack-Seq",
        b"Content-Length",
        b"content-length",
        b"Request-Session-Mode",
        b"Set-Session-Mode",
        b"Session-Status",
        b"Session-ID",
        b"TX-ID",
        b"From",
        b"Reply-To",
        b"Attempt",
        b"Segment",
        b"Segment-Index",
        b"Segment-Count",
        b"Payload-Length",
        b"TS",
        b"Date",
        b"Expire-Date",
        b"Expire-At",
        b"Timeout",
        b"Content-Hash-SHA256",
        b"Payload-Hash-HMAC-",
        b"Content-Type",
        b"Content-Encoding",
        b"X-Any",
    ]
}

/// Pieces of header values that break the line or quoting.
fn hostile_value_fragments() -> Vec<&'static [u8]> {
    vec![b"\"", b"\\", b"\\r", b"\r", b"\n", b"\0"]
}

/// Pieces of header values: typed values, near misses, other bytes.
fn value_fragments() -> Vec<&'static [u8]> {
    vec![
        b" ",
        b"\t",
        b"ordered",
        b"unordered",
        b"new",
        b"*",
        b"..",
        b",",
        b"0",
        b"7",
        b"12..17",
        b"18446744073709551615",
        b"18446744073709551616",
        b"99999999999999999999",
        b"00000000000000000000001",
        b"node@",
        b"[::1]",
        b"[",
        b"127.0.0.1",
        b":7077",
        b"3/3",
        b"0/1",
        b"2024-02-29T23:59:60.5+05:30",
        b"2023-02-29T00:00:00Z",
        b"1.25",
        b"YWJj",
        b"=",
        b"text/plain; charset=\"utf-8\"",
        b"gzip, br",
        b"\xff",
        b"\xc3\xbc",
    ]
}

/// Bytes shaped like PDUs: a start line, header lines built from typed
/// names and value pieces, odd separators and line ends, then a body. This
/// reaches the header and typed-value rules far more often than random
/// bytes, which rarely get past the start line.
fn pdu_like() -> impl Strategy<Value = Vec<u8>> {
    let line_end = || {
        prop_oneof![
            48 => Just(&b"\r\n"[..]),
            1 => select(vec![&b"\n"[..], b"\r", b""]),
        ]
    };
    let header = (
        prop_oneof![
            20 => select(header_names()),
            1 => select(vec![&b" Seq"[..], b"Se q", b"", b"1X"]),
        ],
        prop_oneof![16 => Just(&b": "[..]), 1 => select(vec![&b":"[..], b" :", b":\t", b""])],
        prop::collection::vec(
            prop_oneof![
                30 => select(value_fragments()),
                1 => select(hostile_value_fragments()),
            ],
            0..6,
        ),
        line_end(),
    )
        .prop_map(|(n, sep, v, end)| [n, sep, &v.concat(), end].concat());
    (
        prop_oneof![6 => select(start_lines()), 1 => select(bad_start_lines())],
        line_end(),
        prop::collection::vec(header, 0..8),
        line_end(),
        prop::collection::vec(any::<u8>(), 0..16),
    )
        .prop_map(|(start, end, headers, empty, body)| {
            [start, end, &headers.concat(), empty, &body].concat()
        })
}

/// Every `corpus/pdu` case, read once.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/pdu");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("corpus/pdu exists")
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "acorn"))
            .collect();
        files.sort();
        let cases: Vec<Vec<u8>> = files
            .iter()
            .map(|p| std::fs::read(p).expect("corpus case readable"))
            .collect();
        assert!(cases.len() >= 100, "corpus/pdu has {} cases", cases.len());
        cases
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
    Duplicate(Index, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop_oneof![any::<u8>(), select(b"\r\n\0 \t:\"\\.,*09".to_vec())];
    prop_oneof![
        (any::<Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<Index>(), interesting.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<Index>(), prop::collection::vec(interesting, 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutate(mut data: Vec<u8>, m: &Mutation) -> Vec<u8> {
    // `Index::index` panics on an empty collection; the positions below
    // are taken over len + 1 so the end of the input is a position too.
    let at = |i: &Index, len: usize| i.index(len + 1);
    match m {
        Mutation::Flip(i, x) if !data.is_empty() => {
            let p = i.index(data.len());
            data[p] ^= x;
        }
        Mutation::Set(i, b) if !data.is_empty() => {
            let p = i.index(data.len());
            data[p] = *b;
        }
        Mutation::Insert(i, v) => {
            let p = at(i, data.len());
            data.splice(p..p, v.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let p = at(i, data.len());
            let end = (p + n).min(data.len());
            data.drain(p..end);
        }
        Mutation::Truncate(i) => {
            let p = at(i, data.len());
            data.truncate(p);
        }
        Mutation::Duplicate(i, n) => {
            let p = at(i, data.len());
            let end = (p + n).min(data.len());
            let copy = data[p..end].to_vec();
            data.splice(p..p, copy);
        }
        Mutation::Flip(..) | Mutation::Set(..) => {}
    }
    data
}

// ------------------------------------------------------------ helpers

/// Run every accessor of a parsed PDU; none may panic, whatever the input.
/// Returns whether it validated.
fn exercise(pdu: &PduRef<'_>) -> bool {
    let _ = (pdu.kind(), pdu.method(), pdu.target(), pdu.target_raw());
    let _ = (pdu.version(), pdu.version_major(), pdu.status());
    let _ = (pdu.status_text(), pdu.is_ack(), pdu.is_nack(), pdu.body());
    let _ = (pdu.head(), pdu.content_length(), pdu.header_count());
    for h in pdu.headers() {
        let _ = h.text();
        assert!(
            !h.value.contains(&b'\r') && !h.value.contains(&b'\n') && !h.value.contains(&0),
            "a raw header value holds CR, LF or NUL: {:?}",
            h.value
        );
    }
    let _ = (pdu.seq(), pdu.ack_seq(), pdu.need_seq(), pdu.ignore_seq());
    let _ = (pdu.need_seq_limited(3), pdu.ignore_seq_limited(0));
    let _ = (pdu.request_session_mode(), pdu.set_session_mode());
    let _ = (pdu.session_status(), pdu.session_id());
    let _ = (pdu.tx_id(), pdu.message_id(), pdu.ack_message_id());
    for id in [pdu.from(), pdu.to(), pdu.reply_to(), pdu.ack_to()]
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = (id.to_string(), id.socket_addr());
    }
    let _ = (
        pdu.content_type(),
        pdu.media_type(),
        pdu.content_encoding(),
        pdu.hashes(),
    );
    let _ = (pdu.ts(), pdu.date(), pdu.generated_at(), pdu.timeout());
    let _ = (
        pdu.attempt(),
        pdu.expire_at(),
        pdu.expire_date(),
        pdu.expires_at(),
    );
    let _ = (pdu.segment(), pdu.segment_id(), pdu.payload_length());
    let _ = pdu.to_canonical();
    pdu.validate(&Limits::default()).is_ok()
}

/// Parse `data` strictly and leniently, and as a stream head; exercise
/// whatever parses. A PDU that validates must have a canonical form that
/// parses, validates, and is a fixed point (within [`roomy`] limits).
fn never_panics(data: &[u8]) -> Result<(), TestCaseError> {
    for opts in [ParseOptions::strict(), ParseOptions::lenient()] {
        let _ = parse_head(data, &opts);
        let Ok(pdu) = parse_datagram(data, &opts) else {
            continue;
        };
        if !exercise(&pdu) {
            continue;
        }
        let canon = pdu.to_canonical();
        let roomy = roomy();
        let again = parse_datagram(&canon, &roomy);
        prop_assert!(
            again.is_ok(),
            "canonical form of a valid PDU does not parse: {:?} -> {:?}: {:?}",
            String::from_utf8_lossy(data),
            String::from_utf8_lossy(&canon),
            again.err()
        );
        let again = again.unwrap();
        prop_assert!(
            again.validate(&roomy.limits).is_ok(),
            "canonical form of a valid PDU does not validate: {:?}: {:?}",
            String::from_utf8_lossy(&canon),
            again.validate(&roomy.limits).err()
        );
        prop_assert_eq!(again.to_canonical(), canon);
    }
    Ok(())
}

// ------------------------------------------------------------ properties

proptest! {
    #![proptest_config(proptest_config(CASES))]

    /// What the builder writes parses back to the same parts, and is
    /// already canonical.
    #[test]
    fn encode_then_parse_round_trips(spec in spec()) {
        let builder = build(&spec);
        let bytes = builder.to_bytes();
        let pdu = parse_datagram(&bytes, &ParseOptions::strict());
        prop_assert!(pdu.is_ok(), "{:?} does not parse: {:?}", String::from_utf8_lossy(&bytes), pdu.err());
        let pdu = pdu.unwrap();
        match &spec.start {
            Start::Request { method, target } => {
                prop_assert_eq!(pdu.method(), Some(method.as_str()));
                prop_assert_eq!(pdu.target().map(|t| t.into_owned()), Some(target.clone()));
                prop_assert_eq!(pdu.status(), None);
            }
            Start::Reply { status, text } => {
                prop_assert_eq!(pdu.status(), Some(*status));
                prop_assert_eq!(pdu.status_text(), Some(text.as_bytes()));
                prop_assert_eq!(pdu.method(), None);
            }
        }
        prop_assert_eq!(pdu.version(), "ACORN/1.0");
        let got: Vec<(String, Vec<u8>)> = pdu
            .headers()
            .filter(|h| !h.is("Content-Length"))
            .map(|h| (h.name.to_owned(), h.text().into_owned()))
            .collect();
        prop_assert_eq!(&got, &spec.headers);
        let wrote_length = match spec.mode {
            ContentLength::Always => true,
            ContentLength::Auto => !spec.body.is_empty(),
            ContentLength::Never => false,
        };
        prop_assert_eq!(pdu.header_count(), spec.headers.len() + usize::from(wrote_length));
        if wrote_length {
            prop_assert_eq!(pdu.content_length(), Some(spec.body.len() as u64));
        }
        prop_assert_eq!(pdu.body(), &spec.body[..]);
        if spec.mode != ContentLength::Never {
            prop_assert_eq!(pdu.to_canonical(), bytes);
        }
    }

    /// The stream encoding always frames a body with `Content-Length`, and
    /// `parse_head` reads back exactly the head and that length.
    #[test]
    fn stream_encoding_frames_the_body(spec in spec()) {
        let mut buf = bytes::BytesMut::new();
        build(&spec).encode_for_stream(&mut buf);
        let head = parse_head(&buf, &ParseOptions::strict());
        prop_assert!(head.is_ok(), "{:?}", head.err());
        let head = head.unwrap();
        prop_assert_eq!(head.len() + head.body_len(), buf.len());
        prop_assert_eq!(&buf[head.len()..], &spec.body[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&data)?;
    }

    #[test]
    fn pdu_like_bytes_never_panic(data in pdu_like()) {
        never_panics(&data)?;
    }

    #[test]
    fn mutated_corpus_cases_never_panic(
        case in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let corpus = corpus();
        let mut data = corpus[case.index(corpus.len())].clone();
        for m in &mutations {
            data = mutate(data, m);
        }
        never_panics(&data)?;
    }

    /// CR, LF and NUL never get into a method, a header name or a status
    /// text: the builder refuses them wherever they are.
    #[test]
    fn encoder_refuses_line_breaks_in_tokens(
        m in method(),
        n in "[A-Za-z][A-Za-z0-9_-]{0,15}",
        text in status_text(),
        bad in select(vec!['\r', '\n', '\0']),
        at in any::<Index>(),
    ) {
        let insert = |s: &str| {
            let chars: Vec<char> = s.chars().collect();
            let p = at.index(chars.len() + 1);
            chars[..p].iter().chain([bad].iter()).chain(&chars[p..]).collect::<String>()
        };
        prop_assert!(Method::new(insert(&m)).is_err());
        prop_assert!(PduBuilder::request(&insert(&m), "/").is_err());
        prop_assert!(HeaderName::new(insert(&n)).is_err());
        let mut b = PduBuilder::ack();
        prop_assert!(b.header(insert(&n).as_str(), "v").is_err());
        prop_assert!(b.set_header(insert(&n).as_str(), "v").is_err());
        prop_assert!(PduBuilder::reply(200, &insert(&text)).is_err());
        prop_assert_eq!(b.headers().count(), 0);
    }

    /// NUL, which no escape can carry, never gets into a target or a value.
    #[test]
    fn encoder_refuses_nul_in_targets_and_values(
        t in target(),
        v in value(),
        n in header_name(),
        at in any::<Index>(),
    ) {
        let mut t: Vec<char> = t.chars().collect();
        t.insert(at.index(t.len() + 1), '\0');
        let t: String = t.into_iter().collect();
        prop_assert!(Target::new(t.clone()).is_err());
        prop_assert!(PduBuilder::request("GET", &t).is_err());
        let mut v = v;
        let p = at.index(v.len() + 1);
        v.insert(p, 0);
        let mut b = PduBuilder::ack();
        prop_assert!(b.header(n.as_str(), v.clone()).is_err());
        prop_assert!(b.set_header(n.as_str(), v.clone()).is_err());
        let name = HeaderName::new(n).expect("valid name");
        prop_assert!(b.set_value(&name, v).is_err());
        prop_assert_eq!(b.headers().count(), 0);
    }

    /// Values and targets crafted to smuggle a header line in (CR/LF, then
    /// something that looks like a header) come back as one value: the
    /// output never parses into more headers than were given.
    #[test]
    fn no_header_injection(
        t in target(),
        prefix in value(),
        line_end in select(vec!["\r\n", "\n", "\r", "\r\n\r\n", "\n\n"]),
        smuggled in select(vec!["Injected: 1", "Content-Length: 0", "Seq: 9", " folded", "ACORN/1.0 200 OK"]),
        suffix in value(),
        count in 1usize..4,
    ) {
        let mut evil = prefix;
        evil.extend_from_slice(line_end.as_bytes());
        evil.extend_from_slice(smuggled.as_bytes());
        evil.extend_from_slice(&suffix);
        let evil_target = format!("{t}{line_end}{smuggled}");
        let mut b = PduBuilder::request("PUT", &evil_target).expect("no NUL");
        for _ in 0..count {
            b.header("X-Evil", evil.clone()).expect("no NUL");
        }
        let bytes = b.to_bytes();
        let pdu = parse_datagram(&bytes, &ParseOptions::lenient());
        prop_assert!(pdu.is_ok(), "{:?}", pdu.err());
        let pdu = pdu.unwrap();
        prop_assert_eq!(pdu.header_count(), count);
        prop_assert!(pdu.headers().all(|h| h.name == "X-Evil" && h.text() == evil.as_slice()));
        prop_assert_eq!(pdu.target().map(|t| t.into_owned()), Some(evil_target));
        prop_assert!(pdu.body().is_empty());
        // Strict parsing agrees: the encoder never writes a bare CR or LF.
        prop_assert!(parse_datagram(&bytes, &ParseOptions::strict()).is_ok());
    }
}

/// The fuzzing properties are only as good as the inputs they reach: the
/// PDU-like generator and the corpus mutations must produce a fair share of
/// inputs that parse, and some that also validate, or the "never panics"
/// properties would only ever exercise the first rule that fails.
#[test]
fn fuzz_inputs_reach_deep_into_the_grammar() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let tally = |inputs: &mut dyn FnMut() -> Vec<u8>| {
        let (mut parsed, mut valid) = (0, 0);
        for _ in 0..1000 {
            let data = inputs();
            if let Ok(pdu) = parse_datagram(&data, &ParseOptions::lenient()) {
                parsed += 1;
                valid += usize::from(pdu.validate(&Limits::default()).is_ok());
            }
        }
        (parsed, valid)
    };
    let strategy = pdu_like();
    let (parsed, valid) = tally(&mut || strategy.new_tree(&mut runner).unwrap().current());
    assert!(
        parsed >= 300 && valid >= 50,
        "PDU-like: {parsed} parsed, {valid} valid of 1000"
    );
    let strategy = (any::<Index>(), mutation());
    let (parsed, valid) = tally(&mut || {
        let (case, m) = strategy.new_tree(&mut runner).unwrap().current();
        mutate(corpus()[case.index(corpus().len())].clone(), &m)
    });
    assert!(
        parsed >= 150 && valid >= 60,
        "mutations: {parsed} parsed, {valid} valid of 1000"
    );
}
