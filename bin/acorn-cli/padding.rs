//! The conformance runner's first datagram of a case, padded (SPEC §9).
//!
//! **Decision:** a peer under test keeps SPEC §9's rule — toward an address
//! that has not proven it receives its PDUs it sends at most 3x the bytes
//! received from it — and the seeds' hand-written PDUs are tiny (a `REG` of
//! 64 bytes earns 192 bytes, less than an ACK and a `200`). An honest
//! client facing that rule does what QUIC clients do with their Initial
//! packets (RFC 9000 §8.1, §14.1): it pads its first datagram to
//! [`PADDED_LEN`] bytes, so the answers of the handshake fit in the budget
//! without raising the peer's factor. The runner pads the first PDU it
//! sends in a case over UDP with an `X-Padding` header (an unknown header,
//! which SPEC §2 says a receiver ignores) of `0`s up to that size; a PDU
//! already that long, or one that does not parse (hostile input stays as
//! the script wrote it), is sent unchanged.

use acorn::wire::{ParseOptions, Pdu, PduBuilder};
use bytes::Bytes;

/// What the first datagram of a case is padded to: the engine's default
/// largest datagram, as QUIC pads its Initial packets to 1200 bytes.
pub const PADDED_LEN: usize = 1200;

/// The padding header (`X-` : no meaning to any peer).
pub const PADDING_HEADER: &str = "X-Padding";

/// `bytes` padded to [`PADDED_LEN`] with a [`PADDING_HEADER`] header when
/// it is shorter (`Some`, unchanged when it is not); `None` when it does
/// not parse (sent as it is, and the next PDU is the one padded).
pub fn pad(bytes: Bytes) -> Option<Bytes> {
    let pdu = Pdu::parse_datagram(bytes.clone(), &ParseOptions::default()).ok()?;
    let mut b = PduBuilder::from_pdu(&pdu);
    // The head as the builder writes it (it may add `Content-Length`),
    // then "X-Padding: " and "\r\n" around the value.
    let built = b.to_bytes().len().max(bytes.len());
    let overhead = PADDING_HEADER.len() + 4;
    let Some(room) = PADDED_LEN.checked_sub(built + overhead).filter(|r| *r > 0) else {
        return Some(bytes);
    };
    if b.set_header(PADDING_HEADER, "0".repeat(room)).is_err() {
        return Some(bytes);
    }
    let padded = b.to_bytes();
    Some(if padded.len() > PADDED_LEN {
        bytes
    } else {
        padded
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_request_is_padded_to_the_size_and_still_parses() {
        let req = Bytes::from_static(b"REG /path ACORN/1.0\r\nTX-ID: 11\r\nSeq: 0\r\n\r\n");
        let p = pad(req).unwrap();
        assert_eq!(p.len(), PADDED_LEN);
        let pdu = Pdu::parse_datagram(p, &ParseOptions::default()).unwrap();
        assert_eq!(pdu.method(), Some("REG"));
        assert_eq!(pdu.tx_id().unwrap(), Some("11"));
    }

    #[test]
    fn garbage_and_long_pdus_are_left_alone() {
        let junk = Bytes::from_static(b"\x00\x01 not a pdu");
        assert_eq!(pad(junk), None);
        let mut long = b"PUT /x ACORN/1.0\r\nTX-ID: 1\r\n\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', PADDED_LEN));
        let long = Bytes::from(long);
        assert_eq!(pad(long.clone()), Some(long));
        // A request with a body is padded too, its body intact.
        let put = Bytes::from_static(b"PUT /d ACORN/1.0\r\nTX-ID: d1\r\n\r\nonce");
        let p = pad(put).unwrap();
        assert_eq!(p.len(), PADDED_LEN);
        let pdu = Pdu::parse_datagram(p, &ParseOptions::default()).unwrap();
        assert_eq!(pdu.body(), b"once");
    }
}
