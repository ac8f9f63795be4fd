//! Per-address accounting: proof of address and the anti-amplification
//! budget (SPEC §9 "Proof of address").
//!
//! Over UDP a source address can be forged, so bytes received "from" an
//! address prove nothing about who sent them. An address has *proven* that
//! it receives our PDUs once a PDU from it echoes something unpredictable we
//! sent only there (a `Session-ID`, or a `Message-ID`/`TX-ID` of ours; the
//! endpoint decides, see `endpoint::paths`). Until then the node sends it at
//! most [`PathConfig::amplification_factor`] times the bytes received from
//! it (RFC 9000 §8.1), so a forged request can never make this node a
//! weapon against the address it names.
//!
//! This module is the bookkeeping only, free of PDUs and events, so its
//! bound and its ageing can be tested on their own: the [`AddressBook`]
//! holds at most [`PathConfig::max_addresses`] entries and forgets the
//! least recently used one when full.
//!
//! **Decision:** an evicted entry is simply forgotten. A peer in a live
//! session proves itself again with its next PDU (every session PDU
//! carries the `Session-ID`), so eviction costs an honest peer at most the
//! few bytes withheld until then, while an attacker churning the table
//! only ever resets addresses to "unproven, nothing received" — the safe
//! state.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

/// Proof of address, the send budget and resend pacing (a section of
/// [`Config`](super::Config)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathConfig {
    /// Toward an address that has not proven it receives our PDUs, send at
    /// most this many times the bytes received from it. Default 3 (QUIC's
    /// factor). What would exceed it is withheld (counted in
    /// [`PathStats::bytes_withheld`]); the peer's retransmission adds to the
    /// budget and gets the remembered answer.
    pub amplification_factor: u64,
    /// Addresses tracked at once. Default 16,384 (about 1 MiB). When full,
    /// the least recently used entry is forgotten (it becomes "unproven,
    /// nothing received" again).
    pub max_addresses: usize,
    /// PDUs a `Need-Seq` may make us resend per round trip (SPEC §9 "resends
    /// paced"). Default 16. The rest wait for the peer's `Ack-Seq`/ACKs to
    /// advance or for the next round trip.
    pub resend_window: usize,
    /// How long an ordered session keeps asking for an unfilled gap while no
    /// progress is made before it gives up (SPEC §9 "Loss is not failure").
    /// `None` (the default): a request's whole retry budget, the sum of
    /// every retransmission interval of [`RetryPolicy`](super::RetryPolicy)
    /// (15.5 s with the defaults).
    pub gap_budget: Option<Duration>,
}

impl Default for PathConfig {
    fn default() -> Self {
        PathConfig {
            amplification_factor: 3,
            max_addresses: 16_384,
            resend_window: 16,
            gap_budget: None,
        }
    }
}

impl PathConfig {
    /// The gap budget in force: the configured one, else `retry`'s whole
    /// budget (every interval from the first attempt to the last).
    pub fn gap_budget(&self, retry: &super::RetryPolicy) -> Duration {
        self.gap_budget.unwrap_or_else(|| {
            (1..=retry.max_attempts.max(1))
                .map(|a| retry.interval(a))
                .sum()
        })
    }
}

/// Counters of the path rules at work (a section of
/// [`Stats`](super::Stats)): tests assert on these, never on time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Bytes not sent because the destination had not proven its address
    /// and the send would have exceeded its budget.
    pub bytes_withheld: u64,
    /// Datagrams not sent for the same reason.
    pub pdus_withheld: u64,
    /// Timer retransmissions not made because the destination had not
    /// proven its address.
    pub retransmits_withheld: u64,
    /// Bytes sent toward addresses that had not proven themselves (what the
    /// budget allowed).
    pub unproven_bytes_sent: u64,
    /// PDUs that carried a session's `Session-ID` from an address that is
    /// not on the session's path: dropped without touching the session.
    pub wrong_path: u64,
    /// `Need-Seq`s that did not prove themselves (no `Session-ID` of the
    /// session, or no id of ours): no resend.
    pub unproven_nacks: u64,
    /// PDUs carrying a `Session-ID` this node does not know, answered (a
    /// request) with the unknown-session refusal or dropped (an answer).
    pub unknown_session: u64,
    /// PDUs a `Need-Seq` asked for that wait for the next window.
    pub resends_deferred: u64,
    /// Entries the address table forgot because it was full.
    pub addresses_evicted: u64,
}

impl std::ops::AddAssign<&PathStats> for PathStats {
    fn add_assign(&mut self, s: &PathStats) {
        let PathStats {
            bytes_withheld,
            pdus_withheld,
            retransmits_withheld,
            unproven_bytes_sent,
            wrong_path,
            unproven_nacks,
            unknown_session,
            resends_deferred,
            addresses_evicted,
        } = *s;
        self.bytes_withheld += bytes_withheld;
        self.pdus_withheld += pdus_withheld;
        self.retransmits_withheld += retransmits_withheld;
        self.unproven_bytes_sent += unproven_bytes_sent;
        self.wrong_path += wrong_path;
        self.unproven_nacks += unproven_nacks;
        self.unknown_session += unknown_session;
        self.resends_deferred += resends_deferred;
        self.addresses_evicted += addresses_evicted;
    }
}

/// What we know of one remote address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressEntry {
    /// Bytes received from it.
    pub received: u64,
    /// Bytes sent to it while it was unproven.
    pub sent: u64,
    /// It echoed an id we sent only there.
    pub proven: bool,
    last_used: u64,
}

/// The table of remote addresses, bounded, least recently used first out.
#[derive(Debug, Default)]
pub struct AddressBook {
    entries: HashMap<SocketAddr, AddressEntry>,
    by_use: BTreeMap<u64, SocketAddr>,
    tick: u64,
}

impl AddressBook {
    /// Addresses tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No address tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What is known of `addr` (nothing received, unproven, if absent).
    pub fn get(&self, addr: SocketAddr) -> AddressEntry {
        self.entries.get(&addr).copied().unwrap_or_default()
    }

    /// Has `addr` proven it receives our PDUs?
    pub fn is_proven(&self, addr: SocketAddr) -> bool {
        self.entries.get(&addr).is_some_and(|e| e.proven)
    }

    /// The entry of `addr`, created (evicting the least recently used
    /// when `max` are held) and marked used. Returns whether one was evicted.
    fn touch(&mut self, addr: SocketAddr, max: usize) -> (&mut AddressEntry, bool) {
        self.tick += 1;
        let tick = self.tick;
        let mut evicted = false;
        if let Some(e) = self.entries.get(&addr) {
            self.by_use.remove(&e.last_used);
        } else {
            while self.entries.len() >= max.max(1) {
                let Some((_, old)) = self.by_use.pop_first() else {
                    break;
                };
                self.entries.remove(&old);
                evicted = true;
            }
        }
        self.by_use.insert(tick, addr);
        let e = self.entries.entry(addr).or_default();
        e.last_used = tick;
        (e, evicted)
    }

    /// `n` bytes arrived from `addr`. Returns whether an entry was evicted.
    pub fn received(&mut self, addr: SocketAddr, n: usize, max: usize) -> bool {
        let (e, evicted) = self.touch(addr, max);
        e.received = e.received.saturating_add(n as u64);
        evicted
    }

    /// `addr` echoed an id we sent only there. Returns whether an entry was
    /// evicted.
    pub fn prove(&mut self, addr: SocketAddr, max: usize) -> bool {
        let (e, evicted) = self.touch(addr, max);
        e.proven = true;
        evicted
    }

    /// May `n` more bytes go to `addr`? A proven address always; an
    /// unproven one while the total sent stays within `factor` times what
    /// it sent us, in which case the bytes are counted as sent. Returns
    /// (allowed, evicted).
    pub fn try_send(
        &mut self,
        addr: SocketAddr,
        n: usize,
        factor: u64,
        max: usize,
    ) -> (bool, bool) {
        let (e, evicted) = self.touch(addr, max);
        if e.proven {
            return (true, evicted);
        }
        let after = e.sent.saturating_add(n as u64);
        if after > e.received.saturating_mul(factor) {
            return (false, evicted);
        }
        e.sent = after;
        (true, evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn unproven_gets_three_times_what_it_sent() {
        let mut b = AddressBook::default();
        assert_eq!(b.try_send(a(1), 1, 3, 8), (false, false));
        b.received(a(1), 100, 8);
        assert!(b.try_send(a(1), 200, 3, 8).0);
        assert!(b.try_send(a(1), 100, 3, 8).0);
        assert!(!b.try_send(a(1), 1, 3, 8).0, "300 sent for 100 received");
        assert_eq!(b.get(a(1)).sent, 300);
        b.prove(a(1), 8);
        assert!(b.try_send(a(1), 10_000, 3, 8).0);
    }

    #[test]
    fn table_is_bounded_and_forgets_the_least_recently_used() {
        let mut b = AddressBook::default();
        for p in 1..=4 {
            b.received(a(p), 10, 4);
        }
        b.prove(a(1), 4); // a(1) is now the most recently used
        assert!(b.received(a(5), 10, 4), "the fifth address evicts one");
        assert_eq!(b.len(), 4);
        assert!(b.is_proven(a(1)));
        assert_eq!(b.get(a(2)), AddressEntry::default(), "a(2) was oldest");
        for p in 100..1100 {
            b.received(a(p), 1, 4);
        }
        assert_eq!(b.len(), 4);
        assert_eq!(b.by_use.len(), 4);
        assert!(!b.is_proven(a(1)), "forgotten under churn: unproven again");
    }

    #[test]
    fn gap_budget_defaults_to_the_retry_budget() {
        let p = PathConfig::default();
        let r = super::super::RetryPolicy::default();
        let sum: Duration = (1..=r.max_attempts).map(|i| r.interval(i)).sum();
        assert_eq!(p.gap_budget(&r), sum);
        let q = PathConfig {
            gap_budget: Some(Duration::from_secs(2)),
            ..p
        };
        assert_eq!(q.gap_budget(&r), Duration::from_secs(2));
    }
}
