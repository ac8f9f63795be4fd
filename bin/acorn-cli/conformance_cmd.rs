//! `acorn-cli conformance TARGET`: the session scenario corpus played
//! against a live peer, the way h2spec or the Autobahn suite test servers
//! of their protocols.
//!
//! Each scenario of `corpus/sessions/` is a case; its id is the file stem.
//! The runner plays the script's peer side over a fresh socket per case (a
//! new UDP port or a new TCP connection, so sessions never meet), sends the
//! `>` PDUs when the script says, and checks what the peer sends back
//! against the `<` expectations, with the matching of `acorn::scenario` —
//! the same code that runs the corpus against the in-memory engine.
//!
//! What cannot be played over a socket (the peer as client, its
//! configuration, its application beyond answering `200 OK` at once, its
//! events) is decided by [`Scenario::network_support`] and reported
//! `unsupported` with the reason. Script time becomes real time, scaled by
//! `--time-scale` and bounded by `--max-wait` ([`Scenario::network_schedule`]).
//!
//! Over the network "the PDUs the last step produced" can only be judged by
//! waiting: a `<` block waits up to `--reply-timeout` for its PDU; `<none`
//! watches for `--settle` (no longer than the next `at` instant) that
//! nothing arrives; and before each action, everything that arrived before
//! it must have been matched, as in memory.

use crate::{duration, Status};
use acorn::codec::StreamCodec;
use acorn::runtime::Dest;
use acorn::scenario::{
    self, show_bytes, Deviation, ExpectPdu, HeaderWant, Scenario, Schedule, StepKind, Transport,
    Vars,
};
use acorn::wire::ParseOptions;
use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use futures::StreamExt as _;
use serde_json::json;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{tcp::OwnedWriteHalf, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

/// `conformance --help`, and the README's table (keep them in sync).
pub(crate) const EXIT_HELP: &str = "\
Grades: pass; non-strict (only SHOULD-level `?` expectations missed);
fail; unsupported (the case needs what a socket cannot do: the peer as
client, its configuration, application commands, events; or more real time
than --max-wait). The peer's application must answer every request at once
with 200 OK (as `acorn-cli listen` does).

Output: a table, then `N passed, N non-strict, N failed, N unsupported` and
the plain `N passed, N failed, N skipped` (passed counts non-strict cases,
skipped counts unsupported ones).

Exit status:
  0  no case failed
  1  at least one case failed
  2  usage error (bad TARGET, unknown case id), unreadable corpus, or an
     output file that cannot be written";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The peer under test: udp://HOST:PORT, tcp://HOST:PORT, or HOST:PORT
    /// (UDP).
    #[arg(value_name = "TARGET", required_unless_present = "list")]
    target: Option<String>,
    /// Print every case id and whether it runs over UDP and over TCP (with
    /// the reason when not), then exit.
    #[arg(long)]
    list: bool,
    /// Run only these cases (ids as in --list; repeat the option or
    /// separate ids with commas).
    #[arg(long = "case", value_name = "ID", num_args = 1.., value_delimiter = ',')]
    cases: Vec<String>,
    /// Leave these cases out.
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    exclude: Vec<String>,
    /// Multiply script time (`at` steps, --reply-timeout, --settle) by this
    /// factor: above 1 for a slow peer or link, below 1 for a peer whose
    /// timers are configured faster than the defaults.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0, value_parser = parse_scale)]
    time_scale: f64,
    /// The longest real time a case may wait for. Quiet checks at the end
    /// of a scenario ("nothing more, ever") are shortened to fit; a case
    /// that needs longer for anything else is unsupported.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = duration::parse)]
    max_wait: Duration,
    /// How long an expected PDU may take to arrive.
    #[arg(long, value_name = "DURATION", default_value = "300ms", value_parser = duration::parse)]
    reply_timeout: Duration,
    /// How long `<none` (and the end of a case) watch for PDUs nobody
    /// expects.
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = duration::parse)]
    settle: Duration,
    /// Cases run at once, each on its own socket.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// The scenario directory [default: corpus/sessions of the source tree
    /// acorn-cli was built from, else ./corpus/sessions].
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Stamp `From: IDENTITY` on every PDU the runner sends that parses
    /// (`auto`: the case's own socket address), for a peer that answers
    /// the request's `From` rather than its source (SPEC §10).
    #[arg(long, value_name = "IDENTITY|auto", value_parser = crate::addressing::identity_or_auto)]
    from: Option<String>,
    /// Stamp `Reply-To: IDENTITY` likewise (`auto`: the case's socket).
    #[arg(long, value_name = "IDENTITY|auto", value_parser = crate::addressing::identity_or_auto)]
    reply_to: Option<String>,
    /// After the table, print every PDU a failed case sent and received.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_scale(s: &str) -> Result<f64, String> {
    let f: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if f.is_finite() && f > 0.0 && f <= 1000.0 {
        Ok(f)
    } else {
        Err("must be above 0 and at most 1000".to_owned())
    }
}

/// How a case came out, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Pass,
    NonStrict,
    Unsupported,
    Fail,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::NonStrict => "non-strict",
            Outcome::Unsupported => "unsupported",
            Outcome::Fail => "fail",
        }
    }
}

/// The result of one case.
#[derive(Debug)]
struct CaseResult {
    id: String,
    file: String,
    outcome: Outcome,
    /// The line that failed, or that made the case unsupported.
    line: Option<usize>,
    /// Why it failed or was not run (empty on a pass).
    message: String,
    /// SHOULD-level expectations the peer missed.
    deviations: Vec<Deviation>,
    /// What the runner changed (quiet checks shortened).
    notes: Vec<String>,
    elapsed: Duration,
    /// Every PDU sent and received, for --verbose.
    exchange: Vec<String>,
}

/// A scenario file, read.
struct Case {
    file: String,
    scenario: Scenario,
}

/// The options that shape how a case is played.
#[derive(Debug, Clone, Copy)]
struct Timing {
    scale: f64,
    max_wait: Duration,
    reply_timeout: Duration,
    settle: Duration,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let dir = corpus_dir(args.corpus.as_deref())?;
    let mut cases = load(&dir)?;
    let known: Vec<&str> = cases.iter().map(|c| c.scenario.id.as_str()).collect();
    for id in args.cases.iter().chain(&args.exclude) {
        if !known.contains(&id.as_str()) {
            bail!("unknown case id `{id}` (see --list)");
        }
    }
    cases.retain(|c| {
        (args.cases.is_empty() || args.cases.contains(&c.scenario.id))
            && !args.exclude.contains(&c.scenario.id)
    });
    let timing = Timing {
        scale: args.time_scale,
        max_wait: args.max_wait,
        reply_timeout: args.reply_timeout.mul_f64(args.time_scale),
        settle: args.settle.mul_f64(args.time_scale),
    };
    if args.list {
        print_list(&cases, &timing);
        return Ok(Status::Ok);
    }
    let target = args.target.as_deref().expect("clap requires TARGET");
    let dest: Dest = target
        .parse()
        .map_err(|e| anyhow!("TARGET: {e}"))
        .with_context(|| format!("bad TARGET {target}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let started = std::time::Instant::now();
    let stamp = Stamp {
        from: args.from.clone(),
        reply_to: args.reply_to.clone(),
    };
    let results = rt.block_on(run_all(&cases, dest, timing, &stamp, args.jobs.into()));
    let elapsed = started.elapsed();
    let transport = transport_of(dest);
    print_table(&results, &dest, transport, args.verbose, elapsed);
    let counts = Counts::of(&results);
    if let Some(path) = &args.json {
        let v = json_report(&results, &dest, transport, &counts, args, elapsed);
        let text = serde_json::to_string_pretty(&v).expect("JSON values serialize");
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        std::fs::write(
            path,
            junit_report(&results, &dest, transport, &counts, elapsed),
        )
        .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if counts.failed > 0 {
        Status::Invalid
    } else {
        Status::Ok
    })
}

fn transport_of(dest: Dest) -> Transport {
    match dest {
        Dest::Udp(_) => Transport::Udp,
        Dest::Tcp(_) => Transport::Tcp,
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "udp",
        Transport::Tcp => "tcp",
    }
}

/// `--corpus`, else the source tree's corpus, else `./corpus/sessions`.
fn corpus_dir(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(d) = given {
        return Ok(d.to_owned());
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/sessions");
    if built.is_dir() {
        return Ok(built);
    }
    let here = PathBuf::from("corpus/sessions");
    if here.is_dir() {
        return Ok(here);
    }
    bail!("no corpus/sessions directory found: give one with --corpus DIR")
}

/// Every `*.scenario` file of `dir`, sorted by id. A file that does not
/// parse is an error: the suite itself is broken, not the peer.
fn load(dir: &Path) -> anyhow::Result<Vec<Case>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "scenario"))
        .collect();
    paths.sort();
    let mut cases = Vec::with_capacity(paths.len());
    for p in paths {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        let scenario = scenario::parse(&name, &text)
            .with_context(|| format!("{} does not parse", p.display()))?;
        cases.push(Case {
            file: p.display().to_string(),
            scenario,
        });
    }
    Ok(cases)
}

/// Whether a case runs over `transport`: the network rule, then the time
/// it needs.
fn plan(
    sc: &Scenario,
    transport: Transport,
    t: &Timing,
) -> Result<Schedule, scenario::Unsupported> {
    sc.network_support(transport)?;
    sc.network_schedule(t.scale, t.max_wait)
}

fn why_not(u: &scenario::Unsupported) -> String {
    match u.line {
        Some(l) => format!("line {l}: {}", u.reason),
        None => u.reason.clone(),
    }
}

fn print_list(cases: &[Case], t: &Timing) {
    let width = cases
        .iter()
        .map(|c| c.scenario.id.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("{:width$}  UDP  TCP  WHY NOT", "CASE");
    let (mut udp, mut tcp) = (0, 0);
    for c in cases {
        let u = plan(&c.scenario, Transport::Udp, t);
        let p = plan(&c.scenario, Transport::Tcp, t);
        udp += usize::from(u.is_ok());
        tcp += usize::from(p.is_ok());
        let yes = |r: &Result<Schedule, _>| if r.is_ok() { "yes" } else { "no" };
        let why = match (&u, &p) {
            (Err(a), Err(b)) if a == b => why_not(a),
            (Err(a), Err(b)) => format!("udp: {}; tcp: {}", why_not(a), why_not(b)),
            (Err(a), Ok(_)) => format!("udp: {}", why_not(a)),
            (Ok(_), Err(b)) => format!("tcp: {}", why_not(b)),
            (Ok(_), Ok(_)) => String::new(),
        };
        println!(
            "{:width$}  {:3}  {:3}  {why}",
            c.scenario.id,
            yes(&u),
            yes(&p)
        );
    }
    println!("{} cases: {udp} run over UDP, {tcp} over TCP", cases.len());
}

/// `--from` / `--reply-to`: headers stamped on what the runner sends.
struct Stamp {
    from: Option<String>,
    reply_to: Option<String>,
}

impl Stamp {
    /// `bytes` with the headers set, when they parse as a PDU; as they are
    /// otherwise (hostile input stays exactly what the script says).
    fn apply(&self, bytes: Bytes, local: SocketAddr) -> Bytes {
        if self.from.is_none() && self.reply_to.is_none() {
            return bytes;
        }
        let Ok(pdu) = acorn::wire::Pdu::parse_datagram(bytes.clone(), &ParseOptions::default())
        else {
            return bytes;
        };
        let mut b = acorn::wire::PduBuilder::from_pdu(&pdu);
        let value = |v: &String| {
            if v == "auto" {
                local.to_string()
            } else {
                v.clone()
            }
        };
        for (name, v) in [("From", &self.from), ("Reply-To", &self.reply_to)] {
            if let Some(v) = v {
                let _ = b.set_header(name, value(v));
            }
        }
        b.to_bytes()
    }
}

async fn run_all(
    cases: &[Case],
    dest: Dest,
    t: Timing,
    stamp: &Stamp,
    jobs: usize,
) -> Vec<CaseResult> {
    // Unordered, so a long case does not hold a slot after it is done;
    // the results are put back in corpus order.
    let mut done: Vec<(usize, CaseResult)> = futures::stream::iter(cases.iter().enumerate())
        .map(|(i, c)| async move { (i, run_case(c, dest, t, stamp).await) })
        .buffer_unordered(jobs)
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

async fn run_case(case: &Case, dest: Dest, t: Timing, stamp: &Stamp) -> CaseResult {
    let sc = &case.scenario;
    let mut result = CaseResult {
        id: sc.id.clone(),
        file: case.file.clone(),
        outcome: Outcome::Pass,
        line: None,
        message: String::new(),
        deviations: Vec::new(),
        notes: Vec::new(),
        elapsed: Duration::ZERO,
        exchange: Vec::new(),
    };
    let schedule = match plan(sc, transport_of(dest), &t) {
        Ok(s) => s,
        Err(u) => {
            result.outcome = Outcome::Unsupported;
            result.line = u.line;
            result.message = u.reason;
            return result;
        }
    };
    for (line, script, real) in &schedule.shortened {
        result.notes.push(format!(
            "quiet check at line {line} shortened from {script:?} to {real:?}"
        ));
    }
    // Every wait is bounded on its own; this bounds the case as a whole in
    // case something else hangs (a stuck connect, a full socket buffer).
    let expectations = sc.steps.len() as u32;
    let limit =
        schedule.total + (t.reply_timeout + t.settle) * expectations + Duration::from_secs(5);
    let started = Instant::now();
    let mut play = Play {
        stamp,
        sc,
        schedule: &schedule,
        t,
        start: started,
        vars: Vars::new(),
        deviations: Vec::new(),
        exchange: Vec::new(),
        // Until the first action, blame the first line: anything the peer
        // sends before it is unsolicited.
        action_line: sc.steps.first().map_or(1, |s| s.line),
    };
    let outcome = tokio::time::timeout(limit, play.run(dest)).await;
    result.elapsed = started.elapsed();
    result.deviations = std::mem::take(&mut play.deviations);
    result.exchange = std::mem::take(&mut play.exchange);
    match outcome {
        Ok(Ok(())) if result.deviations.is_empty() => {}
        Ok(Ok(())) => result.outcome = Outcome::NonStrict,
        Ok(Err((line, message))) => {
            result.outcome = Outcome::Fail;
            result.line = Some(line);
            result.message = message;
        }
        Err(_) => {
            result.outcome = Outcome::Fail;
            result.message = format!("the case did not finish within {limit:?}");
        }
    }
    result
}

/// What the reader task saw.
enum Arrival {
    Pdu(Bytes),
    Error(String),
    Closed,
}

/// The runner's end of one case's connection: a reader task queues what
/// arrives, stamped with its arrival time.
struct Conn {
    rx: mpsc::UnboundedReceiver<(Instant, Arrival)>,
    queue: VecDeque<(Instant, Arrival)>,
    out: Out,
    reader: tokio::task::JoinHandle<()>,
    peer: Dest,
}

enum Out {
    Udp(Arc<UdpSocket>, SocketAddr),
    Tcp(OwnedWriteHalf),
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

impl Conn {
    /// A fresh local socket (a new port, or a new connection) to `dest`.
    async fn open(dest: Dest, connect_timeout: Duration) -> Result<Conn, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (out, reader) = match dest {
            Dest::Udp(addr) => {
                // A loopback peer gets a loopback socket: nothing else
                // need be opened to test a local node.
                let local: SocketAddr = match (addr.is_ipv4(), addr.ip().is_loopback()) {
                    (true, true) => "127.0.0.1:0",
                    (true, false) => "0.0.0.0:0",
                    (false, true) => "[::1]:0",
                    (false, false) => "[::]:0",
                }
                .parse()
                .expect("an address");
                let sock = UdpSocket::bind(local)
                    .await
                    .map_err(|e| format!("binding a UDP socket: {e}"))?;
                // Not connected: a peer may answer from another address or
                // to the request's `From` (SPEC §10); the case's socket is
                // its own, so whatever reaches it belongs to the case.
                let sock = Arc::new(sock);
                let r = sock.clone();
                let reader = tokio::spawn(async move {
                    let mut buf = vec![0u8; MAX_DATAGRAM];
                    loop {
                        match r.recv_from(&mut buf).await {
                            Ok((n, _)) => {
                                let pdu = Bytes::copy_from_slice(&buf[..n]);
                                if tx.send((Instant::now(), Arrival::Pdu(pdu))).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send((Instant::now(), Arrival::Error(e.to_string())));
                                return;
                            }
                        }
                    }
                });
                (Out::Udp(sock, addr), reader)
            }
            Dest::Tcp(addr) => {
                let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| format!("connecting to {addr}: no answer in {connect_timeout:?}"))?
                    .map_err(|e| format!("connecting to {addr}: {e}"))?;
                let _ = stream.set_nodelay(true);
                let (read, write) = stream.into_split();
                let reader = tokio::spawn(async move {
                    let mut framed =
                        FramedRead::new(read, StreamCodec::new(ParseOptions::default()));
                    loop {
                        let a = match framed.next().await {
                            Some(Ok(pdu)) => Arrival::Pdu(pdu.bytes().clone()),
                            Some(Err(e)) => Arrival::Error(format!("framing error: {e}")),
                            None => Arrival::Closed,
                        };
                        let last = !matches!(a, Arrival::Pdu(_));
                        if tx.send((Instant::now(), a)).is_err() || last {
                            return;
                        }
                    }
                });
                (Out::Tcp(write), reader)
            }
        };
        Ok(Conn {
            rx,
            queue: VecDeque::new(),
            out,
            reader,
            peer: dest,
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        match &mut self.out {
            Out::Udp(s, to) => s.send_to(bytes, *to).await.map(|_| ()),
            Out::Tcp(w) => w.write_all(bytes).await,
        }
        .map_err(|e| format!("sending to {}: {e}", self.peer))
    }

    /// The case's own socket address (for `--from auto`).
    fn local(&self) -> SocketAddr {
        let local = match &self.out {
            Out::Udp(s, _) => s.local_addr(),
            Out::Tcp(w) => w.local_addr(),
        };
        local.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Queue whatever has arrived by now.
    fn take_arrived(&mut self) {
        while let Ok(a) = self.rx.try_recv() {
            self.queue.push_back(a);
        }
    }

    /// Queue whatever arrives until `deadline`.
    async fn collect_until(&mut self, deadline: Instant) {
        self.take_arrived();
        while let Ok(Some(a)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.queue.push_back(a);
        }
    }

    /// The next arrival, waiting until `deadline` for one.
    async fn next(&mut self, deadline: Instant) -> Option<(Instant, Arrival)> {
        self.take_arrived();
        if let Some(a) = self.queue.pop_front() {
            return Some(a);
        }
        tokio::time::timeout_at(deadline, self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The first queued arrival that came before `before`, if any.
    fn first_before(&self, before: Instant) -> Option<&(Instant, Arrival)> {
        self.queue.front().filter(|(t, _)| *t < before)
    }
}

/// A case being played.
struct Play<'a> {
    stamp: &'a Stamp,
    sc: &'a Scenario,
    schedule: &'a Schedule,
    t: Timing,
    start: Instant,
    vars: Vars,
    deviations: Vec<Deviation>,
    exchange: Vec<String>,
    /// The line of the last action, for reporting what it left unmatched.
    action_line: usize,
}

type Failed = (usize, String);

impl Play<'_> {
    fn since(&self, t: Instant) -> String {
        format!("+{:.1}ms", (t - self.start).as_secs_f64() * 1000.0)
    }

    fn record(&mut self, dir: char, t: Instant, bytes: &[u8]) {
        let line = format!("{} {dir} {}", self.since(t), show_bytes(bytes));
        self.exchange.push(line);
    }

    /// What an unexpected arrival was, for a report.
    fn unexpected(&self, a: &(Instant, Arrival)) -> String {
        match &a.1 {
            Arrival::Pdu(b) => format!("at {}:\n    {}", self.since(a.0), show_bytes(b)),
            Arrival::Error(e) => format!("at {}: {e}", self.since(a.0)),
            Arrival::Closed => format!("at {}: the peer closed the connection", self.since(a.0)),
        }
    }

    /// Before an action: everything that arrived before `before` must have
    /// been matched by the expectations of the previous step.
    fn boundary(&self, conn: &mut Conn, before: Instant) -> Result<(), Failed> {
        conn.take_arrived();
        if let Some(a) = conn.first_before(before) {
            let n = conn.queue.iter().filter(|(t, _)| *t < before).count();
            return Err((
                self.action_line,
                format!(
                    "{n} PDU(s) not matched after this step; the first {}",
                    self.unexpected(a)
                ),
            ));
        }
        Ok(())
    }

    async fn run(&mut self, dest: Dest) -> Result<(), Failed> {
        let connect_timeout = self.t.reply_timeout.max(Duration::from_secs(2));
        let mut conn = Conn::open(dest, connect_timeout)
            .await
            .map_err(|e| (self.action_line, e))?;
        let framing = transport_of(dest).framing();
        self.start = Instant::now();
        let sc = self.sc;
        // The end of the last `<none` / `<any` watch, if it was the last
        // step that looked at the wire.
        let mut watched = None;
        // When the last thing happened: the scheduled instant of the last
        // `at`, the last send, or the arrival of the last PDU matched.
        // Watches for "nothing more" run from it, so a runner that wakes
        // late does not watch into what the peer does later (such as
        // retransmitting a reply the script leaves unacknowledged).
        let mut anchor = self.start;
        for (i, step) in sc.steps.iter().enumerate() {
            let line = step.line;
            if !matches!(step.kind, StepKind::Event(_) | StepKind::EventNone) {
                watched = None;
            }
            let respond = matches!(&step.kind, StepKind::Command(c) if c.verb() == "respond");
            if step.kind.is_action() && !respond {
                // An `at` step first waits for its instant: what arrives
                // before it still belongs to the previous step (an early
                // retransmission must not pass for the one expected at
                // the instant).
                let before = match self.schedule.instants[i] {
                    Some(at) => {
                        tokio::time::sleep_until(self.start + at).await;
                        anchor = self.start + at;
                        anchor
                    }
                    None => Instant::now(),
                };
                self.boundary(&mut conn, before)?;
                self.action_line = line;
            }
            match &step.kind {
                StepKind::At(_) => {}
                StepKind::Send(p) => {
                    let bytes = p.render(&self.vars, framing).map_err(|e| (line, e))?;
                    let bytes = self.stamp.apply(Bytes::from(bytes), conn.local());
                    anchor = Instant::now();
                    self.record('>', anchor, &bytes);
                    conn.send(&bytes).await.map_err(|e| (line, e))?;
                }
                StepKind::SendBytes(b) => {
                    anchor = Instant::now();
                    self.record('>', anchor, b);
                    conn.send(b).await.map_err(|e| (line, e))?;
                }
                // The peer's application answers by itself, at once: the
                // reply is matched by the `<` block that follows.
                StepKind::Command(_) => {}
                StepKind::Expect(exp) => {
                    let deadline = Instant::now() + self.t.reply_timeout;
                    let want = self
                        .vars
                        .substitute(&exp.start)
                        .unwrap_or_else(|_| exp.start.clone());
                    let (at, payload) = match conn.next(deadline).await {
                        Some((at, Arrival::Pdu(b))) => (at, b),
                        Some(other) => {
                            return Err((
                                exp.line,
                                format!("expected `{want}`, got {}", self.unexpected(&other)),
                            ))
                        }
                        None if is_ack_line(&want) => {
                            // SPEC §4: the ACK is a SHOULD.
                            self.deviations.push(Deviation {
                                line: exp.line,
                                message: format!(
                                    "no ACK within {:?} (SHOULD, SPEC §4)",
                                    self.t.reply_timeout
                                ),
                            });
                            continue;
                        }
                        None => {
                            return Err((
                                exp.line,
                                format!(
                                    "expected `{want}`, but nothing (more) arrived within {:?}",
                                    self.t.reply_timeout
                                ),
                            ))
                        }
                    };
                    let what = format!("at {}", self.since(at));
                    if is_ack_line(&want) {
                        if let Some(dev) = stands_in_for_ack(exp, &payload, &mut self.vars, &what) {
                            // The reply is the ACK (SPEC §4, §10) and still
                            // the reply: the next `<` block matches it.
                            self.deviations.push(dev);
                            conn.queue.push_front((at, Arrival::Pdu(payload)));
                            continue;
                        }
                    }
                    self.record('<', at, &payload);
                    anchor = anchor.max(at);
                    let exp = if is_ack_line(&want) {
                        Cow::Owned(seq_is_should(exp))
                    } else {
                        Cow::Borrowed(exp)
                    };
                    let devs = exp
                        .check(&payload, None, &mut self.vars, &what)
                        .map_err(|m| (m.line, m.message))?;
                    self.deviations.extend(devs);
                }
                StepKind::ExpectNone | StepKind::ExpectAny => {
                    let mut until = anchor + self.t.settle;
                    if let Some(next) = self.schedule.next_at(&sc.steps, i) {
                        until = until.min((self.start + next).max(anchor));
                    }
                    conn.collect_until(until).await;
                    watched = Some(until);
                    if matches!(step.kind, StepKind::ExpectAny) {
                        while conn.first_before(until).is_some() {
                            if let Some((at, Arrival::Pdu(b))) = conn.queue.pop_front() {
                                self.record('<', at, &b);
                            }
                        }
                    } else if let Some(a) = conn.first_before(until) {
                        return Err((
                            line,
                            format!("expected nothing more, got {}", self.unexpected(a)),
                        ));
                    }
                }
                // Events are the node's own business: not on the wire.
                StepKind::Event(_) | StepKind::EventNone => {}
                StepKind::From(_) => {
                    return Err((line, "`from` cannot be played over the network".to_owned()))
                }
            }
        }
        // The end of the file is a boundary too: give late PDUs a chance
        // to show up, unless the last step just watched for them (the
        // script ends at its last instant: what the peer does after that,
        // such as retransmitting a reply the script never ACKed, is not
        // part of it).
        let end = match watched {
            Some(until) => until,
            None => {
                let end = anchor + self.t.settle;
                conn.collect_until(end).await;
                end
            }
        };
        self.boundary(&mut conn, end)
    }
}

/// Whether an expected start line is an ACK's (`000`, SPEC §2).
fn is_ack_line(start: &str) -> bool {
    start.split(' ').nth(1) == Some("000") && start.to_ascii_uppercase().starts_with("ACORN/")
}

/// An ACK block whose `Seq` lines are SHOULD-level: a peer without
/// sessions on its ACKs deviates, it does not fail (SPEC §10).
fn seq_is_should(exp: &ExpectPdu) -> ExpectPdu {
    let mut e = exp.clone();
    for h in &mut e.headers {
        if h.name.eq_ignore_ascii_case("Seq") || h.name.eq_ignore_ascii_case("Ack-Seq") {
            h.should = true;
        }
    }
    e
}

/// SPEC §4: a reply (not an ACK or NACK) that carries the ACK block's
/// `TX-ID` and an `Ack-Message-ID` stands in for the ACK. Returns the
/// deviation to record when it does: the separate ACK is a SHOULD.
/// **Decision:** when the ACK block expects no `Ack-Message-ID` (the
/// script's request had no Message-ID to echo), the TX-ID suffices. The
/// block's captures (`{sid}`) take the reply's values where it has them.
fn stands_in_for_ack(
    exp: &ExpectPdu,
    payload: &Bytes,
    vars: &mut Vars,
    what: &str,
) -> Option<Deviation> {
    let pdu = acorn::wire::Pdu::parse_datagram(payload.clone(), &ParseOptions::default()).ok()?;
    if pdu.status().is_none_or(|s| s < 2) {
        return None;
    }
    let wants_mid = exp
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("Ack-Message-ID"));
    let ack_mid = pdu.ack_message_id().ok().flatten();
    if wants_mid && ack_mid.is_none() {
        return None;
    }
    let ack_mid = ack_mid.unwrap_or_default();
    let tx = pdu.tx_id().ok().flatten();
    let matches = |name: &str, got: Option<&str>| {
        exp.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .all(|h| match &h.want {
                HeaderWant::Equals(v) => {
                    let want = vars.substitute(v).unwrap_or_else(|_| v.clone());
                    got == Some(want.as_str())
                }
                HeaderWant::Absent => got.is_none(),
                _ => got.is_some(),
            })
    };
    if tx.is_none() || !matches("TX-ID", tx) {
        return None;
    }
    if !exp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Ack-Message-ID"))
        .all(|h| h.should || matches("Ack-Message-ID", Some(ack_mid)))
    {
        return None;
    }
    for h in &exp.headers {
        if let (HeaderWant::Capture(var), Some(v)) = (&h.want, pdu.header(&h.name)) {
            vars.set(var, String::from_utf8_lossy(v).into_owned());
        }
    }
    Some(Deviation {
        line: exp.line,
        message: format!(
            "no separate ACK: the reply {what} carries TX-ID and Ack-Message-ID and stands in for it (SPEC §4)"
        ),
    })
}

/// The totals of a run.
struct Counts {
    total: usize,
    passed: usize,
    non_strict: usize,
    failed: usize,
    unsupported: usize,
}

impl Counts {
    fn of(results: &[CaseResult]) -> Counts {
        let n = |o: Outcome| results.iter().filter(|r| r.outcome == o).count();
        Counts {
            total: results.len(),
            passed: n(Outcome::Pass),
            non_strict: n(Outcome::NonStrict),
            failed: n(Outcome::Fail),
            unsupported: n(Outcome::Unsupported),
        }
    }

    fn run(&self) -> usize {
        self.total - self.unsupported
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn print_table(
    results: &[CaseResult],
    dest: &Dest,
    transport: Transport,
    verbose: bool,
    elapsed: Duration,
) {
    let width = results.iter().map(|r| r.id.len()).max().unwrap_or(4).max(4);
    let mut out = String::new();
    let _ = writeln!(out, "conformance of {dest}: {} cases", results.len());
    let _ = writeln!(
        out,
        "{:width$}  {:11}  {:>7}  NOTE",
        "CASE", "RESULT", "TIME"
    );
    for r in results {
        let time = if r.outcome == Outcome::Unsupported {
            "-".to_owned()
        } else {
            format!("{:.2}s", r.elapsed.as_secs_f64())
        };
        let note = match r.outcome {
            Outcome::Pass => r.notes.join("; "),
            Outcome::NonStrict => format!(
                "{} SHOULD-level deviation(s), first at line {}",
                r.deviations.len(),
                r.deviations[0].line
            ),
            _ => {
                let at = r.line.map(|l| format!("line {l}: ")).unwrap_or_default();
                format!("{at}{}", first_line(&r.message))
            }
        };
        let _ = writeln!(
            out,
            "{:width$}  {:11}  {time:>7}  {note}",
            r.id,
            r.outcome.as_str()
        );
    }
    let mut details = String::new();
    for r in results {
        let at = |l: usize| format!("{}:{l}", r.file);
        match r.outcome {
            Outcome::Fail => {
                let where_ = r.line.map(at).unwrap_or_else(|| r.file.clone());
                let _ = writeln!(details, "\nFAIL {} ({where_}):\n  {}", r.id, r.message);
                if verbose {
                    let _ = writeln!(details, "  exchanged:");
                    for x in &r.exchange {
                        let _ = writeln!(details, "    {x}");
                    }
                }
            }
            Outcome::NonStrict => {
                for d in &r.deviations {
                    let _ = writeln!(
                        details,
                        "\nNON-STRICT {} ({}): SHOULD-level: {}",
                        r.id,
                        at(d.line),
                        d.message
                    );
                }
            }
            _ => {}
        }
    }
    let c = Counts::of(results);
    print!("{out}{details}");
    println!(
        "\n{} passed, {} non-strict, {} failed, {} unsupported ({} of {} cases run over {}, in {:.1}s)",
        c.passed,
        c.non_strict,
        c.failed,
        c.unsupported,
        c.run(),
        c.total,
        transport_name(transport),
        elapsed.as_secs_f64()
    );
    println!(
        "{} passed, {} failed, {} skipped",
        c.passed + c.non_strict,
        c.failed,
        c.unsupported
    );
}

fn json_report(
    results: &[CaseResult],
    dest: &Dest,
    transport: Transport,
    c: &Counts,
    args: &Args,
    elapsed: Duration,
) -> serde_json::Value {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "file": r.file,
                "outcome": r.outcome.as_str(),
                "run": r.outcome != Outcome::Unsupported,
                "line": r.line,
                "message": if r.message.is_empty() { None } else { Some(&r.message) },
                "deviations": r.deviations.iter()
                    .map(|d| json!({ "line": d.line, "message": d.message }))
                    .collect::<Vec<_>>(),
                "notes": r.notes,
                "seconds": r.elapsed.as_secs_f64(),
            })
        })
        .collect();
    json!({
        "target": dest.to_string(),
        "transport": transport_name(transport),
        "options": {
            "time_scale": args.time_scale,
            "max_wait_seconds": args.max_wait.as_secs_f64(),
            "reply_timeout_seconds": args.reply_timeout.as_secs_f64(),
            "settle_seconds": args.settle.as_secs_f64(),
        },
        "summary": {
            "total": c.total,
            "run": c.run(),
            "passed": c.passed,
            "non_strict": c.non_strict,
            "failed": c.failed,
            "unsupported": c.unsupported,
            "skipped": c.unsupported,
        },
        "seconds": elapsed.as_secs_f64(),
        "cases": cases,
    })
}

/// Text for XML content and attribute values: the five special characters
/// escaped, and characters XML 1.0 cannot carry written as `\xNN`.
fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

fn junit_report(
    results: &[CaseResult],
    dest: &Dest,
    transport: Transport,
    c: &Counts,
    elapsed: Duration,
) -> String {
    let t = transport_name(transport);
    let mut o = String::new();
    let _ = writeln!(o, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        o,
        r#"<testsuites name="acorn-cli conformance" tests="{}" failures="{}" errors="0" skipped="{}" time="{:.3}">"#,
        c.total,
        c.failed,
        c.unsupported,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        o,
        r#"  <testsuite name="{}" tests="{}" failures="{}" errors="0" skipped="{}" time="{:.3}">"#,
        xml(&format!("conformance {dest}")),
        c.total,
        c.failed,
        c.unsupported,
        elapsed.as_secs_f64()
    );
    for r in results {
        let _ = write!(
            o,
            r#"    <testcase classname="conformance.{t}" name="{}" file="{}" time="{:.3}""#,
            xml(&r.id),
            xml(&r.file),
            r.elapsed.as_secs_f64()
        );
        let at = r.line.map(|l| format!("line {l}: ")).unwrap_or_default();
        match r.outcome {
            Outcome::Pass if r.notes.is_empty() => {
                let _ = writeln!(o, "/>");
            }
            Outcome::Pass => {
                let _ = writeln!(
                    o,
                    ">\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&r.notes.join("\n"))
                );
            }
            Outcome::NonStrict => {
                let text: Vec<String> = r
                    .deviations
                    .iter()
                    .map(|d| format!("line {}: SHOULD-level: {}", d.line, d.message))
                    .collect();
                let _ = writeln!(
                    o,
                    ">\n      <properties><property name=\"outcome\" value=\"non-strict\"/></properties>\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(&text.join("\n"))
                );
            }
            Outcome::Unsupported => {
                let _ = writeln!(
                    o,
                    ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                    xml(&format!("unsupported: {at}{}", r.message))
                );
            }
            Outcome::Fail => {
                let _ = writeln!(
                    o,
                    ">\n      <failure message=\"{}\" type=\"fail\">{}</failure>\n    </testcase>",
                    xml(&format!("{at}{}", first_line(&r.message))),
                    xml(&format!("{at}{}\n\n{}", r.message, r.exchange.join("\n")))
                );
            }
        }
    }
    let _ = writeln!(o, "  </testsuite>\n</testsuites>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first `<` block of a one-block script.
    fn ack_block(lines: &str) -> ExpectPdu {
        let text = format!("role server\n\n> GET /x ACORN/1.0\n> TX-ID: 7\n{lines}");
        let sc = scenario::parse("t.scenario", &text).unwrap();
        sc.steps
            .iter()
            .find_map(|s| match &s.kind {
                StepKind::Expect(e) => Some(e.clone()),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn a_reply_with_tx_id_and_ack_message_id_stands_in_for_the_ack() {
        assert!(is_ack_line("ACORN/1.0 000 ACK"));
        assert!(is_ack_line("acorn/1.0 000"));
        assert!(!is_ack_line("ACORN/1.0 001 NACK"));
        assert!(!is_ack_line("ACORN/1.0 200 OK"));
        let exp = ack_block("< ACORN/1.0 000 ACK\n< TX-ID: 7\n< ?Ack-Message-ID: q-7\n< Seq: 2\n");
        let mut vars = Vars::new();
        let reply = |s: &str| Bytes::from(s.replace('\n', "\r\n"));
        let good = reply("ACORN/1.0 200 OK\nTX-ID: 7\nAck-Message-ID: q-7\n\n");
        let dev = stands_in_for_ack(&exp, &good, &mut vars, "at +1ms").unwrap();
        assert!(dev.message.contains("stands in"), "{}", dev.message);
        for bad in [
            "ACORN/1.0 200 OK\nTX-ID: 8\nAck-Message-ID: q-7\n\n",
            "ACORN/1.0 200 OK\nTX-ID: 7\n\n",
            "ACORN/1.0 001 NACK\nTX-ID: 7\nAck-Message-ID: q-7\n\n",
            "ACORN/1.0 000 ACK\nTX-ID: 7\nAck-Message-ID: q-7\n\n",
        ] {
            assert!(
                stands_in_for_ack(&exp, &reply(bad), &mut vars, "x").is_none(),
                "{bad}"
            );
        }
        // Without an Ack-Message-ID to expect, the TX-ID suffices, and the
        // block's captures take the reply's values.
        let open = ack_block("< ACORN/1.0 000 ACK\n< TX-ID: 7\n< Session-ID: {sid}\n");
        let r = reply("ACORN/1.0 200 OK\nTX-ID: 7\nSession-ID: s-1\n\n");
        assert!(stands_in_for_ack(&open, &r, &mut vars, "x").is_some());
        assert_eq!(vars.substitute("${sid}").unwrap(), "s-1");
        // On a real ACK a missing Seq is a deviation, not a failure.
        let relaxed = seq_is_should(&exp);
        let mut vars = Vars::new();
        let ack = reply("ACORN/1.0 000 ACK\nTX-ID: 7\nAck-Message-ID: q-7\n\n");
        assert!(exp.check(&ack, None, &mut vars, "x").is_err());
        let devs = relaxed.check(&ack, None, &mut vars, "x").unwrap();
        assert_eq!(devs.len(), 1);
    }

    #[test]
    fn xml_text_is_escaped_and_control_characters_written_out() {
        assert_eq!(
            xml("a<b & \"c\" 'd'>"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;"
        );
        assert_eq!(xml("x\u{1}y\nz"), "x\\x01y\nz");
    }

    #[test]
    fn time_scale_must_be_positive_and_finite() {
        assert_eq!(parse_scale("2"), Ok(2.0));
        for bad in ["0", "-1", "nan", "inf", "x", "1e9"] {
            assert!(parse_scale(bad).is_err(), "{bad}");
        }
    }
}
