//! Parse a PDU file and look at it through the typed API.
//!
//! Reads one datagram PDU (the whole file; the body is what follows the
//! blank line), prints its start line, every header as it stands on the
//! wire, the body length, and the canonical form the encoder would send.
//! A malformed PDU is a typed [`acorn::ParseError`] carrying its offset.
//!
//! Run: `cargo run --example parse -- corpus/pdu/accept-spec-example.acorn`
//! (that file, SPEC §1's own example, is the default). `tests/examples.rs`
//! runs it on that file and checks what it prints.

use acorn::wire::{parse_datagram, ParseOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "corpus/pdu/accept-spec-example.acorn".to_owned());
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::from(2);
        }
    };
    // The strict default: CRLF line ends, the limits of `wire::limits`.
    let pdu = match parse_datagram(&bytes, &ParseOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{path}: invalid PDU: {e}");
            return ExitCode::from(1);
        }
    };
    match (pdu.method(), pdu.status()) {
        (Some(method), _) => println!(
            "request {method} {} ({})",
            pdu.target().unwrap_or_default(),
            pdu.version()
        ),
        (None, Some(status)) => println!("reply {status} ({})", pdu.version()),
        (None, None) => println!("PDU ({})", pdu.version()),
    }
    for h in pdu.headers() {
        println!("  {}: {}", h.name, String::from_utf8_lossy(&h.text()));
    }
    // Typed accessors decode on demand; a malformed value is an error, not a guess.
    match pdu.tx_id() {
        Ok(Some(tx)) => println!("TX-ID (typed): {tx}"),
        Ok(None) => println!("no TX-ID"),
        Err(e) => println!("TX-ID invalid: {e}"),
    }
    println!("body: {} bytes", pdu.body().len());
    println!("canonical form:");
    print!("{}", String::from_utf8_lossy(&pdu.to_canonical()));
    println!();
    ExitCode::SUCCESS
}
