//! What the engine hands back: datagrams to send and events for the application.

use super::integrity::Unchecked;
use crate::wire::{ParseError, Pdu, SessionMode};
use bytes::Bytes;
use std::net::SocketAddr;

/// A PDU to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it (SPEC §5 precedence already applied).
    pub dest: SocketAddr,
    /// The encoded PDU (one datagram).
    pub payload: Bytes,
}

/// The application's handle on a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(pub u64);

/// The application's handle on a request it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The application's handle on a request it received (to answer it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncomingId(pub u64);

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The application closed it (our `BYE` was acknowledged or timed out).
    Local,
    /// The peer sent `BYE` (in order, after everything before it).
    PeerClosed,
    /// The peer ended it with `BYE` + `Ignore-Seq: *`: it could not
    /// retransmit what we asked for; messages may be missing.
    PeerCannotRetransmit,
    /// We ended it with `BYE` + `Ignore-Seq: *`: the peer asked for PDUs
    /// we no longer hold.
    CannotRetransmit,
    /// A gap stayed unfilled after the configured NACK rounds.
    GapUnfilled,
    /// A request in the session exhausted its attempts.
    Timeout,
    /// Nothing was received for the idle timeout.
    Idle,
    /// The agreed mode was not the requested one (client side: we NACKed;
    /// server side: the client NACKed our mode).
    ModeMismatch {
        requested: SessionMode,
        agreed: SessionMode,
    },
    /// The server refused the `REG` with this status.
    Refused { status: u16 },
    /// The server refused to resume (unknown or expired `Session-ID`).
    ResumeRefused { status: u16 },
    /// The peer answered a request of the session with a `Seq`-less
    /// refusal (`404 Unknown Session`): it no longer knows the session (it
    /// restarted, or dropped it). Open a new session (SPEC §9).
    LostByPeer { status: u16 },
    /// Server side: the session stayed half-open (our answer to its `REG`
    /// was never confirmed) past
    /// [`SharesConfig::half_open_timeout`](super::SharesConfig::half_open_timeout),
    /// or was the oldest half-open one when room was needed.
    NeverConfirmed,
}

/// A bound of [`EngineLimits`](super::EngineLimits) that was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineLimit {
    Sessions,
    PendingRequests,
    ReplyCache,
    ReorderBuffer,
    RetransmitBuffer,
    SeenRanges,
    /// [`SegmentConfig::max_reassemblies`](super::SegmentConfig::max_reassemblies).
    Reassemblies,
    /// [`SegmentConfig::max_reassembly_bytes`](super::SegmentConfig::max_reassembly_bytes).
    ReassemblyBytes,
    /// [`SegmentConfig::max_payload_len`](super::SegmentConfig::max_payload_len).
    PayloadSize,
    /// [`SegmentConfig::max_segments`](super::SegmentConfig::max_segments).
    SegmentCount,
    /// [`SharesConfig::memory_budget`](super::SharesConfig::memory_budget):
    /// the one budget over every byte held for peers.
    MemoryBudget,
    /// [`SharesConfig::reply_cache_per_source`](super::SharesConfig::reply_cache_per_source).
    ReplyCacheSource,
    /// [`SharesConfig::reply_cache_per_prefix`](super::SharesConfig::reply_cache_per_prefix).
    ReplyCachePrefix,
    /// [`SharesConfig::sessions_per_source`](super::SharesConfig::sessions_per_source).
    SessionsSource,
    /// [`SharesConfig::sessions_per_prefix`](super::SharesConfig::sessions_per_prefix).
    SessionsPrefix,
    /// [`SharesConfig::max_half_open`] and its per-source and per-prefix
    /// shares: the oldest half-open session was dropped to make room.
    ///
    /// [`SharesConfig::max_half_open`]: super::SharesConfig::max_half_open
    HalfOpen,
    /// [`SharesConfig::reassemblies_per_source`](super::SharesConfig::reassemblies_per_source).
    ReassembliesSource,
    /// [`SharesConfig::reassemblies_per_prefix`](super::SharesConfig::reassemblies_per_prefix).
    ReassembliesPrefix,
}

/// Something a peer did wrong; logged and reported, never fatal to the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The datagram did not parse.
    Malformed(ParseError),
    /// A typed header had a malformed value.
    BadHeader(ParseError),
    /// `Need-Seq` named Seqs we never sent (first such Seq).
    NeedSeqNeverSent { seq: u64, next: u64 },
    /// A Seq too far ahead of the next expected one.
    SeqTooFarAhead { seq: u64, expected: u64 },
    /// A session PDU without `Seq`.
    MissingSeq,
    /// A request major version other than 1 (answered `505`).
    UnsupportedVersion,
    /// A request without `From`/`To` while they are required (answered `400`).
    MissingAddressing,
    /// Segments of one payload disagree (`Segment-Count`, `Payload-Length`,
    /// or the reassembled length; answered `400`).
    SegmentsInconsistent { reason: &'static str },
    /// A segment with neither `Segment-ID` nor `TX-ID`: it cannot be
    /// reassembled (answered `400`).
    SegmentWithoutId,
    /// A resume or join with an unknown id or a wrong token (answered `404`).
    ResumeRejected,
    /// An answer without `Seq` to a request sent inside an ordered session
    /// (SPEC §9 "Restarts are never silent"): the peer does not keep the
    /// session's order. A `404` one ends the session ([`CloseReason::LostByPeer`]).
    SeqlessAnswer { status: u16 },
}

/// Events for the application, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request to act on (delivered once; in Seq order in an ordered session).
    RequestReceived {
        id: IncomingId,
        peer: SocketAddr,
        session: Option<SessionHandle>,
        pdu: Pdu,
    },
    /// The peer acknowledged a request we sent (ACK or reply-as-ACK).
    Acked { request: RequestId },
    /// A provisional (`1xx`) reply.
    Provisional { request: RequestId, pdu: Pdu },
    /// The final reply to a request we sent (delivered once).
    ReplyReceived { request: RequestId, pdu: Pdu },
    /// A request we sent got no ACK or reply within its attempts / timeout.
    RequestTimedOut { request: RequestId },
    /// A reply we gave was never acknowledged after all attempts.
    ReplyUnacknowledged { id: IncomingId },
    /// The requester acknowledged before we replied: the reply is not wanted.
    ReplyNotWanted { id: IncomingId },
    /// A session is open in the agreed mode.
    SessionOpened {
        session: SessionHandle,
        peer: SocketAddr,
        mode: SessionMode,
        session_id: Option<String>,
    },
    /// A session continued after a reconnect: each side resends what the
    /// other lacks; nothing is lost or delivered twice.
    SessionResumed {
        session: SessionHandle,
        peer: SocketAddr,
    },
    /// The server had lost the session and opened a new one with the same
    /// id: its state is gone — send your state again. Requests pending in
    /// the old session were abandoned (reported as `RequestTimedOut`).
    SessionRenewed { session: SessionHandle },
    /// A second channel (connection) joined a session with its one-time token.
    ChannelJoined {
        session: SessionHandle,
        peer: SocketAddr,
    },
    /// A session that had several channels ended: close them all.
    ChannelsClosed {
        session: SessionHandle,
        peers: Vec<SocketAddr>,
    },
    /// A session ended; nothing more is delivered on it.
    SessionClosed {
        session: SessionHandle,
        reason: CloseReason,
    },
    /// A message past its `Expire-At`/`Expire-Date` was not acted on.
    Expired {
        peer: SocketAddr,
        session: Option<SessionHandle>,
    },
    /// A `Content-Hash-*` or `Payload-Hash-*` did not match: the request
    /// was answered `400` (a reply was dropped unacknowledged, so its
    /// sender retransmits it); either way it was never delivered.
    IntegrityFailed {
        peer: SocketAddr,
        session: Option<SessionHandle>,
        /// The hash header that did not match, as on the wire.
        header: String,
    },
    /// A hash header this node could not check (an algorithm it does not
    /// implement, or `HMAC-` without a key for the peer); the message was
    /// processed as if the header were absent.
    HashNotChecked {
        peer: SocketAddr,
        header: String,
        reason: Unchecked,
    },
    /// A segmented payload got no new segment for `reassembly_timeout`;
    /// what was held of it is dropped.
    ReassemblyExpired {
        peer: SocketAddr,
        /// `t:<TX-ID>` or `s:<Segment-ID>`.
        payload: String,
        received: u64,
        count: u64,
    },
    /// A peer broke the protocol.
    ProtocolViolation {
        peer: SocketAddr,
        violation: Violation,
    },
    /// A bound was hit (see [`EngineLimits`](super::EngineLimits)).
    LimitReached {
        limit: EngineLimit,
        peer: Option<SocketAddr>,
    },
}

/// Why an application command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("too many requests awaiting an answer (max_pending_requests)")]
    TooManyPending,
    #[error("too many sessions (max_sessions)")]
    TooManySessions,
    /// Back-pressure: the memory budget over bytes held for peers is
    /// (nearly) used up, so nothing new is taken on until it frees.
    #[error("the memory budget is used up (shares.memory_budget); try again later")]
    MemoryBudget,
    #[error("no such session (it may have closed)")]
    UnknownSession,
    #[error("the session is not open yet")]
    SessionNotOpen,
    #[error("no such incoming request, or it was already answered")]
    UnknownRequest,
    #[error("a request must be a request PDU, a reply must be a reply PDU")]
    WrongKind,
    #[error("payload of {len} bytes is over the limit of {max} (max_payload_len / max_segments), or its head leaves no room in a datagram")]
    PayloadTooLarge { len: usize, max: usize },
    #[error("the session has no Session-ID to resume with")]
    NoSessionId,
}
