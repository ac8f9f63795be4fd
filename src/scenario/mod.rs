//! Session scenarios: the plain-text scripts of `corpus/sessions/`.
//!
//! A scenario plays the peer of ONE Acorn node — it sends that node PDUs,
//! moves time forward, drives the node's application side — and says which
//! PDUs the node must send back and which events it must report. The format
//! is documented in `corpus/sessions/README.md`; this module is its one
//! implementation, shared by the two runners that exist:
//!
//! - the in-memory runner (`tests/session_corpus.rs`), which drives an
//!   [`Endpoint`](crate::engine::Endpoint) with simulated time and checks
//!   every transmit and every event;
//! - the network runner (`acorn-cli conformance`), which plays the script's
//!   peer over a real UDP or TCP socket against a live node, in real time,
//!   and can only check what comes back on the wire.
//!
//! Keeping the parser, the `{name}` captures and `${name}` substitution, and
//! the PDU expectation matching here (rather than in either runner) is what
//! makes "passes in memory" and "passes over the network" mean the same
//! thing for the same file.
//!
//! - [`parse`](parse::parse) turns a file into a typed [`Scenario`], or a
//!   [`ScenarioError`] naming the line.
//! - [`Vars`], [`PeerPdu::render`], [`ExpectPdu::check`] and
//!   [`ExpectEvent::check`] are the matching half; [`describe_event`] gives
//!   an engine event in the terms `event` lines are written in.
//! - [`Scenario::network_support`] is the rule deciding which scenarios make
//!   sense against a remote node, and [`Scenario::network_schedule`] maps
//!   script time to real time for them.
//!
//! Nothing here prints or does I/O: runners decide how to report.

mod events;
mod matching;
mod network;
pub mod parse;

pub use events::{describe_event, event_text};
pub use matching::{show_bytes, start_line, DestCheck, Deviation, Framing, Mismatch, Vars};
pub use network::{Schedule, Transport, Unsupported};
pub use parse::{parse, ScenarioError};

use crate::engine::Config;
use std::net::SocketAddr;
use std::time::Duration;

/// Where the peer sends from unless the scenario says `peer` / `from`.
pub const DEFAULT_PEER: &str = "127.0.0.2:7077";
/// The in-memory engine's wall clock at the start (`Expire-At` is compared
/// with it): 2027-01-15T08:00:00Z.
pub const DEFAULT_UNIX_NOW: u64 = 1_800_000_000;
/// The in-memory engine's id generator seed: fixed, so every run is the
/// same run.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// Which side of the exchange the node under test plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node answers: the script opens sessions and sends requests.
    Server,
    /// The node starts exchanges (`! open`, `! request`).
    Client,
}

/// A label from a `tags:` line. Unknown tags are a parse error, so a typo
/// cannot silently change which runner runs a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// The point of the scenario can only be checked in memory (exact timer
    /// instants, engine limits set by `config`, expectations that are only
    /// events): the network runner does not run it.
    EngineOnly,
}

impl Tag {
    /// The tag as written in a `tags:` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Tag::EngineOnly => "engine-only",
        }
    }

    fn from_name(s: &str) -> Option<Tag> {
        match s {
            "engine-only" => Some(Tag::EngineOnly),
            _ => None,
        }
    }
}

/// One parsed scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file name (`session-init-ordered.scenario`).
    pub name: String,
    /// The stable case id: the file stem (`session-init-ordered`).
    pub id: String,
    /// Which side the node under test plays.
    pub role: Role,
    /// Labels from `tags:` lines.
    pub tags: Vec<Tag>,
    /// `Config::default()` changed by the `config` lines.
    pub config: Config,
    /// Every `config` line as (line number, key): a live node has its own
    /// configuration, so the network rule needs to know what was set.
    pub config_keys: Vec<(usize, String)>,
    /// The in-memory engine's id seed (`config seed=`).
    pub seed: u64,
    /// The in-memory engine's wall clock, Unix seconds (`config unix_now=`).
    pub unix_now: u64,
    /// The peer's transport address (`peer HOST:PORT`).
    pub peer: SocketAddr,
    /// Event kinds dropped instead of matched (`ignore-events`).
    pub ignore_events: Vec<String>,
    /// The steps, top to bottom.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// Whether the scenario carries `tag`.
    pub fn has_tag(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }

    /// Whether the scenario expects anything at all (a script that only
    /// acts checks nothing and is refused by the runners).
    pub fn expects_something(&self) -> bool {
        self.steps.iter().any(|s| {
            matches!(
                s.kind,
                StepKind::Expect(_)
                    | StepKind::ExpectNone
                    | StepKind::Event(_)
                    | StepKind::EventNone
            )
        })
    }
}

/// One line (or block of lines) of the script.
#[derive(Debug, Clone)]
pub struct Step {
    /// The line it starts on (1-based), for reports.
    pub line: usize,
    /// What it does or expects.
    pub kind: StepKind,
}

/// A step: an action that changes the node's state, or an expectation that
/// consumes what the last action produced.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// `at 500ms` / `at +20ms`: move time forward.
    At(When),
    /// `from HOST:PORT`: later peer PDUs come from this address.
    From(SocketAddr),
    /// A `>` block: a PDU the peer sends.
    Send(PeerPdu),
    /// `send-bytes "..."`: a datagram of exact bytes.
    SendBytes(Vec<u8>),
    /// `! ...`: a command to the node's application side.
    Command(Command),
    /// A `<` block: the next PDU the node transmitted.
    Expect(ExpectPdu),
    /// `<none`: nothing more was transmitted by the last action.
    ExpectNone,
    /// `<any`: discard whatever else the last action transmitted.
    ExpectAny,
    /// `event Kind key=value…`: the next event.
    Event(ExpectEvent),
    /// `event none`: no more events from the last action.
    EventNone,
}

impl StepKind {
    /// Actions change the node's state; before each one, everything the
    /// previous one produced must have been matched (the strictness rule).
    pub fn is_action(&self) -> bool {
        matches!(
            self,
            StepKind::At(_) | StepKind::Send(_) | StepKind::SendBytes(_) | StepKind::Command(_)
        )
    }
}

/// The time an `at` line moves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `at 500ms`: this long after the start.
    Abs(Duration),
    /// `at +20ms`: this long after the current time.
    Rel(Duration),
}

/// A `>` block: the wire lines of a PDU the peer sends, `${name}` not yet
/// substituted. An empty line separates the head from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPdu {
    /// The lines, without the `> ` prefix.
    pub lines: Vec<String>,
}

/// A `! ...` line, `${name}` not yet substituted (the values it names are
/// only known while the scenario runs). The verb is checked when the file
/// is parsed; the rest when the command is [rendered](Command::render).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The text after `! `.
    pub text: String,
}

/// An application command, ready to be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCommand {
    /// What to do.
    pub action: AppAction,
    /// `=> ErrorName`: the command must fail with this `EngineError`
    /// variant (its `Debug` name).
    pub expect_error: Option<String>,
}

/// The application commands a scenario can give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppAction {
    /// `! open ordered|unordered /path`.
    Open {
        /// The mode asked for.
        mode: crate::wire::SessionMode,
        /// The `REG` target.
        target: String,
    },
    /// `! send METHOD TARGET [body]`: a request in the current session.
    Send(RequestSpec),
    /// `! request METHOD TARGET [body]`: a request outside any session.
    Request(RequestSpec),
    /// `! respond STATUS [TEXT]`: answer the oldest unanswered delivered
    /// request.
    Respond {
        /// Three digits.
        status: u16,
        /// The status text (may be empty).
        text: String,
    },
    /// `! close`: close the current session.
    Close,
}

/// The request of a `! send` / `! request` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    /// The method.
    pub method: String,
    /// The target.
    pub target: String,
    /// The body: the rest of the line, if any.
    pub body: Option<String>,
}

/// A `<` block: what the next transmitted PDU must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectPdu {
    /// The line of the start line.
    pub line: usize,
    /// The exact start line (`${name}` allowed).
    pub start: String,
    /// `=> HOST:PORT` / `=> *`; `None` means the current peer address.
    pub dest: Option<DestExpect>,
    /// Header checks, in the order written (all must hold, in any order on
    /// the wire).
    pub headers: Vec<HeaderExpect>,
    /// The exact body (lines joined with CRLF), if a bare `<` line opened
    /// one.
    pub body: Option<Vec<String>>,
}

/// Where an expected PDU must be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DestExpect {
    /// `=> *`: anywhere.
    Any,
    /// `=> HOST:PORT` (`${name}` allowed).
    Addr(String),
}

/// One header line of a `<` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderExpect {
    /// Where it is written.
    pub line: usize,
    /// `?` prefix: a SHOULD-level expectation (SPEC says SHOULD, not MUST).
    /// A node that misses it deviates but does not fail; see [`Deviation`].
    pub should: bool,
    /// The header name (compared case-insensitively).
    pub name: String,
    /// What the value must be.
    pub want: HeaderWant,
}

/// The check a header line makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderWant {
    /// `!Name`: must be absent.
    Absent,
    /// `Name: *`: present, any value.
    Present,
    /// `Name: {x}`: present; the (first) value is captured as `x`.
    Capture(String),
    /// `Name: value`: present with this raw value (`${name}` allowed); when
    /// the header repeats, any of its values may match.
    Equals(String),
}

/// An `event Kind key=value…` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectEvent {
    /// The event kind (`SessionOpened`, `RequestReceived`…).
    pub kind: String,
    /// `key=value` attributes; a value may be `{x}` (capture) or contain
    /// `${x}`.
    pub attrs: Vec<(String, String)>,
}
