//! The parse driver: splits lines under the limits and applies the rules.
//!
//! ABNF `acorn-pdu = start-line *( header-line CRLF ) CRLF body`
//! (`start-line` ends in CRLF too). Lines are found with `memchr` inside a
//! window no longer than the line limit, so no input makes the parser scan
//! or hold more than the limits allow.

use super::error::{ErrorKind, ParseError};
use super::grammar::{self, is_ows, Fail};
use super::limits::{Limit, ParseOptions};
use super::pdu::{HeaderSpan, Layout, Pdu, PduRef, PduView, Span, StartSpans};
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

/// Find the line that starts at `pos`, enforcing the line and head limits.
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

fn locate(f: Fail, line: &[u8], base: usize) -> ParseError {
    f.locate(line, base)
}

fn unwrap<'a, O>(r: grammar::R<'a, O>, line: &'a [u8], base: usize) -> Result<O, ParseError> {
    r.map(|(_, o)| o)
        .map_err(|e| locate(grammar::unwrap_fail(e), line, base))
}

/// ABNF `start-line = ( request-line / reply-line ) CRLF`.
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

/// ABNF `Content-Length = 1*DIGIT` (no sign, no spaces, fits u64); repeated
/// headers must agree (SPEC §1: never guess).
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

fn parse_layout(buf: &[u8], opts: &ParseOptions, framing: Framing) -> Result<Layout, ParseError> {
    let max_head = opts.limits.max_head_len.min(u32::MAX as usize);
    if buf.len() > u32::MAX as usize {
        return Err(limit(
            Limit::BodySize,
            u32::MAX as usize,
            "a PDU under 4 GiB",
        ));
    }
    let first = next_line(buf, 0, opts, max_head)?;
    let start = start_line(buf, &first)?;
    let mut headers: SmallVec<[HeaderSpan; super::pdu::INLINE_HEADERS]> = SmallVec::new();
    let mut content_len: Option<u64> = None;
    let mut pos = first.next;
    let head_len = loop {
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
    Ok(Layout {
        start,
        headers,
        head_len: head_len as u32,
        body,
        content_length: content_len,
    })
}

/// Parse one datagram as one PDU: the body is everything after the empty
/// line, and a `Content-Length`, if present, must equal its length.
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
