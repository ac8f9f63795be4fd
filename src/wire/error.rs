//! Typed, allocation-free parse errors that say where and what.

use super::limits::Limit;
use std::fmt;

/// A typed header whose value failed to decode (see [`ErrorKind::InvalidValue`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Seq,
    NeedSeq,
    IgnoreSeq,
    AckSeq,
    RequestSessionMode,
    SetSessionMode,
    SessionStatus,
    TxId,
    MessageId,
    AckMessageId,
    SessionId,
    From,
    To,
    ReplyTo,
    AckTo,
    ContentLength,
    ContentType,
    ContentEncoding,
    ContentHash,
    PayloadHash,
    Ts,
    Date,
    Timeout,
    Attempt,
    /// `Retry-Attempt: N` (the reference implementation's attempt number).
    RetryAttempt,
    ExpireAt,
    ExpireDate,
    Segment,
    SegmentId,
    SegmentIndex,
    SegmentCount,
    PayloadLength,
}

impl Field {
    /// The header name as this project writes it.
    pub const fn header_name(self) -> &'static str {
        match self {
            Field::Seq => "Seq",
            Field::NeedSeq => "Need-Seq",
            Field::IgnoreSeq => "Ignore-Seq",
            Field::AckSeq => "Ack-Seq",
            Field::RequestSessionMode => "Request-Session-Mode",
            Field::SetSessionMode => "Set-Session-Mode",
            Field::SessionStatus => "Session-Status",
            Field::TxId => "TX-ID",
            Field::MessageId => "Message-ID",
            Field::AckMessageId => "Ack-Message-ID",
            Field::SessionId => "Session-ID",
            Field::From => "From",
            Field::To => "To",
            Field::ReplyTo => "Reply-To",
            Field::AckTo => "Ack-To",
            Field::ContentLength => "Content-Length",
            Field::ContentType => "Content-Type",
            Field::ContentEncoding => "Content-Encoding",
            Field::ContentHash => "Content-Hash-*",
            Field::PayloadHash => "Payload-Hash-*",
            Field::Ts => "TS",
            Field::Date => "Date",
            Field::Timeout => "Timeout",
            Field::Attempt => "Attempt",
            Field::RetryAttempt => "Retry-Attempt",
            Field::ExpireAt => "Expire-At",
            Field::ExpireDate => "Expire-Date",
            Field::Segment => "Segment",
            Field::SegmentId => "Segment-ID",
            Field::SegmentIndex => "Segment-Index",
            Field::SegmentCount => "Segment-Count",
            Field::PayloadLength => "Payload-Length",
        }
    }
}

/// What went wrong. [`ErrorKind::code`] gives a stable kebab-case name, used
/// by the conformance corpus and `acorn-cli parse --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Start line shape: wrong number of spaces, missing part, empty input.
    StartLine,
    /// Method token (request start line).
    Method,
    /// Request target (literal or quoted).
    Target,
    /// A quoted string: unknown escape, unterminated, forbidden byte.
    QuotedString,
    /// Protocol version token.
    Version,
    /// Status code (exactly three digits).
    Status,
    /// Reason text after the status code.
    StatusText,
    /// Header name (empty, bad character, space before the colon).
    HeaderName,
    /// A header line without a colon.
    MissingColon,
    /// A header value byte that is not allowed (NUL).
    HeaderValue,
    /// A line starting with space or tab (obsolete line folding).
    ObsFold,
    /// A CR not followed by LF.
    BareCr,
    /// An LF without CR while bare LF is not allowed.
    BareLf,
    /// The input ended before the empty line that closes the head.
    UnterminatedHead,
    /// `Content-Length` is not a plain decimal number that fits u64.
    ContentLength,
    /// Several `Content-Length` headers that disagree.
    ContentLengthConflict,
    /// A datagram whose body length differs from its `Content-Length`.
    ContentLengthMismatch,
    /// A typed header whose value does not follow its syntax (SPEC §3).
    InvalidValue(Field),
    /// A single-valued typed header repeated with different values.
    ConflictingValues(Field),
    /// A configured bound was exceeded.
    Limit(Limit),
}

impl ErrorKind {
    /// Stable kebab-case name, e.g. `bare-cr`, `limit:max_headers`, `invalid-value:Seq`.
    pub fn code(self) -> String {
        match self {
            ErrorKind::InvalidValue(f) => format!("invalid-value:{}", f.header_name()),
            ErrorKind::ConflictingValues(f) => format!("conflicting-values:{}", f.header_name()),
            ErrorKind::Limit(l) => format!("limit:{}", l.name()),
            other => other.simple_code().to_string(),
        }
    }

    fn simple_code(self) -> &'static str {
        match self {
            ErrorKind::StartLine => "start-line",
            ErrorKind::Method => "method",
            ErrorKind::Target => "target",
            ErrorKind::QuotedString => "quoted-string",
            ErrorKind::Version => "version",
            ErrorKind::Status => "status",
            ErrorKind::StatusText => "status-text",
            ErrorKind::HeaderName => "header-name",
            ErrorKind::MissingColon => "missing-colon",
            ErrorKind::HeaderValue => "header-value",
            ErrorKind::ObsFold => "obs-fold",
            ErrorKind::BareCr => "bare-cr",
            ErrorKind::BareLf => "bare-lf",
            ErrorKind::UnterminatedHead => "unterminated-head",
            ErrorKind::ContentLength => "content-length",
            ErrorKind::ContentLengthConflict => "content-length-conflict",
            ErrorKind::ContentLengthMismatch => "content-length-mismatch",
            ErrorKind::InvalidValue(_) | ErrorKind::ConflictingValues(_) | ErrorKind::Limit(_) => {
                ""
            }
        }
    }
}

/// A parse failure: kind, byte offset into the input, and what was expected.
///
/// Construction never allocates; [`ParseError::position`] derives line and
/// column from the input when an error is displayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} at byte {offset}: expected {expected}", kind_text(*.kind))]
pub struct ParseError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// What the grammar expected at that point, in words.
    pub expected: &'static str,
}

fn kind_text(kind: ErrorKind) -> KindText {
    KindText(kind)
}

struct KindText(ErrorKind);

impl fmt::Display for KindText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ErrorKind::InvalidValue(field) => write!(f, "invalid {} value", field.header_name()),
            ErrorKind::ConflictingValues(field) => {
                write!(f, "conflicting {} headers", field.header_name())
            }
            ErrorKind::Limit(limit) => write!(f, "limit {} exceeded", limit.name()),
            other => f.write_str(other.simple_code()),
        }
    }
}

/// One-based line and column of a byte offset (columns count bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl ParseError {
    pub(crate) const fn new(kind: ErrorKind, offset: usize, expected: &'static str) -> Self {
        ParseError {
            kind,
            offset,
            expected,
        }
    }

    /// Line and column of [`ParseError::offset`] within `input` (the bytes
    /// that were parsed). Lines are split at LF.
    pub fn position(&self, input: &[u8]) -> Position {
        let upto = &input[..self.offset.min(input.len())];
        let line = memchr::memchr_iter(b'\n', upto).count() + 1;
        let line_start = memchr::memrchr(b'\n', upto).map_or(0, |i| i + 1);
        Position {
            line,
            column: upto.len() - line_start + 1,
        }
    }
}
