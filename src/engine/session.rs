//! Per-session state: the two Seq streams and their bounded buffers.
//!
//! Kept free of transmission and events so its invariants can be tested on
//! their own: the endpoint decides what to send, this decides what is held.

use super::config::EngineLimits;
use crate::budget::{BufferKind, Charge, MemoryBudget};
use crate::wire::{Pdu, PduBuilder, SeqList, SessionMode};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

/// Which side opened the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Client,
    Server,
}

/// Lifecycle of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Client: `REG` sent, final reply not yet processed.
    Opening,
    Open,
    /// `BYE` sent, waiting for its ACK.
    Closing,
}

/// What kind of PDU a buffered Seq holds (a NACK is refreshed when resent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SentKind {
    Other,
    Nack,
}

/// A PDU kept for NACK-driven retransmission.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub builder: PduBuilder,
    pub len: usize,
    pub kind: SentKind,
    /// When a NACK last made us resend it (`None`: only the original send).
    pub last_nack_resend: Option<Instant>,
}

/// One session (SPEC §8).
#[derive(Debug)]
pub(crate) struct Session {
    pub peer: SocketAddr,
    pub role: Role,
    pub state: State,
    /// Requested mode until the reply agrees; then the agreed mode.
    pub mode: SessionMode,
    pub session_id: Option<String>,
    // ---- our stream
    pub next_out: u64,
    pub retx: BTreeMap<u64, Sent>,
    pub retx_bytes: usize,
    /// The peer's cumulative `Ack-Seq`: it holds all our Seqs up to this.
    pub peer_acked: Option<u64>,
    pub retx_limit_reported: bool,
    // ---- the peer's stream
    /// Next Seq to process (ordered) — `None` until the peer's start is known.
    pub next_in: Option<u64>,
    pub reorder: BTreeMap<u64, Pdu>,
    /// Unordered mode: every Seq below `seen_floor` or in `seen` was processed.
    pub seen: SeqList,
    pub seen_floor: u64,
    pub last_nack_at: Option<Instant>,
    pub nack_rounds: u32,
    pub last_activity: Instant,
    pub timer_at: Option<Instant>,
    /// Least round-trip time seen, from PDUs answered on their first try.
    pub srtt: Option<std::time::Duration>,
    /// Seqs a NACK asked for, about to be resent.
    pub pending_resend: SeqList,
    /// When a newly seen gap is to be NACKed (after the reorder allowance).
    pub new_gap_at: Option<Instant>,
    /// Application requests sent in this session and not yet finished.
    pub in_flight: usize,
    /// Application requests waiting for the window: (request id, PDU).
    pub queued: std::collections::VecDeque<(u64, PduBuilder)>,
    /// Further channels (connections) bound to the session with a token.
    pub channels: Vec<SocketAddr>,
    /// Server: the one-time token a second channel presents to join.
    /// Client: the token the server issued.
    pub channel_token: Option<String>,
    // ---- SPEC §9 (see `endpoint::paths`)
    /// When the current round of NACK-driven resends began.
    pub resend_round_at: Option<Instant>,
    /// PDUs resent for NACKs in the current round.
    pub resent_in_round: usize,
    /// Last progress on the peer's stream (a delivery, or a gap opening):
    /// the gap budget counts from here.
    pub gap_progress_at: Instant,
    /// Seqs of the peer's stream it told us to forget (`Ignore-Seq` list).
    pub ignored: SeqList,
    /// `retx_bytes`, charged to the memory budget (released on drop).
    pub retx_charge: Charge,
    /// The bytes of the PDUs in `reorder`, charged to the memory budget.
    pub reorder_charge: Charge,
    /// A memory-budget refusal was reported for this session (once).
    pub budget_reported: bool,
}

impl Session {
    pub fn new(
        peer: SocketAddr,
        role: Role,
        mode: SessionMode,
        now: Instant,
        budget: &MemoryBudget,
    ) -> Self {
        Session {
            peer,
            role,
            state: State::Opening,
            mode,
            session_id: None,
            next_out: 0,
            retx: BTreeMap::new(),
            retx_bytes: 0,
            peer_acked: None,
            retx_limit_reported: false,
            next_in: None,
            reorder: BTreeMap::new(),
            seen: SeqList::new(),
            seen_floor: 0,
            last_nack_at: None,
            nack_rounds: 0,
            last_activity: now,
            timer_at: None,
            srtt: None,
            pending_resend: SeqList::new(),
            new_gap_at: None,
            in_flight: 0,
            queued: std::collections::VecDeque::new(),
            channels: Vec::new(),
            channel_token: None,
            resend_round_at: None,
            resent_in_round: 0,
            gap_progress_at: now,
            ignored: SeqList::new(),
            retx_charge: budget.charge_from(BufferKind::Retransmit, peer.ip()),
            reorder_charge: budget.charge_from(BufferKind::Reorder, peer.ip()),
            budget_reported: false,
        }
    }

    /// Hold an out-of-order PDU if the memory budget has room for it;
    /// false (nothing held) if not.
    pub fn hold(&mut self, seq: u64, pdu: Pdu) -> bool {
        if !self.reorder_charge.try_grow(pdu.as_bytes().len()) {
            return false;
        }
        if let Some(old) = self.reorder.insert(seq, pdu) {
            self.reorder_charge.shrink(old.as_bytes().len());
        }
        true
    }

    /// Take the held PDU for `seq`, if any.
    pub fn take_held(&mut self, seq: u64) -> Option<Pdu> {
        let p = self.reorder.remove(&seq)?;
        self.reorder_charge.shrink(p.as_bytes().len());
        Some(p)
    }

    /// Forget every held and kept PDU (a resumed session starts its
    /// streams again).
    pub fn clear_buffers(&mut self) {
        self.reorder = BTreeMap::new();
        self.retx = BTreeMap::new();
        self.retx_bytes = 0;
        self.sync_charges();
    }

    /// Make the budget charges follow what is held (after frees).
    fn sync_charges(&mut self) {
        let held = self.retx_bytes;
        let charged = self.retx_charge.bytes();
        if charged > held {
            self.retx_charge.shrink(charged - held);
        }
        if self.reorder.is_empty() {
            let r = self.reorder_charge.bytes();
            self.reorder_charge.shrink(r);
        }
    }

    /// The Seq to put in `Ack-Seq`: everything of the peer's up to it was processed.
    pub fn ack_floor(&self) -> Option<u64> {
        match self.mode {
            SessionMode::Ordered => self.next_in.and_then(|n| n.checked_sub(1)),
            SessionMode::Unordered => {
                let floor = match self.seen.ranges().next() {
                    Some((a, b)) if a <= self.seen_floor => b + 1,
                    _ => self.seen_floor,
                };
                floor.checked_sub(1)
            }
        }
    }

    /// Keep a sent PDU; returns (evicted, kept): evicted when a bound
    /// forced the oldest out, kept false when the memory budget had no room
    /// for it (it is then sent without a copy: a NACK for it ends the
    /// session with `BYE` + `Ignore-Seq: *`, both sides told).
    pub fn keep(&mut self, seq: u64, sent: Sent, limits: &EngineLimits) -> (bool, bool) {
        if !self.retx_charge.try_grow(sent.len) {
            return (false, false);
        }
        self.retx_bytes += sent.len;
        if let Some(old) = self.retx.insert(seq, sent) {
            self.retx_bytes -= old.len;
        }
        let mut evicted = false;
        while self.retx.len() > limits.max_retx_pdus || self.retx_bytes > limits.max_retx_bytes {
            match self.retx.pop_first() {
                Some((_, s)) => {
                    self.retx_bytes -= s.len;
                    evicted = true;
                }
                None => break,
            }
        }
        self.sync_charges();
        (evicted, true)
    }

    /// Keep the least round-trip sample: in an ordered session an answer
    /// can wait behind a gap, so larger samples measure queueing, not the
    /// path, and would stretch every timer derived from them.
    pub fn observe_rtt(&mut self, sample: std::time::Duration) {
        self.srtt = Some(self.srtt.map_or(sample, |s| s.min(sample)));
    }

    /// How long a PDU resent for a NACK counts as still in flight: a bit
    /// over one round trip, never more than the configured hold-off.
    pub fn resend_holdoff(&self, configured: std::time::Duration) -> std::time::Duration {
        match self.srtt {
            Some(r) => (r + r / 4).min(configured),
            None => configured,
        }
    }

    /// How long a new gap may stay open before it is NACKed if no second
    /// PDU arrives beyond it: a quarter of the least round trip, so a PDU
    /// that was only reordered closes it first. Zero while the round trip
    /// is unknown (NACK at once).
    pub fn reorder_allowance(&self) -> std::time::Duration {
        self.srtt.map_or(std::time::Duration::ZERO, |r| r / 4)
    }

    /// Least time between NACKs for an unchanged gap: two round trips
    /// once the round trip is known, within `[floor, configured]`.
    pub fn nack_interval(
        &self,
        configured: std::time::Duration,
        floor: std::time::Duration,
    ) -> std::time::Duration {
        match self.srtt {
            Some(r) => (r * 2).max(floor).min(configured),
            None => configured,
        }
    }

    /// Forget one sent PDU (its transaction completed).
    pub fn release(&mut self, seq: u64) {
        if let Some(s) = self.retx.remove(&seq) {
            self.retx_bytes -= s.len;
        }
        self.free_if_empty();
        self.sync_charges();
    }

    /// An emptied BTreeMap keeps its node (eleven `Sent` slots, kilobytes):
    /// free it, or every idle session keeps one.
    fn free_if_empty(&mut self) {
        if self.retx.is_empty() {
            self.retx = BTreeMap::new();
        }
    }

    /// The peer holds everything up to `seq`: free it. Returns false if
    /// `seq` names something we never sent.
    pub fn peer_holds_through(&mut self, seq: u64) -> bool {
        if seq >= self.next_out {
            return false;
        }
        if self.peer_acked.is_some_and(|p| p >= seq) {
            return true;
        }
        self.peer_acked = Some(seq);
        while let Some(entry) = self.retx.first_entry() {
            if *entry.key() > seq {
                break;
            }
            let s = entry.remove();
            self.retx_bytes -= s.len;
        }
        self.free_if_empty();
        self.sync_charges();
        true
    }

    /// Missing Seqs of the peer's stream (ordered mode), oldest first, at
    /// most `max_ranges` ranges. Work is in proportion to the PDUs held.
    pub fn gaps(&self, max_ranges: usize) -> SeqList {
        let mut out = SeqList::new();
        let Some(mut next) = self.next_in else {
            return out;
        };
        for &k in self.reorder.keys() {
            if out.range_count() >= max_ranges {
                break;
            }
            if k > next {
                self.insert_unignored(&mut out, next, k - 1);
            }
            next = k + 1;
        }
        out
    }

    /// Insert `a..=b` into `out` minus what the peer told us to ignore.
    fn insert_unignored(&self, out: &mut SeqList, a: u64, b: u64) {
        let mut lo = a;
        for (x, y) in self.ignored.ranges() {
            if y < lo || x > b {
                continue;
            }
            if x > lo {
                out.insert_range(lo, x - 1);
            }
            match y.checked_add(1) {
                Some(n) => lo = n,
                None => return,
            }
            if lo > b {
                return;
            }
        }
        out.insert_range(lo, b);
    }

    /// The peer will never send `list` (`Ignore-Seq`): stop waiting for the
    /// ones not yet processed, at most `max_ranges` ranges remembered (the
    /// rest stay gaps and are asked for again). Moves `next_in` past
    /// ignored Seqs; true if it moved.
    pub fn ignore(&mut self, list: &SeqList, max_ranges: usize) -> bool {
        let Some(next) = self.next_in else {
            return false;
        };
        for (a, b) in list.ranges() {
            if b < next {
                continue;
            }
            if self.ignored.range_count() >= max_ranges {
                break;
            }
            self.ignored.insert_range(a.max(next), b);
        }
        self.skip_ignored()
    }

    /// Move `next_in` past ignored Seqs that are not held; true if it moved.
    pub fn skip_ignored(&mut self) -> bool {
        let Some(mut n) = self.next_in else {
            return false;
        };
        let start = n;
        while self.ignored.contains(n) && !self.reorder.contains_key(&n) {
            self.ignored.remove_through(n);
            match n.checked_add(1) {
                Some(m) => n = m,
                None => break,
            }
        }
        self.next_in = Some(n);
        n != start
    }

    /// Unordered mode: record `seq` as processed; false if it was already.
    /// Returns (new, folded) where folded tells a bound moved the floor.
    pub fn mark_seen(&mut self, seq: u64, max_ranges: usize) -> (bool, bool) {
        if seq < self.seen_floor || self.seen.contains(seq) {
            return (false, false);
        }
        self.seen.insert(seq);
        // Fold a first range that starts at the floor into the floor.
        let first = self.seen.ranges().next();
        if let Some((a, b)) = first {
            if a <= self.seen_floor {
                self.seen_floor = b + 1;
                self.seen.remove_through(b);
            }
        }
        let mut folded = false;
        while self.seen.range_count() > max_ranges {
            let first = self.seen.ranges().next();
            let (_, b) = first.unwrap_or((0, 0));
            self.seen_floor = b + 1;
            self.seen.remove_through(b);
            folded = true;
        }
        (true, folded)
    }
}
