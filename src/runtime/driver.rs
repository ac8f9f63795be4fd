//! The driver task: sockets and one timer around one engine.

use super::limits::{ChannelLimits, TcpLimits};
use super::peer::{Dest, IncomingRequest, OpenedSession, PeerEvent, RuntimeError, WireDirection};
use super::tcp::{ConnId, ConnMsg, Connections, Ended, Refused, Route};
use crate::engine::{Config, Endpoint, EngineError, Event, IncomingId, RequestId, SessionHandle};
use crate::wire::{Pdu, PduBuilder, SessionMode};
use bytes::Bytes;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

type Reply<T> = oneshot::Sender<Result<T, RuntimeError>>;

/// A command the engine took is answered when its outcome comes (`reply`
/// waits under the engine's key for it); one it refused is answered now.
fn park<K: std::hash::Hash + Eq, T>(
    waiting: &mut HashMap<K, Reply<T>>,
    started: Result<K, RuntimeError>,
    reply: Reply<T>,
) {
    match started {
        Ok(key) => {
            waiting.insert(key, reply);
        }
        Err(e) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// How long a shutdown waits for connections to write what is queued.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// Commands from [`Peer`](super::Peer) handles.
pub(crate) enum Cmd {
    Request {
        dest: Dest,
        pdu: PduBuilder,
        reply: Reply<Pdu>,
    },
    Open {
        dest: Dest,
        target: String,
        mode: SessionMode,
        reply: Reply<OpenedSession>,
    },
    Send {
        session: SessionHandle,
        pdu: PduBuilder,
        reply: Reply<Pdu>,
    },
    Close {
        session: SessionHandle,
        reply: Reply<()>,
    },
    Resume {
        session: SessionHandle,
        reply: Reply<Resumed>,
    },
    Stats {
        reply: Reply<crate::engine::Stats>,
    },
    TcpStats {
        reply: Reply<super::TcpStats>,
    },
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// How a resumption ended (see [`Peer::resume_session`](super::Peer::resume_session)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The session continued; nothing was lost.
    Continued,
    /// The server had lost it and opened a new one with the same id: send
    /// your state again.
    StateLost,
}

/// How long reconnecting a dropped dialled connection may take before the
/// sessions on it are left to their timers.
const REDIAL_ATTEMPTS: u32 = 12;
const REDIAL_FIRST_DELAY: Duration = Duration::from_millis(20);

/// An answer from an [`IncomingRequest`]. These travel on their own
/// channel, which is unbounded but holds at most one message per request
/// delivered to the application; the engine holds at most
/// `EngineLimits::max_reply_cache` incoming transactions (past it new
/// requests are answered `503`), which bounds it.
pub(crate) struct Answer {
    pub(crate) id: IncomingId,
    pub(crate) pdu: PduBuilder,
}

/// What a driver is started with.
pub(crate) struct Setup {
    pub(crate) config: Config,
    pub(crate) udp: Option<UdpSocket>,
    pub(crate) listener: Option<TcpListener>,
    pub(crate) cmds: mpsc::Receiver<Cmd>,
    pub(crate) answers: mpsc::UnboundedReceiver<Answer>,
    pub(crate) answer_tx: mpsc::UnboundedSender<Answer>,
    pub(crate) incoming: mpsc::Sender<IncomingRequest>,
    pub(crate) events: mpsc::Sender<PeerEvent>,
    pub(crate) tap: bool,
    pub(crate) tcp: TcpLimits,
    pub(crate) channels: ChannelLimits,
}

pub(crate) struct Driver {
    endpoint: Endpoint,
    udp: Option<Arc<UdpSocket>>,
    listener: Option<TcpListener>,
    tcp: Connections,
    conn_tx: mpsc::Sender<ConnMsg>,
    conn_rx: mpsc::Receiver<ConnMsg>,
    cmds: mpsc::Receiver<Cmd>,
    answers: mpsc::UnboundedReceiver<Answer>,
    answer_tx: mpsc::UnboundedSender<Answer>,
    incoming: mpsc::Sender<IncomingRequest>,
    events: mpsc::Sender<PeerEvent>,
    tap: bool,
    waiting_req: HashMap<RequestId, Reply<Pdu>>,
    waiting_open: HashMap<SessionHandle, Reply<OpenedSession>>,
    waiting_close: HashMap<SessionHandle, Reply<()>>,
    waiting_resume: HashMap<SessionHandle, Reply<Resumed>>,
    /// Requests read from a TCP connection and not yet answered (a
    /// half-closed connection stays until they are). At most one entry
    /// per incoming transaction the engine holds.
    tcp_pending: HashMap<IncomingId, (ConnId, SocketAddr)>,
    /// Connections we dialled: redialled and their sessions resumed when
    /// they drop; never sent to over UDP, even while they are down.
    dialled: std::collections::HashSet<SocketAddr>,
    /// Connections to finish gracefully once this turn's PDUs are queued.
    finish_after_flush: Vec<SocketAddr>,
    dropped_events: u64,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Driver {
    pub(crate) fn new(s: Setup) -> Self {
        let now = Instant::now();
        let codec_opts = s.config.parse;
        let (conn_tx, conn_rx) = mpsc::channel(s.channels.connection_events.max(1));
        let endpoint = Endpoint::from_entropy(s.config, now, unix_now());
        let budget = endpoint.memory_budget().clone();
        Driver {
            endpoint,
            udp: s.udp.map(Arc::new),
            listener: s.listener,
            tcp: Connections::new(s.tcp, codec_opts, budget),
            conn_tx,
            conn_rx,
            cmds: s.cmds,
            answers: s.answers,
            answer_tx: s.answer_tx,
            incoming: s.incoming,
            events: s.events,
            tap: s.tap,
            waiting_req: HashMap::new(),
            waiting_open: HashMap::new(),
            waiting_close: HashMap::new(),
            waiting_resume: HashMap::new(),
            tcp_pending: HashMap::new(),
            dialled: Default::default(),
            finish_after_flush: Vec::new(),
            dropped_events: 0,
        }
    }

    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; crate::codec::MAX_UDP_PAYLOAD];
        loop {
            let deadline = self.endpoint.poll_timeout();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let udp = self.udp.clone();
            let recv = async {
                match &udp {
                    Some(u) => u
                        .recv_from(&mut buf)
                        .await
                        .map(|(n, from)| (Bytes::copy_from_slice(&buf[..n]), from)),
                    None => std::future::pending().await,
                }
            };
            let accept = async {
                match &self.listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            };
            let mut answered = None;
            tokio::select! {
                // Answers first: they finish work already taken on.
                biased;
                Some(a) = self.answers.recv() => answered = self.answer(a),
                r = recv => match r {
                    Ok((data, from)) => {
                        self.tap_wire(WireDirection::In, Dest::Udp(from), &data);
                        self.endpoint.handle_datagram(Instant::now(), from, data);
                    }
                    Err(e) => debug!(error = %e, "udp receive error"),
                },
                a = accept => match a {
                    Ok((stream, from)) => match self.tcp.admit(from) {
                        Ok(()) => self.adopt(stream, from, true),
                        Err(why) => {
                            // Dropping the stream closes it: a peer cannot
                            // make this node hold tasks and queues without
                            // bound, nor one address take every slot.
                            drop(stream);
                            let n = self.tcp.refused();
                            if n.is_power_of_two() {
                                warn!(%from, refused = n, ?why, "TCP connection limit reached; connection refused");
                            }
                            if why == Refused::PerIp {
                                debug!(%from, "per-IP connection limit");
                            }
                        }
                    },
                    Err(e) => warn!(error = %e, "accept failed"),
                },
                Some(m) = self.conn_rx.recv() => self.conn_msg(m),
                c = self.cmds.recv() => match c {
                    Some(Cmd::Shutdown { done }) => {
                        self.flush().await;
                        self.tcp.shutdown(SHUTDOWN_DRAIN).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                _ = sleep => self.endpoint.handle_timeout(Instant::now()),
            }
            self.dispatch_events();
            self.flush().await;
            if let Some((conn, addr)) = answered {
                // The answer is queued: a half-closed connection with
                // nothing left to answer can be finished now.
                self.tcp.request_answered(conn, &addr);
            }
            for addr in std::mem::take(&mut self.finish_after_flush) {
                self.tcp.finish(&addr);
            }
            self.connections_closed();
        }
    }

    /// What a connection task reported.
    fn conn_msg(&mut self, m: ConnMsg) {
        match m {
            ConnMsg::Pdu(from, pdu) => {
                self.tcp.spoke(&from);
                self.tap_wire(WireDirection::In, Dest::Tcp(from), pdu.as_bytes());
                self.endpoint.handle_pdu(Instant::now(), from, pdu);
            }
            ConnMsg::HalfClosed(id, from) => {
                debug!(%from, "peer half-closed; finishing once answered");
                // The PDUs it sent before are handled and their answers
                // delivered first (same channel, in order).
                self.dispatch_events();
                self.tcp.half_closed(id, &from);
            }
            ConnMsg::Closed(id, from, why) => {
                debug!(%from, ?why, "connection closed");
                if let Ended::Malformed(e) = &why {
                    self.event(PeerEvent::Engine(Event::ProtocolViolation {
                        peer: from,
                        violation: crate::engine::Violation::Malformed(*e),
                    }));
                }
                self.tcp.ended(id, &from, &why);
            }
            ConnMsg::Redialled(to, stream) => {
                self.adopt(stream, to, false);
                let now = Instant::now();
                for session in self.endpoint.resumable_sessions(to) {
                    if let Err(e) = self.endpoint.resume_session(now, session, None) {
                        debug!(?session, error = %e, "cannot resume");
                    }
                }
            }
        }
    }

    /// Take a TCP connection (accepted, or dialled by us).
    fn adopt(&mut self, stream: TcpStream, peer: SocketAddr, accepted: bool) {
        self.tcp.adopt(stream, peer, accepted, &self.conn_tx);
        // A stream peer gets whole payloads, never segments (SPEC §7).
        self.endpoint.set_stream_peer(peer, true);
    }

    /// Carry an application's answer to the engine; returns the TCP
    /// connection the request came from, if any.
    fn answer(&mut self, a: Answer) -> Option<(ConnId, SocketAddr)> {
        if let Err(e) = self.endpoint.respond(Instant::now(), a.id, a.pdu) {
            debug!(id = ?a.id, error = %e, "response not sent");
        }
        self.tcp_pending.remove(&a.id)
    }

    /// Connections the TCP side removed: redial ours that broke, forget
    /// the others'.
    fn connections_closed(&mut self) {
        for (addr, hard) in self.tcp.take_removed() {
            if self.tcp.contains(&addr) {
                continue;
            }
            self.tcp_pending.retain(|_, (_, a)| *a != addr);
            if self.dialled.contains(&addr) {
                if hard {
                    self.redial(addr);
                }
            } else {
                // Only segmentation depends on it; the route itself stays
                // TCP (see `tcp`), so nothing goes there over UDP.
                self.endpoint.set_stream_peer(addr, false);
            }
        }
    }

    fn tap_wire(&mut self, direction: WireDirection, peer: Dest, bytes: &[u8]) {
        if self.tap {
            self.event(PeerEvent::Wire {
                direction,
                peer,
                bytes: Bytes::copy_from_slice(bytes),
            });
        }
    }

    fn event(&mut self, e: PeerEvent) {
        if self.events.try_send(e).is_err() {
            self.dropped_events += 1;
            if self.dropped_events.is_power_of_two() {
                warn!(
                    dropped = self.dropped_events,
                    "event queue full; events dropped"
                );
            }
        }
    }

    /// Reconnect a dropped dialled connection in the background, with backoff.
    fn redial(&mut self, to: SocketAddr) {
        let tx = self.conn_tx.clone();
        tokio::spawn(async move {
            let mut delay = REDIAL_FIRST_DELAY;
            for _ in 0..REDIAL_ATTEMPTS {
                tokio::time::sleep(delay).await;
                if let Ok(s) = TcpStream::connect(to).await {
                    let _ = tx.send(ConnMsg::Redialled(to, s)).await;
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            warn!(%to, "could not reconnect; sessions on it will time out");
        });
    }

    /// Make sure a transport to `dest` exists (connects TCP on first use).
    async fn route(&mut self, dest: Dest) -> Result<SocketAddr, RuntimeError> {
        match dest {
            Dest::Udp(a) => {
                if self.udp.is_none() {
                    return Err(RuntimeError::NoTransport(dest));
                }
                Ok(a)
            }
            Dest::Tcp(a) => {
                if !self.tcp.contains(&a) {
                    let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a))
                        .await
                        .map_err(|_| RuntimeError::Timeout)??;
                    self.adopt(s, a, false);
                    self.dialled.insert(a);
                }
                Ok(a)
            }
        }
    }

    async fn command(&mut self, cmd: Cmd) {
        let now = Instant::now();
        match cmd {
            Cmd::Request { dest, pdu, reply } => {
                let started = match self.route(dest).await {
                    Ok(addr) => self.endpoint.request(now, addr, pdu).map_err(Into::into),
                    Err(e) => Err(e),
                };
                park(&mut self.waiting_req, started, reply);
            }
            Cmd::Open {
                dest,
                target,
                mode,
                reply,
            } => {
                let started = match self.route(dest).await {
                    Ok(addr) => self
                        .endpoint
                        .open_session(now, addr, &target, mode)
                        .map_err(Into::into),
                    Err(e) => Err(e),
                };
                park(&mut self.waiting_open, started, reply);
            }
            Cmd::Send {
                session,
                pdu,
                reply,
            } => {
                let started = self.endpoint.send(now, session, pdu).map_err(Into::into);
                park(&mut self.waiting_req, started, reply);
            }
            Cmd::Close { session, reply } => match self.endpoint.close_session(now, session) {
                Ok(()) => {
                    self.waiting_close.insert(session, reply);
                }
                Err(EngineError::UnknownSession) => {
                    let _ = reply.send(Ok(()));
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Cmd::Resume { session, reply } => {
                let started = self.endpoint.resume_session(now, session, None);
                park(
                    &mut self.waiting_resume,
                    started.map(|()| session).map_err(Into::into),
                    reply,
                );
            }
            Cmd::Stats { reply } => {
                let _ = reply.send(Ok(self.endpoint.stats()));
            }
            Cmd::TcpStats { reply } => {
                let _ = reply.send(Ok(self.tcp.stats()));
            }
            Cmd::Shutdown { .. } => {}
        }
    }

    /// Carry out every transmit the engine queued.
    async fn flush(&mut self) {
        let now = tokio::time::Instant::now();
        while let Some(t) = self.endpoint.poll_transmit() {
            let route = if self.dialled.contains(&t.dest) && !self.tcp.contains(&t.dest) {
                // Ours and down: redialled, then the engine retransmits.
                Route::Dropped
            } else {
                let payload = t.payload.clone();
                self.tcp.send(t.dest, payload, now)
            };
            match route {
                Route::Queued => self.tap_wire(WireDirection::Out, Dest::Tcp(t.dest), &t.payload),
                Route::Dropped => {
                    debug!(peer = %t.dest, "TCP route down or full; PDU not sent (never over UDP)");
                }
                Route::Udp => {
                    if let Some(u) = self.udp.clone() {
                        self.tap_wire(WireDirection::Out, Dest::Udp(t.dest), &t.payload);
                        if let Err(e) = u.send_to(&t.payload, t.dest).await {
                            debug!(peer = %t.dest, error = %e, "udp send failed");
                        }
                    }
                }
            }
        }
    }

    fn dispatch_events(&mut self) {
        while let Some(e) = self.endpoint.poll_event() {
            match e {
                Event::RequestReceived {
                    id,
                    peer,
                    session,
                    pdu,
                } => {
                    let req = IncomingRequest {
                        pdu,
                        peer,
                        session,
                        id,
                        answers: self.answer_tx.clone(),
                    };
                    match self.incoming.try_send(req) {
                        Ok(()) => {
                            if let Some(conn) = self.tcp.request_delivered(&peer) {
                                self.tcp_pending.insert(id, (conn, peer));
                            }
                        }
                        Err(_) => {
                            // Never block the engine on the application: refuse.
                            if let Ok(busy) = PduBuilder::reply(503, "Busy") {
                                let _ = self.endpoint.respond(Instant::now(), id, busy);
                            }
                        }
                    }
                }
                Event::ReplyReceived { request, pdu } => {
                    if let Some(w) = self.waiting_req.remove(&request) {
                        let _ = w.send(Ok(pdu));
                    }
                }
                Event::RequestTimedOut { request } => {
                    if let Some(w) = self.waiting_req.remove(&request) {
                        let _ = w.send(Err(RuntimeError::Timeout));
                    }
                }
                Event::SessionOpened {
                    session,
                    peer,
                    mode,
                    session_id,
                } => {
                    if let Some(w) = self.waiting_open.remove(&session) {
                        let _ = w.send(Ok(OpenedSession {
                            handle: session,
                            mode,
                            session_id: session_id.clone(),
                            channel_token: self.endpoint.channel_token(session).map(str::to_owned),
                        }));
                    }
                    self.event(PeerEvent::Engine(Event::SessionOpened {
                        session,
                        peer,
                        mode,
                        session_id,
                    }));
                }
                Event::SessionClosed { session, reason } => {
                    if let Some(w) = self.waiting_open.remove(&session) {
                        let _ = w.send(Err(RuntimeError::SessionClosed(reason.clone())));
                    }
                    if let Some(w) = self.waiting_close.remove(&session) {
                        let _ = w.send(Ok(()));
                    }
                    if let Some(w) = self.waiting_resume.remove(&session) {
                        let _ = w.send(Err(RuntimeError::SessionClosed(reason.clone())));
                    }
                    self.event(PeerEvent::Engine(Event::SessionClosed { session, reason }));
                }
                Event::SessionResumed { session, peer } => {
                    if let Some(w) = self.waiting_resume.remove(&session) {
                        let _ = w.send(Ok(Resumed::Continued));
                    }
                    self.event(PeerEvent::Engine(Event::SessionResumed { session, peer }));
                }
                Event::SessionRenewed { session } => {
                    if let Some(w) = self.waiting_resume.remove(&session) {
                        let _ = w.send(Ok(Resumed::StateLost));
                    }
                    self.event(PeerEvent::Engine(Event::SessionRenewed { session }));
                }
                Event::ChannelsClosed { session, peers } => {
                    // Closed once what is queued for them (the BYE) is written.
                    self.finish_after_flush.extend(peers.iter().copied());
                    self.event(PeerEvent::Engine(Event::ChannelsClosed { session, peers }));
                }
                other => self.event(PeerEvent::Engine(other)),
            }
        }
    }
}
