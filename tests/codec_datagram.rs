//! DatagramCodec: one PDU per datagram, a bad datagram spoils only itself,
//! bounded encoding.

mod codec_support;

use acorn::codec::{CodecError, DatagramCodec, MAX_UDP_PAYLOAD};
use acorn::wire::encode::ContentLength;
use acorn::wire::{ErrorKind, Limit, Limits, ParseOptions, Pdu, PduBuilder};
use bytes::{Bytes, BytesMut};
use codec_support::{corpus_files, corpus_options, typical};
use tokio_util::codec::{Decoder, Encoder};

/// Decode one datagram the way `UdpFramed` does: `decode_eof` until `None`.
fn recv(codec: &mut DatagramCodec, datagram: &[u8]) -> Vec<Result<Pdu, acorn::ParseError>> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    buf.extend_from_slice(datagram);
    let mut items = Vec::new();
    while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
        items.push(item);
    }
    assert!(buf.is_empty(), "the datagram is always consumed");
    items
}

#[test]
fn body_is_the_rest_of_the_datagram() {
    let mut codec = DatagramCodec::default();
    let items = recv(
        &mut codec,
        b"PUT /x ACORN/1.0\r\nSeq: 4\r\n\r\nbody\r\n\r\nmore",
    );
    assert_eq!(items.len(), 1);
    let pdu = items[0].as_ref().unwrap();
    assert_eq!(pdu.body(), b"body\r\n\r\nmore");
    assert_eq!(pdu.seq().unwrap(), Some(4));
    // Content-Length, when present, must match.
    let ok = recv(
        &mut codec,
        b"PUT /x ACORN/1.0\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(ok[0].as_ref().unwrap().body(), b"hi");
    for bad in [
        &b"PUT /x ACORN/1.0\r\nContent-Length: 3\r\n\r\nhi"[..],
        b"PUT /x ACORN/1.0\r\nContent-Length: 1\r\n\r\nhi",
    ] {
        let items = recv(&mut codec, bad);
        assert_eq!(
            items[0].as_ref().unwrap_err().kind,
            ErrorKind::ContentLengthMismatch
        );
    }
}

#[test]
fn a_bad_datagram_spoils_only_itself() {
    let mut codec = DatagramCodec::default();
    let datagrams: [&[u8]; 6] = [
        b"REG / ACORN/1.0\r\nSeq: 0\r\n\r\n",
        b"\x00\x01garbage\r\n\r\n",
        b"PUT / ACORN/1.0\r\nContent-Length: +5\r\n\r\nhello",
        b"PUT / ACORN/1.0\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        b"REG / ACORN/1.0\r\nSeq: 1", // no empty line
        b"ACORN/1.0 200 OK\r\n\r\n",
    ];
    let kinds: Vec<Result<(), ErrorKind>> = datagrams
        .iter()
        .map(|d| {
            let items = recv(&mut codec, d);
            assert_eq!(items.len(), 1);
            items[0].as_ref().map(|_| ()).map_err(|e| e.kind)
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            Ok(()),
            Err(ErrorKind::Method),
            Err(ErrorKind::ContentLength),
            Err(ErrorKind::ContentLengthConflict),
            Err(ErrorKind::UnterminatedHead),
            Ok(()),
        ]
    );
}

#[test]
fn empty_datagram_yields_nothing() {
    let mut codec = DatagramCodec::default();
    assert!(recv(&mut codec, b"").is_empty());
}

#[test]
fn limits_apply_per_datagram() {
    let opts = ParseOptions {
        limits: Limits {
            max_head_len: 100,
            max_body_len: 10,
            ..Limits::default()
        },
        ..ParseOptions::default()
    };
    let mut codec = DatagramCodec::new(opts);
    let big_body = recv(&mut codec, b"PUT / ACORN/1.0\r\n\r\n0123456789a");
    assert_eq!(
        big_body[0].as_ref().unwrap_err().kind,
        ErrorKind::Limit(Limit::BodySize)
    );
    let mut head = b"PUT / ACORN/1.0\r\n".to_vec();
    head.extend(std::iter::repeat_n(b"X: y\r\n", 20).flatten());
    head.extend_from_slice(b"\r\n");
    let big_head = recv(&mut codec, &head);
    assert_eq!(
        big_head[0].as_ref().unwrap_err().kind,
        ErrorKind::Limit(Limit::HeadSize)
    );
    // And the codec goes on.
    assert!(recv(&mut codec, b"PUT / ACORN/1.0\r\n\r\n0123456789")[0].is_ok());
}

/// The corpus is made of datagrams: the codec agrees with `parse_datagram`
/// on every non-empty case.
#[test]
fn corpus_agrees_with_parse_datagram() {
    let mut n = 0;
    for (name, bytes) in corpus_files("") {
        if bytes.is_empty() {
            // UdpFramed cannot deliver an empty datagram as an item (see
            // `empty_datagram_yields_nothing`).
            continue;
        }
        let opts = corpus_options(&name);
        let mut codec = DatagramCodec::new(opts);
        let items = recv(&mut codec, &bytes);
        let want = Pdu::parse_datagram(bytes.clone(), &opts);
        assert_eq!(items, vec![want], "{name}");
        n += 1;
    }
    assert!(n == 0 || n > 100);
}

#[test]
fn small_datagrams_do_not_pin_the_receive_buffer() {
    let mut codec = DatagramCodec::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let base = buf.as_ptr() as usize;
    buf.extend_from_slice(b"REG / ACORN/1.0\r\n\r\n");
    let pdu = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    // The PDU has its own small buffer; the 64 KiB one stays reusable.
    assert!(buf.is_empty() && buf.capacity() >= 64 * 1024);
    assert_eq!(buf.as_ptr() as usize, base);
    assert_ne!(pdu.as_bytes().as_ptr() as usize, base);
    // A datagram that fills most of its buffer is split off as is.
    let big = vec![b'x'; 1000];
    let mut dgram = b"PUT / ACORN/1.0\r\n\r\n".to_vec();
    dgram.extend_from_slice(&big);
    let mut buf = BytesMut::from(&dgram[..]);
    let base = buf.as_ptr() as usize;
    let pdu = codec.decode(&mut buf).unwrap().unwrap().unwrap();
    assert_eq!(pdu.as_bytes().as_ptr() as usize, base);
    assert_eq!(pdu.body(), &big[..]);
}

#[test]
fn encoder_writes_one_datagram_and_refuses_oversized_ones() {
    let mut codec = DatagramCodec::default().with_max_datagram_len(200);
    let mut wr = BytesMut::new();
    // No Content-Length needed on a datagram (builder default: written when
    // there is a body; Never leaves it out).
    let mut b = PduBuilder::request("PUT", "/x").unwrap();
    b.content_length(ContentLength::Never).body("hi");
    codec.encode(&b, &mut wr).unwrap();
    assert_eq!(&wr[..], b"PUT /x ACORN/1.0\r\n\r\nhi");

    let big = typical(1, &[b'z'; 300]);
    let mut wr = BytesMut::from(&b"prefix"[..]);
    match codec.encode(big.clone(), &mut wr) {
        Err(e @ CodecError::DatagramTooLarge { len, max: 200 }) => {
            assert!(len > 300);
            assert!(!e.is_connection_fatal());
        }
        other => panic!("{other:?}"),
    }
    // Nothing of the refused PDU is left for UdpFramed to send.
    assert_eq!(&wr[..], b"prefix");
    let mut wr = BytesMut::new();
    DatagramCodec::default().encode(&big, &mut wr).unwrap();
    assert!(wr.len() <= MAX_UDP_PAYLOAD);
}

#[test]
fn forwarding_parsed_pdus() {
    let mut codec = DatagramCodec::default();
    let raw = Bytes::from_static(b"PUT /x ACORN/1.0\r\nx-odd:   v  \r\n\r\nhi");
    let p = Pdu::parse_datagram(raw.clone(), &ParseOptions::default()).unwrap();
    let mut wr = BytesMut::new();
    codec.encode(&p, &mut wr).unwrap();
    assert_eq!(&wr[..], &raw[..]);
    let lf = Bytes::from_static(b"PUT /x ACORN/1.0\nA: 1\n\nhi");
    let p = Pdu::parse_datagram(lf, &ParseOptions::lenient()).unwrap();
    let mut wr = BytesMut::new();
    codec.encode(p, &mut wr).unwrap();
    assert_eq!(
        &wr[..],
        b"PUT /x ACORN/1.0\r\nA: 1\r\nContent-Length: 2\r\n\r\nhi"
    );
}
