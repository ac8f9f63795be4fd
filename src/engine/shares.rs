//! Fair shares (SPEC §9): what one source may take of each table, and the
//! one memory budget's size.
//!
//! A *source* is an IP address (the port is the attacker's to choose); a
//! *prefix* is its /24 (IPv4) or /64 (IPv6), the unit one host or one
//! customer of a provider usually controls, so spreading a flood over the
//! addresses of one network does not multiply its share. Each table keeps
//! its total bound (in [`EngineLimits`](super::EngineLimits) or
//! [`SegmentConfig`](super::SegmentConfig)) and gets a per-source and a
//! per-prefix share here; the share that is hit is named in the
//! [`Event::LimitReached`](super::Event::LimitReached) it causes.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Per-source shares, half-open sessions, the reply horizon and the memory
/// budget (one section of [`Config`](super::Config)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharesConfig {
    /// Bytes held for peers over every buffer (reorder, retransmission,
    /// reassembly, reply cache; the runtime's TCP queues charge the same
    /// budget). Default 256 MiB. See [`crate::budget`].
    pub memory_budget: usize,
    /// Bytes of that budget one IP address may have held on its behalf
    /// (its sessions' buffers, its reassembly, its remembered answers), so
    /// a few hostile sources cannot take all of it. Default 32 MiB, an
    /// eighth of the budget: room for one client's largest payload
    /// (`max_payload_len`, 16 MiB) in reassembly with its buffers besides.
    pub memory_per_source: usize,
    /// Incoming transactions one IP address may have remembered at once
    /// (waiting for the application, or answered and still inside their
    /// sender's retry horizon). Past it that source's new transactions are
    /// answered `503`. Default 1,024 (a quarter of the default
    /// `max_reply_cache`).
    pub reply_cache_per_source: usize,
    /// The same for all addresses of one /24 or /64. Default 2,048.
    pub reply_cache_per_prefix: usize,
    /// Longest retry horizon granted to a request, whatever its `Attempt`
    /// header claims. Default 60 s (the default policy's horizon is 15.5 s).
    pub max_reply_horizon: Duration,
    /// Sessions (open or half-open) one IP address may hold. Past it a new
    /// `REG` from it is answered `503`. Default 256.
    pub sessions_per_source: usize,
    /// The same for one /24 or /64. Default 1,024.
    pub sessions_per_prefix: usize,
    /// Half-open sessions (the `REG` answered, our `200` never
    /// acknowledged) held at once. Past it the oldest half-open session is
    /// dropped to make room. Default 1,024.
    pub max_half_open: usize,
    /// Half-open sessions one IP address may hold; past it its own oldest
    /// half-open session is dropped. Default 16.
    pub half_open_per_source: usize,
    /// The same for one /24 or /64. Default 64.
    pub half_open_per_prefix: usize,
    /// A half-open session not confirmed within this time is dropped.
    /// Default 10 s (longer than the 200's first four retransmissions).
    pub half_open_timeout: Duration,
    /// Partial payloads (reassembly slots) one IP address may hold; past it
    /// its new segmented transfers are refused `503`. Default 16.
    pub reassemblies_per_source: usize,
    /// The same for one /24 or /64. Default 32.
    pub reassemblies_per_prefix: usize,
    /// A reassembly slot without a new segment for this long is given up
    /// when a new transfer needs its room (the slot's `reassembly_timeout`
    /// still ends it otherwise). Default 2 s.
    pub reassembly_idle_timeout: Duration,
    /// Failed resume or join attempts all addresses of one /24 or /64 may
    /// make per `resume_failure_window` (each address also has its own
    /// `resume_failures_per_window`); past it every attempt from the
    /// prefix gets the same `404` without a lookup. Default 20.
    pub resume_failures_per_prefix: u32,
}

impl Default for SharesConfig {
    fn default() -> Self {
        SharesConfig {
            memory_budget: crate::budget::DEFAULT_MEMORY_BUDGET,
            memory_per_source: 32 * 1024 * 1024,
            reply_cache_per_source: 1024,
            reply_cache_per_prefix: 2048,
            max_reply_horizon: Duration::from_secs(60),
            sessions_per_source: 256,
            sessions_per_prefix: 1024,
            max_half_open: 1024,
            half_open_per_source: 16,
            half_open_per_prefix: 64,
            half_open_timeout: Duration::from_secs(10),
            reassemblies_per_source: 16,
            reassemblies_per_prefix: 32,
            reassembly_idle_timeout: Duration::from_secs(2),
            resume_failures_per_prefix: 20,
        }
    }
}

/// The /24 (IPv4) or /64 (IPv6) an address belongs to.
pub fn prefix_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
    }
}

/// Which share a source hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Source,
    Prefix,
}

/// Entries held per source and per prefix in one table.
#[derive(Debug, Default)]
pub(crate) struct SourceCounts {
    by_ip: HashMap<IpAddr, usize>,
    by_prefix: HashMap<IpAddr, usize>,
}

impl SourceCounts {
    /// The share `ip` would exceed by one more entry, if any.
    pub fn full(&self, ip: IpAddr, per_ip: usize, per_prefix: usize) -> Option<Scope> {
        if self.by_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
            return Some(Scope::Source);
        }
        if self.by_prefix.get(&prefix_of(ip)).copied().unwrap_or(0) >= per_prefix {
            return Some(Scope::Prefix);
        }
        None
    }

    /// Entries `ip` holds.
    pub fn of(&self, ip: IpAddr) -> usize {
        self.by_ip.get(&ip).copied().unwrap_or(0)
    }

    /// One more entry for `ip`.
    pub fn add(&mut self, ip: IpAddr) {
        *self.by_ip.entry(ip).or_insert(0) += 1;
        *self.by_prefix.entry(prefix_of(ip)).or_insert(0) += 1;
    }

    /// One entry fewer for `ip` (empty counters are freed).
    pub fn remove(&mut self, ip: IpAddr) {
        fn dec(m: &mut HashMap<IpAddr, usize>, k: IpAddr) {
            if let Some(n) = m.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&k);
                }
            }
        }
        dec(&mut self.by_ip, ip);
        dec(&mut self.by_prefix, prefix_of(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_counts() {
        let a: IpAddr = "10.1.2.3".parse().unwrap();
        let b: IpAddr = "10.1.2.200".parse().unwrap();
        let c: IpAddr = "10.1.3.1".parse().unwrap();
        assert_eq!(prefix_of(a), prefix_of(b));
        assert_ne!(prefix_of(a), prefix_of(c));
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(prefix_of(v6), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mut s = SourceCounts::default();
        s.add(a);
        assert_eq!(s.full(a, 1, 10), Some(Scope::Source));
        assert_eq!(s.full(b, 1, 1), Some(Scope::Prefix));
        assert_eq!(s.full(c, 1, 1), None);
        s.remove(a);
        assert_eq!(s.of(a), 0);
        assert!(s.by_ip.is_empty() && s.by_prefix.is_empty());
    }
}
