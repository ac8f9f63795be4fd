//! Reading a scenario file into a [`Scenario`].
//!
//! Everything that can be checked without running the scenario is checked
//! here — directives, durations, addresses, tags, `config` keys, the shape
//! of `<` blocks and `event` lines, command verbs — so a typo is reported
//! with its line before any runner starts, and both runners see the same
//! steps. What depends on captured values (`${name}`) is left as text and
//! checked when it is used.

use super::{
    Command, DestExpect, ExpectEvent, ExpectPdu, HeaderExpect, HeaderWant, PeerPdu, Role, Scenario,
    Step, StepKind, Tag, When, DEFAULT_PEER, DEFAULT_SEED, DEFAULT_UNIX_NOW,
};
use crate::engine::{Config, ModePolicy};
use crate::wire::SessionMode;
use std::time::Duration;

/// A scenario file that cannot be read, and the line that says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ScenarioError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub kind: ScenarioErrorKind,
}

/// What is wrong with a scenario line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioErrorKind {
    /// The file has no `role` line.
    #[error("missing `role server|client`")]
    MissingRole,
    /// `role` names something else.
    #[error("role must be server or client, got `{0}`")]
    BadRole(String),
    /// A header directive after the first step.
    #[error("`{0}` belongs in the header, before the first step")]
    DirectiveAfterStep(String),
    /// A tag nobody knows (a typo would silently change which runner runs
    /// the scenario).
    #[error("unknown tag `{0}`")]
    UnknownTag(String),
    /// A `config` line that does not name a known key with a valid value.
    #[error("config: {0}")]
    Config(String),
    /// A `peer` / `from` / `=>` value that is not an address.
    #[error("`{0}` is not HOST:PORT")]
    BadAddress(String),
    /// A duration without a valid number and unit.
    #[error("{0}")]
    BadDuration(String),
    /// A `send-bytes` argument that is not a valid quoted string.
    #[error("send-bytes: {0}")]
    BadBytes(String),
    /// A `!` line with an unknown verb.
    #[error("unknown command `{0}` (open, send, request, respond, close)")]
    UnknownCommand(String),
    /// `! open` in a `role server` scenario.
    #[error("`! open` makes the engine a client: use `role client`")]
    OpenInServer,
    /// A `<` block line that is not `Name: value`, `!Name`, `=> ADDR` or
    /// the body separator.
    #[error("expected `Name: value`, got `{0}`")]
    BadHeaderLine(String),
    /// An `event` attribute that is not `key=value`.
    #[error("event attribute `{0}` is not key=value")]
    BadEventAttr(String),
    /// A line that is none of the above.
    #[error("cannot read line `{0}`")]
    Unreadable(String),
}

/// Parse `NUMBER UNIT` with UNIT `us`, `ms` or `s` (`22500us`, `5s`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
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
        .map_err(|_| format!("{key}: `{v}` is not a number"))
}

/// `ordered` / `unordered`.
pub(crate) fn parse_mode(v: &str) -> Result<SessionMode, String> {
    match v {
        "ordered" => Ok(SessionMode::Ordered),
        "unordered" => Ok(SessionMode::Unordered),
        _ => Err(format!("`{v}` is not a session mode (ordered, unordered)")),
    }
}

/// Apply one `config key=value` directive; returns the key.
fn apply_config(sc: &mut Scenario, kv: &str) -> Result<String, String> {
    let (k, v) = kv
        .split_once('=')
        .ok_or_else(|| format!("needs key=value, got `{kv}`"))?;
    let (k, v) = (k.trim(), v.trim());
    let c = &mut sc.config;
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
        "min_nack_interval" => c.min_nack_interval = parse_duration(v)?,
        "max_nack_rounds" => c.max_nack_rounds = parse_num(k, v)?,
        "paths.gap_budget" => c.paths.gap_budget = Some(parse_duration(v)?),
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
        "shares.max_half_open" => c.shares.max_half_open = parse_num(k, v)?,
        "shares.half_open_timeout" => c.shares.half_open_timeout = parse_duration(v)?,
        "shares.reply_cache_per_source" => c.shares.reply_cache_per_source = parse_num(k, v)?,
        "shares.sessions_per_source" => c.shares.sessions_per_source = parse_num(k, v)?,
        "shares.reassemblies_per_source" => c.shares.reassemblies_per_source = parse_num(k, v)?,
        "shares.memory_budget" => c.shares.memory_budget = parse_num(k, v)?,
        _ => return Err(format!("unknown key `{k}`")),
    }
    Ok(k.to_owned())
}

/// `"..."` with `\r \n \t \\ \" \xNN` escapes, for `send-bytes`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .ok_or("takes a double-quoted string")?;
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
            _ => return Err("unknown escape".into()),
        }
    }
    Ok(out)
}

/// `{name}` (a whole value) is a capture.
pub(crate) fn capture_name(v: &str) -> Option<&str> {
    v.strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .filter(|n| !n.is_empty() && !n.contains(['{', '}', '$']))
}

/// The verbs a `!` line may start with.
const VERBS: [&str; 5] = ["open", "send", "request", "respond", "close"];

/// Turn the lines of a `<` block into an [`ExpectPdu`].
fn expect_block(lines: Vec<(usize, String)>) -> Result<ExpectPdu, ScenarioError> {
    let mut it = lines.into_iter();
    let (line, start) = it.next().expect("a block has a first line");
    let mut exp = ExpectPdu {
        line,
        start,
        dest: None,
        headers: Vec::new(),
        body: None,
    };
    for (n, l) in it {
        if let Some(b) = &mut exp.body {
            b.push(l);
            continue;
        }
        if l.is_empty() {
            exp.body = Some(Vec::new());
            continue;
        }
        if let Some(d) = l.strip_prefix("=> ") {
            let d = d.trim();
            exp.dest = Some(if d == "*" {
                DestExpect::Any
            } else {
                DestExpect::Addr(d.to_owned())
            });
            continue;
        }
        let (should, rest) = match l.strip_prefix('?') {
            Some(r) => (true, r.trim_start()),
            None => (false, l.as_str()),
        };
        if let Some(name) = rest.strip_prefix('!') {
            exp.headers.push(HeaderExpect {
                line: n,
                should,
                name: name.trim().to_owned(),
                want: HeaderWant::Absent,
            });
            continue;
        }
        let (name, value) = rest.split_once(':').ok_or_else(|| ScenarioError {
            line: n,
            kind: ScenarioErrorKind::BadHeaderLine(l.clone()),
        })?;
        let (name, value) = (name.trim(), value.trim());
        let want = if value == "*" {
            HeaderWant::Present
        } else if let Some(var) = capture_name(value) {
            HeaderWant::Capture(var.to_owned())
        } else {
            HeaderWant::Equals(value.to_owned())
        };
        exp.headers.push(HeaderExpect {
            line: n,
            should,
            name: name.to_owned(),
            want,
        });
    }
    Ok(exp)
}

/// Read `text` (the contents of the file at `file_name`) as a scenario.
pub fn parse(file_name: &str, text: &str) -> Result<Scenario, ScenarioError> {
    let id = file_name
        .strip_suffix(".scenario")
        .unwrap_or(file_name)
        .to_owned();
    let mut sc = Scenario {
        name: file_name.to_owned(),
        id,
        role: Role::Server,
        tags: Vec::new(),
        config: Config::default(),
        config_keys: Vec::new(),
        seed: DEFAULT_SEED,
        unix_now: DEFAULT_UNIX_NOW,
        peer: DEFAULT_PEER
            .parse()
            .expect("the default peer is an address"),
        ignore_events: Vec::new(),
        steps: Vec::new(),
    };
    let mut role_seen = false;
    // The block being collected: `>` lines (peer PDU) or `<` lines.
    enum Block {
        None,
        Peer(usize, Vec<String>),
        Expect(Vec<(usize, String)>),
    }
    fn close(block: &mut Block, steps: &mut Vec<Step>) -> Result<(), ScenarioError> {
        match std::mem::replace(block, Block::None) {
            Block::None => {}
            Block::Peer(line, lines) => steps.push(Step {
                line,
                kind: StepKind::Send(PeerPdu { lines }),
            }),
            Block::Expect(lines) => {
                let exp = expect_block(lines)?;
                steps.push(Step {
                    line: exp.line,
                    kind: StepKind::Expect(exp),
                })
            }
        }
        Ok(())
    }
    let mut block = Block::None;
    let mut seen_step = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let err = |kind: ScenarioErrorKind| ScenarioError { line: n, kind };
        // PDU blocks first: their content is taken verbatim.
        if line == ">" || line.starts_with("> ") {
            let content = line.get(2..).unwrap_or("").to_owned();
            match &mut block {
                Block::Peer(_, lines) => lines.push(content),
                _ => {
                    close(&mut block, &mut sc.steps)?;
                    block = Block::Peer(n, vec![content]);
                }
            }
            seen_step = true;
            continue;
        }
        if line == "<" || line.starts_with("< ") {
            let content = line.get(2..).unwrap_or("").to_owned();
            match &mut block {
                Block::Expect(lines) => lines.push((n, content)),
                _ => {
                    close(&mut block, &mut sc.steps)?;
                    block = Block::Expect(vec![(n, content)]);
                }
            }
            seen_step = true;
            continue;
        }
        close(&mut block, &mut sc.steps)?;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (word, rest) = t.split_once(' ').unwrap_or((t, ""));
        let rest = rest.trim();
        let directive = matches!(word, "role" | "config" | "tags:" | "peer" | "ignore-events");
        if directive && seen_step {
            return Err(err(ScenarioErrorKind::DirectiveAfterStep(word.to_owned())));
        }
        let kind = match word {
            "role" => {
                sc.role = match rest {
                    "server" => Role::Server,
                    "client" => Role::Client,
                    _ => return Err(err(ScenarioErrorKind::BadRole(rest.to_owned()))),
                };
                role_seen = true;
                continue;
            }
            "config" => {
                let key =
                    apply_config(&mut sc, rest).map_err(|e| err(ScenarioErrorKind::Config(e)))?;
                sc.config_keys.push((n, key));
                continue;
            }
            "tags:" => {
                for tag in rest.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                    let t = Tag::from_name(tag)
                        .ok_or_else(|| err(ScenarioErrorKind::UnknownTag(tag.to_owned())))?;
                    sc.tags.push(t);
                }
                continue;
            }
            "peer" => {
                sc.peer = rest
                    .parse()
                    .map_err(|_| err(ScenarioErrorKind::BadAddress(rest.to_owned())))?;
                continue;
            }
            "ignore-events" => {
                sc.ignore_events
                    .extend(rest.split_whitespace().map(str::to_owned));
                continue;
            }
            "at" => {
                let bad = |e| err(ScenarioErrorKind::BadDuration(e));
                StepKind::At(match rest.strip_prefix('+') {
                    Some(r) => When::Rel(parse_duration(r).map_err(bad)?),
                    None => When::Abs(parse_duration(rest).map_err(bad)?),
                })
            }
            "from" => StepKind::From(
                rest.parse()
                    .map_err(|_| err(ScenarioErrorKind::BadAddress(rest.to_owned())))?,
            ),
            "send-bytes" => StepKind::SendBytes(
                unescape(rest).map_err(|e| err(ScenarioErrorKind::BadBytes(e)))?,
            ),
            "!" => {
                let verb = rest.split(' ').next().unwrap_or("");
                if !VERBS.contains(&verb) {
                    return Err(err(ScenarioErrorKind::UnknownCommand(verb.to_owned())));
                }
                StepKind::Command(Command {
                    text: rest.to_owned(),
                })
            }
            "<none" => StepKind::ExpectNone,
            "<any" => StepKind::ExpectAny,
            "event" if rest == "none" => StepKind::EventNone,
            "event" if !rest.is_empty() => {
                let mut words = rest.split_whitespace();
                let kind = words.next().unwrap_or("").to_owned();
                let mut attrs = Vec::new();
                for w in words {
                    let (k, v) = w
                        .split_once('=')
                        .ok_or_else(|| err(ScenarioErrorKind::BadEventAttr(w.to_owned())))?;
                    attrs.push((k.to_owned(), v.to_owned()));
                }
                StepKind::Event(ExpectEvent { kind, attrs })
            }
            _ => return Err(err(ScenarioErrorKind::Unreadable(line.to_owned()))),
        };
        seen_step = true;
        sc.steps.push(Step { line: n, kind });
    }
    close(&mut block, &mut sc.steps)?;
    if !role_seen {
        return Err(ScenarioError {
            line: 1,
            kind: ScenarioErrorKind::MissingRole,
        });
    }
    if sc.role == Role::Server
        && sc
            .steps
            .iter()
            .any(|s| matches!(&s.kind, StepKind::Command(c) if c.verb() == "open"))
    {
        return Err(ScenarioError {
            line: 1,
            kind: ScenarioErrorKind::OpenInServer,
        });
    }
    Ok(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_scenario_is_read_into_typed_steps() {
        let sc = parse(
            "x.scenario",
            "# c\nrole server\ntags: engine-only\nconfig max_nack_rounds=2\n\n\
             > GET /x ACORN/1.0\n> TX-ID: 1\n>\n> body\n\
             < ACORN/1.0 000 ACK\n< TX-ID: 1\n< ?Ack-Message-ID: {m}\n< !Seq\n< => *\n\
             at +5ms\nevent RequestReceived body=body\n<none\n! respond 200 OK\n",
        )
        .unwrap();
        assert_eq!(sc.id, "x");
        assert_eq!(sc.role, Role::Server);
        assert!(sc.has_tag(Tag::EngineOnly));
        assert_eq!(sc.config.max_nack_rounds, 2);
        assert_eq!(sc.config_keys, vec![(4, "max_nack_rounds".to_owned())]);
        let kinds: Vec<&StepKind> = sc.steps.iter().map(|s| &s.kind).collect();
        assert!(
            matches!(kinds[0], StepKind::Send(p) if p.lines == ["GET /x ACORN/1.0", "TX-ID: 1", "", "body"])
        );
        let StepKind::Expect(e) = kinds[1] else {
            panic!("{kinds:?}")
        };
        assert_eq!(e.line, 10);
        assert_eq!(e.dest, Some(DestExpect::Any));
        assert_eq!(e.headers.len(), 3);
        assert!(e.headers[1].should);
        assert_eq!(e.headers[1].want, HeaderWant::Capture("m".into()));
        assert_eq!(e.headers[2].want, HeaderWant::Absent);
        assert!(matches!(
            kinds[2],
            StepKind::At(When::Rel(d)) if *d == Duration::from_millis(5)
        ));
        assert!(
            matches!(kinds[3], StepKind::Event(ev) if ev.attrs == [("body".to_owned(), "body".to_owned())])
        );
        assert!(matches!(kinds[4], StepKind::ExpectNone));
        assert!(matches!(kinds[5], StepKind::Command(c) if c.verb() == "respond"));
    }

    #[test]
    fn mistakes_are_reported_with_their_line() {
        let cases = [
            ("> GET /x ACORN/1.0\n", 1, ScenarioErrorKind::MissingRole),
            (
                "role server\ntags: engin-only\n",
                2,
                ScenarioErrorKind::UnknownTag("engin-only".into()),
            ),
            (
                "role server\n<none\nrole client\n",
                3,
                ScenarioErrorKind::DirectiveAfterStep("role".into()),
            ),
            (
                "role server\n! reply 200\n",
                2,
                ScenarioErrorKind::UnknownCommand("reply".into()),
            ),
            (
                "role server\n< ACORN/1.0 000 ACK\n< TX-ID 3\n",
                3,
                ScenarioErrorKind::BadHeaderLine("TX-ID 3".into()),
            ),
            (
                "role server\nconfig bogus=1\n",
                2,
                ScenarioErrorKind::Config("unknown key `bogus`".into()),
            ),
            (
                "role server\n! open ordered /p\n",
                1,
                ScenarioErrorKind::OpenInServer,
            ),
        ];
        for (text, line, kind) in cases {
            let e = parse("t.scenario", text).unwrap_err();
            assert_eq!((e.line, &e.kind), (line, &kind), "{text:?}");
        }
        assert!(matches!(
            parse("t.scenario", "role server\nat 5\n").unwrap_err().kind,
            ScenarioErrorKind::BadDuration(_)
        ));
    }
}
