//! The parsed PDU: offsets into one buffer, never a copy of it.
//!
//! A [`PduView`] is the buffer plus a [`Layout`] of spans. With a borrowed
//! buffer it is a [`PduRef`] (for callers that hold the bytes); with a
//! [`bytes::Bytes`] it is a [`Pdu`] that owns a reference-counted slice and
//! can move across tasks. Accessors slice the buffer on demand.

use super::grammar::unquote;
use bytes::Bytes;
use smallvec::SmallVec;
use std::borrow::Cow;

/// A half-open byte range in the PDU's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Self {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }
    #[inline]
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// Where the parts of the start line are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StartSpans {
    Request {
        method: Span,
        target: Span,
        quoted: bool,
        version: Span,
    },
    Reply {
        version: Span,
        status: u16,
        text: Span,
    },
}

/// Where one header's name and (OWS-trimmed) value are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// How many header name lengths one word of the [`NameIndex`] holds: as
/// many as one machine word compares at once.
pub(crate) const INDEXED_HEADERS: usize = 8;

/// Words in the [`NameIndex`]: the first (the last eight headers) is built
/// while parsing, the others, for a PDU with more than eight headers, in
/// one pass after it. Four words index [`INDEX_BOUND`] headers, which
/// covers a PDU that relays and extensions have added to (the default
/// `max_headers` is 128); three more words cost 24 bytes of `Layout`.
pub(crate) const INDEX_WORDS: usize = 4;

/// The most headers the [`NameIndex`] covers; a PDU with more is looked up
/// by walking its headers.
pub(crate) const INDEX_BOUND: usize = INDEXED_HEADERS * INDEX_WORDS;

/// The lengths (mod 256) of the header names, one byte each, eight to a
/// word: byte `k` of word `j` holds header `count - 1 - 8 * j - k` (word 0
/// is the last eight headers, the last header in its low byte). Every typed
/// accessor looks a name up, and a PDU is read through several of them:
/// comparing the wanted length with all eight bytes of a word at once
/// ([`equal_byte_candidates`]) finds the few headers worth comparing by
/// name, instead of visiting each header's span per lookup. Bytes for
/// headers before the first are zero and refused by [`candidate_header`].
/// Words rather than a byte array: byte stores read back as a word would
/// stall the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct NameIndex {
    words: [u64; INDEX_WORDS],
}

impl NameIndex {
    /// The index of `headers`, given the word [`index_name_len`] built for
    /// the last eight of them while parsing. The other words are only
    /// filled for a PDU with more than eight headers (one branch for the
    /// others).
    #[inline(always)]
    pub(crate) fn new(last: u64, headers: &[HeaderSpan]) -> Self {
        let mut words = [0; INDEX_WORDS];
        words[0] = last;
        if headers.len() > INDEXED_HEADERS {
            index_earlier(&mut words, headers);
        }
        NameIndex { words }
    }
}

/// Fill the words of a [`NameIndex`] past the first, for a PDU with more
/// than eight and at most [`INDEX_BOUND`] headers (more: left empty, and
/// lookups walk).
#[cold]
#[inline(never)]
fn index_earlier(words: &mut [u64; INDEX_WORDS], headers: &[HeaderSpan]) {
    let n = headers.len();
    if n > INDEX_BOUND {
        return;
    }
    // Word `j` is the eight headers before word `j - 1`'s, shifted in as
    // the parser does; the earliest word may be short (its high bytes
    // stay zero).
    let earlier = headers[..n - INDEXED_HEADERS].rchunks(INDEXED_HEADERS);
    for (word, chunk) in words[1..].iter_mut().zip(earlier) {
        *word = chunk.iter().fold(0, |w, h| {
            let mut w = w;
            index_name_len(&mut w, (h.name.end - h.name.start) as usize);
            w
        });
    }
}

/// Note, while parsing, that the next header has a name `len` bytes long:
/// it goes into the low byte and the earlier ones move up (the ninth header
/// back falls out; with that many headers the index is not used). Two
/// operations and no branch, so the header loop does not pay for the
/// index. Only the low byte of the length is kept: a lookup takes a
/// matching byte as a candidate and still compares the whole name, so a
/// long name that wraps around is at worst compared for nothing.
#[inline(always)]
pub(crate) fn index_name_len(lens: &mut u64, len: usize) {
    *lens = *lens << 8 | u64::from(len as u8);
}

/// The header a candidate bit of [`equal_byte_candidates`] over word
/// `word` of the [`NameIndex`] stands for: byte `k` holds header
/// `len - 1 - 8 * word - k`. `None` for a byte before the first header (the
/// index wraps below zero, which `get` refuses: one check, not two).
#[inline(always)]
fn candidate_header(headers: &[HeaderSpan], word: usize, bit: u32) -> Option<&HeaderSpan> {
    headers.get(
        headers
            .len()
            .wrapping_sub(1 + INDEXED_HEADERS * word + (bit / 8) as usize),
    )
}

/// Headers held inline before spilling to the heap: the common PDU has
/// fewer than a dozen.
pub(crate) const INLINE_HEADERS: usize = 12;

/// The shape of a parsed PDU: spans of its parts in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub(crate) start: StartSpans,
    pub(crate) headers: SmallVec<[HeaderSpan; INLINE_HEADERS]>,
    pub(crate) head_len: u32,
    pub(crate) body: Span,
    pub(crate) content_length: Option<u64>,
    /// The lengths (mod 256) of the header names, for lookups by name
    /// ([`NameIndex`]), for up to [`INDEX_BOUND`] headers.
    pub(crate) name_lens: NameIndex,
}

impl Layout {
    /// Bytes from the start of the PDU through the empty line.
    pub fn head_len(&self) -> usize {
        self.head_len as usize
    }

    /// The validated `Content-Length`, if the PDU carried one.
    pub fn content_length(&self) -> Option<u64> {
        self.content_length
    }
}

/// Request or reply, as told by the first bytes of the start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PduKind {
    Request,
    Reply,
}

/// A parsed PDU over any byte container. See [`PduRef`] and [`Pdu`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduView<B> {
    pub(crate) buf: B,
    pub(crate) layout: Layout,
}

/// A PDU borrowed from the caller's buffer.
pub type PduRef<'a> = PduView<&'a [u8]>;

/// A PDU that owns (a reference-counted slice of) its bytes.
pub type Pdu = PduView<Bytes>;

/// One header as it stands on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRef<'a> {
    /// The name with its wire case.
    pub name: &'a str,
    /// The value without surrounding whitespace; a quoted value keeps its
    /// quotes and escapes (see [`HeaderRef::text`]).
    pub value: &'a [u8],
    /// Offset of the value in the PDU's buffer (for error positions).
    pub value_offset: usize,
}

impl<'a> HeaderRef<'a> {
    /// The value with a quoted string unescaped (borrowed when nothing was escaped).
    pub fn text(&self) -> Cow<'a, [u8]> {
        if self.value.len() >= 2 && self.value[0] == b'"' {
            unquote(self.value)
        } else {
            Cow::Borrowed(self.value)
        }
    }

    /// Whether this header's name equals `name`, ignoring ASCII case.
    #[inline]
    pub fn is(&self, name: &str) -> bool {
        self.name.len() == name.len() && self.name.as_bytes().eq_ignore_ascii_case(name.as_bytes())
    }
}

/// A header's value and where it is: what a typed accessor needs (its name
/// is already known).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ValueRef<'a> {
    pub value: &'a [u8],
    pub value_offset: usize,
}

/// How many headers a PDU has under one name, as far as a single-valued
/// typed header cares: none, exactly one (its value), or more.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sole<'a> {
    Absent,
    One(ValueRef<'a>),
    Several,
}

/// The headers of one PDU called one name: behind `headers_named` and the
/// typed accessors' general paths. It yields spans, so nothing (no `&str`
/// of the name) is built for headers that do not match.
pub(crate) struct Named<'s, 'n> {
    buf: &'s [u8],
    indexed: &'s [HeaderSpan],
    /// Indexed headers still to compare in word `word` of the index
    /// ([`equal_byte_candidates`]).
    candidates: u64,
    word: usize,
    /// The index words after `word` (the later headers), the next one last.
    later: &'s [u64],
    /// The headers, when there are too many to index; else empty.
    walk: std::slice::Iter<'s, HeaderSpan>,
    want: &'n [u8],
}

impl<'s> Iterator for Named<'s, '_> {
    type Item = &'s HeaderSpan;

    #[inline(always)]
    fn next(&mut self) -> Option<&'s HeaderSpan> {
        // Highest word and byte first: that is the earliest header.
        loop {
            while self.candidates != 0 {
                let bit = 63 - self.candidates.leading_zeros();
                self.candidates ^= 1 << bit;
                match candidate_header(self.indexed, self.word, bit) {
                    Some(h) if is_named(self.buf, h, self.want) => return Some(h),
                    _ => {}
                }
            }
            let Some((&next, rest)) = self.later.split_last() else {
                break;
            };
            self.later = rest;
            self.word -= 1;
            self.candidates = equal_byte_candidates(next, self.want.len() as u8);
        }
        self.walk
            .by_ref()
            .find(|h| is_named(self.buf, h, self.want))
    }
}

/// Whether the header at `h` is called `want`: span lengths first, then an
/// exact match, then one ignoring ASCII case.
#[inline(always)]
fn is_named(buf: &[u8], h: &HeaderSpan, want: &[u8]) -> bool {
    if (h.name.end - h.name.start) as usize != want.len() {
        return false;
    }
    // The length is known to be `want`'s, and a `u32` start plus it cannot
    // overflow: one bound to check.
    let start = h.name.start as usize;
    match buf.get(start..start + want.len()) {
        Some(name) => same_bytes(name, want) || name.eq_ignore_ascii_case(want),
        None => false,
    }
}

/// Whether the header whose name starts at `start` is exactly `want` (same
/// case): its bytes and the colon that always ends a parsed name, compared
/// in one go. The colon stands in for the name's length, so the span need
/// not be read; `false` also for other letter cases, which
/// [`is_named`] then accepts.
#[inline(always)]
fn is_exactly_named(buf: &[u8], start: usize, want: &[u8]) -> bool {
    let n = want.len();
    let Some(got) = buf.get(start..start + n + 1) else {
        return false;
    };
    if n < 8 {
        // Name and colon in one word (the name is a constant at every
        // call, so `expect` is one too).
        let mut word = [0u8; 8];
        word[..=n].copy_from_slice(got);
        let mut expect = [0u8; 8];
        expect[..n].copy_from_slice(want);
        expect[n] = b':';
        u64::from_le_bytes(word) == u64::from_le_bytes(expect)
    } else {
        got[n] == b':' && same_bytes(&got[..n], want)
    }
}

/// The high bit of byte `k` set exactly where byte `k` of `lens` equals
/// `want`. A byte of `x = lens ^ want` (spread) is zero where they are
/// equal; adding 0x7f to its low seven bits carries into the high bit
/// unless they are all zero, and or-ing `x` back in catches a set high
/// bit. No carry crosses a byte, so no byte flags its neighbour: one more
/// operation than the borrowing `(x - 1) & !x`, which can flag the byte
/// above a match and cost a name comparison for nothing.
#[inline(always)]
fn equal_byte_candidates(lens: u64, want: u8) -> u64 {
    const ONES: u64 = u64::MAX / 0xff;
    const LOW7: u64 = ONES * 0x7f;
    let x = lens ^ (ONES * u64::from(want));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// `a == b` for two slices of the same length, inline and eight bytes at a
/// time (the last word overlaps the one before it): header names are short,
/// and a call to `bcmp` would cost more than the comparison.
#[inline(always)]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

fn ascii(bytes: &[u8]) -> &str {
    // The grammar only admits ASCII (or validated UTF-8) in the parts read
    // through this function, so the fallback is never taken on parsed input.
    std::str::from_utf8(bytes).unwrap_or_default()
}

impl<B: AsRef<[u8]>> PduView<B> {
    #[inline]
    fn slice(&self, span: Span) -> &[u8] {
        &self.buf.as_ref()[span.range()]
    }

    /// The whole PDU as received.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// The spans of this PDU.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Request or reply.
    pub fn kind(&self) -> PduKind {
        match self.layout.start {
            StartSpans::Request { .. } => PduKind::Request,
            StartSpans::Reply { .. } => PduKind::Reply,
        }
    }

    /// True for a request.
    pub fn is_request(&self) -> bool {
        self.kind() == PduKind::Request
    }

    /// The method of a request (case-sensitive).
    pub fn method(&self) -> Option<&str> {
        match self.layout.start {
            StartSpans::Request { method, .. } => Some(ascii(self.slice(method))),
            StartSpans::Reply { .. } => None,
        }
    }

    /// The request target as on the wire (a quoted target keeps its quotes).
    pub fn target_raw(&self) -> Option<&[u8]> {
        match self.layout.start {
            StartSpans::Request { target, .. } => Some(self.slice(target)),
            StartSpans::Reply { .. } => None,
        }
    }

    /// The request target with quoting undone.
    pub fn target(&self) -> Option<Cow<'_, str>> {
        match self.layout.start {
            StartSpans::Request { target, quoted, .. } => {
                let raw = self.slice(target);
                Some(if quoted {
                    match unquote(raw) {
                        Cow::Borrowed(b) => Cow::Borrowed(ascii(b)),
                        Cow::Owned(v) => Cow::Owned(String::from_utf8_lossy(&v).into_owned()),
                    }
                } else {
                    Cow::Borrowed(ascii(raw))
                })
            }
            StartSpans::Reply { .. } => None,
        }
    }

    /// The version token as on the wire (e.g. `ACORN/1.0`).
    pub fn version(&self) -> &str {
        match self.layout.start {
            StartSpans::Request { version, .. } | StartSpans::Reply { version, .. } => {
                ascii(self.slice(version))
            }
        }
    }

    /// The major version number, `None` if it does not fit in 64 bits.
    pub fn version_major(&self) -> Option<u64> {
        let v = self.version();
        v.get(6..)?.split('.').next()?.parse().ok()
    }

    /// The status code of a reply (0..=999).
    pub fn status(&self) -> Option<u16> {
        match self.layout.start {
            StartSpans::Reply { status, .. } => Some(status),
            StartSpans::Request { .. } => None,
        }
    }

    /// The reason text of a reply (empty when absent).
    pub fn status_text(&self) -> Option<&[u8]> {
        match self.layout.start {
            StartSpans::Reply { text, .. } => Some(self.slice(text)),
            StartSpans::Request { .. } => None,
        }
    }

    /// True for `000` (ACK), whatever the text says.
    pub fn is_ack(&self) -> bool {
        self.status() == Some(0)
    }

    /// True for `001` (NACK), whatever the text says.
    pub fn is_nack(&self) -> bool {
        self.status() == Some(1)
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.layout.headers.len()
    }

    /// Headers in wire order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.layout.headers.iter().map(move |h| self.header_at(h))
    }

    #[inline]
    fn header_at(&self, h: &HeaderSpan) -> HeaderRef<'_> {
        HeaderRef {
            name: ascii(self.slice(h.name)),
            value: self.slice(h.value),
            value_offset: h.value.start as usize,
        }
    }

    /// Every header called `name` (ASCII case-insensitive), in wire order.
    pub fn headers_named<'s>(&'s self, name: &'s str) -> impl Iterator<Item = HeaderRef<'s>> + 's {
        self.named(name).map(move |h| self.header_at(h))
    }

    /// The value of the header at `h` and its offset in the buffer.
    #[inline]
    pub(crate) fn value_at(&self, h: &HeaderSpan) -> ValueRef<'_> {
        ValueRef {
            value: self.slice(h.value),
            value_offset: h.value.start as usize,
        }
    }

    /// [`PduView::headers_named`] with the name's lifetime kept apart from
    /// the PDU's, so what it yields can outlive the name.
    #[inline(always)]
    pub(crate) fn named<'s, 'n>(&'s self, name: &'n str) -> Named<'s, 'n> {
        let headers: &[HeaderSpan] = &self.layout.headers;
        let words = &self.layout.name_lens.words;
        let indexed = headers.len() <= INDEX_BOUND;
        // The word holding the first header; the ones after it are read
        // as the lookup moves on.
        let top = headers.len().saturating_sub(1) / INDEXED_HEADERS;
        let (word, later) = if indexed {
            (top, &words[..top])
        } else {
            (0, &[][..])
        };
        Named {
            buf: self.buf.as_ref(),
            indexed: headers,
            candidates: if indexed {
                equal_byte_candidates(words[word], name.len() as u8)
            } else {
                0
            },
            word,
            later,
            walk: if indexed { &[] } else { headers }.iter(),
            want: name.as_bytes(),
        }
    }

    /// The one header called `name`, if there is exactly one: the lookup of
    /// every single-valued typed accessor, so it is kept short. Inlined so
    /// that the name, a constant at every call, specialises the
    /// comparisons.
    #[inline(always)]
    pub(crate) fn sole(&self, name: &str) -> Sole<'_> {
        let headers: &[HeaderSpan] = &self.layout.headers;
        if headers.len() > INDEXED_HEADERS {
            return self.sole_walk(name);
        }
        let (buf, want) = (self.buf.as_ref(), name.as_bytes());
        let candidates = equal_byte_candidates(self.layout.name_lens.words[0], want.len() as u8);
        if candidates == 0 {
            return Sole::Absent;
        }
        // The usual case: one header of that length, and it is the one.
        if candidates & (candidates - 1) == 0 {
            return match candidate_header(headers, 0, candidates.trailing_zeros()) {
                Some(h)
                    if is_exactly_named(buf, h.name.start as usize, want)
                        || is_named(buf, h, want) =>
                {
                    Sole::One(self.value_at(h))
                }
                _ => Sole::Absent,
            };
        }
        self.sole_of(name, candidates)
    }

    /// [`PduView::sole`] when several indexed headers have the wanted
    /// name's length: each compared in turn. Out of line, so that the usual
    /// lookup stays small wherever it is inlined.
    #[inline(never)]
    fn sole_of(&self, name: &str, mut candidates: u64) -> Sole<'_> {
        let (buf, want) = (self.buf.as_ref(), name.as_bytes());
        let headers: &[HeaderSpan] = &self.layout.headers;
        let mut found = None;
        while candidates != 0 {
            let bit = candidates.trailing_zeros();
            candidates &= candidates - 1;
            match candidate_header(headers, 0, bit) {
                Some(h) if is_named(buf, h, want) => {
                    if found.is_some() {
                        return Sole::Several;
                    }
                    found = Some(h);
                }
                _ => {}
            }
        }
        match found {
            None => Sole::Absent,
            Some(h) => Sole::One(self.value_at(h)),
        }
    }

    /// [`PduView::sole`] for a PDU with more headers than one index word
    /// holds: through the whole index ([`PduView::named`]), or a walk past
    /// [`INDEX_BOUND`] headers.
    #[inline(never)]
    fn sole_walk(&self, name: &str) -> Sole<'_> {
        let mut found = self.named(name);
        match found.next() {
            None => Sole::Absent,
            Some(h) if found.next().is_none() => Sole::One(self.value_at(h)),
            Some(_) => Sole::Several,
        }
    }

    /// The first header called `name`.
    pub fn header_ref(&self, name: &str) -> Option<HeaderRef<'_>> {
        self.named(name).next().map(|h| self.header_at(h))
    }

    /// The raw (wire) value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_ref(name).map(|h| h.value)
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.slice(self.layout.body)
    }

    /// The head (start line through the empty line).
    pub fn head(&self) -> &[u8] {
        &self.buf.as_ref()[..self.layout.head_len as usize]
    }
}

impl PduView<&[u8]> {
    /// An owned copy (one allocation for the whole buffer).
    pub fn to_owned_pdu(&self) -> Pdu {
        PduView {
            buf: Bytes::copy_from_slice(self.buf),
            layout: self.layout.clone(),
        }
    }
}

impl Pdu {
    /// The body as a `Bytes` that shares this PDU's buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.layout.body.range())
    }

    /// The buffer this PDU was parsed from.
    pub fn bytes(&self) -> &Bytes {
        &self.buf
    }

    /// A borrowed view of this PDU.
    pub fn as_ref_pdu(&self) -> PduRef<'_> {
        PduView {
            buf: &self.buf[..],
            layout: self.layout.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{equal_byte_candidates, is_exactly_named, same_bytes, INDEXED_HEADERS};

    #[test]
    fn equal_byte_candidates_flag_exactly_the_matching_bytes() {
        // Every byte value against wanted values chosen to hit borrows and
        // high bits: 0, 1, 0x7f, 0x80, 0xff and neighbours.
        for want in [0u8, 1, 2, 3, 8, 20, 0x7e, 0x7f, 0x80, 0x81, 0xfe, 0xff] {
            for start in (0..=255u8).step_by(INDEXED_HEADERS) {
                let mut lens = [0u8; INDEXED_HEADERS];
                for (i, l) in lens.iter_mut().enumerate() {
                    *l = start.wrapping_add(i as u8);
                }
                lens[2] = want;
                lens[5] = want;
                let got = equal_byte_candidates(u64::from_le_bytes(lens), want);
                for (i, &l) in lens.iter().enumerate() {
                    let flagged = got >> (8 * i + 7) & 1 == 1;
                    assert_eq!(flagged, l == want, "{want} against {l} at {i} from {start}");
                }
                assert_eq!(got & !(u64::MAX / 0xff * 0x80), 0, "only high bits");
            }
        }
    }

    #[test]
    fn exactly_named_is_the_name_then_its_colon() {
        for want in [
            "",
            "A",
            "To",
            "Seq",
            "Date",
            "TX-ID",
            "Need-Seq",
            "Request-Session-Mode",
        ] {
            let w = want.as_bytes();
            let lower = want.to_ascii_lowercase();
            let longer = format!("{want}X:");
            for (line, expect) in [
                (format!("{want}: 1"), true),
                (format!("{want}:"), true),
                (format!("{lower}: 1"), want == lower),
                (longer.clone(), false),
                (want.to_owned(), false),
            ] {
                // At the start and after other bytes, so the name does not
                // start at 0.
                for pad in ["", "xyz\r\n"] {
                    let buf = format!("{pad}{line}");
                    assert_eq!(
                        is_exactly_named(buf.as_bytes(), pad.len(), w),
                        expect,
                        "{want:?} in {buf:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn same_bytes_is_slice_equality() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..40 {
            let a = &base[..len];
            assert!(same_bytes(a, a));
            for at in 0..len {
                let mut b = a.to_vec();
                b[at] ^= 0x20;
                assert!(!same_bytes(a, &b), "{len} {at}");
            }
        }
        assert!(!same_bytes(b"ab", b"abc"));
    }
}
