//! What the runtime holds for its peers, and how much: TCP connections and
//! their queues, the internal channels, the UDP receive buffer (SPEC §9
//! "TCP", "Fair shares").
//!
//! Every bound here has a safe default and a defined action when it is
//! reached; `tests/hostile_tcp.rs` reaches each one.

use std::time::Duration;

/// Limits on TCP connections (set with
/// [`PeerBuilder::tcp_limits`](super::PeerBuilder::tcp_limits)).
///
/// A TCP peer can hold a connection open, trickle a head a byte at a time,
/// or never read what it asked for; each of these is bounded here so that
/// no peer can shut others out or make the process grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Accepted connections held at once. A connection accepted beyond it
    /// first closes the oldest connection that has not sent a whole PDU
    /// yet ([`TcpStats::evicted_silent`]: a slowloris spread over many
    /// addresses cannot keep new clients out); if every connection has
    /// spoken, the new one is closed at once ([`TcpStats::refused_total`]).
    pub max_connections: usize,
    /// Accepted connections held at once from one IP address. A
    /// connection beyond it is closed at once
    /// ([`TcpStats::refused_per_ip`]): a flood from one address leaves room
    /// for everyone else.
    pub max_connections_per_ip: usize,
    /// How long a PDU's head may take to arrive, from its first byte to
    /// its empty line. Past it the connection is closed
    /// ([`TcpStats::header_timeouts`]): a peer trickling a head
    /// (slowloris) holds a connection for this long at most.
    pub header_timeout: Duration,
    /// How long a connection may go without a whole PDU from its peer
    /// (bytes that do not complete a PDU do not count), and how long one
    /// write to a peer that does not read may block. Past it the
    /// connection is closed ([`TcpStats::idle_timeouts`]). A half-closed
    /// connection whose answers never come is closed after it too.
    pub idle_timeout: Duration,
    /// Bytes queued to one connection and not yet written (each PDU counts
    /// its length plus [`QUEUE_ENTRY_OVERHEAD`]). Past half of it the
    /// connection's reader stops reading (back-pressure: the peer's TCP
    /// window fills); a PDU that would pass it closes the connection
    /// ([`TcpStats::queue_overflows`]).
    pub max_write_queue: usize,
    /// Bytes queued to all connections together. A PDU that would pass it
    /// first closes the connections with the longest queues (counted in
    /// [`TcpStats::queue_overflows`]); if it still does not fit it is
    /// dropped and left to the engine's retransmission.
    pub max_write_queue_total: usize,
    /// Addresses of closed TCP connections remembered so that what the
    /// engine still sends them (a retransmitted reply) is dropped, never
    /// sent over UDP. Past it the oldest is forgotten.
    pub max_closed_routes: usize,
    /// How long a closed connection's address is remembered (longer than
    /// the engine's retry budget and session idle timeout).
    pub closed_route_ttl: Duration,
}

/// What each queued PDU costs besides its bytes (the `Bytes` handle and
/// the channel slot), counted against [`TcpLimits::max_write_queue`].
pub const QUEUE_ENTRY_OVERHEAD: usize = 64;

impl Default for TcpLimits {
    /// 1,024 connections, 64 per IP; a 10 s header timeout; 150 s idle
    /// (past the engine's 120 s session idle timeout, so a quiet session
    /// ends first and cleanly); 1 MiB queued per connection, 64 MiB in
    /// total; 65,536 closed addresses remembered for 10 minutes.
    fn default() -> Self {
        TcpLimits {
            max_connections: 1024,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(150),
            max_write_queue: 1024 * 1024,
            max_write_queue_total: 64 * 1024 * 1024,
            max_closed_routes: 65_536,
            closed_route_ttl: Duration::from_secs(600),
        }
    }
}

/// Bounds of the runtime's internal channels (set with
/// [`PeerBuilder::channel_limits`](super::PeerBuilder::channel_limits)).
///
/// Each has a defined action when full, so a burst from the network or
/// from the application never grows the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelLimits {
    /// Commands from [`Peer`](super::Peer) handles waiting for the driver
    /// (`request`, `send`, `open_session`, ...). When full, the calling
    /// task waits (back-pressure on the application).
    pub commands: usize,
    /// PDUs and notices from connection tasks waiting for the driver. When
    /// full, each connection's reader waits before reading more, so the
    /// peers' TCP windows fill (back-pressure on the network).
    pub connection_events: usize,
    /// Requests queued for the application. When full, a new request is
    /// answered `503 Busy` by the runtime; the engine never waits on the
    /// application.
    pub incoming: usize,
    /// Events queued for the application. When full, an event is dropped
    /// (counted and logged).
    pub events: usize,
}

impl Default for ChannelLimits {
    /// 1,024 of each.
    fn default() -> Self {
        ChannelLimits {
            commands: 1024,
            connection_events: 1024,
            incoming: 1024,
            events: 1024,
        }
    }
}

/// What the TCP side did so far (see [`Peer::tcp_stats`](super::Peer::tcp_stats)):
/// counters of every limit hit, and the bytes queued now and at most.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpStats {
    /// Connections accepted and kept.
    pub accepted: u64,
    /// Connections closed at accept: [`TcpLimits::max_connections`]
    /// reached and every connection held had spoken.
    pub refused_total: u64,
    /// Connections that had not sent a whole PDU yet, closed to make room
    /// for a new one when [`TcpLimits::max_connections`] was reached.
    pub evicted_silent: u64,
    /// Connections closed at accept: [`TcpLimits::max_connections_per_ip`]
    /// reached for their address.
    pub refused_per_ip: u64,
    /// Connections closed by [`TcpLimits::header_timeout`].
    pub header_timeouts: u64,
    /// Connections closed by [`TcpLimits::idle_timeout`].
    pub idle_timeouts: u64,
    /// Connections closed because their write queue (or the total) was
    /// full.
    pub queue_overflows: u64,
    /// PDUs dropped because the total queue stayed full, or the memory
    /// budget had no room while the connection's queue was empty.
    pub dropped_pdus: u64,
    /// Charges the memory budget (`Config::shares.memory_budget`, or the
    /// address's `memory_per_source`) refused: a write-queue PDU (the
    /// connection is closed if it has a queue, else the PDU dropped) or a
    /// read buffer's growth (the connection is closed).
    pub budget_refusals: u64,
    /// Connections whose peer half-closed (its write side), then drained.
    pub half_closed: u64,
    /// PDUs for an address whose TCP connection is gone, dropped rather
    /// than sent over UDP.
    pub kept_off_udp: u64,
    /// Connections held now.
    pub open: usize,
    /// Bytes queued to all connections now.
    pub queued_bytes: usize,
    /// The most bytes ever queued to all connections at once.
    pub peak_queued_bytes: usize,
    /// The most bytes ever queued to one connection at once.
    pub peak_connection_queue: usize,
}
