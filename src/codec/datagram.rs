//! One PDU per datagram (UDP), for `tokio_util::udp::UdpFramed`.
//!
//! SPEC §1 "Body": a datagram is exactly one PDU, its body is everything
//! after the empty line, and a `Content-Length`, if present, must equal that
//! length. [`DatagramCodec`] applies [`Pdu::parse_datagram`] to each
//! datagram.
//!
//! # Why the item is `Result<Pdu, ParseError>`
//! On a datagram transport a malformed PDU spoils that datagram only: the
//! next one starts cleanly. `UdpFramed` would survive a decoder `Err` if the
//! decoder consumed the datagram first, but it hands that error to the
//! consumer through the same channel as a socket failure, and the usual ways
//! of consuming a stream of `Result`s (`try_next()?`, `try_for_each`,
//! `while let Some(Ok(..))`, `forward`) stop at the first `Err`. One
//! garbage packet from anyone on the network must not stop a node from
//! reading its socket, so a bad datagram is an `Ok(Err(parse_error))` item
//! and the outer `Err` is kept for the socket itself ([`CodecError::Io`]).
//!
//! # Bounds
//! Receiving is bounded by the parse limits: the head is scanned under
//! `max_head_len` and `max_line_len`, the body is only measured (never
//! scanned) against `max_body_len`, so any datagram above
//! `max_head_len + max_body_len` is refused and the work per datagram never
//! exceeds the head limit. Sending is bounded by
//! [`DatagramCodec::with_max_datagram_len`] (default: the largest UDP
//! payload over IPv4), refused before anything reaches the socket.
//!
//! Zero-length datagrams produce no item: `UdpFramed` cannot tell them from
//! "no more frames in this datagram", and they cannot hold a PDU anyway.

use super::error::CodecError;
use super::raw;
use crate::wire::{ParseError, ParseOptions, Pdu, PduBuilder};
use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// The largest UDP payload over IPv4 (65,535 − 8 UDP − 20 IP header bytes).
pub const MAX_UDP_PAYLOAD: usize = 65_507;

/// `tokio_util` codec for Acorn PDUs on a datagram transport.
#[derive(Debug, Clone)]
pub struct DatagramCodec {
    opts: ParseOptions,
    max_datagram_len: usize,
}

impl Default for DatagramCodec {
    fn default() -> Self {
        DatagramCodec::new(ParseOptions::default())
    }
}

impl DatagramCodec {
    /// A codec applying `opts` to every received datagram.
    pub fn new(opts: ParseOptions) -> Self {
        DatagramCodec {
            opts,
            max_datagram_len: MAX_UDP_PAYLOAD,
        }
    }

    /// Refuse to encode a PDU longer than `max` bytes
    /// ([`CodecError::DatagramTooLarge`]). Lower it to the path MTU budget to
    /// avoid IP fragmentation.
    pub fn with_max_datagram_len(mut self, max: usize) -> Self {
        self.max_datagram_len = max;
        self
    }

    /// The options this codec parses with.
    pub fn options(&self) -> &ParseOptions {
        &self.opts
    }

    /// The largest datagram the encoder writes.
    pub fn max_datagram_len(&self) -> usize {
        self.max_datagram_len
    }

    /// Run `encode` into `dst`, then refuse the result if it is too large.
    /// On refusal `dst` is truncated back: `UdpFramed` keeps its write buffer
    /// after an encoder error and would otherwise send the refused bytes in
    /// front of the next datagram.
    fn bounded(
        &self,
        dst: &mut BytesMut,
        encode: impl FnOnce(&mut BytesMut),
    ) -> Result<(), CodecError> {
        let before = dst.len();
        encode(dst);
        let len = dst.len() - before;
        if len > self.max_datagram_len {
            dst.truncate(before);
            return Err(CodecError::DatagramTooLarge {
                len,
                max: self.max_datagram_len,
            });
        }
        Ok(())
    }
}

impl Decoder for DatagramCodec {
    type Item = Result<Pdu, ParseError>;
    type Error = CodecError;

    /// Takes the whole buffer as one datagram (`UdpFramed` passes exactly
    /// one) and always leaves it empty, so the next call yields `None` and
    /// the socket is read again.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, CodecError> {
        if src.is_empty() {
            return Ok(None);
        }
        // UdpFramed receives into a 64 KiB buffer. Cutting a small datagram
        // out of it would pin the whole allocation for as long as the PDU
        // lives (a session holding PDUs for retransmission or reordering
        // would hold 64 KiB per PDU) and make UdpFramed allocate a new
        // buffer for every datagram. So a datagram that fills less than half
        // of the buffer is copied out (one small copy, bounded by the
        // datagram size) and the buffer is reused; a large one is split off
        // without copying.
        let buf: Bytes = if src.capacity() / 2 > src.len() {
            let b = Bytes::copy_from_slice(src);
            src.clear();
            b
        } else {
            src.split().freeze()
        };
        let result = Pdu::parse_datagram(buf, &self.opts);
        if let Err(e) = &result {
            tracing::debug!(error = %e, "acorn datagram refused");
        }
        Ok(Some(result))
    }
}

impl Encoder<PduBuilder> for DatagramCodec {
    type Error = CodecError;

    fn encode(&mut self, item: PduBuilder, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.bounded(dst, |d| item.encode(d))
    }
}

impl Encoder<&PduBuilder> for DatagramCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &PduBuilder, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.bounded(dst, |d| item.encode(d))
    }
}

/// Forwards a parsed PDU as received (re-encoded only if it has bare-LF line ends).
impl Encoder<&Pdu> for DatagramCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.bounded(dst, |d| raw::write_for_datagram(item, d))
    }
}

impl Encoder<Pdu> for DatagramCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        self.bounded(dst, |d| raw::write_for_datagram(&item, d))
    }
}
