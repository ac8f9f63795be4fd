use acorn::wire::*;

fn p(s: &str) -> Result<PduRef<'_>, ParseError> {
    parse_datagram(s.as_bytes(), &ParseOptions::default())
}

#[test]
fn spec_example_parses() {
    let raw = "REG /path/to/whatever ACORN/1.0\r\nMessage-ID: my-unique-id\r\nTX-ID: tx-1\r\nFrom: node1@127.0.0.1:7077\r\nTo: node2@127.0.0.1:7078\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let pdu = p(raw).unwrap();
    assert_eq!(pdu.method(), Some("REG"));
    assert_eq!(pdu.target().as_deref(), Some("/path/to/whatever"));
    assert_eq!(pdu.body(), b"{}");
    assert_eq!(pdu.tx_id().unwrap(), Some("tx-1"));
    let from = pdu.from().unwrap().unwrap();
    assert_eq!(
        (from.node, from.host, from.port),
        (Some("node1"), "127.0.0.1", 7077)
    );
    pdu.validate(&Limits::default()).unwrap();
    assert_eq!(&pdu.to_canonical()[..], raw.as_bytes());
}

#[test]
fn reply_and_need_seq() {
    let pdu =
        p("ACORN/1.0 001 NACK\r\nSeq: 1222\r\nNeed-Seq: 12..17,19\r\nNeed-Seq: 18, 30\r\n\r\n")
            .unwrap();
    assert!(pdu.is_nack());
    assert_eq!(pdu.seq().unwrap(), Some(1222));
    assert_eq!(pdu.need_seq().unwrap().unwrap().to_string(), "12..19,30");
    let e = p("ACORN/1.0 200 \r\n\r\n").unwrap();
    assert_eq!(e.status_text(), Some(&b""[..]));
}

#[test]
fn errors_have_kind_and_position() {
    let e = p("REG  / ACORN/1.0\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::StartLine);
    let e = p("REG / ACORN/1.0\r\nSeq: 1\r\n folded\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::ObsFold);
    assert_eq!(
        e.position(b"REG / ACORN/1.0\r\nSeq: 1\r\n folded\r\n\r\n")
            .line,
        3
    );
    let e = p("REG / ACORN/1.0\nSeq: 1\n\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BareLf);
    assert!(parse_datagram(b"REG / ACORN/1.0\nSeq: 1\n\n", &ParseOptions::lenient()).is_ok());
    let e = p("REG / ACORN/1.0\r\nA: b\rc\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::BareCr);
    assert_eq!(e.offset, 21);
    let e = p("REG / ACORN/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx").unwrap_err();
    assert_eq!(e.kind, ErrorKind::ContentLengthConflict);
    let e = p("REG / ACORN/1.0\r\nContent-Length: +1\r\n\r\nx").unwrap_err();
    assert_eq!(e.kind, ErrorKind::ContentLength);
    let e = p("ACORN/1.0 20 OK\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Status);
    let e = p("ACORN/1.0 2000 OK\r\n\r\n").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Status);
    let pdu = p("REG / ACORN/1.0\r\nNeed-Seq: 9..3\r\n\r\n").unwrap();
    assert_eq!(
        pdu.need_seq().unwrap_err().kind,
        ErrorKind::InvalidValue(Field::NeedSeq)
    );
}

#[test]
fn builder_quotes_and_refuses() {
    let mut b = PduBuilder::request("PUT", "/a b").unwrap();
    b.header("X-Note", " two\r\nlines ").unwrap();
    b.body("hi");
    let bytes = b.to_bytes();
    assert_eq!(
        &bytes[..],
        b"PUT \"/a b\" ACORN/1.0\r\nX-Note: \" two\\r\\nlines \"\r\nContent-Length: 2\r\n\r\nhi"
    );
    let pdu = parse_datagram(&bytes, &ParseOptions::default()).unwrap();
    assert_eq!(pdu.target().as_deref(), Some("/a b"));
    assert_eq!(
        &pdu.header_ref("x-note").unwrap().text()[..],
        b" two\r\nlines "
    );
    assert!(PduBuilder::request("RE\rG", "/").is_err());
    assert!(PduBuilder::reply(200, "OK\r\nX: y").is_err());
    assert!(b.header("Bad Name", "x").is_err());
    assert!(b.header("X", "a\0b").is_err());
}

#[test]
fn quoted_typed_values_are_read_from_their_content() {
    let pdu = p("REG / ACORN/1.0\r\nTX-ID: \"abc\"\r\nSeq: \"5\"\r\nNeed-Seq: \"1..3, 7\"\r\n\r\n")
        .unwrap();
    assert_eq!(pdu.tx_id().unwrap(), Some("abc"));
    assert_eq!(pdu.seq().unwrap(), Some(5));
    assert_eq!(pdu.need_seq().unwrap().unwrap().to_string(), "1..3,7");
    let raw = "REG / ACORN/1.0\r\nTX-ID: \"a\\\"b\"\r\n\r\n";
    let e = p(raw).unwrap().tx_id().unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidValue(Field::TxId));
    assert_eq!(raw.as_bytes()[e.offset], b'\\');
}
