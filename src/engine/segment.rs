//! Segmentation and reassembly (SPEC §7), without I/O or clock.
//!
//! **Sending.** A request whose encoded size would exceed the datagram
//! budget ([`Config::max_datagram`](super::Config::max_datagram)) is sent as
//! N ordinary requests carrying `Segment: I/N` and `Payload-Length`. All of
//! them share the payload's `TX-ID` — SPEC §7 reassembles by (sender, TX-ID)
//! — while each has its own `Message-ID`, its own Seq in a session and its
//! own ACK (matched by `Ack-Message-ID`). The application sees one request:
//! one [`RequestId`](super::RequestId), one `Acked` when every segment is
//! acknowledged, one final reply. At most [`SegmentConfig::window`] segments
//! are unacknowledged at once, so a large payload never bursts into a
//! socket buffer; each ACK lets the next segment go.
//!
//! **Receiving.** Every segment is acknowledged on its own and kept by
//! (sender, payload id) — the payload id is `Segment-ID` when present (the
//! triple one public implementation emits), else the `TX-ID`. Duplicated
//! and out-of-order segments are expected. When all N are held the payload
//! is delivered once, as one request whose head is the first segment's and
//! whose body is the joined payload (see `assemble`); the reply to it
//! answers the whole payload. The incoming transaction table keys each
//! segment by (TX-ID, index), so segment 2 is not taken for a retransmission
//! of segment 1.
//!
//! **Bounds** (all in [`SegmentConfig`], each refusal named):
//! - a payload longer than `max_payload_len`, or of more than
//!   `max_segments` segments, is refused `413 Payload Too Large`;
//! - more than `max_reassemblies` partial payloads at once, or more than
//!   `max_reassembly_bytes` held over all of them, and the segment that
//!   would exceed it ends its payload with `503 Reassembly Busy`;
//! - a partial payload with no new segment for `reassembly_timeout` is
//!   dropped and reported ([`Event::ReassemblyExpired`](super::Event::ReassemblyExpired));
//! - segments that disagree on `Segment-Count` or `Payload-Length`, or a
//!   reassembled length that differs from `Payload-Length`, are refused
//!   `400 Inconsistent Segments`.
//!
//! The held bytes are the received datagrams themselves (segments are kept
//! zero-copy) plus [`PART_OVERHEAD`] per segment, so a flood of empty
//! segments costs as much as it holds. Nothing is allocated in proportion
//! to a number in a header: `Segment-Count` and `Payload-Length` are only
//! compared, never used to size a buffer.

use super::event::EngineLimit;
use super::shares::{prefix_of, Scope, SharesConfig, SourceCounts};
use crate::budget::{BufferKind, MemoryBudget};
use crate::wire::typed::names;
use crate::wire::{HeaderName, ParseError, ParseOptions, Pdu, PduBuilder};
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Segmentation and reassembly settings (a section of
/// [`Config`](super::Config)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentConfig {
    /// Segments of one request sent and not yet acknowledged, at most.
    /// Default 64 (77 KB at the default budget: well inside a default
    /// socket receive buffer).
    pub window: usize,
    /// Least first retransmission timer of a segment. A segment's first
    /// timer follows the round trip measured on earlier segments of the
    /// same payload (RFC 6298 estimator, first tries only), never above
    /// `retry.initial` and never below this. Later timers follow
    /// [`RetryPolicy`](super::RetryPolicy). Default 50 ms.
    pub min_rto: Duration,
    /// Longest payload sent or reassembled. Default 16 MiB (the parser's
    /// default body limit).
    pub max_payload_len: usize,
    /// Most segments in one payload. Default 65,536.
    pub max_segments: u64,
    /// Partial payloads held at once (over all peers). Default 64.
    pub max_reassemblies: usize,
    /// Bytes held over all partial payloads. Default 32 MiB.
    pub max_reassembly_bytes: usize,
    /// A partial payload without a new segment for this long is dropped.
    /// Default 30 s (longer than a segment's default retransmission span
    /// of 15.5 s, so a live sender is never cut off).
    pub reassembly_timeout: Duration,
    /// Payload ids remembered after completion, refusal or expiry, so late
    /// segments are acknowledged and not held again; forgotten after
    /// `reassembly_timeout`, the oldest first beyond this count. Default 1024.
    pub max_finished: usize,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            window: 64,
            min_rto: Duration::from_millis(50),
            max_payload_len: 16 * 1024 * 1024,
            max_segments: 65_536,
            max_reassemblies: 64,
            max_reassembly_bytes: 32 * 1024 * 1024,
            reassembly_timeout: Duration::from_secs(30),
            max_finished: 1024,
        }
    }
}

/// Bookkeeping charged per held segment on top of its datagram, so empty
/// segments are not free.
pub const PART_OVERHEAD: usize = std::mem::size_of::<Pdu>() + 48;

const H_SEGMENT: HeaderName = HeaderName::from_static(names::SEGMENT);
const H_PAYLOAD_LENGTH: HeaderName = HeaderName::from_static(names::PAYLOAD_LENGTH);
const H_SEGMENT_ID: HeaderName = HeaderName::from_static(names::SEGMENT_ID);
const H_SEGMENT_INDEX: HeaderName = HeaderName::from_static(names::SEGMENT_INDEX);
const H_SEGMENT_COUNT: HeaderName = HeaderName::from_static(names::SEGMENT_COUNT);

/// Bytes the `Segment-ID` / `Segment-Index` / `Segment-Count` lines add to
/// a segment's head (SPEC §10) for a payload id of `id_len` bytes and
/// numbers of at most `digits` digits: for the senders' head budgets.
pub(crate) fn triple_len(id_len: usize, digits: usize) -> usize {
    (12 + id_len + 2) + (15 + digits + 2) + (15 + digits + 2)
}

/// Headers that describe one segment, dropped from the delivered request.
/// `Content-Hash-*` goes too: it covered the first segment's body only.
const SEGMENT_HEADERS: [&str; 5] = [
    "Segment",
    "Segment-ID",
    "Segment-Index",
    "Segment-Count",
    "Payload-Length",
];

/// The payload a segment belongs to: `Segment-ID` when present, else
/// `TX-ID`; `None` when it has neither (it cannot be reassembled).
pub(crate) fn payload_id(pdu: &Pdu) -> Option<String> {
    if let Ok(Some(id)) = pdu.segment_id() {
        return Some(format!("s:{id}"));
    }
    pdu.tx_id().ok().flatten().map(|t| format!("t:{t}"))
}

/// How to cut `body_len` bytes when a segment's head takes `head_len`
/// bytes of a `budget`-byte datagram: (bytes per segment, segments).
/// `None` when the head leaves no room.
pub(crate) fn plan(head_len: usize, body_len: usize, budget: usize) -> Option<(usize, u64)> {
    let chunk = budget.checked_sub(head_len).filter(|c| *c > 0)?;
    Some((chunk, segment_count(body_len, chunk)))
}

/// Why a payload was refused, and with which status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `400`: a segment's `Content-Hash-*` or the payload's
    /// `Payload-Hash-*` did not match.
    HashMismatch(crate::wire::HashScope),
    /// `413`: over `max_payload_len` or `max_segments`.
    TooLarge(EngineLimit),
    /// `503`: over `max_reassemblies` or `max_reassembly_bytes`.
    Busy(EngineLimit),
    /// `400`: the segments disagree with each other or with `Payload-Length`.
    Inconsistent(&'static str),
}

impl Refusal {
    pub(crate) fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::TooLarge(_) => (413, "Payload Too Large"),
            Refusal::Busy(_) => (503, "Reassembly Busy"),
            Refusal::Inconsistent(_) => (400, "Inconsistent Segments"),
            Refusal::HashMismatch(crate::wire::HashScope::Content) => {
                (400, "Content Hash Mismatch")
            }
            Refusal::HashMismatch(crate::wire::HashScope::Payload) => {
                (400, "Payload Hash Mismatch")
            }
        }
    }
}

/// What became of an offered segment.
#[derive(Debug)]
pub(crate) enum Offer {
    /// Kept; the payload is not complete yet.
    Held,
    /// This index is already held (a duplicate under another Message-ID).
    Duplicate,
    /// The payload was already delivered or expired (`None`), or refused
    /// (the refusal, to be given again: the first may have been lost).
    Late(Option<Refusal>),
    /// The last missing segment: every part in index order.
    Complete(Vec<Pdu>),
    /// The payload is refused; what was held of it is dropped.
    Refused(Refusal),
}

/// A payload that expired half-received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expired {
    pub peer: SocketAddr,
    pub id: String,
    pub received: u64,
    pub count: u64,
}

type Key = (SocketAddr, String);

#[derive(Debug)]
struct Partial {
    count: u64,
    payload_len: Option<u64>,
    parts: BTreeMap<u64, Pdu>,
    body_len: usize,
    cost: usize,
    last_progress: Instant,
}

/// Partial payloads by (sender, payload id), within [`SegmentConfig`],
/// the per-source shares of [`SharesConfig`] and the memory budget.
#[derive(Debug, Default)]
pub(crate) struct Reassembler {
    partial: HashMap<Key, Partial>,
    held: usize,
    finished: VecDeque<(Instant, Key)>,
    /// The finished ids, with the refusal of those that were refused.
    finished_set: HashMap<Key, Option<Refusal>>,
    /// Partial payloads per source and prefix.
    sources: SourceCounts,
    /// Shares (none until [`Reassembler::attach`]).
    shares: Option<SharesConfig>,
    /// The memory budget each partial payload's cost is charged to, on
    /// behalf of its sender (none until attached).
    budget: Option<MemoryBudget>,
}

impl Drop for Reassembler {
    fn drop(&mut self) {
        if let Some(b) = &self.budget {
            for (k, p) in &self.partial {
                b.release_from(BufferKind::Reassembly, k.0.ip(), p.cost);
            }
        }
    }
}

impl Reassembler {
    /// Reassembly under these shares, charging this budget (SPEC §9).
    pub(crate) fn attach(budget: &MemoryBudget, shares: SharesConfig) -> Self {
        let mut r = Reassembler::default();
        r.shares = Some(shares);
        r.budget = Some(budget.clone());
        r
    }

    /// Remove partial payload `key` with its bookkeeping.
    fn take_partial(&mut self, key: &Key) -> Option<Partial> {
        let p = self.partial.remove(key)?;
        self.held -= p.cost;
        if let Some(b) = &self.budget {
            b.release_from(BufferKind::Reassembly, key.0.ip(), p.cost);
        }
        self.sources.remove(key.0.ip());
        Some(p)
    }

    /// Room for a new payload from `peer` in its shares and the total:
    /// a slot without a new segment for `reassembly_idle_timeout` (its
    /// source's own when a share is the bound) is given up for it, its
    /// later segments answered `503`. `Err` names the bound that refuses.
    fn room_for(
        &mut self,
        cfg: &SegmentConfig,
        now: Instant,
        peer: SocketAddr,
    ) -> Result<(), EngineLimit> {
        let Some(sh) = self.shares else {
            return self.total_room(cfg, now);
        };
        let ip = peer.ip();
        while let Some(scope) =
            self.sources
                .full(ip, sh.reassemblies_per_source, sh.reassemblies_per_prefix)
        {
            let mine = |k: &Key| match scope {
                Scope::Source => k.0.ip() == ip,
                Scope::Prefix => prefix_of(k.0.ip()) == prefix_of(ip),
            };
            if !self.give_up_idle(cfg, now, sh.reassembly_idle_timeout, mine) {
                return Err(match scope {
                    Scope::Source => EngineLimit::ReassembliesSource,
                    Scope::Prefix => EngineLimit::ReassembliesPrefix,
                });
            }
        }
        self.total_room(cfg, now)
    }

    fn total_room(&mut self, cfg: &SegmentConfig, now: Instant) -> Result<(), EngineLimit> {
        let idle = self
            .shares
            .map_or(cfg.reassembly_timeout, |s| s.reassembly_idle_timeout);
        while self.partial.len() >= cfg.max_reassemblies {
            if !self.give_up_idle(cfg, now, idle, |_| true) {
                return Err(EngineLimit::Reassemblies);
            }
        }
        Ok(())
    }

    /// Give up the longest-idle slot matching `which` if it has been idle
    /// for `idle`; false when none has.
    fn give_up_idle(
        &mut self,
        cfg: &SegmentConfig,
        now: Instant,
        idle: Duration,
        which: impl Fn(&Key) -> bool,
    ) -> bool {
        let victim = self
            .partial
            .iter()
            .filter(|(k, p)| which(k) && now.saturating_duration_since(p.last_progress) >= idle)
            .min_by_key(|(_, p)| p.last_progress)
            .map(|(k, _)| k.clone());
        let Some(key) = victim else {
            return false;
        };
        tracing::debug!(peer = %key.0, id = %key.1, "idle reassembly slot given up for a new transfer");
        self.take_partial(&key);
        self.finish(
            cfg,
            now,
            key,
            Some(Refusal::Busy(EngineLimit::Reassemblies)),
        );
        true
    }

    /// Bytes held over all partial payloads.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held
    }

    /// Partial payloads held.
    pub(crate) fn len(&self) -> usize {
        self.partial.len()
    }

    /// Payload ids remembered as finished.
    #[cfg(test)]
    pub(crate) fn finished_len(&self) -> usize {
        self.finished.len()
    }

    fn finish(&mut self, cfg: &SegmentConfig, now: Instant, key: Key, refusal: Option<Refusal>) {
        if cfg.max_finished == 0 {
            return;
        }
        if let Some(r) = self.finished_set.get_mut(&key) {
            *r = r.or(refusal);
            return;
        }
        self.finished_set.insert(key.clone(), refusal);
        while self.finished.len() >= cfg.max_finished {
            if let Some((_, old)) = self.finished.pop_front() {
                self.finished_set.remove(&old);
            }
        }
        self.finished.push_back((now, key));
    }

    fn drop_partial(&mut self, key: &Key) {
        self.take_partial(key);
    }

    fn refuse(&mut self, cfg: &SegmentConfig, now: Instant, key: Key, r: Refusal) -> Offer {
        self.drop_partial(&key);
        self.finish(cfg, now, key, Some(r));
        Offer::Refused(r)
    }

    /// Refuse payload `id` from `peer` for a reason found outside (a hash
    /// that did not match), also after it completed: drop what is held,
    /// and answer later segments with the same refusal.
    pub(crate) fn abandon(
        &mut self,
        cfg: &SegmentConfig,
        now: Instant,
        peer: SocketAddr,
        id: String,
        r: Refusal,
    ) {
        let key = (peer, id);
        self.drop_partial(&key);
        self.finish(cfg, now, key, Some(r));
    }

    /// Take segment `index` of `count` of payload `id` from `peer`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn offer(
        &mut self,
        cfg: &SegmentConfig,
        now: Instant,
        peer: SocketAddr,
        id: String,
        index: u64,
        count: u64,
        payload_len: Option<u64>,
        pdu: Pdu,
    ) -> Offer {
        let key = (peer, id);
        if let Some(r) = self.finished_set.get(&key) {
            return Offer::Late(*r);
        }
        if count > cfg.max_segments {
            return self.refuse(cfg, now, key, Refusal::TooLarge(EngineLimit::SegmentCount));
        }
        if payload_len.is_some_and(|l| l > cfg.max_payload_len as u64) {
            return self.refuse(cfg, now, key, Refusal::TooLarge(EngineLimit::PayloadSize));
        }
        let cost = pdu.as_bytes().len() + PART_OVERHEAD;
        let body = pdu.body().len();
        match self.partial.get(&key) {
            Some(p) => {
                if p.count != count {
                    return self.refuse(
                        cfg,
                        now,
                        key,
                        Refusal::Inconsistent("Segment-Count differs"),
                    );
                }
                if let (Some(a), Some(b)) = (p.payload_len, payload_len) {
                    if a != b {
                        return self.refuse(
                            cfg,
                            now,
                            key,
                            Refusal::Inconsistent("Payload-Length differs"),
                        );
                    }
                }
                if p.parts.contains_key(&index) {
                    return Offer::Duplicate;
                }
                if p.body_len + body > cfg.max_payload_len {
                    return self.refuse(cfg, now, key, Refusal::TooLarge(EngineLimit::PayloadSize));
                }
            }
            None => {
                // Refuse the newcomer: evicting a payload that is under way
                // would let a flood cancel real transfers (only a slot idle
                // past `reassembly_idle_timeout` is given up for it).
                if let Err(limit) = self.room_for(cfg, now, peer) {
                    return self.refuse(cfg, now, key, Refusal::Busy(limit));
                }
                if body > cfg.max_payload_len {
                    return self.refuse(cfg, now, key, Refusal::TooLarge(EngineLimit::PayloadSize));
                }
            }
        }
        if self.held + cost > cfg.max_reassembly_bytes {
            return self.refuse(cfg, now, key, Refusal::Busy(EngineLimit::ReassemblyBytes));
        }
        let charged = |b: &MemoryBudget| b.try_charge_from(BufferKind::Reassembly, peer.ip(), cost);
        if self.budget.as_ref().is_some_and(|b| !charged(b)) {
            return self.refuse(cfg, now, key, Refusal::Busy(EngineLimit::MemoryBudget));
        }
        if !self.partial.contains_key(&key) {
            self.sources.add(peer.ip());
        }
        let p = self.partial.entry(key.clone()).or_insert_with(|| Partial {
            count,
            payload_len,
            parts: BTreeMap::new(),
            body_len: 0,
            cost: 0,
            last_progress: now,
        });
        p.payload_len = p.payload_len.or(payload_len);
        p.parts.insert(index, pdu);
        p.body_len += body;
        p.cost += cost;
        p.last_progress = now;
        self.held += cost;
        if (p.parts.len() as u64) < p.count {
            return Offer::Held;
        }
        let Some(p) = self.take_partial(&key) else {
            return Offer::Held;
        };
        if p.payload_len.is_some_and(|l| l != p.body_len as u64) {
            let r = Refusal::Inconsistent("reassembled length differs from Payload-Length");
            self.finish(cfg, now, key, Some(r));
            return Offer::Refused(r);
        }
        self.finish(cfg, now, key, None);
        Offer::Complete(p.parts.into_values().collect())
    }

    /// When the next partial payload or finished id expires.
    pub(crate) fn next_deadline(&self, cfg: &SegmentConfig) -> Option<Instant> {
        let partial = self.partial.values().map(|p| p.last_progress).min();
        let finished = self.finished.front().map(|(t, _)| *t);
        [partial, finished]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + cfg.reassembly_timeout)
    }

    /// Drop what expired by `now`; returns the partial payloads dropped.
    pub(crate) fn expire(&mut self, cfg: &SegmentConfig, now: Instant) -> Vec<Expired> {
        let due = |t: Instant| t + cfg.reassembly_timeout <= now;
        while self.finished.front().is_some_and(|(t, _)| due(*t)) {
            if let Some((_, k)) = self.finished.pop_front() {
                self.finished_set.remove(&k);
            }
        }
        let gone: Vec<Key> = self
            .partial
            .iter()
            .filter(|(_, p)| due(p.last_progress))
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::with_capacity(gone.len());
        for k in gone {
            if let Some(p) = self.take_partial(&k) {
                out.push(Expired {
                    peer: k.0,
                    id: k.1.clone(),
                    received: p.parts.len() as u64,
                    count: p.count,
                });
                self.finish(cfg, now, k, None);
            }
        }
        out
    }
}

/// The request to deliver for a complete payload: the first segment's head
/// without the segment headers (and without its `Content-Hash-*`, which
/// covered that segment only), and the parts' bodies joined in order.
/// `Payload-Hash-*` stays: it covers exactly this body.
pub(crate) fn assemble(parts: &[Pdu], opts: &ParseOptions) -> Result<Pdu, ParseError> {
    let total: usize = parts.iter().map(|p| p.body().len()).sum();
    let mut body = BytesMut::with_capacity(total);
    for p in parts {
        body.extend_from_slice(p.body());
    }
    let mut b = match parts.first() {
        Some(first) => PduBuilder::from_pdu(first),
        None => PduBuilder::request("PUT", "/").expect("a valid request line"),
    };
    for h in SEGMENT_HEADERS {
        b.remove_header(h);
    }
    let content_hashes: Vec<String> = b
        .headers()
        .filter(|(n, _)| {
            crate::wire::typed::hash_header_name(n.as_str())
                .is_some_and(|(s, _, _)| s == crate::wire::HashScope::Content)
        })
        .map(|(n, _)| n.as_str().to_owned())
        .collect();
    for h in content_hashes {
        b.remove_header(&h);
    }
    b.body(body.freeze());
    let mut opts = *opts;
    opts.limits.max_body_len = opts.limits.max_body_len.max(total);
    Pdu::parse_datagram(b.to_bytes(), &opts)
}

/// Segment `index` (1-based) of `payload` cut every `chunk` bytes:
/// `template` (a request head, its body ignored) with `Segment: I/N`,
/// `Payload-Length` and that part of the payload as its body. Beside
/// `Segment: I/N` go `Segment-ID` (the template's `TX-ID`),
/// `Segment-Index` and `Segment-Count`: the triple the public reference
/// implementation reassembles (SPEC §10); without a `TX-ID` there is no
/// payload id to name and the triple is left out. Message-ID and hashes
/// are the caller's. What the engine sends, for tools that build PDUs
/// themselves (`acorn-cli send --segment-size`).
pub fn segment_request(
    template: &PduBuilder,
    payload: &Bytes,
    chunk: usize,
    index: u64,
) -> PduBuilder {
    let count = segment_count(payload.len(), chunk);
    let mut b = template.clone();
    let _ = b.set_value(&H_SEGMENT, Bytes::from(format!("{index}/{count}")));
    if let Some(tx) = template.get_header(names::TX_ID).cloned() {
        let _ = b.set_value(&H_SEGMENT_ID, tx);
        b.set_number(&H_SEGMENT_INDEX, index);
        b.set_number(&H_SEGMENT_COUNT, count);
    }
    b.set_number(&H_PAYLOAD_LENGTH, payload.len() as u64);
    b.body(chunk_of(payload, chunk, index));
    b
}

/// Segments of `chunk` bytes a payload of `len` bytes takes (at least one).
pub fn segment_count(len: usize, chunk: usize) -> u64 {
    len.div_ceil(chunk.max(1)).max(1) as u64
}

/// The `count` bodies of a payload cut every `chunk` bytes (zero-copy).
pub(crate) fn chunk_of(payload: &Bytes, chunk: usize, index: u64) -> Bytes {
    let start = (index as usize - 1)
        .saturating_mul(chunk)
        .min(payload.len());
    let end = start.saturating_add(chunk).min(payload.len());
    payload.slice(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(tx: &str, i: u64, n: u64, body: &[u8], payload_len: Option<u64>) -> Pdu {
        let mut b = PduBuilder::request("PUT", "/big").unwrap();
        b.header("TX-ID", tx.to_owned()).unwrap();
        b.header("Segment", format!("{i}/{n}")).unwrap();
        if let Some(l) = payload_len {
            b.header("Payload-Length", l.to_string()).unwrap();
        }
        b.header("Content-Hash-SHA256", "AAAA").unwrap();
        b.header("Payload-Hash-SHA256", "BBBB").unwrap();
        b.body(Bytes::copy_from_slice(body));
        Pdu::parse_datagram(b.to_bytes(), &ParseOptions::default()).unwrap()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn offer(r: &mut Reassembler, cfg: &SegmentConfig, now: Instant, p: Pdu) -> Offer {
        let s = p.segment().unwrap().unwrap();
        let id = payload_id(&p).unwrap();
        let l = p.payload_length().unwrap();
        r.offer(cfg, now, peer(), id, s.index, s.count, l, p)
    }

    #[test]
    fn out_of_order_and_duplicates_complete_once() {
        let cfg = SegmentConfig::default();
        let mut r = Reassembler::default();
        let now = Instant::now();
        for (i, body) in [(3, "cc"), (1, "aa"), (3, "cc")] {
            let o = offer(&mut r, &cfg, now, seg("t1", i, 3, body.as_bytes(), Some(6)));
            assert!(matches!(o, Offer::Held | Offer::Duplicate), "{o:?}");
        }
        assert_eq!(r.len(), 1);
        let Offer::Complete(parts) = offer(&mut r, &cfg, now, seg("t1", 2, 3, b"bb", Some(6)))
        else {
            panic!("not complete")
        };
        assert_eq!((r.len(), r.held_bytes()), (0, 0));
        let p = assemble(&parts, &ParseOptions::default()).unwrap();
        assert_eq!(p.body(), b"aabbcc");
        assert!(p.segment().unwrap().is_none());
        assert!(p.payload_length().unwrap().is_none());
        assert!(p.header("Content-Hash-SHA256").is_none());
        assert_eq!(p.header("Payload-Hash-SHA256"), Some(&b"BBBB"[..]));
        assert_eq!(p.tx_id().unwrap(), Some("t1"));
        // A late copy is recognised, not held again.
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("t1", 2, 3, b"bb", Some(6))),
            Offer::Late(None)
        ));
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn inconsistent_segments_and_lengths_are_refused() {
        let cfg = SegmentConfig::default();
        let mut r = Reassembler::default();
        let now = Instant::now();
        offer(&mut r, &cfg, now, seg("a", 1, 2, b"x", None));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("a", 2, 3, b"x", None)),
            Offer::Refused(Refusal::Inconsistent(_))
        ));
        assert_eq!((r.len(), r.held_bytes()), (0, 0));
        // A later segment of the refused payload gets the same refusal.
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("a", 2, 2, b"x", None)),
            Offer::Late(Some(Refusal::Inconsistent(_)))
        ));
        offer(&mut r, &cfg, now, seg("b", 1, 2, b"x", Some(5)));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("b", 2, 2, b"x", Some(5))),
            Offer::Refused(Refusal::Inconsistent(_))
        ));
    }

    #[test]
    fn every_bound_is_enforced() {
        let now = Instant::now();
        // Every empty segment below is the same size: three fit, not four.
        let one = seg("p", 1, 4, b"", None).as_bytes().len() + PART_OVERHEAD;
        let cfg = SegmentConfig {
            max_segments: 4,
            max_payload_len: 10,
            max_reassemblies: 2,
            max_reassembly_bytes: 3 * one + one / 2,
            max_finished: 2,
            ..SegmentConfig::default()
        };
        let mut r = Reassembler::default();
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("n", 1, 5, b"x", None)),
            Offer::Refused(Refusal::TooLarge(EngineLimit::SegmentCount))
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("l", 1, 2, b"x", Some(11))),
            Offer::Refused(Refusal::TooLarge(EngineLimit::PayloadSize))
        ));
        offer(&mut r, &cfg, now, seg("g", 1, 2, b"123456", None));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("g", 2, 2, b"123456", None)),
            Offer::Refused(Refusal::TooLarge(EngineLimit::PayloadSize))
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("p", 1, 4, b"", None)),
            Offer::Held
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("q", 1, 4, b"", None)),
            Offer::Held
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("r", 1, 4, b"", None)),
            Offer::Refused(Refusal::Busy(EngineLimit::Reassemblies))
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("p", 2, 4, b"", None)),
            Offer::Held
        ));
        assert!(matches!(
            offer(&mut r, &cfg, now, seg("q", 2, 4, b"", None)),
            Offer::Refused(Refusal::Busy(EngineLimit::ReassemblyBytes))
        ));
        assert!(r.held_bytes() <= cfg.max_reassembly_bytes);
        // Only two finished ids are remembered.
        assert_eq!(r.finished_len(), 2);
        // Expiry after the timeout, with what was held reported.
        assert_eq!(r.next_deadline(&cfg), Some(now + cfg.reassembly_timeout));
        let later = now + cfg.reassembly_timeout;
        let gone = r.expire(&cfg, later);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].received, gone[0].count), (2, 4));
        assert_eq!((r.len(), r.held_bytes()), (0, 0));
        assert!(r.expire(&cfg, later + cfg.reassembly_timeout).is_empty());
        assert_eq!(r.finished_len(), 0);
        assert_eq!(r.next_deadline(&cfg), None);
    }

    #[test]
    fn plan_and_chunks_cover_the_payload() {
        assert_eq!(plan(200, 1000, 1200), Some((1000, 1)));
        assert_eq!(plan(200, 1001, 1200), Some((1000, 2)));
        assert_eq!(plan(1200, 10, 1200), None);
        let p = Bytes::from((0..=255u8).cycle().take(2500).collect::<Vec<u8>>());
        let joined: Vec<u8> = (1..=3)
            .flat_map(|i| chunk_of(&p, 1000, i).to_vec())
            .collect();
        assert_eq!(joined, p.to_vec());
        assert_eq!(chunk_of(&p, 1000, 3).len(), 500);
    }
}
