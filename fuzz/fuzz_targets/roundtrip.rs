//! Structured PDUs → encoder → decoder: what comes out is what went in.
//!
//! A sequence of PDUs built from arbitrary parts (parts the builder refuses
//! are replaced by valid ones: refusing them is the builder's job, tested
//! elsewhere) is encoded by `StreamCodec` into one stream, which is then
//! decoded in chunks; each PDU is also sent through `DatagramCodec`. The
//! decoded PDUs must carry the same start line, headers (unquoted), and
//! body, and forwarding a decoded PDU must reproduce its bytes.
#![no_main]

use acorn::codec::{DatagramCodec, StreamCodec};
use acorn::wire::encode::ContentLength;
use acorn::wire::{Method, Pdu, PduBuilder};
use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

#[derive(Arbitrary, Debug)]
enum Start {
    Request { method: String, target: String },
    Reply { status: u16, text: String },
}

#[derive(Arbitrary, Debug)]
enum Length {
    Auto,
    Always,
    Never,
}

#[derive(Arbitrary, Debug)]
struct Part {
    start: Start,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    length: Length,
}

#[derive(Arbitrary, Debug)]
struct Input {
    pdus: Vec<Part>,
    chunk: u8,
}

/// What a PDU is made of, as the application sees it.
#[derive(Debug, PartialEq)]
struct Parts {
    method: Option<String>,
    target: Option<String>,
    status: Option<u16>,
    text: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fn build(part: &Part, i: usize) -> (PduBuilder, Parts) {
    let (mut b, method, target, status, text) = match &part.start {
        Start::Request { method, target } => {
            let m = if Method::new(method.clone()).is_ok() {
                method.as_str()
            } else {
                "PUT"
            };
            let t = if target.contains('\0') { "/" } else { target };
            let b = PduBuilder::request(m, t).expect("a valid request");
            (b, Some(m.to_string()), Some(t.to_string()), None, None)
        }
        Start::Reply { status, text } => {
            let status = status % 1000;
            match PduBuilder::reply(status, text) {
                Ok(b) => (b, None, None, Some(status), Some(text.as_bytes().to_vec())),
                Err(_) => (
                    PduBuilder::reply(status, "OK").expect("valid reply"),
                    None,
                    None,
                    Some(status),
                    Some(b"OK".to_vec()),
                ),
            }
        }
    };
    let mut headers = Vec::new();
    for (j, (name, value)) in part.headers.iter().take(40).enumerate() {
        let value: Vec<u8> = value.iter().copied().filter(|&c| c != 0).collect();
        let name = if b.header(name.as_str(), value.clone()).is_ok() {
            name.clone()
        } else {
            let n = format!("X-F{i}-{j}");
            b.header(n.as_str(), value.clone()).expect("valid header");
            n
        };
        headers.push((name.to_ascii_lowercase(), value));
    }
    b.body(part.body.clone());
    b.content_length(match part.length {
        Length::Auto => ContentLength::Auto,
        Length::Always => ContentLength::Always,
        Length::Never => ContentLength::Never,
    });
    let parts = Parts {
        method,
        target,
        status,
        text,
        headers,
        body: part.body.clone(),
    };
    (b, parts)
}

fn parts_of(p: &Pdu) -> Parts {
    let length = p.content_length();
    if let Some(n) = length {
        assert_eq!(n, p.body().len() as u64);
    }
    Parts {
        method: p.method().map(str::to_string),
        target: p.target().map(|t| t.into_owned()),
        status: p.status(),
        text: p.status_text().map(<[u8]>::to_vec),
        headers: p
            .headers()
            .filter(|h| !h.is("Content-Length"))
            .map(|h| (h.name.to_ascii_lowercase(), h.text().into_owned()))
            .collect(),
        body: p.body().to_vec(),
    }
}

fuzz_target!(|input: Input| {
    let mut stream = BytesMut::new();
    let mut enc = StreamCodec::default();
    let mut dgram = DatagramCodec::default().with_max_datagram_len(usize::MAX);
    let mut want = Vec::new();
    for (i, part) in input.pdus.iter().take(16).enumerate() {
        let (b, parts) = build(part, i);
        enc.encode(&b, &mut stream)
            .expect("stream encoding cannot fail");

        // Datagram: one PDU, body = the rest.
        let mut d = BytesMut::new();
        dgram.encode(&b, &mut d).expect("no size bound");
        let mut rx = d.clone();
        let got = dgram.decode(&mut rx).expect("no I/O").expect("one item");
        let got = got.unwrap_or_else(|e| panic!("encoded datagram refused: {e}\n{d:?}"));
        assert_eq!(parts_of(&got), parts);
        let mut fwd = BytesMut::new();
        dgram.encode(&got, &mut fwd).unwrap();
        assert_eq!(fwd, d, "forwarding changed the datagram");
        want.push(parts);
    }

    let chunk = usize::from(input.chunk).max(1);
    let mut dec = StreamCodec::default();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for c in stream.chunks(chunk) {
        buf.extend_from_slice(c);
        while let Some(p) = dec.decode(&mut buf).expect("encoded stream decodes") {
            got.push(p);
        }
    }
    assert!(dec.decode_eof(&mut buf).expect("clean end").is_none());
    assert_eq!(got.len(), want.len());
    let mut fwd = BytesMut::new();
    for (p, w) in got.iter().zip(&want) {
        assert_eq!(&parts_of(p), w);
        enc.encode(p, &mut fwd).unwrap();
    }
    assert_eq!(fwd, stream, "forwarding changed the stream");
});
