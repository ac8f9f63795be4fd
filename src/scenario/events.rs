//! Engine events in the terms `event` lines are written in: a kind and
//! `key=value` attributes (documented in `corpus/sessions/README.md`).

use crate::engine::{CloseReason, Event, Violation};
use crate::wire::SessionMode;
use std::fmt::Write as _;

/// The variant name of an enum value (its `Debug` form up to the fields),
/// for variants this runner has no attributes for.
fn variant_name(v: &dyn std::fmt::Debug) -> String {
    let d = format!("{v:?}");
    let end = d.find([' ', '(', '{']).unwrap_or(d.len());
    d[..end].to_owned()
}

fn mode_str(m: SessionMode) -> String {
    m.as_str().to_owned()
}

fn reason_attrs(r: &CloseReason, attrs: &mut Vec<(String, String)>) {
    let name = match r {
        CloseReason::Local => "Local",
        CloseReason::PeerClosed => "PeerClosed",
        CloseReason::PeerCannotRetransmit => "PeerCannotRetransmit",
        CloseReason::CannotRetransmit => "CannotRetransmit",
        CloseReason::GapUnfilled => "GapUnfilled",
        CloseReason::Timeout => "Timeout",
        CloseReason::Idle => "Idle",
        CloseReason::ModeMismatch { requested, agreed } => {
            attrs.push(("requested".into(), mode_str(*requested)));
            attrs.push(("agreed".into(), mode_str(*agreed)));
            "ModeMismatch"
        }
        CloseReason::Refused { status } => {
            attrs.push(("status".into(), format!("{status:03}")));
            "Refused"
        }
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return attrs.push(("reason".into(), variant_name(other))),
    };
    attrs.push(("reason".into(), name.into()));
}

fn violation_attrs(v: &Violation, attrs: &mut Vec<(String, String)>) {
    let name = match v {
        Violation::Malformed(e) => {
            attrs.push(("code".into(), e.kind.code()));
            "Malformed"
        }
        Violation::BadHeader(e) => {
            attrs.push(("code".into(), e.kind.code()));
            "BadHeader"
        }
        Violation::NeedSeqNeverSent { seq, next } => {
            attrs.push(("seq".into(), seq.to_string()));
            attrs.push(("next".into(), next.to_string()));
            "NeedSeqNeverSent"
        }
        Violation::SeqTooFarAhead { seq, expected } => {
            attrs.push(("seq".into(), seq.to_string()));
            attrs.push(("expected".into(), expected.to_string()));
            "SeqTooFarAhead"
        }
        Violation::MissingSeq => "MissingSeq",
        Violation::UnsupportedVersion => "UnsupportedVersion",
        Violation::MissingAddressing => "MissingAddressing",
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return attrs.push(("violation".into(), variant_name(other))),
    };
    attrs.push(("violation".into(), name.into()));
}

/// An event as its kind and `key=value` attributes, the terms `event`
/// lines are written in. Variants added after this mapping are named by
/// their `Debug` name, without attributes.
pub fn describe_event(e: &Event) -> (String, Vec<(String, String)>) {
    let mut a: Vec<(String, String)> = Vec::new();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let kind = match e {
        Event::RequestReceived {
            peer, session, pdu, ..
        } => {
            a.push(("peer".into(), peer.to_string()));
            a.push(("method".into(), pdu.method().unwrap_or("").into()));
            a.push((
                "target".into(),
                pdu.target().map(|t| t.into_owned()).unwrap_or_default(),
            ));
            a.push(("body".into(), text(pdu.body())));
            a.push((
                "session".into(),
                if session.is_some() { "yes" } else { "no" }.into(),
            ));
            if let Ok(Some(tx)) = pdu.tx_id() {
                a.push(("tx".into(), tx.into()));
            }
            "RequestReceived"
        }
        Event::Acked { .. } => "Acked",
        Event::Provisional { pdu, .. } => {
            a.push(("status".into(), format!("{:03}", pdu.status().unwrap_or(0))));
            "Provisional"
        }
        Event::ReplyReceived { pdu, .. } => {
            a.push(("status".into(), format!("{:03}", pdu.status().unwrap_or(0))));
            a.push(("body".into(), text(pdu.body())));
            "ReplyReceived"
        }
        Event::RequestTimedOut { .. } => "RequestTimedOut",
        Event::ReplyUnacknowledged { .. } => "ReplyUnacknowledged",
        Event::ReplyNotWanted { .. } => "ReplyNotWanted",
        Event::SessionOpened {
            peer,
            mode,
            session_id,
            ..
        } => {
            a.push(("peer".into(), peer.to_string()));
            a.push(("mode".into(), mode_str(*mode)));
            a.push((
                "session_id".into(),
                session_id.clone().unwrap_or_else(|| "none".into()),
            ));
            "SessionOpened"
        }
        Event::SessionClosed { reason, .. } => {
            reason_attrs(reason, &mut a);
            "SessionClosed"
        }
        Event::Expired { peer, session } => {
            a.push(("peer".into(), peer.to_string()));
            a.push((
                "session".into(),
                if session.is_some() { "yes" } else { "no" }.into(),
            ));
            "Expired"
        }
        Event::ProtocolViolation { peer, violation } => {
            a.push(("peer".into(), peer.to_string()));
            violation_attrs(violation, &mut a);
            "ProtocolViolation"
        }
        Event::LimitReached { limit, peer } => {
            a.push(("limit".into(), format!("{limit:?}")));
            if let Some(p) = peer {
                a.push(("peer".into(), p.to_string()));
            }
            "LimitReached"
        }
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return (variant_name(other), a),
    };
    (kind.to_owned(), a)
}

/// An event as one line: `Kind key=value…`.
pub fn event_text(e: &Event) -> String {
    let (k, a) = describe_event(e);
    let mut s = k;
    for (key, v) in a {
        let _ = write!(s, " {key}={v}");
    }
    s
}
