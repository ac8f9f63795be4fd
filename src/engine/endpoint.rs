//! The endpoint: one node's sessions and transactions, driven by calls.
//!
//! Shape (after quinn-proto): the driver hands in datagrams/PDUs with the
//! current instant ([`Endpoint::handle_datagram`]), application commands
//! ([`Endpoint::request`], [`Endpoint::open_session`], [`Endpoint::send`],
//! [`Endpoint::respond`], [`Endpoint::close_session`]) and timer expiries
//! ([`Endpoint::handle_timeout`]); it takes out datagrams
//! ([`Endpoint::poll_transmit`]), events ([`Endpoint::poll_event`]) and the
//! next wake-up ([`Endpoint::poll_timeout`]). There is no clock and no I/O
//! here: time is always an argument, so tests drive it deterministically.

use super::config::Config;
use super::event::{
    CloseReason, EngineError, EngineLimit, Event, IncomingId, RequestId, SessionHandle, Transmit,
    Violation,
};
use super::session::{Role, Sent, SentKind, Session, State};
use crate::wire::typed::names;
use crate::wire::{HeaderName, IgnoreSeq, Method, Pdu, PduBuilder, PduView, SessionMode, Target};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tracing::{debug, trace, warn};

// Proof of address, the 3x budget, path-bound sessions (SPEC §9): see `paths`.
mod paths;
// Reply-cache admission, fair shares and half-open sessions (SPEC §9).
mod admission;
// Forms real peers send (SPEC §10): see `interop`.
mod interop;
mod resume;
// Segmentation, integrity, timing headers and `To` (SPEC §5, §7): see `transfer`.
mod transfer;

const H_SEQ: HeaderName = HeaderName::from_static(names::SEQ);
const H_ACK_SEQ: HeaderName = HeaderName::from_static(names::ACK_SEQ);
const H_NEED_SEQ: HeaderName = HeaderName::from_static(names::NEED_SEQ);
const H_IGNORE_SEQ: HeaderName = HeaderName::from_static(names::IGNORE_SEQ);
const H_TX_ID: HeaderName = HeaderName::from_static(names::TX_ID);
const H_MESSAGE_ID: HeaderName = HeaderName::from_static(names::MESSAGE_ID);
const H_ACK_MESSAGE_ID: HeaderName = HeaderName::from_static(names::ACK_MESSAGE_ID);
const H_SESSION_ID: HeaderName = HeaderName::from_static(names::SESSION_ID);
const H_FROM: HeaderName = HeaderName::from_static(names::FROM);
const H_TO: HeaderName = HeaderName::from_static(names::TO);
const H_ATTEMPT: HeaderName = HeaderName::from_static(names::ATTEMPT);
const H_REQ_MODE: HeaderName = HeaderName::from_static(names::REQUEST_SESSION_MODE);
const H_SET_MODE: HeaderName = HeaderName::from_static(names::SET_SESSION_MODE);
const H_CHANNEL_TOKEN: HeaderName = HeaderName::from_static(names::CHANNEL_TOKEN);

/// Free bytes of the memory budget below which [`Endpoint::send`] is
/// refused with [`EngineError::MemoryBudget`] (room for a typical PDU and
/// its copy for retransmission); the same as for new transactions.
pub const MIN_SEND_ROOM: usize = crate::budget::MIN_ROOM;

/// Counters of work done, for tests and benchmarks (assert on work, not time).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams handed to the driver.
    pub transmits: u64,
    /// Requests and replies resent because their timer expired.
    pub timer_retransmits: u64,
    /// Session PDUs resent because a `Need-Seq` asked for them.
    pub nack_retransmits: u64,
    /// NACKs sent for gaps.
    pub nacks_sent: u64,
    /// Received PDUs dropped as duplicates.
    pub duplicates: u64,
    /// Received datagrams that did not parse.
    pub malformed: u64,
    /// Segments resent because later segments were acknowledged first.
    pub fast_retransmits: u64,
    /// The path rules at work: bytes withheld by the 3x budget, PDUs
    /// from the wrong path, unproven NACKs (SPEC §9).
    pub paths: super::address::PathStats,
}

/// Counters of several endpoints summed (a load run's flows, say). Every
/// field is named, so a new counter cannot be left out of the sum.
impl std::ops::AddAssign<&Stats> for Stats {
    fn add_assign(&mut self, s: &Stats) {
        let Stats {
            transmits,
            timer_retransmits,
            nack_retransmits,
            nacks_sent,
            duplicates,
            malformed,
            fast_retransmits,
            paths,
        } = *s;
        self.transmits += transmits;
        self.timer_retransmits += timer_retransmits;
        self.nack_retransmits += nack_retransmits;
        self.nacks_sent += nacks_sent;
        self.duplicates += duplicates;
        self.malformed += malformed;
        self.fast_retransmits += fast_retransmits;
        self.paths += &paths;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Out(u64),
    In(u64),
    Session(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutKind {
    App,
    Reg,
    Bye,
    /// A resume handshake (outside the Seq stream).
    Resume,
    /// One segment of a segmented request (see `transfer`).
    Segment,
}

/// The ids a new request carries: the application's handle, TX-ID and Message-ID.
struct RequestIds {
    id: u64,
    tx_id: String,
    message_id: String,
}

impl OutTx {
    /// A request at its first transmission, outside any session until the
    /// caller says otherwise.
    fn first(
        tx_id: String,
        message_id: String,
        dest: SocketAddr,
        builder: PduBuilder,
        kind: OutKind,
        now: Instant,
    ) -> OutTx {
        OutTx {
            tx_id,
            message_id,
            dest,
            session: None,
            seq: None,
            builder,
            kind,
            attempt: 1,
            acked: false,
            deadline: None,
            sent_at: now,
            initiated: false,
        }
    }
}

/// A request we sent.
#[derive(Debug)]
struct OutTx {
    tx_id: String,
    message_id: String,
    dest: SocketAddr,
    session: Option<u64>,
    seq: Option<u64>,
    builder: PduBuilder,
    kind: OutKind,
    attempt: u32,
    acked: bool,
    deadline: Option<Instant>,
    sent_at: Instant,
    /// Started by the application (SPEC §9: not an answer, not budgeted).
    initiated: bool,
}

#[derive(Debug)]
enum InState {
    /// Delivered; the application has not answered yet.
    Waiting,
    /// Answered; retransmitted until acknowledged.
    Replied {
        payload: Bytes,
        message_id: String,
        seq: Option<u64>,
        attempt: u32,
        acked: bool,
        sent_at: Instant,
    },
    /// Acknowledged before we answered, or not to be answered (expired, BYE).
    Closed,
}

/// A request we received.
#[derive(Debug)]
struct InTx {
    key: (SocketAddr, String),
    session: Option<u64>,
    tx_id: Option<String>,
    message_id: Option<String>,
    requester: Option<String>,
    ack: Option<Bytes>,
    ack_dest: SocketAddr,
    reply_dest: SocketAddr,
    state: InState,
    deadline: Option<Instant>,
}

impl InTx {
    /// An incoming request as first remembered: the ids a reply echoes and
    /// where an ACK and the reply go (SPEC §5), awaiting the application.
    fn of<B: AsRef<[u8]>>(
        pdu: &PduView<B>,
        from: SocketAddr,
        key: (SocketAddr, String),
        session: Option<u64>,
    ) -> InTx {
        InTx {
            key,
            session,
            tx_id: pdu.tx_id().ok().flatten().map(str::to_owned),
            message_id: pdu.message_id().ok().flatten().map(str::to_owned),
            requester: pdu.from().ok().flatten().map(|i| i.to_string()),
            ack: None,
            ack_dest: ack_dest(pdu, from),
            reply_dest: reply_dest(pdu, from),
            state: InState::Waiting,
            deadline: None,
        }
    }
}

/// One Acorn node: its sessions, transactions and timers.
pub struct Endpoint {
    cfg: Config,
    rng: StdRng,
    epoch: Instant,
    unix_at_epoch: Duration,
    next_handle: u64,
    sessions: HashMap<u64, Session>,
    session_by_peer: HashMap<SocketAddr, u64>,
    session_by_id: HashMap<String, u64>,
    out_txs: HashMap<u64, OutTx>,
    out_by_tx: HashMap<String, u64>,
    /// Final replies we ACKed, by TX-ID: the ACK to resend for a duplicate.
    done_out: HashMap<String, (SocketAddr, Bytes)>,
    done_out_order: VecDeque<String>,
    in_txs: HashMap<u64, InTx>,
    in_by_key: HashMap<(SocketAddr, String), u64>,
    /// The reply cache's horizons, shares and budget charge (`admission`).
    replies: super::reply_cache::ReplyCache,
    /// Server sessions per source, and the half-open ones (`admission`).
    session_shares: admission::SessionShares,
    /// The one budget over every byte held for peers (SPEC §9).
    budget: crate::budget::MemoryBudget,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    transfers: transfer::Transfers,
    resume_failures: HashMap<resume::FailureKey, resume::Failures>,
    resume_failure_order: VecDeque<resume::FailureKey>,
    /// Sessions whose window has room for queued requests (drained at the
    /// end of each call, where starting a request is safe).
    window_opened: Vec<u64>,
    /// Per-address proof and budget (SPEC §9, `paths`).
    paths: paths::Paths,
}

fn ack_dest<B: AsRef<[u8]>>(pdu: &PduView<B>, source: SocketAddr) -> SocketAddr {
    // SPEC §5: Ack-To, else Reply-To, else From, else the transport source.
    [pdu.ack_to(), pdu.reply_to(), pdu.from()]
        .into_iter()
        .find_map(|r| r.ok().flatten().and_then(|i| i.socket_addr()))
        .unwrap_or(source)
}

fn reply_dest<B: AsRef<[u8]>>(pdu: &PduView<B>, source: SocketAddr) -> SocketAddr {
    // SPEC §5: Reply-To, else From, else the transport source.
    [pdu.reply_to(), pdu.from()]
        .into_iter()
        .find_map(|r| r.ok().flatten().and_then(|i| i.socket_addr()))
        .unwrap_or(source)
}

impl Endpoint {
    /// A new endpoint with a deterministic id generator, for tests and
    /// simulations (use [`Endpoint::from_entropy`] on a real network).
    /// `unix_now` is the wall-clock time at `now`, used for `Expire-At`.
    pub fn new(cfg: Config, seed: u64, now: Instant, unix_now: Duration) -> Self {
        Self::with_rng(cfg, StdRng::seed_from_u64(seed), now, unix_now)
    }

    /// A new endpoint whose id generator (a ChaCha-based CSPRNG) is seeded
    /// with 256 bits from the operating system: what a real node uses, so
    /// Session-IDs carry 128 unguessable bits.
    pub fn from_entropy(cfg: Config, now: Instant, unix_now: Duration) -> Self {
        Self::with_rng(cfg, StdRng::from_entropy(), now, unix_now)
    }

    fn with_rng(cfg: Config, rng: StdRng, now: Instant, unix_now: Duration) -> Self {
        let budget = crate::budget::MemoryBudget::with_per_source(
            cfg.shares.memory_budget,
            cfg.shares.memory_per_source,
        );
        let transfers = transfer::Transfers::new(&budget, cfg.shares);
        Endpoint {
            cfg,
            rng,
            epoch: now,
            unix_at_epoch: unix_now,
            next_handle: 1,
            sessions: HashMap::new(),
            session_by_peer: HashMap::new(),
            session_by_id: HashMap::new(),
            out_txs: HashMap::new(),
            out_by_tx: HashMap::new(),
            done_out: HashMap::new(),
            done_out_order: VecDeque::new(),
            in_txs: HashMap::new(),
            in_by_key: HashMap::new(),
            replies: super::reply_cache::ReplyCache::new(&budget),
            session_shares: admission::SessionShares::default(),
            budget,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            transfers,
            resume_failures: HashMap::new(),
            resume_failure_order: VecDeque::new(),
            window_opened: Vec::new(),
            paths: paths::Paths::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Work counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Sessions currently held.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Requests awaiting an ACK or final reply.
    pub fn pending_requests(&self) -> usize {
        self.out_txs.len()
    }

    /// Incoming transactions remembered (the reply cache; see
    /// [`EngineLimits::max_reply_cache`](super::EngineLimits::max_reply_cache)).
    pub fn remembered_requests(&self) -> usize {
        self.in_txs.len()
    }

    /// PDUs held for retransmission in a session.
    pub fn retransmit_buffer_len(&self, session: SessionHandle) -> Option<usize> {
        self.sessions.get(&session.0).map(|s| s.retx.len())
    }

    /// PDUs held for reordering in a session.
    pub fn reorder_buffer_len(&self, session: SessionHandle) -> Option<usize> {
        self.sessions.get(&session.0).map(|s| s.reorder.len())
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] should next be called.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        // Reassembly expiry is kept by `transfer`, outside the timer heap.
        let reassembly = self.transfer_deadline();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if self.timer_live(at, key) {
                return Some(reassembly.map_or(at, |r| r.min(at)));
            }
            self.timers.pop();
        }
        reassembly
    }

    fn timer_live(&self, at: Instant, key: TimerKey) -> bool {
        match key {
            TimerKey::Out(id) => self
                .out_txs
                .get(&id)
                .is_some_and(|t| t.deadline == Some(at)),
            TimerKey::In(id) => self.in_txs.get(&id).is_some_and(|t| t.deadline == Some(at)),
            TimerKey::Session(id) => self
                .sessions
                .get(&id)
                .is_some_and(|s| s.timer_at == Some(at)),
        }
    }

    fn handle(&mut self) -> u64 {
        let h = self.next_handle;
        self.next_handle += 1;
        h
    }

    fn new_id(&mut self, prefix: &str) -> String {
        format!("{prefix}{:016x}", self.rng.next_u64())
    }

    /// A session id of 128 bits from the endpoint's generator (a CSPRNG;
    /// seeded from the OS by the runtime).
    fn new_session_id(&mut self) -> String {
        format!("{:016x}{:016x}", self.rng.next_u64(), self.rng.next_u64())
    }

    fn unix_now(&self, now: Instant) -> i64 {
        (self.unix_at_epoch + now.saturating_duration_since(self.epoch)).as_secs() as i64
    }

    fn emit(&mut self, e: Event) {
        self.events.push_back(e);
    }

    fn violation(&mut self, peer: SocketAddr, violation: Violation) {
        debug!(%peer, ?violation, "protocol violation");
        self.emit(Event::ProtocolViolation { peer, violation });
    }

    fn push(&mut self, dest: SocketAddr, payload: Bytes) {
        if !self.may_send(dest, payload.len()) {
            return; // SPEC §9: over an unproven address's budget
        }
        trace!(%dest, len = payload.len(), "transmit");
        self.stats.transmits += 1;
        self.transmits.push_back(Transmit { dest, payload });
    }

    fn set_out_deadline(&mut self, id: u64, at: Option<Instant>) {
        if let Some(t) = self.out_txs.get_mut(&id) {
            t.deadline = at;
            if let Some(at) = at {
                self.timers.push(Reverse((at, TimerKey::Out(id))));
            }
        }
    }

    fn set_in_deadline(&mut self, id: u64, at: Option<Instant>) {
        if let Some(t) = self.in_txs.get_mut(&id) {
            t.deadline = at;
            if let Some(at) = at {
                self.timers.push(Reverse((at, TimerKey::In(id))));
            }
        }
    }

    /// Ask for a session wake-up at `at` unless an earlier one is pending.
    fn wake_session(&mut self, sid: u64, at: Instant) {
        if let Some(s) = self.sessions.get_mut(&sid) {
            if s.timer_at.is_none_or(|t| at < t) {
                s.timer_at = Some(at);
                self.timers.push(Reverse((at, TimerKey::Session(sid))));
            }
        }
    }

    fn stamp_addressing(&self, b: &mut PduBuilder, to: Option<&str>) {
        if let Some(id) = &self.cfg.identity {
            let _ = b.set_value(&H_FROM, Bytes::from(id.clone()));
        }
        if let Some(to) = to {
            if b.get_header("To").is_none() {
                let _ = b.set_value(&H_TO, Bytes::from(to.to_owned()));
            }
        }
    }

    /// Give `b` the session's next Seq, encode it, keep it for NACKs
    /// (ordered mode) and queue it. Returns (seq, payload).
    fn session_send(
        &mut self,
        sid: u64,
        mut b: PduBuilder,
        dest: SocketAddr,
        kind: SentKind,
    ) -> Option<(u64, Bytes)> {
        let limits = self.cfg.limits;
        let s = self.sessions.get_mut(&sid)?;
        let seq = s.next_out;
        s.next_out += 1;
        b.set_number(&H_SEQ, seq);
        if let Some(id) = &s.session_id {
            let _ = b.set_value(&H_SESSION_ID, Bytes::from(id.clone()));
        }
        if let Some(a) = s.ack_floor() {
            b.set_number(&H_ACK_SEQ, a);
        }
        let payload = b.to_bytes();
        let (mut evicted, mut kept) = (false, true);
        if s.mode == SessionMode::Ordered {
            (evicted, kept) = s.keep(
                seq,
                Sent {
                    builder: b,
                    len: payload.len(),
                    kind,
                    last_nack_resend: None,
                },
                &limits,
            );
            if evicted && s.retx_limit_reported {
                evicted = false; // reported once per session
            } else if evicted {
                s.retx_limit_reported = true;
            }
        }
        let peer = s.peer;
        // Memory budget full: sent without a copy (reported once per session).
        if !kept && !std::mem::replace(&mut s.budget_reported, true) {
            warn!(session = sid, %peer, "memory budget full: sent PDU not kept for NACKs");
            self.emit(Event::LimitReached {
                limit: EngineLimit::MemoryBudget,
                peer: Some(peer),
            });
        }
        if evicted {
            self.emit(Event::LimitReached {
                limit: EngineLimit::RetransmitBuffer,
                peer: Some(peer),
            });
        }
        self.push(dest, payload.clone());
        Some((seq, payload))
    }

    /// Send `b` inside `session` if given (with a Seq), else plainly.
    fn send_pdu(
        &mut self,
        session: Option<u64>,
        b: PduBuilder,
        dest: SocketAddr,
        kind: SentKind,
    ) -> (Option<u64>, Bytes) {
        if let Some(sid) = session {
            if let Some((seq, p)) = self.session_send(sid, b.clone(), dest, kind) {
                return (Some(seq), p);
            }
        }
        let p = b.to_bytes();
        self.push(dest, p.clone());
        (None, p)
    }

    // ------------------------------------------------------------ commands

    /// Send a request outside any session; it is retransmitted until ACKed
    /// or answered. TX-ID and Message-ID are added unless present.
    pub fn request(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        pdu: PduBuilder,
    ) -> Result<RequestId, EngineError> {
        let id = self.handle();
        self.initiated(|e| e.start_request(now, peer, None, pdu, OutKind::App, id))
    }

    /// Send a request inside an open session.
    pub fn send(
        &mut self,
        now: Instant,
        session: SessionHandle,
        pdu: PduBuilder,
    ) -> Result<RequestId, EngineError> {
        let s = self
            .sessions
            .get(&session.0)
            .ok_or(EngineError::UnknownSession)?;
        if s.state != State::Open {
            return Err(EngineError::SessionNotOpen);
        }
        let peer = s.peer;
        if self.budget.available() < MIN_SEND_ROOM {
            // Back-pressure (SPEC §9): nothing new is taken on while the
            // budget over bytes held for peers is nearly used up.
            self.emit(Event::LimitReached {
                limit: EngineLimit::MemoryBudget,
                peer: Some(peer),
            });
            return Err(EngineError::MemoryBudget);
        }
        let limits = self.cfg.limits;
        let id = self.handle();
        let Some(s) = self.sessions.get_mut(&session.0) else {
            return Err(EngineError::UnknownSession);
        };
        if s.in_flight >= limits.max_in_flight_per_session || !s.queued.is_empty() {
            if s.queued.len() >= limits.max_queued_per_session {
                self.emit(Event::LimitReached {
                    limit: EngineLimit::PendingRequests,
                    peer: Some(peer),
                });
                return Err(EngineError::TooManyPending);
            }
            s.queued.push_back((id, pdu));
            return Ok(RequestId(id));
        }
        s.in_flight += 1;
        self.initiated(|e| e.start_request(now, peer, Some(session.0), pdu, OutKind::App, id))
            .inspect_err(|_| {
                if let Some(s) = self.sessions.get_mut(&session.0) {
                    s.in_flight -= 1;
                }
            })
    }

    /// Send request `id` (a handle the caller allocated, so a request that
    /// waited in a session's queue keeps the id the application holds).
    fn start_request(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        session: Option<u64>,
        mut b: PduBuilder,
        kind: OutKind,
        id: u64,
    ) -> Result<RequestId, EngineError> {
        if b.method().is_none() {
            return Err(EngineError::WrongKind);
        }
        if self.out_txs.len() >= self.cfg.limits.max_pending_requests {
            self.emit(Event::LimitReached {
                limit: EngineLimit::PendingRequests,
                peer: Some(dest),
            });
            return Err(EngineError::TooManyPending);
        }
        let (tx_id, message_id) = self.stamp_first_attempt(&mut b);
        // TS/Date and To; over the datagram budget the request goes as
        // segments (SPEC §7), else it gets its content hashes (`transfer`).
        self.stamp_request(now, dest, &mut b);
        if kind == OutKind::App && self.over_budget(dest, session, &b) {
            return self.start_segmented(
                now,
                dest,
                session,
                b,
                RequestIds {
                    id,
                    tx_id,
                    message_id,
                },
            );
        }
        self.stamp_content_hash(dest, &mut b);
        let (seq, _) = self.send_pdu(session, b.clone(), dest, SentKind::Other);
        if let (Some(seq), Some(sid)) = (seq, session) {
            b.set_number(&H_SEQ, seq);
            if let Some(id) = self.sessions.get(&sid).and_then(|s| s.session_id.clone()) {
                let _ = b.set_value(&H_SESSION_ID, Bytes::from(id));
            }
        }
        debug!(request = id, %dest, tx = %tx_id, ?seq, "request sent");
        let mut t = OutTx::first(tx_id, message_id, dest, b, kind, now);
        (t.session, t.seq) = (session, seq);
        self.track_and_arm(now, id, t);
        Ok(RequestId(id))
    }

    /// Give a request its ids for a first transmission: its own TX-ID if it
    /// has one (else a new one), a new Message-ID, `From`, `Attempt: 1/MAX`.
    fn stamp_first_attempt(&mut self, b: &mut PduBuilder) -> (String, String) {
        let tx_id = match b.get_header("TX-ID") {
            Some(v) => String::from_utf8_lossy(v).into_owned(),
            None => {
                let t = self.new_id("t");
                let _ = b.set_value(&H_TX_ID, Bytes::from(t.clone()));
                t
            }
        };
        let message_id = self.new_id("m");
        let _ = b.set_value(&H_MESSAGE_ID, Bytes::from(message_id.clone()));
        self.stamp_addressing(b, None);
        let max = self.cfg.retry.max_attempts.max(1);
        let _ = b.set_value(&H_ATTEMPT, Bytes::from(format!("1/{max}")));
        (tx_id, message_id)
    }

    /// Remember a request sent for the first time, so its ACK and replies
    /// find it by TX-ID.
    fn track_out(&mut self, id: u64, mut t: OutTx) {
        t.initiated = self.paths.initiating;
        self.out_by_tx.insert(t.tx_id.clone(), id);
        self.out_txs.insert(id, t);
    }

    /// [`Endpoint::track_out`], and arm its first retransmission timer.
    fn track_and_arm(&mut self, now: Instant, id: u64, t: OutTx) {
        self.track_out(id, t);
        let at = now + self.cfg.retry.interval(1);
        self.set_out_deadline(id, Some(at));
    }

    /// Open a session with `peer` by sending `REG target` with `Seq: 0`
    /// and `Request-Session-Mode`.
    pub fn open_session(
        &mut self,
        now: Instant,
        peer: SocketAddr,
        target: &str,
        mode: SessionMode,
    ) -> Result<SessionHandle, EngineError> {
        if self.sessions.len() >= self.cfg.limits.max_sessions {
            return Err(EngineError::TooManySessions);
        }
        let target = Target::new(target.to_owned()).map_err(|_| EngineError::WrongKind)?;
        let mut b = PduBuilder::request_with(Method::REG, target);
        let _ = b.set_value(&H_REQ_MODE, Bytes::from_static(mode.as_str().as_bytes()));
        let tx = self.new_id("t");
        let _ = b.set_value(&H_TX_ID, Bytes::from(tx.clone()));
        let sid = self.handle();
        if let Some(old) = self.session_by_peer.insert(peer, sid) {
            self.drop_session(old, CloseReason::Local);
        }
        self.sessions.insert(
            sid,
            Session::new(peer, Role::Client, mode, now, &self.budget),
        );
        let id = self.handle();
        self.initiated(|e| e.start_request(now, peer, Some(sid), b, OutKind::Reg, id))?;
        self.wake_session(sid, now + self.cfg.session_idle_timeout);
        Ok(SessionHandle(sid))
    }

    /// End a session: `BYE` in order after everything sent before it.
    pub fn close_session(
        &mut self,
        now: Instant,
        session: SessionHandle,
    ) -> Result<(), EngineError> {
        let s = self
            .sessions
            .get_mut(&session.0)
            .ok_or(EngineError::UnknownSession)?;
        if s.state == State::Closing {
            return Ok(());
        }
        s.state = State::Closing;
        let peer = s.peer;
        let b = PduBuilder::request_with(
            Method::BYE,
            Target::new("/").map_err(|_| EngineError::WrongKind)?,
        );
        let id = self.handle();
        self.initiated(|e| e.start_request(now, peer, Some(session.0), b, OutKind::Bye, id))
            .map(|_| ())
    }

    /// Answer a request that was delivered as [`Event::RequestReceived`].
    /// The reply is retransmitted until the requester ACKs it.
    pub fn respond(
        &mut self,
        now: Instant,
        id: IncomingId,
        mut reply: PduBuilder,
    ) -> Result<(), EngineError> {
        if reply.status().is_none() {
            return Err(EngineError::WrongKind);
        }
        let t = self.in_txs.get(&id.0).ok_or(EngineError::UnknownRequest)?;
        if !matches!(t.state, InState::Waiting) {
            return Err(EngineError::UnknownRequest);
        }
        let (session, dest) = (t.session, t.reply_dest);
        if let Some(tx) = &t.tx_id {
            let _ = reply.set_value(&H_TX_ID, Bytes::from(tx.clone()));
        }
        if let Some(m) = &t.message_id {
            let _ = reply.set_value(&H_ACK_MESSAGE_ID, Bytes::from(m.clone()));
        }
        let requester = t.requester.clone();
        let message_id = self.new_id("m");
        let _ = reply.set_value(&H_MESSAGE_ID, Bytes::from(message_id.clone()));
        self.stamp_addressing(&mut reply, requester.as_deref());
        self.stamp_reply(now, dest, &mut reply); // TS/Date, Content-Hash (`transfer`)
        let session = session.filter(|s| self.sessions.contains_key(s));
        let (seq, mut payload) = self.send_pdu(session, reply, dest, SentKind::Other);
        // Kept for retransmission only if the memory budget has room
        // (`admission`); otherwise it went out once.
        let kept = self.reply_kept(now, id.0, &payload);
        if !kept {
            payload = Bytes::new();
        }
        if let Some(t) = self.in_txs.get_mut(&id.0) {
            t.state = InState::Replied {
                payload,
                message_id,
                seq,
                attempt: 1,
                acked: false,
                sent_at: now,
            };
        }
        if kept {
            let at = now + self.cfg.retry.interval(1);
            self.set_in_deadline(id.0, Some(at));
        }
        Ok(())
    }

    // ------------------------------------------------------------ receive

    /// A datagram arrived from `from`. Malformed input is reported as a
    /// protocol violation and otherwise ignored.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: Bytes) {
        match Pdu::parse_datagram(data, &self.cfg.parse) {
            Ok(pdu) => self.handle_pdu(now, from, pdu),
            Err(e) => {
                self.stats.malformed += 1;
                self.violation(from, Violation::Malformed(e));
            }
        }
    }

    /// A parsed PDU arrived from `from`.
    pub fn handle_pdu(&mut self, now: Instant, from: SocketAddr, pdu: Pdu) {
        self.note_received(from, &pdu); // SPEC §9: budget and proof
        self.receive_pdu(now, from, pdu);
        self.drain_windows(now);
    }

    /// Start queued requests of sessions whose window opened.
    fn drain_windows(&mut self, now: Instant) {
        let max = self.cfg.limits.max_in_flight_per_session;
        while let Some(sid) = self.window_opened.pop() {
            while let Some(s) = self.sessions.get_mut(&sid) {
                if s.state != State::Open || s.in_flight >= max {
                    break;
                }
                let Some((id, pdu)) = s.queued.pop_front() else {
                    break;
                };
                s.in_flight += 1;
                let peer = s.peer;
                if self
                    .initiated(|e| e.start_request(now, peer, Some(sid), pdu, OutKind::App, id))
                    .is_err()
                {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.in_flight = s.in_flight.saturating_sub(1);
                    }
                    self.emit(Event::RequestTimedOut {
                        request: RequestId(id),
                    });
                }
            }
        }
    }

    fn receive_pdu(&mut self, now: Instant, from: SocketAddr, pdu: Pdu) {
        if let Err(e) = pdu.validate(&self.cfg.parse.limits) {
            self.violation(from, Violation::BadHeader(e));
            return;
        }
        if pdu.is_request() && pdu.version_major() != Some(1) {
            self.violation(from, Violation::UnsupportedVersion);
            self.refuse(now, &pdu, from, 505, "Version Not Supported");
            return;
        }
        // Resumption handshakes bypass the Seq streams (see `resume`).
        if let Some(id) = self.resume_reply_for(&pdu) {
            self.resume_answered(now, from, id, pdu);
            return;
        }
        if pdu.method() == Some("REG") {
            if let Ok(Some(id)) = pdu.session_id() {
                let id = id.to_owned();
                self.server_resume(now, from, pdu, id);
                return;
            }
        }
        let seq = pdu.seq().ok().flatten();
        // A REG that asks for a mode opens (or re-opens) a session.
        if pdu.method() == Some("REG") && pdu.request_session_mode().ok().flatten().is_some() {
            self.server_reg(now, from, pdu);
            return;
        }
        let sid = match self.route(from, pdu.session_id().ok().flatten()) {
            paths::Route::Session(sid) => Some(sid),
            paths::Route::Plain => None,
            r if self.answers_ours(&pdu, &r) => None,
            r => return self.unknown_session(now, from, &pdu, r), // SPEC §9
        };
        match (sid, seq) {
            (Some(sid), Some(seq)) => self.session_receive(now, sid, from, seq, pdu),
            (Some(sid), None) if pdu.is_nack() => {
                // SPEC §10: a NACK may carry no Seq of its own.
                self.seqless_nack(now, sid, from, &pdu);
                self.dispatch(now, from, Some(sid), pdu);
            }
            _ => {
                if pdu.method() == Some("BYE") {
                    // A BYE for a session we no longer hold: acknowledge it
                    // so the peer stops retransmitting.
                    self.send_ack(&pdu, from, None);
                    return;
                }
                self.dispatch(now, from, None, pdu);
            }
        }
    }

    /// Reply to a request outside any session and remember nothing.
    fn refuse<B: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        pdu: &PduView<B>,
        from: SocketAddr,
        status: u16,
        text: &'static str,
    ) {
        self.refuse_in(now, pdu, from, None, status, text);
    }

    /// [`Endpoint::refuse`] inside `session` when given: the refusal takes
    /// the session's next Seq, as any answer in an ordered session must.
    fn refuse_in<B: AsRef<[u8]>>(
        &mut self,
        _now: Instant,
        pdu: &PduView<B>,
        from: SocketAddr,
        session: Option<u64>,
        status: u16,
        text: &'static str,
    ) {
        let mut r = PduBuilder::static_reply(status, text);
        if let Ok(Some(tx)) = pdu.tx_id() {
            let _ = r.set_value(&H_TX_ID, Bytes::from(tx.to_owned()));
        }
        if let Ok(Some(m)) = pdu.message_id() {
            let _ = r.set_value(&H_ACK_MESSAGE_ID, Bytes::from(m.to_owned()));
        }
        let mid = self.new_id("m");
        let _ = r.set_value(&H_MESSAGE_ID, Bytes::from(mid));
        let to = pdu.from().ok().flatten().map(|i| i.to_string());
        self.stamp_addressing(&mut r, to.as_deref());
        let dest = reply_dest(pdu, from);
        let session = session.filter(|s| self.sessions.contains_key(s));
        self.send_pdu(session, r, dest, SentKind::Other);
    }

    /// Build and send the ACK for `pdu`; returns the encoded ACK.
    fn send_ack(&mut self, pdu: &Pdu, from: SocketAddr, session: Option<u64>) -> Bytes {
        let mut a = PduBuilder::ack();
        if let Ok(Some(tx)) = pdu.tx_id() {
            let _ = a.set_value(&H_TX_ID, Bytes::from(tx.to_owned()));
        }
        let mid = self.new_id("m");
        let _ = a.set_value(&H_MESSAGE_ID, Bytes::from(mid));
        if let Ok(Some(m)) = pdu.message_id() {
            let _ = a.set_value(&H_ACK_MESSAGE_ID, Bytes::from(m.to_owned()));
        }
        let to = pdu.from().ok().flatten().map(|i| i.to_string());
        self.stamp_addressing(&mut a, to.as_deref());
        let dest = ack_dest(pdu, from);
        self.send_pdu(session, a, dest, SentKind::Other).1
    }

    /// A PDU with a Seq for a known session.
    fn session_receive(&mut self, now: Instant, sid: u64, from: SocketAddr, seq: u64, pdu: Pdu) {
        let limits = self.cfg.limits;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.last_activity = now;
        // Echoing the Session-ID proves the address (`admission`).
        let proof =
            s.session_id.is_some() && pdu.session_id().ok().flatten() == s.session_id.as_deref();
        if proof {
            self.session_confirmed(sid);
        } else if from == s.peer {
            self.session_active(sid); // no proof: see `admission`
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        // Control information acts on arrival, before ordering: waiting for
        // order here could deadlock two sides that both have gaps.
        if let Ok(Some(a)) = pdu.ack_seq() {
            trace!(session = sid, seq, ack_seq = a, "ack-seq");
            let before = s.peer_acked;
            if !s.peer_holds_through(a) {
                let next = s.next_out;
                self.violation(from, Violation::NeedSeqNeverSent { seq: a, next });
            } else if before.is_none_or(|b| a > b) {
                self.ack_progress(now, sid); // the resend window opens again
            }
        }
        self.retransmit_needed(now, sid, from, &pdu);
        if let Ok(Some(IgnoreSeq::List(list))) = pdu.ignore_seq() {
            self.ignore_seqs(now, sid, from, &list);
        }
        if pdu.method() == Some("BYE") && matches!(pdu.ignore_seq(), Ok(Some(IgnoreSeq::All))) {
            // Authoritative: forget every missing Seq and end the session.
            self.send_ack(&pdu, from, Some(sid));
            self.drop_session(sid, CloseReason::PeerCannotRetransmit);
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let next = *s.next_in.get_or_insert(seq);
        match s.mode {
            SessionMode::Unordered => {
                let (new, folded) = s.mark_seen(seq, limits.max_seen_ranges);
                if folded {
                    self.emit(Event::LimitReached {
                        limit: EngineLimit::SeenRanges,
                        peer: Some(from),
                    });
                }
                if new {
                    self.dispatch(now, from, Some(sid), pdu);
                } else {
                    self.duplicate(now, from, &pdu);
                }
            }
            SessionMode::Ordered => {
                if seq < next {
                    self.duplicate(now, from, &pdu);
                    return;
                }
                if seq > next {
                    if seq - next > limits.max_seq_ahead {
                        self.violation(
                            from,
                            Violation::SeqTooFarAhead {
                                seq,
                                expected: next,
                            },
                        );
                        return;
                    }
                    let old_max = s.reorder.last_key_value().map(|(k, _)| *k);
                    if s.reorder.contains_key(&seq) {
                        self.stats.duplicates += 1;
                        return;
                    }
                    let room = s.reorder.len() < limits.max_reorder_pdus;
                    if s.reorder.is_empty() {
                        s.gap_progress_at = now; // a gap opens: its budget starts
                    }
                    // Over the memory budget the PDU is dropped like one
                    // over the count: a later NACK asks for it again.
                    let held = room && s.hold(seq, pdu);
                    if !held {
                        let limit = if room {
                            EngineLimit::MemoryBudget
                        } else {
                            EngineLimit::ReorderBuffer
                        };
                        self.emit(Event::LimitReached {
                            limit,
                            peer: Some(from),
                        });
                    }
                    // Decision (SPEC §8 "immediately"): a new gap is NACKed
                    // at once while the round trip is unknown; once it is
                    // known, when a second PDU arrives beyond the gap or a
                    // quarter round trip has passed, whichever is first
                    // (TCP's duplicate threshold with QUIC's time
                    // threshold), so a PDU that was only reordered can close
                    // it first. A second PDU takes the paced path below,
                    // which sends at once when no NACK went yet. An
                    // unchanged gap is paced. A dropped PDU opens no gap the
                    // NACK could name: it only re-asks for the old ones.
                    let new_gap = held && old_max.map_or(seq > next, |m| seq > m + 1);
                    let Some(s) = self.sessions.get_mut(&sid) else {
                        return;
                    };
                    let wait = s.reorder_allowance();
                    if new_gap && !wait.is_zero() {
                        if s.new_gap_at.is_none() {
                            s.new_gap_at = Some(now + wait);
                            self.wake_session(sid, now + wait);
                        }
                        return;
                    }
                    self.nack(now, sid, new_gap);
                    return;
                }
                self.deliver_in_order(now, sid, from, pdu);
            }
        }
    }

    /// Process `pdu` (the next expected Seq) and everything held behind it.
    fn deliver_in_order(&mut self, now: Instant, sid: u64, from: SocketAddr, pdu: Pdu) {
        let mut current = Some(pdu);
        while let Some(p) = current.take() {
            let Some(s) = self.sessions.get_mut(&sid) else {
                return;
            };
            s.next_in = Some(s.next_in.unwrap_or(0) + 1);
            s.skip_ignored(); // Seqs the peer said it will never send
            let n = s.next_in.unwrap_or(0);
            s.nack_rounds = 0;
            s.gap_progress_at = now;
            self.dispatch(now, from, Some(sid), p);
            current = self.sessions.get_mut(&sid).and_then(|s| s.take_held(n));
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            if s.reorder.is_empty() {
                // An emptied BTreeMap keeps its node (kilobytes of PDU
                // slots): free it, or every session that once had a gap
                // keeps it while idle.
                s.reorder = Default::default();
            } else {
                self.nack(now, sid, false);
            }
        }
    }

    /// A PDU we already processed: answer it again if it asks for an answer.
    fn duplicate(&mut self, _now: Instant, from: SocketAddr, pdu: &Pdu) {
        self.stats.duplicates += 1;
        if pdu.is_request() {
            if let Some(key) = request_key(pdu) {
                if let Some(&id) = self.in_by_key.get(&(from, key)) {
                    self.resend_in(id);
                }
            }
        } else if pdu.status().is_some_and(|s| s >= 200) {
            if let Ok(Some(tx)) = pdu.tx_id() {
                if let Some((dest, ack)) = self.done_out.get(tx).cloned() {
                    self.push(dest, ack);
                }
            }
        }
    }

    /// Resend what a duplicate request deserves: the reply if we gave one,
    /// else the ACK.
    fn resend_in(&mut self, id: u64) {
        let Some(t) = self.in_txs.get(&id) else {
            return;
        };
        let out = match &t.state {
            // A reply not kept (memory budget) gets the ACK again.
            InState::Replied { payload, .. } if !payload.is_empty() => {
                Some((t.reply_dest, payload.clone()))
            }
            _ => t.ack.clone().map(|a| (t.ack_dest, a)),
        };
        if let Some((dest, p)) = out {
            self.push(dest, p);
        }
    }

    /// Act on a PDU: its turn has come (or it is outside any session).
    fn dispatch(&mut self, now: Instant, from: SocketAddr, session: Option<u64>, pdu: Pdu) {
        match pdu.status() {
            None => self.incoming_request(now, from, session, pdu),
            Some(0) => self.incoming_ack(now, from, session, &pdu),
            Some(1) => self.incoming_nack(now, from, session, &pdu),
            Some(_) => self.incoming_reply(now, from, session, pdu),
        }
    }

    fn incoming_request(&mut self, now: Instant, from: SocketAddr, session: Option<u64>, pdu: Pdu) {
        let key = request_key(&pdu);
        if let Some(k) = &key {
            if let Some(&id) = self.in_by_key.get(&(from, k.clone())) {
                self.stats.duplicates += 1;
                self.resend_in(id);
                return;
            }
        }
        if self.cfg.require_from_to
            && (pdu.from().ok().flatten().is_none() || pdu.to().ok().flatten().is_none())
        {
            self.violation(from, Violation::MissingAddressing);
            self.refuse(now, &pdu, from, 400, "From and To Required");
            return;
        }
        if !self.make_room_in(now, from) {
            self.refuse_in(now, &pdu, from, session, 503, "Busy");
            return;
        }
        let ack = self.send_ack(&pdu, from, session);
        let id = self.handle();
        let expired = pdu
            .expires_at()
            .ok()
            .flatten()
            .is_some_and(|t| t < self.unix_now(now));
        let is_bye = pdu.method() == Some("BYE");
        let state = if expired || is_bye {
            InState::Closed
        } else {
            InState::Waiting
        };
        let key = (from, key.unwrap_or_else(|| format!("#{id}")));
        let attempt = pdu.attempt().ok().flatten();
        self.remember_in(
            now,
            id,
            InTx {
                ack: Some(ack),
                state,
                ..InTx::of(&pdu, from, key, session)
            },
            attempt,
        );
        if expired {
            debug!(%from, "expired message not acted on");
            self.emit(Event::Expired {
                peer: from,
                session: session.map(SessionHandle),
            });
            return;
        }
        if is_bye {
            if let Some(sid) = session {
                self.drop_session(sid, CloseReason::PeerClosed);
            }
            return;
        }
        // Hashes checked, segments reassembled (`transfer`): only a whole,
        // intact request is delivered.
        let Some(pdu) = self.accept_request(now, from, session, id, pdu) else {
            return;
        };
        self.emit(Event::RequestReceived {
            id: IncomingId(id),
            peer: from,
            session: session.map(SessionHandle),
            pdu,
        });
    }

    fn find_out(&self, pdu: &Pdu) -> Option<u64> {
        let tx = pdu.tx_id().ok().flatten()?;
        self.out_by_tx.get(tx).copied()
    }

    fn incoming_ack(&mut self, now: Instant, from: SocketAddr, session: Option<u64>, pdu: &Pdu) {
        // The ACK of one segment of a segmented request (`transfer`).
        if self.segment_ack(now, pdu) {
            return;
        }
        let ack_mid = pdu.ack_message_id().ok().flatten();
        // Our request? (An ACK without TX-ID, as in the BYE example, matches
        // the session's pending BYE.)
        let out = self.find_out(pdu).or_else(|| {
            let sid = session?;
            self.out_txs
                .iter()
                .find(|(_, t)| t.session == Some(sid) && t.kind == OutKind::Bye)
                .map(|(id, _)| *id)
        });
        if let Some(id) = out {
            let Some(t) = self.out_txs.get(&id) else {
                return;
            };
            if ack_mid.is_some_and(|m| m != t.message_id) {
                return; // acknowledges nothing we know: ignored (SPEC §4)
            }
            self.out_acked(now, id);
            return;
        }
        // Our reply, or an ACK that arrives before we replied.
        let Some(tx) = pdu.tx_id().ok().flatten() else {
            return;
        };
        let Some(&id) = self.in_by_key.get(&(from, format!("t:{tx}"))) else {
            return;
        };
        let Some(t) = self.in_txs.get_mut(&id) else {
            return;
        };
        match &mut t.state {
            InState::Replied {
                message_id,
                acked,
                seq,
                attempt,
                sent_at,
                ..
            } => {
                if ack_mid.is_some_and(|m| m != message_id) {
                    return;
                }
                // Naming our unpredictable Message-ID proves the address.
                let proof = ack_mid.is_some();
                *acked = true;
                let sample = (*attempt == 1).then(|| now.saturating_duration_since(*sent_at));
                let (seq, sess) = (*seq, t.session);
                t.deadline = None;
                self.in_acked(id);
                if let (true, Some(sid)) = (proof, sess) {
                    self.session_confirmed(sid);
                }
                if let (Some(seq), Some(sid)) = (seq, sess) {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.release(seq);
                        if let Some(sample) = sample {
                            s.observe_rtt(sample);
                        }
                    }
                }
            }
            InState::Waiting => {
                t.state = InState::Closed;
                self.in_acked(id);
                self.emit(Event::ReplyNotWanted { id: IncomingId(id) });
            }
            InState::Closed => {}
        }
    }

    /// The peer acknowledged request `id` (ACK or reply-as-ACK).
    fn out_acked(&mut self, now: Instant, id: u64) {
        let Some(t) = self.out_txs.get_mut(&id) else {
            return;
        };
        if t.acked {
            return;
        }
        t.acked = true;
        let (kind, session, seq) = (t.kind, t.session, t.seq);
        // Karn: only an answer to a request sent once measures the round trip.
        let sample = (t.attempt == 1).then(|| now.saturating_duration_since(t.sent_at));
        if let (Some(seq), Some(sid)) = (seq, session) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.release(seq);
                if let Some(sample) = sample {
                    s.observe_rtt(sample);
                }
            }
        }
        if kind == OutKind::Bye {
            self.finish_out(id);
            if let Some(sid) = session {
                self.drop_session(sid, CloseReason::Local);
            }
            return;
        }
        if kind == OutKind::Segment {
            self.segment_acked(now, id, sample); // the next segment goes (`transfer`)
            return;
        }
        self.emit(Event::Acked {
            request: RequestId(id),
        });
        let wait = self
            .out_txs
            .get(&id)
            .and_then(|t| t.builder.get_header("Timeout"))
            .and_then(|v| crate::wire::typed::timeout_value(v))
            .unwrap_or(self.cfg.reply_timeout);
        self.set_out_deadline(id, Some(now + wait));
    }

    fn finish_out(&mut self, id: u64) -> Option<OutTx> {
        let t = self.out_txs.remove(&id)?;
        self.out_by_tx.remove(&t.tx_id);
        if let (OutKind::App, Some(sid)) = (t.kind, t.session) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.in_flight = s.in_flight.saturating_sub(1);
                if !s.queued.is_empty() {
                    self.window_opened.push(sid);
                }
            }
        }
        self.segments_finished(id); // stop a segmented request's segments
        Some(t)
    }

    fn incoming_nack(&mut self, _now: Instant, from: SocketAddr, session: Option<u64>, pdu: &Pdu) {
        // A NACK restating Request-Session-Mode rejects the mode we agreed to.
        let Ok(Some(requested)) = pdu.request_session_mode() else {
            return;
        };
        let Some(sid) = session else { return };
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        if s.role == Role::Server {
            let agreed = s.mode;
            debug!(%from, ?requested, ?agreed, "client rejected the session mode");
            self.drop_session(sid, CloseReason::ModeMismatch { requested, agreed });
        }
    }

    fn incoming_reply(&mut self, now: Instant, from: SocketAddr, session: Option<u64>, pdu: Pdu) {
        // A reply whose hash does not match is dropped unacknowledged (`transfer`).
        if !self.reply_intact(from, session, &pdu) {
            return;
        }
        let Some(id) = self.find_out(&pdu) else {
            self.duplicate(now, from, &pdu);
            return;
        };
        let lost = self.seqless_answer(from, id, &pdu); // SPEC §9
                                                        // A reply to part of a segmented request (`transfer`, SPEC §10).
        if self.segment_reply(now, id, from, session, &pdu) {
            return;
        }
        let status = pdu.status().unwrap_or(0);
        let reply_as_ack = self
            .out_txs
            .get(&id)
            .is_some_and(|t| pdu.ack_message_id().ok().flatten() == Some(t.message_id.as_str()));
        if reply_as_ack || status >= 200 {
            self.out_acked(now, id);
        }
        if status < 200 {
            self.emit(Event::Provisional {
                request: RequestId(id),
                pdu,
            });
            return;
        }
        let Some(t) = self.finish_out(id) else { return };
        if t.kind == OutKind::Reg {
            self.reg_answered(from, t, pdu);
            return;
        }
        let ack = self.send_ack(&pdu, from, session);
        self.remember_done(t.tx_id, ack_dest(&pdu, from), ack);
        self.emit(Event::ReplyReceived {
            request: RequestId(id),
            pdu,
        });
        if let Some(sid) = lost {
            self.session_lost(sid, status);
        }
    }

    fn remember_done(&mut self, tx: String, dest: SocketAddr, ack: Bytes) {
        let max = self.cfg.limits.max_pending_requests.max(1);
        while self.done_out.len() >= max {
            match self.done_out_order.pop_front() {
                Some(old) => {
                    self.done_out.remove(&old);
                }
                None => break,
            }
        }
        self.done_out_order.push_back(tx.clone());
        self.done_out.insert(tx, (dest, ack));
    }

    /// Client side: the final reply to our `REG`.
    fn reg_answered(&mut self, from: SocketAddr, t: OutTx, pdu: Pdu) {
        let Some(sid) = t.session else { return };
        let status = pdu.status().unwrap_or(0);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let requested = s.mode;
        if status >= 300 {
            let ack = self.send_ack(&pdu, from, Some(sid));
            self.remember_done(t.tx_id, ack_dest(&pdu, from), ack);
            self.drop_session(sid, CloseReason::Refused { status });
            return;
        }
        // Decision: a 2xx without Set-Session-Mode agrees to the request.
        let agreed = pdu.set_session_mode().ok().flatten().unwrap_or(requested);
        if let Ok(Some(id)) = pdu.session_id() {
            s.session_id = Some(id.to_owned());
            self.session_by_id.insert(id.to_owned(), sid);
        }
        if let Some(token) = pdu
            .header(names::CHANNEL_TOKEN)
            .and_then(|t| std::str::from_utf8(t).ok())
        {
            s.channel_token = Some(token.to_owned());
        }
        if agreed != requested {
            let mut n = PduBuilder::nack();
            let _ = n.set_value(&H_TX_ID, Bytes::from(t.tx_id.clone()));
            let _ = n.set_value(
                &H_REQ_MODE,
                Bytes::from_static(requested.as_str().as_bytes()),
            );
            self.stamp_addressing(&mut n, None);
            self.send_pdu(Some(sid), n, t.dest, SentKind::Other);
            self.drop_session(sid, CloseReason::ModeMismatch { requested, agreed });
            return;
        }
        let ack = self.send_ack(&pdu, from, Some(sid));
        self.remember_done(t.tx_id, ack_dest(&pdu, from), ack);
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.state = State::Open;
        let (peer, session_id) = (s.peer, s.session_id.clone());
        debug!(session = sid, %peer, ?agreed, "session open");
        self.emit(Event::SessionOpened {
            session: SessionHandle(sid),
            peer,
            mode: agreed,
            session_id,
        });
    }

    /// Server side: a `REG` with `Request-Session-Mode`.
    fn server_reg(&mut self, now: Instant, from: SocketAddr, pdu: Pdu) {
        let Some(tx) = request_key(&pdu) else {
            self.violation(
                from,
                Violation::BadHeader(crate::wire::ParseError {
                    kind: crate::wire::ErrorKind::InvalidValue(crate::wire::Field::TxId),
                    offset: 0,
                    expected: "TX-ID or Message-ID on REG",
                }),
            );
            return;
        };
        if let Some(&id) = self.in_by_key.get(&(from, tx.clone())) {
            // A retransmitted REG: answer it again.
            self.stats.duplicates += 1;
            self.resend_in(id);
            return;
        }
        // A new REG from a peer with a session: the client starts over.
        if let Some(old) = self.session_by_peer.get(&from).copied() {
            self.drop_session(old, CloseReason::PeerClosed);
        }
        // Shares and totals; half-open sessions go first (`admission`).
        if let Err(limit) = self.admit_session(from) {
            self.emit(Event::LimitReached {
                limit,
                peer: Some(from),
            });
            self.refuse(now, &pdu, from, 503, "Too Many Sessions");
            return;
        }
        if !self.make_room_in(now, from) {
            self.refuse(now, &pdu, from, 503, "Too Many Sessions");
            return;
        }
        let requested = pdu
            .request_session_mode()
            .ok()
            .flatten()
            .unwrap_or(SessionMode::Ordered);
        let agreed = match self.cfg.mode_policy {
            super::config::ModePolicy::AgreeRequested => requested,
            super::config::ModePolicy::Force(m) => m,
        };
        let sid = self.handle();
        let mut s = Session::new(from, Role::Server, agreed, now, &self.budget);
        s.state = State::Open;
        s.next_in = Some(pdu.seq().ok().flatten().map_or(0, |q| q.saturating_add(1)));
        let session_id = self.new_session_id();
        s.session_id = Some(session_id.clone());
        let token = self.new_session_id();
        s.channel_token = Some(token.clone());
        self.sessions.insert(sid, s);
        self.session_by_peer.insert(from, sid);
        self.session_by_id.insert(session_id.clone(), sid);
        self.wake_session(sid, now + self.cfg.session_idle_timeout);
        // ACK (Seq 0 of our stream), then the final reply with the mode.
        // When the unproven address's budget cannot hold both, the reply
        // stands in for the ACK (SPEC §4, §9; see `paths`).
        let ack = self
            .room_for_separate_ack(from)
            .then(|| self.send_ack(&pdu, from, Some(sid)));
        let id = self.handle();
        let attempt = pdu.attempt().ok().flatten();
        self.remember_in(
            now,
            id,
            InTx {
                ack,
                ..InTx::of(&pdu, from, (from, tx), Some(sid))
            },
            attempt,
        );
        self.session_admitted(now, sid, from, Some(id)); // half-open until confirmed
        let mut ok = PduBuilder::static_reply(200, "OK");
        let _ = ok.set_value(&H_SET_MODE, Bytes::from_static(agreed.as_str().as_bytes()));
        // The one-time token a second channel presents to join (seed 002).
        let _ = ok.set_value(&H_CHANNEL_TOKEN, Bytes::from(token));
        let _ = self.respond(now, IncomingId(id), ok);
        debug!(session = sid, %from, ?agreed, "session accepted");
        self.emit(Event::SessionOpened {
            session: SessionHandle(sid),
            peer: from,
            mode: agreed,
            session_id: Some(session_id),
        });
    }

    /// Retransmit what a `Need-Seq` names, smallest first; work is in
    /// proportion to the PDUs held, never to the width of a range.
    fn retransmit_needed(&mut self, now: Instant, sid: u64, from: SocketAddr, pdu: &Pdu) {
        let Ok(Some(need)) = pdu.need_seq() else {
            return;
        };
        let need = &need;
        if !self.nack_proven(sid, from, pdu) {
            return; // SPEC §9: a NACK must prove itself
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.mode != SessionMode::Ordered {
            return;
        }
        let holdoff = s.resend_holdoff(self.cfg.retransmit_holdoff);
        let next_out = s.next_out;
        let floor = s.peer_acked.map_or(0, |a| a + 1);
        let mut never_sent = None;
        let mut resend: Vec<(u64, ())> = Vec::new();
        let mut cannot = false;
        for (a, b) in need.ranges() {
            if a >= next_out {
                never_sent.get_or_insert(a);
                break;
            }
            if b >= next_out {
                never_sent.get_or_insert(next_out);
            }
            let b = b.min(next_out - 1);
            let a = a.max(floor);
            if a > b {
                continue;
            }
            let mut held: u64 = 0;
            for (&q, sent) in s.retx.range(a..=b) {
                held += 1;
                // A NACK proves the original was lost; only a resend that a
                // NACK already triggered may still be in flight.
                if sent
                    .last_nack_resend
                    .is_none_or(|t| now.saturating_duration_since(t) >= holdoff)
                {
                    resend.push((q, ()));
                }
            }
            if held < b - a + 1 {
                debug!(session = sid, need = %need, a, b, held, next_out, floor, "NACK asks for PDUs no longer held");
                cannot = true;
                break;
            }
        }
        if let Some(seq) = never_sent {
            self.violation(
                from,
                Violation::NeedSeqNeverSent {
                    seq,
                    next: next_out,
                },
            );
        }
        if cannot {
            self.bye_cannot_retransmit(now, sid);
            return;
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        for (q, _) in resend {
            s.pending_resend.insert(q);
        }
        if !s.pending_resend.is_empty() {
            self.flush_resends(now, sid);
        }
    }

    /// Resend what NACKs asked for and the peer still lacks, smallest first.
    fn flush_resends(&mut self, now: Instant, sid: u64) {
        let max_ranges = self.cfg.limits.max_nack_ranges;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let pending = std::mem::take(&mut s.pending_resend);
        let allowance = self.resend_allowance(now, sid); // SPEC §9: paced
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let gaps = s.gaps(max_ranges);
        let ack_floor = s.ack_floor();
        let peer = s.peer;
        let floor = s.peer_acked.map_or(0, |a| a + 1);
        let mut out = Vec::new();
        let mut deferred = 0;
        for (a, b) in pending.ranges() {
            let a = a.max(floor);
            if a > b {
                continue;
            }
            for (&q, sent) in s.retx.range_mut(a..=b) {
                if out.len() >= allowance {
                    s.pending_resend.insert(q); // the next window
                    deferred += 1;
                    continue;
                }
                sent.last_nack_resend = Some(now);
                let mut b = sent.builder.clone();
                if let Some(a) = ack_floor {
                    b.set_number(&H_ACK_SEQ, a);
                }
                if sent.kind == SentKind::Nack {
                    // A NACK resent to fill its Seq carries today's gaps.
                    b.remove_header("Need-Seq");
                    if !gaps.is_empty() {
                        let _ = b.set_value(&H_NEED_SEQ, Bytes::from(gaps.to_string()));
                    }
                }
                out.push(b.to_bytes());
            }
        }
        let sent = out.len();
        for p in out {
            self.stats.nack_retransmits += 1;
            self.push(peer, p);
        }
        self.resends_spent(sid, sent, deferred);
    }

    /// Send a NACK for the current gaps: at once for a new gap, else paced.
    fn nack(&mut self, now: Instant, sid: u64, new_gap: bool) {
        let max_ranges = self.cfg.limits.max_nack_ranges;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let interval = s.nack_interval(self.cfg.nack_interval, self.cfg.min_nack_interval);
        let gaps = s.gaps(max_ranges);
        if gaps.is_empty() {
            return;
        }
        let due = s.last_nack_at.map_or(now, |t| t + interval);
        if !new_gap && due > now {
            self.wake_session(sid, due);
            return;
        }
        s.last_nack_at = Some(now);
        // Only a re-NACK of a gap already asked for counts as a round
        // without progress; a new gap is news, not a failure.
        if !new_gap {
            s.nack_rounds += 1;
        }
        // SPEC §9 "Loss is not failure": the rounds and a time budget
        // without progress, both spent.
        let budget = self.cfg.paths.gap_budget(&self.cfg.retry);
        let stalled = now.saturating_duration_since(s.gap_progress_at) >= budget;
        if s.nack_rounds > self.cfg.max_nack_rounds && stalled {
            warn!(
                session = sid,
                "gap unfilled after the NACK rounds; ending the session"
            );
            self.bye_cannot_retransmit_reason(now, sid, CloseReason::GapUnfilled);
            return;
        }
        let peer = s.peer;
        debug!(session = sid, gaps = %gaps, next_in = ?s.next_in, held = s.reorder.len(), "NACK");
        let mut n = PduBuilder::nack();
        let _ = n.set_value(&H_NEED_SEQ, Bytes::from(gaps.to_string()));
        self.stamp_addressing(&mut n, None);
        self.stats.nacks_sent += 1;
        self.session_send(sid, n, peer, SentKind::Nack);
        self.wake_session(sid, now + interval);
    }

    fn bye_cannot_retransmit(&mut self, now: Instant, sid: u64) {
        self.bye_cannot_retransmit_reason(now, sid, CloseReason::CannotRetransmit);
    }

    /// End the session with `BYE` + `Ignore-Seq: *` (SPEC §8). The BYE is
    /// retransmitted until ACKed, but the application learns at once.
    fn bye_cannot_retransmit_reason(&mut self, now: Instant, sid: u64, reason: CloseReason) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        let peer = s.peer;
        s.state = State::Closing;
        let mut b = PduBuilder::request_with(Method::BYE, Target::from_static("/"));
        let _ = b.set_value(&H_IGNORE_SEQ, Bytes::from_static(b"*"));
        let tx = self.new_id("t");
        let _ = b.set_value(&H_TX_ID, Bytes::from(tx));
        let mid = self.new_id("m");
        let _ = b.set_value(&H_MESSAGE_ID, Bytes::from(mid));
        // The BYE takes the session's next Seq now, but is kept as a
        // request of no session: dropping the session must not cancel its
        // retransmission (SPEC §6), and its ACK finds it by TX-ID.
        if let Some(s) = self.sessions.get_mut(&sid) {
            b.set_number(&H_SEQ, s.next_out);
            s.next_out += 1;
            if let Some(id) = &s.session_id {
                let _ = b.set_value(&H_SESSION_ID, Bytes::from(id.clone()));
            }
            if let Some(a) = s.ack_floor() {
                b.set_number(&H_ACK_SEQ, a);
            }
        }
        self.drop_session(sid, reason);
        let id = self.handle();
        if self
            .start_request(now, peer, None, b.clone(), OutKind::Bye, id)
            .is_err()
        {
            // Too many requests pending: send it once, unretransmitted.
            self.stamp_addressing(&mut b, None);
            self.push(peer, b.to_bytes());
        }
    }

    /// Forget a session and everything pending in it; tell the application.
    fn drop_session(&mut self, sid: u64, reason: CloseReason) {
        let Some(s) = self.sessions.remove(&sid) else {
            return;
        };
        self.session_released(sid); // its shares (`admission`)
        if self.session_by_peer.get(&s.peer) == Some(&sid) {
            self.session_by_peer.remove(&s.peer);
        }
        if !s.channels.is_empty() {
            // Losing the session closes every channel bound to it (seed 002).
            for c in &s.channels {
                if self.session_by_peer.get(c) == Some(&sid) {
                    self.session_by_peer.remove(c);
                }
            }
            let mut peers = vec![s.peer];
            peers.extend(s.channels.iter().copied());
            self.emit(Event::ChannelsClosed {
                session: SessionHandle(sid),
                peers,
            });
        }
        if let Some(id) = &s.session_id {
            if self.session_by_id.get(id) == Some(&sid) {
                self.session_by_id.remove(id);
            }
        }
        // Replies given in the session stop being retransmitted: their Seqs
        // belong to a stream that no longer exists.
        for t in self.in_txs.values_mut() {
            if t.session == Some(sid) {
                t.deadline = None;
            }
        }
        // Requests still waiting for the window never went out.
        for (id, _) in &s.queued {
            self.events.push_back(Event::RequestTimedOut {
                request: RequestId(*id),
            });
        }
        let pending: Vec<u64> = self
            .out_txs
            .iter()
            .filter(|(_, t)| t.session == Some(sid))
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            if let Some(t) = self.finish_out(id) {
                if t.kind == OutKind::App {
                    self.emit(Event::RequestTimedOut {
                        request: RequestId(id),
                    });
                }
            }
        }
        debug!(session = sid, ?reason, "session closed");
        self.emit(Event::SessionClosed {
            session: SessionHandle(sid),
            reason,
        });
    }

    // ------------------------------------------------------------- timers

    /// Run every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_timers(now);
        self.drain_windows(now);
    }

    fn run_timers(&mut self, now: Instant) {
        self.expire_transfers(now); // partial payloads past their time
        self.expire_replies(now); // answers past their sender's horizon
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.timer_live(at, key) {
                continue;
            }
            match key {
                TimerKey::Out(id) => self.out_timer(now, id),
                TimerKey::In(id) => self.in_timer(now, id),
                TimerKey::Session(id) => self.session_timer(now, id),
            }
        }
    }

    fn out_timer(&mut self, now: Instant, id: u64) {
        let max = self.cfg.retry.max_attempts.max(1);
        let Some(t) = self.out_txs.get(&id) else {
            return;
        };
        // In an ordered session the peer's Ack-Seq may already cover this
        // request: it was processed and its ACK is merely lost (a gap we
        // NACK). Resending would only make a duplicate.
        let covered = !t.acked
            && matches!((t.session, t.seq), (Some(sid), Some(q))
                if self.sessions.get(&sid).is_some_and(|s| s.peer_acked.is_some_and(|a| a >= q)));
        if covered {
            self.out_acked(now, id);
            return;
        }
        // SPEC §9 "Loss is not failure": while the session's peer is heard.
        let more = !t.acked && t.kind == OutKind::App && self.session_alive(now, t.session);
        let Some(t) = self.out_txs.get_mut(&id) else {
            return;
        };
        t.deadline = None;
        if t.acked || (t.attempt >= max && !more) {
            // No final reply in time (acked), or no answer at all.
            let Some(t) = self.finish_out(id) else { return };
            debug!(request = id, tx = %t.tx_id, acked = t.acked, "request timed out");
            match (t.kind, t.session) {
                (OutKind::App, Some(sid)) if !t.acked => {
                    self.emit(Event::RequestTimedOut {
                        request: RequestId(id),
                    });
                    if self
                        .sessions
                        .get(&sid)
                        .is_some_and(|s| s.mode == SessionMode::Ordered)
                    {
                        // The peer is unreachable: order cannot be kept.
                        self.bye_cannot_retransmit_reason(now, sid, CloseReason::Timeout);
                    }
                }
                (OutKind::App, _) => self.emit(Event::RequestTimedOut {
                    request: RequestId(id),
                }),
                (OutKind::Reg | OutKind::Resume, Some(sid)) => {
                    self.drop_session(sid, CloseReason::Timeout)
                }
                (OutKind::Bye, Some(sid)) => self.drop_session(sid, CloseReason::Local),
                (OutKind::Segment, _) => self.segment_failed(now, id), // fails its request
                (_, None) => {}
            }
            return;
        }
        let Some(attempt) = self.resend_out(now, id, max) else {
            return;
        };
        self.stats.timer_retransmits += 1;
        let at = now + self.cfg.retry.interval(attempt);
        self.set_out_deadline(id, Some(at));
    }

    /// Send outgoing transaction `id` again as its next attempt (of `max`):
    /// `Attempt` counted up, `TS`/`Date` of this try (SPEC §6), the
    /// session's current `Ack-Seq`, and the session's retransmission copy
    /// kept equal to what went out. Returns the attempt number; the caller
    /// counts it and sets the timer.
    pub(super) fn resend_out(&mut self, now: Instant, id: u64, max: u32) -> Option<u32> {
        let t = self.out_txs.get_mut(&id)?;
        t.attempt += 1;
        let attempt = t.attempt;
        let _ = t.builder.set_value(
            &H_ATTEMPT,
            Bytes::from(format!("{}/{max}", attempt.min(max))),
        );
        let (dest, session, seq, initiated) = (t.dest, t.session, t.seq, t.initiated);
        let mut b = t.builder.clone();
        self.restamp(now, &mut b);
        if let (Some(sid), Some(seq)) = (session, seq) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                if let Some(a) = s.ack_floor() {
                    b.set_number(&H_ACK_SEQ, a);
                }
                if let Some(sent) = s.retx.get_mut(&seq) {
                    sent.builder = b.clone();
                }
            }
        }
        if initiated {
            self.initiated(|e| e.push(dest, b.to_bytes()));
        } else if self.may_retransmit(dest) {
            self.push(dest, b.to_bytes()); // SPEC §9: only toward a proven address
        }
        Some(attempt)
    }

    fn in_timer(&mut self, now: Instant, id: u64) {
        let max = self.cfg.retry.max_attempts.max(1);
        let alive = self.session_alive(now, self.in_txs.get(&id).and_then(|t| t.session));
        let Some(t) = self.in_txs.get_mut(&id) else {
            return;
        };
        t.deadline = None;
        let dest = t.reply_dest;
        let session = t.session;
        let InState::Replied {
            payload,
            attempt,
            acked: acked @ false,
            seq,
            ..
        } = &mut t.state
        else {
            return;
        };
        if let (Some(sid), Some(q)) = (session, *seq) {
            if let Some(s) = self.sessions.get_mut(&sid) {
                if s.peer_acked.is_some_and(|a| a >= q) {
                    // Processed by the peer (Ack-Seq): its ACK is a gap we NACK.
                    *acked = true;
                    s.release(q);
                    self.in_acked(id);
                    return;
                }
            }
        }
        if *attempt >= max && !alive {
            self.emit(Event::ReplyUnacknowledged { id: IncomingId(id) });
            return;
        }
        *attempt += 1;
        let (p, a) = (payload.clone(), *attempt);
        if self.may_retransmit(dest) {
            // SPEC §9: no timer retransmission toward an unproven address.
            self.stats.timer_retransmits += 1;
            self.push(dest, p);
        }
        let at = now + self.cfg.retry.interval(a);
        self.set_in_deadline(id, Some(at));
    }

    fn session_timer(&mut self, now: Instant, sid: u64) {
        if self.half_open_expired(now, sid) {
            return; // never confirmed (`admission`)
        }
        let idle = self.cfg.session_idle_timeout;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.timer_at = None;
        let idle_at = s.last_activity + idle;
        if idle_at <= now {
            debug!(session = sid, "idle timeout");
            self.drop_session(sid, CloseReason::Idle);
            return;
        }
        let has_gaps = !s.reorder.is_empty();
        if !s.pending_resend.is_empty() {
            self.flush_resends(now, sid); // the next window of paced resends
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        match s.new_gap_at {
            Some(t) if t <= now => {
                s.new_gap_at = None;
                self.nack(now, sid, true);
            }
            Some(t) => self.wake_session(sid, t),
            None if has_gaps => self.nack(now, sid, false),
            None => {}
        }
        self.wake_session(sid, idle_at);
        self.rearm_half_open(sid); // its own, earlier deadline (`admission`)
    }
}

/// The key that makes a request unique (SPEC §6): TX-ID, else Message-ID.
fn request_key(pdu: &Pdu) -> Option<String> {
    let key = match pdu.tx_id() {
        Ok(Some(t)) => Some(format!("t:{t}")),
        _ => pdu.message_id().ok().flatten().map(|m| format!("m:{m}")),
    };
    // Segments share their payload's TX-ID: each is its own transaction.
    match transfer::segment_key_suffix(pdu) {
        Some(suffix) => key.map(|k| k + &suffix),
        None => key,
    }
}

#[cfg(test)]
mod tests {
    use super::Stats;
    use crate::engine::PathStats;

    #[test]
    fn stats_add_field_by_field() {
        let a = Stats {
            transmits: 1,
            timer_retransmits: 2,
            nack_retransmits: 3,
            nacks_sent: 4,
            duplicates: 5,
            malformed: 6,
            fast_retransmits: 7,
            paths: PathStats {
                wrong_path: 8,
                ..PathStats::default()
            },
        };
        let mut sum = a;
        sum += &a;
        assert_eq!(
            sum,
            Stats {
                transmits: 2,
                timer_retransmits: 4,
                nack_retransmits: 6,
                nacks_sent: 8,
                duplicates: 10,
                malformed: 12,
                fast_retransmits: 14,
                paths: PathStats {
                    wrong_path: 16,
                    ..PathStats::default()
                },
            }
        );
    }
}
