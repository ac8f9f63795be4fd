//! The endpoint's side of SPEC §9: proof of address and the 3x budget on
//! every send, sessions bound to their paths, NACKs that prove themselves,
//! paced resends, unknown sessions answered, Seq-less answers reported.
//!
//! The accounting itself is [`AddressBook`](crate::engine::address): this
//! module decides what proves an address and which sends are answers.
//!
//! **Decisions:**
//! - *What proves an address:* a PDU from it that carries the `Session-ID`
//!   of a session on that path, or the `TX-ID` of a request we sent to that
//!   very address, or an `Ack-Message-ID` equal to the `Message-ID` of our
//!   reply to it. Ids this node generates are 64 (TX-ID, Message-ID) or 128
//!   (Session-ID, Channel-Token) bits from the endpoint's CSPRNG; an
//!   application that supplies its own `TX-ID` should make it unpredictable.
//!   A stream (TCP) peer is proven by its connection's handshake.
//! - *What the endpoint initiates is not answering:* a request, session,
//!   BYE or resume the application starts goes to the destination it chose,
//!   unbudgeted, and so do its timer retransmissions — bounded by the
//!   [`RetryPolicy`](crate::engine::RetryPolicy), never by anything received,
//!   so no inbound byte can multiply them. Everything else (ACKs, replies,
//!   refusals, NACKs, resends, a BYE the engine decides on) is an answer and
//!   is budgeted; a timer retransmission of an answer goes only to a proven
//!   address.
//! - *`Reply-To`/`Ack-To`/`From` naming another address:* that address has its
//!   own entry, with nothing received, so nothing goes there until it proves
//!   itself — unless the PDU carries a `Content-Hash-HMAC-*` that verifies
//!   with the key configured for the transport source in
//!   [`IntegrityConfig::peer_keys`](crate::engine::IntegrityConfig) (a
//!   per-peer key, not the default key): the named addresses are then
//!   vouched for and count as proven.
//! - *Answering a `REG` from an unproven address:* the ACK and the final
//!   reply take about 440 bytes, more than 3x a small `REG` (the seed's is
//!   64 bytes). When the budget left holds less than 512 bytes, the final
//!   reply stands in for the ACK (SPEC §4: it carries the TX-ID and
//!   `Ack-Message-ID`); if even that does not fit it is withheld, and the
//!   client's retransmitted `REG` adds to the budget and gets it.
//! - *Path mismatch:* a PDU carrying a known `Session-ID` from an address
//!   that is neither the session's peer nor one of its channels is dropped
//!   without touching the session; a request among them gets the same
//!   `404 Unknown Session` an unknown id gets (within the budget), so a
//!   prober cannot tell the two apart.
//! - *Unknown `Session-ID` outside a `REG`:* a request is refused
//!   `404 Unknown Session` whatever the [`ResumePolicy`](crate::engine::ResumePolicy) (adopting needs the
//!   client's state, which only the resume `REG` carries; the client then
//!   resumes or opens anew); an ACK, NACK or reply is dropped and counted
//!   (answering an answer could make two nodes loop).
//! - *Retries in a live ordered session:* a request (or reply) whose
//!   attempts are spent keeps being retransmitted, at the longest
//!   interval, while the session's peer was heard from within the gap
//!   budget; `Attempt` stays at `MAX/MAX`. Loss only slows an ordered
//!   session; a peer silent for the whole budget still ends it.
//! - *Seq-less answer in an ordered session (client):* reported as
//!   [`Violation::SeqlessAnswer`]; a `404` one means the peer lost the
//!   session (it restarted), and the session ends with
//!   [`CloseReason::LostByPeer`] so the application can open a new one.

use super::*;
use crate::engine::address::{AddressBook, AddressEntry};
use crate::wire::SeqList;

/// What an ACK and the final reply to a `REG` take together (about 180
/// and 260 bytes, with a Session-ID and a channel token), rounded up.
const REG_ANSWER_BYTES: u64 = 512;

/// The §9 state of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Paths {
    pub book: AddressBook,
    /// True while an application command (or a retransmission of what one
    /// started) sends: the destination was chosen, not answered.
    pub initiating: bool,
}

/// Where a PDU belongs, by its `Session-ID` and source.
pub(super) enum Route {
    /// A session, on its path.
    Session(u64),
    /// No session: a plain transaction.
    Plain,
    /// A known `Session-ID` from an address off the session's path.
    WrongPath,
    /// A `Session-ID` this node does not know.
    Unknown,
}

impl Endpoint {
    // ------------------------------------------------------------ public

    /// Has `addr` proven it receives our PDUs (SPEC §9)?
    pub fn address_proven(&self, addr: SocketAddr) -> bool {
        self.paths.book.is_proven(addr) || self.is_stream_peer(addr)
    }

    /// What the address table holds for `addr`: bytes received, bytes sent
    /// while unproven, proven or not.
    pub fn address_entry(&self, addr: SocketAddr) -> AddressEntry {
        self.paths.book.get(addr)
    }

    /// Addresses tracked (bounded by
    /// [`PathConfig::max_addresses`](crate::engine::PathConfig::max_addresses)).
    pub fn tracked_addresses(&self) -> usize {
        self.paths.book.len()
    }

    // ------------------------------------------------------------ hooks

    /// Run `f` as something the application initiated (see the module docs).
    pub(super) fn initiated<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let was = std::mem::replace(&mut self.paths.initiating, true);
        let r = f(self);
        self.paths.initiating = was;
        r
    }

    fn note_evicted(&mut self, evicted: bool) {
        if evicted {
            self.stats.paths.addresses_evicted += 1;
        }
    }

    /// A PDU of `n` bytes arrived from `from`; mark `from` proven if it
    /// echoes one of our ids, and vouch for addresses an authenticated PDU
    /// names.
    pub(super) fn note_received(&mut self, from: SocketAddr, pdu: &Pdu) {
        let max = self.cfg.paths.max_addresses;
        let e = self.paths.book.received(from, pdu.as_bytes().len(), max);
        self.note_evicted(e);
        if self.paths.book.is_proven(from) {
            return;
        }
        let by_session = pdu.session_id().ok().flatten().is_some_and(|id| {
            self.session_by_id
                .get(id)
                .and_then(|sid| self.sessions.get(sid))
                .is_some_and(|s| s.peer == from || s.channels.contains(&from))
        });
        if by_session || self.echoes_our_id(from, pdu) {
            trace!(%from, "address proven");
            let e = self.paths.book.prove(from, max);
            self.note_evicted(e);
        }
        self.vouch_named(from, pdu);
    }

    /// Does `pdu` echo a TX-ID or Message-ID we sent to `from`?
    pub(super) fn echoes_our_id(&self, from: SocketAddr, pdu: &Pdu) -> bool {
        let Some(tx) = pdu.tx_id().ok().flatten() else {
            return false;
        };
        let ack_mid = pdu.ack_message_id().ok().flatten();
        if let Some(t) = self.out_by_tx.get(tx).and_then(|id| self.out_txs.get(id)) {
            if t.dest == from {
                return true; // our TX-ID, sent only there
            }
        }
        let Some(m) = ack_mid else { return false };
        self.in_by_key
            .get(&(from, format!("t:{tx}")))
            .and_then(|id| self.in_txs.get(id))
            .is_some_and(|t| {
                t.reply_dest == from
                    && matches!(&t.state, InState::Replied { message_id, .. } if message_id == m)
            })
    }

    /// `Reply-To`/`Ack-To`/`From` of a PDU authenticated with `from`'s own
    /// HMAC key are vouched for (proven).
    fn vouch_named(&mut self, from: SocketAddr, pdu: &Pdu) {
        let named: Vec<SocketAddr> = [pdu.ack_to(), pdu.reply_to(), pdu.from()]
            .into_iter()
            .filter_map(|r| r.ok().flatten().and_then(|i| i.socket_addr()))
            .filter(|a| *a != from && !self.paths.book.is_proven(*a))
            .collect();
        if named.is_empty() {
            return;
        }
        let Some(key) = self.cfg.integrity.peer_keys.get(&from) else {
            return;
        };
        use crate::engine::integrity::verify;
        use crate::wire::HashScope;
        let keyed = verify(pdu, HashScope::Content, pdu.body(), Some(key));
        let plain = verify(pdu, HashScope::Content, pdu.body(), None);
        if !keyed.ok() || keyed.verified <= plain.verified {
            return;
        }
        let max = self.cfg.paths.max_addresses;
        for a in named {
            debug!(%from, named = %a, "address vouched for by an authenticated PDU");
            let e = self.paths.book.prove(a, max);
            self.note_evicted(e);
        }
    }

    /// May `len` bytes go to `dest` now? Counts what the budget withholds.
    pub(super) fn may_send(&mut self, dest: SocketAddr, len: usize) -> bool {
        if self.paths.initiating || self.is_stream_peer(dest) {
            return true;
        }
        let (factor, max) = (
            self.cfg.paths.amplification_factor,
            self.cfg.paths.max_addresses,
        );
        let proven = self.paths.book.is_proven(dest);
        let (ok, evicted) = self.paths.book.try_send(dest, len, factor, max);
        self.note_evicted(evicted);
        if !ok {
            self.stats.paths.bytes_withheld += len as u64;
            self.stats.paths.pdus_withheld += 1;
            debug!(%dest, len, "withheld: address not proven and over its budget");
        } else if !proven {
            self.stats.paths.unproven_bytes_sent += len as u64;
        }
        ok
    }

    /// Bytes `dest` may still receive from us now (`u64::MAX` if proven).
    pub(super) fn budget_left(&self, dest: SocketAddr) -> u64 {
        if self.paths.initiating || self.address_proven(dest) {
            return u64::MAX;
        }
        let e = self.paths.book.get(dest);
        let factor = self.cfg.paths.amplification_factor;
        e.received.saturating_mul(factor).saturating_sub(e.sent)
    }

    /// Does the budget toward `dest` hold a separate ACK of a `REG` beside
    /// the final reply? Else the reply stands in for the ACK.
    pub(super) fn room_for_separate_ack(&self, dest: SocketAddr) -> bool {
        self.budget_left(dest) >= REG_ANSWER_BYTES
    }

    /// May a timer retransmit an answer toward `dest`? Only if proven.
    pub(super) fn may_retransmit(&mut self, dest: SocketAddr) -> bool {
        if self.address_proven(dest) {
            return true;
        }
        self.stats.paths.retransmits_withheld += 1;
        false
    }

    /// Where a PDU from `from` with Session-ID `id` belongs. A session
    /// without an id yet (a client learning it) is found by its peer.
    pub(super) fn route(&self, from: SocketAddr, id: Option<&str>) -> Route {
        if let Some(id) = id {
            if let Some(sid) = self.session_by_id.get(id) {
                return match self.sessions.get(sid) {
                    Some(s) if s.peer == from || s.channels.contains(&from) => Route::Session(*sid),
                    Some(_) => Route::WrongPath,
                    None => Route::Unknown,
                };
            }
        }
        let Some(&sid) = self.session_by_peer.get(&from) else {
            return if id.is_some() {
                Route::Unknown
            } else {
                Route::Plain
            };
        };
        match (self.sessions.get(&sid).map(|s| &s.session_id), id) {
            (None, _) => Route::Plain,
            (Some(Some(mine)), Some(theirs)) if mine != theirs => Route::Unknown,
            _ => Route::Session(sid),
        }
    }

    /// An answer naming a session we no longer hold that answers one of
    /// our requests (the ACK of the BYE that ended it): processed plainly.
    pub(super) fn answers_ours(&self, pdu: &Pdu, r: &Route) -> bool {
        matches!(r, Route::Unknown) && pdu.status().is_some() && self.find_out(pdu).is_some()
    }

    /// A PDU off its session's path, or naming a session we do not know:
    /// nothing changes; a request gets `404 Unknown Session` (SPEC §8).
    pub(super) fn unknown_session(&mut self, now: Instant, from: SocketAddr, pdu: &Pdu, r: Route) {
        if matches!(r, Route::WrongPath) {
            self.stats.paths.wrong_path += 1;
            debug!(%from, "Session-ID from off the session's path: dropped");
        } else {
            self.stats.paths.unknown_session += 1;
            debug!(%from, policy = ?self.cfg.resume_policy, "unknown Session-ID");
        }
        if pdu.is_request() {
            self.refuse(now, pdu, from, 404, "Unknown Session");
        }
    }

    /// May this `Need-Seq` make us resend? It must carry the session's
    /// `Session-ID` (or, for a session without one, echo an id of ours)
    /// and come from the session's path.
    pub(super) fn nack_proven(&mut self, sid: u64, from: SocketAddr, pdu: &Pdu) -> bool {
        let Some(s) = self.sessions.get(&sid) else {
            return false;
        };
        let on_path = s.peer == from || s.channels.contains(&from);
        let ok = on_path
            && match &s.session_id {
                Some(mine) => pdu.session_id().ok().flatten() == Some(mine.as_str()),
                None => self.echoes_our_id(from, pdu),
            };
        if !ok {
            self.stats.paths.unproven_nacks += 1;
            debug!(session = sid, %from, "Need-Seq without proof: no resend");
        }
        ok
    }

    /// Client: an answer to request `id` without a `Seq` although the
    /// request went in an ordered session. Reported; returns the session
    /// to end when the answer says the peer lost it (404).
    pub(super) fn seqless_answer(&mut self, from: SocketAddr, id: u64, pdu: &Pdu) -> Option<u64> {
        if pdu.seq().ok().flatten().is_some() {
            return None;
        }
        let t = self.out_txs.get(&id)?;
        let sid = t.session?;
        if t.kind != OutKind::App
            || self
                .sessions
                .get(&sid)
                .is_none_or(|s| s.mode != SessionMode::Ordered)
        {
            return None;
        }
        let status = pdu.status().unwrap_or(0);
        self.violation(from, Violation::SeqlessAnswer { status });
        (status == 404).then_some(sid)
    }

    /// Client: the peer lost the session (a `404` without `Seq`): end it
    /// and tell the application.
    pub(super) fn session_lost(&mut self, sid: u64, status: u16) {
        warn!(
            session = sid,
            status, "peer does not know the session (restarted?)"
        );
        self.drop_session(sid, CloseReason::LostByPeer { status });
    }

    /// Resend pacing: how many PDUs may go now for NACKs, starting a new
    /// round when a round trip has passed. `spent` is what goes now.
    pub(super) fn resend_allowance(&mut self, now: Instant, sid: u64) -> usize {
        let window = self.cfg.paths.resend_window.max(1);
        let holdoff = self.cfg.retransmit_holdoff;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return 0;
        };
        let rtt = s.srtt.unwrap_or(holdoff).max(Duration::from_millis(1));
        if s.resend_round_at
            .is_none_or(|t| now.saturating_duration_since(t) >= rtt)
        {
            s.resend_round_at = Some(now);
            s.resent_in_round = 0;
        }
        window.saturating_sub(s.resent_in_round)
    }

    /// After a paced flush: count what went and, if PDUs wait, wake the
    /// session for the next round.
    pub(super) fn resends_spent(&mut self, sid: u64, sent: usize, deferred: usize) {
        let holdoff = self.cfg.retransmit_holdoff;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.resent_in_round += sent;
        if deferred == 0 {
            return;
        }
        self.stats.paths.resends_deferred += deferred as u64;
        let rtt = s.srtt.unwrap_or(holdoff).max(Duration::from_millis(1));
        if let Some(at) = s.resend_round_at.map(|t| t + rtt) {
            self.wake_session(sid, at);
        }
    }

    /// The peer's `Ack-Seq` advanced: its window of resends opens again.
    pub(super) fn ack_progress(&mut self, now: Instant, sid: u64) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.resent_in_round = 0;
        s.resend_round_at = Some(now);
        if !s.pending_resend.is_empty() {
            self.flush_resends(now, sid);
        }
    }

    /// Is `session` an open ordered session whose peer was heard from
    /// within the gap budget? Its requests and replies then keep being
    /// retransmitted past their attempts (SPEC §9 "Loss is not failure":
    /// only slower); a silent peer still ends it after the budget.
    pub(super) fn session_alive(&self, now: Instant, session: Option<u64>) -> bool {
        let budget = self.cfg.paths.gap_budget(&self.cfg.retry);
        session
            .and_then(|sid| self.sessions.get(&sid))
            .is_some_and(|s| {
                s.mode == SessionMode::Ordered
                    && s.state == State::Open
                    && now.saturating_duration_since(s.last_activity) < budget
            })
    }

    /// `Ignore-Seq` with a list: stop waiting for those Seqs and deliver
    /// what was held behind them.
    pub(super) fn ignore_seqs(&mut self, now: Instant, sid: u64, from: SocketAddr, list: &SeqList) {
        let max = self.cfg.limits.max_nack_ranges;
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if s.mode != SessionMode::Ordered || !s.ignore(list, max) {
            return;
        }
        debug!(session = sid, %list, "Ignore-Seq: gap forgotten");
        let next = s.next_in.unwrap_or(0);
        if let Some(p) = s.reorder.remove(&next) {
            self.deliver_in_order(now, sid, from, p);
        }
    }
}
