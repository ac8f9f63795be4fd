//! Forwarding parsed PDUs: their received bytes when those are valid on the
//! outgoing transport, canonical bytes otherwise.
//!
//! Re-encoding through [`PduBuilder::from_pdu`] copies every header; a relay
//! or a retransmission of a received PDU should not pay that when the
//! received bytes are already what a strict peer accepts.

use crate::wire::{Pdu, PduBuilder};
use bytes::{BufMut, BytesMut};

/// True when every line of `head` ends in CRLF. A PDU parsed with
/// `allow_bare_lf` may not; a strict peer would refuse those bytes, so they
/// are re-encoded instead of forwarded.
fn head_is_crlf(head: &[u8]) -> bool {
    memchr::memchr_iter(b'\n', head).all(|i| i > 0 && head[i - 1] == b'\r')
}

/// True when the received head ends in its empty line. A datagram may end
/// its head after its last line (SPEC §10); such bytes are not valid on a
/// stream, nor what a strict peer reads, so they are re-encoded.
fn head_is_complete(head: &[u8]) -> bool {
    head_is_crlf(head) && head.ends_with(b"\r\n\r\n")
}

/// Stream framing (SPEC §1: the body is exactly `Content-Length` bytes).
/// - strict line ends and a body that is empty or announced: the received
///   bytes as they are;
/// - strict line ends, a body without `Content-Length` (a datagram): the
///   received head, `Content-Length`, the empty line and the body;
/// - bare LF line ends, or a datagram head without its empty line: the
///   canonical encoding.
pub(crate) fn write_for_stream(pdu: &Pdu, dst: &mut BytesMut) {
    let head = pdu.head();
    if !head_is_complete(head) {
        PduBuilder::from_pdu(pdu).encode_for_stream(dst);
        return;
    }
    let body = pdu.body();
    if body.is_empty() || pdu.layout().content_length().is_some() {
        dst.extend_from_slice(pdu.as_bytes());
        return;
    }
    let len = body.len().to_string();
    // The head ends with the CRLF of its empty line: insert before it.
    let lines = &head[..head.len() - 2];
    dst.reserve(lines.len() + 18 + len.len() + 2 + body.len());
    dst.put_slice(lines);
    dst.put_slice(b"Content-Length: ");
    dst.put_slice(len.as_bytes());
    dst.put_slice(b"\r\n\r\n");
    dst.put_slice(body);
}

/// Datagram framing: the body is the rest of the datagram, so the received
/// bytes serve as they are unless they carry bare LF line ends or lack the
/// empty line (the common subset, SPEC §10).
pub(crate) fn write_for_datagram(pdu: &Pdu, dst: &mut BytesMut) {
    if head_is_complete(pdu.head()) {
        dst.extend_from_slice(pdu.as_bytes());
    } else {
        PduBuilder::from_pdu(pdu).encode(dst);
    }
}
