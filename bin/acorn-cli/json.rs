//! The JSON shape of a PDU and of a parse error, shared by every
//! subcommand that prints `--json`.
//!
//! The object always has the same keys (null where a key does not apply),
//! so consumers — and the conformance corpus, whose `accept-*.json` files
//! are exactly this output — never have to test for a key's presence.
//! Numbers are `u64` JSON numbers, printed exactly even above 2^53.

use acorn::wire::{IgnoreSeq, Limits, ParseError, PduKind, PduView, SeqList};
use base64::Engine as _;
use serde_json::{json, Value};

/// `[[from, to], ...]`, the ranges of a seq list (sorted, merged).
fn seq_list(list: &SeqList) -> Value {
    Value::Array(list.ranges().map(|(a, b)| json!([a, b])).collect())
}

/// Text that may not be UTF-8 (header values, status text), lossily.
fn lossy(bytes: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// The JSON object for a PDU. Decodes the typed headers it reports with
/// `limits`; a PDU that passed `validate(limits)` never fails here.
pub(crate) fn pdu<B: AsRef<[u8]>>(pdu: &PduView<B>, limits: &Limits) -> Result<Value, ParseError> {
    let request = pdu.kind() == PduKind::Request;
    let headers: Vec<Value> = pdu
        .headers()
        .map(|h| json!([h.name, lossy(h.value)]))
        .collect();
    let body = pdu.body();
    let ignore_seq = match pdu.ignore_seq_limited(limits.max_seq_items)? {
        None => Value::Null,
        Some(IgnoreSeq::All) => Value::String("*".to_owned()),
        Some(IgnoreSeq::List(l)) => seq_list(&l),
    };
    Ok(json!({
        "kind": if request { "request" } else { "reply" },
        "version": pdu.version(),
        "method": pdu.method(),
        "target": pdu.target().map(|t| t.into_owned()),
        "status": pdu.status().map(|s| format!("{s:03}")),
        "text": pdu.status_text().map(lossy),
        "headers": headers,
        "body": std::str::from_utf8(body).ok(),
        "body_base64": base64::engine::general_purpose::STANDARD.encode(body),
        "seq": pdu.seq()?,
        "need_seq": pdu.need_seq_limited(limits.max_seq_items)?.as_ref().map(seq_list),
        "ignore_seq": ignore_seq,
        "request_session_mode": pdu.request_session_mode()?.map(|m| m.as_str()),
        "set_session_mode": pdu.set_session_mode()?.map(|m| m.as_str()),
    }))
}

/// `{"error": {...}}` for an input that `input` failed to parse as.
pub(crate) fn error(e: &ParseError, input: &[u8]) -> Value {
    json!({ "error": error_detail(e, input) })
}

/// The object inside `{"error": ...}`: what went wrong and where.
pub(crate) fn error_detail(e: &ParseError, input: &[u8]) -> Value {
    let pos = e.position(input);
    json!({
        "message": e.to_string(),
        "kind": e.kind.code(),
        "offset": e.offset,
        "line": pos.line,
        "column": pos.column,
    })
}

/// `{"error": {...}}` for a failure that is not a parse error (`kind` is
/// then `timeout`, `io` or `usage`): the same keys, with no position.
pub(crate) fn failure(kind: &str, message: &str) -> Value {
    json!({
        "error": {
            "message": message,
            "kind": kind,
            "offset": null,
            "line": null,
            "column": null,
        }
    })
}
