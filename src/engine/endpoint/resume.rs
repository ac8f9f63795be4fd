//! Session resumption and extra channels (SPEC §8 "Resuming a session",
//! seeds 000–002).
//!
//! The handshake is transparent to the Seq streams (seed 000: "handshake
//! packets are always 0 … after that, the order continues as it should
//! have"): the resume `REG` and its answer carry the sender's next `Seq`
//! and its `Ack-Seq` for information, but take no Seq and bypass ordering.
//! Each side then resends what the other's `Ack-Seq` says it lacks.

use super::*;
use crate::wire::typed::SessionStatus;
use std::net::IpAddr;

const H_SESSION_STATUS: HeaderName = HeaderName::from_static(names::SESSION_STATUS);

/// The one refusal every failed resume or join gets, whatever the cause,
/// so a prober learns nothing from the answer (seed 000's auth-failed).
const UNKNOWN_STATUS: u16 = 404;
const UNKNOWN_TEXT: &str = "Unknown Session";

/// Whose failed attempts are counted: an IP address (`false`), or the /24
/// or /64 prefix (`true`) that guesses spread over many addresses share
/// (SPEC §9 "per /24 or /64 prefix for guessing").
pub(super) type FailureKey = (IpAddr, bool);

/// Failed resume attempts of one IP address (or prefix) in the current window.
#[derive(Debug, Clone, Copy)]
pub(super) struct Failures {
    count: u32,
    since: Instant,
}

impl Endpoint {
    /// A fresh one-time channel token (128 bits).
    fn new_token(&mut self) -> String {
        self.new_session_id()
    }

    /// Client: resume `session` after a reconnect. `peer` is the server's
    /// address now, if it changed. Sends `REG` with the `Session-ID`, our
    /// next `Seq` and our `Ack-Seq`; retried on timeout like any request.
    pub fn resume_session(
        &mut self,
        now: Instant,
        session: SessionHandle,
        peer: Option<SocketAddr>,
    ) -> Result<(), EngineError> {
        let sid = session.0;
        let s = self
            .sessions
            .get_mut(&sid)
            .ok_or(EngineError::UnknownSession)?;
        let id = s.session_id.clone().ok_or(EngineError::NoSessionId)?;
        if let Some(p) = peer {
            if s.peer != p {
                let old = std::mem::replace(&mut s.peer, p);
                if self.session_by_peer.get(&old) == Some(&sid) {
                    self.session_by_peer.remove(&old);
                }
                self.session_by_peer.insert(p, sid);
            }
        }
        let s = self.sessions.get(&sid).ok_or(EngineError::UnknownSession)?;
        let mut b = PduBuilder::request_with(Method::REG, Target::from_static("/"));
        let _ = b.set_value(&H_SESSION_ID, Bytes::from(id));
        b.set_number(&H_SEQ, s.next_out);
        if let Some(a) = s.ack_floor() {
            b.set_number(&H_ACK_SEQ, a);
        }
        let _ = b.set_value(&H_REQ_MODE, Bytes::from_static(s.mode.as_str().as_bytes()));
        let dest = s.peer;
        self.initiated(|e| e.start_handshake(now, dest, sid, b, OutKind::Resume))
    }

    /// The one-time token a second channel presents to join `session`.
    pub fn channel_token(&self, session: SessionHandle) -> Option<&str> {
        self.sessions.get(&session.0)?.channel_token.as_deref()
    }

    /// Send a handshake request that belongs to a session but takes no Seq.
    fn start_handshake(
        &mut self,
        now: Instant,
        dest: SocketAddr,
        sid: u64,
        mut b: PduBuilder,
        kind: OutKind,
    ) -> Result<(), EngineError> {
        let (tx_id, message_id) = self.stamp_first_attempt(&mut b);
        self.send_pdu(None, b.clone(), dest, SentKind::Other);
        let id = self.handle();
        let mut t = OutTx::first(tx_id, message_id, dest, b, kind, now);
        t.session = Some(sid);
        self.track_and_arm(now, id, t);
        Ok(())
    }

    /// Is this reply the answer to one of our resume handshakes?
    pub(super) fn resume_reply_for(&self, pdu: &Pdu) -> Option<u64> {
        let id = self.find_out(pdu)?;
        (self.out_txs.get(&id)?.kind == OutKind::Resume && pdu.status().is_some_and(|s| s >= 200))
            .then_some(id)
    }

    /// Client: the server answered our resume `REG`.
    pub(super) fn resume_answered(&mut self, now: Instant, from: SocketAddr, id: u64, pdu: Pdu) {
        let Some(t) = self.finish_out(id) else { return };
        let Some(sid) = t.session else { return };
        let ack = self.send_ack(&pdu, from, None);
        self.remember_done(t.tx_id, ack_dest(&pdu, from), ack);
        let status = pdu.status().unwrap_or(0);
        if status >= 300 {
            self.drop_session(sid, CloseReason::ResumeRefused { status });
            return;
        }
        if let Ok(Some(token)) = pdu
            .header(names::CHANNEL_TOKEN)
            .map(std::str::from_utf8)
            .transpose()
        {
            if let Some(s) = self.sessions.get_mut(&sid) {
                s.channel_token = Some(token.to_owned());
            }
        }
        match pdu.session_status() {
            Ok(Some(SessionStatus::New)) => self.renewed(sid, &pdu),
            _ => {
                let ack_seq = pdu.ack_seq().ok().flatten();
                self.resend_after_resume(now, sid, ack_seq);
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.state = State::Open;
                    let peer = s.peer;
                    debug!(session = sid, %peer, "session resumed");
                    self.emit(Event::SessionResumed {
                        session: SessionHandle(sid),
                        peer,
                    });
                }
            }
        }
    }

    /// Client: the server lost the session and adopted its id afresh.
    fn renewed(&mut self, sid: u64, pdu: &Pdu) {
        let pending: Vec<u64> = self
            .out_txs
            .iter()
            .filter(|(_, t)| t.session == Some(sid) && t.kind == OutKind::App)
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            self.finish_out(id);
            self.emit(Event::RequestTimedOut {
                request: RequestId(id),
            });
        }
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        // The server's stream starts again; ours continues where it was.
        s.next_in = pdu.seq().ok().flatten();
        s.clear_buffers();
        s.peer_acked = s.next_out.checked_sub(1);
        s.state = State::Open;
        debug!(session = sid, "session renewed: the server lost its state");
        self.emit(Event::SessionRenewed {
            session: SessionHandle(sid),
        });
    }

    /// Resend every held PDU the peer's `Ack-Seq` does not cover.
    fn resend_after_resume(&mut self, now: Instant, sid: u64, ack_seq: Option<u64>) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        if let Some(a) = ack_seq {
            s.peer_holds_through(a);
        }
        let from = s.peer_acked.map_or(0, |a| a + 1);
        let last = s.retx.last_key_value().map(|(k, _)| *k);
        debug!(
            session = sid,
            from,
            ?last,
            held = s.retx.len(),
            next_out = s.next_out,
            "resending what the peer lacks"
        );
        if let Some(last) = last.filter(|&l| l >= from) {
            s.pending_resend.insert_range(from, last);
            self.flush_resends(now, sid);
        }
    }

    /// Count a failed attempt against the address and its prefix; true
    /// when either is over its budget (`resume_failures_per_window`, and
    /// [`SharesConfig::resume_failures_per_prefix`](crate::engine::SharesConfig::resume_failures_per_prefix)).
    fn resume_blocked(&mut self, ip: IpAddr, now: Instant, fail: bool) -> bool {
        let per_ip = self.cfg.resume_failures_per_window;
        let per_prefix = self.cfg.shares.resume_failures_per_prefix;
        let host = self.resume_blocked_key((ip, false), per_ip, now, fail);
        let prefix = (crate::engine::shares::prefix_of(ip), true);
        let net = self.resume_blocked_key(prefix, per_prefix, now, fail);
        host || net
    }

    fn resume_blocked_key(
        &mut self,
        ip: FailureKey,
        budget: u32,
        now: Instant,
        fail: bool,
    ) -> bool {
        let window = self.cfg.resume_failure_window;
        let max = self.cfg.limits.max_resume_failure_peers.max(1);
        let entry = self.resume_failures.get(&ip).copied();
        let mut f = match entry {
            Some(f) if now.saturating_duration_since(f.since) < window => f,
            _ => Failures {
                count: 0,
                since: now,
            },
        };
        let blocked = f.count >= budget;
        if fail && !blocked {
            f.count += 1;
        }
        if fail || entry.is_some() {
            if entry.is_none() {
                while self.resume_failures.len() >= max {
                    match self.resume_failure_order.pop_front() {
                        Some(old) => {
                            self.resume_failures.remove(&old);
                        }
                        None => break,
                    }
                }
                self.resume_failure_order.push_back(ip);
            }
            self.resume_failures.insert(ip, f);
        }
        blocked
    }

    /// Server: a `REG` naming a `Session-ID`: resume it, join a channel
    /// to it, or (unknown id) refuse or adopt by policy.
    pub(super) fn server_resume(&mut self, now: Instant, from: SocketAddr, pdu: Pdu, id: String) {
        if let Some(key) = request_key(&pdu) {
            if let Some(&known) = self.in_by_key.get(&(from, key)) {
                self.stats.duplicates += 1;
                self.resend_in(known);
                return;
            }
        }
        if self.resume_blocked(from.ip(), now, false) {
            self.violation(from, Violation::ResumeRejected);
            self.refuse(now, &pdu, from, UNKNOWN_STATUS, UNKNOWN_TEXT);
            return;
        }
        let token = pdu.header(names::CHANNEL_TOKEN).map(<[u8]>::to_vec);
        let found = self.session_by_id.get(&id).copied();
        match (found, token) {
            (Some(sid), Some(token)) => self.join_channel(now, from, sid, pdu, &token),
            (Some(sid), None) => self.resume_known(now, from, sid, pdu),
            (None, _) => {
                if self.cfg.resume_policy == super::super::config::ResumePolicy::AdoptAsNew
                    && pdu.header(names::CHANNEL_TOKEN).is_none()
                {
                    self.adopt_as_new(now, from, pdu, id);
                } else {
                    self.reject_resume(now, from, &pdu);
                }
            }
        }
    }

    fn reject_resume(&mut self, now: Instant, from: SocketAddr, pdu: &Pdu) {
        self.resume_blocked(from.ip(), now, true);
        self.violation(from, Violation::ResumeRejected);
        self.refuse(now, pdu, from, UNKNOWN_STATUS, UNKNOWN_TEXT);
    }

    /// Remember the handshake request (duplicates are answered again) and
    /// answer it outside the Seq stream.
    fn answer_handshake(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sid: u64,
        pdu: &Pdu,
        mut reply: PduBuilder,
    ) {
        let key = (
            from,
            request_key(pdu).unwrap_or_else(|| format!("#resume{sid}")),
        );
        if let Some(m) = pdu.message_id().ok().flatten() {
            let _ = reply.set_value(&H_ACK_MESSAGE_ID, Bytes::from(m.to_owned()));
        }
        if let Some(tx) = pdu.tx_id().ok().flatten() {
            let _ = reply.set_value(&H_TX_ID, Bytes::from(tx.to_owned()));
        }
        let message_id = self.new_id("m");
        let _ = reply.set_value(&H_MESSAGE_ID, Bytes::from(message_id.clone()));
        let to = pdu.from().ok().flatten().map(|i| i.to_string());
        self.stamp_addressing(&mut reply, to.as_deref());
        let dest = reply_dest(pdu, from);
        let (_, payload) = self.send_pdu(None, reply, dest, SentKind::Other);
        let id = self.handle();
        self.make_room_in(now, from);
        self.remember_in(
            now,
            id,
            InTx {
                requester: to,
                reply_dest: dest,
                state: InState::Replied {
                    payload,
                    message_id,
                    seq: None,
                    attempt: 1,
                    acked: false,
                    sent_at: now,
                },
                ..InTx::of(pdu, from, key, Some(sid))
            },
            pdu.attempt().ok().flatten(),
        );
        let at = now + self.cfg.retry.interval(1);
        self.set_in_deadline(id, Some(at));
    }

    fn resume_known(&mut self, now: Instant, from: SocketAddr, sid: u64, pdu: Pdu) {
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.last_activity = now;
        if s.peer != from {
            let old = std::mem::replace(&mut s.peer, from);
            if self.session_by_peer.get(&old) == Some(&sid) {
                self.session_by_peer.remove(&old);
            }
            self.session_by_peer.insert(from, sid);
        }
        let Some(s) = self.sessions.get(&sid) else {
            return;
        };
        let mut ok = PduBuilder::static_reply(200, "OK");
        let _ = ok.set_value(&H_SESSION_STATUS, Bytes::from_static(b"resumed"));
        if let Some(id) = &s.session_id {
            let _ = ok.set_value(&H_SESSION_ID, Bytes::from(id.clone()));
        }
        ok.set_number(&H_SEQ, s.next_out);
        if let Some(a) = s.ack_floor() {
            ok.set_number(&H_ACK_SEQ, a);
        }
        let _ = ok.set_value(&H_SET_MODE, Bytes::from_static(s.mode.as_str().as_bytes()));
        self.answer_handshake(now, from, sid, &pdu, ok);
        let ack_seq = pdu.ack_seq().ok().flatten();
        self.resend_after_resume(now, sid, ack_seq);
        debug!(session = sid, %from, "session resumed by the client");
        self.emit(Event::SessionResumed {
            session: SessionHandle(sid),
            peer: from,
        });
    }

    fn join_channel(&mut self, now: Instant, from: SocketAddr, sid: u64, pdu: Pdu, token: &[u8]) {
        let valid = self
            .sessions
            .get(&sid)
            .and_then(|s| s.channel_token.as_deref())
            .is_some_and(|t| {
                use subtle::ConstantTimeEq;
                t.len() == token.len() && bool::from(t.as_bytes().ct_eq(token))
            });
        if !valid {
            self.reject_resume(now, from, &pdu);
            return;
        }
        let next = self.new_token();
        let Some(s) = self.sessions.get_mut(&sid) else {
            return;
        };
        s.channel_token = Some(next.clone());
        if !s.channels.contains(&from) && s.peer != from {
            s.channels.push(from);
        }
        s.last_activity = now;
        self.session_by_peer.insert(from, sid);
        let mut ok = PduBuilder::static_reply(200, "OK");
        let _ = ok.set_value(&H_SESSION_STATUS, Bytes::from_static(b"joined"));
        let _ = ok.set_value(&H_CHANNEL_TOKEN, Bytes::from(next));
        self.answer_handshake(now, from, sid, &pdu, ok);
        self.emit(Event::ChannelJoined {
            session: SessionHandle(sid),
            peer: from,
        });
    }

    fn adopt_as_new(&mut self, now: Instant, from: SocketAddr, pdu: Pdu, id: String) {
        if self.sessions.len() >= self.cfg.limits.max_sessions {
            self.emit(Event::LimitReached {
                limit: EngineLimit::Sessions,
                peer: Some(from),
            });
            self.refuse(now, &pdu, from, 503, "Too Many Sessions");
            return;
        }
        if let Some(old) = self.session_by_peer.get(&from).copied() {
            self.drop_session(old, CloseReason::PeerClosed);
        }
        let mode = pdu
            .request_session_mode()
            .ok()
            .flatten()
            .unwrap_or(SessionMode::Ordered);
        let sid = self.handle();
        let mut s = Session::new(from, Role::Server, mode, now, &self.budget);
        s.state = State::Open;
        // The client's stream continues; ours starts at 0.
        s.next_in = pdu.seq().ok().flatten();
        s.session_id = Some(id.clone());
        let token = self.new_token();
        s.channel_token = Some(token.clone());
        let next_out = s.next_out;
        self.sessions.insert(sid, s);
        self.session_by_peer.insert(from, sid);
        self.session_by_id.insert(id.clone(), sid);
        self.wake_session(sid, now + self.cfg.session_idle_timeout);
        self.session_admitted(now, sid, from, None); // counted in its source's share
        let mut ok = PduBuilder::static_reply(200, "OK");
        let _ = ok.set_value(&H_SESSION_STATUS, Bytes::from_static(b"new"));
        let _ = ok.set_value(&H_SESSION_ID, Bytes::from(id.clone()));
        let _ = ok.set_value(&H_SET_MODE, Bytes::from_static(mode.as_str().as_bytes()));
        let _ = ok.set_value(&H_CHANNEL_TOKEN, Bytes::from(token));
        ok.set_number(&H_SEQ, next_out);
        self.answer_handshake(now, from, sid, &pdu, ok);
        debug!(session = sid, %from, "unknown session id adopted as a new session");
        self.emit(Event::SessionOpened {
            session: SessionHandle(sid),
            peer: from,
            mode,
            session_id: Some(id),
        });
    }
}

impl Endpoint {
    /// Client sessions with `peer` that can be resumed (they have an id).
    pub fn resumable_sessions(&self, peer: SocketAddr) -> Vec<SessionHandle> {
        let mut v: Vec<SessionHandle> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.peer == peer && s.role == Role::Client && s.session_id.is_some())
            .map(|(id, _)| SessionHandle(*id))
            .collect();
        v.sort_unstable();
        v
    }
}
