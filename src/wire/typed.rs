//! Typed headers (SPEC §3), decoded on demand from the raw header.
//!
//! A PDU nobody inspects costs only the scan; each accessor here walks the
//! header spans and runs one grammar rule over the value. Errors carry the
//! value's offset in the PDU. A single-valued header that is repeated must
//! repeat the same value ([`ErrorKind::ConflictingValues`] otherwise).

use super::error::{ErrorKind, Field, ParseError};
use super::grammar::{self, Fail, FastList};
use super::limits::Limits;
use super::pdu::{PduView, Sole, ValueRef};
use super::seqlist::{InlineRanges, SeqList};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// Header names with meaning (SPEC §3), as this project writes them.
pub mod names {
    pub const TX_ID: &str = "TX-ID";
    pub const MESSAGE_ID: &str = "Message-ID";
    pub const ACK_MESSAGE_ID: &str = "Ack-Message-ID";
    pub const FROM: &str = "From";
    pub const TO: &str = "To";
    pub const REPLY_TO: &str = "Reply-To";
    pub const ACK_TO: &str = "Ack-To";
    pub const CONTENT_TYPE: &str = "Content-Type";
    pub const CONTENT_LENGTH: &str = "Content-Length";
    pub const CONTENT_ENCODING: &str = "Content-Encoding";
    pub const TS: &str = "TS";
    pub const DATE: &str = "Date";
    pub const TIMEOUT: &str = "Timeout";
    pub const ATTEMPT: &str = "Attempt";
    pub const RETRY_ATTEMPT: &str = "Retry-Attempt";
    pub const EXPIRE_AT: &str = "Expire-At";
    pub const EXPIRE_DATE: &str = "Expire-Date";
    pub const SEGMENT: &str = "Segment";
    pub const SEGMENT_ID: &str = "Segment-ID";
    pub const SEGMENT_INDEX: &str = "Segment-Index";
    pub const SEGMENT_COUNT: &str = "Segment-Count";
    pub const PAYLOAD_LENGTH: &str = "Payload-Length";
    pub const SEQ: &str = "Seq";
    pub const NEED_SEQ: &str = "Need-Seq";
    pub const IGNORE_SEQ: &str = "Ignore-Seq";
    pub const ACK_SEQ: &str = "Ack-Seq";
    pub const REQUEST_SESSION_MODE: &str = "Request-Session-Mode";
    pub const SET_SESSION_MODE: &str = "Set-Session-Mode";
    pub const SESSION_ID: &str = "Session-ID";
    pub const SESSION_STATUS: &str = "Session-Status";
    /// Resumption extension: the one-time token a second channel presents.
    pub const CHANNEL_TOKEN: &str = "Channel-Token";
}

/// `ordered` or `unordered` (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionMode {
    Ordered,
    Unordered,
}

impl SessionMode {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionMode::Ordered => "ordered",
            SessionMode::Unordered => "unordered",
        }
    }
}

impl fmt::Display for SessionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Session-Status` (resumption extension): what the server did with a
/// `REG` that named a `Session-ID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionStatus {
    /// A fresh session (the id was unknown; the client must resend its state).
    New,
    /// The session continued where it was.
    Resumed,
}

impl SessionStatus {
    /// The wire token.
    pub const fn as_str(self) -> &'static str {
        match self {
            SessionStatus::New => "new",
            SessionStatus::Resumed => "resumed",
        }
    }
}

/// `Ignore-Seq`: every missing Seq, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreSeq {
    All,
    List(SeqList),
}

/// `Attempt: CUR/MAX`, 1 ≤ CUR ≤ MAX, or `Retry-Attempt: N` (SPEC §10),
/// which names the attempt and no maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Which try this is.
    pub current: u64,
    /// Out of how many; `None` when the peer did not say (`Retry-Attempt`).
    pub max: Option<u64>,
}

/// `Segment: I/N`, 1 ≤ I ≤ N (or the `Segment-Index`/`Segment-Count` pair).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentInfo {
    /// One-based index of this part.
    pub index: u64,
    /// Number of parts.
    pub count: u64,
}

/// `[NODE@]HOST:PORT`; an IPv6 host is bracketed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity<'a> {
    pub node: Option<&'a str>,
    /// The host without brackets.
    pub host: &'a str,
    pub port: u16,
}

impl fmt::Display for Identity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.node {
            write!(f, "{n}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Identity<'_> {
    /// The host and port as a socket address, when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<std::net::SocketAddr> {
        let ip: std::net::IpAddr = self.host.parse().ok()?;
        Some(std::net::SocketAddr::new(ip, self.port))
    }
}

/// What a hash header covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashScope {
    /// `Content-Hash-*`: this message's body.
    Content,
    /// `Payload-Hash-*`: the reassembled payload of a segmented message.
    Payload,
}

/// `Content-Hash-[HMAC-]<ALG>` / `Payload-Hash-[HMAC-]<ALG>` with its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashHeader<'a> {
    pub scope: HashScope,
    /// Keyed (`HMAC-`) or plain digest.
    pub keyed: bool,
    /// The algorithm as written (e.g. `SHA256`); compare case-insensitively.
    pub algorithm: &'a str,
    /// The decoded digest bytes.
    pub digest: SmallVec<[u8; 64]>,
}

/// Split a hash header name into scope, keyed and algorithm; `None` when
/// the name is not a hash header. ABNF `hash-header-name = ( "Content-Hash-"
/// / "Payload-Hash-" ) [ "HMAC-" ] hash-alg` (an `HMAC-` right after the
/// prefix always marks a keyed digest; [`PduView::hashes`] refuses an empty
/// `hash-alg`).
pub fn hash_header_name(name: &str) -> Option<(HashScope, bool, &str)> {
    const C: &str = "content-hash-";
    const P: &str = "payload-hash-";
    let lower_starts = |p: &str| {
        name.len() >= p.len() && name.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
    };
    let (scope, rest) = if lower_starts(C) {
        (HashScope::Content, &name[C.len()..])
    } else if lower_starts(P) {
        (HashScope::Payload, &name[P.len()..])
    } else {
        return None;
    };
    if rest.len() >= 5 && rest.as_bytes()[..5].eq_ignore_ascii_case(b"hmac-") {
        Some((scope, true, &rest[5..]))
    } else {
        Some((scope, false, rest))
    }
}

/// Decode a `Timeout` value on its own (e.g. from a header about to be sent).
pub fn timeout_value(v: &[u8]) -> Option<Duration> {
    whole(grammar::duration_ms(v), "seconds")
        .ok()
        .map(Duration::from_millis)
}

fn invalid(f: Fail, value: &[u8], value_offset: usize, field: Field) -> ParseError {
    let mut e = f.locate(value, value_offset);
    e.kind = ErrorKind::InvalidValue(field);
    e
}

#[inline]
fn whole<'a, O>(r: grammar::R<'a, O>, expected: &'static str) -> Result<O, Fail> {
    grammar::finish(r, ErrorKind::StartLine, expected)
}

#[inline]
fn utf8(b: &[u8]) -> Result<&str, Fail> {
    std::str::from_utf8(b).map_err(|_| Fail::at(b, ErrorKind::StartLine, "UTF-8 text"))
}

/// The items of the seq lists of one PDU as they are parsed: appended in
/// O(1) while they come in order (as the lists a peer writes do), the others
/// set aside and merged once at the end, so even a list in reverse order
/// costs n log n, never n². The result is the set [`SeqList::from_ranges`]
/// gives for all the items.
#[derive(Default)]
struct SeqItems {
    list: SeqList,
    aside: Vec<(u64, u64)>,
}

impl SeqItems {
    /// One item, `first <= last` (as `seq-item` guarantees).
    #[inline]
    fn push(&mut self, first: u64, last: u64) {
        if !self.list.try_append(first, last) {
            self.aside.push((first, last));
        }
    }

    #[inline]
    fn finish(self) -> SeqList {
        if self.aside.is_empty() {
            self.list
        } else {
            SeqList::from_ranges(self.list.ranges().chain(self.aside))
        }
    }
}

/// ABNF `typed-quoted = DQUOTE *qdtext DQUOTE`: SPEC §1 lets any header
/// value be written as a quoted string, so a typed value is read from the
/// string's content: `TX-ID: "abc"` is `abc`, the
/// same value `fmt` prints and an ACK echoes. No typed syntax of SPEC §3
/// needs an escape, so a quoted typed value that uses one is refused.
#[inline]
fn typed_content(v: ValueRef<'_>, field: Field) -> Result<ValueRef<'_>, ParseError> {
    let raw = v.value;
    if raw.len() < 2 || raw[0] != b'"' {
        return Ok(v);
    }
    let inner = &raw[1..raw.len() - 1];
    if let Some(i) = inner.iter().position(|&b| b == b'\\') {
        return Err(ParseError::new(
            ErrorKind::InvalidValue(field),
            v.value_offset + 1 + i,
            "a typed value without escapes",
        ));
    }
    Ok(ValueRef {
        value: inner,
        value_offset: v.value_offset + 1,
    })
}

impl<B: AsRef<[u8]>> PduView<B> {
    /// Decode every header called `name` with `decode`; they must agree.
    ///
    /// The usual case, one header with an unquoted value, takes one lookup
    /// and one decode; a repeated or quoted header, or a value the decoder
    /// refuses, goes through [`PduView::single_each`], which reads quoted
    /// values and gives every error with its position.
    #[inline(always)]
    fn single<'s, T: PartialEq>(
        &'s self,
        name: &str,
        field: Field,
        decode: impl Fn(&'s [u8]) -> Result<T, Fail>,
    ) -> Result<Option<T>, ParseError> {
        self.single_with(name, field, false, decode)
    }

    /// [`PduView::single`]; `plain` (a constant at every call) says the
    /// decoder refuses a leading quote (numbers, modes), so there is no
    /// separate test for one: the refusal sends a quoted value to the
    /// general path.
    #[inline(always)]
    fn single_with<'s, T: PartialEq>(
        &'s self,
        name: &str,
        field: Field,
        plain: bool,
        decode: impl Fn(&'s [u8]) -> Result<T, Fail>,
    ) -> Result<Option<T>, ParseError> {
        match self.sole(name) {
            Sole::Absent => Ok(None),
            Sole::One(v) if plain || v.value.first() != Some(&b'"') => match decode(v.value) {
                Ok(t) => Ok(Some(t)),
                Err(_) => self.single_each(name, field, &decode),
            },
            _ => self.single_each(name, field, &decode),
        }
    }

    /// [`PduView::single`] header by header: quoted values read from their
    /// content, repeats compared with the first.
    #[inline(never)]
    fn single_each<'s, T: PartialEq>(
        &'s self,
        name: &str,
        field: Field,
        decode: impl Fn(&'s [u8]) -> Result<T, Fail>,
    ) -> Result<Option<T>, ParseError> {
        let mut out: Option<T> = None;
        for h in self.named(name).map(|h| self.value_at(h)) {
            let h = typed_content(h, field)?;
            let v = decode(h.value).map_err(|f| invalid(f, h.value, h.value_offset, field))?;
            match &out {
                Some(prev) if *prev != v => {
                    return Err(ParseError::new(
                        ErrorKind::ConflictingValues(field),
                        h.value_offset,
                        "the same value as the earlier header",
                    ))
                }
                Some(_) => {}
                None => out = Some(v),
            }
        }
        Ok(out)
    }

    fn number(&self, name: &str, field: Field) -> Result<Option<u64>, ParseError> {
        // A quote is not a digit: the plain lookup suffices.
        self.single_with(name, field, true, |v| match grammar::dec_u64_fast(v) {
            Some(n) => Ok(n),
            None => whole(grammar::dec_u64(v), "decimal digits only"),
        })
    }

    /// ABNF `opaque-id = 1*( VCHAR / UTF8-non-ascii )`: a [`grammar::token`]
    /// that is UTF-8 (TX-ID, Message-ID, Ack-Message-ID, Session-ID,
    /// Segment-ID).
    fn token_field(&self, name: &str, field: Field) -> Result<Option<&str>, ParseError> {
        self.single(name, field, |v| {
            whole(grammar::token(v), "a token without spaces").and_then(utf8)
        })
    }

    fn identity_field(&self, name: &str, field: Field) -> Result<Option<Identity<'_>>, ParseError> {
        self.single(name, field, |v| {
            let (node, host, port, _) = whole(grammar::identity(v), "[NODE@]HOST:PORT")?;
            Ok(Identity {
                node: node.map(utf8).transpose()?,
                host: utf8(host)?,
                port,
            })
        })
    }

    fn mode_field(&self, name: &str, field: Field) -> Result<Option<SessionMode>, ParseError> {
        self.single_with(name, field, true, |v| {
            whole(grammar::session_mode(v), "\"ordered\" or \"unordered\"").map(|o| {
                if o {
                    SessionMode::Ordered
                } else {
                    SessionMode::Unordered
                }
            })
        })
    }

    /// Concatenate every header called `name` as one seq list. One header
    /// written in ascending order (the usual case) is read in one pass by
    /// [`grammar::seq_list_fast`]; anything else by
    /// [`PduView::seq_list_each`].
    #[inline(always)]
    fn seq_list_field(
        &self,
        name: &str,
        field: Field,
        max_items: usize,
    ) -> Result<Option<SeqList>, ParseError> {
        match self.sole(name) {
            Sole::Absent => Ok(None),
            Sole::One(v) => {
                // Up to four ranges in an array first (see `InlineRanges`).
                let mut small = InlineRanges::default();
                match grammar::seq_list_fast(v.value, max_items, &mut small) {
                    FastList::Done(n) => Ok(Some(small.into_list(n))),
                    FastList::Full => self.long_seq_list(v.value, name, field, max_items),
                    FastList::No => self.seq_list_each(name, field, max_items),
                }
            }
            Sole::Several => self.seq_list_each(name, field, max_items),
        }
    }

    /// [`PduView::seq_list_field`] for one header with more ranges than
    /// [`InlineRanges`] holds: read again straight into the set. Out of
    /// line, so that the usual accessor stays small where it is inlined.
    #[inline(never)]
    fn long_seq_list(
        &self,
        v: &[u8],
        name: &str,
        field: Field,
        max_items: usize,
    ) -> Result<Option<SeqList>, ParseError> {
        let mut list = SeqList::new();
        match grammar::seq_list_fast(v, max_items, &mut list) {
            FastList::Done(_) => Ok(Some(list)),
            FastList::Full | FastList::No => self.seq_list_each(name, field, max_items),
        }
    }

    /// [`PduView::seq_list_field`] header by header, in any order, with
    /// every error.
    #[inline(never)]
    fn seq_list_each(
        &self,
        name: &str,
        field: Field,
        max_items: usize,
    ) -> Result<Option<SeqList>, ParseError> {
        let mut found = self.named(name);
        let Some(first) = found.next() else {
            return Ok(None);
        };
        let mut count = 0usize;
        let mut list = SeqItems::default();
        for h in std::iter::once(first)
            .chain(found)
            .map(|h| self.value_at(h))
        {
            let h = typed_content(h, field)?;
            grammar::seq_list(h.value, &mut count, max_items, |(a, b)| list.push(a, b)).map_err(
                |(f, over)| {
                    if over {
                        let mut e = f.locate(h.value, h.value_offset);
                        e.kind = ErrorKind::Limit(super::limits::Limit::SeqListItems);
                        e
                    } else {
                        invalid(f, h.value, h.value_offset, field)
                    }
                },
            )?;
        }
        Ok(Some(list.finish()))
    }

    /// `Seq`: this PDU's position in its sender's session stream (ABNF
    /// `seq-value = dec-u64`).
    pub fn seq(&self) -> Result<Option<u64>, ParseError> {
        self.number(names::SEQ, Field::Seq)
    }

    /// `Ack-Seq` (extension): the sender holds every Seq of ours up to this
    /// (ABNF `seq-value`).
    pub fn ack_seq(&self) -> Result<Option<u64>, ParseError> {
        self.number(names::ACK_SEQ, Field::AckSeq)
    }

    /// `Need-Seq` with the default item limit; repeated headers concatenate.
    pub fn need_seq(&self) -> Result<Option<SeqList>, ParseError> {
        self.need_seq_limited(Limits::default().max_seq_items)
    }

    /// `Need-Seq` with at most `max_items` items over all its headers (ABNF
    /// `need-seq-value = seq-list`).
    pub fn need_seq_limited(&self, max_items: usize) -> Result<Option<SeqList>, ParseError> {
        self.seq_list_field(names::NEED_SEQ, Field::NeedSeq, max_items)
    }

    /// `Ignore-Seq` with the default item limit: `*` anywhere means all.
    pub fn ignore_seq(&self) -> Result<Option<IgnoreSeq>, ParseError> {
        self.ignore_seq_limited(Limits::default().max_seq_items)
    }

    /// `Ignore-Seq` with at most `max_items` list items (ABNF
    /// `ignore-seq-value = "*" / seq-list`).
    pub fn ignore_seq_limited(&self, max_items: usize) -> Result<Option<IgnoreSeq>, ParseError> {
        let mut star = false;
        let mut count = 0usize;
        let mut list = SeqItems::default();
        let mut any = false;
        for h in self.named(names::IGNORE_SEQ).map(|h| self.value_at(h)) {
            any = true;
            let h = typed_content(h, Field::IgnoreSeq)?;
            if h.value == b"*" {
                star = true;
                continue;
            }
            grammar::seq_list(h.value, &mut count, max_items, |(a, b)| list.push(a, b)).map_err(
                |(f, over)| {
                    if over {
                        let mut e = f.locate(h.value, h.value_offset);
                        e.kind = ErrorKind::Limit(super::limits::Limit::SeqListItems);
                        e
                    } else {
                        invalid(f, h.value, h.value_offset, Field::IgnoreSeq)
                    }
                },
            )?;
        }
        Ok(match (any, star) {
            (false, _) => None,
            (true, true) => Some(IgnoreSeq::All),
            (true, false) => Some(IgnoreSeq::List(list.finish())),
        })
    }

    /// `Request-Session-Mode`.
    pub fn request_session_mode(&self) -> Result<Option<SessionMode>, ParseError> {
        self.mode_field(names::REQUEST_SESSION_MODE, Field::RequestSessionMode)
    }

    /// `Set-Session-Mode`.
    pub fn set_session_mode(&self) -> Result<Option<SessionMode>, ParseError> {
        self.mode_field(names::SET_SESSION_MODE, Field::SetSessionMode)
    }

    /// `Session-Status: new|resumed` (resumption extension; ABNF
    /// `session-status = %s"new" / %s"resumed"`).
    pub fn session_status(&self) -> Result<Option<SessionStatus>, ParseError> {
        self.single(names::SESSION_STATUS, Field::SessionStatus, |v| match v {
            b"new" => Ok(SessionStatus::New),
            b"resumed" => Ok(SessionStatus::Resumed),
            _ => Err(Fail::at(v, ErrorKind::StartLine, "\"new\" or \"resumed\"")),
        })
    }

    /// `TX-ID`.
    pub fn tx_id(&self) -> Result<Option<&str>, ParseError> {
        self.token_field(names::TX_ID, Field::TxId)
    }

    /// `Message-ID`.
    pub fn message_id(&self) -> Result<Option<&str>, ParseError> {
        self.token_field(names::MESSAGE_ID, Field::MessageId)
    }

    /// `Ack-Message-ID`.
    pub fn ack_message_id(&self) -> Result<Option<&str>, ParseError> {
        self.token_field(names::ACK_MESSAGE_ID, Field::AckMessageId)
    }

    /// `Session-ID`.
    pub fn session_id(&self) -> Result<Option<&str>, ParseError> {
        self.token_field(names::SESSION_ID, Field::SessionId)
    }

    /// `From`.
    pub fn from(&self) -> Result<Option<Identity<'_>>, ParseError> {
        self.identity_field(names::FROM, Field::From)
    }

    /// `To`.
    pub fn to(&self) -> Result<Option<Identity<'_>>, ParseError> {
        self.identity_field(names::TO, Field::To)
    }

    /// `Reply-To`.
    pub fn reply_to(&self) -> Result<Option<Identity<'_>>, ParseError> {
        self.identity_field(names::REPLY_TO, Field::ReplyTo)
    }

    /// `Ack-To`.
    pub fn ack_to(&self) -> Result<Option<Identity<'_>>, ParseError> {
        self.identity_field(names::ACK_TO, Field::AckTo)
    }

    /// `Content-Length` (validated while parsing).
    pub fn content_length(&self) -> Option<u64> {
        self.layout.content_length
    }

    /// `Content-Type` as the peer wrote it (ABNF `content-type-value`):
    /// SPEC §10 carries an unusual value as it is, so this never fails and
    /// [`validate`](Self::validate) does not look at it. A quoted value is
    /// unescaped; [`media_type`](Self::media_type) checks the HTTP form.
    pub fn content_type(&self) -> Option<Cow<'_, [u8]>> {
        self.header_ref(names::CONTENT_TYPE).map(|h| h.text())
    }

    /// `Content-Type` read as an HTTP media type with optional parameters
    /// (ABNF `media-type`): for a caller that wants to act on the type. A
    /// value outside that form is an error here, never for the PDU.
    pub fn media_type(&self) -> Result<Option<&str>, ParseError> {
        self.single(names::CONTENT_TYPE, Field::ContentType, |v| {
            whole(grammar::media_type(v), "type/subtype[; param=value]")?;
            utf8(v)
        })
    }

    /// `Content-Encoding` (a list of codings).
    pub fn content_encoding(&self) -> Result<Option<&str>, ParseError> {
        self.single(names::CONTENT_ENCODING, Field::ContentEncoding, |v| {
            whole(grammar::coding_list(v), "coding[, coding]")?;
            utf8(v)
        })
    }

    /// Every `Content-Hash-*` and `Payload-Hash-*` header, decoded: the name
    /// by [`hash_header_name`] with a non-empty `hash-alg`, the value by ABNF
    /// `hash-value = base64`.
    pub fn hashes(&self) -> Result<SmallVec<[HashHeader<'_>; 2]>, ParseError> {
        let mut out = SmallVec::new();
        for h in self.headers() {
            let Some((scope, keyed, algorithm)) = hash_header_name(h.name) else {
                continue;
            };
            let field = match scope {
                HashScope::Content => Field::ContentHash,
                HashScope::Payload => Field::PayloadHash,
            };
            if algorithm.is_empty() {
                return Err(ParseError::new(
                    ErrorKind::InvalidValue(field),
                    h.value_offset,
                    "an algorithm name after the hash prefix",
                ));
            }
            let v = typed_content(
                ValueRef {
                    value: h.value,
                    value_offset: h.value_offset,
                },
                field,
            )?;
            let digest = grammar::base64_digest(v.value)
                .map_err(|f| invalid(f, v.value, v.value_offset, field))?;
            out.push(HashHeader {
                scope,
                keyed,
                algorithm,
                digest: SmallVec::from_vec(digest),
            });
        }
        Ok(out)
    }

    /// `TS`: Unix seconds when the message was generated (ABNF `unix-time`).
    pub fn ts(&self) -> Result<Option<u64>, ParseError> {
        self.number(names::TS, Field::Ts)
    }

    /// `Date` (RFC 3339) as Unix seconds.
    pub fn date(&self) -> Result<Option<i64>, ParseError> {
        self.single(names::DATE, Field::Date, |v| {
            whole(grammar::date_time(v), "RFC 3339 date-time")
        })
    }

    /// When the message was generated: `TS`, else `Date` (SPEC §3: TS wins).
    pub fn generated_at(&self) -> Result<Option<i64>, ParseError> {
        match self.ts()? {
            Some(ts) => Ok(Some(i64::try_from(ts).unwrap_or(i64::MAX))),
            None => self.date(),
        }
    }

    /// `Timeout`: seconds (up to millisecond precision) to wait for a reply.
    pub fn timeout(&self) -> Result<Option<Duration>, ParseError> {
        self.single(names::TIMEOUT, Field::Timeout, |v| {
            whole(grammar::duration_ms(v), "seconds").map(Duration::from_millis)
        })
    }

    /// `Attempt: CUR/MAX` (ABNF `attempt-value = fraction-pair`), else
    /// `Retry-Attempt: N` (ABNF `retry-attempt-value = dec-u64`), which the
    /// reference implementation sends on every PDU: the attempt number
    /// without a maximum (SPEC §10). **Decision:** `Attempt` wins when both
    /// are present; any `N`, 0 included, is taken as the peer wrote it.
    pub fn attempt(&self) -> Result<Option<Attempt>, ParseError> {
        if let Some(a) = self.single(names::ATTEMPT, Field::Attempt, |v| {
            whole(grammar::fraction_pair(v), "CUR/MAX").map(|(current, max)| Attempt {
                current,
                max: Some(max),
            })
        })? {
            return Ok(Some(a));
        }
        Ok(self
            .number(names::RETRY_ATTEMPT, Field::RetryAttempt)?
            .map(|current| Attempt { current, max: None }))
    }

    /// `Expire-At`: Unix seconds past which the message must not be acted on
    /// (ABNF `unix-time = dec-u64`).
    pub fn expire_at(&self) -> Result<Option<u64>, ParseError> {
        self.number(names::EXPIRE_AT, Field::ExpireAt)
    }

    /// `Expire-Date` (RFC 3339) as Unix seconds.
    pub fn expire_date(&self) -> Result<Option<i64>, ParseError> {
        self.single(names::EXPIRE_DATE, Field::ExpireDate, |v| {
            whole(grammar::date_time(v), "RFC 3339 date-time")
        })
    }

    /// The expiry instant in Unix seconds: `Expire-At`, else `Expire-Date`.
    /// **Decision:** like `TS` over `Date`, the numeric form wins.
    pub fn expires_at(&self) -> Result<Option<i64>, ParseError> {
        match self.expire_at()? {
            Some(t) => Ok(Some(i64::try_from(t).unwrap_or(i64::MAX))),
            None => self.expire_date(),
        }
    }

    /// `Segment: I/N` (ABNF `segment-value = fraction-pair`), else the
    /// `Segment-Index`/`Segment-Count` pair one public implementation emits
    /// (SPEC §7; ABNF `segment-number = dec-u64`), whose index is also
    /// one-based.
    pub fn segment(&self) -> Result<Option<SegmentInfo>, ParseError> {
        if let Some(s) = self.single(names::SEGMENT, Field::Segment, |v| {
            whole(grammar::fraction_pair(v), "I/N")
                .map(|(index, count)| SegmentInfo { index, count })
        })? {
            return Ok(Some(s));
        }
        let index = self.number(names::SEGMENT_INDEX, Field::SegmentIndex)?;
        let count = self.number(names::SEGMENT_COUNT, Field::SegmentCount)?;
        match (index, count) {
            (None, None) => Ok(None),
            (Some(index), Some(count)) if index >= 1 && index <= count => {
                Ok(Some(SegmentInfo { index, count }))
            }
            _ => {
                let h = self
                    .header_ref(names::SEGMENT_INDEX)
                    .or_else(|| self.header_ref(names::SEGMENT_COUNT));
                Err(ParseError::new(
                    ErrorKind::InvalidValue(Field::SegmentIndex),
                    h.map_or(0, |h| h.value_offset),
                    "Segment-Index and Segment-Count with 1 <= index <= count",
                ))
            }
        }
    }

    /// `Segment-ID` (interoperability triple, SPEC §7).
    pub fn segment_id(&self) -> Result<Option<&str>, ParseError> {
        self.token_field(names::SEGMENT_ID, Field::SegmentId)
    }

    /// `Payload-Length`: total bytes of the reassembled payload (ABNF
    /// `byte-count = dec-u64`).
    pub fn payload_length(&self) -> Result<Option<u64>, ParseError> {
        self.number(names::PAYLOAD_LENGTH, Field::PayloadLength)
    }

    /// Decode every typed header of SPEC §3 and report the first malformed
    /// one. A PDU that fails here must not be acted on.
    pub fn validate(&self, limits: &Limits) -> Result<(), ParseError> {
        self.seq()?;
        self.ack_seq()?;
        self.need_seq_limited(limits.max_seq_items)?;
        self.ignore_seq_limited(limits.max_seq_items)?;
        self.request_session_mode()?;
        self.set_session_mode()?;
        self.session_status()?;
        self.tx_id()?;
        self.message_id()?;
        self.ack_message_id()?;
        self.session_id()?;
        self.from()?;
        self.to()?;
        self.reply_to()?;
        self.ack_to()?;
        self.content_encoding()?;
        self.hashes()?;
        self.ts()?;
        self.date()?;
        self.timeout()?;
        self.attempt()?;
        self.expire_at()?;
        self.expire_date()?;
        self.segment()?;
        self.segment_id()?;
        self.payload_length()?;
        Ok(())
    }
}
