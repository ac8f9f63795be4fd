//! Content-Length framing of PDUs on a byte stream (TCP).
//!
//! SPEC §1 "Body": on a stream a head ends at the empty line and the body is
//! exactly `Content-Length` bytes (none without it). [`StreamCodec`] is the
//! `tokio_util` codec for that framing.
//!
//! # How a PDU is decoded
//! 1. **First look: parse what is there.** When a new PDU starts and bytes
//!    are buffered, the decoder hands them (at most `max_head_len + 1`) to
//!    [`parse_head`]. With pipelined PDUs, or a head that came in one read,
//!    the head is complete and this single pass is all the work there is:
//!    the parser finds the lines, applies the grammar and every limit, and
//!    validates `Content-Length` (digits only, repeated values agree, at
//!    most `max_body_len`). Any error it reports is final: a complete line
//!    never becomes valid, and a line or head over its limit stays over it.
//! 2. **Otherwise scan as bytes arrive.** If the parser only found the head
//!    unfinished, the decoder scans for the empty line, resuming where the
//!    previous call stopped, so a head that arrives one byte per read costs
//!    linear work ([`StreamCodec::bytes_scanned`],
//!    [`StreamCodec::bytes_parsed`]). Each line is held to `max_line_len`
//!    and the CRLF rule and the head to `max_head_len` as it is scanned, so
//!    the error comes as soon as the buffered head has passed a limit,
//!    before `Framed` reads (and buffers) more. When the empty line is found
//!    the head is parsed, once.
//! 3. **Wait for the body.** The buffer is grown once to hold the whole PDU
//!    (up to [`StreamCodec::with_reserve_limit`]), then the PDU is cut off
//!    the buffer with `split_to(..).freeze()`: the returned [`Pdu`] shares
//!    the read buffer, nothing is copied.
//!
//! The verdict never depends on how the input was split: whichever way the
//! head is found, an error is the parser's verdict on the same bytes (the
//! head, or its first `max_head_len + 1` bytes), so it names the first
//! offending line exactly as `parse_datagram` would. Only its timing can
//! differ: a malformed line seen at the first look is reported at once,
//! while a head that trickles in is judged when it is complete, passes a
//! limit, or is cut short by the end of the stream (`decode_eof` then
//! reports the malformed line, if one arrived, rather than the truncation).
//! The tests check this at every split point of the corpus, and the
//! `stream_chunks` fuzz target against random splits.
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

/// The state at the start of a PDU.
const NEW_HEAD: State = State::Head {
    scanned: 0,
    line_start: 0,
};

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
    parse_calls: u64,
    bytes_parsed: u64,
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
            state: NEW_HEAD,
            reserve_limit: DEFAULT_RESERVE_LIMIT,
            bytes_scanned: 0,
            parse_calls: 0,
            bytes_parsed: 0,
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

    /// Bytes the head scanner has examined since the codec was created.
    /// The scan resumes where it stopped, so each head byte is examined at
    /// most once however the input is split, and bodies never are. Tests
    /// use it, with [`Self::bytes_parsed`], to check that decoding is linear.
    pub fn bytes_scanned(&self) -> u64 {
        self.bytes_scanned
    }

    /// Bytes [`parse_head`] has worked through since the codec was created:
    /// the head for a successful parse, everything it was given otherwise.
    pub fn bytes_parsed(&self) -> u64 {
        self.bytes_parsed
    }

    /// Calls of [`parse_head`]: one per PDU whose head was complete at the
    /// first look, two when it was not (the first look, then the parse of
    /// the completed head).
    pub fn parse_calls(&self) -> u64 {
        self.parse_calls
    }

    /// Stream offset of the first byte of the PDU being decoded (the total
    /// length of the PDUs already returned).
    pub fn stream_offset(&self) -> u64 {
        self.pdu_start
    }

    /// Whether the head of the current PDU has been read (the decoder waits
    /// for its body). A reader uses it to time heads (SPEC §9 "TCP": a head
    /// must arrive within a header timeout) apart from bodies.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. })
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
    /// head's last line feed must lie there. Each line feed ends a line that
    /// is checked against `max_line_len` and the CRLF rule right away, so an
    /// incomplete head fails as soon as it breaks a limit.
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

    /// [`parse_head`], counted: a parsed head counts its length (the
    /// parser stops at the empty line), a failure all of `buf`.
    #[inline(always)]
    fn parse(&mut self, buf: &[u8]) -> Result<Head, ParseError> {
        self.parse_calls += 1;
        let r = parse_head(buf, &self.opts);
        self.bytes_parsed += r.as_ref().map_or(buf.len(), Head::len) as u64;
        r
    }

    /// The length of the PDU `head` starts, checked to fit the spans of a
    /// [`Pdu`] (`parse_head` has already capped `Content-Length` at
    /// `max_body_len`).
    fn pdu_len(&mut self, head: &Head) -> Result<usize, CodecError> {
        match head.len().checked_add(head.body_len()) {
            Some(t) if t <= u32::MAX as usize => Ok(t),
            _ => Err(self.fail_parse(ParseError::new(
                ErrorKind::Limit(Limit::BodySize),
                head.len(),
                "a PDU under 4 GiB",
            ))),
        }
    }

    /// A parsed head: cut the PDU out of the buffer if it is all there,
    /// else reserve room for it and wait.
    #[inline(always)]
    fn frame(&mut self, head: Head, src: &mut BytesMut) -> Result<Option<Pdu>, CodecError> {
        let total = self.pdu_len(&head)?;
        if src.len() < total {
            self.reserve_body(src, total);
            self.state = State::Body { head, total };
            return Ok(None);
        }
        self.state = NEW_HEAD;
        self.pdu_start += total as u64;
        Ok(Some(head.into_pdu(src.split_to(total).freeze())))
    }

    /// Grow the buffer towards the whole PDU (see [`Self::with_reserve_limit`]).
    fn reserve_body(&self, src: &mut BytesMut, total: usize) {
        src.reserve((total - src.len()).min(self.reserve_limit));
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
        let error = match self.parse(&buf[..cut]) {
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
            State::Failed(f) => Err(f.to_error()),
            State::Body { total, .. } => {
                let total = *total;
                if src.len() < total {
                    self.reserve_body(src, total);
                    return Ok(None);
                }
                let State::Body { head, .. } = std::mem::replace(&mut self.state, NEW_HEAD) else {
                    unreachable!("matched above")
                };
                self.pdu_start += total as u64;
                Ok(Some(head.into_pdu(src.split_to(total).freeze())))
            }
            State::Head { scanned, .. } => {
                if *scanned == 0 && !src.is_empty() {
                    // First look at a new PDU.
                    let cut = src.len().min(self.max_head().saturating_add(1));
                    match self.parse(&src[..cut]) {
                        Ok(head) => return self.frame(head, src),
                        Err(e) if e.kind == ErrorKind::UnterminatedHead => {}
                        Err(e) => return Err(self.fail_parse(e)),
                    }
                }
                let head_len = match self.scan_head(src) {
                    Scan::Partial => return Ok(None),
                    Scan::Invalid(e) => return Err(self.invalid_head(src, e)),
                    Scan::Complete(n) => n,
                };
                match self.parse(&src[..head_len]) {
                    Ok(head) => self.frame(head, src),
                    Err(e) => Err(self.fail_parse(e)),
                }
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Pdu>, CodecError> {
        if let Some(pdu) = self.decode(src)? {
            return Ok(Some(pdu));
        }
        let expected = match &self.state {
            State::Head { .. } if src.is_empty() => return Ok(None),
            State::Head { .. } => {
                // The stream ends inside a head. If a line that did arrive
                // is already malformed, that is the error to report: it is
                // what the first look would have said had these bytes come
                // in one read, so the verdict does not depend on the split.
                let cut = src.len().min(self.max_head().saturating_add(1));
                match self.parse(&src[..cut]) {
                    Err(e) if e.kind != ErrorKind::UnterminatedHead => {
                        return Err(self.fail_parse(e))
                    }
                    _ => None,
                }
            }
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
/// themselves on a stream; see `raw::write_for_stream`.
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
