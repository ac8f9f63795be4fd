//! Layer 2: framing PDUs on streams (Content-Length) and datagrams.
//!
//! - [`StreamCodec`]: TCP and other byte streams. A head ends at the empty
//!   line, the body is exactly `Content-Length` bytes. Keeps its scan
//!   position across reads, enforces the limits before the buffer grows, and
//!   cuts PDUs out of the read buffer without copying. A framing error is
//!   final for the connection.
//! - [`DatagramCodec`]: UDP, one PDU per datagram, for `UdpFramed`. A bad
//!   datagram is an error item for that datagram only.
//!
//! Both encode [`PduBuilder`](crate::wire::PduBuilder)s and forward parsed
//! [`Pdu`](crate::wire::Pdu)s; both report [`CodecError`].

mod datagram;
mod error;
mod raw;
mod stream;

pub use datagram::{DatagramCodec, MAX_UDP_PAYLOAD};
pub use error::CodecError;
pub use stream::{StreamCodec, DEFAULT_RESERVE_LIMIT};
