//! One memory budget over every byte held for peers (SPEC §9).
//!
//! Every buffer that holds bytes on a peer's behalf — the engine's reorder
//! and retransmission buffers, reassembly, the reply cache, the runtime's
//! TCP queues — charges one shared [`MemoryBudget`] before it keeps
//! anything, and releases what it frees. A charge that would take the total
//! past [`MemoryBudget::limit`] is refused, and the buffer that asked takes
//! its own defined action (documented where it charges; summarised in the
//! README's Limits table): the budget itself never evicts anything.
//!
//! The handle is an [`Arc`] around atomic counters: cloning it is cheap and
//! it can be shared between the sans-IO engine and the runtime's tasks
//! without a lock. [`Charge`] is the RAII form: it remembers what one holder
//! charged and gives it back when dropped, so a buffer that disappears
//! (a session closed, a connection dropped) cannot leak its share.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a charged byte is held for (one counter each, for stats and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BufferKind {
    /// Session PDUs held while an earlier Seq is missing.
    Reorder,
    /// Sent session PDUs kept for NACK-driven retransmission.
    Retransmit,
    /// Segments of partial payloads.
    Reassembly,
    /// Answers (and ACKs) remembered for duplicate requests.
    ReplyCache,
    /// Bytes queued for writing to a TCP connection (the runtime).
    TcpWrite,
    /// Bytes read from a TCP connection and not yet parsed (the runtime).
    TcpRead,
}

impl BufferKind {
    /// Every kind, in counter order.
    pub const ALL: [BufferKind; 6] = [
        BufferKind::Reorder,
        BufferKind::Retransmit,
        BufferKind::Reassembly,
        BufferKind::ReplyCache,
        BufferKind::TcpWrite,
        BufferKind::TcpRead,
    ];

    fn index(self) -> usize {
        match self {
            BufferKind::Reorder => 0,
            BufferKind::Retransmit => 1,
            BufferKind::Reassembly => 2,
            BufferKind::ReplyCache => 3,
            BufferKind::TcpWrite => 4,
            BufferKind::TcpRead => 5,
        }
    }
}

const KINDS: usize = BufferKind::ALL.len();

#[derive(Debug, Default)]
struct Inner {
    limit: usize,
    /// Most bytes one source (IP address) may hold.
    per_source: usize,
    used: AtomicUsize,
    by_kind: [AtomicUsize; KINDS],
    refused: [AtomicU64; KINDS],
    /// Bytes held per source, for charges made with a source.
    sources: Mutex<HashMap<IpAddr, usize>>,
}

/// A shared ceiling on bytes held for peers, with per-kind counters.
/// Clone it to share it (all clones count against the same total).
#[derive(Clone)]
pub struct MemoryBudget(Arc<Inner>);

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .finish()
    }
}

impl Default for MemoryBudget {
    /// The default engine budget, [`DEFAULT_MEMORY_BUDGET`].
    fn default() -> Self {
        MemoryBudget::new(DEFAULT_MEMORY_BUDGET)
    }
}

/// Free bytes below which the engine takes nothing new on: a new
/// transaction is answered `503` and [`Endpoint::send`] is refused
/// (room for a typical PDU, its ACK and its copies).
///
/// [`Endpoint::send`]: crate::engine::Endpoint::send
pub const MIN_ROOM: usize = 4096;

/// Default total: 256 MiB, above what the per-session and per-table
/// bounds let a few honest peers hold, far below what 16 hostile sessions
/// could pin without it.
pub const DEFAULT_MEMORY_BUDGET: usize = 256 * 1024 * 1024;

impl MemoryBudget {
    /// A budget of `limit` bytes in total, without a per-source share.
    pub fn new(limit: usize) -> Self {
        Self::with_per_source(limit, usize::MAX)
    }

    /// A budget of `limit` bytes in total, of which one source (IP
    /// address) may hold at most `per_source` through the `*_from` charges.
    pub fn with_per_source(limit: usize, per_source: usize) -> Self {
        MemoryBudget(Arc::new(Inner {
            limit,
            per_source,
            ..Inner::default()
        }))
    }

    /// The per-source share.
    pub fn per_source(&self) -> usize {
        self.0.per_source
    }

    /// Bytes held now for `source` (through the `*_from` charges).
    pub fn used_from(&self, source: IpAddr) -> usize {
        self.sources().get(&source).copied().unwrap_or(0)
    }

    fn sources(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // A panic elsewhere while holding the lock leaves plain counters.
        self.0.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`MemoryBudget::try_charge`] for bytes held on behalf of `source`,
    /// also within its share ([`MemoryBudget::per_source`]).
    pub fn try_charge_from(&self, kind: BufferKind, source: IpAddr, bytes: usize) -> bool {
        let mut map = self.sources();
        let held = map.get(&source).copied().unwrap_or(0);
        if held.saturating_add(bytes) > self.0.per_source {
            self.0.refused[kind.index()].fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if !self.try_charge(kind, bytes) {
            return false;
        }
        if bytes > 0 {
            *map.entry(source).or_insert(0) += bytes;
        }
        true
    }

    /// Give back `bytes` charged for `kind` on behalf of `source`.
    pub fn release_from(&self, kind: BufferKind, source: IpAddr, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut map = self.sources();
        if let Some(n) = map.get_mut(&source) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                map.remove(&source);
            }
        }
        drop(map);
        self.release(kind, bytes);
    }

    /// The configured total.
    pub fn limit(&self) -> usize {
        self.0.limit
    }

    /// Bytes charged now, over every kind.
    pub fn used(&self) -> usize {
        self.0.used.load(Ordering::Relaxed)
    }

    /// Bytes charged now for `kind`.
    pub fn used_by(&self, kind: BufferKind) -> usize {
        self.0.by_kind[kind.index()].load(Ordering::Relaxed)
    }

    /// Charges of `kind` refused so far (each one a defined action taken).
    pub fn refusals(&self, kind: BufferKind) -> u64 {
        self.0.refused[kind.index()].load(Ordering::Relaxed)
    }

    /// Bytes that can still be charged.
    pub fn available(&self) -> usize {
        self.limit().saturating_sub(self.used())
    }

    /// Charge `bytes` for `kind` if the total stays within the limit.
    /// False (and counted as a refusal) otherwise; nothing is charged then.
    pub fn try_charge(&self, kind: BufferKind, bytes: usize) -> bool {
        let limit = self.0.limit;
        let ok = self
            .0
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|n| *n <= limit)
            })
            .is_ok();
        if ok {
            self.0.by_kind[kind.index()].fetch_add(bytes, Ordering::Relaxed);
        } else {
            self.0.refused[kind.index()].fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Give back `bytes` charged for `kind`.
    pub fn release(&self, kind: BufferKind, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.0.by_kind[kind.index()].fetch_sub(bytes, Ordering::Relaxed);
        self.0.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// An empty [`Charge`] of `kind` against this budget.
    pub fn charge(&self, kind: BufferKind) -> Charge {
        Charge {
            budget: self.clone(),
            kind,
            source: None,
            bytes: 0,
        }
    }

    /// An empty [`Charge`] of `kind` held on behalf of `source`, within its
    /// share as well as the total.
    pub fn charge_from(&self, kind: BufferKind, source: IpAddr) -> Charge {
        Charge {
            budget: self.clone(),
            kind,
            source: Some(source),
            bytes: 0,
        }
    }
}

/// What one holder has charged to a [`MemoryBudget`]; released on drop.
#[derive(Debug)]
pub struct Charge {
    budget: MemoryBudget,
    kind: BufferKind,
    source: Option<IpAddr>,
    bytes: usize,
}

impl Charge {
    /// Add `bytes` if the budget has room; false (nothing added) if not.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let ok = match self.source {
            Some(ip) => self.budget.try_charge_from(self.kind, ip, bytes),
            None => self.budget.try_charge(self.kind, bytes),
        };
        if ok {
            self.bytes += bytes;
        }
        ok
    }

    /// Give back `bytes` (at most what is held).
    pub fn shrink(&mut self, bytes: usize) {
        let n = bytes.min(self.bytes);
        self.bytes -= n;
        self.give_back(n);
    }

    fn give_back(&self, n: usize) {
        match self.source {
            Some(ip) => self.budget.release_from(self.kind, ip, n),
            None => self.budget.release(self.kind, n),
        }
    }

    /// Bytes held by this charge.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The budget charged.
    pub fn budget(&self) -> &MemoryBudget {
        &self.budget
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.give_back(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_limit_and_drop_releases() {
        let b = MemoryBudget::new(100);
        let mut c = b.charge(BufferKind::Reorder);
        assert!(c.try_grow(60));
        let mut d = b.clone().charge(BufferKind::TcpWrite);
        assert!(!d.try_grow(41), "60 + 41 > 100");
        assert_eq!(b.refusals(BufferKind::TcpWrite), 1);
        assert!(d.try_grow(40));
        assert_eq!((b.used(), b.available()), (100, 0));
        assert_eq!(b.used_by(BufferKind::Reorder), 60);
        c.shrink(1000);
        assert_eq!(c.bytes(), 0);
        assert_eq!(b.used(), 40);
        drop(d);
        assert_eq!(b.used(), 0);
        assert_eq!(b.used_by(BufferKind::TcpWrite), 0);
    }

    #[test]
    fn a_source_stops_at_its_share() {
        let b = MemoryBudget::with_per_source(100, 30);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let mut c = b.charge_from(BufferKind::Reorder, a);
        assert!(c.try_grow(30));
        assert!(!c.try_grow(1), "its share is used");
        let mut other = b.charge_from(BufferKind::Reorder, "10.0.0.2".parse().unwrap());
        assert!(other.try_grow(30));
        assert_eq!((b.used(), b.used_from(a)), (60, 30));
        drop(c);
        assert_eq!((b.used(), b.used_from(a)), (30, 0));
    }
}
