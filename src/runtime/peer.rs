//! The application's side of the runtime: a cloneable [`Peer`] handle.

use super::driver::{Answer, Cmd, Driver, Setup};
use super::limits::{ChannelLimits, TcpLimits, TcpStats};
use crate::engine::{CloseReason, Config, EngineError, Event, IncomingId, SessionHandle};
use crate::wire::{Pdu, PduBuilder, SessionMode};
use bytes::Bytes;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{mpsc, oneshot};

/// Where to send: a UDP datagram peer or a TCP stream peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// Datagrams to this address (segmented when large).
    Udp(SocketAddr),
    /// A TCP connection to this address (dialled on first use).
    Tcp(SocketAddr),
}

impl Dest {
    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Dest::Udp(a) | Dest::Tcp(a) => *a,
        }
    }
}

impl FromStr for Dest {
    type Err = RuntimeError;

    /// `HOST:PORT` (UDP), `udp://HOST:PORT` or `tcp://HOST:PORT`. Host names
    /// are resolved with the system resolver (the first address wins).
    fn from_str(s: &str) -> Result<Dest, RuntimeError> {
        let (tcp, rest) = if let Some(r) = s.strip_prefix("tcp://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("udp://") {
            (false, r)
        } else {
            (false, s)
        };
        let addr = rest
            .to_socket_addrs()
            .map_err(|e| RuntimeError::BadAddress(format!("{s}: {e}")))?
            .next()
            .ok_or_else(|| RuntimeError::BadAddress(format!("{s}: no address")))?;
        Ok(if tcp {
            Dest::Tcp(addr)
        } else {
            Dest::Udp(addr)
        })
    }
}

impl std::fmt::Display for Dest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dest::Udp(a) => write!(f, "udp://{a}"),
            Dest::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad address {0}")]
    BadAddress(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("no answer within the retry policy")]
    Timeout,
    #[error("the session closed: {0:?}")]
    SessionClosed(CloseReason),
    #[error("the peer has shut down")]
    Shutdown,
    #[error("no transport for {0} (bind UDP or connect TCP first)")]
    NoTransport(Dest),
}

// A `RuntimeError` is not `#[non_exhaustive]` (matching on it is common);
// new cases are added with the crate's version.

/// Which way a PDU crossed the wire (for the tap).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireDirection {
    /// Received from the peer.
    In,
    /// Sent to the peer.
    Out,
}

/// What the runtime reports besides requests: engine events not consumed
/// by a waiting call, and (when the tap is on) every PDU on the wire.
#[derive(Debug, Clone)]
// Moved once through a channel; see `Event`, which carries PDUs inline too.
#[allow(clippy::large_enum_variant)]
pub enum PeerEvent {
    /// An engine event no waiting call consumed (e.g. a session the peer closed).
    Engine(Event),
    /// A PDU on the wire (only with [`PeerBuilder::tap`]).
    Wire {
        /// Which way it went.
        direction: WireDirection,
        /// The other end.
        peer: Dest,
        /// The PDU's bytes exactly as sent or received.
        bytes: Bytes,
    },
}

/// A request delivered to the application, with the means to answer it.
#[derive(Debug)]
pub struct IncomingRequest {
    /// The request as received.
    pub pdu: Pdu,
    /// Who sent it (transport address).
    pub peer: SocketAddr,
    /// The session it arrived in, if any.
    pub session: Option<SessionHandle>,
    pub(crate) id: IncomingId,
    pub(crate) answers: mpsc::UnboundedSender<Answer>,
}

impl IncomingRequest {
    /// Send the final reply (a reply PDU such as `200 OK`); the engine adds
    /// TX-ID, ids, Seq, and retransmits it until the requester ACKs.
    pub fn respond(self, reply: PduBuilder) -> Result<(), RuntimeError> {
        // Never waits: the answers channel holds at most one message per
        // delivered request (see `driver::Answer`).
        self.answers
            .send(Answer {
                id: self.id,
                pdu: reply,
            })
            .map_err(|_| RuntimeError::Shutdown)
    }
}

/// An open session, as agreed with the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedSession {
    /// What [`Peer::send`], [`Peer::close_session`] and
    /// [`Peer::resume_session`] take.
    pub handle: SessionHandle,
    /// The mode the server set (it may differ from the one requested).
    pub mode: SessionMode,
    /// The server's Session-ID, which resumption presents.
    pub session_id: Option<String>,
    /// The one-time token a second channel presents to join the session.
    pub channel_token: Option<String>,
}

/// How to start a [`Peer`].
#[derive(Debug, Clone)]
pub struct PeerBuilder {
    config: Config,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    tap: bool,
    tcp_limits: TcpLimits,
    channels: ChannelLimits,
    udp_recv_buffer: Option<usize>,
}

impl PeerBuilder {
    /// A peer with this engine configuration and no sockets yet.
    pub fn new(config: Config) -> Self {
        PeerBuilder {
            config,
            udp: None,
            tcp: None,
            tap: false,
            tcp_limits: TcpLimits::default(),
            channels: ChannelLimits::default(),
            udp_recv_buffer: None,
        }
    }

    /// Bind a UDP socket (port 0 picks a free port). Also used to send UDP
    /// requests; without it, a UDP request binds an ephemeral socket.
    pub fn udp(mut self, addr: SocketAddr) -> Self {
        self.udp = Some(addr);
        self
    }

    /// Listen for TCP connections.
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = Some(addr);
        self
    }

    /// TCP connections held at once (default 1024); a connection accepted
    /// beyond it is closed at once, so peers cannot make this node hold
    /// tasks and queues without bound. Shorthand for
    /// [`TcpLimits::max_connections`].
    pub fn max_connections(mut self, n: usize) -> Self {
        self.tcp_limits.max_connections = n.max(1);
        self
    }

    /// Every TCP limit at once (connections, per-IP share, header and idle
    /// timeouts, write queues): see [`TcpLimits`].
    pub fn tcp_limits(mut self, limits: TcpLimits) -> Self {
        self.tcp_limits = limits;
        self
    }

    /// The bounds of the internal channels: see [`ChannelLimits`].
    pub fn channel_limits(mut self, limits: ChannelLimits) -> Self {
        self.channels = limits;
        self
    }

    /// Ask the kernel for a UDP receive buffer (`SO_RCVBUF`) of this many
    /// bytes, so a burst of datagrams waits in the kernel rather than being
    /// dropped while the driver is busy. The kernel may cap it (Linux:
    /// `net.core.rmem_max`) or double it; [`Peer::udp_recv_buffer`] says
    /// what it granted. Without it the system default stays.
    pub fn udp_recv_buffer(mut self, bytes: usize) -> Self {
        self.udp_recv_buffer = Some(bytes);
        self
    }

    /// Report every PDU sent and received as [`PeerEvent::Wire`].
    pub fn tap(mut self, on: bool) -> Self {
        self.tap = on;
        self
    }

    /// Requests queued for the application before new ones are answered
    /// `503 Busy` (default 1024). The engine never waits on the application.
    pub fn incoming_capacity(mut self, n: usize) -> Self {
        self.channels.incoming = n.max(1);
        self
    }

    /// Events queued before further ones are dropped (counted, logged).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.channels.events = n.max(1);
        self
    }

    /// Bind the sockets and start the driver task on the current runtime.
    pub async fn start(
        self,
    ) -> Result<
        (
            Peer,
            mpsc::Receiver<IncomingRequest>,
            mpsc::Receiver<PeerEvent>,
        ),
        RuntimeError,
    > {
        let udp = match self.udp {
            Some(a) => Some(UdpSocket::bind(a).await?),
            None => Some(UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?),
        };
        let listener = match self.tcp {
            Some(a) => Some(TcpListener::bind(a).await?),
            None => None,
        };
        let mut udp_recv_buffer = None;
        if let Some(u) = &udp {
            let sock = socket2::SockRef::from(u);
            if let Some(n) = self.udp_recv_buffer {
                sock.set_recv_buffer_size(n)?;
            }
            udp_recv_buffer = Some(sock.recv_buffer_size()?);
        }
        let udp_addr = udp.as_ref().map(|u| u.local_addr()).transpose()?;
        let tcp_addr = listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let ch = self.channels;
        let (cmd_tx, cmd_rx) = mpsc::channel(ch.commands.max(1));
        let (answer_tx, answer_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::channel(ch.incoming.max(1));
        let (ev_tx, ev_rx) = mpsc::channel(ch.events.max(1));
        let driver = Driver::new(Setup {
            config: self.config,
            udp,
            listener,
            cmds: cmd_rx,
            answers: answer_rx,
            answer_tx,
            incoming: in_tx,
            events: ev_tx,
            tap: self.tap,
            tcp: self.tcp_limits,
            channels: ch,
        });
        let task = tokio::spawn(driver.run());
        Ok((
            Peer {
                cmds: cmd_tx,
                udp_addr,
                tcp_addr,
                udp_recv_buffer,
                task: std::sync::Arc::new(tokio::sync::Mutex::new(Some(task))),
            },
            in_rx,
            ev_rx,
        ))
    }
}

/// A running Acorn node. Cheap to clone; every clone drives the same engine.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Bounded ([`ChannelLimits::commands`]): a call waits while it is full.
    cmds: mpsc::Sender<Cmd>,
    udp_addr: Option<SocketAddr>,
    tcp_addr: Option<SocketAddr>,
    udp_recv_buffer: Option<usize>,
    task: std::sync::Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Peer {
    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp_addr
    }

    /// The TCP listening address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr
    }

    /// The UDP socket's receive buffer (`SO_RCVBUF`) as the kernel reports
    /// it after [`PeerBuilder::udp_recv_buffer`] (Linux reports twice the
    /// bytes asked for, capped by `net.core.rmem_max`).
    pub fn udp_recv_buffer(&self) -> Option<usize> {
        self.udp_recv_buffer
    }

    /// What the TCP side did so far: connections accepted and refused,
    /// timeouts, queue overflows, bytes queued now and at most.
    pub async fn tcp_stats(&self) -> Result<TcpStats, RuntimeError> {
        self.call(|reply| Cmd::TcpStats { reply }).await
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RuntimeError>>) -> Cmd,
    ) -> Result<T, RuntimeError> {
        let (tx, rx) = oneshot::channel();
        self.submit(make(tx)).await?;
        rx.await.map_err(|_| RuntimeError::Shutdown)?
    }

    /// Hand a command to the driver. `try_send` first: while there is room
    /// it never yields, so commands issued in a row reach the driver in
    /// that order; when the channel is full, wait for room (back-pressure).
    async fn submit(&self, cmd: Cmd) -> Result<(), RuntimeError> {
        match self.cmds.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(cmd)) => self
                .cmds
                .send(cmd)
                .await
                .map_err(|_| RuntimeError::Shutdown),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RuntimeError::Shutdown),
        }
    }

    /// Send a request outside any session and wait for its final reply
    /// (retransmitted per the retry policy; ACKs and provisional replies
    /// are handled on the way).
    pub async fn request(&self, dest: Dest, pdu: PduBuilder) -> Result<Pdu, RuntimeError> {
        self.call(|reply| Cmd::Request { dest, pdu, reply }).await
    }

    /// Open a session (`REG target` with `Request-Session-Mode`) and wait
    /// until the server agreed (or refused: an error says why).
    pub async fn open_session(
        &self,
        dest: Dest,
        target: &str,
        mode: SessionMode,
    ) -> Result<OpenedSession, RuntimeError> {
        let target = target.to_owned();
        self.call(|reply| Cmd::Open {
            dest,
            target,
            mode,
            reply,
        })
        .await
    }

    /// Send a request in a session and wait for its final reply.
    pub async fn send(&self, session: SessionHandle, pdu: PduBuilder) -> Result<Pdu, RuntimeError> {
        self.call(|reply| Cmd::Send {
            session,
            pdu,
            reply,
        })
        .await
    }

    /// Close a session with `BYE` and wait for it to end.
    pub async fn close_session(&self, session: SessionHandle) -> Result<(), RuntimeError> {
        self.call(|reply| Cmd::Close { session, reply }).await
    }

    /// Resume a session now (e.g. after the server restarted, or over UDP
    /// after a network change). TCP connections this peer dialled are
    /// redialled and their sessions resumed automatically when they drop.
    pub async fn resume_session(
        &self,
        session: SessionHandle,
    ) -> Result<super::driver::Resumed, RuntimeError> {
        self.call(|reply| Cmd::Resume { session, reply }).await
    }

    /// The engine's work counters so far: datagrams sent, retransmissions
    /// (timer- and NACK-driven), NACKs, duplicates dropped, malformed input.
    pub async fn stats(&self) -> Result<crate::engine::Stats, RuntimeError> {
        self.call(|reply| Cmd::Stats { reply }).await
    }

    /// Stop: flush what is queued on every socket, then end the driver.
    pub async fn shutdown(&self) -> Result<(), RuntimeError> {
        let (tx, rx) = oneshot::channel();
        if self.submit(Cmd::Shutdown { done: tx }).await.is_ok() {
            let _ = rx.await;
        }
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
        Ok(())
    }
}
