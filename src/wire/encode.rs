//! Writing PDUs: validated parts, canonical bytes, no line injection.
//!
//! Every part is checked when it enters a [`PduBuilder`], so encoding
//! itself cannot fail: a method, name or status text with CR/LF is refused;
//! a target or value that needs it is written as a quoted string with the
//! SPEC escapes (`\r`, `\n`, `\"`, `\\`); NUL, which no escape can carry,
//! is refused everywhere. `Content-Length` is managed by the builder so it
//! can never disagree with the body.

use super::grammar::{is_method_char, is_name_char, is_ows, is_reason_char};
use super::pdu::PduView;
use bytes::{BufMut, Bytes, BytesMut};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt;

/// Why a part was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("invalid method {0:?}: letters, digits, '.', '_' or '-', not starting with '-'")]
    Method(String),
    #[error("invalid target: it contains NUL, which no escape can carry")]
    Target,
    #[error("invalid header name {0:?}: a letter, then letters, digits, '-' or '_'")]
    HeaderName(String),
    #[error("invalid value for header {0}: it contains NUL, which no escape can carry")]
    HeaderValue(String),
    #[error("invalid status text: control characters (CR, LF, NUL…) are not allowed")]
    StatusText,
    #[error("status {0} is not a three-digit code (0..=999)")]
    Status(u16),
    #[error("invalid version {0:?}: expected ACORN/MAJOR.MINOR")]
    Version(String),
    #[error("{0} is managed by the builder (it always equals the body length)")]
    ManagedHeader(&'static str),
}

/// A validated method token (case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Method(Cow<'static, str>);

const fn valid_method(b: &[u8]) -> bool {
    if b.is_empty() || b[0] == b'-' {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-') {
            return false;
        }
        i += 1;
    }
    true
}

impl Method {
    pub const REG: Method = Method::from_static("REG");
    pub const BYE: Method = Method::from_static("BYE");
    pub const GET: Method = Method::from_static("GET");
    pub const PUT: Method = Method::from_static("PUT");

    /// Validate at compile time when used in a `const`.
    pub const fn from_static(s: &'static str) -> Method {
        assert!(valid_method(s.as_bytes()), "invalid Acorn method");
        Method(Cow::Borrowed(s))
    }

    /// Validate a method token.
    pub fn new(s: impl Into<Cow<'static, str>>) -> Result<Method, EncodeError> {
        let s = s.into();
        if valid_method(s.as_bytes()) && s.bytes().all(is_method_char) {
            Ok(Method(s))
        } else {
            Err(EncodeError::Method(s.into_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated request target; written literally when it can be, else quoted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target(Cow<'static, str>);

impl Target {
    /// A constant target; NUL is refused at compile time when used in a `const`.
    pub const fn from_static(s: &'static str) -> Target {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            assert!(b[i] != 0, "NUL in Acorn target");
            i += 1;
        }
        Target(Cow::Borrowed(s))
    }

    /// Any UTF-8 text without NUL.
    pub fn new(s: impl Into<Cow<'static, str>>) -> Result<Target, EncodeError> {
        let s = s.into();
        if s.contains('\0') {
            Err(EncodeError::Target)
        } else {
            Ok(Target(s))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// SPEC §10 (emit the common subset): only a target made of ASCII
    /// letters, digits and `/` is written literally; anything else (`*`,
    /// `/a-b`, `/a?b=1`, non-ASCII, an empty target, and what SPEC §1
    /// requires quoted: space, quote, backslash, CR, LF) is written quoted,
    /// which every known peer reads. The parser still accepts the wider
    /// literal form.
    fn needs_quotes(&self) -> bool {
        self.0.is_empty() || !self.0.bytes().all(is_common_literal)
    }
}

/// A byte of a target the encoder may write unquoted (SPEC §10): the
/// common subset `[A-Za-z0-9/]` of ABNF `target-char`.
fn is_common_literal(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/'
}

/// A validated header name (wire case kept; compared case-insensitively).
#[derive(Debug, Clone, Eq)]
pub struct HeaderName(Cow<'static, str>);

const fn valid_name(b: &[u8]) -> bool {
    if b.is_empty() || !b[0].is_ascii_alphabetic() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

impl HeaderName {
    /// Validate at compile time when used in a `const`.
    pub const fn from_static(s: &'static str) -> HeaderName {
        assert!(valid_name(s.as_bytes()), "invalid Acorn header name");
        HeaderName(Cow::Borrowed(s))
    }

    /// Validate a header name.
    pub fn new(s: impl Into<Cow<'static, str>>) -> Result<HeaderName, EncodeError> {
        let s = s.into();
        if valid_name(s.as_bytes()) && s.bytes().all(is_name_char) {
            Ok(HeaderName(s))
        } else {
            Err(EncodeError::HeaderName(s.into_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Case-insensitive comparison with a name.
    pub fn is(&self, name: &str) -> bool {
        self.0.eq_ignore_ascii_case(name)
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for HeaderName {
    type Error = EncodeError;
    fn try_from(s: &str) -> Result<Self, EncodeError> {
        HeaderName::new(s.to_owned())
    }
}

impl TryFrom<String> for HeaderName {
    type Error = EncodeError;
    fn try_from(s: String) -> Result<Self, EncodeError> {
        HeaderName::new(s)
    }
}

impl From<&HeaderName> for HeaderName {
    fn from(h: &HeaderName) -> Self {
        h.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Start {
    Request {
        method: Method,
        target: Target,
    },
    Reply {
        status: u16,
        text: Cow<'static, str>,
    },
}

/// When the builder writes `Content-Length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentLength {
    /// When the body is not empty (the default).
    Auto,
    /// Always, `Content-Length: 0` included.
    Always,
    /// Never (datagrams only: on a stream the codec writes it anyway).
    Never,
}

/// An outgoing PDU: validated parts that encode to canonical bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PduBuilder {
    start: Start,
    version: Cow<'static, str>,
    headers: SmallVec<[(HeaderName, Bytes); 10]>,
    body: Bytes,
    content_length: ContentLength,
}

fn check_value(name: &HeaderName, value: &[u8]) -> Result<(), EncodeError> {
    if value.contains(&0) {
        Err(EncodeError::HeaderValue(name.as_str().to_owned()))
    } else {
        Ok(())
    }
}

fn check_not_managed(name: &HeaderName) -> Result<(), EncodeError> {
    if name.is("Content-Length") {
        Err(EncodeError::ManagedHeader("Content-Length"))
    } else {
        Ok(())
    }
}

impl PduBuilder {
    /// A request `METHOD TARGET ACORN/1.0`.
    pub fn request(method: &str, target: &str) -> Result<PduBuilder, EncodeError> {
        Ok(Self::request_with(
            Method::new(method.to_owned())?,
            Target::new(target.to_owned())?,
        ))
    }

    /// A request from already validated parts.
    pub fn request_with(method: Method, target: Target) -> PduBuilder {
        PduBuilder::with_start(Start::Request { method, target })
    }

    /// A reply `ACORN/1.0 STATUS TEXT`.
    pub fn reply(status: u16, text: &str) -> Result<PduBuilder, EncodeError> {
        if status > 999 {
            return Err(EncodeError::Status(status));
        }
        if !text.bytes().all(is_reason_char) {
            return Err(EncodeError::StatusText);
        }
        Ok(PduBuilder::with_start(Start::Reply {
            status,
            text: Cow::Owned(text.to_owned()),
        }))
    }

    /// `ACORN/1.0 000 ACK`.
    pub fn ack() -> PduBuilder {
        Self::static_reply(0, "ACK")
    }

    /// `ACORN/1.0 001 NACK`.
    pub fn nack() -> PduBuilder {
        Self::static_reply(1, "NACK")
    }

    /// A reply whose text is a known-safe constant.
    pub(crate) fn static_reply(status: u16, text: &'static str) -> PduBuilder {
        debug_assert!(status <= 999 && text.bytes().all(is_reason_char));
        PduBuilder::with_start(Start::Reply {
            status,
            text: Cow::Borrowed(text),
        })
    }

    fn with_start(start: Start) -> PduBuilder {
        PduBuilder {
            start,
            version: Cow::Borrowed("ACORN/1.0"),
            headers: SmallVec::new(),
            body: Bytes::new(),
            content_length: ContentLength::Auto,
        }
    }

    /// Use another version token (`ACORN/MAJOR.MINOR[.X[.Y]]`).
    pub fn version(&mut self, v: &str) -> Result<&mut Self, EncodeError> {
        match super::grammar::version(v.as_bytes()) {
            Ok(([], _)) => {
                self.version = Cow::Owned(format!("ACORN{}", &v[5..]));
                Ok(self)
            }
            _ => Err(EncodeError::Version(v.to_owned())),
        }
    }

    /// Append a header (names may repeat).
    pub fn header<N>(&mut self, name: N, value: impl Into<Bytes>) -> Result<&mut Self, EncodeError>
    where
        N: TryInto<HeaderName, Error = EncodeError>,
    {
        let name = name.try_into()?;
        check_not_managed(&name)?;
        let value = value.into();
        check_value(&name, &value)?;
        self.headers.push((name, value));
        Ok(self)
    }

    /// Replace every header called `name` with one header (appended if absent,
    /// in place of the first one otherwise).
    pub fn set_header<N>(
        &mut self,
        name: N,
        value: impl Into<Bytes>,
    ) -> Result<&mut Self, EncodeError>
    where
        N: TryInto<HeaderName, Error = EncodeError>,
    {
        let name = name.try_into()?;
        check_not_managed(&name)?;
        let value = value.into();
        check_value(&name, &value)?;
        self.set_checked(name, value);
        Ok(self)
    }

    fn set_checked(&mut self, name: HeaderName, value: Bytes) {
        match self.headers.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.headers[i].1 = value;
                let mut j = i + 1;
                while j < self.headers.len() {
                    if self.headers[j].0 == name {
                        self.headers.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.headers.push((name, value)),
        }
    }

    /// Set a header to a number (always a valid value).
    pub fn set_number(&mut self, name: &HeaderName, n: u64) -> &mut Self {
        self.set_checked(name.clone(), Bytes::from(n.to_string()));
        self
    }

    /// Set a header whose name is a validated constant; the value is
    /// checked like any other.
    pub fn set_value(
        &mut self,
        name: &HeaderName,
        value: impl Into<Bytes>,
    ) -> Result<&mut Self, EncodeError> {
        let value = value.into();
        check_value(name, &value)?;
        self.set_checked(name.clone(), value);
        Ok(self)
    }

    /// Remove every header called `name`.
    pub fn remove_header(&mut self, name: &str) -> &mut Self {
        self.headers.retain(|(n, _)| !n.is(name));
        self
    }

    /// The value of the first header called `name`.
    pub fn get_header(&self, name: &str) -> Option<&Bytes> {
        self.headers
            .iter()
            .find(|(n, _)| n.is(name))
            .map(|(_, v)| v)
    }

    /// The headers in order.
    pub fn headers(&self) -> impl Iterator<Item = (&HeaderName, &Bytes)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// Set the body.
    pub fn body(&mut self, body: impl Into<Bytes>) -> &mut Self {
        self.body = body.into();
        self
    }

    /// The body.
    pub fn body_bytes(&self) -> &Bytes {
        &self.body
    }

    /// Choose when `Content-Length` is written.
    pub fn content_length(&mut self, mode: ContentLength) -> &mut Self {
        self.content_length = mode;
        self
    }

    /// The method of a request.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            Start::Request { method, .. } => Some(method.as_str()),
            Start::Reply { .. } => None,
        }
    }

    /// The status of a reply.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Start::Reply { status, .. } => Some(*status),
            Start::Request { .. } => None,
        }
    }

    /// Rebuild a parsed PDU as a builder (values unquoted, `Content-Length`
    /// kept as a managed header: it is written last, equal to the body).
    pub fn from_pdu<B: AsRef<[u8]>>(pdu: &PduView<B>) -> PduBuilder {
        let start = match (pdu.method(), pdu.target(), pdu.status()) {
            (Some(m), Some(t), _) => Start::Request {
                method: Method(Cow::Owned(m.to_owned())),
                target: Target(Cow::Owned(t.into_owned())),
            },
            (_, _, Some(status)) => Start::Reply {
                status,
                text: Cow::Owned(
                    String::from_utf8_lossy(pdu.status_text().unwrap_or_default()).into_owned(),
                ),
            },
            _ => unreachable_start(),
        };
        let mut b = PduBuilder::with_start(start);
        b.version = Cow::Owned(format!("ACORN{}", &pdu.version()[5..]));
        for h in pdu.headers() {
            if h.is("Content-Length") {
                b.content_length = ContentLength::Always;
                continue;
            }
            let name = HeaderName(Cow::Owned(h.name.to_owned()));
            b.headers.push((name, Bytes::copy_from_slice(&h.text())));
        }
        b.body = Bytes::copy_from_slice(pdu.body());
        b
    }

    fn writes_length(&self, force: bool) -> bool {
        match self.content_length {
            ContentLength::Always => true,
            ContentLength::Auto => !self.body.is_empty(),
            ContentLength::Never => force && !self.body.is_empty(),
        }
    }

    /// An upper bound of the encoded size (quoting may double a value).
    pub fn encoded_len_hint(&self) -> usize {
        let start = match &self.start {
            Start::Request { method, target } => method.0.len() + target.0.len() * 2 + 4,
            Start::Reply { text, .. } => text.len() + 5,
        };
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.0.len() + v.len() * 2 + 6)
            .sum();
        start + self.version.len() + headers + 40 + self.body.len()
    }

    /// Write the canonical bytes.
    pub fn encode(&self, dst: &mut BytesMut) {
        self.encode_inner(dst, false);
    }

    /// Write the canonical bytes for a stream transport: `Content-Length`
    /// is written whenever there is a body (SPEC §1, stream framing).
    pub fn encode_for_stream(&self, dst: &mut BytesMut) {
        self.encode_inner(dst, true);
    }

    /// The canonical bytes.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len_hint());
        self.encode(&mut b);
        b.freeze()
    }

    fn encode_inner(&self, dst: &mut BytesMut, stream: bool) {
        dst.reserve(self.encoded_len_hint());
        match &self.start {
            Start::Request { method, target } => {
                dst.put_slice(method.0.as_bytes());
                dst.put_u8(b' ');
                if target.needs_quotes() {
                    write_quoted(dst, target.0.as_bytes());
                } else {
                    dst.put_slice(target.0.as_bytes());
                }
                dst.put_u8(b' ');
                dst.put_slice(self.version.as_bytes());
            }
            Start::Reply { status, text } => {
                dst.put_slice(self.version.as_bytes());
                dst.put_u8(b' ');
                dst.put_slice(&[
                    b'0' + (status / 100) as u8,
                    b'0' + (status / 10 % 10) as u8,
                    b'0' + (status % 10) as u8,
                ]);
                if !text.is_empty() {
                    dst.put_u8(b' ');
                    dst.put_slice(text.as_bytes());
                }
            }
        }
        dst.put_slice(b"\r\n");
        for (name, value) in &self.headers {
            dst.put_slice(name.0.as_bytes());
            // SPEC §10: `Name: value`, the space also before an empty value.
            dst.put_slice(b": ");
            if value_needs_quotes(value) {
                write_quoted(dst, value);
            } else {
                dst.put_slice(value);
            }
            dst.put_slice(b"\r\n");
        }
        if self.writes_length(stream) {
            dst.put_slice(b"Content-Length: ");
            let mut buf = itoa_buf(self.body.len() as u64);
            dst.put_slice(buf.as_bytes());
            buf.clear();
            dst.put_slice(b"\r\n");
        }
        dst.put_slice(b"\r\n");
        dst.put_slice(&self.body);
    }
}

fn unreachable_start() -> Start {
    // A parsed PDU is either a request (method and target) or a reply
    // (status); this is the empty reply used if that ever failed to hold.
    Start::Reply {
        status: 0,
        text: Cow::Borrowed(""),
    }
}

fn itoa_buf(n: u64) -> String {
    n.to_string()
}

/// A value must be quoted when it carries CR/LF, starts or ends with
/// whitespace, or starts with DQUOTE (it would read as a quoted string).
fn value_needs_quotes(v: &[u8]) -> bool {
    v.first().is_some_and(|&b| b == b'"' || is_ows(b))
        || v.last().is_some_and(|&b| is_ows(b))
        || memchr::memchr2(b'\r', b'\n', v).is_some()
}

/// ABNF `quoted-string`, written with the SPEC escapes.
fn write_quoted(dst: &mut BytesMut, s: &[u8]) {
    dst.put_u8(b'"');
    let mut last = 0;
    for (i, &b) in s.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\r' => b"\\r",
            b'\n' => b"\\n",
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            _ => continue,
        };
        dst.put_slice(&s[last..i]);
        dst.put_slice(esc);
        last = i + 1;
    }
    dst.put_slice(&s[last..]);
    dst.put_u8(b'"');
}

impl<B: AsRef<[u8]>> PduView<B> {
    /// The canonical form of this PDU (what `acorn-cli fmt` prints).
    pub fn to_canonical(&self) -> Bytes {
        PduBuilder::from_pdu(self).to_bytes()
    }
}
