//! Runner for the session scenario corpus, `corpus/sessions/*.scenario`,
//! against the in-memory engine.
//!
//! Each scenario plays the peer of ONE engine: it hands the engine PDUs,
//! application commands and time steps, and checks every PDU the engine
//! transmits and every event it reports (the format is documented in
//! `corpus/sessions/README.md`). The format itself — parser, captures,
//! expectation matching — is `acorn::scenario`, shared with the network
//! runner (`acorn-cli conformance`); this file only drives an `Endpoint`
//! with simulated time. Scenarios are discovered by listing the directory,
//! so adding one never means editing a list. A scenario stops at its first
//! failure (its later steps would only report the consequences), but every
//! scenario runs and all failures are reported together, each with
//! `file:line`.
//!
//! In memory the engine is held to SHOULD-level (`?`) expectations too: it
//! is this project's engine, and it does what it should.
//!
//! Authoring aids: `ACORN_SCENARIO=<name>` runs only the scenarios whose
//! file name contains `<name>`; `ACORN_SCENARIO_TRACE=1` prints every
//! transmitted PDU and event as the runner drains them.

use acorn::engine::{Endpoint, EngineError, Event, IncomingId, SessionHandle, Transmit};
use acorn::scenario::{
    self, describe_event, event_text, show_bytes, AppAction, DestCheck, ExpectPdu, Framing,
    Scenario, StepKind, Transport, Vars, When,
};
use acorn::wire::PduBuilder;
use bytes::Bytes;
use std::collections::VecDeque;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Fewer scenarios than this means discovery broke (or the corpus was gutted).
const MIN_SCENARIOS: usize = 15;
/// Fewer scenarios than this playable against a live node (per transport)
/// means the corpus or the network rule lost the conformance suite.
const MIN_NETWORK_SCENARIOS: usize = 10;
/// Bound on timer firings within one `at` step (a timer loop is a bug).
const MAX_TIMER_FIRINGS: usize = 100_000;

#[derive(Debug)]
struct Failure {
    file: String,
    line: usize,
    msg: String,
}

/// One scenario being run.
struct Run<'a> {
    sc: &'a Scenario,
    ep: Endpoint,
    start: Instant,
    now: Instant,
    from: SocketAddr,
    vars: Vars,
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
        // The scenarios transcribe the seeds' minimal PDUs (a 64-byte REG),
        // smaller than SPEC §9's 3x budget needs for the answers they show;
        // they test sequencing, so the harness allows 10x. The 3x rule is
        // tested in tests/hostile_paths.rs.
        let mut config = sc.config.clone();
        config.paths.amplification_factor = 10;
        let ep = Endpoint::new(config, sc.seed, start, Duration::from_secs(sc.unix_now));
        Run {
            sc,
            ep,
            start,
            now: start,
            from: sc.peer,
            vars: Vars::new(),
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
                    show_bytes(&x.payload)
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
            let (kind, _) = describe_event(&e);
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
                    show_bytes(&x.payload)
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

    fn datagram(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.ep
            .handle_datagram(self.now, self.from, Bytes::from(bytes));
        self.drain();
        self.fire_due()
    }

    fn command(&mut self, cmd: &scenario::Command) -> Result<(), String> {
        let cmd = cmd.render(&self.vars)?;
        let now = self.now;
        let session = || self.session.ok_or("no session is open yet".to_owned());
        let request = |r: &scenario::RequestSpec| -> Result<PduBuilder, String> {
            let mut b = PduBuilder::request(&r.method, &r.target).map_err(|e| e.to_string())?;
            if let Some(body) = &r.body {
                b.body(body.clone());
            }
            Ok(b)
        };
        let result: Result<(), EngineError> = match &cmd.action {
            AppAction::Open { mode, target } => self
                .ep
                .open_session(now, self.from, target, *mode)
                .map(|h| self.session = Some(h)),
            AppAction::Send(r) => {
                let s = session()?;
                let b = request(r)?;
                self.ep.send(now, s, b).map(|_| ())
            }
            AppAction::Request(r) => {
                let b = request(r)?;
                self.ep.request(now, self.from, b).map(|_| ())
            }
            AppAction::Respond { status, text } => {
                let b = PduBuilder::reply(*status, text).map_err(|e| e.to_string())?;
                let id = self
                    .incoming
                    .pop_front()
                    .ok_or("no delivered request is waiting for an answer")?;
                self.ep.respond(now, id, b)
            }
            AppAction::Close => {
                let s = session()?;
                self.ep.close_session(now, s)
            }
        };
        self.drain();
        self.fire_due()?;
        match (result, cmd.expect_error) {
            (Ok(()), None) => Ok(()),
            (Err(e), Some(want)) if format!("{e:?}") == want => Ok(()),
            (Err(e), want) => Err(format!(
                "command failed with {e:?}{}",
                want.map(|w| format!(", expected {w}")).unwrap_or_default()
            )),
            (Ok(()), Some(want)) => Err(format!("command succeeded, expected {want}")),
        }
    }

    fn expect_pdu(&mut self, exp: &ExpectPdu) -> Result<(), (usize, String)> {
        let Some((t, x)) = self.tx.pop_front() else {
            let want = self
                .vars
                .substitute(&exp.start)
                .unwrap_or_else(|_| exp.start.clone());
            return Err((
                exp.line,
                format!("expected `{want}`, but nothing (more) was transmitted"),
            ));
        };
        let dest = DestCheck {
            actual: x.dest,
            default: self.from,
        };
        let what = format!("at {t:?} to {}", x.dest);
        let deviations = exp
            .check(&x.payload, Some(dest), &mut self.vars, &what)
            .map_err(|m| (m.line, m.message))?;
        // The engine is held to SHOULD-level expectations too.
        match deviations.into_iter().next() {
            Some(d) => Err((d.line, format!("(SHOULD) {}", d.message))),
            None => Ok(()),
        }
    }

    fn run(&mut self) -> Result<(), (usize, String)> {
        let sc = self.sc;
        for step in &sc.steps {
            let line = step.line;
            let at = |r: Result<(), String>| r.map_err(|m| (line, m));
            if step.kind.is_action() {
                self.boundary()?;
                self.action_line = line;
            }
            match &step.kind {
                StepKind::At(w) => {
                    let target = match w {
                        When::Abs(d) => self.start + *d,
                        When::Rel(d) => self.now + *d,
                    };
                    at(self.advance(target))?;
                }
                StepKind::From(a) => self.from = *a,
                StepKind::Send(p) => {
                    let bytes = p
                        .render(&self.vars, Framing::Datagram)
                        .map_err(|m| (line, m))?;
                    at(self.datagram(bytes))?;
                }
                StepKind::SendBytes(b) => at(self.datagram(b.clone()))?,
                StepKind::Command(c) => at(self.command(c))?,
                StepKind::Expect(exp) => self.expect_pdu(exp)?,
                StepKind::ExpectNone => {
                    if let Some((t, x)) = self.tx.front() {
                        return Err((
                            line,
                            format!(
                                "expected nothing more transmitted, got at {t:?} to {}:\n    {}",
                                x.dest,
                                show_bytes(&x.payload)
                            ),
                        ));
                    }
                }
                StepKind::ExpectAny => self.tx.clear(),
                StepKind::Event(spec) => {
                    let Some((t, e)) = self.ev.pop_front() else {
                        return Err((
                            line,
                            format!("expected event {}, but there is none (more)", spec.kind),
                        ));
                    };
                    at(spec.check(&e, &mut self.vars, &format!("at {t:?}")))?;
                }
                StepKind::EventNone => {
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

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
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
        let file = format!("corpus/sessions/{}", file_name(path));
        if filter.as_deref().is_some_and(|f| !file.contains(f)) {
            continue;
        }
        let text = fs::read_to_string(path).expect("scenario is UTF-8 text");
        let sc = match scenario::parse(&file_name(path), &text) {
            Ok(sc) => sc,
            Err(e) => {
                failures.push(Failure {
                    file,
                    line: e.line,
                    msg: e.kind.to_string(),
                });
                continue;
            }
        };
        if !sc.expects_something() {
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
/// wrong header value, an unmatched transmit, a missing event, a missed
/// SHOULD.
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
        (
            "a SHOULD line is strict in memory",
            "role server\n> GET /x ACORN/1.0\n> TX-ID: 1\n< ACORN/1.0 000 ACK\n< ?Ack-Message-ID: q\n",
            5,
        ),
    ];
    for (what, text, want_line) in cases {
        let sc =
            scenario::parse("self-test.scenario", text).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        let mut run = Run::new(&sc, false);
        let err = run.run().expect_err(what);
        assert_eq!(
            err.0, want_line,
            "{what}: reported at the wrong line: {err:?}"
        );
    }
}

/// The conformance suite (`acorn-cli conformance`) is the part of this
/// corpus the network rule lets through; it must stay a real suite on
/// both transports, and the rule must give every refusal a reason.
#[test]
fn network_rule_keeps_a_suite_on_both_transports() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut runnable = Vec::new();
        for path in scenario_files() {
            let text = fs::read_to_string(&path).expect("scenario is UTF-8 text");
            let sc = scenario::parse(&file_name(&path), &text).expect("parses");
            match sc.network_support(transport) {
                Ok(()) => runnable.push(sc.id.clone()),
                Err(u) => assert!(!u.reason.is_empty(), "{}: empty reason", sc.id),
            }
        }
        assert!(
            runnable.len() >= MIN_NETWORK_SCENARIOS,
            "{transport:?}: only {} network scenarios: {runnable:?}",
            runnable.len()
        );
    }
}
