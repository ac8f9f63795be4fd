//! # acorn — a toolkit for the Acorn text protocol (`ACORN/1.0`)
//!
//! Layers, bottom to top (data flows one way, nothing below knows what is above):
//! - [`wire`]: the PDU model, a zero-copy nom parser, typed headers, a safe encoder.
//! - [`codec`]: tokio-util codecs for streams (TCP) and datagrams (UDP).
//! - [`engine`]: the sans-IO protocol engine (sessions, ACKs, retries, NACKs).
//! - [`sim`]: a deterministic simulated network for driving engines in tests.
//! - [`runtime`]: the tokio driver: a [`runtime::Peer`] over UDP and TCP.
#![forbid(unsafe_code)]

pub mod codec;
pub mod engine;
pub mod runtime;
pub mod sim;
pub mod wire;

pub use wire::{parse_datagram, ParseError, ParseOptions, Pdu, PduBuilder, PduRef};
