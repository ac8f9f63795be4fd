//! Client polling (SPEC §9 "a peer that lost our reply retransmits its
//! request and gets the cached answer").
//!
//! Toward an address that has not proven it receives our PDUs the server
//! runs no timer retransmission, so outside a session a final reply lost
//! after its ACK would never come again. The requester therefore keeps
//! polling: once a request outside any session is acknowledged, and while
//! its final reply has not come, it is sent again — unchanged except
//! `TS`, `Date` and `Attempt` (SPEC §6) — on the retry schedule, until the
//! reply comes, the attempts of the [`RetryPolicy`](crate::engine::RetryPolicy)
//! are spent, or the reply deadline (`Timeout`, else
//! [`Config::reply_timeout`](crate::engine::Config::reply_timeout)) passes.
//! Each copy is an honest duplicate: the server answers it from its reply
//! cache (or with the ACK again while its application is still working)
//! and never delivers it twice; its bytes add to the requester's budget.
//!
//! A segmented request polls with its last acknowledged segment: the
//! server answers a duplicate segment of a payload it has answered with
//! that payload's reply.
//!
//! **Decision:** polling is for requests outside a session only. In a
//! session the client proves its address with every PDU (its
//! `Session-ID`), so the server's own retransmissions reach it.

use super::*;

impl Endpoint {
    /// Does request `t` poll for its reply once acknowledged?
    fn polls(t: &OutTx) -> bool {
        t.session.is_none() && t.kind == OutKind::App
    }

    /// When the timer of acknowledged request `t` fires next: its next
    /// poll, or its reply deadline `by` when it polls no more.
    fn next_poll(&self, now: Instant, t: &OutTx, by: Instant) -> Instant {
        if Self::polls(t) && t.attempt < self.cfg.retry.max_attempts.max(1) {
            (now + self.cfg.retry.interval(t.attempt)).min(by)
        } else {
            by
        }
    }

    /// Request `id` was acknowledged at `now` and its final reply is due by
    /// `by`: arm its timer (a poll first, if it polls).
    pub(super) fn await_reply(&mut self, now: Instant, id: u64, by: Instant) {
        let Some(t) = self.out_txs.get_mut(&id) else {
            return;
        };
        t.reply_by = Some(by);
        let Some(t) = self.out_txs.get(&id) else {
            return;
        };
        let at = self.next_poll(now, t, by);
        self.set_out_deadline(id, Some(at));
    }

    /// The timer of acknowledged request `id` fired at `now`. True when it
    /// was a poll (the request went again, or waits on for its deadline);
    /// false when the reply deadline has passed (the request times out).
    pub(super) fn poll_reply(&mut self, now: Instant, id: u64) -> bool {
        let Some(t) = self.out_txs.get(&id) else {
            return false;
        };
        let Some(by) = t.reply_by.filter(|by| now < *by) else {
            return false;
        };
        if self.next_poll(now, t, by) < by {
            let max = self.cfg.retry.max_attempts.max(1);
            if self.resend_out(now, id, max).is_none() {
                return false;
            }
            self.stats.reply_polls += 1;
            self.stats.timer_retransmits += 1;
            trace!(request = id, "final reply polled for");
        }
        let Some(t) = self.out_txs.get(&id) else {
            return false;
        };
        let at = self.next_poll(now, t, by);
        self.set_out_deadline(id, Some(at));
        true
    }

    /// A segmented request `parent` has every segment acknowledged, the
    /// last being `last`: that segment is what it polls with.
    pub(super) fn poll_with_segment(&mut self, parent: u64, last: PduBuilder) {
        if let Some(t) = self.out_txs.get_mut(&parent) {
            t.builder = last;
        }
    }

    /// Server side: answer a duplicate `pdu` of incoming transaction `id`
    /// with what [`Endpoint::resend_in`] gives. A duplicate segment of a
    /// payload already answered gets its ACK again (the requester may have
    /// lost it, and a reply naming another segment does not stand in for
    /// it) and then the payload's reply (a polling requester, see the
    /// module docs).
    pub(super) fn answer_duplicate(&mut self, from: SocketAddr, pdu: &Pdu, id: u64) {
        let whole = transfer::segment_key_suffix(pdu)
            .and(transfer::whole_key(pdu))
            .and_then(|k| self.in_by_key.get(&(from, k)).copied())
            .filter(|w| {
                self.in_txs
                    .get(w)
                    .is_some_and(|t| matches!(t.state, InState::Replied { .. }))
            });
        self.resend_in(id);
        if let Some(w) = whole {
            self.resend_in(w);
        }
    }
}
