//! The driver task: sockets and one timer around one engine.

use super::peer::{Dest, IncomingRequest, OpenedSession, PeerEvent, RuntimeError, WireDirection};
use crate::codec::StreamCodec;
use crate::engine::{Config, Endpoint, EngineError, Event, IncomingId, RequestId, SessionHandle};
use crate::wire::{Pdu, PduBuilder, SessionMode};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tracing::{debug, info_span, warn, Instrument};

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

/// PDUs queued to one TCP connection; past it a PDU is dropped and left to
/// the engine's retransmission (the connection stays).
const CONN_QUEUE: usize = 4096;

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
    Respond {
        id: IncomingId,
        pdu: PduBuilder,
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
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// What connection tasks report.
// Moved once through a channel: boxing the PDU would cost an allocation per
// PDU to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum ConnMsg {
    Pdu(SocketAddr, Pdu),
    Closed(SocketAddr, Option<String>),
    /// A connection we dialled was re-established after it dropped.
    Redialled(SocketAddr, TcpStream),
    /// The stream stopped framing (the connection is then closed).
    Malformed(SocketAddr, crate::wire::ParseError),
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

pub(crate) struct Driver {
    endpoint: Endpoint,
    udp: Option<Arc<UdpSocket>>,
    listener: Option<TcpListener>,
    conns: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
    conn_tx: mpsc::UnboundedSender<ConnMsg>,
    conn_rx: mpsc::UnboundedReceiver<ConnMsg>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    incoming: mpsc::Sender<IncomingRequest>,
    events: mpsc::Sender<PeerEvent>,
    tap: bool,
    /// Accepted TCP connections held at once (`PeerBuilder::max_connections`).
    max_connections: usize,
    refused_connections: u64,
    codec_opts: crate::wire::ParseOptions,
    waiting_req: HashMap<RequestId, Reply<Pdu>>,
    waiting_open: HashMap<SessionHandle, Reply<OpenedSession>>,
    waiting_close: HashMap<SessionHandle, Reply<()>>,
    waiting_resume: HashMap<SessionHandle, Reply<Resumed>>,
    /// Peers reached over TCP: never sent to over UDP, even while their
    /// connection is down (the engine retransmits after it is back).
    tcp_peers: std::collections::HashSet<SocketAddr>,
    /// Connections we dialled: redialled and their sessions resumed when
    /// they drop.
    dialled: std::collections::HashSet<SocketAddr>,
    dropped_events: u64,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        cfg: Config,
        udp: Option<UdpSocket>,
        listener: Option<TcpListener>,
        cmds: mpsc::UnboundedReceiver<Cmd>,
        cmd_tx: mpsc::UnboundedSender<Cmd>,
        incoming: mpsc::Sender<IncomingRequest>,
        events: mpsc::Sender<PeerEvent>,
        tap: bool,
        max_connections: usize,
    ) -> Self {
        let now = Instant::now();
        let codec_opts = cfg.parse;
        let (conn_tx, conn_rx) = mpsc::unbounded_channel();
        Driver {
            endpoint: Endpoint::from_entropy(cfg, now, unix_now()),
            udp: udp.map(Arc::new),
            listener,
            conns: HashMap::new(),
            writers: Vec::new(),
            conn_tx,
            conn_rx,
            cmds,
            cmd_tx,
            incoming,
            events,
            tap,
            max_connections,
            refused_connections: 0,
            codec_opts,
            waiting_req: HashMap::new(),
            waiting_open: HashMap::new(),
            waiting_close: HashMap::new(),
            waiting_resume: HashMap::new(),
            tcp_peers: Default::default(),
            dialled: Default::default(),
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
            tokio::select! {
                r = recv => match r {
                    Ok((data, from)) => {
                        self.tap_wire(WireDirection::In, Dest::Udp(from), &data);
                        self.endpoint.handle_datagram(Instant::now(), from, data);
                    }
                    Err(e) => debug!(error = %e, "udp receive error"),
                },
                a = accept => match a {
                    Ok((stream, from)) if self.conns.len() >= self.max_connections => {
                        // Dropping the stream closes it: a peer cannot make
                        // this node hold tasks and queues without bound.
                        drop(stream);
                        self.refused_connections += 1;
                        if self.refused_connections.is_power_of_two() {
                            warn!(%from, refused = self.refused_connections, max = self.max_connections, "max_connections reached; connection refused");
                        }
                    }
                    Ok((stream, from)) => self.adopt(stream, from),
                    Err(e) => warn!(error = %e, "accept failed"),
                },
                Some(m) = self.conn_rx.recv() => match m {
                    ConnMsg::Pdu(from, pdu) => {
                        self.tap_wire(WireDirection::In, Dest::Tcp(from), pdu.as_bytes());
                        self.endpoint.handle_pdu(Instant::now(), from, pdu);
                    }
                    ConnMsg::Closed(from, why) => {
                        debug!(%from, ?why, "connection closed");
                        self.conns.remove(&from);
                        if self.dialled.contains(&from) {
                            self.redial(from);
                        } else {
                            // An accepted connection's address is not kept
                            // once it is gone (peers choose how many there are).
                            self.tcp_peers.remove(&from);
                        }
                    }
                    ConnMsg::Malformed(from, e) => {
                        debug!(%from, error = %e, "stream framing error; closing the connection");
                        self.event(PeerEvent::Engine(Event::ProtocolViolation {
                            peer: from,
                            violation: crate::engine::Violation::Malformed(e),
                        }));
                    }
                    ConnMsg::Redialled(to, stream) => {
                        self.adopt(stream, to);
                        let now = Instant::now();
                        for session in self.endpoint.resumable_sessions(to) {
                            if let Err(e) = self.endpoint.resume_session(now, session, None) {
                                debug!(?session, error = %e, "cannot resume");
                            }
                        }
                    }
                },
                c = self.cmds.recv() => match c {
                    Some(Cmd::Shutdown { done }) => {
                        self.flush().await;
                        self.conns.clear();
                        for w in self.writers.drain(..) {
                            let _ = w.await;
                        }
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd).await,
                    None => return,
                },
                _ = sleep => self.endpoint.handle_timeout(Instant::now()),
            }
            self.flush().await;
            self.dispatch_events();
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

    /// Take a TCP connection: a reader task feeding PDUs in, a writer task
    /// draining a bounded queue out.
    fn adopt(&mut self, stream: TcpStream, from: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Bytes>(CONN_QUEUE);
        let conn_tx = self.conn_tx.clone();
        let opts = self.codec_opts;
        tokio::spawn(
            async move {
                let mut frames = FramedRead::new(read, StreamCodec::new(opts));
                loop {
                    match frames.next().await {
                        Some(Ok(pdu)) => {
                            if conn_tx.send(ConnMsg::Pdu(from, pdu)).is_err() {
                                return;
                            }
                        }
                        Some(Err(e)) => {
                            if let Some(pe) = e.parse_error() {
                                let _ = conn_tx.send(ConnMsg::Malformed(from, *pe));
                            }
                            let _ = conn_tx.send(ConnMsg::Closed(from, Some(e.to_string())));
                            return;
                        }
                        None => {
                            let _ = conn_tx.send(ConnMsg::Closed(from, None));
                            return;
                        }
                    }
                }
            }
            .instrument(info_span!("tcp-read", %from)),
        );
        let writer = tokio::spawn(
            async move {
                while let Some(b) = rx.recv().await {
                    if write.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = write.shutdown().await;
            }
            .instrument(info_span!("tcp-write", %from)),
        );
        self.writers.retain(|w| !w.is_finished());
        self.writers.push(writer);
        self.conns.insert(from, tx);
        // A stream peer gets whole payloads, never segments (SPEC §7).
        self.endpoint.set_stream_peer(from, true);
        self.tcp_peers.insert(from);
    }

    /// Reconnect a dialled connection in the background, with backoff.
    fn redial(&mut self, to: SocketAddr) {
        let tx = self.conn_tx.clone();
        tokio::spawn(async move {
            let mut delay = REDIAL_FIRST_DELAY;
            for _ in 0..REDIAL_ATTEMPTS {
                tokio::time::sleep(delay).await;
                if let Ok(s) = TcpStream::connect(to).await {
                    let _ = tx.send(ConnMsg::Redialled(to, s));
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
                if !self.conns.contains_key(&a) {
                    let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(a))
                        .await
                        .map_err(|_| RuntimeError::Timeout)??;
                    self.adopt(s, a);
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
            Cmd::Respond { id, pdu } => {
                if let Err(e) = self.endpoint.respond(now, id, pdu) {
                    debug!(?id, error = %e, "response not sent");
                }
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
            Cmd::Shutdown { .. } => {}
        }
    }

    /// Carry out every transmit the engine queued.
    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            if let Some(conn) = self.conns.get(&t.dest).cloned() {
                self.tap_wire(WireDirection::Out, Dest::Tcp(t.dest), &t.payload);
                match conn.try_send(t.payload) {
                    Ok(()) => {}
                    // A PDU is written whole or not at all, so dropping one
                    // keeps the stream framed; the engine resends it.
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        debug!(peer = %t.dest, "connection queue full; PDU left to retransmission");
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.conns.remove(&t.dest);
                    }
                }
            } else if self.tcp_peers.contains(&t.dest) {
                debug!(peer = %t.dest, "connection down; the engine will retransmit");
            } else if let Some(u) = &self.udp {
                let u = u.clone();
                self.tap_wire(WireDirection::Out, Dest::Udp(t.dest), &t.payload);
                if let Err(e) = u.send_to(&t.payload, t.dest).await {
                    debug!(peer = %t.dest, error = %e, "udp send failed");
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
                        cmds: self.cmd_tx.clone(),
                    };
                    if self.incoming.try_send(req).is_err() {
                        // Never block the engine on the application: refuse.
                        if let Ok(busy) = PduBuilder::reply(503, "Busy") {
                            let _ = self.endpoint.respond(Instant::now(), id, busy);
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
                    for p in &peers {
                        self.conns.remove(p);
                    }
                    self.event(PeerEvent::Engine(Event::ChannelsClosed { session, peers }));
                }
                other => self.event(PeerEvent::Engine(other)),
            }
        }
    }
}
