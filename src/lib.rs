//! # acorn — a toolkit for the Acorn text protocol (`ACORN/1.0`)
//!
//! Layers, bottom to top (data flows one way, nothing below knows what is above):
//! - [`wire`]: the PDU model, a zero-copy nom parser, typed headers, a safe encoder.
//! - [`codec`]: tokio-util codecs for streams (TCP) and datagrams (UDP).
//! - [`engine`]: the sans-IO protocol engine (sessions, ACKs, retries, NACKs,
//!   resumption); time is an argument, so it runs the same under test.
//! - [`sim`]: a deterministic simulated network for driving engines in tests.
//! - [`relay`]: what a lossy link does to a datagram (behind `acorn-cli relay`).
//! - [`runtime`]: the tokio driver: a [`runtime::Peer`] over UDP and TCP.
//! - [`scenario`]: the session scenario format of `corpus/sessions/` (parser,
//!   captures, expectation matching), shared by the in-memory runner and
//!   `acorn-cli conformance`.
//!
//! ## Parse and build PDUs
//!
//! ```
//! use acorn::wire::{parse_datagram, ParseOptions, PduBuilder, SessionMode};
//!
//! let bytes = b"ACORN/1.0 001 NACK\r\nSeq: 1222\r\nNeed-Seq: 12..17,19\r\n\r\n";
//! let pdu = parse_datagram(bytes, &ParseOptions::default()).unwrap();
//! assert!(pdu.is_nack());
//! assert_eq!(pdu.seq().unwrap(), Some(1222));
//! let need = pdu.need_seq().unwrap().unwrap();
//! assert!(need.contains(15) && !need.contains(18));
//! assert_eq!(need.to_string(), "12..17,19");
//!
//! // The builder validates every part: no CR/LF can be injected.
//! let mut reg = PduBuilder::request("REG", "/path").unwrap();
//! reg.header("Seq", "0").unwrap();
//! reg.header("Request-Session-Mode", SessionMode::Ordered.as_str()).unwrap();
//! assert!(reg.header("X-Evil", "a\r\nInjected: yes").is_ok()); // quoted, not injected
//! assert!(PduBuilder::reply(200, "OK\r\nInjected: yes").is_err());
//! let wire = reg.to_bytes();
//! assert_eq!(parse_datagram(&wire, &ParseOptions::default()).unwrap().header_count(), 3);
//! ```
//!
//! ## A server and a client
//!
//! ```
//! use acorn::engine::Config;
//! use acorn::runtime::{Dest, PeerBuilder};
//! use acorn::wire::{PduBuilder, SessionMode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Server: answer every request `200 OK`, echoing its body. The engine
//! // ACKs, orders, deduplicates and retransmits on its own.
//! let (server, mut incoming, _events) = PeerBuilder::new(Config::default())
//!     .udp("127.0.0.1:0".parse()?)
//!     .start()
//!     .await?;
//! tokio::spawn(async move {
//!     while let Some(req) = incoming.recv().await {
//!         let mut ok = PduBuilder::reply(200, "OK").unwrap();
//!         ok.body(req.pdu.body_bytes());
//!         let _ = req.respond(ok);
//!     }
//! });
//!
//! // Client: open an ordered session and send in it.
//! let (client, _incoming, _events) = PeerBuilder::new(Config::default())
//!     .udp("127.0.0.1:0".parse()?)
//!     .start()
//!     .await?;
//! let dest = Dest::Udp(server.udp_addr().unwrap());
//! let session = client.open_session(dest, "/chat", SessionMode::Ordered).await?;
//! let mut put = PduBuilder::request("PUT", "/chat")?;
//! put.body("hello");
//! let reply = client.send(session.handle, put).await?;
//! assert_eq!(reply.status(), Some(200));
//! assert_eq!(reply.body(), b"hello");
//! client.close_session(session.handle).await?;
//! client.shutdown().await?;
//! server.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod budget;
pub mod codec;
pub mod conformance;
pub mod engine;
pub mod relay;
pub mod runtime;
pub mod scenario;
pub mod sim;
pub mod wire;

/// The `bytes` crate, whose [`Bytes`](bytes::Bytes) carries bodies and
/// whole PDUs through the API; re-exported so users get the same version.
pub use bytes;
pub use wire::{parse_datagram, ParseError, ParseOptions, Pdu, PduBuilder, PduRef};
