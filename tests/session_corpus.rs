//! Runner for the session scenario corpus, `corpus/sessions/*.scenario`.
//!
//! Each scenario plays the peer of ONE engine: it hands the engine PDUs,
//! application commands and time steps, and checks every PDU the engine
//! transmits and every event it reports (the format is documented in
//! `corpus/sessions/README.md`). Scenarios are discovered by listing the
//! directory, so adding one never means editing a list. A scenario stops at
//! its first failure (its later steps would only report the consequences),
//! but every scenario runs and all failures are reported together, each
//! with `file:line`.
//!
//! Authoring aids: `ACORN_SCENARIO=<name>` runs only the scenarios whose
//! file name contains `<name>`; `ACORN_SCENARIO_TRACE=1` prints every
//! transmitted PDU and event as the runner drains them.

use acorn::engine::{
    CloseReason, Config, Endpoint, EngineError, Event, IncomingId, ModePolicy, SessionHandle,
    Transmit, Violation,
};
use acorn::wire::{ParseOptions, Pdu, PduBuilder, SessionMode};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Fewer scenarios than this means discovery broke (or the corpus was gutted).
const MIN_SCENARIOS: usize = 15;
/// Where the peer sends from unless the scenario says `peer` / `from`.
const DEFAULT_PEER: &str = "127.0.0.2:7077";
/// The engine's wall clock at the start (`Expire-At` is compared with it).
const DEFAULT_UNIX_NOW: u64 = 1_800_000_000;
/// The engine's id generator seed: fixed, so every run is the same run.
const DEFAULT_SEED: u64 = 0x5eed;
/// Tags the runner knows; anything else is a typo.
const KNOWN_TAGS: [&str; 1] = ["engine-only"];
/// Bound on timer firings within one `at` step (a timer loop is a bug).
const MAX_TIMER_FIRINGS: usize = 100_000;

#[derive(Debug, Clone)]
enum When {
    Abs(Duration),
    Rel(Duration),
}

#[derive(Debug, Clone)]
enum Item {
    At(When),
    From(SocketAddr),
    Peer(Vec<String>),
    Bytes(Vec<u8>),
    Cmd(String),
    Expect(Vec<(usize, String)>),
    ExpectNone,
    ExpectAny,
    Event(String),
    EventNone,
}

impl Item {
    /// Actions change the engine's state; before each one, everything the
    /// previous one produced must have been matched.
    fn is_action(&self) -> bool {
        matches!(
            self,
            Item::At(_) | Item::Peer(_) | Item::Bytes(_) | Item::Cmd(_)
        )
    }
}

#[derive(Debug)]
struct Scenario {
    name: String,
    role: String,
    tags: Vec<String>,
    cfg: Config,
    seed: u64,
    unix_now: u64,
    peer: SocketAddr,
    ignore_events: Vec<String>,
    items: Vec<(usize, Item)>,
}

#[derive(Debug)]
struct Failure {
    file: String,
    line: usize,
    msg: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("duration `{s}` needs a unit (us, ms, s)"))?;
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad number in duration `{s}`"))?;
    match unit {
        "us" => Ok(Duration::from_micros(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        _ => Err(format!("unknown unit in duration `{s}` (us, ms, s)")),
    }
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("config {key}: `{v}` is not a number"))
}

fn parse_mode(v: &str) -> Result<SessionMode, String> {
    match v {
        "ordered" => Ok(SessionMode::Ordered),
        "unordered" => Ok(SessionMode::Unordered),
        _ => Err(format!("`{v}` is not a session mode (ordered, unordered)")),
    }
}

/// Apply one `config key=value` directive.
fn apply_config(sc: &mut Scenario, kv: &str) -> Result<(), String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("config needs key=value, got `{kv}`"))?;
    let (k, v) = (k.trim(), v.trim());
    let c = &mut sc.cfg;
    let l = &mut c.limits;
    match k {
        "seed" => sc.seed = parse_num(k, v)?,
        "unix_now" => sc.unix_now = parse_num(k, v)?,
        "identity" => c.identity = Some(v.to_owned()),
        "retry.initial" => c.retry.initial = parse_duration(v)?,
        "retry.factor" => c.retry.factor = parse_num(k, v)?,
        "retry.max_interval" => c.retry.max_interval = parse_duration(v)?,
        "retry.max_attempts" => c.retry.max_attempts = parse_num(k, v)?,
        "reply_timeout" => c.reply_timeout = parse_duration(v)?,
        "nack_interval" => c.nack_interval = parse_duration(v)?,
        "max_nack_rounds" => c.max_nack_rounds = parse_num(k, v)?,
        "retransmit_holdoff" => c.retransmit_holdoff = parse_duration(v)?,
        "session_idle_timeout" => c.session_idle_timeout = parse_duration(v)?,
        "require_from_to" => c.require_from_to = parse_num(k, v)?,
        "mode_policy" => {
            c.mode_policy = match v {
                "agree" => ModePolicy::AgreeRequested,
                m => ModePolicy::Force(parse_mode(m)?),
            }
        }
        "limits.max_sessions" => l.max_sessions = parse_num(k, v)?,
        "limits.max_pending_requests" => l.max_pending_requests = parse_num(k, v)?,
        "limits.max_reply_cache" => l.max_reply_cache = parse_num(k, v)?,
        "limits.max_reorder_pdus" => l.max_reorder_pdus = parse_num(k, v)?,
        "limits.max_retx_pdus" => l.max_retx_pdus = parse_num(k, v)?,
        "limits.max_retx_bytes" => l.max_retx_bytes = parse_num(k, v)?,
        "limits.max_nack_ranges" => l.max_nack_ranges = parse_num(k, v)?,
        "limits.max_seq_ahead" => l.max_seq_ahead = parse_num(k, v)?,
        "limits.max_seen_ranges" => l.max_seen_ranges = parse_num(k, v)?,
        _ => return Err(format!("unknown config key `{k}`")),
    }
    Ok(())
}

/// `"..."` with `\r \n \t \\ \" \xNN` escapes, for `send-bytes`.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or("send-bytes takes a double-quoted string")?;
    let mut out = Vec::new();
    let mut it = inner.bytes();
    while let Some(b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'"') => out.push(b'"'),
            Some(b'x') => {
                let hex: Vec<u8> = it.by_ref().take(2).collect();
                let hex = std::str::from_utf8(&hex).map_err(|_| "bad \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad \\x escape")?);
            }
            _ => return Err("unknown escape in send-bytes".into()),
        }
    }
    Ok(out)
}

fn parse_scenario(path: &Path, text: &str) -> Result<Scenario, (usize, String)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sc = Scenario {
        name,
        role: String::new(),
        tags: Vec::new(),
        cfg: Config::default(),
        seed: DEFAULT_SEED,
        unix_now: DEFAULT_UNIX_NOW,
        peer: DEFAULT_PEER.parse().expect("default peer"),
        ignore_events: Vec::new(),
        items: Vec::new(),
    };
    // The block being collected: `>` lines (peer PDU) or `<` lines.
    enum Block {
        None,
        Peer(usize, Vec<String>),
        Expect(usize, Vec<(usize, String)>),
    }
    fn close(block: &mut Block, items: &mut Vec<(usize, Item)>) {
        match std::mem::replace(block, Block::None) {
            Block::None => {}
            Block::Peer(l, lines) => items.push((l, Item::Peer(lines))),
            Block::Expect(l, lines) => items.push((l, Item::Expect(lines))),
        }
    }
    let mut block = Block::None;
    let mut seen_step = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |m: String| (n, m);
        // PDU blocks first: their content is taken verbatim.
        if line == ">" || line.starts_with("> ") {
            let content = line.get(2..).unwrap_or("").to_owned();
            match &mut block {
                Block::Peer(_, lines) => lines.push(content),
                _ => {
                    close(&mut block, &mut sc.items);
                    block = Block::Peer(n, vec![content]);
                }
            }
            seen_step = true;
            continue;
        }
        if line == "<" || line.starts_with("< ") {
            let content = line.get(2..).unwrap_or("").to_owned();
            match &mut block {
                Block::Expect(_, lines) => lines.push((n, content)),
                _ => {
                    close(&mut block, &mut sc.items);
                    block = Block::Expect(n, vec![(n, content)]);
                }
            }
            seen_step = true;
            continue;
        }
        close(&mut block, &mut sc.items);
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (word, rest) = t.split_once(' ').unwrap_or((t, ""));
        let rest = rest.trim();
        let header_directive =
            matches!(word, "role" | "config" | "tags:" | "peer" | "ignore-events");
        if header_directive && seen_step {
            return Err(err(format!(
                "`{word}` belongs in the header, before the first step"
            )));
        }
        let item = match word {
            "role" => {
                if rest != "server" && rest != "client" {
                    return Err(err(format!("role must be server or client, got `{rest}`")));
                }
                sc.role = rest.to_owned();
                continue;
            }
            "config" => {
                apply_config(&mut sc, rest).map_err(err)?;
                continue;
            }
            "tags:" => {
                for tag in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    if !KNOWN_TAGS.contains(&tag) {
                        return Err(err(format!("unknown tag `{tag}`")));
                    }
                    sc.tags.push(tag.to_owned());
                }
                continue;
            }
            "peer" => {
                sc.peer = rest
                    .parse()
                    .map_err(|_| err(format!("`{rest}` is not HOST:PORT")))?;
                continue;
            }
            "ignore-events" => {
                sc.ignore_events
                    .extend(rest.split_whitespace().map(str::to_owned));
                continue;
            }
            "at" => {
                let when = match rest.strip_prefix('+') {
                    Some(r) => When::Rel(parse_duration(r).map_err(err)?),
                    None => When::Abs(parse_duration(rest).map_err(err)?),
                };
                Item::At(when)
            }
            "from" => Item::From(
                rest.parse()
                    .map_err(|_| err(format!("`{rest}` is not HOST:PORT")))?,
            ),
            "send-bytes" => Item::Bytes(unescape(rest).map_err(|e| err(e.to_string()))?),
            "!" => Item::Cmd(rest.to_owned()),
            "<none" => Item::ExpectNone,
            "<any" => Item::ExpectAny,
            "event" if rest == "none" => Item::EventNone,
            "event" if !rest.is_empty() => Item::Event(rest.to_owned()),
            _ => return Err(err(format!("cannot read line `{line}`"))),
        };
        seen_step = true;
        sc.items.push((n, item));
    }
    close(&mut block, &mut sc.items);
    if sc.role.is_empty() {
        return Err((1, "missing `role server|client`".into()));
    }
    if sc.role == "server"
        && sc
            .items
            .iter()
            .any(|(_, i)| matches!(i, Item::Cmd(c) if c.starts_with("open ")))
    {
        return Err((
            1,
            "`! open` makes the engine a client: use `role client`".into(),
        ));
    }
    Ok(sc)
}

/// `${name}` → the captured value.
fn substitute(s: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
        let name = &after[..end];
        let v = vars
            .get(name)
            .ok_or_else(|| format!("`${{{name}}}` was never captured"))?;
        out.push_str(v);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `{name}` (a whole value) captures.
fn capture_name(v: &str) -> Option<&str> {
    v.strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| !n.is_empty() && !n.contains(['{', '}', '$']))
}

/// Printable form of bytes for messages.
fn show(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n\n    "),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s
}

/// The variant name of an enum value (its `Debug` form up to the fields),
/// for variants this runner has no attributes for.
fn variant_name(v: &dyn std::fmt::Debug) -> String {
    let d = format!("{v:?}");
    let end = d.find([' ', '(', '{']).unwrap_or(d.len());
    d[..end].to_owned()
}

fn mode_str(m: SessionMode) -> String {
    m.as_str().to_owned()
}

fn reason_attrs(r: &CloseReason, attrs: &mut Vec<(String, String)>) {
    let name = match r {
        CloseReason::Local => "Local",
        CloseReason::PeerClosed => "PeerClosed",
        CloseReason::PeerCannotRetransmit => "PeerCannotRetransmit",
        CloseReason::CannotRetransmit => "CannotRetransmit",
        CloseReason::GapUnfilled => "GapUnfilled",
        CloseReason::Timeout => "Timeout",
        CloseReason::Idle => "Idle",
        CloseReason::ModeMismatch { requested, agreed } => {
            attrs.push(("requested".into(), mode_str(*requested)));
            attrs.push(("agreed".into(), mode_str(*agreed)));
            "ModeMismatch"
        }
        CloseReason::Refused { status } => {
            attrs.push(("status".into(), format!("{status:03}")));
            "Refused"
        }
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return attrs.push(("reason".into(), variant_name(other))),
    };
    attrs.push(("reason".into(), name.into()));
}

fn violation_attrs(v: &Violation, attrs: &mut Vec<(String, String)>) {
    let name = match v {
        Violation::Malformed(e) => {
            attrs.push(("code".into(), e.kind.code()));
            "Malformed"
        }
        Violation::BadHeader(e) => {
            attrs.push(("code".into(), e.kind.code()));
            "BadHeader"
        }
        Violation::NeedSeqNeverSent { seq, next } => {
            attrs.push(("seq".into(), seq.to_string()));
            attrs.push(("next".into(), next.to_string()));
            "NeedSeqNeverSent"
        }
        Violation::SeqTooFarAhead { seq, expected } => {
            attrs.push(("seq".into(), seq.to_string()));
            attrs.push(("expected".into(), expected.to_string()));
            "SeqTooFarAhead"
        }
        Violation::MissingSeq => "MissingSeq",
        Violation::UnsupportedVersion => "UnsupportedVersion",
        Violation::MissingAddressing => "MissingAddressing",
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return attrs.push(("violation".into(), variant_name(other))),
    };
    attrs.push(("violation".into(), name.into()));
}

/// An event as a kind and `key=value` attributes, the terms `event`
/// lines are written in.
fn describe(e: &Event) -> (String, Vec<(String, String)>) {
    let mut a: Vec<(String, String)> = Vec::new();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let kind = match e {
        Event::RequestReceived {
            peer, session, pdu, ..
        } => {
            a.push(("peer".into(), peer.to_string()));
            a.push(("method".into(), pdu.method().unwrap_or("").into()));
            a.push((
                "target".into(),
                pdu.target().map(|t| t.into_owned()).unwrap_or_default(),
            ));
            a.push(("body".into(), text(pdu.body())));
            a.push((
                "session".into(),
                if session.is_some() { "yes" } else { "no" }.into(),
            ));
            if let Ok(Some(tx)) = pdu.tx_id() {
                a.push(("tx".into(), tx.into()));
            }
            "RequestReceived"
        }
        Event::Acked { .. } => "Acked",
        Event::Provisional { pdu, .. } => {
            a.push(("status".into(), format!("{:03}", pdu.status().unwrap_or(0))));
            "Provisional"
        }
        Event::ReplyReceived { pdu, .. } => {
            a.push(("status".into(), format!("{:03}", pdu.status().unwrap_or(0))));
            a.push(("body".into(), text(pdu.body())));
            "ReplyReceived"
        }
        Event::RequestTimedOut { .. } => "RequestTimedOut",
        Event::ReplyUnacknowledged { .. } => "ReplyUnacknowledged",
        Event::ReplyNotWanted { .. } => "ReplyNotWanted",
        Event::SessionOpened {
            peer,
            mode,
            session_id,
            ..
        } => {
            a.push(("peer".into(), peer.to_string()));
            a.push(("mode".into(), mode_str(*mode)));
            a.push((
                "session_id".into(),
                session_id.clone().unwrap_or_else(|| "none".into()),
            ));
            "SessionOpened"
        }
        Event::SessionClosed { reason, .. } => {
            reason_attrs(reason, &mut a);
            "SessionClosed"
        }
        Event::Expired { peer, session } => {
            a.push(("peer".into(), peer.to_string()));
            a.push((
                "session".into(),
                if session.is_some() { "yes" } else { "no" }.into(),
            ));
            "Expired"
        }
        Event::ProtocolViolation { peer, violation } => {
            a.push(("peer".into(), peer.to_string()));
            violation_attrs(violation, &mut a);
            "ProtocolViolation"
        }
        Event::LimitReached { limit, peer } => {
            a.push(("limit".into(), format!("{limit:?}")));
            if let Some(p) = peer {
                a.push(("peer".into(), p.to_string()));
            }
            "LimitReached"
        }
        // Variants added after this runner (resumption, channels…):
        // named, without attributes.
        #[allow(unreachable_patterns)]
        other => return (variant_name(other), a),
    };
    (kind.to_owned(), a)
}

fn event_text(e: &Event) -> String {
    let (k, a) = describe(e);
    let mut s = k;
    for (key, v) in a {
        let _ = write!(s, " {key}={v}");
    }
    s
}

fn start_line(p: &[u8]) -> String {
    let end = p.windows(2).position(|w| w == b"\r\n").unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// One scenario being run.
struct Run<'a> {
    sc: &'a Scenario,
    ep: Endpoint,
    start: Instant,
    now: Instant,
    from: SocketAddr,
    vars: HashMap<String, String>,
    tx: VecDeque<(Duration, Transmit)>,
    ev: VecDeque<(Duration, Event)>,
    /// Requests delivered to the application and not yet answered, oldest first.
    incoming: VecDeque<IncomingId>,
    /// The session the application side works on: the last one opened.
    session: Option<SessionHandle>,
    /// The line of the last action, for reporting what it left unmatched.
    action_line: usize,
    trace: bool,
}

impl<'a> Run<'a> {
    fn new(sc: &'a Scenario, trace: bool) -> Self {
        let start = Instant::now();
        let ep = Endpoint::new(
            sc.cfg.clone(),
            sc.seed,
            start,
            Duration::from_secs(sc.unix_now),
        );
        Run {
            sc,
            ep,
            start,
            now: start,
            from: sc.peer,
            vars: HashMap::new(),
            tx: VecDeque::new(),
            ev: VecDeque::new(),
            incoming: VecDeque::new(),
            session: None,
            action_line: 0,
            trace,
        }
    }

    fn t(&self) -> Duration {
        self.now - self.start
    }

    /// Take what the engine produced into the queues the expectations read.
    fn drain(&mut self) {
        let t = self.t();
        while let Some(x) = self.ep.poll_transmit() {
            if self.trace {
                eprintln!(
                    "[{}] {t:?} transmit -> {}\n    {}",
                    self.sc.name,
                    x.dest,
                    show(&x.payload)
                );
            }
            self.tx.push_back((t, x));
        }
        while let Some(e) = self.ep.poll_event() {
            if self.trace {
                eprintln!("[{}] {t:?} event {}", self.sc.name, event_text(&e));
            }
            match &e {
                Event::RequestReceived { id, .. } => self.incoming.push_back(*id),
                Event::SessionOpened { session, .. } => self.session = Some(*session),
                _ => {}
            }
            let (kind, _) = describe(&e);
            if !self.sc.ignore_events.contains(&kind) {
                self.ev.push_back((t, e));
            }
        }
    }

    /// Run every timer due by now (as a driver does after any input).
    fn fire_due(&mut self) -> Result<(), String> {
        for _ in 0..MAX_TIMER_FIRINGS {
            match self.ep.poll_timeout() {
                Some(at) if at <= self.now => {
                    self.ep.handle_timeout(self.now);
                    self.drain();
                }
                _ => return Ok(()),
            }
        }
        Err("timers keep firing at the same instant (a timer loop)".into())
    }

    /// Move time to `target`, firing each timer at its own instant.
    fn advance(&mut self, target: Instant) -> Result<(), String> {
        if target < self.now {
            return Err(format!(
                "time goes backwards: at {:?}, asked for {:?}",
                self.t(),
                target - self.start
            ));
        }
        for _ in 0..MAX_TIMER_FIRINGS {
            match self.ep.poll_timeout() {
                Some(at) if at <= target => {
                    self.now = self.now.max(at);
                    self.ep.handle_timeout(self.now);
                    self.drain();
                }
                _ => {
                    self.now = target;
                    return Ok(());
                }
            }
        }
        Err("more timer firings than the runner's bound (a timer loop)".into())
    }

    /// Before an action: everything the last one produced must be matched.
    fn boundary(&mut self) -> Result<(), (usize, String)> {
        let line = self.action_line;
        if let Some((t, x)) = self.tx.front() {
            let n = self.tx.len();
            return Err((
                line,
                format!(
                    "{n} transmitted PDU(s) not matched after this step; the first, at {t:?} to {}:\n    {}",
                    x.dest,
                    show(&x.payload)
                ),
            ));
        }
        if let Some((t, e)) = self.ev.front() {
            let n = self.ev.len();
            return Err((
                line,
                format!(
                    "{n} event(s) not matched after this step; the first, at {t:?}: {}",
                    event_text(e)
                ),
            ));
        }
        Ok(())
    }

    fn peer_pdu(&mut self, lines: &[String]) -> Result<(), String> {
        let mut head = Vec::new();
        let mut body: Option<Vec<String>> = None;
        for l in lines {
            let l = substitute(l, &self.vars)?;
            match &mut body {
                Some(b) => b.push(l),
                None if l.is_empty() => body = Some(Vec::new()),
                None => head.push(l),
            }
        }
        let mut bytes = head.join("\r\n");
        bytes.push_str("\r\n\r\n");
        if let Some(b) = body {
            bytes.push_str(&b.join("\r\n"));
        }
        self.ep
            .handle_datagram(self.now, self.from, Bytes::from(bytes));
        self.drain();
        self.fire_due()
    }

    fn command(&mut self, cmd: &str) -> Result<(), String> {
        let cmd = substitute(cmd, &self.vars)?;
        let (cmd, expect_err) = match cmd.rsplit_once(" => ") {
            Some((c, e)) => (c.trim().to_owned(), Some(e.trim().to_owned())),
            None => (cmd.trim().to_owned(), None),
        };
        let mut words = cmd.splitn(4, ' ');
        let verb = words.next().unwrap_or("");
        let now = self.now;
        let session = || self.session.ok_or("no session is open yet".to_owned());
        let request = |words: &mut std::str::SplitN<'_, char>| -> Result<PduBuilder, String> {
            let method = words.next().ok_or("missing METHOD")?;
            let target = words.next().ok_or("missing TARGET")?;
            let mut b = PduBuilder::request(method, target).map_err(|e| e.to_string())?;
            if let Some(body) = words.next() {
                b.body(body.to_owned());
            }
            Ok(b)
        };
        let result: Result<(), EngineError> = match verb {
            "open" => {
                let mode = parse_mode(words.next().unwrap_or(""))?;
                let target = words.next().ok_or("missing TARGET")?;
                self.ep
                    .open_session(now, self.from, target, mode)
                    .map(|h| self.session = Some(h))
            }
            "send" => {
                let s = session()?;
                let b = request(&mut words)?;
                self.ep.send(now, s, b).map(|_| ())
            }
            "request" => {
                let b = request(&mut words)?;
                self.ep.request(now, self.from, b).map(|_| ())
            }
            "respond" => {
                let rest = cmd["respond".len()..].trim();
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status: u16 = status.parse().map_err(|_| "respond STATUS [TEXT]")?;
                let b = PduBuilder::reply(status, text).map_err(|e| e.to_string())?;
                let id = self
                    .incoming
                    .pop_front()
                    .ok_or("no delivered request is waiting for an answer")?;
                self.ep.respond(now, id, b)
            }
            "close" => {
                let s = session()?;
                self.ep.close_session(now, s)
            }
            _ => return Err(format!("unknown command `{verb}`")),
        };
        self.drain();
        self.fire_due()?;
        match (result, expect_err) {
            (Ok(()), None) => Ok(()),
            (Err(e), Some(want)) if format!("{e:?}") == want => Ok(()),
            (Err(e), want) => Err(format!(
                "command failed with {e:?}{}",
                want.map(|w| format!(", expected {w}")).unwrap_or_default()
            )),
            (Ok(()), Some(want)) => Err(format!("command succeeded, expected {want}")),
        }
    }

    fn expect_pdu(&mut self, lines: &[(usize, String)]) -> Result<(), (usize, String)> {
        let (first_line, start) = &lines[0];
        let want_start = substitute(start, &self.vars).map_err(|e| (*first_line, e))?;
        let Some((t, x)) = self.tx.pop_front() else {
            return Err((
                *first_line,
                format!("expected `{want_start}`, but nothing (more) was transmitted"),
            ));
        };
        let actual = || format!("at {t:?} to {}:\n    {}", x.dest, show(&x.payload));
        let pdu =
            Pdu::parse_datagram(x.payload.clone(), &ParseOptions::default()).map_err(|e| {
                (
                    *first_line,
                    format!("transmitted PDU does not parse ({e:?}): {}", actual()),
                )
            })?;
        let got_start = start_line(&x.payload);
        if got_start != want_start {
            return Err((
                *first_line,
                format!("expected `{want_start}`, got {}", actual()),
            ));
        }
        let mut want_dest = Some(self.from);
        let mut body: Option<Vec<String>> = None;
        for (n, l) in &lines[1..] {
            let n = *n;
            if let Some(b) = &mut body {
                b.push(substitute(l, &self.vars).map_err(|e| (n, e))?);
                continue;
            }
            if l.is_empty() {
                body = Some(Vec::new());
                continue;
            }
            if let Some(d) = l.strip_prefix("=> ") {
                let d = substitute(d.trim(), &self.vars).map_err(|e| (n, e))?;
                want_dest = if d == "*" {
                    None
                } else {
                    Some(
                        d.parse()
                            .map_err(|_| (n, format!("`{d}` is not HOST:PORT")))?,
                    )
                };
                continue;
            }
            if let Some(name) = l.strip_prefix('!') {
                if let Some(h) = pdu.header(name.trim()) {
                    return Err((
                        n,
                        format!(
                            "header {name} must be absent, has `{}`; PDU {}",
                            String::from_utf8_lossy(h),
                            actual()
                        ),
                    ));
                }
                continue;
            }
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| (n, format!("expected `Name: value`, got `{l}`")))?;
            let (name, value) = (name.trim(), value.trim());
            let values: Vec<String> = pdu
                .headers_named(name)
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
                .collect();
            if values.is_empty() {
                return Err((n, format!("header {name} is missing; PDU {}", actual())));
            }
            if value == "*" {
                continue;
            }
            if let Some(var) = capture_name(value) {
                self.vars.insert(var.to_owned(), values[0].clone());
                continue;
            }
            let want = substitute(value, &self.vars).map_err(|e| (n, e))?;
            if !values.contains(&want) {
                return Err((
                    n,
                    format!(
                        "header {name}: expected `{want}`, got {values:?}; PDU {}",
                        actual()
                    ),
                ));
            }
        }
        if let Some(d) = want_dest {
            if x.dest != d {
                return Err((
                    *first_line,
                    format!("sent to {}, expected {d}; PDU {}", x.dest, actual()),
                ));
            }
        }
        if let Some(b) = body {
            let want = b.join("\r\n");
            if pdu.body() != want.as_bytes() {
                return Err((
                    *first_line,
                    format!(
                        "body: expected `{}`; PDU {}",
                        show(want.as_bytes()),
                        actual()
                    ),
                ));
            }
        }
        Ok(())
    }

    fn expect_event(&mut self, spec: &str) -> Result<(), String> {
        let mut words = spec.split_whitespace();
        let kind = words.next().unwrap_or("");
        let Some((t, e)) = self.ev.pop_front() else {
            return Err(format!("expected event {kind}, but there is none (more)"));
        };
        let (got, attrs) = describe(&e);
        if got != kind {
            return Err(format!(
                "expected event {kind}, got at {t:?}: {}",
                event_text(&e)
            ));
        }
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("event attribute `{w}` is not key=value"))?;
            let Some((_, have)) = attrs.iter().find(|(a, _)| a == k) else {
                return Err(format!("event has no `{k}`: {}", event_text(&e)));
            };
            if let Some(var) = capture_name(v) {
                self.vars.insert(var.to_owned(), have.clone());
                continue;
            }
            let want = substitute(v, &self.vars)?;
            if *have != want {
                return Err(format!(
                    "event {kind}: {k} expected `{want}`, got: {}",
                    event_text(&e)
                ));
            }
        }
        Ok(())
    }

    fn run(&mut self) -> Result<(), (usize, String)> {
        let sc = self.sc;
        for (line, item) in &sc.items {
            let line = *line;
            let at = |r: Result<(), String>| r.map_err(|m| (line, m));
            if item.is_action() {
                self.boundary()?;
                self.action_line = line;
            }
            match item {
                Item::At(w) => {
                    let target = match w {
                        When::Abs(d) => self.start + *d,
                        When::Rel(d) => self.now + *d,
                    };
                    at(self.advance(target))?;
                }
                Item::From(a) => self.from = *a,
                Item::Peer(lines) => at(self.peer_pdu(lines))?,
                Item::Bytes(b) => {
                    self.ep
                        .handle_datagram(self.now, self.from, Bytes::from(b.clone()));
                    self.drain();
                    at(self.fire_due())?;
                }
                Item::Cmd(c) => at(self.command(c))?,
                Item::Expect(lines) => self.expect_pdu(lines)?,
                Item::ExpectNone => {
                    if let Some((t, x)) = self.tx.front() {
                        return Err((
                            line,
                            format!(
                                "expected nothing more transmitted, got at {t:?} to {}:\n    {}",
                                x.dest,
                                show(&x.payload)
                            ),
                        ));
                    }
                }
                Item::ExpectAny => self.tx.clear(),
                Item::Event(spec) => at(self.expect_event(spec))?,
                Item::EventNone => {
                    if let Some((t, e)) = self.ev.front() {
                        return Err((
                            line,
                            format!("expected no (more) events, got at {t:?}: {}", event_text(e)),
                        ));
                    }
                }
            }
        }
        self.boundary()
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/sessions")
}

fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(corpus_dir())
        .expect("corpus/sessions is listable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    files.sort();
    files
}

#[test]
fn session_scenarios() {
    let filter = std::env::var("ACORN_SCENARIO").ok();
    let trace = std::env::var_os("ACORN_SCENARIO_TRACE").is_some();
    let files = scenario_files();
    let mut failures = Vec::new();
    if filter.is_none() && files.len() < MIN_SCENARIOS {
        failures.push(Failure {
            file: "corpus/sessions".into(),
            line: 0,
            msg: format!(
                "only {} scenarios (at least {MIN_SCENARIOS} expected)",
                files.len()
            ),
        });
    }
    let mut ran = 0;
    for path in &files {
        let file = format!(
            "corpus/sessions/{}",
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        if filter.as_deref().is_some_and(|f| !file.contains(f)) {
            continue;
        }
        let text = fs::read_to_string(path).expect("scenario is UTF-8 text");
        let sc = match parse_scenario(path, &text) {
            Ok(sc) => sc,
            Err((line, msg)) => {
                failures.push(Failure { file, line, msg });
                continue;
            }
        };
        if !sc.items.iter().any(|(_, i)| {
            matches!(
                i,
                Item::Expect(_) | Item::ExpectNone | Item::Event(_) | Item::EventNone
            )
        }) {
            failures.push(Failure {
                file,
                line: 1,
                msg: "the scenario expects nothing".into(),
            });
            continue;
        }
        ran += 1;
        let mut run = Run::new(&sc, trace);
        if let Err((line, msg)) = run.run() {
            failures.push(Failure { file, line, msg });
        }
    }
    let report: Vec<String> = failures
        .iter()
        .map(|f| format!("{}:{}: {}", f.file, f.line, f.msg))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {ran} scenario(s) failed:\n{}",
        failures.len(),
        report.join("\n")
    );
    eprintln!("{ran} session scenarios passed");
}

/// The runner itself must catch what the corpus relies on it to catch: a
/// wrong header value, an unmatched transmit, a missing event.
#[test]
fn runner_reports_mismatches() {
    let cases = [
        (
            "wrong value",
            "role server\n> GET /x ACORN/1.0\n> TX-ID: 1\n< ACORN/1.0 000 ACK\n< TX-ID: 2\n",
            5,
        ),
        (
            "unmatched transmit",
            "role server\n> GET /x ACORN/1.0\n> TX-ID: 1\nevent RequestReceived\n",
            2,
        ),
        (
            "unmatched event",
            "role server\n> GET /x ACORN/1.0\n> TX-ID: 1\n< ACORN/1.0 000 ACK\n",
            2,
        ),
        (
            "nothing transmitted",
            "role server\nsend-bytes \"junk\"\nevent ProtocolViolation\n< ACORN/1.0 000 ACK\n",
            4,
        ),
    ];
    for (what, text, want_line) in cases {
        let sc = parse_scenario(Path::new("self-test.scenario"), text)
            .unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let mut run = Run::new(&sc, false);
        let err = run.run().expect_err(what);
        assert_eq!(
            err.0, want_line,
            "{what}: reported at the wrong line: {err:?}"
        );
    }
}
