//! Exactly once needs memory (SPEC §9): the bookkeeping of the reply cache.
//!
//! Every incoming transaction the endpoint remembers (for duplicate
//! suppression and reply retransmission) is registered here by id with its
//! source, its bytes and its *horizon*: how long its sender may still
//! retransmit it. This module decides what may be forgotten and when a new
//! transaction must be refused instead; the endpoint holds the transactions
//! themselves and removes the ids this module gives back.
//!
//! An entry is *young* while its sender may still retransmit: until its
//! horizon passes, and until its answer has been acknowledged. Young
//! entries are never forgotten to make room — when the cache (or the
//! source's share of it, or the memory budget) is full of them, the new
//! transaction is answered `503`. An entry whose answer was acknowledged
//! has reached its sender, which stops retransmitting: it is kept while
//! there is room (a delayed copy of the request still finds its answer)
//! and forgotten first, oldest acknowledgement first, when room is needed.
//! An entry past its horizon is forgotten at once, unless the application
//! has not answered it yet (it holds the id).
//!
//! **Decision: the horizon.** A request carrying `Attempt: N/MAX` may be
//! sent again after each of its remaining waits; with our
//! [`RetryPolicy`](super::RetryPolicy)'s backoff (the sender's own is not on
//! the wire) that is `Σ interval(k)` for `k = N..=MAX` (the last wait
//! included: a last copy may still be in flight), without the header the
//! same from `1/max_attempts`, capped by
//! [`SharesConfig::max_reply_horizon`](super::SharesConfig::max_reply_horizon).
//! Once answered, the entry also lives through our own reply's
//! retransmissions (`Σ interval(k)` for `k = 1..=max_attempts`), during
//! which the requester, missing the reply, may retransmit.

use super::config::RetryPolicy;
use super::event::EngineLimit;
use super::shares::{Scope, SharesConfig, SourceCounts};
use crate::budget::{BufferKind, MemoryBudget};
use crate::wire::typed::Attempt;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Bytes charged per remembered transaction on top of the encoded PDUs it
/// keeps (its key, ids and table slots), so empty requests are not free.
pub const ENTRY_OVERHEAD: usize = 256;

/// Room a new transaction must find in the memory budget (and in its
/// source's share of it) to be admitted.
const ADMIT_BYTES: usize = crate::budget::MIN_ROOM;

#[derive(Debug)]
struct Meta {
    ip: IpAddr,
    bytes: usize,
    expires: Instant,
    waiting: bool,
    acked: bool,
}

/// The reply cache's accounting: shares, horizons, the evictable order and
/// its charge to the memory budget.
#[derive(Debug)]
pub(crate) struct ReplyCache {
    meta: HashMap<u64, Meta>,
    sources: SourceCounts,
    expiry: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Acknowledged entries, oldest acknowledgement first (ids of entries
    /// since removed are skipped when met).
    evictable: VecDeque<u64>,
    evictable_by_ip: HashMap<IpAddr, VecDeque<u64>>,
    /// Each entry's bytes are charged on behalf of its source.
    budget: MemoryBudget,
}

impl Drop for ReplyCache {
    fn drop(&mut self) {
        for m in self.meta.values() {
            self.budget
                .release_from(BufferKind::ReplyCache, m.ip, m.bytes);
        }
    }
}

/// The sender's retry horizon for a request (see the module docs).
pub(crate) fn request_horizon(
    retry: &RetryPolicy,
    attempt: Option<Attempt>,
    cap: Duration,
) -> Duration {
    // Without a stated maximum (`Retry-Attempt: N`, SPEC §10) the sender
    // is taken to use our own attempt limit.
    let default_max = u64::from(retry.max_attempts.max(1));
    let (cur, max) = match attempt {
        Some(a) => {
            let cur = a.current.max(1);
            (cur, a.max.unwrap_or(default_max).max(cur))
        }
        None => (1, default_max),
    };
    sum_intervals(retry, cur, max, cap)
}

/// How long our reply is retransmitted (see the module docs).
pub(crate) fn reply_horizon(retry: &RetryPolicy, cap: Duration) -> Duration {
    sum_intervals(retry, 1, u64::from(retry.max_attempts.max(1)), cap)
}

fn sum_intervals(retry: &RetryPolicy, from: u64, to: u64, cap: Duration) -> Duration {
    let mut d = Duration::ZERO;
    for k in from..=to {
        d += retry.interval(u32::try_from(k).unwrap_or(u32::MAX));
        if d >= cap {
            return cap;
        }
    }
    d
}

impl ReplyCache {
    pub fn new(budget: &MemoryBudget) -> Self {
        ReplyCache {
            meta: HashMap::new(),
            sources: SourceCounts::default(),
            expiry: BinaryHeap::new(),
            evictable: VecDeque::new(),
            evictable_by_ip: HashMap::new(),
            budget: budget.clone(),
        }
    }

    /// Entries remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Make room for one more transaction from `ip`, or say which bound
    /// refuses it. Forgets what is past its horizon, then acknowledged
    /// entries (the source's own when its share is the bound). Returns the
    /// ids forgotten: the caller drops those transactions.
    pub fn admit(
        &mut self,
        now: Instant,
        ip: IpAddr,
        max_total: usize,
        shares: &SharesConfig,
        gone: &mut Vec<u64>,
    ) -> Result<(), EngineLimit> {
        self.expire(now, gone);
        while let Some(scope) = self.sources.full(
            ip,
            shares.reply_cache_per_source,
            shares.reply_cache_per_prefix,
        ) {
            if !self.evict_of(ip, gone) {
                return Err(match scope {
                    Scope::Source => EngineLimit::ReplyCacheSource,
                    Scope::Prefix => EngineLimit::ReplyCachePrefix,
                });
            }
        }
        while self.meta.len() >= max_total {
            if !self.evict_any(gone) {
                return Err(EngineLimit::ReplyCache);
            }
        }
        let share = self.budget.per_source();
        while share.saturating_sub(self.budget.used_from(ip)) < ADMIT_BYTES {
            if !self.evict_of(ip, gone) {
                return Err(EngineLimit::MemoryBudget);
            }
        }
        while self.budget.available() < ADMIT_BYTES {
            if !self.evict_any(gone) {
                return Err(EngineLimit::MemoryBudget);
            }
        }
        Ok(())
    }

    /// Register transaction `id` from `ip`, holding `bytes`, young until
    /// `expires`; `waiting` while the application has not answered. False
    /// when the budget refused its bytes (it is registered uncharged).
    pub fn insert(
        &mut self,
        id: u64,
        ip: IpAddr,
        bytes: usize,
        expires: Instant,
        waiting: bool,
    ) -> bool {
        self.compact_expiry();
        let bytes = bytes + ENTRY_OVERHEAD;
        let charged = self
            .budget
            .try_charge_from(BufferKind::ReplyCache, ip, bytes);
        self.sources.add(ip);
        self.expiry.push(Reverse((expires, id)));
        self.meta.insert(
            id,
            Meta {
                ip,
                bytes: if charged { bytes } else { 0 },
                expires,
                waiting,
                acked: false,
            },
        );
        charged
    }

    /// Transaction `id` was answered with `bytes` more to keep, and stays
    /// young at least until `expires`. False when the budget refused the
    /// bytes: nothing more is charged and the caller must not keep them.
    pub fn answered(&mut self, id: u64, bytes: usize, expires: Instant) -> bool {
        let Some(m) = self.meta.get_mut(&id) else {
            return false;
        };
        m.waiting = false;
        if expires > m.expires {
            m.expires = expires;
        }
        self.expiry.push(Reverse((m.expires, id)));
        let ok = self
            .budget
            .try_charge_from(BufferKind::ReplyCache, m.ip, bytes);
        if ok {
            m.bytes += bytes;
        }
        ok
    }

    /// The application will not answer `id` (closed, expired): it no longer
    /// waits, so its horizon applies.
    pub fn closed(&mut self, id: u64) {
        if let Some(m) = self.meta.get_mut(&id) {
            m.waiting = false;
            self.expiry.push(Reverse((m.expires, id)));
        }
    }

    /// The answer to `id` was acknowledged: its sender has it, so the entry
    /// may be forgotten when room is needed.
    pub fn acked(&mut self, id: u64) {
        let Some(m) = self.meta.get_mut(&id) else {
            return;
        };
        if m.acked {
            return;
        }
        m.acked = true;
        let ip = m.ip;
        self.evictable.push_back(id);
        self.evictable_by_ip.entry(ip).or_default().push_back(id);
        self.compact(ip);
    }

    /// Forget `id` (the caller removed the transaction).
    pub fn remove(&mut self, id: u64) {
        if let Some(m) = self.meta.remove(&id) {
            self.sources.remove(m.ip);
            self.budget
                .release_from(BufferKind::ReplyCache, m.ip, m.bytes);
            if self.sources.of(m.ip) == 0 {
                self.evictable_by_ip.remove(&m.ip);
            }
        }
    }

    /// Ids past their horizon and not awaiting the application, forgotten.
    pub fn expire(&mut self, now: Instant, gone: &mut Vec<u64>) {
        while let Some(Reverse((at, id))) = self.expiry.peek().copied() {
            if at > now {
                break;
            }
            self.expiry.pop();
            let due = self
                .meta
                .get(&id)
                .is_some_and(|m| m.expires == at && !m.waiting);
            if due {
                self.remove(id);
                gone.push(id);
            }
        }
    }

    fn evictable_now(&self, id: u64) -> bool {
        self.meta.get(&id).is_some_and(|m| m.acked)
    }

    fn evict_any(&mut self, gone: &mut Vec<u64>) -> bool {
        while let Some(id) = self.evictable.pop_front() {
            if self.evictable_now(id) {
                self.remove(id);
                gone.push(id);
                return true;
            }
        }
        false
    }

    fn evict_of(&mut self, ip: IpAddr, gone: &mut Vec<u64>) -> bool {
        loop {
            let Some(id) = self
                .evictable_by_ip
                .get_mut(&ip)
                .and_then(|q| q.pop_front())
            else {
                return false;
            };
            if self.evictable_now(id) {
                self.remove(id);
                gone.push(id);
                return true;
            }
        }
    }

    /// Drop the expiry items of forgotten entries once they are most of
    /// the heap: entries acknowledged and evicted long before their horizon
    /// would otherwise leave an item each until that horizon.
    fn compact_expiry(&mut self) {
        if self.expiry.len() > 2 * self.meta.len() + 1024 {
            let meta = &self.meta;
            self.expiry
                .retain(|Reverse((at, id))| meta.get(id).is_some_and(|m| m.expires == *at));
        }
    }

    /// Drop stale ids from the evictable queues once they are mostly stale,
    /// so their length stays in proportion to the live entries.
    fn compact(&mut self, ip: IpAddr) {
        let live = self.meta.len();
        if self.evictable.len() > 2 * live + 64 {
            let meta = &self.meta;
            self.evictable
                .retain(|id| meta.get(id).is_some_and(|m| m.acked));
        }
        let own = self.sources.of(ip);
        if let Some(q) = self.evictable_by_ip.get_mut(&ip) {
            if q.len() > 2 * own + 64 {
                let meta = &self.meta;
                q.retain(|id| meta.get(id).is_some_and(|m| m.acked));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, n, 1])
    }

    #[test]
    fn horizons_follow_the_attempts_left() {
        let r = RetryPolicy::default(); // 0.5, 1, 2, 4, 8 s
        let cap = Duration::from_secs(60);
        assert_eq!(
            request_horizon(&r, None, cap),
            Duration::from_millis(15_500)
        );
        let a = Attempt {
            current: 4,
            max: Some(5),
        };
        assert_eq!(request_horizon(&r, Some(a), cap), Duration::from_secs(12));
        let huge = Attempt {
            current: 1,
            max: Some(u64::MAX),
        };
        assert_eq!(request_horizon(&r, Some(huge), cap), cap);
        assert_eq!(reply_horizon(&r, cap), Duration::from_millis(15_500));
    }

    #[test]
    fn young_entries_are_never_evicted_acked_ones_are() {
        let budget = MemoryBudget::new(1 << 20);
        let mut c = ReplyCache::new(&budget);
        let shares = SharesConfig {
            reply_cache_per_source: 2,
            ..SharesConfig::default()
        };
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        let mut gone = Vec::new();
        assert!(c.admit(t0, ip(1), 3, &shares, &mut gone).is_ok());
        c.insert(1, ip(1), 10, later, false);
        c.insert(2, ip(1), 10, later, false);
        assert_eq!(
            c.admit(t0, ip(1), 3, &shares, &mut gone),
            Err(EngineLimit::ReplyCacheSource)
        );
        c.insert(3, ip(2), 10, later, false);
        assert_eq!(
            c.admit(t0, ip(3), 3, &shares, &mut gone),
            Err(EngineLimit::ReplyCache)
        );
        c.acked(1);
        assert!(c.admit(t0, ip(1), 3, &shares, &mut gone).is_ok());
        assert_eq!(gone, [1]);
        // Past the horizon everything not waiting goes.
        c.insert(4, ip(4), 10, later, true);
        gone.clear();
        c.expire(later, &mut gone);
        gone.sort();
        assert_eq!(gone, [2, 3]);
        assert_eq!(c.len(), 1, "the waiting one stays");
        c.remove(4);
        assert_eq!((c.len(), budget.used()), (0, 0));
    }
}
