//! What the wire-format tests share: the proptest configuration, the JSON
//! keys of `acorn-cli parse --json`, and parse options roomy enough for a
//! PDU's canonical form.
//!
//! Each test binary uses its own part of this, so the rest is unused there.
#![allow(dead_code)]

use acorn::wire::{Limits, ParseOptions};
use proptest::test_runner::Config as ProptestConfig;

/// `cases` per property, unless `PROPTEST_CASES` says otherwise (so a
/// longer run outside CI needs no edit).
pub fn proptest_config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// The keys of `acorn-cli parse --json` (and so of `send --json`) for a
/// PDU, exactly.
pub const PDU_KEYS: [&str; 14] = [
    "kind",
    "version",
    "method",
    "target",
    "status",
    "text",
    "headers",
    "body",
    "body_base64",
    "seq",
    "need_seq",
    "ignore_seq",
    "request_session_mode",
    "set_session_mode",
];

/// Strict line ends with room for what canonicalisation may add to a PDU
/// that was just within the default limits: a `Content-Length` header (one
/// more header, a few more head bytes) and quotes around a target with a
/// backslash (whose escapes can double the start line).
pub fn roomy() -> ParseOptions {
    let d = Limits::default();
    ParseOptions {
        limits: Limits {
            max_line_len: 2 * d.max_line_len + 2,
            max_headers: d.max_headers + 1,
            max_head_len: d.max_head_len + d.max_line_len + 64,
            ..d
        },
        allow_bare_lf: false,
    }
}
