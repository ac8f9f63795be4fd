//! Captures, substitution, and matching what a node sent against what a
//! scenario expects.
//!
//! Ids a node makes up (Message-ID, Session-ID, its TX-IDs) are not
//! spelled out in scenarios: a `{name}` value captures them and `${name}`
//! uses them later. That is what lets one script check the in-memory
//! engine, whose ids follow from a fixed seed, and a live node, whose ids
//! are its own.

use super::parse::{capture_name, parse_mode};
use super::{
    AppAction, AppCommand, Command, DestExpect, ExpectEvent, ExpectPdu, HeaderWant, PeerPdu,
    RequestSpec,
};
use crate::engine::Event;
use crate::wire::{ParseOptions, Pdu};
use bytes::Bytes;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// An expectation that does not hold: the scenario fails at `line`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Mismatch {
    /// The scenario line whose expectation failed.
    pub line: usize,
    /// What was expected and what came instead.
    pub message: String,
}

impl Mismatch {
    fn at(line: usize, message: impl Into<String>) -> Mismatch {
        Mismatch {
            line,
            message: message.into(),
        }
    }
}

/// A SHOULD-level expectation (a `?` header line) that does not hold. SPEC
/// words some duties as SHOULD (an ACK names the message it acknowledges,
/// SPEC §4): a node that skips one still interoperates, so a runner grades
/// it apart from a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deviation {
    /// The `?` line.
    pub line: usize,
    /// What was expected and what came instead.
    pub message: String,
}

/// The values captured so far (`{name}` → value).
#[derive(Debug, Clone, Default)]
pub struct Vars {
    map: HashMap<String, String>,
}

impl Vars {
    /// No captures yet.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// The value captured as `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// Capture `value` as `name` (a later capture of the same name wins).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.map.insert(name.to_owned(), value.into());
    }

    /// `s` with every `${name}` replaced by its captured value. Using a
    /// name that was never captured is an error, not an empty string: it
    /// means an earlier expectation did not run or the script has a typo.
    pub fn substitute(&self, s: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let name = &after[..end];
            let v = self
                .map
                .get(name)
                .ok_or_else(|| format!("`${{{name}}}` was never captured"))?;
            out.push_str(v);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Printable form of bytes for reports: CR and LF escaped (a new line after
/// each `\n`), other control bytes as `\xNN`.
pub fn show_bytes(b: &[u8]) -> String {
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

/// The first line of a PDU, without its CRLF.
pub fn start_line(p: &[u8]) -> String {
    let end = p.windows(2).position(|w| w == b"\r\n").unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// How a peer PDU is put on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One datagram is one PDU: the bytes are exactly the script's lines
    /// (no `Content-Length` is added, so scenarios can send PDUs without
    /// one, as UDP allows).
    Datagram,
    /// A byte stream frames by `Content-Length` (SPEC §1): a body without
    /// it would be read as the start of the next PDU, so one is added when
    /// there is a body and the script did not write one.
    Stream,
}

impl PeerPdu {
    /// The PDU's bytes: `${name}` substituted, lines joined with CRLF, the
    /// head closed by an empty line (added when the script has none).
    pub fn render(&self, vars: &Vars, framing: Framing) -> Result<Vec<u8>, String> {
        let mut head = Vec::new();
        let mut body: Option<Vec<String>> = None;
        for l in &self.lines {
            let l = vars.substitute(l)?;
            match &mut body {
                Some(b) => b.push(l),
                None if l.is_empty() => body = Some(Vec::new()),
                None => head.push(l),
            }
        }
        let body = body.map(|b| b.join("\r\n")).unwrap_or_default();
        if framing == Framing::Stream
            && !body.is_empty()
            && !head.iter().skip(1).any(|h| {
                h.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case("Content-Length"))
            })
        {
            head.push(format!("Content-Length: {}", body.len()));
        }
        let mut bytes = head.join("\r\n");
        bytes.push_str("\r\n\r\n");
        bytes.push_str(&body);
        Ok(bytes.into_bytes())
    }
}

impl Command {
    /// The first word (`open`, `send`, `request`, `respond`, `close`).
    pub fn verb(&self) -> &str {
        self.text.split(' ').next().unwrap_or("")
    }

    /// The command with `${name}` substituted, read into its parts.
    pub fn render(&self, vars: &Vars) -> Result<AppCommand, String> {
        let text = vars.substitute(&self.text)?;
        Command::read(&text)
    }

    /// Read a command whose `${name}`s are already substituted.
    pub(crate) fn read(text: &str) -> Result<AppCommand, String> {
        let (cmd, expect_error) = match text.rsplit_once(" => ") {
            Some((c, e)) => (c.trim(), Some(e.trim().to_owned())),
            None => (text.trim(), None),
        };
        let mut words = cmd.splitn(4, ' ');
        let verb = words.next().unwrap_or("");
        let request = |words: &mut std::str::SplitN<'_, char>| -> Result<RequestSpec, String> {
            Ok(RequestSpec {
                method: words.next().ok_or("missing METHOD")?.to_owned(),
                target: words.next().ok_or("missing TARGET")?.to_owned(),
                body: words.next().map(str::to_owned),
            })
        };
        let action = match verb {
            "open" => AppAction::Open {
                mode: parse_mode(words.next().unwrap_or(""))?,
                target: words.next().ok_or("missing TARGET")?.to_owned(),
            },
            "send" => AppAction::Send(request(&mut words)?),
            "request" => AppAction::Request(request(&mut words)?),
            "respond" => {
                let rest = cmd["respond".len()..].trim();
                let (status, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let status: u16 = status
                    .parse()
                    .ok()
                    .filter(|s| *s <= 999)
                    .ok_or("respond STATUS [TEXT]")?;
                AppAction::Respond {
                    status,
                    text: text.to_owned(),
                }
            }
            "close" => AppAction::Close,
            _ => return Err(format!("unknown command `{verb}`")),
        };
        Ok(AppCommand {
            action,
            expect_error,
        })
    }
}

/// Where a transmitted PDU went, for the `=>` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestCheck {
    /// Where the node sent it.
    pub actual: SocketAddr,
    /// Where it must go when the block has no `=>` line (the current peer).
    pub default: SocketAddr,
}

impl ExpectPdu {
    /// Check one transmitted PDU (`payload`, exactly as sent) against this
    /// block, capturing `{name}` values into `vars`.
    ///
    /// `dest` is `None` when the runner cannot see destinations (over a
    /// socket everything comes back to the runner). `what` describes the
    /// PDU in reports (when and where it was seen). A failed `?` line is
    /// returned as a [`Deviation`] and checking goes on; any other failed
    /// line is the [`Mismatch`].
    pub fn check(
        &self,
        payload: &Bytes,
        dest: Option<DestCheck>,
        vars: &mut Vars,
        what: &str,
    ) -> Result<Vec<Deviation>, Mismatch> {
        let first = self.line;
        let want_start = vars
            .substitute(&self.start)
            .map_err(|e| Mismatch::at(first, e))?;
        let actual = || format!("{what}:\n    {}", show_bytes(payload));
        let pdu = Pdu::parse_datagram(payload.clone(), &ParseOptions::default()).map_err(|e| {
            Mismatch::at(
                first,
                format!("transmitted PDU does not parse ({e:?}): {}", actual()),
            )
        })?;
        let got_start = start_line(payload);
        if got_start != want_start {
            return Err(Mismatch::at(
                first,
                format!("expected `{want_start}`, got {}", actual()),
            ));
        }
        let mut deviations = Vec::new();
        for h in &self.headers {
            let values: Vec<String> = pdu
                .headers_named(&h.name)
                .map(|v| String::from_utf8_lossy(v.value).into_owned())
                .collect();
            let problem = match &h.want {
                HeaderWant::Absent => values.first().map(|v| {
                    format!(
                        "header {} must be absent, has `{v}`; PDU {}",
                        h.name,
                        actual()
                    )
                }),
                _ if values.is_empty() => {
                    Some(format!("header {} is missing; PDU {}", h.name, actual()))
                }
                HeaderWant::Present => None,
                HeaderWant::Capture(var) => {
                    vars.set(var, values[0].clone());
                    None
                }
                HeaderWant::Equals(v) => {
                    let want = vars.substitute(v).map_err(|e| Mismatch::at(h.line, e))?;
                    (!values.contains(&want)).then(|| {
                        format!(
                            "header {}: expected `{want}`, got {values:?}; PDU {}",
                            h.name,
                            actual()
                        )
                    })
                }
            };
            match problem {
                None => {}
                Some(message) if h.should => deviations.push(Deviation {
                    line: h.line,
                    message,
                }),
                Some(message) => return Err(Mismatch::at(h.line, message)),
            }
        }
        if let Some(d) = dest {
            let want = match &self.dest {
                None => Some(d.default),
                Some(DestExpect::Any) => None,
                Some(DestExpect::Addr(a)) => {
                    let a = vars.substitute(a).map_err(|e| Mismatch::at(first, e))?;
                    Some(
                        a.parse()
                            .map_err(|_| Mismatch::at(first, format!("`{a}` is not HOST:PORT")))?,
                    )
                }
            };
            if let Some(w) = want {
                if d.actual != w {
                    return Err(Mismatch::at(
                        first,
                        format!("sent to {}, expected {w}; PDU {}", d.actual, actual()),
                    ));
                }
            }
        }
        if let Some(b) = &self.body {
            let mut lines = Vec::with_capacity(b.len());
            for l in b {
                lines.push(vars.substitute(l).map_err(|e| Mismatch::at(first, e))?);
            }
            let want = lines.join("\r\n");
            if pdu.body() != want.as_bytes() {
                return Err(Mismatch::at(
                    first,
                    format!(
                        "body: expected `{}`; PDU {}",
                        show_bytes(want.as_bytes()),
                        actual()
                    ),
                ));
            }
        }
        Ok(deviations)
    }
}

impl ExpectEvent {
    /// Check one event against this line, capturing `{name}` attributes.
    /// `when` says when the event came, for reports.
    pub fn check(&self, event: &Event, vars: &mut Vars, when: &str) -> Result<(), String> {
        let (got, attrs) = super::describe_event(event);
        let text = || super::event_text(event);
        if got != self.kind {
            return Err(format!(
                "expected event {}, got {when}: {}",
                self.kind,
                text()
            ));
        }
        for (k, v) in &self.attrs {
            let Some((_, have)) = attrs.iter().find(|(a, _)| a == k) else {
                return Err(format!("event has no `{k}`: {}", text()));
            };
            if let Some(var) = capture_name(v) {
                vars.set(var, have.clone());
                continue;
            }
            let want = vars.substitute(v)?;
            if *have != want {
                return Err(format!(
                    "event {}: {k} expected `{want}`, got: {}",
                    self.kind,
                    text()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{parse, StepKind};

    fn block(text: &str) -> ExpectPdu {
        let sc = parse("t.scenario", &format!("role server\n{text}")).unwrap();
        match sc.steps.into_iter().next().unwrap().kind {
            StepKind::Expect(e) => e,
            k => panic!("{k:?}"),
        }
    }

    const ACK: &[u8] =
        b"ACORN/1.0 000 ACK\r\nTX-ID: 7\r\nMessage-ID: m-1\r\nSeq: 0\r\nSeq: 9\r\n\r\n";

    #[test]
    fn substitution_and_unknown_names() {
        let mut v = Vars::new();
        v.set("sid", "S1");
        assert_eq!(v.substitute("a ${sid} b${sid}").unwrap(), "a S1 bS1");
        assert!(v
            .substitute("${nope}")
            .unwrap_err()
            .contains("never captured"));
        assert!(v.substitute("${sid").unwrap_err().contains("unterminated"));
    }

    #[test]
    fn headers_capture_match_and_fail_at_their_line() {
        let e =
            block("< ACORN/1.0 000 ACK\n< TX-ID: 7\n< Message-ID: {mid}\n< Seq: 9\n< !Ack-Seq\n");
        let mut v = Vars::new();
        let dev = e
            .check(&Bytes::from_static(ACK), None, &mut v, "now")
            .unwrap();
        assert!(dev.is_empty());
        assert_eq!(v.get("mid"), Some("m-1"));

        let e = block("< ACORN/1.0 000 ACK\n< TX-ID: 7\n< Seq: 1\n");
        let err = e
            .check(&Bytes::from_static(ACK), None, &mut v, "now")
            .unwrap_err();
        assert_eq!(err.line, 4);
        let e = block("< ACORN/1.0 001 NACK\n");
        assert_eq!(
            e.check(&Bytes::from_static(ACK), None, &mut v, "now")
                .unwrap_err()
                .line,
            2
        );
    }

    #[test]
    fn should_lines_deviate_without_failing() {
        let e = block("< ACORN/1.0 000 ACK\n< ?Ack-Message-ID: q-7\n< ?!Seq\n< TX-ID: 7\n");
        let dev = e
            .check(&Bytes::from_static(ACK), None, &mut Vars::new(), "now")
            .unwrap();
        assert_eq!(dev.iter().map(|d| d.line).collect::<Vec<_>>(), [3, 4]);
        assert!(dev[0].message.contains("Ack-Message-ID is missing"));
    }

    #[test]
    fn destination_is_checked_only_when_known() {
        let e = block("< ACORN/1.0 000 ACK\n< => 10.0.0.3:7200\n");
        let d = DestCheck {
            actual: "127.0.0.2:7077".parse().unwrap(),
            default: "127.0.0.2:7077".parse().unwrap(),
        };
        let mut v = Vars::new();
        assert!(e
            .check(&Bytes::from_static(ACK), Some(d), &mut v, "now")
            .is_err());
        assert!(e
            .check(&Bytes::from_static(ACK), None, &mut v, "now")
            .is_ok());
    }

    #[test]
    fn stream_framing_adds_content_length_for_a_body() {
        let p = PeerPdu {
            lines: vec![
                "PUT /x ACORN/1.0".into(),
                "TX-ID: ${t}".into(),
                "".into(),
                "hi".into(),
            ],
        };
        let mut v = Vars::new();
        v.set("t", "5");
        assert_eq!(
            p.render(&v, Framing::Datagram).unwrap(),
            b"PUT /x ACORN/1.0\r\nTX-ID: 5\r\n\r\nhi"
        );
        assert_eq!(
            p.render(&v, Framing::Stream).unwrap(),
            b"PUT /x ACORN/1.0\r\nTX-ID: 5\r\nContent-Length: 2\r\n\r\nhi"
        );
        let bare = PeerPdu {
            lines: vec!["GET /x ACORN/1.0".into()],
        };
        assert_eq!(
            bare.render(&v, Framing::Stream).unwrap(),
            b"GET /x ACORN/1.0\r\n\r\n"
        );
    }

    #[test]
    fn commands_are_read_into_actions() {
        let c = Command::read("respond 200 OK => UnknownRequest").unwrap();
        assert_eq!(
            c.action,
            AppAction::Respond {
                status: 200,
                text: "OK".into()
            }
        );
        assert_eq!(c.expect_error.as_deref(), Some("UnknownRequest"));
        let c = Command::read("send PUT /x hello world").unwrap();
        assert_eq!(
            c.action,
            AppAction::Send(RequestSpec {
                method: "PUT".into(),
                target: "/x".into(),
                body: Some("hello world".into())
            })
        );
        assert!(Command::read("open sideways /p").is_err());
        assert!(Command::read("respond abc").is_err());
    }
}
