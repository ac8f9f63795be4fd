//! The endpoint's side of segmentation, integrity, timing headers and
//! `To` (SPEC §3, §5, §7): the glue between the transaction machinery of
//! [`Endpoint`] and the pure logic of [`segment`](crate::engine::segment),
//! [`integrity`](crate::engine::integrity) and
//! [`timing`](crate::engine::timing).
//!
//! **Outgoing segmented request.** The application's request becomes a
//! *parent* transaction: registered under its TX-ID like any request (so
//! the final reply finds it), but never transmitted itself and without a
//! timer until every segment is acknowledged — then it is `Acked` and waits
//! for the reply like any request. Each segment is a transaction of kind
//! [`OutKind::Segment`] with its own Message-ID, Seq and retransmission
//! timer, found by the `Ack-Message-ID` of its ACK (every ACK carrying the
//! parent's TX-ID is routed here). A segment that exhausts its attempts
//! fails the parent (`RequestTimedOut`). A refusal (4xx/5xx), early or
//! not, ends the parent and stops the segments still in flight. A 2xx/3xx
//! reply that comes before every segment is acknowledged is not the answer
//! to the whole payload (SPEC §10: the reference implementation answers
//! each segment): when its `Ack-Message-ID` names a segment in flight it
//! stands in for that segment's ACK (SPEC §4), and it is held; the reply
//! held when the last segment is acknowledged is the final reply. A peer
//! that never answers the rest fails the request on the segments' timers.
//!
//! **Incoming segment.** Acknowledged and recorded like any request, under
//! the key (TX-ID, segment index) so segments are not duplicates of each
//! other; its own transaction is closed at once (the ACK is its whole
//! answer). The payload's own transaction — the one the application
//! answers — is made when the last segment arrives, under the plain TX-ID
//! key, so the requester's ACK of the final reply finds it. Refusals of a
//! payload (bounds, inconsistent segments, hash mismatch) are final replies
//! that leave no transaction behind (a flood must not fill the table with
//! refusals, and a refusal must not be retransmitted to a spoofed source);
//! the reassembler remembers the refusal, and every later segment of the
//! payload is answered with it again, so a lost refusal is repeated.

use super::*;
use crate::engine::integrity::{self, Verdict};
use crate::engine::segment::{self, Offer, Reassembler, Refusal};
use crate::engine::timing;
use crate::wire::HashScope;
use std::collections::HashSet;

/// Status of a request whose `Content-Hash-*` or `Payload-Hash-*` does not
/// match (SPEC §7 "a 4xx reply"). The reason text says which scope.
pub const HASH_MISMATCH_STATUS: u16 = 400;

/// A segment is resent at once (not at its timer) when this many segments
/// sent after it were acknowledged before it: it or its ACK was lost (the
/// duplicate-ACK rule of TCP fast retransmit, RFC 5681). Three tolerates
/// the reordering of a couple of datagrams.
const FAST_RETRANSMIT_ACKS: u32 = 3;

/// Bytes reserved for headers that may still grow after the budget check
/// (`Attempt` digits when `max_attempts` gains a digit, rounding).
const HEAD_SLACK: usize = 8;

/// Segmentation state of one endpoint.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    /// Outgoing segmented requests, by parent transaction id.
    out: HashMap<u64, OutTransfer>,
    /// Segment transaction id → parent transaction id.
    seg_parent: HashMap<u64, u64>,
    /// Incoming partial payloads.
    reasm: Reassembler,
    /// Peers reached over a stream transport: never segmented.
    stream_peers: HashSet<SocketAddr>,
}

impl Transfers {
    /// Segmentation state whose reassembly keeps the per-source shares
    /// and charges the memory budget (SPEC §9).
    pub(super) fn new(
        budget: &crate::budget::MemoryBudget,
        shares: crate::engine::SharesConfig,
    ) -> Self {
        Transfers {
            reasm: Reassembler::attach(budget, shares),
            ..Transfers::default()
        }
    }
}

/// One outgoing segmented request.
#[derive(Debug)]
struct OutTransfer {
    /// The head every segment starts from (no body, no Message-ID).
    template: PduBuilder,
    payload: Bytes,
    chunk: usize,
    count: u64,
    /// The next index to send (1-based).
    next: u64,
    acked: u64,
    /// Segments in flight: Message-ID → segment transaction.
    in_flight: HashMap<String, u64>,
    /// Transmissions of this payload so far (orders the ones below).
    sends: u64,
    /// Per segment in flight: its last transmission, for fast retransmit.
    last_send: HashMap<u64, LastSend>,
    /// `Payload-Hash-*` headers, computed once, sent on segment 1.
    payload_hashes: Vec<(HeaderName, Bytes)>,
    rtt: Rtt,
    /// The latest 2xx/3xx reply that came before every segment was
    /// acknowledged, with its source and session (see the module docs).
    held: Option<(Pdu, SocketAddr, Option<u64>)>,
}

/// When a segment in flight was last sent, and what was acknowledged since.
#[derive(Debug, Clone, Copy)]
struct LastSend {
    /// Its place in the payload's transmissions.
    order: u64,
    /// The place of its first transmission: an ACK of a resent segment may
    /// answer any copy, so it vouches only for what was sent before the first.
    first_order: u64,
    /// The attempt that transmission was (a timer retransmission changes it).
    attempt: u32,
    /// Segments sent after it and acknowledged since.
    later_acks: u32,
}

/// RFC 6298 round-trip estimator over first-try segment ACKs (Karn).
#[derive(Debug, Default, Clone, Copy)]
struct Rtt {
    srtt: Option<Duration>,
    rttvar: Duration,
}

impl Rtt {
    fn observe(&mut self, sample: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(sample);
                self.rttvar = sample / 2;
            }
            Some(s) => {
                let diff = s.abs_diff(sample);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((s * 7 + sample) / 8);
            }
        }
    }

    /// The first retransmission timer: the estimate, within `[min, max]`
    /// (`max` wins if they cross); `max` until there is a sample.
    fn first_timer(&self, min: Duration, max: Duration) -> Duration {
        match self.srtt {
            Some(s) => (s + self.rttvar * 4).max(min).min(max),
            None => max,
        }
    }
}

fn digits(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The key of a payload's own transaction: the plain request key of its
/// segments (TX-ID, else Message-ID), without the segment index.
fn whole_key(pdu: &Pdu) -> Option<String> {
    match pdu.tx_id() {
        Ok(Some(t)) => Some(format!("t:{t}")),
        _ => pdu.message_id().ok().flatten().map(|m| format!("m:{m}")),
    }
}

/// The suffix that makes each segment its own incoming transaction.
pub(super) fn segment_key_suffix(pdu: &Pdu) -> Option<String> {
    let s = pdu.segment().ok().flatten()?;
    Some(format!("#s{}", s.index))
}

impl Endpoint {
    // ------------------------------------------------------------ public

    /// Tell the engine that `peer` is (or no longer is) reached over a
    /// stream transport (TCP), where a payload up to the body limit goes as
    /// one PDU and is never segmented. The runtime calls this as it opens
    /// and closes connections; the set holds only what it is told.
    pub fn set_stream_peer(&mut self, peer: SocketAddr, stream: bool) {
        if stream {
            self.transfers.stream_peers.insert(peer);
        } else {
            self.transfers.stream_peers.remove(&peer);
        }
    }

    /// Is `peer` reached over a stream transport? (Its connection's
    /// handshake proved the address: SPEC §9's budget does not apply.)
    pub(super) fn is_stream_peer(&self, peer: SocketAddr) -> bool {
        self.transfers.stream_peers.contains(&peer)
    }

    /// Bytes held in partial payloads (bounded by
    /// [`SegmentConfig::max_reassembly_bytes`](crate::engine::SegmentConfig::max_reassembly_bytes)).
    pub fn reassembly_bytes(&self) -> usize {
        self.transfers.reasm.held_bytes()
    }

    /// Partial payloads held (bounded by
    /// [`SegmentConfig::max_reassemblies`](crate::engine::SegmentConfig::max_reassemblies)).
    pub fn reassemblies(&self) -> usize {
        self.transfers.reasm.len()
    }

    /// Outgoing segmented requests still sending segments.
    pub fn segmented_requests(&self) -> usize {
        self.transfers.out.len()
    }

    // ------------------------------------------------------------ stamps

    /// `TS`/`Date` and, when this node has an identity, `To` (the
    /// destination's address unless the application set one): what every
    /// request gets before the budget check. SPEC §5: `From`/`To` are
    /// filled from the configured identity.
    pub(super) fn stamp_request(&self, now: Instant, dest: SocketAddr, b: &mut PduBuilder) {
        timing::stamp(b, self.cfg.timestamp, self.unix_now(now));
        if self.cfg.identity.is_some() && b.get_header("To").is_none() {
            let _ = b.set_value(&H_TO, Bytes::from(dest.to_string()));
        }
    }

    /// `Content-Hash-*` over the body, when configured and there is a body.
    pub(super) fn stamp_content_hash(&self, dest: SocketAddr, b: &mut PduBuilder) {
        if self.cfg.integrity.send.is_empty() || b.body_bytes().is_empty() {
            return;
        }
        let body = b.body_bytes().clone();
        let skipped = integrity::stamp(b, HashScope::Content, &self.cfg.integrity, dest, &body);
        if skipped > 0 {
            debug!(%dest, skipped, "no HMAC key for the peer; keyed hashes left out");
        }
    }

    /// What a reply gets: `TS`/`Date` and `Content-Hash-*`.
    pub(super) fn stamp_reply(&self, now: Instant, dest: SocketAddr, b: &mut PduBuilder) {
        timing::stamp(b, self.cfg.timestamp, self.unix_now(now));
        self.stamp_content_hash(dest, b);
    }

    /// The `TS`/`Date` of a request about to be retransmitted.
    pub(super) fn restamp(&self, now: Instant, b: &mut PduBuilder) {
        timing::stamp(b, self.cfg.timestamp, self.unix_now(now));
    }

    // ----------------------------------------------------------- budget

    /// Bytes the session headers (`Seq`, `Ack-Seq`, `Session-ID`) may add.
    fn session_reserve(&self, session: Option<u64>) -> usize {
        let Some(sid) = session else { return 0 };
        let id = self
            .sessions
            .get(&sid)
            .and_then(|s| s.session_id.as_ref())
            .map_or(64, |i| i.len().max(64));
        // "Seq: " u64 CRLF, "Ack-Seq: " u64 CRLF, "Session-ID: " id CRLF
        (5 + 20 + 2) + (9 + 20 + 2) + (12 + id + 2)
    }

    fn head_len(b: &PduBuilder) -> usize {
        let mut h = b.clone();
        h.body(Bytes::new());
        h.to_bytes().len()
    }

    /// Whether `b` (stamped, with its TX-ID and Message-ID) would encode
    /// larger than the datagram budget toward `dest`.
    pub(super) fn over_budget(
        &self,
        dest: SocketAddr,
        session: Option<u64>,
        b: &PduBuilder,
    ) -> bool {
        let body = b.body_bytes().len();
        if body == 0 || self.transfers.stream_peers.contains(&dest) {
            return false;
        }
        let len = Self::head_len(b)
            + (16 + digits(body) + 2)
            + integrity::stamp_len(&self.cfg.integrity, HashScope::Content)
            + self.session_reserve(session)
            + HEAD_SLACK
            + body;
        len > self.cfg.max_datagram
    }

    /// The largest head a segment of `template` (a head without body,
    /// Message-ID or hashes) can have, for a payload of `payload` bytes.
    fn segment_head_len(
        &self,
        template: &PduBuilder,
        session: Option<u64>,
        payload: usize,
    ) -> usize {
        let d = digits(payload);
        Self::head_len(template)
            + (12 + 20 + 2) // "Message-ID: " id CRLF (ids are 17 bytes)
            + (9 + 2 * d + 1 + 2) // "Segment: I/N" CRLF, N <= payload
            + (16 + d + 2) // "Payload-Length: " CRLF
            + segment::triple_len(
                template.get_header(names::TX_ID).map_or(0, |t| t.len()),
                d,
            ) // SPEC §10: Segment-ID, -Index, -Count
            + (16 + digits(self.cfg.max_datagram) + 2) // "Content-Length: " CRLF
            + integrity::stamp_len(&self.cfg.integrity, HashScope::Content)
            + integrity::stamp_len(&self.cfg.integrity, HashScope::Payload)
            + self.session_reserve(session)
            + HEAD_SLACK
    }

    // ---------------------------------------------------------- sending

    /// Send `b` (stamped, with TX-ID and Message-ID) as segments. The
    /// request is the parent transaction `RequestId`; segments go out as
    /// the window allows.
    pub(super) fn start_segmented(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        session: Option<u64>,
        mut b: PduBuilder,
        ids: RequestIds,
    ) -> Result<RequestId, EngineError> {
        let RequestIds {
            id,
            tx_id,
            message_id,
        } = ids;
        let cfg = self.cfg.segments;
        let payload = b.body_bytes().clone();
        b.body(Bytes::new());
        b.remove_header("Message-ID");
        let head = self.segment_head_len(&b, session, payload.len());
        let too_large = EngineError::PayloadTooLarge {
            len: payload.len(),
            max: cfg.max_payload_len,
        };
        let Some((chunk, count)) = segment::plan(head, payload.len(), self.cfg.max_datagram) else {
            return Err(too_large);
        };
        if payload.len() > cfg.max_payload_len || count > cfg.max_segments {
            return Err(too_large);
        }
        let window = cfg.window.max(1);
        if self.out_txs.len() + 1 + window.min(count as usize)
            > self.cfg.limits.max_pending_requests
        {
            self.emit(Event::LimitReached {
                limit: EngineLimit::PendingRequests,
                peer: Some(dest),
            });
            return Err(EngineError::TooManyPending);
        }
        let (mut payload_hashes, skipped) =
            integrity::headers(HashScope::Payload, &self.cfg.integrity, dest, &payload);
        if skipped > 0 {
            debug!(%dest, skipped, "no HMAC key for the peer; keyed hashes left out");
        }
        // A `Content-Hash-*` the application wrote covers the whole body:
        // on segments it is a `Payload-Hash-*` (on each segment it would
        // not match, and the payload would be refused).
        let app_hashes: Vec<(String, Bytes)> = b
            .headers()
            .filter(|(n, _)| {
                crate::wire::typed::hash_header_name(n.as_str())
                    .is_some_and(|(scope, _, _)| scope == HashScope::Content)
            })
            .map(|(n, v)| (n.as_str().to_owned(), v.clone()))
            .collect();
        for (name, value) in app_hashes {
            b.remove_header(&name);
            let renamed = format!("Payload-Hash-{}", &name["Content-Hash-".len()..]);
            if let Ok(n) = HeaderName::new(renamed) {
                payload_hashes.push((n, value));
            }
        }
        debug!(request = id, %dest, tx = %tx_id, len = payload.len(), count, chunk, "segmented request");
        let mut t = OutTx::first(tx_id, message_id, dest, b.clone(), OutKind::App, now);
        t.session = session;
        // The parent arms no timer of its own: its segments carry them.
        self.track_out(id, t);
        self.transfers.out.insert(
            id,
            OutTransfer {
                template: b,
                payload,
                chunk,
                count,
                next: 1,
                acked: 0,
                in_flight: HashMap::new(),
                sends: 0,
                last_send: HashMap::new(),
                payload_hashes,
                rtt: Rtt::default(),
                held: None,
            },
        );
        self.release_segments(now, id);
        Ok(RequestId(id))
    }

    /// Send segments of `parent` while the window has room.
    fn release_segments(&mut self, now: Instant, parent: u64) {
        let cfg = self.cfg.segments;
        let window = cfg.window.max(1);
        let Some((dest, session)) = self.out_txs.get(&parent).map(|t| (t.dest, t.session)) else {
            return;
        };
        let parent_tx = self
            .out_txs
            .get(&parent)
            .map(|t| t.tx_id.clone())
            .unwrap_or_default();
        loop {
            let Some(t) = self.transfers.out.get_mut(&parent) else {
                return;
            };
            if t.next > t.count || t.in_flight.len() >= window {
                return;
            }
            let index = t.next;
            t.next += 1;
            let mut b = segment::segment_request(&t.template, &t.payload, t.chunk, index);
            if index == 1 {
                for (n, v) in &t.payload_hashes {
                    let _ = b.set_value(n, v.clone());
                }
            }
            let rto = t.rtt.first_timer(cfg.min_rto, self.cfg.retry.interval(1));
            let mid = self.new_id("m");
            let _ = b.set_value(&H_MESSAGE_ID, Bytes::from(mid.clone()));
            self.restamp(now, &mut b);
            self.stamp_content_hash(dest, &mut b);
            let (seq, _) = self.send_pdu(session, b.clone(), dest, SentKind::Other);
            if let (Some(seq), Some(sid)) = (seq, session) {
                b.set_number(&H_SEQ, seq);
                if let Some(id) = self.sessions.get(&sid).and_then(|s| s.session_id.clone()) {
                    let _ = b.set_value(&H_SESSION_ID, Bytes::from(id));
                }
            }
            let sid = self.handle();
            trace!(request = parent, segment = index, ?seq, "segment sent");
            self.out_txs.insert(
                sid,
                OutTx {
                    // Internal key only: a space cannot occur in a TX-ID.
                    tx_id: format!("{parent_tx} s{index}"),
                    message_id: mid.clone(),
                    dest,
                    session,
                    seq,
                    builder: b,
                    kind: OutKind::Segment,
                    attempt: 1,
                    acked: false,
                    deadline: None,
                    sent_at: now,
                    initiated: self.paths.initiating,
                },
            );
            self.transfers.seg_parent.insert(sid, parent);
            if let Some(t) = self.transfers.out.get_mut(&parent) {
                t.in_flight.insert(mid, sid);
                t.sends += 1;
                let order = t.sends;
                t.last_send.insert(
                    sid,
                    LastSend {
                        order,
                        first_order: order,
                        attempt: 1,
                        later_acks: 0,
                    },
                );
            }
            self.set_out_deadline(sid, Some(now + rto));
        }
    }

    /// An ACK for a TX-ID that is a segmented request of ours: acknowledge
    /// the segment its `Ack-Message-ID` names. True when the ACK was ours
    /// to handle (an ACK naming no segment in flight is ignored, SPEC §4).
    pub(super) fn segment_ack(&mut self, now: Instant, pdu: &Pdu) -> bool {
        let Some(parent) = self.find_out(pdu) else {
            return false;
        };
        if !self.transfers.out.contains_key(&parent) {
            return false;
        }
        self.ack_named_segment(now, parent, pdu);
        true
    }

    /// Acknowledge the segment of `parent` in flight that `pdu`'s
    /// `Ack-Message-ID` names, if any (an ACK, or a reply standing in for
    /// one, SPEC §4).
    fn ack_named_segment(&mut self, now: Instant, parent: u64, pdu: &Pdu) {
        let seg = self.transfers.out.get(&parent).and_then(|t| {
            let m = pdu.ack_message_id().ok().flatten()?;
            t.in_flight.get(m).copied()
        });
        if let Some(seg) = seg {
            self.out_acked(now, seg);
        }
    }

    /// A reply for request `parent` while it is a segmented request with
    /// segments unacknowledged (see the module docs): acknowledge the
    /// segment it names, and hold it unless that was the last. True when
    /// the reply was taken here (held, or delivered through the last ACK).
    pub(super) fn segment_reply(
        &mut self,
        now: Instant,
        parent: u64,
        from: SocketAddr,
        session: Option<u64>,
        pdu: &Pdu,
    ) -> bool {
        let status = pdu.status().unwrap_or(0);
        let Some(t) = self.transfers.out.get_mut(&parent) else {
            return false;
        };
        if !(200..400).contains(&status) {
            return false; // a refusal answers the whole payload
        }
        debug!(
            request = parent,
            status, "reply before every segment is acknowledged: held"
        );
        t.held = Some((pdu.clone(), from, session));
        // SPEC §4: the reply stands in for the ACK of the segment it names;
        // when that was the last, `segment_acked` delivers the held reply.
        self.ack_named_segment(now, parent, pdu);
        true
    }

    /// Segment `seg` was acknowledged (its session Seq already released):
    /// let the next one go, or acknowledge the parent when all are.
    pub(super) fn segment_acked(&mut self, now: Instant, seg: u64, sample: Option<Duration>) {
        let Some(parent) = self.transfers.seg_parent.remove(&seg) else {
            return;
        };
        self.sync_last_sends(parent);
        let done = self.finish_out(seg);
        let Some(t) = self.transfers.out.get_mut(&parent) else {
            return;
        };
        if let Some(d) = done {
            t.in_flight.remove(&d.message_id);
        }
        t.acked += 1;
        if let Some(s) = sample {
            t.rtt.observe(s);
        }
        // Segments sent before this one and still unacknowledged were
        // probably lost: after enough such ACKs, resend them now.
        let mut resend = Vec::new();
        if let Some(acked) = t.last_send.remove(&seg) {
            for (&other, ls) in t.last_send.iter_mut() {
                if ls.order < acked.first_order {
                    ls.later_acks += 1;
                    if ls.later_acks == FAST_RETRANSMIT_ACKS {
                        resend.push(other);
                    }
                }
            }
        }
        resend.sort_unstable();
        for other in resend {
            self.fast_retransmit(now, parent, other);
        }
        let Some(t) = self.transfers.out.get_mut(&parent) else {
            return;
        };
        if t.acked >= t.count {
            // Every segment is held by the peer: free the payload and wait
            // for the reply like any acknowledged request; a reply that
            // came early is that reply now.
            let held = self.transfers.out.remove(&parent).and_then(|t| t.held);
            self.out_acked(now, parent);
            if let Some((pdu, from, session)) = held {
                self.incoming_reply(now, from, session, pdu);
            }
        } else {
            self.release_segments(now, parent);
        }
    }

    /// A segment whose timer fired since we last looked was sent anew: its
    /// place in the order of transmissions is now.
    fn sync_last_sends(&mut self, parent: u64) {
        let Some(t) = self.transfers.out.get_mut(&parent) else {
            return;
        };
        for (seg, ls) in t.last_send.iter_mut() {
            let attempt = self.out_txs.get(seg).map_or(ls.attempt, |o| o.attempt);
            if attempt != ls.attempt {
                t.sends += 1;
                *ls = LastSend {
                    order: t.sends,
                    attempt,
                    later_acks: 0,
                    ..*ls
                };
            }
        }
    }

    /// Resend segment `seg` of `parent` now, as its next attempt. Its timer
    /// is twice the measured retransmission timeout (the copy is known to
    /// be needed, so a lost one is worth resending soon), capped by the
    /// policy interval of the attempt; timers after that follow the policy.
    /// The last attempt is left to the timer, so evidence of loss never
    /// fails a request early.
    fn fast_retransmit(&mut self, now: Instant, parent: u64, seg: u64) {
        let max = self.cfg.retry.max_attempts.max(1);
        let Some(t) = self.out_txs.get_mut(&seg) else {
            return;
        };
        if t.attempt + 1 >= max {
            return;
        }
        let Some(attempt) = self.resend_out(now, seg, max) else {
            return;
        };
        trace!(request = parent, segment = seg, attempt, "fast retransmit");
        self.stats.fast_retransmits += 1;
        let policy = self.cfg.retry.interval(attempt);
        let timer = self.transfers.out.get(&parent).map_or(policy, |t| {
            t.rtt.first_timer(self.cfg.segments.min_rto, policy / 2) * 2
        });
        self.set_out_deadline(seg, Some(now + timer.min(policy)));
        if let Some(t) = self.transfers.out.get_mut(&parent) {
            t.sends += 1;
            let order = t.sends;
            if let Some(ls) = t.last_send.get_mut(&seg) {
                *ls = LastSend {
                    order,
                    attempt,
                    later_acks: 0,
                    ..*ls
                };
            }
        }
    }

    /// Segment `seg` exhausted its attempts: the whole request failed.
    pub(super) fn segment_failed(&mut self, now: Instant, seg: u64) {
        let Some(parent) = self.transfers.seg_parent.remove(&seg) else {
            return;
        };
        let Some(t) = self.finish_out(parent) else {
            return;
        };
        debug!(request = parent, tx = %t.tx_id, "a segment got no ACK; request failed");
        self.emit(Event::RequestTimedOut {
            request: RequestId(parent),
        });
        if let Some(sid) = t.session {
            if self
                .sessions
                .get(&sid)
                .is_some_and(|s| s.mode == SessionMode::Ordered)
            {
                // The peer is unreachable: order cannot be kept.
                self.bye_cannot_retransmit_reason(now, sid, CloseReason::Timeout);
            }
        }
    }

    /// Transaction `id` finished: if it is a segmented request, stop the
    /// segments still in flight.
    pub(super) fn segments_finished(&mut self, id: u64) {
        let Some(t) = self.transfers.out.remove(&id) else {
            return;
        };
        for (_, seg) in t.in_flight {
            self.transfers.seg_parent.remove(&seg);
            self.finish_out(seg);
        }
    }

    // -------------------------------------------------------- receiving

    fn report_unchecked(&mut self, peer: SocketAddr, v: &Verdict) {
        for (header, reason) in &v.unchecked {
            debug!(%peer, %header, ?reason, "hash not checked");
            self.emit(Event::HashNotChecked {
                peer,
                header: header.clone(),
                reason: *reason,
            });
        }
    }

    fn integrity_failed(&mut self, peer: SocketAddr, session: Option<u64>, header: String) {
        debug!(%peer, %header, "hash mismatch; not delivered");
        self.emit(Event::IntegrityFailed {
            peer,
            session: session.map(SessionHandle),
            header,
        });
    }

    /// A request recorded as transaction `id` (ACKed, state `Waiting`) is
    /// about to be delivered: check its hashes and take segments to
    /// reassembly. Returns the request to deliver, or `None` when it was
    /// answered (`4xx`) or held.
    pub(super) fn accept_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        session: Option<u64>,
        id: u64,
        pdu: Pdu,
    ) -> Option<Pdu> {
        let seg = pdu.segment().ok().flatten();
        let key = self.cfg.integrity.key_for(from).cloned();
        let v = integrity::verify(&pdu, HashScope::Content, pdu.body(), key.as_ref());
        // The same headers come on every segment: report them once.
        if seg.is_none_or(|s| s.index == 1) {
            self.report_unchecked(from, &v);
        }
        let Some(seg) = seg else {
            let header = match v.failed {
                Some(h) => Some((h, "Content Hash Mismatch")),
                None => {
                    // Unsegmented, the body is the payload.
                    let p = integrity::verify(&pdu, HashScope::Payload, pdu.body(), key.as_ref());
                    self.report_unchecked(from, &p);
                    p.failed.map(|h| (h, "Payload Hash Mismatch"))
                }
            };
            if let Some((header, text)) = header {
                self.integrity_failed(from, session, header);
                let _ = self.respond(
                    now,
                    IncomingId(id),
                    PduBuilder::static_reply(HASH_MISMATCH_STATUS, text),
                );
                return None;
            }
            return Some(pdu);
        };
        // A segment's transaction is answered by its ACK alone.
        if let Some(t) = self.in_txs.get_mut(&id) {
            t.state = InState::Closed;
        }
        // Decision (SPEC §9): its entry may make room at once — the
        // reassembler catches a duplicate segment (index held, or payload
        // finished), so forgetting it never processes anything twice.
        self.in_acked(id);
        let (Some(payload), Some(whole)) = (segment::payload_id(&pdu), whole_key(&pdu)) else {
            self.violation(from, Violation::SegmentWithoutId);
            self.refuse(now, &pdu, from, 400, "Segment Without TX-ID");
            return None;
        };
        if self.in_by_key.contains_key(&(from, whole.clone())) {
            trace!(%from, %payload, "late segment of a delivered payload");
            return None;
        }
        let cfg = self.cfg.segments;
        if let Some(header) = v.failed {
            self.integrity_failed(from, session, header);
            let r = Refusal::HashMismatch(HashScope::Content);
            self.transfers.reasm.abandon(&cfg, now, from, payload, r);
            self.refuse_payload(now, from, &pdu, r);
            return None;
        }
        let payload_len = pdu.payload_length().ok().flatten();
        // Kept for a refusal: the segment itself goes to the reassembler.
        let head = pdu.clone();
        let offer = self.transfers.reasm.offer(
            &cfg,
            now,
            from,
            payload.clone(),
            seg.index,
            seg.count,
            payload_len,
            pdu,
        );
        match offer {
            Offer::Held | Offer::Duplicate | Offer::Late(None) => None,
            Offer::Late(Some(r)) => {
                // The refusal again, as the first one may have been lost.
                self.refuse_payload(now, from, &head, r);
                None
            }
            Offer::Refused(r) => {
                debug!(%from, %payload, ?r, "payload refused");
                match r {
                    Refusal::TooLarge(limit) | Refusal::Busy(limit) => {
                        self.emit(Event::LimitReached {
                            limit,
                            peer: Some(from),
                        })
                    }
                    Refusal::Inconsistent(reason) => {
                        self.violation(from, Violation::SegmentsInconsistent { reason })
                    }
                    Refusal::HashMismatch(_) => {}
                }
                self.refuse_payload(now, from, &head, r);
                None
            }
            Offer::Complete(parts) => {
                let whole_pdu = match segment::assemble(&parts, &self.cfg.parse) {
                    Ok(p) => p,
                    Err(e) => {
                        // Every part parsed; the joined head is the first's.
                        warn!(%from, error = %e, "reassembled payload did not parse");
                        let r = Refusal::Inconsistent("reassembled payload did not parse");
                        self.transfers.reasm.abandon(&cfg, now, from, payload, r);
                        self.refuse_payload(now, from, &head, r);
                        return None;
                    }
                };
                let p = integrity::verify_all(
                    &parts,
                    HashScope::Payload,
                    whole_pdu.body(),
                    key.as_ref(),
                );
                drop(parts);
                self.report_unchecked(from, &p);
                if let Some(header) = p.failed {
                    self.integrity_failed(from, session, header);
                    let r = Refusal::HashMismatch(HashScope::Payload);
                    self.transfers.reasm.abandon(&cfg, now, from, payload, r);
                    self.refuse_payload(now, from, &head, r);
                    return None;
                }
                let wid = self.payload_txn(now, from, id, whole, &head)?;
                debug!(%from, %payload, len = whole_pdu.body().len(), "payload reassembled");
                self.emit(Event::RequestReceived {
                    id: IncomingId(wid),
                    peer: from,
                    session: session.map(SessionHandle),
                    pdu: whole_pdu,
                });
                None
            }
        }
    }

    /// Refuse a whole payload with a final reply that leaves no state
    /// behind, like the engine's other load-shedding answers: a flood of
    /// segments must not fill the transaction table with refusals. A later
    /// segment of the payload gets the refusal again.
    fn refuse_payload(&mut self, now: Instant, from: SocketAddr, seg: &Pdu, r: Refusal) {
        let (status, text) = r.status();
        self.refuse(now, seg, from, status, text);
    }

    /// Open the payload's own transaction (what the application answers),
    /// modelled on segment transaction `seg`, under key `whole`.
    fn payload_txn(
        &mut self,
        now: Instant,
        from: SocketAddr,
        seg: u64,
        whole: String,
        head: &Pdu,
    ) -> Option<u64> {
        let key = (from, whole);
        if self.in_by_key.contains_key(&key) {
            return None;
        }
        let t = self.in_txs.get(&seg)?;
        let txn = InTx {
            key: key.clone(),
            session: t.session,
            tx_id: t.tx_id.clone(),
            message_id: t.message_id.clone(),
            requester: t.requester.clone(),
            ack: None,
            ack_dest: t.ack_dest,
            reply_dest: t.reply_dest,
            state: InState::Waiting,
            deadline: None,
        };
        if !self.make_room_in(now, from) {
            // Only young answers are remembered (reported by `admission`).
            self.refuse(now, head, from, 503, "Busy");
            return None;
        }
        let id = self.handle();
        self.remember_in(now, id, txn, head.attempt().ok().flatten());
        Some(id)
    }

    /// A reply is about to be acted on: false (and reported) when one of
    /// its hashes does not match. It is then dropped unacknowledged, so
    /// its sender retransmits it; it is never delivered.
    pub(super) fn reply_intact(
        &mut self,
        from: SocketAddr,
        session: Option<u64>,
        pdu: &Pdu,
    ) -> bool {
        if !pdu
            .headers()
            .any(|h| crate::wire::typed::hash_header_name(h.name).is_some())
        {
            return true;
        }
        let key = self.cfg.integrity.key_for(from).cloned();
        for scope in [HashScope::Content, HashScope::Payload] {
            let v = integrity::verify(pdu, scope, pdu.body(), key.as_ref());
            self.report_unchecked(from, &v);
            if let Some(header) = v.failed {
                self.integrity_failed(from, session, header);
                return false;
            }
        }
        true
    }

    // ----------------------------------------------------------- timers

    /// When a partial payload (or a remembered finished one) expires.
    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        self.transfers.reasm.next_deadline(&self.cfg.segments)
    }

    /// Drop partial payloads that made no progress for the timeout.
    pub(super) fn expire_transfers(&mut self, now: Instant) {
        let cfg = self.cfg.segments;
        if self.transfer_deadline().is_none_or(|t| t > now) {
            return;
        }
        for e in self.transfers.reasm.expire(&cfg, now) {
            debug!(peer = %e.peer, payload = %e.id, e.received, e.count, "partial payload expired");
            self.emit(Event::ReassemblyExpired {
                peer: e.peer,
                payload: e.id,
                received: e.received,
                count: e.count,
            });
        }
    }
}
