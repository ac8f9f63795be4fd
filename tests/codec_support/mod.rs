//! PDUs shared by the codec tests: a hand-picked set built with
//! `PduBuilder` and raw byte strings, plus the accept cases of the
//! conformance corpus (`corpus/pdu/accept-*.acorn`) when they exist.
#![allow(dead_code)]

use acorn::codec::StreamCodec;
use acorn::wire::encode::ContentLength;
use acorn::wire::{ParseOptions, Pdu, PduBuilder};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// One PDU as stream bytes, with the options it must be decoded with.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub bytes: Bytes,
    pub opts: ParseOptions,
}

impl Case {
    /// The PDU these bytes must decode to, from the datagram parser (on
    /// stream bytes the datagram parse and the stream framing agree).
    pub fn expected(&self) -> Pdu {
        Pdu::parse_datagram(self.bytes.clone(), &self.opts)
            .unwrap_or_else(|e| panic!("{}: {e}", self.name))
    }
}

fn built(name: &str, b: &PduBuilder) -> Case {
    let mut out = BytesMut::new();
    b.encode_for_stream(&mut out);
    Case {
        name: name.to_string(),
        bytes: out.freeze(),
        opts: ParseOptions::default(),
    }
}

fn raw(name: &str, s: &[u8], opts: ParseOptions) -> Case {
    Case {
        name: name.to_string(),
        bytes: Bytes::copy_from_slice(s),
        opts,
    }
}

/// A typical request: 8 headers and a small JSON body.
pub fn typical(seq: u64, body: &[u8]) -> PduBuilder {
    let mut b = PduBuilder::request("REG", "/path/to/whatever").unwrap();
    b.header("Message-ID", format!("msg-{seq:08}")).unwrap();
    b.header("TX-ID", format!("tx-{seq}")).unwrap();
    b.header("From", "node1@127.0.0.1:7077").unwrap();
    b.header("To", "node2@127.0.0.1:7078").unwrap();
    b.header("Seq", seq.to_string()).unwrap();
    b.header("TS", "1771283340").unwrap();
    b.header("Content-Type", "application/json").unwrap();
    b.body(Bytes::copy_from_slice(body));
    b
}

/// PDUs chosen for the framing edge cases: no body, bodies that contain
/// CRLF CRLF and binary bytes, `Content-Length: 0`, repeated equal
/// `Content-Length`, quoted parts, a reply with empty text, many headers.
pub fn own_cases() -> Vec<Case> {
    let mut v = Vec::new();
    v.push(built("typical", &typical(7, br#"{"k":"v","n":12345}"#)));
    v.push(built("ack", &{
        let mut b = PduBuilder::ack();
        b.header("TX-ID", "tx-1").unwrap();
        b.header("Ack-Message-ID", "m-1").unwrap();
        b
    }));
    v.push(built("nack-need-seq", &{
        let mut b = PduBuilder::nack();
        b.header("Seq", "1222").unwrap();
        b.header("Need-Seq", "12..17,19").unwrap();
        b
    }));
    v.push(built("body-with-crlfcrlf", &{
        let mut b = PduBuilder::request("PUT", "/x").unwrap();
        b.body(&b"\r\n\r\nREG / ACORN/1.0\r\n\r\n\0\xff\n\n"[..]);
        b
    }));
    v.push(built("content-length-zero", &{
        let mut b = PduBuilder::reply(200, "OK").unwrap();
        b.content_length(ContentLength::Always);
        b
    }));
    v.push(built("quoted", &{
        let mut b = PduBuilder::request("PUT", "/a b\"c").unwrap();
        b.header("X-Note", " two\r\nlines ").unwrap();
        b.body("hi");
        b
    }));
    v.push(built("many-headers", &{
        let mut b = PduBuilder::request("GET", "/many").unwrap();
        for i in 0..40 {
            b.header(format!("X-H{i}").as_str(), format!("value {i}"))
                .unwrap();
        }
        b.body(vec![b'z'; 600]);
        b
    }));
    let strict = ParseOptions::default();
    v.push(raw("reply-empty-text", b"ACORN/1.0 200 \r\n\r\n", strict));
    v.push(raw("minimal", b"BYE / ACORN/1.0\r\n\r\n", strict));
    v.push(raw(
        "repeated-equal-length",
        b"PUT /r ACORN/1.0\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
        strict,
    ));
    v.push(raw(
        "ows-around-length",
        b"PUT /r ACORN/1.0\r\nContent-Length:\t 4 \r\n\r\nabcd",
        strict,
    ));
    v
}

/// The options a corpus case is parsed with (corpus/pdu/README.md: a name
/// that continues with `lenient-` is parsed leniently).
pub fn corpus_options(name: &str) -> ParseOptions {
    let rest = name.split_once('-').map_or("", |(_, r)| r);
    if rest.starts_with("lenient-") {
        ParseOptions::lenient()
    } else {
        ParseOptions::default()
    }
}

/// The raw bytes of every corpus file called `<prefix>*.acorn`, by name.
pub fn corpus_files(prefix: &str) -> Vec<(String, Bytes)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus/pdu");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Bytes)> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            (name.starts_with(prefix) && name.ends_with(".acorn"))
                .then(|| (name, Bytes::from(std::fs::read(&p).unwrap())))
        })
        .collect();
    out.sort();
    out
}

/// The corpus accept cases, as stream bytes: a datagram case whose body has
/// no `Content-Length` gets one from the stream encoder (which keeps the
/// received head and inserts the header).
pub fn corpus_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (name, data) in corpus_files("accept-") {
        let opts = corpus_options(&name);
        let pdu = Pdu::parse_datagram(data, &opts)
            .unwrap_or_else(|e| panic!("corpus accept case {name} does not parse: {e}"));
        let mut stream = BytesMut::new();
        StreamCodec::new(opts).encode(&pdu, &mut stream).unwrap();
        out.push(Case {
            name,
            bytes: stream.freeze(),
            opts,
        });
    }
    out
}

/// Own cases followed by the corpus cases.
pub fn all_cases() -> Vec<Case> {
    let mut v = own_cases();
    v.extend(corpus_cases());
    v
}

/// Decode everything `codec` can from `buf`.
pub fn drain(codec: &mut StreamCodec, buf: &mut BytesMut) -> Vec<Pdu> {
    let mut out = Vec::new();
    while let Some(p) = codec.decode(buf).unwrap() {
        out.push(p);
    }
    out
}

/// Feed `bytes` in chunks of the given sizes (the last chunk takes the
/// rest), decoding after each; then check that nothing is left over.
pub fn decode_chunked(opts: ParseOptions, bytes: &[u8], sizes: &[usize]) -> Vec<Pdu> {
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    for &s in sizes {
        let end = (pos + s).min(bytes.len());
        buf.extend_from_slice(&bytes[pos..end]);
        pos = end;
        out.extend(drain(&mut codec, &mut buf));
    }
    buf.extend_from_slice(&bytes[pos..]);
    out.extend(drain(&mut codec, &mut buf));
    assert!(codec.decode_eof(&mut buf).unwrap().is_none());
    assert!(buf.is_empty());
    out
}
