//! `acorn-cli load TARGET`: a load generator in the spirit of sipp, built
//! on the runtime ([`Peer`]).
//!
//! Each of `--sessions N` flows is its own [`Peer`] (its own socket: the
//! engine keys a session by the peer's address, so N sessions need N
//! source addresses). A flow opens one session (or, with
//! `--transactions`, sends plain requests outside any session) and keeps
//! up to `--window` requests in flight, paced by a shared `--rate` or as
//! fast as the peer answers, until `--messages` per flow or `--duration`.
//!
//! Every request body starts with `s=FLOW m=NUMBER;` (padded with `.` to
//! `--payload` bytes), so delivery is checked end to end against a peer
//! that echoes bodies, as `acorn-cli listen` does:
//! - on the client: every message gets exactly one reply, carrying its own
//!   body; a message without a reply (timeout, session lost) is *lost*;
//! - on the server, from what it echoes: in an ordered session the peer's
//!   replies, sorted by the `Seq` the peer gave them, must echo the
//!   messages in the order they were sent (the peer answers in the order
//!   it delivers, as `listen` does), else they are *out of order*; and
//!   with the wire check (on unless `--no-wire-check`) every reply that
//!   reaches the socket is inspected, so a message the peer delivered and
//!   answered twice (two replies with different `Message-ID`s echoing it,
//!   as opposed to a retransmission of the same reply) is *duplicated*.
//!
//! Phases: open every flow (at most [`OPEN_CONCURRENCY`] at once), send,
//! hold the sessions open for `--hold`, close them (`BYE`), then print the
//! summary. Throughput and latency cover the sending phase only.

use crate::{duration, Status};
use acorn::engine::{CloseReason, Config, EngineError, Event, SessionHandle, Stats};
use acorn::runtime::{Dest, Peer, PeerBuilder, PeerEvent, RuntimeError, WireDirection};
use acorn::wire::{Method, ParseOptions, Pdu, PduBuilder, SessionMode, Target};
use anyhow::{anyhow, bail, Context as _};
use bytes::{BufMut, Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// `load --help`, and the README's table (keep them in sync).
pub(crate) const EXIT_HELP: &str = "\
Exit status:
  0  every message sent was answered once, with its own body, and (ordered
     sessions) in order
  2  usage or I/O error (bad target, sockets could not be bound)
  3  nothing was answered: no session opened, or no reply at all
  4  a session was refused or could not be opened, or a reply was not 2xx
  5  a message was lost (no reply: timeout, session lost), duplicated
     (answered twice), answered with another body, or, in an ordered
     session, delivered out of order

Summary (stdout): sent, received, lost, duplicated, out of order,
timeouts, retransmissions (the client engines' counters), throughput
(answered messages/s, echoed payload MB/s) and latency percentiles (from
each request to its final reply). With --json, one object.";

/// Flows started and sessions opened at once (the rest wait their turn),
/// so 10,000 sessions do not arrive as one burst of 10,000 `REG`s.
const OPEN_CONCURRENCY: usize = 128;

/// Sessions closed at once at the end.
const CLOSE_CONCURRENCY: usize = 256;

/// How long closing one session (`BYE` answered) may take.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);

/// Largest `--window`: the engine's default `max_pending_requests`.
const MAX_WINDOW: usize = 4096;

/// Latency histogram bounds, in microseconds (1 µs to 1 hour, 3 digits).
const HIST_MAX_US: u64 = 3_600_000_000;

/// Latency histograms shared by the flows (one per flow would cost 10,000
/// flows about 2 GB: a histogram over this range is some 190 KB).
const HIST_SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    Ordered,
    Unordered,
}

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The peer under load: HOST:PORT (UDP), udp://HOST:PORT or
    /// tcp://HOST:PORT. It should echo request bodies (as `acorn-cli
    /// listen` does) for the delivery checks.
    #[arg(value_name = "TARGET")]
    target: String,
    /// Concurrent flows, each from its own socket: sessions, or with
    /// --transactions, senders of plain requests.
    #[arg(long, value_name = "N", default_value_t = 1)]
    sessions: usize,
    /// Send plain requests outside any session (no REG, no Seq).
    #[arg(long)]
    transactions: bool,
    /// Session mode to request.
    #[arg(
        long,
        value_enum,
        default_value = "ordered",
        conflicts_with = "transactions"
    )]
    mode: ModeArg,
    /// Target rate in messages per second over all flows [default: as
    /// fast as the peer answers].
    #[arg(long, value_name = "MSG/S")]
    rate: Option<f64>,
    /// Stop sending after this long (e.g. 10s). Without --messages, the
    /// default is 10s.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    duration: Option<Duration>,
    /// Messages per flow (0: open the sessions and send nothing, e.g. with
    /// --hold to measure what idle sessions cost the peer).
    #[arg(long, value_name = "M")]
    messages: Option<u64>,
    /// Request body size in bytes (at least the `s=FLOW m=NUMBER;` marker).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    payload: usize,
    /// Requests in flight per flow (1..=4096).
    #[arg(long, value_name = "W", default_value_t = 1)]
    window: usize,
    /// Method of the load requests.
    #[arg(long, value_name = "METHOD", default_value = "PUT")]
    method: String,
    /// Target of the load requests and of the REG that opens a session.
    #[arg(long, value_name = "PATH", default_value = "/load")]
    path: String,
    /// Give up on one message (or one session opening) after this long;
    /// the engine retransmits before that (500ms doubling, 5 attempts).
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = duration::parse)]
    timeout: Duration,
    /// Keep the sessions open this long after sending, before closing
    /// them (e.g. to sample the peer's memory with every session open).
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    hold: Option<Duration>,
    /// Attempts per request, the session's `REG` included, before the
    /// engine gives up on it (SPEC §6) [default: the engine's, 5]. On a
    /// very lossy path (50 %) an opening needs more: each attempt is a
    /// round trip, a quarter of which gets through.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    attempts: Option<u32>,
    /// Do not inspect the replies on the wire (the check for messages the
    /// peer delivered twice); saves a copy of every datagram.
    #[arg(long)]
    no_wire_check: bool,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    addressing: crate::addressing::Addressing,
}

/// What every flow needs to know.
struct Plan {
    target: Dest,
    bind: SocketAddr,
    transactions: bool,
    mode: SessionMode,
    method: Method,
    path: Target,
    messages: Option<u64>,
    /// Set when sending starts.
    duration: Option<Duration>,
    payload: usize,
    window: usize,
    timeout: Duration,
    wire_check: bool,
    /// `--attempts`: the engine's `RetryPolicy::max_attempts`.
    attempts: Option<u32>,
    /// `--from` / `--reply-to`, stamped on every request.
    addressing: crate::addressing::Addressing,
}

/// Spaces sends `interval` apart over all flows: send number k waits for
/// `start + k * interval`.
struct Pacer {
    start: Instant,
    interval: Duration,
    next: AtomicU64,
}

impl Pacer {
    fn slot(&self) -> Instant {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + self.interval.mul_f64(k as f64)
    }
}

/// Live counters for the progress line, and the latencies.
struct Live {
    opened: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    lost: AtomicU64,
    stop: AtomicBool,
    /// Flow `i` records into shard `i % HIST_SHARDS`, so the locks are
    /// rarely contended.
    latency: Vec<std::sync::Mutex<Histogram<u64>>>,
}

impl Live {
    fn new() -> Live {
        Live {
            opened: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            latency: (0..HIST_SHARDS)
                .map(|_| std::sync::Mutex::new(new_histogram()))
                .collect(),
        }
    }

    /// Record one request-to-reply time of flow `flow`.
    fn record(&self, flow: u64, latency: Duration) {
        let us = latency.as_micros().clamp(1, u128::from(HIST_MAX_US)) as u64;
        let shard = &self.latency[(flow % HIST_SHARDS as u64) as usize];
        if let Ok(mut h) = shard.lock() {
            h.saturating_record(us);
        }
    }

    /// Every latency recorded so far.
    fn latencies(&self) -> Histogram<u64> {
        let mut all = new_histogram();
        for shard in &self.latency {
            if let Ok(h) = shard.lock() {
                let _ = all.add(&*h);
            }
        }
        all
    }
}

/// One flow after its opening phase.
struct Flow {
    index: u64,
    peer: Option<Peer>,
    session: Option<SessionHandle>,
    open_error: Option<String>,
    /// What the flow's events showed (see [`watch`]).
    watch: Option<tokio::task::JoinHandle<Watched>>,
}

/// What one flow's sending phase saw.
struct FlowResult {
    sent: u64,
    received: u64,
    rejected: u64,
    timeouts: u64,
    errors: u64,
    mismatched: u64,
    out_of_order: u64,
    /// `(flow, message)` answered more than once.
    duplicated: HashSet<(u64, u64)>,
    closed_early: bool,
    bytes: u64,
    first_error: Option<String>,
}

impl FlowResult {
    fn new() -> FlowResult {
        FlowResult {
            sent: 0,
            received: 0,
            rejected: 0,
            timeouts: 0,
            errors: 0,
            mismatched: 0,
            out_of_order: 0,
            duplicated: HashSet::new(),
            closed_early: false,
            bytes: 0,
            first_error: None,
        }
    }

    fn error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds")
}

/// The body of message `msg` of flow `flow`: the marker, then `.` up to
/// `size` bytes.
fn body(flow: u64, msg: u64, size: usize) -> Bytes {
    let marker = format!("s={flow} m={msg};");
    let mut b = BytesMut::with_capacity(size.max(marker.len()));
    b.put_slice(marker.as_bytes());
    b.put_bytes(b'.', size.saturating_sub(marker.len()));
    b.freeze()
}

/// The `(flow, message)` a body starts with, if it carries a marker.
fn marker(body: &[u8]) -> Option<(u64, u64)> {
    let rest = body.strip_prefix(b"s=")?;
    let end = rest.iter().position(|&c| c == b';')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let (flow, msg) = text.split_once(" m=")?;
    Some((flow.parse().ok()?, msg.parse().ok()?))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let target: Dest = args.target.parse().map_err(|e| anyhow!("TARGET: {e}"))?;
    if args.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    if !(1..=MAX_WINDOW).contains(&args.window) {
        bail!("--window must be between 1 and {MAX_WINDOW}");
    }
    if let Some(r) = args.rate {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of messages per second");
        }
    }
    let method = Method::new(args.method.clone()).context("--method")?;
    let path = Target::new(args.path.clone()).context("--path")?;
    let ip = target.addr().ip();
    let bind_ip = match (ip, ip.is_loopback()) {
        (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let duration = match (args.duration, args.messages) {
        (None, None) => Some(Duration::from_secs(10)),
        (d, _) => d,
    };
    let plan = Plan {
        target,
        bind: SocketAddr::new(bind_ip, 0),
        transactions: args.transactions,
        mode: match args.mode {
            ModeArg::Ordered => SessionMode::Ordered,
            ModeArg::Unordered => SessionMode::Unordered,
        },
        method,
        path,
        messages: args.messages,
        duration,
        payload: args.payload,
        window: args.window,
        timeout: args.timeout,
        addressing: args.addressing.clone(),
        wire_check: !args.no_wire_check,
        attempts: args.attempts,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(load(args, Arc::new(plan)))
}

async fn load(args: &Args, plan: Arc<Plan>) -> anyhow::Result<Status> {
    let live = Arc::new(Live::new());
    let bar = progress(&plan, args.sessions, live.clone());
    {
        let live = live.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                live.stop.store(true, Ordering::Relaxed);
            }
        });
    }

    // Phase 1: start every flow and open its session.
    let open_start = Instant::now();
    let gate = Arc::new(Semaphore::new(OPEN_CONCURRENCY));
    let mut opening = JoinSet::new();
    for index in 0..args.sessions as u64 {
        let (plan, gate, live) = (plan.clone(), gate.clone(), live.clone());
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            open_flow(index, &plan, &live).await
        });
    }
    let mut flows = Vec::with_capacity(args.sessions);
    while let Some(f) = opening.join_next().await {
        flows.push(f.context("a flow task failed")?);
    }
    flows.sort_by_key(|f| f.index);
    let open_elapsed = open_start.elapsed();

    // Phase 2: send.
    let pacer = args.rate.map(|r| {
        Arc::new(Pacer {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / r),
            next: AtomicU64::new(0),
        })
    });
    let send_start = Instant::now();
    let deadline = plan.duration.map(|d| send_start + d);
    let mut sending = JoinSet::new();
    let mut idle = Vec::new();
    for flow in flows {
        match (&flow.peer, flow.open_error.is_none()) {
            (Some(peer), true) => {
                let (plan, live, pacer) = (plan.clone(), live.clone(), pacer.clone());
                let peer = peer.clone();
                let session = flow.session;
                let index = flow.index;
                sending.spawn(async move {
                    let r = drive(index, peer, session, &plan, &live, pacer, deadline).await;
                    (flow, r)
                });
            }
            _ => idle.push(flow),
        }
    }
    let mut done = Vec::with_capacity(args.sessions);
    while let Some(r) = sending.join_next().await {
        done.push(r.context("a flow task failed")?);
    }
    let elapsed = send_start.elapsed();

    // Phase 3: hold the sessions open.
    if let Some(hold) = args.hold {
        let open = done
            .iter()
            .filter(|(f, r)| f.session.is_some() && !r.closed_early);
        bar.suspend(|| eprintln!("holding {} sessions open for {hold:?}", open.count()));
        bar.set_prefix("holding");
        let end = Instant::now() + hold;
        while Instant::now() < end && !live.stop.load(Ordering::Relaxed) {
            tokio::time::sleep((end - Instant::now()).min(Duration::from_millis(100))).await;
        }
    }

    // Phase 4: close, collect the engines' counters, shut down.
    bar.set_prefix("closing");
    let mut total = FlowResult::new();
    let mut stats = Stats::default();
    let (mut opened, mut open_failed, mut closed_early) = (0u64, 0u64, 0u64);
    let mut open_errors: Vec<String> = Vec::new();
    let mut close_reasons = BTreeMap::new();
    let mut finishing = JoinSet::new();
    let gate = Arc::new(Semaphore::new(CLOSE_CONCURRENCY));
    for (flow, r) in done {
        merge(&mut total, r, &mut closed_early);
        finishing.spawn(finish(flow, gate.clone()));
    }
    for flow in idle {
        finishing.spawn(finish(flow, gate.clone()));
    }
    while let Some(f) = finishing.join_next().await {
        let f = f.context("a flow task failed")?;
        match f.open_error {
            Some(e) => {
                open_failed += 1;
                if open_errors.len() < 3 && !open_errors.contains(&e) {
                    open_errors.push(e);
                }
            }
            None => opened += 1,
        }
        if let Some(s) = f.stats {
            stats += &s;
        }
        total.duplicated.extend(f.wire_duplicates);
        if let Some(why) = f.lost_because {
            *close_reasons.entry(why).or_insert(0u64) += 1;
        }
    }
    bar.finish_and_clear();

    let summary = Summary {
        plan: &plan,
        flows: args.sessions as u64,
        rate: args.rate,
        opened,
        open_failed,
        open_errors,
        closed_early,
        close_reasons,
        open_elapsed,
        elapsed,
        total,
        latency: live.latencies(),
        stats,
    };
    let status = summary.status();
    if args.json {
        println!("{}", summary.json(status));
    } else {
        print!("{}", summary.text(status));
    }
    Ok(status)
}

/// The live progress line (hidden when stderr is not a terminal).
fn progress(plan: &Plan, flows: usize, live: Arc<Live>) -> ProgressBar {
    let total = plan.messages.map(|m| m.saturating_mul(flows as u64));
    let bar = match total {
        Some(n) if plan.duration.is_none() => {
            let b = ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:>8} {elapsed_precise} [{bar:30}] {pos}/{len} {msg}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            b
        }
        _ => {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix:>8} {spinner} {elapsed_precise} {msg}")
                    .expect("a valid template"),
            );
            b
        }
    };
    bar.set_prefix("opening");
    let ticker = bar.clone();
    tokio::spawn(async move {
        let mut last = (Instant::now(), 0u64);
        let mut rate = 0.0;
        while !ticker.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let received = live.received.load(Ordering::Relaxed);
            let now = Instant::now();
            let dt = (now - last.0).as_secs_f64();
            if dt > 0.0 {
                rate = (received - last.1) as f64 / dt;
            }
            last = (now, received);
            if live.sent.load(Ordering::Relaxed) > 0 && ticker.prefix() == "opening" {
                ticker.set_prefix("sending");
            }
            ticker.set_position(received);
            ticker.set_message(format!(
                "opened {} sent {} received {} lost {} ({rate:.0} msg/s)",
                live.opened.load(Ordering::Relaxed),
                live.sent.load(Ordering::Relaxed),
                received,
                live.lost.load(Ordering::Relaxed),
            ));
        }
    });
    bar
}

/// Start a flow's peer and open its session.
async fn open_flow(index: u64, plan: &Plan, live: &Live) -> Flow {
    let mut flow = Flow {
        index,
        peer: None,
        session: None,
        open_error: None,
        watch: None,
    };
    let capacity = 1024 + 8 * plan.window;
    let mut cfg = Config::default();
    if let Some(n) = plan.attempts {
        cfg.retry.max_attempts = n;
    }
    let started = PeerBuilder::new(cfg)
        .udp(plan.bind)
        .tap(plan.wire_check)
        .event_capacity(capacity)
        .incoming_capacity(16)
        .start()
        .await;
    let (peer, _incoming, events) = match started {
        Ok(p) => p,
        Err(e) => {
            flow.open_error = Some(format!("starting a peer: {e}"));
            return flow;
        }
    };
    flow.watch = Some(tokio::spawn(watch(events)));
    flow.peer = Some(peer.clone());
    if plan.transactions {
        live.opened.fetch_add(1, Ordering::Relaxed);
        return flow;
    }
    let opened = tokio::time::timeout(
        plan.timeout,
        peer.open_session(plan.target, plan.path.as_str(), plan.mode),
    )
    .await;
    match opened {
        Ok(Ok(s)) if s.mode == plan.mode => {
            flow.session = Some(s.handle);
            live.opened.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Ok(s)) => {
            flow.session = Some(s.handle);
            flow.open_error = Some(format!(
                "the peer set mode {} instead of {}",
                s.mode.as_str(),
                plan.mode.as_str()
            ));
        }
        Ok(Err(e)) => flow.open_error = Some(format!("opening the session: {e}")),
        Err(_) => flow.open_error = Some("opening the session: no answer in --timeout".into()),
    }
    flow
}

/// What a flow's events showed.
#[derive(Default)]
struct Watched {
    /// Messages echoed under more than one `Message-ID` (answered twice).
    twice: HashSet<u64>,
    /// Why the session ended, when it was not closed by us.
    lost_because: Option<String>,
}

/// Read a flow's events until its peer shuts down. Notes why the session
/// ended if the engine ended it (a gap never filled, the peer's BYE...);
/// with the tap on, notes every reply that echoes a marker under each
/// distinct `Message-ID`, and returns the messages echoed under more than
/// one (answered twice). A retransmitted reply keeps its `Message-ID`, so
/// it is not counted.
async fn watch(mut events: mpsc::Receiver<PeerEvent>) -> Watched {
    let opts = ParseOptions::default();
    let mut first: HashMap<u64, Bytes> = HashMap::new();
    let mut w = Watched::default();
    while let Some(ev) = events.recv().await {
        let bytes = match ev {
            PeerEvent::Wire {
                direction: WireDirection::In,
                bytes,
                ..
            } => bytes,
            PeerEvent::Engine(Event::SessionClosed { reason, .. }) => {
                if reason != CloseReason::Local {
                    w.lost_because.get_or_insert_with(|| format!("{reason:?}"));
                }
                continue;
            }
            _ => continue,
        };
        let Ok(pdu) = Pdu::parse_datagram(bytes, &opts) else {
            continue;
        };
        if !pdu.status().is_some_and(|s| (200..300).contains(&s)) {
            continue;
        }
        let (Some((_, msg)), Some(id)) = (marker(pdu.body()), pdu.header("Message-ID")) else {
            continue;
        };
        match first.get(&msg) {
            None => {
                first.insert(msg, Bytes::copy_from_slice(id));
            }
            Some(seen) if seen.as_ref() != id => {
                w.twice.insert(msg);
            }
            Some(_) => {}
        }
    }
    w
}

/// What one request came to.
struct Done {
    msg: u64,
    sent_at: Instant,
    body: Bytes,
    outcome: Result<Result<Pdu, RuntimeError>, tokio::time::error::Elapsed>,
}

fn one(
    peer: Peer,
    session: Option<SessionHandle>,
    plan: &Plan,
    msg: u64,
    body: Bytes,
) -> impl std::future::Future<Output = Done> + Send + 'static {
    let mut pdu = PduBuilder::request_with(plan.method.clone(), plan.path.clone());
    plan.addressing.stamp(&mut pdu);
    pdu.body(body.clone());
    let (target, timeout) = (plan.target, plan.timeout);
    async move {
        let sent_at = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            match session {
                Some(h) => peer.send(h, pdu).await,
                None => peer.request(target, pdu).await,
            }
        })
        .await;
        Done {
            msg,
            sent_at,
            body,
            outcome,
        }
    }
}

/// The sending phase of one flow.
async fn drive(
    index: u64,
    peer: Peer,
    session: Option<SessionHandle>,
    plan: &Plan,
    live: &Live,
    pacer: Option<Arc<Pacer>>,
    deadline: Option<Instant>,
) -> FlowResult {
    let mut r = FlowResult::new();
    let mut inflight = FuturesUnordered::new();
    let mut next_msg = 0u64;
    let mut slot: Option<Instant> = None;
    let mut answered: HashSet<u64> = HashSet::new();
    // (the peer's Seq on the reply, message) in an ordered session.
    let mut order: Vec<(u64, u64)> = Vec::new();
    let ordered = session.is_some() && plan.mode == SessionMode::Ordered;
    // The pacer gave this flow a slot past --duration: it is done.
    let mut out_of_time = false;
    loop {
        let more = !r.closed_early
            && !out_of_time
            && !live.stop.load(Ordering::Relaxed)
            && plan.messages.is_none_or(|m| next_msg < m)
            && deadline.is_none_or(|d| Instant::now() < d);
        let can_send = more && inflight.len() < plan.window;
        if !can_send && inflight.is_empty() {
            break;
        }
        let send_now = match (&pacer, can_send) {
            (_, false) => false,
            // As fast as possible: fill the window at once.
            (None, true) => true,
            (Some(p), true) => {
                let wake = *slot.get_or_insert_with(|| p.slot());
                if deadline.is_some_and(|d| wake >= d) {
                    out_of_time = true;
                    continue;
                }
                tokio::select! {
                    biased;
                    Some(d) = inflight.next(), if !inflight.is_empty() => {
                        settle(index, &mut r, d, &mut answered, &mut order, ordered, live);
                        false
                    }
                    _ = tokio::time::sleep_until(wake) => {
                        slot = None;
                        deadline.is_none_or(|d| Instant::now() < d)
                    }
                }
            }
        };
        if send_now {
            let b = body(index, next_msg, plan.payload);
            inflight.push(one(peer.clone(), session, plan, next_msg, b));
            next_msg += 1;
            r.sent += 1;
            live.sent.fetch_add(1, Ordering::Relaxed);
        } else if !can_send {
            if let Some(d) = inflight.next().await {
                settle(index, &mut r, d, &mut answered, &mut order, ordered, live);
            }
        }
    }
    if ordered {
        order.sort_unstable();
        let mut highest = None;
        for &(_, msg) in &order {
            if highest.is_some_and(|h| msg < h) {
                r.out_of_order += 1;
            } else {
                highest = Some(msg);
            }
        }
    }
    r
}

/// Account for one finished request.
fn settle(
    index: u64,
    r: &mut FlowResult,
    d: Done,
    answered: &mut HashSet<u64>,
    order: &mut Vec<(u64, u64)>,
    ordered: bool,
    live: &Live,
) {
    let reply = match d.outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(RuntimeError::Timeout)) | Err(_) => {
            r.timeouts += 1;
            live.lost.fetch_add(1, Ordering::Relaxed);
            r.first_error
                .get_or_insert_with(|| "no reply (timeout)".into());
            return;
        }
        // The session had already ended: the engine refused the request,
        // so it never went out. Not sent, not lost (the requests in flight
        // when it ended are, as timeouts).
        Ok(Err(
            RuntimeError::Engine(EngineError::UnknownSession | EngineError::SessionNotOpen)
            | RuntimeError::Shutdown,
        )) => {
            r.closed_early = true;
            r.sent -= 1;
            live.sent.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        Ok(Err(e)) => {
            if matches!(e, RuntimeError::SessionClosed(_)) {
                r.closed_early = true;
            }
            live.lost.fetch_add(1, Ordering::Relaxed);
            r.error(e.to_string());
            return;
        }
    };
    live.record(index, d.sent_at.elapsed());
    let status = reply.status().unwrap_or(0);
    if !(200..300).contains(&status) {
        r.rejected += 1;
        r.first_error
            .get_or_insert_with(|| format!("reply {status:03} to message {}", d.msg));
        return;
    }
    r.received += 1;
    live.received.fetch_add(1, Ordering::Relaxed);
    r.bytes += reply.body().len() as u64;
    if reply.body() != d.body.as_ref() {
        r.mismatched += 1;
        r.first_error
            .get_or_insert_with(|| format!("message {} echoed with another body", d.msg));
    }
    if !answered.insert(d.msg) {
        r.duplicated.insert((index, d.msg));
    }
    if ordered {
        if let Ok(Some(seq)) = reply.seq() {
            order.push((seq, d.msg));
        }
    }
}

fn merge(total: &mut FlowResult, r: FlowResult, closed_early: &mut u64) {
    total.sent += r.sent;
    total.received += r.received;
    total.rejected += r.rejected;
    total.timeouts += r.timeouts;
    total.errors += r.errors;
    total.mismatched += r.mismatched;
    total.out_of_order += r.out_of_order;
    total.bytes += r.bytes;
    total.duplicated.extend(r.duplicated);
    if r.closed_early {
        *closed_early += 1;
    }
    if total.first_error.is_none() {
        total.first_error = r.first_error;
    }
}

/// A flow after closing.
struct Finished {
    open_error: Option<String>,
    stats: Option<Stats>,
    wire_duplicates: Vec<(u64, u64)>,
    lost_because: Option<String>,
}

async fn finish(flow: Flow, gate: Arc<Semaphore>) -> Finished {
    let _permit = gate.acquire_owned().await;
    let mut stats = None;
    if let Some(peer) = &flow.peer {
        if let Some(h) = flow.session {
            let _ = tokio::time::timeout(CLOSE_LIMIT, peer.close_session(h)).await;
        }
        stats = peer.stats().await.ok();
        let _ = peer.shutdown().await;
    }
    let mut wire_duplicates = Vec::new();
    let mut lost_because = None;
    if let Some(w) = flow.watch {
        // The events channel ends with the driver, so this returns.
        if let Ok(Ok(w)) = tokio::time::timeout(CLOSE_LIMIT, w).await {
            wire_duplicates.extend(w.twice.into_iter().map(|m| (flow.index, m)));
            lost_because = w.lost_because;
        }
    }
    Finished {
        open_error: flow.open_error,
        stats,
        wire_duplicates,
        lost_because,
    }
}

/// Everything the run measured.
struct Summary<'a> {
    plan: &'a Plan,
    flows: u64,
    rate: Option<f64>,
    opened: u64,
    open_failed: u64,
    open_errors: Vec<String>,
    closed_early: u64,
    /// Why sessions ended that we did not close, with how many.
    close_reasons: BTreeMap<String, u64>,
    open_elapsed: Duration,
    elapsed: Duration,
    total: FlowResult,
    latency: Histogram<u64>,
    stats: Stats,
}

impl Summary<'_> {
    fn lost(&self) -> u64 {
        self.total.timeouts + self.total.errors
    }

    fn retransmitted(&self) -> u64 {
        self.stats.timer_retransmits + self.stats.nack_retransmits + self.stats.fast_retransmits
    }

    fn status(&self) -> Status {
        let t = &self.total;
        if self.opened == 0 || (t.sent > 0 && t.received == 0) {
            return Status::Timeout;
        }
        if self.lost() > 0 || !t.duplicated.is_empty() || t.mismatched > 0 || t.out_of_order > 0 {
            return Status::Lost;
        }
        if self.open_failed > 0 || t.rejected > 0 {
            return Status::Rejected;
        }
        Status::Ok
    }

    fn msg_per_s(&self) -> f64 {
        per_second(self.total.received as f64, self.elapsed)
    }

    fn mb_per_s(&self) -> f64 {
        per_second(self.total.bytes as f64 / 1e6, self.elapsed)
    }

    fn kind(&self) -> &'static str {
        if self.plan.transactions {
            "transactions"
        } else {
            "sessions"
        }
    }

    fn mode(&self) -> Option<&'static str> {
        (!self.plan.transactions).then(|| self.plan.mode.as_str())
    }

    fn percentiles(&self) -> Option<[(&'static str, f64); 6]> {
        let h = &self.latency;
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some([
            ("p50", ms(h.value_at_quantile(0.50))),
            ("p90", ms(h.value_at_quantile(0.90))),
            ("p99", ms(h.value_at_quantile(0.99))),
            ("p99_9", ms(h.value_at_quantile(0.999))),
            ("max", ms(h.max())),
            ("mean", h.mean() / 1000.0),
        ])
    }

    fn json(&self, status: Status) -> Value {
        let t = &self.total;
        let latency = match self.percentiles() {
            Some(p) => Value::Object(p.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()),
            None => Value::Null,
        };
        json!({
            "target": self.plan.target.to_string(),
            "kind": self.kind(),
            "mode": self.mode(),
            "sessions": self.flows,
            "opened": self.opened,
            "open_failed": self.open_failed,
            "open_errors": self.open_errors,
            "closed_early": self.closed_early,
            "close_reasons": self.close_reasons,
            "window": self.plan.window,
            "payload": self.plan.payload,
            "rate": self.rate,
            "open_s": self.open_elapsed.as_secs_f64(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "sent": t.sent,
            "received": t.received,
            "rejected": t.rejected,
            "lost": self.lost(),
            "timeouts": t.timeouts,
            "duplicated": t.duplicated.len(),
            "out_of_order": t.out_of_order,
            "mismatched": t.mismatched,
            "retransmitted": self.retransmitted(),
            "engine": {
                "transmits": self.stats.transmits,
                "timer_retransmits": self.stats.timer_retransmits,
                "nack_retransmits": self.stats.nack_retransmits,
                "fast_retransmits": self.stats.fast_retransmits,
                "nacks_sent": self.stats.nacks_sent,
                "duplicates_dropped": self.stats.duplicates,
                "malformed": self.stats.malformed,
            },
            "throughput": {
                "msg_per_s": self.msg_per_s(),
                "mb_per_s": self.mb_per_s(),
            },
            "latency_ms": latency,
            "wire_check": self.plan.wire_check,
            "first_error": t.first_error,
            "exit": status as u8,
        })
    }

    fn text(&self, status: Status) -> String {
        use std::fmt::Write as _;
        let t = &self.total;
        let mut s = String::new();
        let what = match self.mode() {
            Some(m) => format!("{} {m} sessions", self.flows),
            None => format!("{} transaction flows", self.flows),
        };
        let rate = self.rate.map_or_else(
            || "as fast as possible".to_owned(),
            |r| format!("{r} msg/s"),
        );
        let _ = writeln!(
            s,
            "target        {} ({what}, window {}, payload {} B, {rate})",
            self.plan.target, self.plan.window, self.plan.payload
        );
        let _ = writeln!(
            s,
            "opened        {} of {} in {:.3} s{}",
            self.opened,
            self.flows,
            self.open_elapsed.as_secs_f64(),
            if self.open_errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.open_errors.join("; "))
            }
        );
        let _ = writeln!(
            s,
            "messages      sent {}, received {}, lost {}, duplicated {}, out of order {}",
            t.sent,
            t.received,
            self.lost(),
            t.duplicated.len(),
            t.out_of_order
        );
        let reasons: Vec<String> = self
            .close_reasons
            .iter()
            .map(|(why, n)| format!("{why} {n}"))
            .collect();
        let _ = writeln!(
            s,
            "              timeouts {}, other errors {}, rejected {}, other body {}, sessions lost {}{}",
            t.timeouts,
            t.errors,
            t.rejected,
            t.mismatched,
            self.closed_early,
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join(", "))
            }
        );
        let _ = writeln!(
            s,
            "retransmitted {} (timer {}, NACK {}, fast {}); NACKs sent {}; duplicates dropped {}",
            self.retransmitted(),
            self.stats.timer_retransmits,
            self.stats.nack_retransmits,
            self.stats.fast_retransmits,
            self.stats.nacks_sent,
            self.stats.duplicates
        );
        let _ = writeln!(
            s,
            "throughput    {:.1} msg/s, {:.3} MB/s over {:.3} s",
            self.msg_per_s(),
            self.mb_per_s(),
            self.elapsed.as_secs_f64()
        );
        if let Some(p) = self.percentiles() {
            let parts: Vec<String> = p
                .iter()
                .map(|(k, v)| format!("{} {v:.3}", k.replace('_', ".")))
                .collect();
            let _ = writeln!(s, "latency (ms)  {}", parts.join(", "));
        }
        if let Some(e) = &t.first_error {
            let _ = writeln!(s, "first error   {e}");
        }
        let _ = writeln!(s, "exit          {}", status as u8);
        s
    }
}

fn per_second(n: f64, d: Duration) -> f64 {
    let secs = d.as_secs_f64();
    if secs > 0.0 {
        n / secs
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::{body, marker};

    #[test]
    fn bodies_carry_their_marker() {
        let b = body(3, 17, 64);
        assert_eq!(b.len(), 64);
        assert!(b.starts_with(b"s=3 m=17;."));
        assert_eq!(marker(&b), Some((3, 17)));
        // Smaller than the marker: the marker alone.
        let b = body(12345, 678, 4);
        assert_eq!(&b[..], b"s=12345 m=678;");
        assert_eq!(marker(&b), Some((12345, 678)));
    }

    #[test]
    fn other_bodies_have_no_marker() {
        for b in [
            &b""[..],
            b"hello",
            b"s=1 m=2",
            b"s=x m=2;",
            b"s=1 n=2;",
            b"m=1;",
        ] {
            assert_eq!(marker(b), None, "{:?}", String::from_utf8_lossy(b));
        }
    }
}
