//! The grammar rules of `grammar/acorn.abnf`, one nom function per rule.
//!
//! Every function here works on a complete slice (a line without its line
//! end, or a header value) and says in its doc comment which ABNF rule it
//! implements. Errors are [`Fail`]: a kind, what was expected, and how much
//! input was left where it failed, so the caller can turn it into an
//! absolute offset without anything being allocated.

use super::error::{ErrorKind, ParseError};
use super::seqlist::RangeSink;
use nom::bytes::complete::{tag, tag_no_case, take_while, take_while1};

/// A rule's failure before it is placed in the whole input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail {
    pub kind: ErrorKind,
    pub expected: &'static str,
    /// Bytes of the rule's input left at the failure point.
    pub rest: usize,
}

impl Fail {
    pub(crate) fn at(rest: &[u8], kind: ErrorKind, expected: &'static str) -> Self {
        Fail {
            kind,
            expected,
            rest: rest.len(),
        }
    }

    /// Turn into a [`ParseError`] for a rule that was given `input`, which
    /// starts at absolute offset `base`. A failure that stopped on a CR is
    /// reported as [`ErrorKind::BareCr`], whatever rule was running.
    pub(crate) fn locate(self, input: &[u8], base: usize) -> ParseError {
        let local = input.len().saturating_sub(self.rest);
        if input.get(local) == Some(&b'\r') {
            return ParseError::new(ErrorKind::BareCr, base + local, "CRLF line end");
        }
        ParseError::new(self.kind, base + local, self.expected)
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for Fail {
    fn from_error_kind(input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        Fail::at(input, ErrorKind::StartLine, "")
    }
    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type R<'a, O> = nom::IResult<&'a [u8], O, Fail>;

/// Run `p`; on failure keep its position but name the rule that failed.
fn named<'a, O>(
    kind: ErrorKind,
    expected: &'static str,
    mut p: impl FnMut(&'a [u8]) -> R<'a, O>,
) -> impl FnMut(&'a [u8]) -> R<'a, O> {
    move |i| {
        p(i).map_err(|e| {
            e.map(|f| Fail {
                kind,
                expected,
                ..f
            })
        })
    }
}

pub(crate) fn fail<'a, O>(rest: &'a [u8], kind: ErrorKind, expected: &'static str) -> R<'a, O> {
    Err(nom::Err::Error(Fail::at(rest, kind, expected)))
}

/// Require that a rule consumed the whole slice.
#[inline]
pub(crate) fn finish<'a, O>(
    r: R<'a, O>,
    kind: ErrorKind,
    expected: &'static str,
) -> Result<O, Fail> {
    match r {
        Ok(([], o)) => Ok(o),
        Ok((rest, _)) => Err(Fail::at(rest, kind, expected)),
        Err(nom::Err::Error(f) | nom::Err::Failure(f)) => Err(f),
        Err(nom::Err::Incomplete(_)) => Err(Fail {
            kind,
            expected,
            rest: 0,
        }),
    }
}

// ---------------------------------------------------------------- classes
//
// The byte classes of the grammar, one bit each in a 256-entry table, so a
// class test in a hot loop is one load and one mask instead of a chain of
// comparisons. `class_bits` states each class in the words of its ABNF rule;
// the table is computed from it at compile time.

const C_METHOD: u16 = 1 << 0;
const C_NAME: u16 = 1 << 1;
const C_LITERAL: u16 = 1 << 2;
const C_QDTEXT: u16 = 1 << 3;
const C_VALUE: u16 = 1 << 4;
const C_REASON: u16 = 1 << 5;
const C_OWS: u16 = 1 << 6;
const C_TOKEN: u16 = 1 << 7;
const C_TCHAR: u16 = 1 << 8;

/// The classes byte `b` belongs to (the ABNF of each is on its `is_*` function).
const fn class_bits(b: u8) -> u16 {
    let alnum = b.is_ascii_alphanumeric();
    let visible = b >= 0x21 && b <= 0x7e;
    let mut c = 0;
    if alnum || b == b'.' || b == b'_' || b == b'-' {
        c |= C_METHOD;
    }
    if alnum || b == b'-' || b == b'_' {
        c |= C_NAME;
    }
    if (visible && b != b'"') || b >= 0x80 {
        c |= C_LITERAL;
    }
    if !matches!(b, 0 | b'\r' | b'\n' | b'"' | b'\\') {
        c |= C_QDTEXT;
    }
    if !matches!(b, 0 | b'\r' | b'\n') {
        c |= C_VALUE;
    }
    if b == b'\t' || b == b' ' || visible || b >= 0x80 {
        c |= C_REASON;
    }
    if b == b' ' || b == b'\t' {
        c |= C_OWS;
    }
    if visible || b >= 0x80 {
        c |= C_TOKEN;
    }
    if alnum
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
    {
        c |= C_TCHAR;
    }
    c
}

const CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = class_bits(i as u8);
        i += 1;
    }
    t
};

#[inline(always)]
fn class(b: u8, c: u16) -> bool {
    CLASS[usize::from(b)] & c != 0
}

#[inline]
pub(crate) fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic()
}
#[inline]
pub(crate) fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}
/// ABNF `method-char = method-start / "-"` with
/// `method-start = ALPHA / DIGIT / "." / "_"`.
#[inline]
pub(crate) fn is_method_char(b: u8) -> bool {
    class(b, C_METHOD)
}
/// ABNF `name-char = ALPHA / DIGIT / "-" / "_"`.
#[inline]
pub(crate) fn is_name_char(b: u8) -> bool {
    class(b, C_NAME)
}
/// ABNF `literal-char = %x21 / %x23-7E / UTF8-non-ascii` (visible, not
/// DQUOTE): this byte class admits every byte >= 0x80, and [`target`]
/// checks that they form `UTF8-non-ascii` characters.
#[inline]
pub(crate) fn is_literal_char(b: u8) -> bool {
    class(b, C_LITERAL)
}
/// ABNF `qdtext = %x01-09 / %x0B-0C / %x0E-21 / %x23-5B / %x5D-FF`
/// (anything but NUL, CR, LF, DQUOTE and backslash).
#[inline]
pub(crate) fn is_qdtext(b: u8) -> bool {
    class(b, C_QDTEXT)
}
/// ABNF `value-char = %x01-09 / %x0B-0C / %x0E-FF` (anything but NUL, CR, LF).
#[inline]
pub(crate) fn is_value_char(b: u8) -> bool {
    class(b, C_VALUE)
}
/// ABNF `reason-char = HTAB / SP / VCHAR / obs-text`, `obs-text = %x80-FF`.
#[inline]
pub(crate) fn is_reason_char(b: u8) -> bool {
    class(b, C_REASON)
}
/// ABNF `OWS = *( SP / HTAB )` (one byte of it).
#[inline]
pub(crate) fn is_ows(b: u8) -> bool {
    class(b, C_OWS)
}
/// ABNF `token-char = VCHAR / obs-text` (an opaque token has no space or control).
#[inline]
pub(crate) fn is_token_char(b: u8) -> bool {
    class(b, C_TOKEN)
}
/// ABNF `tchar` of `http-token = 1*tchar` (RFC 9110 token characters),
/// used by `media-type` and `coding`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    class(b, C_TCHAR)
}

// ------------------------------------------------------------ start line

/// ABNF `method = method-start *method-char` where `method-start` excludes `-`.
pub(crate) fn method(i: &[u8]) -> R<'_, &[u8]> {
    match i.first() {
        Some(&b) if is_method_char(b) && b != b'-' => {}
        _ => return fail(i, ErrorKind::Method, "method token"),
    }
    named(
        ErrorKind::Method,
        "method token",
        take_while1(is_method_char),
    )(i)
}

/// ABNF `version = "ACORN" "/" 1*DIGIT 1*3( "." 1*DIGIT )` (name case-insensitive).
pub(crate) fn version(i: &[u8]) -> R<'_, &[u8]> {
    let start = i;
    let (i, _) = named(ErrorKind::Version, "\"ACORN/\"", tag_no_case("ACORN/"))(i)?;
    let (mut i, _) = named(ErrorKind::Version, "version digits", take_while1(is_digit))(i)?;
    let mut groups = 1;
    while groups < 4 && i.first() == Some(&b'.') {
        let (r, _) = named(ErrorKind::Version, "version digits", take_while1(is_digit))(&i[1..])?;
        i = r;
        groups += 1;
    }
    if groups < 2 {
        return fail(i, ErrorKind::Version, "\".\" and a minor version");
    }
    // A fifth group is a malformed version, not a malformed start line.
    if i.first() == Some(&b'.') {
        return fail(i, ErrorKind::Version, "at most four version groups");
    }
    Ok((i, &start[..start.len() - i.len()]))
}

/// ABNF `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE` with
/// `quoted-pair = "\" ( "r" / "n" / DQUOTE / "\" )`. Returns the whole
/// string with its quotes.
pub(crate) fn quoted_string(i: &[u8]) -> R<'_, &[u8]> {
    let start = i;
    let (mut i, _) = named(ErrorKind::QuotedString, "DQUOTE", tag("\""))(i)?;
    loop {
        let (r, _) = take_while(is_qdtext)(i)?;
        match r.first() {
            Some(b'"') => {
                let rest = &r[1..];
                return Ok((rest, &start[..start.len() - rest.len()]));
            }
            Some(b'\\') => match r.get(1) {
                Some(b'r' | b'n' | b'"' | b'\\') => i = &r[2..],
                _ => {
                    return fail(
                        &r[1..],
                        ErrorKind::QuotedString,
                        "escape \\r, \\n, \\\" or \\\\",
                    )
                }
            },
            Some(b'\r') => return fail(r, ErrorKind::BareCr, "closing DQUOTE"),
            Some(_) => return fail(r, ErrorKind::QuotedString, "quoted text or closing DQUOTE"),
            None => return fail(r, ErrorKind::QuotedString, "closing DQUOTE"),
        }
    }
}

/// ABNF `target = quoted-target / literal-target`,
/// `literal-target = 1*literal-char`,
/// `quoted-target = DQUOTE *( target-qdtext / quoted-pair ) DQUOTE`: a
/// [`quoted_string`] or a run of [`is_literal_char`] bytes, then checked to
/// be UTF-8 as a whole, which is what `target-qdtext` and `literal-char` say
/// with `UTF8-non-ascii` (RFC 3629: `UTF8-2`, `UTF8-3`, `UTF8-4`,
/// `UTF8-tail`). Returns the target as on the wire and whether it is quoted.
pub(crate) fn target(i: &[u8]) -> R<'_, (&[u8], bool)> {
    let (rest, raw, quoted) = if i.first() == Some(&b'"') {
        let (rest, raw) = quoted_string(i)?;
        (rest, raw, true)
    } else {
        let (rest, raw) = named(
            ErrorKind::Target,
            "request target",
            take_while1(is_literal_char),
        )(i)?;
        (rest, raw, false)
    };
    if std::str::from_utf8(raw).is_err() {
        return fail(i, ErrorKind::Target, "UTF-8 target");
    }
    Ok((rest, (raw, quoted)))
}

/// ABNF `SP` between start-line parts: exactly one space.
fn single_sp<'a>(i: &'a [u8], expected: &'static str) -> R<'a, ()> {
    match i {
        [b' ', b' ', ..] => fail(
            &i[1..],
            ErrorKind::StartLine,
            "exactly one SP between parts",
        ),
        [b' ', rest @ ..] => Ok((rest, ())),
        _ => fail(i, ErrorKind::StartLine, expected),
    }
}

/// Method, (target, quoted), version.
pub(crate) type RequestParts<'a> = (&'a [u8], (&'a [u8], bool), &'a [u8]);

/// ABNF `request-line = method SP target SP version`.
pub(crate) fn request_line(i: &[u8]) -> R<'_, RequestParts<'_>> {
    let (i, m) = method(i)?;
    let (i, _) = single_sp(i, "single SP after method")?;
    let (i, t) = target(i)?;
    let (i, _) = single_sp(i, "single SP after target")?;
    let (i, v) = version(i)?;
    if !i.is_empty() {
        return fail(i, ErrorKind::StartLine, "end of line after version");
    }
    Ok((i, (m, t, v)))
}

/// ABNF `status = 3DIGIT` (exactly three).
pub(crate) fn status(i: &[u8]) -> R<'_, &[u8]> {
    if i.len() >= 3 && i[..3].iter().all(|b| b.is_ascii_digit()) {
        if i.get(3).is_some_and(|b| b.is_ascii_digit()) {
            return fail(&i[3..], ErrorKind::Status, "exactly three digits");
        }
        Ok((&i[3..], &i[..3]))
    } else {
        let digits = i.iter().take_while(|b| b.is_ascii_digit()).count();
        fail(&i[digits..], ErrorKind::Status, "three-digit status")
    }
}

/// Version, status, reason.
pub(crate) type ReplyParts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// ABNF `reply-line = version SP status [ SP reason ]`, `reason = *reason-char`.
pub(crate) fn reply_line(i: &[u8]) -> R<'_, ReplyParts<'_>> {
    let (i, v) = version(i)?;
    let (i, _) = single_sp(i, "single SP after version")?;
    let (i, s) = status(i)?;
    if i.is_empty() {
        return Ok((i, (v, s, i)));
    }
    let (i, _) = named(ErrorKind::StartLine, "SP before reason text", tag(" "))(i)?;
    let (rest, text) = take_while(is_reason_char)(i)?;
    if !rest.is_empty() {
        return fail(
            rest,
            ErrorKind::StatusText,
            "reason text (no control characters)",
        );
    }
    Ok((rest, (v, s, text)))
}

/// True when a start line is a reply: it begins with the version name.
/// This is how `start-line = request-line / reply-line` is dispatched
/// without backtracking (a method cannot contain `/`).
#[inline]
pub(crate) fn is_reply_line(line: &[u8]) -> bool {
    // One word when there are eight bytes: setting 0x20 folds a letter, and
    // only that letter, to lower case; "/" is compared as it is.
    if let Some(w) = line.get(..8) {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        let w = u64::from_le_bytes(b) | 0x20_2020_2020;
        return w & 0xffff_ffff_ffff == u64::from_le_bytes(*b"acorn/\0\0");
    }
    line.len() >= 6 && line[..6].eq_ignore_ascii_case(b"ACORN/")
}

// ------------------------------------------------ start line, fast paths
//
// The rules above are the reference: they decide every input and give the
// exact error. The `*_fast` functions implement the same ABNF rules for the
// common shape of input with hand-written loops over the class table, and
// answer `None` whenever they are not sure ("not decided here", never
// "invalid"); the caller then runs the reference rule. So an input the fast
// path accepts gets the result the reference gives, and any other input
// gets exactly the reference's result or error. They match a prefix of the
// input: the caller gets the length of the match and checks that the line
// ends right there. The tests at the end of this file and in `parse.rs`
// compare both paths on generated inputs.

/// Fast path of [`version`], ABNF `version = "ACORN" "/" 1*DIGIT
/// 1*3( "." 1*DIGIT )`. Returns how many bytes the version takes.
#[inline(always)]
fn version_fast(v: &[u8]) -> Option<usize> {
    // The version this project emits, as one word: "ACORN" in any case
    // (setting 0x20 folds a letter, and only that letter, to lower case),
    // then "/1.0" and a byte that ends the version.
    if let Some(w) = v.get(..8) {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(w).ok()?);
        if w | 0x20_2020_2020 == u64::from_le_bytes(*b"acorn/1.") {
            match v.get(8..10) {
                Some([b'0', b]) if !b.is_ascii_digit() && *b != b'.' => return Some(9),
                _ => {}
            }
        }
    }
    if v.len() < 6 || !v[..6].eq_ignore_ascii_case(b"ACORN/") {
        return None;
    }
    let digits = |from: usize| {
        let n = v
            .get(from..)?
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        (n > 0).then_some(from + n)
    };
    let mut i = digits(6)?;
    let mut groups = 1;
    while groups < 4 && v.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
        groups += 1;
    }
    // One group only, or a fifth group: the reference reports it.
    if groups < 2 || v.get(i) == Some(&b'.') {
        return None;
    }
    Some(i)
}

/// The run of `literal-char` (an ABNF `literal-target` when not empty) at
/// the start of `l`: its length, and whether a
/// byte of it is >= 0x80 (only then is UTF-8 worth checking). Eight bytes
/// at a time: a byte is not a `literal-char` when it is below 0x21, DQUOTE
/// or DEL. Each of the three SWAR masks flags its first match exactly
/// (borrows only run upward from a flagged byte), so the lowest flag of
/// their union is the first byte that ends the run.
#[inline(always)]
fn literal_run(l: &[u8]) -> (usize, bool) {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    let mut high = 0u64;
    while let Some(chunk) = l.get(i..i + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let x = u64::from_le_bytes(bytes);
        let stop = (x.wrapping_sub(ONES * 0x21) & !x & HIGH)
            | zero(x ^ (ONES * 0x22))
            | zero(x ^ (ONES * 0x7f));
        if stop != 0 {
            let j = stop.trailing_zeros() / 8;
            high |= x & HIGH & ((1u64 << (8 * j)) - 1);
            return (i + j as usize, high != 0);
        }
        high |= x & HIGH;
        i += 8;
    }
    let n = l[i..].iter().take_while(|&&b| is_literal_char(b)).count();
    let tail_high = l[i..i + n].iter().any(|&b| b >= 0x80);
    (i + n, high != 0 || tail_high)
}

/// Fast path of [`request_line`], ABNF `request-line = method SP target SP
/// version` with a `literal-target` (a quoted target is left to the
/// reference), matched at the start of `l`. Returns the parts and the length
/// of the match; the line must end there. `None`: run [`request_line`].
#[inline(always)]
pub(crate) fn request_line_fast(l: &[u8]) -> Option<(RequestParts<'_>, usize)> {
    // method = method-start *method-char
    let first = *l.first()?;
    if first == b'-' || !is_method_char(first) {
        return None;
    }
    let m = 1 + l[1..].iter().take_while(|&&b| is_method_char(b)).count();
    if l.get(m) != Some(&b' ') {
        return None;
    }
    // literal-target = 1*literal-char; UTF-8 is only checked when a byte
    // >= 0x80 was seen (ASCII is UTF-8).
    let t0 = m + 1;
    let (tn, high) = literal_run(&l[t0..]);
    let t1 = t0 + tn;
    let target = &l[t0..t1];
    if tn == 0 || (high && std::str::from_utf8(target).is_err()) {
        return None;
    }
    if l.get(t1) != Some(&b' ') {
        return None;
    }
    let v0 = t1 + 1;
    let end = v0 + version_fast(&l[v0..])?;
    Some(((&l[..m], (target, false), &l[v0..end]), end))
}

/// Fast path of [`reply_line`], ABNF `reply-line = version SP status
/// [ SP reason ]`, matched at the start of `l` and ended by the first byte
/// that is not a `reason-char`. Returns (version, status, reason) and the
/// length of the match; the line must end there. `None`: run [`reply_line`].
#[inline(always)]
pub(crate) fn reply_line_fast(l: &[u8]) -> Option<(ReplyParts<'_>, usize)> {
    let n = version_fast(l)?;
    if l.get(n) != Some(&b' ') {
        return None;
    }
    // status = 3DIGIT
    let s = n + 1;
    let status = l.get(s..s + 3)?;
    if !status.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let i = s + 3;
    if l.get(i) != Some(&b' ') {
        // No reason: the line ends right after the status.
        return Some(((&l[..n], status, &l[i..i]), i));
    }
    // reason = *reason-char
    let t0 = i + 1;
    let t1 = t0 + l[t0..].iter().take_while(|&&b| is_reason_char(b)).count();
    Some(((&l[..n], status, &l[t0..t1]), t1))
}

// ---------------------------------------------------------- header lines

/// ABNF `header-name = ALPHA *name-char`.
pub(crate) fn header_name(i: &[u8]) -> R<'_, &[u8]> {
    match i.first() {
        Some(&b) if is_alpha(b) => {}
        Some(b':') => return fail(i, ErrorKind::HeaderName, "non-empty header name"),
        _ => {
            return fail(
                i,
                ErrorKind::HeaderName,
                "header name starting with a letter",
            )
        }
    }
    take_while1(is_name_char)(i)
}

/// ABNF `header-line = header-name ":" OWS field-value OWS`,
/// `field-value = quoted-string / raw-value`,
/// `raw-value = [ raw-start [ *value-char raw-end ] ]`, where `raw-start`
/// is a `value-char` other than DQUOTE, SP and HTAB and `raw-end` one other
/// than SP and HTAB. Returns name and value (without the surrounding OWS; a
/// quoted value keeps its quotes).
pub(crate) fn header_line(i: &[u8]) -> R<'_, (&[u8], &[u8])> {
    let (i, name) = header_name(i)?;
    match i.first() {
        Some(b':') => {}
        Some(&b) if is_ows(b) => {
            return fail(i, ErrorKind::HeaderName, "\":\" right after the name")
        }
        Some(&b) if !is_name_char(b) && b != b'\r' => {
            return fail(i, ErrorKind::HeaderName, "header name character or \":\"")
        }
        _ => return fail(i, ErrorKind::MissingColon, "\":\" after header name"),
    }
    let i = &i[1..];
    let (i, _) = take_while(is_ows)(i)?;
    if i.first() == Some(&b'"') {
        let (rest, v) = quoted_string(i)?;
        let (rest, _) = take_while(is_ows)(rest)?;
        if !rest.is_empty() {
            return fail(
                rest,
                ErrorKind::HeaderValue,
                "end of line after quoted value",
            );
        }
        return Ok((rest, (name, v)));
    }
    let (rest, v) = take_while(is_value_char)(i)?;
    if !rest.is_empty() {
        return fail(rest, ErrorKind::HeaderValue, "header value byte (not NUL)");
    }
    let trimmed = v.len() - v.iter().rev().take_while(|&&b| is_ows(b)).count();
    Ok((rest, (name, &v[..trimmed])))
}

/// Fast path of the start of [`header_line`], ABNF `header-line =
/// header-name ":" OWS field-value OWS`, up to where a `raw-value` begins.
/// Returns the length of the name and where the value starts. The caller
/// finds the line end from there (every byte before it has then been
/// checked) and drops the trailing OWS. `None` (a quoted value, no colon,
/// a bad name…): run [`header_line`].
#[inline]
pub(crate) fn header_line_fast(l: &[u8]) -> Option<(usize, usize)> {
    // header-name = ALPHA *name-char
    if !is_alpha(*l.first()?) {
        return None;
    }
    // Four bytes per step while all four are name characters, then one by
    // one (names are short; this halves the steps of a typical one).
    let mut n = 1;
    while let Some(&[a, b, c, d]) = l.get(n..n + 4) {
        let all = CLASS[usize::from(a)]
            & CLASS[usize::from(b)]
            & CLASS[usize::from(c)]
            & CLASS[usize::from(d)];
        if all & C_NAME == 0 {
            break;
        }
        n += 4;
    }
    while n < l.len() && is_name_char(l[n]) {
        n += 1;
    }
    if l.get(n) != Some(&b':') {
        return None;
    }
    let mut v = n + 1;
    while v < l.len() && is_ows(l[v]) {
        v += 1;
    }
    if l.get(v) == Some(&b'"') {
        return None;
    }
    Some((n, v))
}

/// Undo the escapes of a `quoted-string` (with its quotes). Borrowed when
/// nothing was escaped.
pub(crate) fn unquote(raw: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(b'r') => out.push(b'\r'),
                Some(b'n') => out.push(b'\n'),
                Some(&o) => out.push(o),
                None => {}
            }
        } else {
            out.push(b);
        }
    }
    std::borrow::Cow::Owned(out)
}

// ---------------------------------------------------------- typed values

/// ABNF `dec-u64 = 1*DIGIT` whose value fits in 64 bits.
#[inline]
pub(crate) fn dec_u64(i: &[u8]) -> R<'_, u64> {
    // Up to 19 digits cannot overflow (10^19 - 1 < 2^64): no checks needed.
    let n = i.iter().take_while(|b| b.is_ascii_digit()).count();
    if (1..=19).contains(&n) {
        let v = i[..n]
            .iter()
            .fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        return Ok((&i[n..], v));
    }
    dec_u64_checked(i)
}

/// [`dec_u64`] for the rare cases: no digit, or 20 and more.
#[cold]
fn dec_u64_checked(i: &[u8]) -> R<'_, u64> {
    let (rest, digits) = named(
        ErrorKind::StartLine,
        "decimal digits",
        take_while1(is_digit),
    )(i)?;
    let mut n: u64 = 0;
    for &d in digits {
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(n) => n,
            None => return fail(i, ErrorKind::StartLine, "a number that fits in 64 bits"),
        };
    }
    Ok((rest, n))
}

/// ABNF `seq-item = dec-u64 [ ".." dec-u64 ]` (first ≤ last).
pub(crate) fn seq_item(i: &[u8]) -> R<'_, (u64, u64)> {
    let (r, a) = dec_u64(i)?;
    if r.starts_with(b"..") {
        let (r2, b) = dec_u64(&r[2..])?;
        if b < a {
            return fail(i, ErrorKind::StartLine, "a range X..Y with X <= Y");
        }
        Ok((r2, (a, b)))
    } else {
        Ok((r, (a, a)))
    }
}

/// Fast path of ABNF `dec-u64 = 1*DIGIT` at `p`, for at most 19 digits
/// (which cannot overflow): the value and where the digits end. `None` for
/// no digit or 20 and more; [`dec_u64`] decides those.
#[inline(always)]
pub(crate) fn digits19(v: &[u8], mut p: usize) -> Option<(u64, usize)> {
    let start = p;
    let mut n = 0u64;
    while let Some(&b) = v.get(p) {
        // Widened before the subtraction: the digit is then already the
        // 64-bit value that is added.
        let d = u64::from(b).wrapping_sub(u64::from(b'0'));
        if d > 9 {
            break;
        }
        n = n.wrapping_mul(10).wrapping_add(d);
        p += 1;
    }
    (1..=19).contains(&(p - start)).then_some((n, p))
}

/// Fast path of ABNF `dec-u64` for a whole value (Seq, Content-Length…):
/// at most 19 digits and nothing else. `None`: run [`dec_u64`], which gives
/// the same number or the exact error.
#[inline(always)]
pub(crate) fn dec_u64_fast(v: &[u8]) -> Option<u64> {
    // The length is known, so the loop runs over it and has no exit of its
    // own for the first byte that is not a digit.
    if !(1..=19).contains(&v.len()) {
        return None;
    }
    let mut n = 0u64;
    for &b in v {
        let d = u64::from(b).wrapping_sub(u64::from(b'0'));
        if d > 9 {
            return None;
        }
        n = n * 10 + d;
    }
    Some(n)
}

/// Fast path of [`seq_item`] (same ABNF rule `seq-item`) at `p`: numbers
/// of at most 19 digits. Returns the item and where it ends; `None`: run
/// [`seq_item`], which gives the same item or the exact error.
#[inline(always)]
fn seq_item_fast(v: &[u8], p: usize) -> Option<(u64, u64, usize)> {
    let (a, p) = digits19(v, p)?;
    if v.get(p) != Some(&b'.') {
        return Some((a, a, p));
    }
    if v.get(p + 1) != Some(&b'.') {
        return None;
    }
    let (b, p) = digits19(v, p + 2)?;
    (a <= b).then_some((a, b, p))
}

/// Where the `OWS` that starts at `p` ends.
#[inline(always)]
fn skip_ows(v: &[u8], mut p: usize) -> usize {
    while v.get(p).is_some_and(|&b| b == b' ' || b == b'\t') {
        p += 1;
    }
    p
}

/// ABNF `seq-list = seq-item *( OWS "," OWS seq-item ) OWS` (the last OWS
/// only shows in a quoted value; a raw one is trimmed). Calls `each` for
/// every item; stops with an error once more than `max_items` were seen
/// (`count` carries the running total across repeated headers). Each item
/// goes through [`seq_item_fast`] first, and through [`seq_item`] when that
/// is not sure; the list state is just the position and `count`, so the
/// two can take turns item by item.
pub(crate) fn seq_list(
    v: &[u8],
    count: &mut usize,
    max_items: usize,
    mut each: impl FnMut((u64, u64)),
) -> Result<(), (Fail, bool)> {
    // The running count in a register, written back on every way out.
    let mut n = *count;
    let mut p = 0;
    let result = loop {
        if n >= max_items {
            break Err((
                Fail::at(&v[p..], ErrorKind::StartLine, "fewer seq-list items"),
                true,
            ));
        }
        let (item, q) = match seq_item_fast(v, p) {
            Some((first, last, q)) => ((first, last), q),
            None => match seq_item(&v[p..]) {
                Ok((r, item)) => (item, v.len() - r.len()),
                Err(e) => break Err((unwrap_fail(e), false)),
            },
        };
        n += 1;
        each(item);
        p = skip_ows(v, q);
        match v.get(p) {
            None => break Ok(()),
            Some(b',') => p = skip_ows(v, p + 1),
            Some(_) => {
                break Err((
                    Fail::at(&v[p..], ErrorKind::StartLine, "\",\" or end of list"),
                    false,
                ))
            }
        }
    };
    *count = n;
    result
}

/// How [`seq_list_fast`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FastList {
    /// Every range is in the sink; this many.
    Done(usize),
    /// The sink had no room for a range: parse again into a bigger one.
    Full,
    /// Not a list the fast path takes: run [`seq_list`].
    No,
}

/// Fast path of [`seq_list`] (same ABNF rule `seq-list`) for one list as
/// peers write it: items ascending and apart (each starts after the range
/// before it ends), numbers of at most 19 digits, at most `max_items` items
/// (known from the length alone). One pass over the bytes, the range being
/// built kept in registers, each finished one appended to `out` (empty on
/// entry). On [`FastList::No`], [`seq_list`] gives the same set or the
/// exact error; on [`FastList::Full`], a sink with more room does (`out` is
/// then left partial either way).
#[inline(always)]
pub(crate) fn seq_list_fast(v: &[u8], max_items: usize, out: &mut impl RangeSink) -> FastList {
    // n items take at least 2n - 1 bytes, so a value of at most
    // 2 * max_items bytes cannot hold more than max_items: no count needed.
    // A longer one (rare) is left to the general path, which counts.
    if v.len() > max_items.saturating_mul(2) {
        return FastList::No;
    }
    let Some((mut lo, mut hi, mut i)) = seq_item_fast(v, 0) else {
        return FastList::No;
    };
    let mut n = 0;
    loop {
        // OWS "," OWS, or the end; a comma right after the item first.
        if v.get(i) == Some(&b',') {
            i += 1;
        } else {
            i = skip_ows(v, i);
            match v.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return FastList::No,
            }
        }
        // One compare rules out OWS before a digit (both OWS bytes are at
        // or below a space; `skip_ows` then takes exactly those).
        if v.get(i).is_some_and(|&b| b <= b' ') {
            i = skip_ows(v, i);
        }
        let Some((a, b, next)) = seq_item_fast(v, i) else {
            return FastList::No;
        };
        i = next;
        // Apart from the range so far (`hi < a`, so `hi + 1` cannot
        // overflow): touching it extends it, else that one is finished.
        if a <= hi {
            return FastList::No;
        }
        if a == hi + 1 {
            hi = b;
        } else {
            if !out.append(n, lo, hi) {
                return FastList::Full;
            }
            n += 1;
            (lo, hi) = (a, b);
        }
    }
    if out.append(n, lo, hi) {
        FastList::Done(n + 1)
    } else {
        FastList::Full
    }
}

pub(crate) fn unwrap_fail(e: nom::Err<Fail>) -> Fail {
    match e {
        nom::Err::Error(f) | nom::Err::Failure(f) => f,
        nom::Err::Incomplete(_) => Fail {
            kind: ErrorKind::StartLine,
            expected: "more input",
            rest: 0,
        },
    }
}

/// ABNF `token = 1*token-char` (opaque ids: TX-ID, Message-ID, Session-ID…).
#[inline]
pub(crate) fn token(i: &[u8]) -> R<'_, &[u8]> {
    named(
        ErrorKind::StartLine,
        "token (visible characters)",
        take_while1(is_token_char),
    )(i)
}

/// ABNF `session-mode = %s"ordered" / %s"unordered"` (case-sensitive).
#[inline]
pub(crate) fn session_mode(i: &[u8]) -> R<'_, bool> {
    // The two words differ in their first byte, so at most one matches.
    if let Some(r) = i.strip_prefix(b"ordered") {
        return Ok((r, true));
    }
    if let Ok((r, _)) = tag::<_, _, Fail>("unordered")(i) {
        return Ok((r, false));
    }
    let (r, _) = named(
        ErrorKind::StartLine,
        "\"ordered\" or \"unordered\"",
        tag("ordered"),
    )(i)?;
    Ok((r, true))
}

/// ABNF `fraction-pair = pos-u64 "/" pos-u64` (used by Attempt and Segment),
/// `pos-u64 = dec-u64`: both numbers at least 1 and the first not above the
/// second.
pub(crate) fn fraction_pair(i: &[u8]) -> R<'_, (u64, u64)> {
    let (r, a) = dec_u64(i)?;
    let (r, _) = named(ErrorKind::StartLine, "\"/\"", tag("/"))(r)?;
    let (r, b) = dec_u64(r)?;
    if a == 0 || b == 0 || a > b {
        return fail(i, ErrorKind::StartLine, "I/N with 1 <= I <= N");
    }
    Ok((r, (a, b)))
}

/// ABNF `node = 1*( ALPHA / DIGIT / "-" / "_" / "." )`.
fn is_node_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}
/// ABNF `reg-name = 1*( ALPHA / DIGIT / "-" / "." )` (also covers IPv4).
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
}

/// Node, host (without brackets), port, host is IPv6.
pub(crate) type IdentityParts<'a> = (Option<&'a [u8]>, &'a [u8], u16, bool);

/// ABNF `identity = [ node "@" ] host ":" port`,
/// `host = "[" IPv6address "]" / reg-name`, `port = 1*5DIGIT` (≤ 65535).
/// `IPv6address` is RFC 3986's (with `h16`, `ls32`, `IPv4address` and
/// `dec-octet`), checked by `std::net::Ipv6Addr`.
/// Returns (node, host without brackets, port, host is IPv6).
pub(crate) fn identity(i: &[u8]) -> R<'_, IdentityParts<'_>> {
    let at = i.iter().position(|&b| b == b'@');
    let (i, node) = match at {
        Some(p) => {
            let node = &i[..p];
            if node.is_empty() || !node.iter().all(|&b| is_node_char(b)) {
                return fail(i, ErrorKind::StartLine, "node name before \"@\"");
            }
            (&i[p + 1..], Some(node))
        }
        None => (i, None),
    };
    let (i, host, v6) = if i.first() == Some(&b'[') {
        let close = match i.iter().position(|&b| b == b']') {
            Some(c) => c,
            None => return fail(i, ErrorKind::StartLine, "\"]\" closing an IPv6 address"),
        };
        let inner = &i[1..close];
        let ok = std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse::<std::net::Ipv6Addr>().ok())
            .is_some();
        if !ok {
            return fail(&i[1..], ErrorKind::StartLine, "IPv6 address in brackets");
        }
        (&i[close + 1..], inner, true)
    } else {
        let (r, h) = named(
            ErrorKind::StartLine,
            "host name or address",
            take_while1(is_host_char),
        )(i)?;
        (r, h, false)
    };
    let (i, _) = named(ErrorKind::StartLine, "\":\" and a port", tag(":"))(i)?;
    let (r, digits) = named(ErrorKind::StartLine, "port number", take_while1(is_digit))(i)?;
    let port = if digits.len() <= 5 {
        digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
    } else {
        u32::MAX
    };
    if port > 65535 {
        return fail(i, ErrorKind::StartLine, "port 0..65535");
    }
    Ok((r, (node, host, port as u16, v6)))
}

/// ABNF `date-time = full-date "T" partial-time time-offset` (RFC 3339 §5.6,
/// with `full-date`, `partial-time`, `time-secfrac`, `time-offset` and
/// `time-numoffset` as in the grammar),
/// returned as Unix seconds (fractions truncated). Validates day of month
/// (leap years), hour ≤ 23, minute ≤ 59, second ≤ 60.
pub(crate) fn date_time(i: &[u8]) -> R<'_, i64> {
    fn digits(i: &[u8], n: usize) -> R<'_, u32> {
        if i.len() >= n && i[..n].iter().all(u8::is_ascii_digit) {
            let v = i[..n]
                .iter()
                .fold(0u32, |a, &d| a * 10 + u32::from(d - b'0'));
            Ok((&i[n..], v))
        } else {
            fail(i, ErrorKind::StartLine, "RFC 3339 date-time")
        }
    }
    fn sep(i: &[u8], c: u8) -> R<'_, ()> {
        match i.first() {
            Some(&b) if b == c || (c == b'T' && b == b't') => Ok((&i[1..], ())),
            _ => fail(i, ErrorKind::StartLine, "RFC 3339 date-time"),
        }
    }
    let start = i;
    let (i, year) = digits(i, 4)?;
    let (i, _) = sep(i, b'-')?;
    let (i, month) = digits(i, 2)?;
    let (i, _) = sep(i, b'-')?;
    let (i, day) = digits(i, 2)?;
    let (i, _) = sep(i, b'T')?;
    let (i, hour) = digits(i, 2)?;
    let (i, _) = sep(i, b':')?;
    let (i, minute) = digits(i, 2)?;
    let (i, _) = sep(i, b':')?;
    let (mut i, second) = digits(i, 2)?;
    if i.first() == Some(&b'.') {
        let (r, _) = named(
            ErrorKind::StartLine,
            "fraction digits",
            take_while1(is_digit),
        )(&i[1..])?;
        i = r;
    }
    let (i, offset_secs) = match i.first() {
        Some(b'Z' | b'z') => (&i[1..], 0i64),
        Some(&s @ (b'+' | b'-')) => {
            let (r, oh) = digits(&i[1..], 2)?;
            let (r, _) = sep(r, b':')?;
            let (r, om) = digits(r, 2)?;
            if oh > 23 || om > 59 {
                return fail(i, ErrorKind::StartLine, "offset hours <= 23, minutes <= 59");
            }
            let off = i64::from(oh * 3600 + om * 60);
            (r, if s == b'+' { off } else { -off })
        }
        _ => return fail(i, ErrorKind::StartLine, "\"Z\" or a +HH:MM offset"),
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day == 0
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return fail(start, ErrorKind::StartLine, "a real calendar date and time");
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    Ok((i, secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ABNF `duration = 1*DIGIT [ "." 1*3DIGIT ]` (seconds, millisecond precision),
/// returned in milliseconds.
pub(crate) fn duration_ms(i: &[u8]) -> R<'_, u64> {
    let (r, secs) = dec_u64(i)?;
    let (r, frac) = if r.first() == Some(&b'.') {
        let (r2, f) = named(
            ErrorKind::StartLine,
            "1 to 3 fraction digits",
            take_while1(is_digit),
        )(&r[1..])?;
        if f.len() > 3 {
            return fail(&r[1..], ErrorKind::StartLine, "at most 3 fraction digits");
        }
        let mut ms = f.iter().fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        for _ in f.len()..3 {
            ms *= 10;
        }
        (r2, ms)
    } else {
        (r, 0)
    };
    match secs.checked_mul(1000).and_then(|s| s.checked_add(frac)) {
        Some(ms) => Ok((r, ms)),
        None => fail(
            i,
            ErrorKind::StartLine,
            "a duration that fits in 64-bit milliseconds",
        ),
    }
}

/// ABNF `base64 = *base64-quad ( base64-quad / base64-final )` with
/// `base64-quad = 4base64-char`, `base64-final = 2base64-char "==" /
/// 3base64-char "="`, `base64-char = ALPHA / DIGIT / "+" / "/"` (RFC 4648
/// §4, padded, not empty, unused bits zero).
pub(crate) fn base64_digest(i: &[u8]) -> Result<Vec<u8>, Fail> {
    use base64::Engine as _;
    if i.is_empty() {
        return Err(Fail::at(i, ErrorKind::StartLine, "base64 digest"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(i)
        .map_err(|_| Fail::at(i, ErrorKind::StartLine, "padded base64 digest"))
}

/// ABNF `media-type = http-token "/" http-token *( OWS ";" OWS parameter ) OWS`,
/// `parameter = http-token "=" ( http-token / quoted-string )`.
pub(crate) fn media_type(i: &[u8]) -> R<'_, (&[u8], &[u8])> {
    let tchar = is_tchar;
    let (r, ty) = named(ErrorKind::StartLine, "media type", take_while1(tchar))(i)?;
    let (r, _) = named(ErrorKind::StartLine, "\"/\" in media type", tag("/"))(r)?;
    let (mut r, sub) = named(ErrorKind::StartLine, "media subtype", take_while1(tchar))(r)?;
    loop {
        let (r1, _) = take_while(is_ows)(r)?;
        if r1.is_empty() {
            return Ok((r1, (ty, sub)));
        }
        let (r1, _) = named(ErrorKind::StartLine, "\";\" before a parameter", tag(";"))(r1)?;
        let (r1, _) = take_while(is_ows)(r1)?;
        let (r1, _) = named(ErrorKind::StartLine, "parameter name", take_while1(tchar))(r1)?;
        let (r1, _) = named(ErrorKind::StartLine, "\"=\" in parameter", tag("="))(r1)?;
        r = if r1.first() == Some(&b'"') {
            quoted_string(r1)?.0
        } else {
            named(ErrorKind::StartLine, "parameter value", take_while1(tchar))(r1)?.0
        };
    }
}

/// ABNF `coding-list = coding *( OWS "," OWS coding ) OWS`, `coding = http-token`.
pub(crate) fn coding_list(i: &[u8]) -> R<'_, ()> {
    let tchar = is_tchar;
    let (mut r, _) = named(ErrorKind::StartLine, "content coding", take_while1(tchar))(i)?;
    loop {
        let (r1, _) = take_while(is_ows)(r)?;
        if r1.is_empty() {
            return Ok((r1, ()));
        }
        let (r1, _) = named(ErrorKind::StartLine, "\",\" between codings", tag(","))(r1)?;
        let (r1, _) = take_while(is_ows)(r1)?;
        r = named(ErrorKind::StartLine, "content coding", take_while1(tchar))(r1)?.0;
    }
}

#[cfg(test)]
mod tests {
    //! The class table and the fast paths against their definitions.
    use super::*;
    use proptest::prelude::*;

    /// The byte classes as they were written before the table, one
    /// comparison chain each.
    #[test]
    fn class_table_matches_the_rules() {
        for b in 0..=255u8 {
            let visible = (0x21..=0x7e).contains(&b);
            assert_eq!(
                is_method_char(b),
                b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-'
            );
            assert_eq!(
                is_name_char(b),
                b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
            );
            assert_eq!(is_literal_char(b), visible && b != b'"' || b >= 0x80);
            assert_eq!(is_qdtext(b), !matches!(b, 0 | b'\r' | b'\n' | b'"' | b'\\'));
            assert_eq!(is_value_char(b), !matches!(b, 0 | b'\r' | b'\n'));
            assert_eq!(
                is_reason_char(b),
                b == b'\t' || b == b' ' || visible || b >= 0x80
            );
            assert_eq!(is_ows(b), b == b' ' || b == b'\t');
            assert_eq!(is_token_char(b), visible || b >= 0x80);
            assert_eq!(
                is_tchar(b),
                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
            );
        }
    }

    /// `seq-list` as it was written before its fast path.
    fn seq_list_reference(
        i: &[u8],
        count: &mut usize,
        max_items: usize,
        mut each: impl FnMut((u64, u64)),
    ) -> Result<(), (Fail, bool)> {
        let mut i = i;
        loop {
            if *count >= max_items {
                return Err((
                    Fail::at(i, ErrorKind::StartLine, "fewer seq-list items"),
                    true,
                ));
            }
            let (r, item) = seq_item(i).map_err(|e| (unwrap_fail(e), false))?;
            *count += 1;
            each(item);
            let (r, _) =
                take_while::<_, _, Fail>(is_ows)(r).map_err(|e| (unwrap_fail(e), false))?;
            if r.is_empty() {
                return Ok(());
            }
            if r[0] != b',' {
                return Err((
                    Fail::at(r, ErrorKind::StartLine, "\",\" or end of list"),
                    false,
                ));
            }
            let (r, _) =
                take_while::<_, _, Fail>(is_ows)(&r[1..]).map_err(|e| (unwrap_fail(e), false))?;
            i = r;
        }
    }

    fn fragments(set: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                8 => prop::sample::select(set).prop_map(|s| s.as_bytes().to_vec()),
                1 => any::<u8>().prop_map(|b| vec![b]),
            ],
            0..10,
        )
        .prop_map(|parts| parts.concat())
    }

    const SEQ: &[&str] = &[
        "0",
        "7",
        "12",
        "..",
        ".",
        ",",
        " ",
        "\t",
        "18446744073709551615",
        "18446744073709551616",
        "9999999999999999999",
        "99999999999999999999",
        "00000000000000000000001",
        "+",
        "-",
        "*",
    ];

    const LINE: &[&str] = &[
        "ACORN/", "acorn/", "1", "0", ".", "10", " ", "\t", "REG", "/p", "\"", "\\", "\u{e9}",
        "\u{ff}", "X-A", "_", "-", ":", "\r", "\n", "\0", "200", "OK",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        #[test]
        fn dec_u64_fast_path_agrees(v in fragments(SEQ)) {
            prop_assert_eq!(dec_u64(&v), dec_u64_checked(&v));
            // The whole-value fast path: the same number, and it only
            // declines what is not 1 to 19 digits.
            let digits = (1..=19).contains(&v.len()) && v.iter().all(u8::is_ascii_digit);
            match dec_u64_fast(&v) {
                Some(n) => prop_assert_eq!(dec_u64(&v), Ok((&v[v.len()..], n))),
                None => prop_assert!(!digits),
            }
        }

        #[test]
        fn seq_list_fast_path_agrees(v in fragments(SEQ), start in 0usize..3, max in 0usize..6) {
            let (mut c1, mut c2) = (start, start);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let r1 = seq_list(&v, &mut c1, max, |it| a.push(it));
            let r2 = seq_list_reference(&v, &mut c2, max, |it| b.push(it));
            prop_assert_eq!(r1, r2);
            prop_assert_eq!(c1, c2);
            prop_assert_eq!(a, b);
        }

        #[test]
        fn session_mode_fast_path_agrees(v in fragments(&["ordered", "unordered", "order", "x", " "])) {
            let reference = match tag::<_, _, Fail>("unordered")(&v[..]) {
                Ok((r, _)) => Ok((r, false)),
                Err(_) => named(ErrorKind::StartLine, "\"ordered\" or \"unordered\"", tag("ordered"))(&v[..]).map(|(r, _)| (r, true)),
            };
            prop_assert_eq!(session_mode(&v), reference);
        }

        #[test]
        fn is_reply_line_agrees(v in fragments(LINE)) {
            prop_assert_eq!(
                is_reply_line(&v),
                v.len() >= 6 && v[..6].eq_ignore_ascii_case(b"ACORN/")
            );
        }

        #[test]
        fn literal_run_agrees(v in fragments(LINE)) {
            let n = v.iter().take_while(|&&b| is_literal_char(b)).count();
            prop_assert_eq!(literal_run(&v), (n, v[..n].iter().any(|&b| b >= 0x80)));
        }

        #[test]
        fn start_line_fast_paths_agree(v in fragments(LINE)) {
            if let Some((parts, end)) = request_line_fast(&v) {
                prop_assert_eq!(request_line(&v[..end]), Ok((&v[end..end], parts)));
            }
            if let Some((parts, end)) = reply_line_fast(&v) {
                prop_assert_eq!(reply_line(&v[..end]), Ok((&v[end..end], parts)));
            }
            if let Some(n) = version_fast(&v) {
                prop_assert_eq!(version(&v[..n]), Ok((&v[n..n], &v[..n])));
            }
        }

        #[test]
        fn header_line_fast_path_agrees(v in fragments(LINE)) {
            // The fast path is only used on lines without NUL, CR and LF.
            let clean: Vec<u8> = v.into_iter().filter(|b| !matches!(b, 0 | b'\r' | b'\n')).collect();
            if let Some((n, at)) = header_line_fast(&clean) {
                let trail = clean[at..].iter().rev().take_while(|&&b| is_ows(b)).count();
                let value = &clean[at..clean.len() - trail];
                prop_assert_eq!(header_line(&clean), Ok((&clean[clean.len()..], (&clean[..n], value))));
            }
        }
    }
}
