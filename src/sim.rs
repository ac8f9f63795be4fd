//! A deterministic simulated network for driving [`Endpoint`]s.
//!
//! Seeded randomness decides loss, duplication, reordering and delay;
//! time is simulated, so thousands of lossy exchanges run in milliseconds
//! and every run with the same seed is the same run. Used by the engine's
//! property tests and benchmarks, and usable by applications to test their
//! own logic on top of the engine.

use crate::engine::{Config, Endpoint, Event};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How the simulated links treat datagrams (the same in every direction).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// One-way delay of every datagram.
    pub delay: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability a datagram is held back by up to `reorder_delay` extra.
    pub reorder: f64,
    /// The extra delay of a reordered datagram (uniform up to this).
    pub reorder_delay: Duration,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            delay: Duration::from_millis(5),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(10),
        }
    }
}

/// Counts of what the network did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Datagrams handed to the network.
    pub sent: u64,
    /// Dropped: the link's random loss, a drop filter, or no node at the address.
    pub lost: u64,
    /// Delivered twice by the link's random duplication.
    pub duplicated: u64,
    /// Held back so that later datagrams overtook them.
    pub reordered: u64,
    /// Dropped by a [`Blackout`].
    pub blacked_out: u64,
    /// Handed to their destination engine.
    pub delivered: u64,
}

/// A one-way outage: datagrams from `from` to `to` are dropped in `[start, end)`.
#[derive(Debug, Clone, Copy)]
pub struct Blackout {
    /// The sending node's index.
    pub from: usize,
    /// The receiving node's index.
    pub to: usize,
    /// First instant of the outage.
    pub start: Instant,
    /// First instant after it.
    pub end: Instant,
}

/// One simulated node.
pub struct Node {
    /// The node's address on the simulated network.
    pub addr: SocketAddr,
    /// Its engine, driven by the network (call its API between steps).
    pub endpoint: Endpoint,
    events: Vec<Event>,
}

type Flight = Reverse<(Instant, u64, usize, SocketAddr, Bytes)>;

/// Engines joined by simulated links.
pub struct Network {
    rng: StdRng,
    now: Instant,
    start: Instant,
    link: LinkConfig,
    nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, usize>,
    in_flight: BinaryHeap<Flight>,
    blackouts: Vec<Blackout>,
    counter: u64,
    stats: NetStats,
    filter: Option<DropFilter>,
}

/// Decides to drop a datagram `(from node, to node, payload)`; for
/// targeted losses in tests (e.g. exactly one given Seq).
pub type DropFilter = Box<dyn FnMut(usize, usize, &Bytes) -> bool + Send>;

impl Network {
    /// A network whose randomness comes from `seed`.
    pub fn new(seed: u64, link: LinkConfig) -> Self {
        let now = Instant::now();
        Network {
            rng: StdRng::seed_from_u64(seed),
            now,
            start: now,
            link,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            in_flight: BinaryHeap::new(),
            blackouts: Vec::new(),
            counter: 0,
            stats: NetStats::default(),
            filter: None,
        }
    }

    /// Add an engine; it gets a loopback address `127.0.0.N:7077`.
    pub fn add_node(&mut self, cfg: Config) -> usize {
        let idx = self.nodes.len();
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, idx as u8 + 1)), 7077);
        let seed = self.rng.gen();
        let endpoint = Endpoint::new(cfg, seed, self.now, Duration::from_secs(1_800_000_000));
        self.nodes.push(Node {
            addr,
            endpoint,
            events: Vec::new(),
        });
        self.by_addr.insert(addr, idx);
        idx
    }

    /// Change the link behaviour from now on.
    pub fn set_link(&mut self, link: LinkConfig) {
        self.link = link;
    }

    /// Add a one-way outage.
    pub fn add_blackout(&mut self, b: Blackout) {
        self.blackouts.push(b);
    }

    /// Drop every datagram for which `f` returns true (counted as lost).
    pub fn set_drop_filter(&mut self, f: Option<DropFilter>) {
        self.filter = f;
    }

    /// The simulated now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the network was made.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The address of node `i`.
    pub fn addr(&self, i: usize) -> SocketAddr {
        self.nodes[i].addr
    }

    /// The engine of node `i`.
    pub fn endpoint(&mut self, i: usize) -> &mut Endpoint {
        &mut self.nodes[i].endpoint
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Events node `i` produced since the last call.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        self.collect();
        std::mem::take(&mut self.nodes[i].events)
    }

    fn collect(&mut self) {
        for n in &mut self.nodes {
            while let Some(e) = n.endpoint.poll_event() {
                n.events.push(e);
            }
        }
    }

    /// Put every queued transmit on the wire.
    pub fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].endpoint.poll_transmit() {
                self.send(i, t.dest, t.payload);
            }
        }
    }

    fn send(&mut self, from: usize, dest: SocketAddr, payload: Bytes) {
        self.stats.sent += 1;
        let Some(&to) = self.by_addr.get(&dest) else {
            self.stats.lost += 1;
            return;
        };
        let now = self.now;
        if self
            .blackouts
            .iter()
            .any(|b| b.from == from && b.to == to && b.start <= now && now < b.end)
        {
            self.stats.blacked_out += 1;
            return;
        }
        if self.filter.as_mut().is_some_and(|f| f(from, to, &payload))
            || self.rng.gen_bool(self.link.loss.clamp(0.0, 1.0))
        {
            self.stats.lost += 1;
            return;
        }
        let copies = if self.rng.gen_bool(self.link.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let src = self.nodes[from].addr;
        for _ in 0..copies {
            let mut at = now + self.link.delay;
            if self.rng.gen_bool(self.link.reorder.clamp(0.0, 1.0)) {
                self.stats.reordered += 1;
                let extra = self.link.reorder_delay.as_nanos() as u64;
                at += Duration::from_nanos(self.rng.gen_range(0..=extra));
            }
            self.counter += 1;
            self.in_flight
                .push(Reverse((at, self.counter, to, src, payload.clone())));
        }
    }

    /// The next instant something happens (a delivery or a timer).
    pub fn next_instant(&mut self) -> Option<Instant> {
        let flight = self.in_flight.peek().map(|Reverse((at, ..))| *at);
        let timers = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.endpoint.poll_timeout())
            .min();
        match (flight, timers) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advance to the next instant and run what is due then. False when
    /// nothing is pending, or the next instant is past `limit`.
    pub fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let Some(at) = self.next_instant() else {
            return false;
        };
        if at > limit {
            return false;
        }
        self.now = self.now.max(at);
        let now = self.now;
        while let Some(Reverse((t, ..))) = self.in_flight.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, _, to, src, payload))) = self.in_flight.pop() else {
                break;
            };
            self.stats.delivered += 1;
            let _span = tracing::debug_span!("node", n = to).entered();
            self.nodes[to].endpoint.handle_datagram(now, src, payload);
        }
        for (i, n) in self.nodes.iter_mut().enumerate() {
            let _span = tracing::debug_span!("node", n = i).entered();
            if n.endpoint.poll_timeout().is_some_and(|t| t <= now) {
                n.endpoint.handle_timeout(now);
            }
        }
        self.flush();
        self.collect();
        true
    }

    /// Move the clock forward to `t` without anything happening before it
    /// (used to pace application sends between events).
    pub fn advance_to(&mut self, t: Instant) {
        while self.step(t) {}
        self.now = self.now.max(t);
    }
}
