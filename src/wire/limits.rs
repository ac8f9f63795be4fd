//! Named bounds on everything a peer can make the parser hold or scan.
//!
//! Every bound is a field of [`Limits`] so an application can tighten or
//! widen it; the defaults are safe for a node exposed to the open network.
//! When a bound is hit the error names it ([`Limit`]), so an operator can
//! tell "the peer sent garbage" from "the peer sent something large".

/// Which configured bound an input exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// [`Limits::max_line_len`]: one start or header line, without its line end.
    LineLength,
    /// [`Limits::max_headers`]: header lines in one PDU.
    HeaderCount,
    /// [`Limits::max_head_len`]: start line, headers and the empty line together.
    HeadSize,
    /// [`Limits::max_body_len`]: body bytes (also caps `Content-Length`).
    BodySize,
    /// [`Limits::max_seq_items`]: items in all `Need-Seq`/`Ignore-Seq` lists of one PDU.
    SeqListItems,
}

impl Limit {
    /// The field name of [`Limits`] that sets this bound (stable, used in messages).
    pub const fn name(self) -> &'static str {
        match self {
            Limit::LineLength => "max_line_len",
            Limit::HeaderCount => "max_headers",
            Limit::HeadSize => "max_head_len",
            Limit::BodySize => "max_body_len",
            Limit::SeqListItems => "max_seq_items",
        }
    }
}

/// Parser and codec bounds. Construct with [`Limits::default`] and adjust fields.
///
/// Offsets inside a PDU are stored as `u32`, so a configured limit above
/// 4 GiB is clamped to that by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest start or header line, in bytes, excluding CRLF. Default 8 KiB.
    pub max_line_len: usize,
    /// Most header lines in one PDU. Default 128.
    pub max_headers: usize,
    /// Largest head (start line through the empty line). Default 64 KiB.
    pub max_head_len: usize,
    /// Largest body. Default 16 MiB.
    pub max_body_len: usize,
    /// Most items (numbers or ranges, before merging) in the seq lists of one
    /// PDU, summed over repeated headers. Default 1024.
    pub max_seq_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_len: 8 * 1024,
            max_headers: 128,
            max_head_len: 64 * 1024,
            max_body_len: 16 * 1024 * 1024,
            max_seq_items: 1024,
        }
    }
}

/// Everything that changes what the parser accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseOptions {
    /// Size bounds.
    pub limits: Limits,
    /// Accept a bare LF as a line end (for hand-typed input). Off by default:
    /// SPEC §1 makes line ends strictly CRLF. A bare CR is never accepted.
    pub allow_bare_lf: bool,
}

impl ParseOptions {
    /// Strict CRLF with the default limits.
    pub fn strict() -> Self {
        Self::default()
    }

    /// Default limits, bare LF accepted as a line end.
    pub fn lenient() -> Self {
        ParseOptions {
            allow_bare_lf: true,
            ..Self::default()
        }
    }
}
