//! Arbitrary bytes through the datagram parser, every typed accessor and
//! `validate`; an accepted PDU must survive its canonical re-encoding.
//!
//! The first byte picks the options (bit 0: bare LF allowed; bit 1: tight
//! limits, so the limit paths are reached with short inputs); the rest is
//! the datagram.
#![no_main]

use acorn::wire::{parse_datagram, Limits, ParseOptions, PduRef};
use libfuzzer_sys::fuzz_target;

fn options(flags: u8) -> ParseOptions {
    let mut opts = ParseOptions {
        allow_bare_lf: flags & 1 != 0,
        ..ParseOptions::default()
    };
    if flags & 2 != 0 {
        opts.limits = Limits {
            max_line_len: 40,
            max_headers: 4,
            max_head_len: 120,
            max_body_len: 64,
            max_seq_items: 8,
        };
    }
    opts
}

/// Call everything that decodes a header on demand. Errors are fine;
/// panics, overflows and runaway work are what this looks for.
fn touch(p: &PduRef<'_>, limits: &Limits) {
    let _ = (
        p.kind(),
        p.method(),
        p.target(),
        p.target_raw(),
        p.version(),
    );
    let _ = (p.version_major(), p.status(), p.status_text(), p.is_ack());
    for h in p.headers() {
        let _ = (h.name, h.text(), h.is("Seq"));
    }
    let _ = (p.seq(), p.ack_seq(), p.need_seq(), p.ignore_seq());
    let _ = p.need_seq_limited(limits.max_seq_items);
    let _ = p.ignore_seq_limited(limits.max_seq_items);
    let _ = (
        p.request_session_mode(),
        p.set_session_mode(),
        p.session_status(),
    );
    let _ = (
        p.tx_id(),
        p.message_id(),
        p.ack_message_id(),
        p.session_id(),
    );
    let _ = (p.from(), p.to(), p.reply_to(), p.ack_to());
    if let Ok(Some(id)) = p.from() {
        let _ = id.socket_addr();
    }
    let _ = (p.content_length(), p.content_type(), p.content_encoding());
    let _ = (p.hashes(), p.ts(), p.date(), p.generated_at(), p.timeout());
    let _ = (p.attempt(), p.expire_at(), p.expire_date(), p.expires_at());
    let _ = (p.segment(), p.segment_id(), p.payload_length());
    let _ = p.validate(limits);
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, datagram)) = data.split_first() else {
        return;
    };
    let opts = options(flags);
    let Ok(pdu) = parse_datagram(datagram, &opts) else {
        return;
    };
    assert!(pdu.head().len() <= opts.limits.max_head_len);
    assert!(pdu.body().len() <= opts.limits.max_body_len);
    touch(&pdu, &opts.limits);

    // The canonical form parses strictly, keeps the parts, and is a fixed
    // point. It may be longer than the input (quoting, an added
    // Content-Length header), so it is re-parsed under roomy limits.
    let canonical = pdu.to_canonical();
    let strict = ParseOptions {
        limits: Limits {
            max_line_len: 1 << 20,
            max_headers: 1 << 16,
            max_head_len: 1 << 24,
            max_body_len: 1 << 24,
            max_seq_items: 1 << 16,
        },
        allow_bare_lf: false,
    };
    let again = parse_datagram(&canonical, &strict)
        .unwrap_or_else(|e| panic!("canonical form does not parse: {e}\n{canonical:?}"));
    assert_eq!(again.method(), pdu.method());
    assert_eq!(again.target(), pdu.target());
    assert_eq!(again.status(), pdu.status());
    assert_eq!(again.body(), pdu.body());
    // Content-Length is managed by the builder: written once, last.
    let others = |p: &PduRef<'_>| {
        p.headers()
            .filter(|h| !h.is("Content-Length"))
            .map(|h| (h.name.to_ascii_lowercase(), h.text().into_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(others(&again), others(&pdu));
    if let Some(n) = again.content_length() {
        assert_eq!(n, pdu.body().len() as u64);
    }
    assert!(pdu.content_length().is_none() || again.content_length().is_some());
    assert_eq!(again.to_canonical(), canonical);
});
