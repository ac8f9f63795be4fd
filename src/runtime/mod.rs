//! Layer 4: a thin tokio driver for the engine over real sockets.
//!
//! A [`Peer`] owns a UDP socket and/or a TCP listener, the connections it
//! accepts or makes, one timer and one [`Endpoint`](crate::engine::Endpoint).
//! It decides nothing itself: every datagram, PDU, command and timer
//! expiry is handed to the engine, and what the engine returns is carried
//! out. The application talks to it through async methods
//! ([`Peer::request`], [`Peer::open_session`], [`Peer::send`]) and a stream
//! of [`IncomingRequest`]s to answer.

mod driver;
mod limits;
mod peer;
mod tcp;
mod tcp_io;

pub use driver::Resumed;
pub use limits::{ChannelLimits, TcpLimits, TcpStats, QUEUE_ENTRY_OVERHEAD};
pub use peer::{
    Dest, IncomingRequest, OpenedSession, Peer, PeerBuilder, PeerEvent, RuntimeError, WireDirection,
};

/// The receivers [`PeerBuilder::start`] returns (incoming requests and
/// events) are tokio's bounded `mpsc` channel; re-exported so a user can
/// name them (`acorn::runtime::Receiver<IncomingRequest>`) without adding
/// tokio to their own dependencies or matching its version.
pub use tokio::sync::mpsc::Receiver;
