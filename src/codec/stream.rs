//! Content-Length framing of PDUs on a byte stream (TCP).
//!
//! SPEC §1 "Body": on a stream a head ends at the empty line and the body is
//! exactly `Content-Length` bytes (none without it). [`StreamCodec`] is the
//! `tokio_util` codec for that framing.
//!
//! # How a PDU is decoded
//! 1. **Find the end of the head.** The bytes are scanned for line feeds
//!    once, resuming where the previous call stopped, so a head that arrives
//!    one byte per read costs linear work ([`StreamCodec::bytes_scanned`]
//!    counts it). While scanning, each line is held to `max_line_len` and
//!    the head to `max_head_len`, so the error comes as soon as the buffered
//!    head has passed a limit, before `Framed` reads (and buffers) more.
//! 2. **Parse the head once** with [`parse_head`], which applies the grammar
//!    and the remaining limits and validates `Content-Length` (digits only,
//!    repeated values must agree, at most `max_body_len`).
//! 3. **Wait for the body.** The buffer is grown once to hold the whole PDU
//!    (up to [`StreamCodec::with_reserve_limit`]), then the PDU is cut off
//!    the buffer with `split_to(..).freeze()`: the returned [`Pdu`] shares
//!    the read buffer, nothing is copied.
//!
//! # After an error
//! A framing error means the receiver no longer knows where the next PDU
//! starts. The decoder enters a failed state and every later `decode` or
//! `decode_eof` returns the same error; the buffer is left as it was (so the
//! caller can log the offending bytes). `Framed` itself also stops reading
//! after a decoder error. The encoder is unaffected, so a node can still
//! answer with an error reply before closing.

use super::error::{CodecError, Failure};
use super::raw;
use crate::wire::{parse_head, ErrorKind, Head, Limit, ParseError, ParseOptions, Pdu, PduBuilder};
use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

/// Default for [`StreamCodec::with_reserve_limit`]: 1 MiB.
pub const DEFAULT_RESERVE_LIMIT: usize = 1024 * 1024;

/// Where the decoder is within the current PDU.
///
/// `Body` holds the parsed head inline (its headers sit in a `SmallVec`):
/// there is one `State` per connection, and boxing the head would cost an
/// allocation per PDU.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
enum State {
    /// Looking for the empty line. `scanned` is the first byte not yet
    /// examined, `line_start` the first byte of the line being scanned; both
    /// count from the start of the PDU (the start of the buffer).
    Head { scanned: usize, line_start: usize },
    /// The head is parsed; the PDU is `total` bytes long.
    Body { head: Head, total: usize },
    /// A framing error happened; it is replayed on every call.
    Failed(Failure),
}

/// What one scan of the buffered head found.
enum Scan {
    /// The head is the first `n` bytes.
    Complete(usize),
    /// No empty line yet, and no limit passed.
    Partial,
    /// The head breaks the line ending rule or a limit. The error is the
    /// scanner's own, used only if the parser does not name a better one.
    Invalid(ParseError),
}

/// `tokio_util` codec for Acorn PDUs on a stream transport.
///
/// Decodes [`Pdu`]s (see the module documentation for the algorithm and the
/// failure behaviour) and encodes [`PduBuilder`]s and [`Pdu`]s with
/// `Content-Length` whenever there is a body.
#[derive(Debug, Clone)]
pub struct StreamCodec {
    opts: ParseOptions,
    state: State,
    reserve_limit: usize,
    bytes_scanned: u64,
    heads_parsed: u64,
    /// Stream offset of the first byte of the current PDU.
    pdu_start: u64,
}

impl Default for StreamCodec {
    fn default() -> Self {
        StreamCodec::new(ParseOptions::default())
    }
}

impl StreamCodec {
    /// A codec applying `opts` (limits, bare-LF leniency) to every PDU.
    pub fn new(opts: ParseOptions) -> Self {
        StreamCodec {
            opts,
            state: State::Head {
                scanned: 0,
                line_start: 0,
            },
            reserve_limit: DEFAULT_RESERVE_LIMIT,
            bytes_scanned: 0,
            heads_parsed: 0,
            pdu_start: 0,
        }
    }

    /// Bound how much buffer is reserved ahead of a body that has not arrived.
    ///
    /// Once a head is parsed the buffer is grown to hold the whole PDU in one
    /// step, so a large body is not copied again on every read. A body
    /// larger than `limit` is instead reserved in `limit`-sized steps as it
    /// arrives: otherwise a peer could make the node commit up to
    /// `max_body_len` per connection just by announcing it (SPEC §1
    /// "Limits": nothing a peer sends may make the receiver allocate in
    /// proportion to a number written in a header). `usize::MAX` always
    /// reserves the whole PDU.
    pub fn with_reserve_limit(mut self, limit: usize) -> Self {
        self.reserve_limit = limit.max(1);
        self
    }

    /// The options this codec parses with.
    pub fn options(&self) -> &ParseOptions {
        &self.opts
    }

    /// Bytes the head scanner has examined since the codec was created. Each
    /// buffered head byte is examined once however the input is split, so
    /// this stays at (at most) the total head length; tests use it to check
    /// that decoding is linear.
    pub fn bytes_scanned(&self) -> u64 {
        self.bytes_scanned
    }

    /// How many times the head parser ran (once per complete head).
    pub fn heads_parsed(&self) -> u64 {
        self.heads_parsed
    }

    /// Stream offset of the first byte of the PDU being decoded (the total
    /// length of the PDUs already returned).
    pub fn stream_offset(&self) -> u64 {
        self.pdu_start
    }

    /// Whether a framing error has made the decoder refuse all input.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Head bound as the parser applies it (offsets are `u32` inside a PDU).
    fn max_head(&self) -> usize {
        self.opts.limits.max_head_len.min(u32::MAX as usize)
    }

    /// Scan `buf` for the empty line that ends the head, starting where the
    /// last call stopped. Only bytes below `max_head_len` are examined: the
    /// head's last line feed must lie there.
    fn scan_head(&mut self, buf: &[u8]) -> Scan {
        let State::Head {
            scanned,
            line_start,
        } = &mut self.state
        else {
            unreachable!("scan_head is only called while reading a head")
        };
        let max_head = self.opts.limits.max_head_len.min(u32::MAX as usize);
        let max_line = self.opts.limits.max_line_len;
        let end = buf.len().min(max_head);
        let base = *scanned;
        let mut ls = *line_start;
        if base < end {
            for rel in memchr::memchr_iter(b'\n', &buf[base..end]) {
                let lf = base + rel;
                let cr = lf > ls && buf[lf - 1] == b'\r';
                if !cr && !self.opts.allow_bare_lf {
                    self.bytes_scanned += (lf + 1 - base) as u64;
                    return Scan::Invalid(ParseError::new(ErrorKind::BareLf, lf, "CR before LF"));
                }
                let content_end = if cr { lf - 1 } else { lf };
                if content_end - ls > max_line {
                    self.bytes_scanned += (lf + 1 - base) as u64;
                    return Scan::Invalid(ParseError::new(
                        ErrorKind::Limit(Limit::LineLength),
                        ls + max_line,
                        "a shorter line",
                    ));
                }
                if content_end == ls {
                    self.bytes_scanned += (lf + 1 - base) as u64;
                    return Scan::Complete(lf + 1);
                }
                ls = lf + 1;
            }
            self.bytes_scanned += (end - base) as u64;
            *scanned = end;
            *line_start = ls;
        }
        // A line of max_line bytes may still be followed by CR LF.
        if end - ls > max_line.saturating_add(1) {
            return Scan::Invalid(ParseError::new(
                ErrorKind::Limit(Limit::LineLength),
                ls + max_line,
                "a shorter line",
            ));
        }
        if buf.len() > max_head {
            return Scan::Invalid(ParseError::new(
                ErrorKind::Limit(Limit::HeadSize),
                max_head,
                "a smaller head",
            ));
        }
        Scan::Partial
    }

    /// Enter the failed state and return the error.
    fn fail(&mut self, failure: Failure) -> CodecError {
        let err = failure.to_error();
        tracing::debug!(error = %err, "acorn stream framing failed");
        self.state = State::Failed(failure);
        err
    }

    fn fail_parse(&mut self, error: ParseError) -> CodecError {
        self.fail(Failure::Parse {
            error,
            pdu_start: self.pdu_start,
        })
    }

    /// The error to report for a head the scanner rejected: the parser's
    /// verdict on the same bytes, so the codec names the first problem in
    /// the head exactly as `parse_datagram` would. The parser sees at most
    /// `max_head_len + 1` bytes, a cut that depends only on the content,
    /// never on how the input was split across reads.
    fn invalid_head(&mut self, buf: &[u8], scanner: ParseError) -> CodecError {
        let cut = buf.len().min(self.max_head().saturating_add(1));
        self.heads_parsed += 1;
        let error = match parse_head(&buf[..cut], &self.opts) {
            Err(e) if e.kind != ErrorKind::UnterminatedHead => e,
            _ => scanner,
        };
        self.fail_parse(error)
    }
}

impl Decoder for StreamCodec {
    type Item = Pdu;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CodecError> {
        match &self.state {
            State::Failed(f) => return Err(f.to_error()),
            State::Head { .. } => match self.scan_head(src) {
                Scan::Partial => return Ok(None),
                Scan::Invalid(e) => return Err(self.invalid_head(src, e)),
                Scan::Complete(head_len) => {
                    self.heads_parsed += 1;
                    let head = match parse_head(&src[..head_len], &self.opts) {
                        Ok(h) => h,
                        Err(e) => return Err(self.fail_parse(e)),
                    };
                    // parse_head has capped Content-Length at max_body_len;
                    // spans inside a PDU are u32, so the whole PDU must fit.
                    let total = match head_len.checked_add(head.body_len()) {
                        Some(t) if t <= u32::MAX as usize => t,
                        _ => {
                            return Err(self.fail_parse(ParseError::new(
                                ErrorKind::Limit(Limit::BodySize),
                                head_len,
                                "a PDU under 4 GiB",
                            )))
                        }
                    };
                    self.state = State::Body { head, total };
                }
            },
            State::Body { .. } => {}
        }
        let State::Body { total, .. } = self.state else {
            unreachable!("the head is complete here")
        };
        if src.len() < total {
            src.reserve((total - src.len()).min(self.reserve_limit));
            return Ok(None);
        }
        let State::Body { head, .. } = std::mem::replace(
            &mut self.state,
            State::Head {
                scanned: 0,
                line_start: 0,
            },
        ) else {
            unreachable!("the head is complete here")
        };
        self.pdu_start += total as u64;
        Ok(Some(head.into_pdu(src.split_to(total).freeze())))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CodecError> {
        if let Some(pdu) = self.decode(src)? {
            return Ok(Some(pdu));
        }
        let expected = match &self.state {
            State::Head { .. } if src.is_empty() => return Ok(None),
            State::Head { .. } => None,
            State::Body { total, .. } => Some(*total),
            State::Failed(f) => return Err(f.to_error()),
        };
        Err(self.fail(Failure::Truncated {
            buffered: src.len(),
            expected,
            pdu_start: self.pdu_start,
        }))
    }
}

impl Encoder<PduBuilder> for StreamCodec {
    type Error = CodecError;

    fn encode(&mut self, item: PduBuilder, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode_for_stream(dst);
        Ok(())
    }
}

impl Encoder<&PduBuilder> for StreamCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &PduBuilder, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode_for_stream(dst);
        Ok(())
    }
}

/// Forwards a parsed PDU as it was received when its bytes already frame
/// themselves on a stream; see [`raw::write_for_stream`].
impl Encoder<&Pdu> for StreamCodec {
    type Error = CodecError;

    fn encode(&mut self, item: &Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        raw::write_for_stream(item, dst);
        Ok(())
    }
}

impl Encoder<Pdu> for StreamCodec {
    type Error = CodecError;

    fn encode(&mut self, item: Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
        raw::write_for_stream(&item, dst);
        Ok(())
    }
}
