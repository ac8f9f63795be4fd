//! Engine configuration: retry policy, timers and every bound, named.

use super::integrity::IntegrityConfig;
use super::segment::SegmentConfig;
use super::shares::SharesConfig;
use super::timing::Timestamp;
use crate::wire::{ParseOptions, SessionMode};
use std::time::Duration;

/// Retransmission of unanswered requests and unacknowledged replies
/// (SPEC §6: 500 ms doubling per attempt, 5 attempts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Timer before the first retransmission.
    pub initial: Duration,
    /// Each later timer is the previous one times this factor.
    pub factor: u32,
    /// Cap on a single timer.
    pub max_interval: Duration,
    /// Total transmissions (the first included) before giving up.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(500),
            factor: 2,
            max_interval: Duration::from_secs(8),
            max_attempts: 5,
        }
    }
}

impl RetryPolicy {
    /// The timer that follows transmission number `attempt` (1-based).
    pub fn interval(&self, attempt: u32) -> Duration {
        let mut d = self.initial;
        for _ in 1..attempt {
            d = d.saturating_mul(self.factor);
            if d >= self.max_interval {
                return self.max_interval;
            }
        }
        d.min(self.max_interval)
    }
}

/// Bounds on everything the engine holds. Hitting one produces an
/// [`Event::LimitReached`](super::Event::LimitReached) and the defined
/// action documented on each field; nothing grows past them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    /// Sessions held at once. A `REG` beyond it makes room by dropping the
    /// oldest half-open session (see
    /// [`SharesConfig`]); when none is half-open it is
    /// answered `503`.
    pub max_sessions: usize,
    /// Outgoing transactions awaiting an ACK or final reply. A new
    /// request beyond it is refused with [`EngineError::TooManyPending`](super::EngineError::TooManyPending).
    pub max_pending_requests: usize,
    /// Incoming transactions remembered for duplicate suppression and
    /// reply retransmission (SPEC §9 "Exactly once needs memory"). An
    /// entry past its sender's retry horizon is forgotten, then one whose
    /// answer was acknowledged (oldest acknowledgement first); a young
    /// answer never is: when only young entries remain, a new request is
    /// answered `503` instead of being accepted. Per-source shares and the
    /// horizon's cap are in [`SharesConfig`].
    pub max_reply_cache: usize,
    /// PDUs held per ordered session while an earlier Seq is missing. A PDU
    /// beyond it is dropped (it is asked for again by a later NACK).
    pub max_reorder_pdus: usize,
    /// Sent PDUs kept per session for NACK-driven retransmission. The oldest
    /// is dropped first; a later NACK for it ends the session with
    /// `BYE` + `Ignore-Seq: *`.
    pub max_retx_pdus: usize,
    /// The same, in encoded bytes.
    pub max_retx_bytes: usize,
    /// Ranges in one outgoing `Need-Seq` (SPEC §8: 64, oldest gaps first).
    pub max_nack_ranges: usize,
    /// How far ahead of the next expected Seq a PDU may be before it is a
    /// protocol violation (dropped, not NACKed).
    pub max_seq_ahead: u64,
    /// Requests of one session sent and not yet answered. Further ones wait
    /// in the session's queue and go out, in order, as earlier ones finish:
    /// this bounds what the peer must ACK and hold for retransmission (a
    /// window far above its `max_retx_pdus` would make a reconnect lose
    /// PDUs it no longer holds).
    pub max_in_flight_per_session: usize,
    /// Requests waiting for the window per session; past it `send` is
    /// refused with [`EngineError::TooManyPending`](super::EngineError::TooManyPending).
    pub max_queued_per_session: usize,
    /// IP addresses whose failed resume attempts are counted; past it the
    /// oldest entry is forgotten.
    pub max_resume_failure_peers: usize,
    /// Disjoint ranges of received Seqs remembered per unordered session
    /// for duplicate suppression; past it the oldest ranges are folded into
    /// the floor (anything below is treated as a duplicate).
    pub max_seen_ranges: usize,
}

impl Default for EngineLimits {
    fn default() -> Self {
        EngineLimits {
            max_sessions: 10_000,
            max_pending_requests: 4096,
            max_reply_cache: 4096,
            max_reorder_pdus: 256,
            max_retx_pdus: 1024,
            max_retx_bytes: 4 * 1024 * 1024,
            max_nack_ranges: 64,
            max_seq_ahead: 65_536,
            max_seen_ranges: 256,
            max_resume_failure_peers: 4096,
            max_in_flight_per_session: 128,
            max_queued_per_session: 4096,
        }
    }
}

/// Which mode a server agrees to when a client asks for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModePolicy {
    /// Agree to what the client requested.
    #[default]
    AgreeRequested,
    /// Always answer with this mode (the client NACKs if it differs).
    Force(SessionMode),
}

/// What a server does with a `REG` that names a `Session-ID` it does not
/// hold (it restarted, or the idle timeout removed the session).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResumePolicy {
    /// Answer `404 Unknown Session`; the client opens a fresh session.
    #[default]
    Refuse,
    /// Open a new session adopting the id, answered with
    /// `Session-Status: new` so the client knows to send its state again.
    AdoptAsNew,
}

/// Everything that shapes an [`Endpoint`](super::Endpoint).
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's identity (`[NODE@]HOST:PORT`), written as `From` on
    /// everything it sends; `None` leaves `From` out.
    pub identity: Option<String>,
    /// Request and reply retransmission.
    pub retry: RetryPolicy,
    /// How long an ACKed request waits for its final reply when the request
    /// carries no `Timeout`.
    pub reply_timeout: Duration,
    /// Most time between two NACKs naming an unchanged gap (the pace is two
    /// round trips once the round trip is known, within these two bounds).
    pub nack_interval: Duration,
    /// Least time between two NACKs naming an unchanged gap, whatever the
    /// round trip: on loopback two round trips are well under a
    /// millisecond, and `max_nack_rounds` rounds that fast would give up on
    /// a gap before a briefly stalled peer could fill it.
    pub min_nack_interval: Duration,
    /// NACK rounds without progress before a session gives up on a gap.
    pub max_nack_rounds: u32,
    /// A PDU retransmitted for a NACK is not retransmitted again for another
    /// NACK within this time (the first copy is still in flight).
    pub retransmit_holdoff: Duration,
    /// A session with no PDU received for this long is closed.
    pub session_idle_timeout: Duration,
    /// What a server agrees to.
    pub mode_policy: ModePolicy,
    /// Refuse (`400`) requests without `From` or `To` (SPEC §5 allows it).
    pub require_from_to: bool,
    /// Unknown `Session-ID` on resumption.
    pub resume_policy: ResumePolicy,
    /// Failed resume/join attempts one IP address may make per
    /// `resume_failure_window`; past it every attempt gets the same refusal
    /// without any lookup (ids cannot be guessed by trying).
    pub resume_failures_per_window: u32,
    /// The window of `resume_failures_per_window`.
    pub resume_failure_window: Duration,
    /// Parser options for incoming datagrams.
    pub parse: ParseOptions,
    /// Bounds.
    pub limits: EngineLimits,
    /// Largest datagram this node sends to a datagram peer, in bytes: a
    /// request that would encode larger is segmented (SPEC §7). Default
    /// 1,200, which crosses any path with an MTU of 1,280 (the IPv6
    /// minimum) after IP and UDP headers. Stream peers (see
    /// [`Endpoint::set_stream_peer`](super::Endpoint::set_stream_peer)) are
    /// never segmented.
    pub max_datagram: usize,
    /// Segmentation and reassembly.
    pub segments: SegmentConfig,
    /// Hashes added on send, and the HMAC keys.
    pub integrity: IntegrityConfig,
    /// `TS` or `Date` on requests and replies (refreshed when a request is
    /// retransmitted).
    pub timestamp: Timestamp,
    /// Proof of address, the 3x budget, resend pacing, the gap budget
    /// (SPEC §9).
    pub paths: super::address::PathConfig,
    /// Per-source shares, half-open sessions, the reply horizon and the one
    /// memory budget (SPEC §9).
    pub shares: SharesConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity: None,
            retry: RetryPolicy::default(),
            reply_timeout: Duration::from_secs(32),
            nack_interval: Duration::from_millis(500),
            min_nack_interval: Duration::from_millis(50),
            max_nack_rounds: 8,
            retransmit_holdoff: Duration::from_millis(100),
            session_idle_timeout: Duration::from_secs(120),
            mode_policy: ModePolicy::default(),
            require_from_to: false,
            resume_policy: ResumePolicy::default(),
            resume_failures_per_window: 5,
            resume_failure_window: Duration::from_secs(60),
            parse: ParseOptions::default(),
            limits: EngineLimits::default(),
            max_datagram: 1200,
            segments: SegmentConfig::default(),
            integrity: IntegrityConfig::default(),
            timestamp: Timestamp::default(),
            paths: super::address::PathConfig::default(),
            shares: SharesConfig::default(),
        }
    }
}
