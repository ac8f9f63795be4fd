//! `acorn-cli listen`: a reference peer to test other implementations
//! against.
//!
//! The runtime and its engine do the protocol: they ACK every request,
//! answer `REG` (agreeing to the requested mode, issuing a `Session-ID`),
//! keep sessions in order, NACK gaps, honour `Need-Seq`, BYE and
//! `Ignore-Seq`, and report whatever a peer does wrong. This command only
//! answers the requests the engine delivers (in session order) with
//! `200 OK` echoing the body, and logs: every PDU received and sent (from
//! the runtime's tap) and every engine event.
//!
//! The engine also checks every `Content-Hash-*`/`Payload-Hash-*` (a
//! mismatch is answered `400` and logged, the request never delivered) and
//! reassembles segmented payloads, so a request that arrives here is whole
//! and intact. A payload too long to echo in one datagram is answered with
//! its length and SHA-256 instead.

use crate::{duration, input, json, show, Status};
use acorn::engine::integrity::Unchecked;
use acorn::engine::{CloseReason, Config, EngineLimit, Event, HashAlg, HashSpec, Violation};
use acorn::runtime::{Dest, IncomingRequest, PeerBuilder, PeerEvent, WireDirection};
use acorn::wire::{EncodeError, ParseOptions, Pdu, PduBuilder};
use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use serde_json::{json, Value};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `listen --help`, and the README's table (keep them in sync).
pub(crate) const EXIT_HELP: &str = "\
Exit status:
  0  stopped by Ctrl-C, SIGTERM or --exit-after (after a graceful shutdown)
  2  usage error, an address that cannot be bound, or stdout closed

Log (stdout): `< udp://PEER` or `> udp://PEER` (tcp:// for TCP) then the PDU
as received or sent, control characters escaped, and a blank line; engine
events as `* ...` lines, protocol violations and limits hit as `! ...` lines.
With --json, one object per line: {\"dir\":\"in\"|\"out\",\"peer\":...,
\"pdu\":{...}} (the `parse --json` object) or {\"dir\",\"peer\",\"error\":{...}}
for bytes that do not parse, and {\"event\":...} for engine events.";

/// How long the shutdown waits for the last log events.
const DRAIN: Duration = Duration::from_secs(2);

/// Longest body echoed back: a reply is one datagram (replies are not
/// segmented), and this fits any UDP datagram with room for the head.
const ECHO_MAX: usize = 32 * 1024;

#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("where")
        .required(true)
        .multiple(true)
        .args(["addr", "udp", "tcp"])
))]
pub(crate) struct Args {
    /// Where to listen: HOST:PORT (UDP), udp://HOST:PORT or
    /// tcp://HOST:PORT. Port 0 picks a free port; the one bound is printed.
    #[arg(value_name = "ADDR", conflicts_with_all = ["udp", "tcp"])]
    addr: Option<String>,
    /// Listen on UDP at HOST:PORT (may be given with --tcp).
    #[arg(long, value_name = "HOST:PORT")]
    udp: Option<String>,
    /// Listen on TCP at HOST:PORT (may be given with --udp).
    #[arg(long, value_name = "HOST:PORT")]
    tcp: Option<String>,
    /// Log one JSON object per line instead of text.
    #[arg(long)]
    json: bool,
    /// Sessions held at once; a REG beyond it is answered 503 [default: the
    /// engine's, 10000].
    #[arg(long, value_name = "N")]
    max_sessions: Option<usize>,
    /// Sessions one IP address may hold (a load generator on one host
    /// needs it raised) [default: the engine's, 256; its /24 or /64: 4x].
    #[arg(long, value_name = "N")]
    sessions_per_source: Option<usize>,
    /// Bytes held for peers over every buffer (reorder, retransmission,
    /// reassembly, reply cache) [default: the engine's, 268435456 = 256
    /// MiB; one IP address may hold 1/8 of it].
    #[arg(long, value_name = "BYTES")]
    memory_budget: Option<usize>,
    /// Close a session after this long without a PDU from its peer
    /// (e.g. 30s, 2m) [default: the engine's, 120s].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    idle_timeout: Option<Duration>,
    /// Accept bare LF line ends from peers (for hand-typed PDUs from
    /// tools like netcat). Off by default: strict CRLF, as SPEC §1 says.
    #[arg(long)]
    lenient: bool,
    /// Shut down after this long (for scripts), e.g. 10s.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    exit_after: Option<Duration>,
    /// A hash to add to every reply with a body: sha256, sha512,
    /// hmac-sha256 or hmac-sha512 (repeat for several). Hashes on requests
    /// are verified whatever this says.
    #[arg(long = "hash", value_name = "ALG", value_parser = parse_spec)]
    hashes: Vec<HashSpec>,
    /// The HMAC key shared with every peer (the file's bytes, less one
    /// trailing newline): `*-Hash-HMAC-*` on requests are verified with it
    /// (without it they are logged as unchecked), and hmac-* in --hash
    /// signs replies with it. The key is never printed.
    #[arg(long, value_name = "FILE")]
    hmac_key_file: Option<std::path::PathBuf>,
    /// Toward an address that has not proven it receives our PDUs, send at
    /// most N times the bytes received from it (SPEC §9) [default: 3].
    /// The seeds' minimal hand-written PDUs need about 10 to get every
    /// answer the conformance suite shows.
    #[arg(long, value_name = "N")]
    amplification_factor: Option<u64>,
    #[command(flatten)]
    transport: crate::transport_args::TransportArgs,
}

fn parse_spec(s: &str) -> Result<HashSpec, String> {
    HashSpec::parse(s).ok_or_else(|| format!("{s}: sha256, sha512, hmac-sha256 or hmac-sha512"))
}

/// `HOST:PORT` or `SCHEME://HOST:PORT` for a `--udp`/`--tcp` option:
/// another scheme than the option's is a usage error.
fn option_addr(s: &str, tcp: bool) -> anyhow::Result<SocketAddr> {
    let (mine, other) = if tcp {
        ("tcp://", "udp://")
    } else {
        ("udp://", "tcp://")
    };
    if s.starts_with(other) {
        bail!("{s}: --{} takes a {} address", &mine[..3], &mine[..3]);
    }
    let rest = s.strip_prefix(mine).unwrap_or(s);
    rest.to_socket_addrs()
        .with_context(|| format!("bad address {s}"))?
        .next()
        .ok_or_else(|| anyhow!("bad address {s}: no address"))
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let (udp, tcp) = match &args.addr {
        Some(a) => match a.parse::<Dest>().map_err(|e| anyhow!("ADDR: {e}"))? {
            Dest::Udp(a) => (Some(a), None),
            Dest::Tcp(a) => (None, Some(a)),
        },
        None => (
            args.udp
                .as_deref()
                .map(|s| option_addr(s, false))
                .transpose()?,
            args.tcp
                .as_deref()
                .map(|s| option_addr(s, true))
                .transpose()?,
        ),
    };
    let mut cfg = Config::default();
    if let Some(n) = args.max_sessions {
        cfg.limits.max_sessions = n;
    }
    if let Some(n) = args.sessions_per_source {
        cfg.shares.sessions_per_source = n;
        cfg.shares.sessions_per_prefix = n.saturating_mul(4);
    }
    if let Some(n) = args.memory_budget {
        cfg.shares.memory_budget = n;
        cfg.shares.memory_per_source = n / 8;
    }
    if let Some(d) = args.idle_timeout {
        cfg.session_idle_timeout = d;
    }
    if let Some(n) = args.amplification_factor {
        cfg.paths.amplification_factor = n;
    }
    cfg.parse.allow_bare_lf = args.lenient;
    cfg.integrity.send = args.hashes.clone();
    cfg.integrity.default_key = args
        .hmac_key_file
        .as_deref()
        .map(crate::send_cmd::read_hmac_key)
        .transpose()?;
    if cfg.integrity.default_key.is_none() && args.hashes.iter().any(|h| h.keyed) {
        bail!("--hash hmac-*: needs --hmac-key-file");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(serve(args, cfg, udp, tcp))
}

async fn serve(
    args: &Args,
    cfg: Config,
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
) -> anyhow::Result<Status> {
    let log = Log {
        json: args.json,
        parse: cfg.parse,
    };
    let mut stop = Stop::new(args.exit_after)?;
    let mut builder = args.transport.apply(PeerBuilder::new(cfg).tap(true));
    if let Some(a) = udp {
        builder = builder.udp(a);
    }
    if let Some(a) = tcp {
        builder = builder.tcp(a);
    }
    let wanted = [udp.map(Dest::Udp), tcp.map(Dest::Tcp)];
    let wanted = wanted.iter().flatten().map(|d| d.to_string());
    let (peer, incoming, mut events) = builder
        .start()
        .await
        .with_context(|| format!("binding {}", wanted.collect::<Vec<_>>().join(" and ")))?;
    // The runtime always has a UDP socket (for sending); announce only
    // what was asked for, with the ports actually bound.
    if udp.is_some() {
        if let Some(a) = peer.udp_addr() {
            eprintln!("listening on {}", Dest::Udp(a));
        }
        if let Some(n) = peer.udp_recv_buffer() {
            eprintln!("udp receive buffer: {n} bytes (as the kernel reports it)");
        }
    }
    if tcp.is_some() {
        if let Some(a) = peer.tcp_addr() {
            eprintln!("listening on {}", Dest::Tcp(a));
        }
    }
    let responder = tokio::spawn(answer(incoming));
    let mut status = Status::Ok;
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    if let Err(e) = log.event(&ev) {
                        eprintln!("acorn-cli: error: {e:#}");
                        status = Status::Trouble;
                        break;
                    }
                }
                None => break,
            },
            why = stop.wait() => {
                eprintln!("acorn-cli: {why}; shutting down");
                break;
            }
        }
    }
    if tcp.is_some() {
        if let Ok(s) = peer.tcp_stats().await {
            eprintln!("{}", crate::transport_args::stats_line(&s));
        }
    }
    peer.shutdown().await.context("shutting down")?;
    responder.abort();
    // What the shutdown flushed is logged too; the driver is gone, so the
    // channel ends once drained.
    let _ = tokio::time::timeout(DRAIN, async {
        while let Some(ev) = events.recv().await {
            if log.event(&ev).is_err() {
                break;
            }
        }
    })
    .await;
    Ok(status)
}

/// What ends the listener (and `relay`): Ctrl-C, SIGTERM, or `--exit-after`.
pub(crate) struct Stop {
    at: Option<Instant>,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
}

impl Stop {
    /// Registers the signal handlers now, so a signal that arrives while
    /// the log is being written is not missed.
    pub(crate) fn new(after: Option<Duration>) -> anyhow::Result<Stop> {
        #[cfg(unix)]
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stop {
            at: after.map(|d| Instant::now() + d),
            #[cfg(unix)]
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            #[cfg(unix)]
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
        })
    }

    pub(crate) async fn wait(&mut self) -> &'static str {
        let at = self.at;
        let deadline = async {
            match at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        #[cfg(unix)]
        {
            tokio::select! {
                _ = deadline => "--exit-after elapsed",
                _ = self.int.recv() => "interrupted",
                _ = self.term.recv() => "terminated",
            }
        }
        #[cfg(not(unix))]
        {
            tokio::select! {
                _ = deadline => "--exit-after elapsed",
                _ = tokio::signal::ctrl_c() => "interrupted",
            }
        }
    }
}

/// Answer every delivered request with `200 OK` echoing its body and
/// `Content-Type`. The engine adds TX-ID, ids and Seq, and retransmits the
/// reply until it is acknowledged.
async fn answer(mut incoming: mpsc::Receiver<IncomingRequest>) {
    while let Some(req) = incoming.recv().await {
        let reply = echo(&req.pdu).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot echo the request; answering 500");
            PduBuilder::reply(500, "Cannot Echo").expect("a valid status line")
        });
        if req.respond(reply).is_err() {
            return; // the peer is shutting down
        }
    }
}

fn echo(pdu: &Pdu) -> Result<PduBuilder, EncodeError> {
    let mut r = PduBuilder::reply(200, "OK")?;
    if pdu.body().len() > ECHO_MAX {
        use base64::Engine as _;
        let digest = HashAlg::Sha256.digest(pdu.body());
        r.header("Content-Type", "text/plain")?;
        r.body(format!(
            "received {} bytes, SHA-256 {}\n",
            pdu.body().len(),
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        return Ok(r);
    }
    if let Some(ct) = pdu.header_ref("Content-Type") {
        r.header("Content-Type", Bytes::copy_from_slice(&ct.text()))?;
    }
    r.body(pdu.body_bytes());
    Ok(r)
}

/// Writes the log to stdout, one flushed entry at a time (it is read live).
struct Log {
    json: bool,
    parse: ParseOptions,
}

impl Log {
    fn event(&self, ev: &PeerEvent) -> anyhow::Result<()> {
        let entry = match ev {
            PeerEvent::Wire {
                direction,
                peer,
                bytes,
            } => self.wire(*direction, peer, bytes),
            PeerEvent::Engine(e) => {
                let (text, v) = describe(e);
                if self.json {
                    format!("{v}\n")
                } else {
                    format!("{text}\n")
                }
            }
        };
        let mut out = std::io::stdout().lock();
        out.write_all(entry.as_bytes())
            .and_then(|()| out.flush())
            .context("writing the log to stdout")
    }

    fn wire(&self, direction: WireDirection, peer: &Dest, bytes: &[u8]) -> String {
        let dir = match direction {
            WireDirection::In => "in",
            WireDirection::Out => "out",
        };
        if !self.json {
            let mark = if dir == "in" { '<' } else { '>' };
            return format!("{mark} {peer}\n{}", show::block(bytes));
        }
        let mut v = json!({ "dir": dir, "peer": peer.to_string() });
        match input::check(bytes, &self.parse) {
            Ok(pdu) => match json::pdu(&pdu, &self.parse.limits) {
                Ok(p) => v["pdu"] = p,
                Err(e) => v["error"] = json::error_detail(&e, bytes),
            },
            Err(e) => v["error"] = json::error_detail(&e, bytes),
        }
        format!("{v}\n")
    }
}

/// An engine event as a text log line and as a JSON object.
fn describe(e: &Event) -> (String, Value) {
    match e {
        Event::SessionOpened {
            session,
            peer,
            mode,
            session_id,
        } => (
            format!(
                "* session {} opened with {peer}: {}, Session-ID {}",
                session.0,
                mode.as_str(),
                session_id.as_deref().unwrap_or("(none)")
            ),
            json!({
                "event": "session_opened",
                "session": session.0,
                "peer": peer.to_string(),
                "mode": mode.as_str(),
                "session_id": session_id,
            }),
        ),
        Event::SessionClosed { session, reason } => (
            format!("* session {} closed: {}", session.0, close_reason(reason)),
            json!({
                "event": "session_closed",
                "session": session.0,
                "reason": format!("{reason:?}"),
                "message": close_reason(reason),
            }),
        ),
        Event::ProtocolViolation { peer, violation } => {
            let (kind, message) = violation_text(violation);
            (
                format!("! violation from {peer}: {message}"),
                json!({
                    "event": "violation",
                    "peer": peer.to_string(),
                    "violation": kind,
                    "message": message,
                }),
            )
        }
        Event::LimitReached { limit, peer } => {
            let peer_text = peer.map(|p| format!(" (peer {p})")).unwrap_or_default();
            (
                format!("! limit reached: {}{peer_text}", limit_name(limit)),
                json!({
                    "event": "limit",
                    "limit": limit_name(limit),
                    "peer": peer.map(|p| p.to_string()),
                }),
            )
        }
        Event::Expired { peer, session } => (
            format!("* expired message from {peer} not acted on"),
            json!({
                "event": "expired",
                "peer": peer.to_string(),
                "session": session.map(|s| s.0),
            }),
        ),
        Event::IntegrityFailed {
            peer,
            session,
            header,
        } => (
            format!("! {header} from {peer} does not match: answered 400, not delivered"),
            json!({
                "event": "integrity_failed",
                "peer": peer.to_string(),
                "session": session.map(|s| s.0),
                "header": header,
            }),
        ),
        Event::HashNotChecked {
            peer,
            header,
            reason,
        } => {
            let why = match reason {
                Unchecked::UnknownAlgorithm => "unknown algorithm",
                Unchecked::NoKey => "no HMAC key for the peer (--hmac-key-file)",
            };
            (
                format!("* {header} from {peer} not checked: {why}"),
                json!({
                    "event": "hash_not_checked",
                    "peer": peer.to_string(),
                    "header": header,
                    "reason": why,
                }),
            )
        }
        Event::ReassemblyExpired {
            peer,
            payload,
            received,
            count,
        } => (
            format!(
                "! segmented payload {payload} from {peer} expired with {received} of {count} segments"
            ),
            json!({
                "event": "reassembly_expired",
                "peer": peer.to_string(),
                "payload": payload,
                "received": received,
                "count": count,
            }),
        ),
        Event::ReplyUnacknowledged { id } => (
            format!(
                "* reply to incoming request {} was never acknowledged",
                id.0
            ),
            json!({ "event": "reply_unacknowledged", "request": id.0 }),
        ),
        Event::ReplyNotWanted { id } => (
            format!(
                "* incoming request {} was acknowledged before the reply: not sent",
                id.0
            ),
            json!({ "event": "reply_not_wanted", "request": id.0 }),
        ),
        other => {
            let d = format!("{other:?}");
            (format!("* {d}"), json!({ "event": "other", "debug": d }))
        }
    }
}

fn close_reason(r: &CloseReason) -> String {
    match r {
        CloseReason::Local => "closed locally".to_owned(),
        CloseReason::PeerClosed => "the peer closed it (BYE, or a new REG)".to_owned(),
        CloseReason::PeerCannotRetransmit => {
            "the peer cannot retransmit (BYE with Ignore-Seq: *)".to_owned()
        }
        CloseReason::CannotRetransmit => {
            "the peer asked for PDUs no longer held (sent BYE with Ignore-Seq: *)".to_owned()
        }
        CloseReason::GapUnfilled => "a gap stayed unfilled after the NACK rounds".to_owned(),
        CloseReason::Timeout => "a request exhausted its attempts".to_owned(),
        CloseReason::Idle => "idle timeout".to_owned(),
        CloseReason::Refused { status } => format!("refused with {status:03}"),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

fn violation_text(v: &Violation) -> (&'static str, String) {
    match v {
        Violation::Malformed(e) => ("malformed", format!("malformed PDU: {e}")),
        Violation::BadHeader(e) => ("bad_header", format!("bad header: {e}")),
        Violation::NeedSeqNeverSent { seq, next } => (
            "need_seq_never_sent",
            format!("Need-Seq/Ack-Seq names Seq {seq}, never sent (next is {next}); ignored"),
        ),
        Violation::SeqTooFarAhead { seq, expected } => (
            "seq_too_far_ahead",
            format!("Seq {seq} is too far ahead of the expected {expected}; dropped"),
        ),
        Violation::MissingSeq => ("missing_seq", "session PDU without Seq".to_owned()),
        Violation::UnsupportedVersion => (
            "unsupported_version",
            "unsupported version (answered 505)".to_owned(),
        ),
        Violation::MissingAddressing => (
            "missing_addressing",
            "request without From/To (answered 400)".to_owned(),
        ),
        Violation::SegmentsInconsistent { reason } => (
            "segments_inconsistent",
            format!("segments of one payload disagree: {reason} (answered 400)"),
        ),
        Violation::SegmentWithoutId => (
            "segment_without_id",
            "segment without TX-ID or Segment-ID (answered 400)".to_owned(),
        ),
        #[allow(unreachable_patterns)]
        other => ("other", format!("{other:?}")),
    }
}

fn limit_name(l: &EngineLimit) -> String {
    match l {
        EngineLimit::Sessions => "max_sessions".to_owned(),
        EngineLimit::PendingRequests => "max_pending_requests".to_owned(),
        EngineLimit::ReplyCache => "max_reply_cache".to_owned(),
        EngineLimit::ReorderBuffer => "max_reorder_pdus".to_owned(),
        EngineLimit::RetransmitBuffer => "max_retx_pdus".to_owned(),
        EngineLimit::SeenRanges => "max_seen_ranges".to_owned(),
        EngineLimit::Reassemblies => "max_reassemblies".to_owned(),
        EngineLimit::ReassemblyBytes => "max_reassembly_bytes".to_owned(),
        EngineLimit::PayloadSize => "max_payload_len".to_owned(),
        EngineLimit::SegmentCount => "max_segments".to_owned(),
        EngineLimit::MemoryBudget => "memory_budget".to_owned(),
        EngineLimit::ReplyCacheSource => "reply_cache_per_source".to_owned(),
        EngineLimit::ReplyCachePrefix => "reply_cache_per_prefix".to_owned(),
        EngineLimit::SessionsSource => "sessions_per_source".to_owned(),
        EngineLimit::SessionsPrefix => "sessions_per_prefix".to_owned(),
        EngineLimit::HalfOpen => "max_half_open".to_owned(),
        EngineLimit::ReassembliesSource => "reassemblies_per_source".to_owned(),
        EngineLimit::ReassembliesPrefix => "reassemblies_per_prefix".to_owned(),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}
