//! Who gets in (SPEC §9 "Exactly once needs memory", "Fair shares"): the
//! endpoint's glue to the reply cache's accounting, and the admission of
//! sessions with their half-open table.
//!
//! **Reply cache.** Every remembered incoming transaction is registered in
//! [`ReplyCache`](crate::engine::reply_cache) with its sender's retry
//! horizon; room for a new one is made only by forgetting what is past its
//! horizon or already acknowledged. When none can go, the new transaction
//! is answered `503` and the bound is reported — a young answer is never
//! forgotten, so a retransmission is never processed twice.
//!
//! **Half-open sessions.** A session a `REG` opened is *half-open* until the
//! client proves it receives our PDUs: a PDU carrying the session's
//! `Session-ID`, or an ACK naming our `200`'s `Message-ID` (both
//! unpredictable, sent only to that address). Half-open sessions live in a
//! small table ([`SharesConfig::max_half_open`], per source and prefix
//! shares) with a short timeout ([`SharesConfig::half_open_timeout`]), and
//! are the first to go when a new `REG` needs room: a flood of `REG`s never
//! acknowledged (from forged addresses, say) churns only itself.
//!
//! **Decision: traffic without proof.** Some peers acknowledge with a bare
//! `ACK` and never echo the `Session-ID` (SPEC §10). A half-open session
//! that receives further in-session PDUs from its address is *active*: it
//! stays half-open (first to go under pressure) but the timeout no longer
//! ends it — the idle timeout does. A forged source cannot be told from
//! such a peer, so activity earns no protection from eviction.
//!
//! [`SharesConfig::max_half_open`]: crate::engine::SharesConfig::max_half_open
//! [`SharesConfig::half_open_timeout`]: crate::engine::SharesConfig::half_open_timeout

use super::*;
use crate::budget::MemoryBudget;
use crate::engine::reply_cache::{reply_horizon, request_horizon};
use crate::engine::shares::{Scope, SourceCounts};
use crate::wire::typed::Attempt;
use std::net::IpAddr;

/// Server sessions counted per source, and the half-open ones.
#[derive(Debug, Default)]
pub(super) struct SessionShares {
    sources: SourceCounts,
    source_of: HashMap<u64, IpAddr>,
    /// Half-open sessions: when their opening was answered, and by whom.
    half_open: HashMap<u64, (Instant, IpAddr)>,
    /// The incoming transaction of a half-open session's `REG`, forgotten
    /// with the session if it is never confirmed.
    opening: HashMap<u64, u64>,
    /// Half-open sessions, oldest first (ids since confirmed are skipped).
    order: VecDeque<u64>,
    half_open_sources: SourceCounts,
    /// Half-open sessions that received in-session PDUs without proof.
    active: std::collections::HashSet<u64>,
}

impl Endpoint {
    /// The memory budget every byte held for peers is charged to. Clone it
    /// to charge the same budget from elsewhere (the runtime's TCP queues).
    pub fn memory_budget(&self) -> &MemoryBudget {
        &self.budget
    }

    /// Bytes held for peers now, over every buffer (see [`crate::budget`]).
    pub fn memory_used(&self) -> usize {
        self.budget.used()
    }

    /// Sessions whose opening is not confirmed yet (server side).
    pub fn half_open_sessions(&self) -> usize {
        self.session_shares.half_open.len()
    }

    // ----------------------------------------------------- reply cache

    /// Make room for one more incoming transaction from `from`; false (the
    /// bound reported) when only young answers could make it.
    pub(super) fn make_room_in(&mut self, now: Instant, from: SocketAddr) -> bool {
        let mut gone = Vec::new();
        let res = self.replies.admit(
            now,
            from.ip(),
            self.cfg.limits.max_reply_cache,
            &self.cfg.shares,
            &mut gone,
        );
        self.forget_in(&gone);
        match res {
            Ok(()) => true,
            Err(limit) => {
                debug!(%from, ?limit, "reply cache full of young answers: 503");
                self.emit(Event::LimitReached {
                    limit,
                    peer: Some(from),
                });
                false
            }
        }
    }

    /// Drop the incoming transactions the reply cache let go.
    fn forget_in(&mut self, gone: &[u64]) {
        for id in gone {
            if let Some(t) = self.in_txs.remove(id) {
                self.in_by_key.remove(&t.key);
            }
        }
    }

    /// Forget what is past its horizon (run with the timers).
    pub(super) fn expire_replies(&mut self, now: Instant) {
        let mut gone = Vec::new();
        self.replies.expire(now, &mut gone);
        self.forget_in(&gone);
    }

    /// Remember incoming transaction `id` (room made beforehand with
    /// [`Endpoint::make_room_in`]): by key for duplicates, in the reply
    /// cache for its horizon, from the request's `attempt`.
    pub(super) fn remember_in(&mut self, now: Instant, id: u64, t: InTx, attempt: Option<Attempt>) {
        let cap = self.cfg.shares.max_reply_horizon;
        let mut horizon = request_horizon(&self.cfg.retry, attempt, cap);
        let mut bytes = t.key.1.len() + t.ack.as_ref().map_or(0, Bytes::len);
        let waiting = matches!(t.state, InState::Waiting);
        if let InState::Replied { payload, .. } = &t.state {
            horizon = horizon.max(reply_horizon(&self.cfg.retry, cap));
            bytes += payload.len();
        }
        self.replies
            .insert(id, t.key.0.ip(), bytes, now + horizon, waiting);
        self.in_by_key.insert(t.key.clone(), id);
        self.in_txs.insert(id, t);
    }

    /// The application answered `id` with `payload`: kept for the reply's
    /// retransmissions if the budget has room. False when it has not: the
    /// reply went out once and is not kept (a duplicate gets the ACK).
    pub(super) fn reply_kept(&mut self, now: Instant, id: u64, payload: &Bytes) -> bool {
        let horizon = reply_horizon(&self.cfg.retry, self.cfg.shares.max_reply_horizon);
        let kept = self.replies.answered(id, payload.len(), now + horizon);
        if !kept {
            let peer = self.in_txs.get(&id).map(|t| t.reply_dest);
            warn!(?peer, "memory budget full: reply sent once, not kept");
            self.emit(Event::LimitReached {
                limit: EngineLimit::MemoryBudget,
                peer,
            });
        }
        kept
    }

    /// The requester has the answer to `id` (or wants none): it may be
    /// forgotten when room is needed.
    pub(super) fn in_acked(&mut self, id: u64) {
        self.replies.closed(id);
        self.replies.acked(id);
    }

    // -------------------------------------------------------- sessions

    /// Room for a new server session from `from`: past a share or the
    /// total, the oldest half-open session (the source's own when its
    /// share is the bound) is dropped; when none is half-open, the bound
    /// that refuses is returned and the `REG` is answered `503`.
    pub(super) fn admit_session(&mut self, from: SocketAddr) -> Result<(), EngineLimit> {
        let ip = from.ip();
        let sh = self.cfg.shares;
        while let Some(scope) =
            self.session_shares
                .sources
                .full(ip, sh.sessions_per_source, sh.sessions_per_prefix)
        {
            if !self.evict_half_open(Some((ip, scope))) {
                return Err(match scope {
                    Scope::Source => EngineLimit::SessionsSource,
                    Scope::Prefix => EngineLimit::SessionsPrefix,
                });
            }
        }
        while let Some(scope) = self.session_shares.half_open_sources.full(
            ip,
            sh.half_open_per_source,
            sh.half_open_per_prefix,
        ) {
            if !self.evict_half_open(Some((ip, scope))) {
                break;
            }
        }
        while self.session_shares.half_open.len() >= sh.max_half_open.max(1) {
            if !self.evict_half_open(None) {
                break;
            }
        }
        while self.sessions.len() >= self.cfg.limits.max_sessions {
            if !self.evict_half_open(None) {
                return Err(EngineLimit::Sessions);
            }
        }
        Ok(())
    }

    /// Drop the oldest half-open session (of `ip`'s source or prefix when
    /// given); false when there is none.
    fn evict_half_open(&mut self, of: Option<(IpAddr, Scope)>) -> bool {
        let matches = |other: IpAddr| match of {
            None => true,
            Some((ip, Scope::Source)) => other == ip,
            Some((ip, Scope::Prefix)) => {
                crate::engine::shares::prefix_of(other) == crate::engine::shares::prefix_of(ip)
            }
        };
        let sh = &mut self.session_shares;
        let mut victim = None;
        let mut i = 0;
        while i < sh.order.len() {
            let sid = sh.order[i];
            match sh.half_open.get(&sid) {
                None => {
                    sh.order.remove(i); // confirmed or gone: stale
                }
                Some((_, other)) if matches(*other) => {
                    sh.order.remove(i);
                    victim = Some(sid);
                    break;
                }
                Some(_) => i += 1,
            }
        }
        let Some(sid) = victim else {
            return false;
        };
        let peer = self.sessions.get(&sid).map(|s| s.peer);
        debug!(session = sid, ?peer, "half-open session dropped for room");
        self.emit(Event::LimitReached {
            limit: EngineLimit::HalfOpen,
            peer,
        });
        self.drop_unconfirmed(sid);
        true
    }

    /// End half-open session `sid` (its `REG`'s transaction goes with it:
    /// see [`Endpoint::session_released`]).
    fn drop_unconfirmed(&mut self, sid: u64) {
        self.drop_session(sid, CloseReason::NeverConfirmed);
    }

    /// A server session was opened for `from`: counted for its source and
    /// half-open until confirmed, with its timeout armed.
    pub(super) fn session_admitted(
        &mut self,
        now: Instant,
        sid: u64,
        from: SocketAddr,
        opening: Option<u64>,
    ) {
        let ip = from.ip();
        let sh = &mut self.session_shares;
        if let Some(id) = opening {
            sh.opening.insert(sid, id);
        }
        sh.sources.add(ip);
        sh.source_of.insert(sid, ip);
        sh.half_open.insert(sid, (now, ip));
        sh.half_open_sources.add(ip);
        sh.order.push_back(sid);
        let at = now + self.cfg.shares.half_open_timeout;
        self.wake_session(sid, at);
    }

    /// The peer of session `sid` proved it receives our PDUs.
    pub(super) fn session_confirmed(&mut self, sid: u64) {
        let sh = &mut self.session_shares;
        sh.opening.remove(&sid);
        sh.active.remove(&sid);
        if let Some((_, ip)) = sh.half_open.remove(&sid) {
            sh.half_open_sources.remove(ip);
            debug!(session = sid, "session confirmed");
        }
        // Keep the order queue in proportion to the table.
        if sh.order.len() > 2 * sh.half_open.len() + 64 {
            let live = &sh.half_open;
            sh.order.retain(|s| live.contains_key(s));
        }
    }

    /// Session `sid` is gone: its shares are freed. Still half-open, its
    /// `REG`'s transaction is forgotten too (the client never showed it
    /// received the answer; a retransmitted `REG` opens a new session
    /// rather than being told of one that no longer exists).
    pub(super) fn session_released(&mut self, sid: u64) {
        if let Some(id) = self.session_shares.opening.remove(&sid) {
            if let Some(t) = self.in_txs.remove(&id) {
                self.in_by_key.remove(&t.key);
            }
            self.replies.remove(id);
        }
        self.session_confirmed(sid);
        let sh = &mut self.session_shares;
        if let Some(ip) = sh.source_of.remove(&sid) {
            sh.sources.remove(ip);
        }
    }

    /// Keep the half-open deadline of `sid` armed (a session timer that ran
    /// for another reason re-armed only the idle timeout).
    pub(super) fn rearm_half_open(&mut self, sid: u64) {
        if self.session_shares.active.contains(&sid) {
            return;
        }
        if let Some((at, _)) = self.session_shares.half_open.get(&sid) {
            let due = *at + self.cfg.shares.half_open_timeout;
            self.wake_session(sid, due);
        }
    }

    /// Half-open session `sid` got an in-session PDU from its address that
    /// proves nothing: its half-open timeout no longer applies.
    pub(super) fn session_active(&mut self, sid: u64) {
        let sh = &mut self.session_shares;
        if sh.half_open.contains_key(&sid) {
            sh.active.insert(sid);
        }
    }

    /// True (and the session dropped) when `sid` is half-open past its
    /// timeout.
    pub(super) fn half_open_expired(&mut self, now: Instant, sid: u64) -> bool {
        let timeout = self.cfg.shares.half_open_timeout;
        let due = self
            .session_shares
            .half_open
            .get(&sid)
            .is_some_and(|(at, _)| *at + timeout <= now)
            && !self.session_shares.active.contains(&sid);
        if due {
            debug!(session = sid, "half-open session timed out");
            self.drop_unconfirmed(sid);
        }
        due
    }
}
