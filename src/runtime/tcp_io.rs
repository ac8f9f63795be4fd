//! The two tasks of a TCP connection and the byte count they share: the
//! reader (header and idle timeouts, back-pressure, the read buffer's
//! charge to the memory budget) and the writer (whole PDUs, each within the
//! idle timeout). See [`super::tcp`] for the decisions they carry out.

use super::limits::TcpLimits;
use super::tcp::{ConnId, ConnMsg, Ended, QUEUE_ENTRY_OVERHEAD};
use crate::budget::{BufferKind, Charge, MemoryBudget};
use crate::codec::{CodecError, StreamCodec};
use crate::wire::ParseOptions;
use bytes::{Bytes, BytesMut};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, Notify};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::codec::Decoder;

/// The byte count of one connection's queue, shared with its tasks. Its
/// bytes are also charged to the memory budget (SPEC §9 "One memory
/// budget") on behalf of the peer's address.
#[derive(Debug)]
pub(super) struct Queue {
    pub(super) bytes: AtomicUsize,
    /// Signalled whenever the writer frees bytes (wakes a paused reader).
    drained: Notify,
    budget: MemoryBudget,
    source: IpAddr,
}

impl Queue {
    pub(super) fn new(budget: MemoryBudget, source: IpAddr) -> Self {
        Queue {
            bytes: AtomicUsize::new(0),
            drained: Notify::new(),
            budget,
            source,
        }
    }

    /// Give back `n` bytes, unless the whole queue was given back already.
    pub(super) fn release(&self, n: usize, total: &AtomicUsize) {
        if self
            .bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| q.checked_sub(n))
            .is_ok()
        {
            self.give_back(n, total);
        }
        self.drained.notify_one();
    }

    /// Give back everything still counted (once; later releases find 0).
    pub(super) fn release_all(&self, total: &AtomicUsize) {
        let left = self.bytes.swap(0, Ordering::AcqRel);
        self.give_back(left, total);
        self.drained.notify_one();
    }

    fn give_back(&self, n: usize, total: &AtomicUsize) {
        total.fetch_sub(n, Ordering::AcqRel);
        self.budget
            .release_from(BufferKind::TcpWrite, self.source, n);
    }
}

/// What a reader task needs besides its socket.
pub(super) struct Reader {
    pub(super) id: ConnId,
    pub(super) from: SocketAddr,
    pub(super) opts: ParseOptions,
    pub(super) limits: TcpLimits,
    pub(super) queue: Arc<Queue>,
    /// The read buffer's capacity, charged to the memory budget.
    pub(super) buffer: Charge,
    pub(super) events: mpsc::Sender<ConnMsg>,
}

/// Read PDUs from one connection until it ends, a head is too slow, it
/// idles, or its read buffer finds no room in the memory budget; pause
/// while its write queue is over half full.
pub(super) async fn read_loop(r: Reader, mut read: OwnedReadHalf) {
    let Reader {
        id,
        from,
        opts,
        limits,
        queue,
        mut buffer,
        events,
    } = r;
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::with_capacity(4096);
    let mut idle_at = Instant::now() + limits.idle_timeout;
    let mut head_since: Option<Instant> = None;
    let pause_at = limits.max_write_queue / 2;
    let ended = loop {
        if queue.bytes.load(Ordering::Acquire) > pause_at {
            // Back-pressure: read nothing until the peer reads its answers.
            tokio::select! {
                _ = queue.drained.notified() => continue,
                _ = sleep_until(idle_at) => break Ended::IdleTimeout,
            }
        }
        if buf.is_empty() || codec.in_body() {
            head_since = None;
        } else if head_since.is_none() {
            head_since = Some(Instant::now());
        }
        let (deadline, why) = match head_since.map(|t| t + limits.header_timeout) {
            Some(h) if h < idle_at => (h, Ended::HeaderTimeout),
            _ => (idle_at, Ended::IdleTimeout),
        };
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(4096);
        }
        if !charge_capacity(&mut buffer, buf.capacity()) {
            break Ended::Budget;
        }
        let n = tokio::select! {
            r = read.read_buf(&mut buf) => r,
            _ = sleep_until(deadline) => break why,
        };
        let eof = match n {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => break Ended::Error(e.to_string()),
        };
        loop {
            let next = if eof {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            match next {
                Ok(Some(pdu)) => {
                    idle_at = Instant::now() + limits.idle_timeout;
                    head_since = None;
                    if events.send(ConnMsg::Pdu(from, pdu)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let why = match e {
                        CodecError::Parse { error, .. } => Ended::Malformed(error),
                        other => Ended::Error(other.to_string()),
                    };
                    let _ = events.send(ConnMsg::Closed(id, from, why)).await;
                    return;
                }
            }
        }
        if eof {
            // A half-close: the driver finishes the connection once its
            // answers are written; this bounds how long that may take.
            if events.send(ConnMsg::HalfClosed(id, from)).await.is_err() {
                return;
            }
            tokio::time::sleep(limits.idle_timeout).await;
            break Ended::IdleTimeout;
        }
    };
    let _ = events.send(ConnMsg::Closed(id, from, ended)).await;
}

/// Keep `charge` equal to `capacity`; false if the budget has no room
/// for the growth.
fn charge_capacity(charge: &mut Charge, capacity: usize) -> bool {
    match capacity.checked_sub(charge.bytes()) {
        Some(0) => true,
        Some(grow) => charge.try_grow(grow),
        None => {
            charge.shrink(charge.bytes() - capacity);
            true
        }
    }
}

/// What a writer task needs besides its socket and queue.
pub(super) struct Writer {
    pub(super) id: ConnId,
    pub(super) to: SocketAddr,
    pub(super) queue: Arc<Queue>,
    pub(super) total: Arc<AtomicUsize>,
    pub(super) idle: Duration,
    pub(super) events: mpsc::Sender<ConnMsg>,
}

/// Write queued PDUs whole, each within the idle timeout; when the queue's
/// sender is dropped, write the rest and shut the write side down.
pub(super) async fn write_loop(
    w: Writer,
    mut write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
    let ended = loop {
        let Some(b) = rx.recv().await else {
            let _ = timeout(w.idle, write.shutdown()).await;
            return;
        };
        let r = timeout(w.idle, write.write_all(&b)).await;
        w.queue.release(b.len() + QUEUE_ENTRY_OVERHEAD, &w.total);
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => break Ended::Error(e.to_string()),
            Err(_) => break Ended::IdleTimeout,
        }
    };
    rx.close();
    w.queue.release_all(&w.total);
    let _ = w.events.send(ConnMsg::Closed(w.id, w.to, ended)).await;
}
