//! TCP connections: a reader and a writer task per connection, the byte
//! accounting of their write queues, and the routes the driver sends by.
//!
//! SPEC §9 "TCP": a head must arrive within [`TcpLimits::header_timeout`];
//! a connection without a whole PDU for [`TcpLimits::idle_timeout`] is
//! closed; write queues are bounded in bytes, per connection and in total,
//! with back-pressure; after the peer half-closes, queued replies are still
//! written; an answer to a TCP request never leaves over UDP.
//!
//! **Decision (transport is part of the route).** The engine names peers
//! by socket address only; the driver picks the transport. An address that
//! reached us over TCP is a TCP route for as long as its connection lives
//! and, once it is gone, for [`TcpLimits::closed_route_ttl`] more: what the
//! engine still sends there (a retransmitted reply) is dropped and counted
//! ([`TcpStats::kept_off_udp`]), never sent over UDP. (The old driver
//! forgot the address when the peer half-closed, so the replies the
//! application gave afterwards went out of the UDP socket to the TCP
//! client's port.)
//!
//! **Decision (a full write queue).** Past half of
//! [`TcpLimits::max_write_queue`] the connection's reader stops reading, so
//! a peer that sends requests but never reads the answers is pushed back
//! by its own TCP window. A PDU that would still pass the limit closes the
//! connection: its queue is freed at once, and what the engine had in
//! flight there is left to its timers (a dialled connection is redialled).
//!
//! **Decision (the memory budget).** A connection's queued bytes and its
//! read buffer's capacity are charged to the engine's memory budget on
//! behalf of the peer's IP address (`BufferKind::TcpWrite`, `TcpRead`). A
//! refused write charge closes the connection if it has a queue (it is not
//! draining), else drops only that PDU; a refused read-buffer growth closes
//! the connection (its PDU cannot be held), counted in
//! [`TcpStats::budget_refusals`].
//!
//! **Decision (half-close).** End of stream from the peer is a half-close:
//! the connection stays until every request it delivered to the
//! application is answered and written, then it is shut down; if answers
//! do not come within [`TcpLimits::idle_timeout`] it is closed anyway.

pub(super) use super::limits::QUEUE_ENTRY_OVERHEAD;
use super::limits::{TcpLimits, TcpStats};
use super::tcp_io::{read_loop, write_loop, Queue, Reader, Writer};
use crate::budget::{BufferKind, MemoryBudget};
use crate::wire::{ParseError, ParseOptions, Pdu};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// Identifies one connection (an address can be reused by a later one).
pub(crate) type ConnId = u64;

/// Why a connection ended, as its tasks saw it.
#[derive(Debug)]
pub(crate) enum Ended {
    /// The stream failed, or ended inside a PDU (what happened, for the
    /// log, which prints it through `Debug`).
    #[allow(dead_code)]
    Error(String),
    /// The stream stopped framing.
    Malformed(ParseError),
    /// A head took longer than [`TcpLimits::header_timeout`].
    HeaderTimeout,
    /// No whole PDU (or a write blocked) for [`TcpLimits::idle_timeout`].
    IdleTimeout,
    /// The read buffer could not grow within the memory budget.
    Budget,
}

/// What connection tasks report to the driver.
// Moved once through a channel: boxing the PDU would cost an allocation per
// PDU to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ConnMsg {
    Pdu(SocketAddr, Pdu),
    /// The peer ended its write side; replies may still be written.
    HalfClosed(ConnId, SocketAddr),
    Closed(ConnId, SocketAddr, Ended),
    /// A connection we dialled was re-established after it dropped.
    Redialled(SocketAddr, TcpStream),
}

/// One live connection, as the driver holds it.
struct Conn {
    id: ConnId,
    tx: mpsc::UnboundedSender<Bytes>,
    queue: Arc<Queue>,
    reader: tokio::task::AbortHandle,
    writer: tokio::task::AbortHandle,
    /// Accepted (counted against the limits) rather than dialled.
    accepted: bool,
    /// The peer half-closed: nothing more will be read.
    read_closed: bool,
    /// Requests read from it that the application has not answered yet.
    pending: usize,
    /// A whole PDU has arrived on it.
    spoke: bool,
}

/// Where a PDU for an address goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// Queued on its connection.
    Queued,
    /// Its TCP connection is gone (or full): dropped, never sent over UDP.
    Dropped,
    /// Not a TCP address: the caller sends it over UDP.
    Udp,
}

/// Why an accepted connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    Total,
    PerIp,
}

/// Every TCP connection of a driver, their queues and routes.
pub(crate) struct Connections {
    limits: TcpLimits,
    budget: MemoryBudget,
    opts: ParseOptions,
    conns: HashMap<SocketAddr, Conn>,
    next_id: ConnId,
    per_ip: HashMap<IpAddr, usize>,
    accepted_now: usize,
    /// Addresses whose connection closed, with when (oldest first).
    closed: HashMap<SocketAddr, Instant>,
    closed_order: VecDeque<(SocketAddr, Instant)>,
    total: Arc<AtomicUsize>,
    stats: TcpStats,
    /// Writers finishing their queues after a graceful close.
    finishing: Vec<tokio::task::JoinHandle<()>>,
    writers: HashMap<ConnId, tokio::task::JoinHandle<()>>,
    removed: Vec<(SocketAddr, bool)>,
}

impl Connections {
    pub(crate) fn new(limits: TcpLimits, opts: ParseOptions, budget: MemoryBudget) -> Self {
        Connections {
            limits,
            budget,
            opts,
            conns: HashMap::new(),
            next_id: 0,
            per_ip: HashMap::new(),
            accepted_now: 0,
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            total: Arc::new(AtomicUsize::new(0)),
            stats: TcpStats::default(),
            finishing: Vec::new(),
            writers: HashMap::new(),
            removed: Vec::new(),
        }
    }

    /// Whether a connection accepted from `from` may be kept. With the
    /// table full, the oldest accepted connection that has not sent a whole
    /// PDU yet (a slowloris, most likely) makes room for it.
    pub(crate) fn admit(&mut self, from: SocketAddr) -> Result<(), Refused> {
        let l = &self.limits;
        if self.per_ip.get(&from.ip()).copied().unwrap_or(0) >= l.max_connections_per_ip {
            self.stats.refused_per_ip += 1;
            return Err(Refused::PerIp);
        }
        if self.accepted_now >= l.max_connections {
            let oldest_silent = self
                .conns
                .iter()
                .filter(|(_, c)| c.accepted && !c.spoke)
                .min_by_key(|(_, c)| c.id)
                .map(|(a, _)| *a);
            match oldest_silent {
                Some(victim) => {
                    self.stats.evicted_silent += 1;
                    self.close(&victim);
                }
                None => {
                    self.stats.refused_total += 1;
                    return Err(Refused::Total);
                }
            }
        }
        Ok(())
    }

    /// A whole PDU arrived from `addr` (it is no longer silent).
    pub(crate) fn spoke(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.conns.get_mut(addr) {
            c.spoke = true;
        }
    }

    /// Connections refused so far (to rate-limit the warning).
    pub(crate) fn refused(&self) -> u64 {
        self.stats.refused_total + self.stats.refused_per_ip
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.conns.contains_key(addr)
    }

    /// Take a connection: a reader task feeding PDUs to `events`, a writer
    /// task draining its queue.
    pub(crate) fn adopt(
        &mut self,
        stream: TcpStream,
        from: SocketAddr,
        accepted: bool,
        events: &mpsc::Sender<ConnMsg>,
    ) {
        if self.conns.contains_key(&from) {
            self.close(&from);
        }
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let id = self.next_id;
        self.next_id += 1;
        let queue = Arc::new(Queue::new(self.budget.clone(), from.ip()));
        let (tx, rx) = mpsc::unbounded_channel();
        let span = tracing::info_span!("tcp", %from, id);
        let reader = tokio::spawn(tracing::Instrument::instrument(
            read_loop(
                Reader {
                    id,
                    from,
                    opts: self.opts,
                    limits: self.limits,
                    queue: queue.clone(),
                    buffer: self.budget.charge_from(BufferKind::TcpRead, from.ip()),
                    events: events.clone(),
                },
                read,
            ),
            span.clone(),
        ));
        let writer = tokio::spawn(tracing::Instrument::instrument(
            write_loop(
                Writer {
                    id,
                    to: from,
                    queue: queue.clone(),
                    total: self.total.clone(),
                    idle: self.limits.idle_timeout,
                    events: events.clone(),
                },
                write,
                rx,
            ),
            span,
        ));
        if accepted {
            self.accepted_now += 1;
            *self.per_ip.entry(from.ip()).or_insert(0) += 1;
            self.stats.accepted += 1;
        }
        self.closed.remove(&from);
        self.conns.insert(
            from,
            Conn {
                id,
                tx,
                queue,
                reader: reader.abort_handle(),
                writer: writer.abort_handle(),
                accepted,
                read_closed: false,
                pending: 0,
                spoke: false,
            },
        );
        self.writers.insert(id, writer);
        self.stats.open = self.conns.len();
    }

    /// Queue `payload` to `dest`'s connection, if it is a TCP address
    /// (connections closed to make room are in [`Self::take_removed`]).
    pub(crate) fn send(&mut self, dest: SocketAddr, payload: Bytes, now: Instant) -> Route {
        if !self.conns.contains_key(&dest) {
            return if self.was_tcp(&dest, now) {
                self.stats.kept_off_udp += 1;
                Route::Dropped
            } else {
                Route::Udp
            };
        }
        let cost = payload.len() + QUEUE_ENTRY_OVERHEAD;
        let queued = self.conns[&dest].queue.bytes.load(Ordering::Acquire);
        if queued + cost > self.limits.max_write_queue {
            tracing::debug!(peer = %dest, queued, "write queue full; closing the connection");
            self.stats.queue_overflows += 1;
            self.close(&dest);
            return Route::Dropped;
        }
        while self.total.load(Ordering::Acquire) + cost > self.limits.max_write_queue_total {
            let Some(victim) = self.longest_queue() else {
                break;
            };
            tracing::debug!(peer = %victim, "total write queue full; closing the longest queue");
            self.stats.queue_overflows += 1;
            self.close(&victim);
            if victim == dest {
                return Route::Dropped;
            }
        }
        if self.total.load(Ordering::Acquire) + cost > self.limits.max_write_queue_total {
            self.stats.dropped_pdus += 1;
            return Route::Dropped;
        }
        let c = &self.conns[&dest];
        if !self
            .budget
            .try_charge_from(BufferKind::TcpWrite, dest.ip(), cost)
        {
            // The memory budget (or this address's share of it) is spent:
            // a connection that is not draining its queue goes; otherwise
            // only this PDU is dropped, left to retransmission.
            self.stats.budget_refusals += 1;
            if c.queue.bytes.load(Ordering::Acquire) > 0 {
                tracing::debug!(peer = %dest, "memory budget full; closing a connection with a queue");
                self.close(&dest);
            } else {
                self.stats.dropped_pdus += 1;
            }
            return Route::Dropped;
        }
        let now_queued = c.queue.bytes.fetch_add(cost, Ordering::AcqRel) + cost;
        let total = self.total.fetch_add(cost, Ordering::AcqRel) + cost;
        if c.tx.send(payload).is_err() {
            // The writer has ended; its report is on the way.
            c.queue.release(cost, &self.total);
            return Route::Dropped;
        }
        self.stats.peak_connection_queue = self.stats.peak_connection_queue.max(now_queued);
        self.stats.peak_queued_bytes = self.stats.peak_queued_bytes.max(total);
        Route::Queued
    }

    /// The connection with the most bytes queued (a non-empty queue).
    fn longest_queue(&self) -> Option<SocketAddr> {
        self.conns
            .iter()
            .map(|(a, c)| (c.queue.bytes.load(Ordering::Acquire), *a))
            .filter(|(q, _)| *q > 0)
            .max()
            .map(|(_, a)| a)
    }

    /// Whether `addr` was a TCP peer recently (its connection is gone).
    fn was_tcp(&mut self, addr: &SocketAddr, now: Instant) -> bool {
        match self.closed.get(addr) {
            Some(at) if now.duration_since(*at) < self.limits.closed_route_ttl => true,
            Some(_) => {
                self.closed.remove(addr);
                false
            }
            None => false,
        }
    }

    /// Remember that `addr` was a TCP route (bounded, oldest forgotten).
    fn remember_closed(&mut self, addr: SocketAddr) {
        let now = Instant::now();
        while let Some(&(a, at)) = self.closed_order.front() {
            let expired = now.duration_since(at) >= self.limits.closed_route_ttl;
            if !expired && self.closed_order.len() < self.limits.max_closed_routes.max(1) {
                break;
            }
            self.closed_order.pop_front();
            if self.closed.get(&a) == Some(&at) {
                self.closed.remove(&a);
            }
        }
        self.closed.insert(addr, now);
        self.closed_order.push_back((addr, now));
    }

    /// Close at once: both tasks stop, the queue is freed.
    pub(crate) fn close(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.remove(addr, true) {
            c.reader.abort();
            c.writer.abort();
            c.queue.release_all(&self.total);
            self.writers.remove(&c.id);
        }
    }

    /// Close once what is queued is written (a graceful end).
    pub(crate) fn finish(&mut self, addr: &SocketAddr) {
        if let Some(c) = self.remove(addr, false) {
            c.reader.abort();
            if let Some(w) = self.writers.remove(&c.id) {
                self.finishing.retain(|w| !w.is_finished());
                self.finishing.push(w);
            }
            // Dropping `c.tx` lets the writer end after the queue.
        }
    }

    fn remove(&mut self, addr: &SocketAddr, hard: bool) -> Option<Conn> {
        let c = self.conns.remove(addr)?;
        self.removed.push((*addr, hard));
        if c.accepted {
            self.accepted_now -= 1;
            if let Some(n) = self.per_ip.get_mut(&addr.ip()) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&addr.ip());
                }
            }
        }
        self.remember_closed(*addr);
        self.stats.open = self.conns.len();
        Some(c)
    }

    /// Connections removed since the last call, and whether each was
    /// closed at once (an error, a timeout, a limit) rather than finished.
    pub(crate) fn take_removed(&mut self) -> Vec<(SocketAddr, bool)> {
        std::mem::take(&mut self.removed)
    }

    /// A task of connection `id` reported its end: close it (if it is still
    /// the one at `addr`). Returns whether a connection was closed.
    pub(crate) fn ended(&mut self, id: ConnId, addr: &SocketAddr, why: &Ended) {
        if self.conns.get(addr).map(|c| c.id) != Some(id) {
            return;
        }
        match why {
            Ended::HeaderTimeout => self.stats.header_timeouts += 1,
            Ended::IdleTimeout => self.stats.idle_timeouts += 1,
            Ended::Budget => self.stats.budget_refusals += 1,
            Ended::Error(_) | Ended::Malformed(_) => {}
        }
        self.close(addr);
    }

    /// The peer half-closed connection `id`: finish it now if nothing is
    /// left to answer. A connection we dialled is closed (and redialled).
    pub(crate) fn half_closed(&mut self, id: ConnId, addr: &SocketAddr) {
        let Some(c) = self.conns.get_mut(addr).filter(|c| c.id == id) else {
            return;
        };
        if !c.accepted {
            self.close(addr);
            return;
        }
        c.read_closed = true;
        self.stats.half_closed += 1;
        if c.pending == 0 {
            self.finish(addr);
        }
    }

    /// A request read from `addr` went to the application; returns the
    /// connection it belongs to.
    pub(crate) fn request_delivered(&mut self, addr: &SocketAddr) -> Option<ConnId> {
        let c = self.conns.get_mut(addr)?;
        c.pending += 1;
        Some(c.id)
    }

    /// The application answered a request read from connection `id`
    /// (call after the answer was queued): a half-closed connection with
    /// nothing left to answer is finished.
    pub(crate) fn request_answered(&mut self, id: ConnId, addr: &SocketAddr) {
        let Some(c) = self.conns.get_mut(addr).filter(|c| c.id == id) else {
            return;
        };
        c.pending = c.pending.saturating_sub(1);
        if c.read_closed && c.pending == 0 {
            self.finish(addr);
        }
    }

    /// Counters and queue sizes now.
    pub(crate) fn stats(&self) -> TcpStats {
        TcpStats {
            queued_bytes: self.total.load(Ordering::Acquire),
            ..self.stats
        }
    }

    /// Stop everything: finish every connection, wait (up to `drain`) for
    /// the writers, then stop what is left.
    pub(crate) async fn shutdown(&mut self, drain: Duration) {
        let addrs: Vec<SocketAddr> = self.conns.keys().copied().collect();
        for a in &addrs {
            self.finish(a);
        }
        let mut writers: Vec<_> = self.finishing.drain(..).collect();
        let aborts: Vec<_> = writers.iter().map(|w| w.abort_handle()).collect();
        let all = futures::future::join_all(writers.iter_mut());
        if timeout(drain, all).await.is_err() {
            aborts.iter().for_each(|a| a.abort());
        }
    }
}
