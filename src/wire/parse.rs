//! The parse driver: splits lines under the limits and applies the rules.
//!
//! ABNF `acorn-pdu = start-line *( header-line line-end ) line-end body`
//! (`start-line` ends in a `line-end` too; `line-end = CRLF`, or a bare LF
//! under [`ParseOptions::allow_bare_lf`]); a datagram may also end right
//! after its last line (ABNF `datagram-pdu`, SPEC §10). Lines are found inside a window
//! no longer than the line limit, so no input makes the parser scan or hold
//! more than the limits allow.
//!
//! Two paths implement the same rules. The fast path (`start_line_fast`,
//! `headers_fast`) reads each line once with hand-written loops and
//! vouches only for the common shape; any line it is not sure about goes
//! through the reference path (`next_line` and the nom rules of
//! `grammar`), which decides it and gives the exact error. The tests at
//! the end compare the two on generated and mutated PDUs.

use super::error::{ErrorKind, ParseError};
use super::grammar::{self, is_ows, Fail};
use super::limits::{Limit, ParseOptions};
use super::pdu::{
    index_name_len, HeaderSpan, Layout, NameIndex, Pdu, PduRef, PduView, Span, StartSpans,
    INLINE_HEADERS,
};
use bytes::Bytes;
use smallvec::SmallVec;

/// How the body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// The body is the rest of the input (UDP: one PDU per datagram).
    Datagram,
    /// Stop after the empty line; the caller frames the body.
    HeadOnly,
}

/// A line found in the input: `[start, end)` without the line end; `next`
/// is where the following line starts.
struct Line {
    start: usize,
    end: usize,
    next: usize,
}

fn limit(l: Limit, offset: usize, expected: &'static str) -> ParseError {
    ParseError::new(ErrorKind::Limit(l), offset, expected)
}

/// Find the line that starts at `pos` and its ABNF `line-end` (CRLF, or a
/// bare LF when allowed), enforcing the line and head limits: the reference
/// path's line splitter.
#[inline]
fn next_line(
    buf: &[u8],
    pos: usize,
    opts: &ParseOptions,
    max_head: usize,
) -> Result<Line, ParseError> {
    let max_line = opts.limits.max_line_len;
    // A line of max_line bytes plus CRLF fits the window.
    let window_end = buf
        .len()
        .min(pos.saturating_add(max_line).saturating_add(2));
    let window = &buf[pos..window_end];
    let lf = match memchr::memchr(b'\n', window) {
        Some(i) => pos + i,
        None if window_end < buf.len() || window.len() > max_line + 1 => {
            return Err(limit(Limit::LineLength, pos + max_line, "a shorter line"));
        }
        None if buf.len() > max_head => {
            return Err(limit(Limit::HeadSize, max_head, "a smaller head"));
        }
        None => {
            return Err(ParseError::new(
                ErrorKind::UnterminatedHead,
                buf.len(),
                "CRLF and the empty line that ends the head",
            ));
        }
    };
    let end = if lf > pos && buf[lf - 1] == b'\r' {
        lf - 1
    } else if opts.allow_bare_lf {
        lf
    } else {
        return Err(ParseError::new(ErrorKind::BareLf, lf, "CR before LF"));
    };
    if end - pos > max_line {
        return Err(limit(Limit::LineLength, pos + max_line, "a shorter line"));
    }
    if lf + 1 > max_head {
        return Err(limit(Limit::HeadSize, max_head, "a smaller head"));
    }
    Ok(Line {
        start: pos,
        end,
        next: lf + 1,
    })
}

/// Index of the first NUL, CR or LF in `w`, sixteen bytes at a time: where
/// a `raw-value` ends and its `line-end` should begin (ABNF `line-end`).
///
/// Head lines are short (tens of bytes), so a word-at-a-time scan without
/// a call or a setup beats `memchr3` here. `(x - 0x0E..) & !x & 0x80..`
/// flags the bytes below 0x0E; its lowest flag is always exact (borrows only
/// run upward from a flagged byte), so the first flagged byte is checked
/// and, if it is another control byte (a tab, say), the scan resumes after
/// it.
#[inline(always)]
fn first_nul_cr_lf(w: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let low = |x: u64| x.wrapping_sub(ONES * 0x0E) & !x & HIGH;
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_le_bytes(b)
    };
    let mut i = 0;
    while let Some(chunk) = w.get(i..i + 16) {
        let (m0, m1) = (low(word(&chunk[..8])), low(word(&chunk[8..])));
        if m0 | m1 == 0 {
            i += 16;
            continue;
        }
        let j = if m0 != 0 {
            i + (m0.trailing_zeros() / 8) as usize
        } else {
            i + 8 + (m1.trailing_zeros() / 8) as usize
        };
        if matches!(w[j], 0 | b'\r' | b'\n') {
            return Some(j);
        }
        i = j + 1;
    }
    if let Some(chunk) = w.get(i..i + 8) {
        let m = low(word(chunk));
        if m != 0 {
            let j = i + (m.trailing_zeros() / 8) as usize;
            if matches!(w[j], 0 | b'\r' | b'\n') {
                return Some(j);
            }
        }
    }
    w[i..]
        .iter()
        .position(|&b| matches!(b, 0 | b'\r' | b'\n'))
        .map(|p| i + p)
}

/// ABNF `line-end` at `e`: where the next line starts, after its CRLF, or
/// under `allow_bare_lf` after a lone LF.
#[inline(always)]
fn line_end_at(l: &[u8], e: usize, lenient: bool) -> Option<usize> {
    match l.get(e)? {
        b'\r' if l.get(e + 1) == Some(&b'\n') => Some(e + 2),
        b'\n' if lenient => Some(e + 1),
        _ => None,
    }
}

/// The span of `part`, a subslice of `buf`.
#[inline(always)]
fn span_in(buf: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    Span::new(start, start + part.len())
}

/// Fast path of [`start_line`], ABNF `start-line`: the start line matched by
/// [`grammar::request_line_fast`] / [`grammar::reply_line_fast`] and ended
/// by its line end, within the limits. Every byte before the line end then
/// belongs to a class without NUL, CR and LF, so the line needs no separate
/// search for its end. Returns the spans and where the next line starts.
/// `None`: run [`next_line`] and [`start_line`], which give the same result
/// or the exact error.
#[inline(always)]
fn start_line_fast(
    buf: &[u8],
    opts: &ParseOptions,
    max_head: usize,
) -> Option<(StartSpans, usize)> {
    let (start, end) = if grammar::is_reply_line(buf) {
        let ((v, s, t), end) = grammar::reply_line_fast(buf)?;
        let status = s.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        let spans = StartSpans::Reply {
            version: span_in(buf, v),
            status,
            text: span_in(buf, t),
        };
        (spans, end)
    } else {
        let ((m, (t, quoted), v), end) = grammar::request_line_fast(buf)?;
        let spans = StartSpans::Request {
            method: span_in(buf, m),
            target: span_in(buf, t),
            quoted,
            version: span_in(buf, v),
        };
        (spans, end)
    };
    let next = line_end_at(buf, end, opts.allow_bare_lf)?;
    if end > opts.limits.max_line_len || next > max_head {
        return None;
    }
    Some((start, next))
}

/// Fast path of one ABNF `header-line` at `pos`: [`grammar::header_line_fast`]
/// up to the value, then one word-at-a-time scan of the value for its line
/// end ([`first_nul_cr_lf`]), so no byte of the line is looked at twice.
/// `scan_end` (the buffer or the head limit, whichever ends first) bounds
/// the scan; a line found longer than the line limit is left to the
/// reference path. Returns the spans and where the next line starts.
/// `None`: run [`next_line`] and [`grammar::header_line`], which give the
/// same result or the exact error.
#[inline(always)]
fn header_fast(
    buf: &[u8],
    pos: usize,
    scan_end: usize,
    opts: &ParseOptions,
) -> Option<(HeaderSpan, usize)> {
    let l = buf.get(pos..scan_end)?;
    let (n, v) = grammar::header_line_fast(l)?;
    let e = v + first_nul_cr_lf(&l[v..])?;
    let next = line_end_at(l, e, opts.allow_bare_lf)?;
    // `next <= l.len()`, so the line is inside the head limit too.
    if e > opts.limits.max_line_len {
        return None;
    }
    // raw-value without the OWS that follows it (rarely any).
    let end = if e > v && is_ows(l[e - 1]) {
        trim_ows_end(l, v, e)
    } else {
        e
    };
    let span = HeaderSpan {
        name: Span::new(pos, pos + n),
        value: Span::new(pos + v, pos + end),
    };
    Some((span, pos + next))
}

/// Where the OWS that ends `l[from..to]` begins.
#[cold]
fn trim_ows_end(l: &[u8], from: usize, to: usize) -> usize {
    from + l[from..to]
        .iter()
        .rposition(|&b| !is_ows(b))
        .map_or(0, |p| p + 1)
}

/// Whether a header name (already checked to be `name-char`s) is
/// `Content-Length` in any case, two words at a time: the header whose value
/// is ABNF `content-length-value`. Setting 0x20 folds a
/// letter to lower case and leaves `-` as it is; no other `name-char` can
/// become a letter or `-` that way, so the test is exact.
#[inline(always)]
fn is_content_length(name: &[u8]) -> bool {
    const FOLD: u64 = u64::from_le_bytes([0x20; 8]);
    let word = |c: &[u8]| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_le_bytes(b) | FOLD
    };
    const WANT: &[u8; 14] = b"content-length";
    name.len() == 14 && word(&name[..8]) == word(&WANT[..8]) && word(&name[6..]) == word(&WANT[6..])
}

/// Where [`headers_fast`] stopped.
enum Stop {
    /// After the empty line: the head is this long.
    EndOfHead(usize),
    /// At the start of a line it left to the reference path.
    Line(usize),
}

/// The `*( header-line line-end ) line-end` part of ABNF `acorn-pdu` for
/// the common case: [`header_fast`] line after line
/// (checking `Content-Length` as the reference path does), until the empty
/// line or a line it is not sure about. A function of its own so that its
/// loop gets the registers to itself.
#[inline(never)]
fn headers_fast(
    buf: &[u8],
    mut pos: usize,
    opts: &ParseOptions,
    max_head: usize,
    headers: &mut SmallVec<[HeaderSpan; INLINE_HEADERS]>,
    content_len: &mut Option<u64>,
    name_lens: &mut u64,
) -> Result<Stop, ParseError> {
    let scan_end = buf.len().min(max_head);
    let mut count = headers.len();
    while count < opts.limits.max_headers {
        let Some((h, next)) = header_fast(buf, pos, scan_end, opts) else {
            break;
        };
        if h.name.end - h.name.start == 14 && is_content_length(&buf[h.name.range()]) {
            let value = &buf[h.value.range()];
            *content_len = Some(match grammar::dec_u64_fast(value) {
                // The usual value: digits only, short, agreeing with any
                // earlier one, within the body limit.
                Some(n)
                    if content_len.is_none_or(|p| p == n)
                        && n <= opts.limits.max_body_len as u64 =>
                {
                    n
                }
                _ => content_length(value, h.value.start as usize, *content_len, opts)?,
            });
        }
        index_name_len(name_lens, (h.name.end - h.name.start) as usize);
        headers.push(h);
        count += 1;
        pos = next;
    }
    Ok(match empty_line_fast(buf, pos, opts, max_head) {
        Some(next) => Stop::EndOfHead(next),
        None => Stop::Line(pos),
    })
}

/// The empty line (a lone ABNF `line-end`) that ends the head, when it is at
/// `pos` and within the head limit: where the body starts. `None`: let
/// [`next_line`] decide.
#[inline(always)]
fn empty_line_fast(buf: &[u8], pos: usize, opts: &ParseOptions, max_head: usize) -> Option<usize> {
    let next = match buf.get(pos..)? {
        [b'\r', b'\n', ..] => pos + 2,
        [b'\n', ..] if opts.allow_bare_lf => pos + 1,
        _ => return None,
    };
    (next <= max_head).then_some(next)
}

fn locate(f: Fail, line: &[u8], base: usize) -> ParseError {
    f.locate(line, base)
}

fn unwrap<'a, O>(r: grammar::R<'a, O>, line: &'a [u8], base: usize) -> Result<O, ParseError> {
    r.map(|(_, o)| o)
        .map_err(|e| locate(grammar::unwrap_fail(e), line, base))
}

/// ABNF `start-line = ( request-line / reply-line ) line-end`, dispatched
/// by [`grammar::is_reply_line`]: the reference path.
fn start_line(buf: &[u8], line: &Line) -> Result<StartSpans, ParseError> {
    let l = &buf[line.start..line.end];
    let base = line.start;
    let at = |s: &[u8]| {
        Span::new(
            base + (s.as_ptr() as usize - l.as_ptr() as usize),
            base + (s.as_ptr() as usize - l.as_ptr() as usize) + s.len(),
        )
    };
    if l.is_empty() {
        return Err(ParseError::new(ErrorKind::StartLine, base, "a start line"));
    }
    if grammar::is_reply_line(l) {
        let (v, s, t) = unwrap(grammar::reply_line(l), l, base)?;
        let status = s.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        Ok(StartSpans::Reply {
            version: at(v),
            status,
            text: at(t),
        })
    } else {
        let (m, (t, quoted), v) = unwrap(grammar::request_line(l), l, base)?;
        Ok(StartSpans::Request {
            method: at(m),
            target: at(t),
            quoted,
            version: at(v),
        })
    }
}

/// ABNF `content-length-value = 1*DIGIT` (no sign, no spaces, fits u64 and
/// the body limit); repeated headers must agree (SPEC §1: never guess).
fn content_length(
    value: &[u8],
    offset: usize,
    prev: Option<u64>,
    opts: &ParseOptions,
) -> Result<u64, ParseError> {
    let n = match grammar::finish(
        grammar::dec_u64(value),
        ErrorKind::ContentLength,
        "decimal digits only",
    ) {
        Ok(n) => n,
        Err(f) => {
            let mut e = f.locate(value, offset);
            e.kind = ErrorKind::ContentLength;
            if e.expected.is_empty() {
                e.expected = "decimal digits only";
            }
            return Err(e);
        }
    };
    if let Some(p) = prev {
        if p != n {
            return Err(ParseError::new(
                ErrorKind::ContentLengthConflict,
                offset,
                "one Content-Length value",
            ));
        }
    }
    if n > opts.limits.max_body_len as u64 {
        return Err(limit(Limit::BodySize, offset, "a smaller Content-Length"));
    }
    Ok(n)
}

/// ABNF `acorn-pdu = start-line *( header-line line-end ) line-end body`,
/// with `body = *OCTET` framed by `framing`; under datagram framing also
/// ABNF `datagram-pdu` (the head may end with the input). Inlined into its callers so the
/// layout is built where the caller returns it rather than copied there.
#[inline(always)]
fn parse_layout(buf: &[u8], opts: &ParseOptions, framing: Framing) -> Result<Layout, ParseError> {
    parse_layout_with::<true>(buf, opts, framing)
}

/// [`parse_layout`] with (`FAST`) or without the fast paths. Without them
/// every line goes through [`next_line`] and the reference rules: the tests
/// check that both give the same layout or the same error.
#[inline(always)]
fn parse_layout_with<const FAST: bool>(
    buf: &[u8],
    opts: &ParseOptions,
    framing: Framing,
) -> Result<Layout, ParseError> {
    let max_head = opts.limits.max_head_len.min(u32::MAX as usize);
    if buf.len() > u32::MAX as usize {
        return Err(limit(
            Limit::BodySize,
            u32::MAX as usize,
            "a PDU under 4 GiB",
        ));
    }
    let fast_start = if FAST {
        start_line_fast(buf, opts, max_head)
    } else {
        None
    };
    let (start, mut pos) = match fast_start {
        Some(fast) => fast,
        None => {
            let first = next_line(buf, 0, opts, max_head)?;
            (start_line(buf, &first)?, first.next)
        }
    };
    let mut headers: SmallVec<[HeaderSpan; INLINE_HEADERS]> = SmallVec::new();
    let mut content_len: Option<u64> = None;
    let mut name_lens = 0u64;
    let head_len = loop {
        if FAST {
            match headers_fast(
                buf,
                pos,
                opts,
                max_head,
                &mut headers,
                &mut content_len,
                &mut name_lens,
            )? {
                Stop::EndOfHead(next) => break next,
                Stop::Line(at) => pos = at,
            }
        }
        // SPEC §10: a datagram's boundary may end the head right after the
        // last line's line end (no empty line, no body); a stream needs the
        // empty line.
        if framing == Framing::Datagram && pos == buf.len() {
            break pos;
        }
        // Anything else takes the reference path, line by line.
        let line = next_line(buf, pos, opts, max_head)?;
        if line.start == line.end {
            break line.next;
        }
        let l = &buf[line.start..line.end];
        if is_ows(l[0]) {
            return Err(ParseError::new(
                ErrorKind::ObsFold,
                line.start,
                "a header name (line folding is not allowed)",
            ));
        }
        if headers.len() >= opts.limits.max_headers {
            return Err(limit(Limit::HeaderCount, line.start, "fewer header lines"));
        }
        let (name, value) = unwrap(grammar::header_line(l), l, line.start)?;
        let name_span = Span::new(line.start, line.start + name.len());
        let value_start = line.start + (value.as_ptr() as usize - l.as_ptr() as usize);
        if name.len() == 14 && name.eq_ignore_ascii_case(b"content-length") {
            content_len = Some(content_length(value, value_start, content_len, opts)?);
        }
        index_name_len(&mut name_lens, name.len());
        headers.push(HeaderSpan {
            name: name_span,
            value: Span::new(value_start, value_start + value.len()),
        });
        pos = line.next;
    };
    let body = match framing {
        Framing::HeadOnly => Span::new(head_len, head_len),
        Framing::Datagram => {
            let body_len = buf.len() - head_len;
            if body_len > opts.limits.max_body_len {
                return Err(limit(
                    Limit::BodySize,
                    head_len + opts.limits.max_body_len,
                    "a smaller body",
                ));
            }
            if let Some(n) = content_len {
                if n != body_len as u64 {
                    return Err(ParseError::new(
                        ErrorKind::ContentLengthMismatch,
                        head_len,
                        "a body exactly Content-Length bytes long",
                    ));
                }
            }
            Span::new(head_len, buf.len())
        }
    };
    let name_lens = NameIndex::new(name_lens, &headers);
    Ok(Layout {
        start,
        headers,
        head_len: head_len as u32,
        body,
        content_length: content_len,
        name_lens,
    })
}

/// Parse one datagram as one PDU: the body is everything after the empty
/// line, and a `Content-Length`, if present, must equal its length. The
/// datagram may also end right after the last header line's line end (or
/// the start line's): the head ends there and the body is empty (SPEC §10,
/// ABNF `datagram-pdu`).
pub fn parse_datagram<'a>(buf: &'a [u8], opts: &ParseOptions) -> Result<PduRef<'a>, ParseError> {
    let layout = parse_layout(buf, opts, Framing::Datagram)?;
    Ok(PduView { buf, layout })
}

impl Pdu {
    /// [`parse_datagram`] over an owned buffer: the PDU keeps `buf` and
    /// slices it, copying nothing.
    pub fn parse_datagram(buf: Bytes, opts: &ParseOptions) -> Result<Pdu, ParseError> {
        let layout = parse_layout(&buf, opts, Framing::Datagram)?;
        Ok(PduView { buf, layout })
    }
}

/// A parsed head whose body has not been framed yet (stream transports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    layout: Layout,
}

impl Head {
    /// Bytes from the start of the PDU through the empty line.
    pub fn len(&self) -> usize {
        self.layout.head_len as usize
    }

    /// Never true: a head holds at least a start line and the empty line.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The body length the head announces (0 without `Content-Length`).
    pub fn body_len(&self) -> usize {
        self.layout.content_length.unwrap_or(0) as usize
    }

    /// Attach the buffer holding exactly this head followed by its body.
    /// The caller guarantees that `buf` begins with the bytes this head was
    /// parsed from and is `len() + body_len()` long.
    pub fn into_pdu(mut self, buf: Bytes) -> Pdu {
        let head = self.layout.head_len as usize;
        debug_assert_eq!(buf.len(), head + self.body_len());
        self.layout.body = Span::new(head, buf.len());
        PduView {
            buf,
            layout: self.layout,
        }
    }
}

/// Parse a head for stream framing. `buf` must hold the whole head (up to
/// and including the empty line); what follows it is ignored. The body
/// length comes from `Content-Length` (SPEC §1: none means an empty body).
pub fn parse_head(buf: &[u8], opts: &ParseOptions) -> Result<Head, ParseError> {
    parse_layout(buf, opts, Framing::HeadOnly).map(|layout| Head { layout })
}

#[cfg(test)]
mod tests {
    //! The fast paths against the reference path, on generated inputs:
    //! PDUs assembled from fragments chosen to hit every branch (valid
    //! shapes, line ends of every kind, NUL, quotes, escapes, non-ASCII,
    //! long runs), then mutated byte by byte, under random limits.
    use super::*;
    use crate::wire::limits::Limits;
    use proptest::prelude::*;

    fn both(buf: &[u8], opts: &ParseOptions) {
        for framing in [Framing::Datagram, Framing::HeadOnly] {
            let fast = parse_layout_with::<true>(buf, opts, framing);
            let reference = parse_layout_with::<false>(buf, opts, framing);
            assert_eq!(
                fast,
                reference,
                "input {:?} opts {:?}",
                String::from_utf8_lossy(buf),
                opts
            );
        }
    }

    const START: &[&str] = &[
        "REG /path/to/whatever ACORN/1.0",
        "GET / ACORN/1.0",
        "PUT \"/a b\\\"c\" ACORN/1.0",
        "PUT \"\" ACORN/1.0",
        "GET /caf\u{e9} acorn/2.10.3.4",
        "GET /x ACORN/1.0.0.0.0",
        "GET /x ACORN/1",
        "GET /x ACORN/1.",
        "GET /x ACORN/01.00",
        "GET  /x ACORN/1.0",
        "GET /x  ACORN/1.0",
        "-GET /x ACORN/1.0",
        "G\tET /x ACORN/1.0",
        "GET /\"x ACORN/1.0",
        "GET /x ACORN/1.0 ",
        "GET ACORN/1.0",
        "ACORN/1.0 200 OK",
        "ACORN/1.0 000 ACK",
        "ACORN/1.0 001",
        "ACORN/1.0 200 ",
        "AcOrN/1.0 404 Not \t found \u{e9}",
        "ACORN/1.0 20 OK",
        "ACORN/1.0 2000 OK",
        "ACORN/1.0  200 OK",
        "ACORN/1.0 200OK",
        "ACORN/1.0.1.2.3 200 OK",
        "ACORN/1.0 200 \u{1}",
        "ACORN/",
        "",
    ];

    const HEADERS: &[&str] = &[
        "Seq: 1222",
        "Need-Seq: 12..17,19, 30",
        "Request-Session-Mode: ordered",
        "Content-Length: 2",
        "content-length:2   ",
        "Content-Length: 02",
        "Content-Length: +2",
        "Content-Length: 3",
        "X-Empty:",
        "X-Empty:   ",
        "X-Tab:\tv\t",
        "X-Quoted: \"a\\r\\nb\"",
        "X-Quoted: \"a\" ",
        "X-Quoted: \"a\" b",
        "X-Quoted: \"a\\qb\"",
        "X-Quoted: \"open",
        "X-Inner: a \"b\" c",
        "X-High: \u{e9}\u{ff}",
        "X-Ctl: a\u{1}b\u{b}c",
        " folded",
        "\tfolded",
        "NoColon",
        "Bad Name: x",
        "Bad\tName: x",
        ":empty",
        "9digit: x",
        "A_b-9: x",
        "From: node1@192.168.0.1:7077",
    ];

    const NOISE: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b"\0",
        b" ",
        b"\t",
        b":",
        b"\"",
        b"\\",
        b"..",
        b",",
        b"\xc3\xa9",
        b"\xff",
        b"\x7f",
        b"ACORN/1.0",
        b"a",
        b"0",
    ];

    fn line_end(k: u8) -> &'static str {
        match k % 8 {
            0..=4 => "\r\n",
            5 => "\n",
            6 => "\r",
            _ => "\r\r\n",
        }
    }

    prop_compose! {
        fn pdu()(
            start in 0..START.len(),
            start_end in any::<u8>(),
            headers in prop::collection::vec((0..HEADERS.len(), any::<u8>()), 0..8),
            empty_end in any::<u8>(),
            body in prop::collection::vec(any::<u8>(), 0..4),
            long in prop::option::of((0usize..3, 1usize..40)),
        ) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(START[start].as_bytes());
            out.extend_from_slice(line_end(start_end).as_bytes());
            for (h, end) in headers {
                out.extend_from_slice(HEADERS[h].as_bytes());
                out.extend_from_slice(line_end(end).as_bytes());
            }
            if let Some((at, n)) = long {
                // A long header (tests the word-at-a-time scan and the line limit).
                let fill = [b'x', b' ', b'\t'][at];
                out.extend_from_slice(b"X-Long: ");
                out.resize(out.len() + n, fill);
                out.extend_from_slice(b"y\r\n");
            }
            out.extend_from_slice(line_end(empty_end).as_bytes());
            out.extend_from_slice(&body);
            out
        }
    }

    #[derive(Debug, Clone)]
    enum Edit {
        Insert(usize, usize),
        Delete(usize),
        Replace(usize, u8),
        Truncate(usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (any::<usize>(), 0..NOISE.len()).prop_map(|(a, b)| Edit::Insert(a, b)),
            any::<usize>().prop_map(Edit::Delete),
            (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::Replace(a, b)),
            any::<usize>().prop_map(Edit::Truncate),
        ]
    }

    fn apply(buf: &mut Vec<u8>, e: &Edit) {
        let len = buf.len().max(1);
        match *e {
            Edit::Insert(at, n) => {
                let at = at % (buf.len() + 1);
                buf.splice(at..at, NOISE[n].iter().copied());
            }
            Edit::Delete(at) if !buf.is_empty() => {
                buf.remove(at % len);
            }
            Edit::Replace(at, b) if !buf.is_empty() => buf[at % len] = b,
            Edit::Truncate(at) => buf.truncate(at % len),
            _ => {}
        }
    }

    prop_compose! {
        fn options()(
            lenient in any::<bool>(),
            tight in any::<bool>(),
            max_line_len in 0usize..64,
            max_headers in 0usize..6,
            max_head_len in 0usize..200,
            max_body_len in 0usize..4,
        ) -> ParseOptions {
            let limits = if tight {
                Limits { max_line_len, max_headers, max_head_len, max_body_len, ..Limits::default() }
            } else {
                Limits::default()
            };
            ParseOptions { limits, allow_bare_lf: lenient }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

        #[test]
        fn fast_paths_agree_with_reference(
            mut buf in pdu(),
            edits in prop::collection::vec(edit(), 0..4),
            opts in options(),
        ) {
            for e in &edits {
                apply(&mut buf, e);
            }
            both(&buf, &opts);
        }

        #[test]
        fn fast_paths_agree_on_any_bytes(
            buf in prop::collection::vec(
                prop_oneof![
                    4 => prop::sample::select(&b"ACORN/1.0 GET:\r\n\"\\ \t0.a-"[..]),
                    1 => any::<u8>(),
                ],
                0..64,
            ),
            opts in options(),
        ) {
            both(&buf, &opts);
        }
    }

    #[test]
    fn content_length_name_test_is_exact_on_name_chars() {
        let chars: Vec<u8> = (0..=255u8).filter(|&b| grammar::is_name_char(b)).collect();
        let want = b"content-length";
        for at in 0..14 {
            for &c in &chars {
                let mut name = *b"Content-Length";
                name[at] = c;
                assert_eq!(
                    is_content_length(&name),
                    name.eq_ignore_ascii_case(want),
                    "{:?}",
                    String::from_utf8_lossy(&name)
                );
            }
        }
        assert!(is_content_length(b"CONTENT-LENGTH"));
        assert!(!is_content_length(b"Content-Lengt"));
    }

    #[test]
    fn word_scan_finds_the_first_nul_cr_lf() {
        for len in 0..40 {
            for at in 0..=len {
                for stop in [0u8, b'\r', b'\n', b'\t', 1, 0x0d + 1, 0x80, 0xff] {
                    let mut w = vec![b'a'; len];
                    // A tab before the stop must not end the scan.
                    if at > 2 {
                        w[at / 2] = b'\t';
                    }
                    if at < len {
                        w[at] = stop;
                    }
                    let expect = w.iter().position(|&b| matches!(b, 0 | b'\r' | b'\n'));
                    assert_eq!(first_nul_cr_lf(&w), expect, "{w:?}");
                }
            }
        }
    }
}
