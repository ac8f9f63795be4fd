//! Which scenarios can be played against a live node over a socket, and how
//! script time maps to real time for them.
//!
//! Over the network the runner is only the script's peer: it sends the `>`
//! PDUs and reads what comes back. It cannot see the node's events, cannot
//! give its application commands, cannot configure it, and shares the
//! clock with it. [`Scenario::network_support`] is the rule that follows
//! (documented in `corpus/sessions/README.md`, "Over the network"): a
//! scenario the rule refuses is reported `unsupported`, with the reason and
//! the line, rather than run and failed for what the runner cannot do.

use super::{AppAction, Command, DestExpect, Framing, Role, Scenario, StepKind, Tag, Vars, When};
use crate::wire::{parse_datagram, ParseOptions};
use std::time::Duration;

/// The transport a live node is reached over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: one datagram is one PDU.
    Udp,
    /// TCP: PDUs framed by `Content-Length` on one connection.
    Tcp,
}

impl Transport {
    /// How peer PDUs are framed on this transport.
    pub fn framing(self) -> Framing {
        match self {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        }
    }
}

/// Why a scenario is not run against a live node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Unsupported {
    /// The line that needs what the network runner cannot do, if one line
    /// is to blame.
    pub line: Option<usize>,
    /// What it needs.
    pub reason: String,
}

fn unsupported(line: Option<usize>, reason: impl Into<String>) -> Unsupported {
    Unsupported {
        line,
        reason: reason.into(),
    }
}

/// The reply the reference application gives to every request, at once
/// (`acorn-cli listen` echoes the body in it).
const REFERENCE_STATUS: u16 = 200;
const REFERENCE_TEXT: &str = "OK";

impl Scenario {
    /// Whether this scenario can be played against a live node over
    /// `transport`, and if not, why. The rule, in order:
    ///
    /// 1. the node under test is the server (`role server`): a client
    ///    would have to be told to open sessions and send requests;
    /// 2. it is not tagged `engine-only`;
    /// 3. it has no `config` line: a live node has its own configuration,
    ///    clock and id generator;
    /// 4. it gives no application command but `! respond 200 OK`, and
    ///    answers every request it delivers at once: the live node's
    ///    application is assumed to answer each request `200 OK` as soon as
    ///    it is delivered (as `acorn-cli listen` does), so over the network
    ///    `! respond` is not an action — the reply is part of what the
    ///    delivering step produced — and a scenario that delivers a request
    ///    without answering it in the same step (before the next action,
    ///    with no `<none` / `<any` in between) would see a reply it does
    ///    not expect. `ignore-events RequestReceived` hides deliveries, so
    ///    it is refused too;
    /// 5. it uses one peer address: no `from` line and no `=> HOST:PORT`
    ///    destination (everything comes back to the runner's socket);
    /// 6. it expects at least one PDU (`<` block or `<none`): events are
    ///    not visible on the wire;
    /// 7. over TCP, every peer PDU is a PDU: `send-bytes` and `>` blocks
    ///    that do not parse only make sense as datagrams (on a stream they
    ///    would end the connection, not test the node).
    ///
    /// Timing is the other half, in [`Scenario::network_schedule`].
    pub fn network_support(&self, transport: Transport) -> Result<(), Unsupported> {
        if self.role == Role::Client {
            return Err(unsupported(
                None,
                "the node under test is the client (`role client`): only the in-memory \
                 runner can tell it to open sessions and send requests",
            ));
        }
        if self.has_tag(Tag::EngineOnly) {
            return Err(unsupported(
                None,
                "tagged engine-only: its point can only be checked in memory",
            ));
        }
        if let Some((line, key)) = self.config_keys.first() {
            return Err(unsupported(
                Some(*line),
                format!(
                    "`config {key}` configures the in-memory engine; a live node has its own \
                     configuration"
                ),
            ));
        }
        if self.ignore_events.iter().any(|k| k == "RequestReceived") {
            return Err(unsupported(
                None,
                "ignores RequestReceived events, so its deliveries (which the live node \
                 answers) cannot be followed",
            ));
        }
        // Deliveries of the current step not answered yet: (line of the
        // `event RequestReceived`).
        let mut pending: Vec<usize> = Vec::new();
        let mut expects_pdu = false;
        let unanswered = |line: usize| {
            unsupported(
                Some(line),
                "delivers a request it does not answer at once (`! respond 200 OK` in the \
                 same step), but a live node's application answers every request at once",
            )
        };
        for step in &self.steps {
            let line = step.line;
            match &step.kind {
                StepKind::Command(c) if c.verb() == "respond" => {
                    check_reference_answer(c, line)?;
                    if pending.pop().is_none() {
                        return Err(unsupported(
                            Some(line),
                            "`! respond` answers a request delivered by an earlier step; a \
                             live node's application answers at once",
                        ));
                    }
                }
                StepKind::Command(c) => {
                    return Err(unsupported(
                        Some(line),
                        format!("`! {}` needs the node's application side", c.verb()),
                    ))
                }
                StepKind::From(_) => {
                    return Err(unsupported(
                        Some(line),
                        "`from` needs a second peer address",
                    ))
                }
                k if k.is_action() => {
                    if let Some(&l) = pending.first() {
                        return Err(unanswered(l));
                    }
                    match k {
                        StepKind::SendBytes(_) if transport == Transport::Tcp => {
                            return Err(unsupported(
                                Some(line),
                                "`send-bytes` is datagram input; on a stream it would only \
                                 end the connection",
                            ))
                        }
                        StepKind::Send(p) if transport == Transport::Tcp => {
                            let bytes = p
                                .render(&placeholder_vars(&p.lines), Framing::Datagram)
                                .map_err(|e| unsupported(Some(line), e))?;
                            if parse_datagram(&bytes, &ParseOptions::default()).is_err() {
                                return Err(unsupported(
                                    Some(line),
                                    "sends bytes that are not a PDU; on a stream that would \
                                     only end the connection",
                                ));
                            }
                        }
                        _ => {}
                    }
                }
                StepKind::Expect(e) => {
                    expects_pdu = true;
                    if let Some(DestExpect::Addr(_)) = e.dest {
                        return Err(unsupported(
                            Some(line),
                            "checks where the node sends (`=> HOST:PORT`); over the network \
                             everything comes back to the runner's socket",
                        ));
                    }
                }
                StepKind::ExpectNone | StepKind::ExpectAny => {
                    expects_pdu = true;
                    if let Some(&l) = pending.first() {
                        return Err(unanswered(l));
                    }
                }
                StepKind::Event(e) if e.kind == "RequestReceived" => pending.push(line),
                _ => {}
            }
        }
        if let Some(&l) = pending.first() {
            return Err(unanswered(l));
        }
        if !expects_pdu {
            return Err(unsupported(
                None,
                "expects only events, which a live node does not show",
            ));
        }
        Ok(())
    }

    /// Real time for each `at` step: the script instant times `scale`.
    ///
    /// Long waits make a slow suite, so `max_wait` bounds the real time a
    /// case may take. The quiet checks at the end of a scenario (`at` steps
    /// after which only `<none` and `event` lines follow: "nothing more is
    /// sent, ever") are shortened to end by `max_wait` — the report says so
    /// — while any other step past it makes the case unsupported, since
    /// moving it would change what the node is asked.
    pub fn network_schedule(
        &self,
        scale: f64,
        max_wait: Duration,
    ) -> Result<Schedule, Unsupported> {
        // Everything after the last step that is not `at`, `<none` or an
        // event line is a quiet tail.
        let tail_from = self
            .steps
            .iter()
            .rposition(|s| {
                !matches!(
                    s.kind,
                    StepKind::At(_)
                        | StepKind::ExpectNone
                        | StepKind::Event(_)
                        | StepKind::EventNone
                )
            })
            .map_or(0, |i| i + 1);
        let mut script = Duration::ZERO;
        let mut real = Duration::ZERO;
        let mut instants = vec![None; self.steps.len()];
        let mut shortened = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let StepKind::At(w) = step.kind else {
                continue;
            };
            script = match w {
                When::Abs(d) => d.max(script),
                When::Rel(d) => script + d,
            };
            let scaled = script.mul_f64(scale);
            if i >= tail_from && scaled > max_wait {
                let at = max_wait.max(real);
                shortened.push((step.line, scaled, at));
                real = at;
            } else if scaled > max_wait {
                return Err(unsupported(
                    Some(step.line),
                    format!("needs {scaled:?} of real time, over the maximum wait of {max_wait:?}"),
                ));
            } else {
                real = scaled.max(real);
            }
            instants[i] = Some(real);
        }
        Ok(Schedule {
            instants,
            shortened,
            total: real,
        })
    }
}

/// Script time mapped to real time for one scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Per step: for an `at` step, the real time after the start it waits
    /// until; `None` for other steps.
    pub instants: Vec<Option<Duration>>,
    /// Quiet checks shortened to fit the maximum wait: (line, the scaled
    /// script time, the real time used instead).
    pub shortened: Vec<(usize, Duration, Duration)>,
    /// The last `at` instant: the least real time the case takes.
    pub total: Duration,
}

impl Schedule {
    /// The real instant of the first `at` step after step `i`, if the next
    /// action is an `at` step (a `<none` waits no longer than that: what
    /// comes at that instant belongs to the next step).
    pub fn next_at(&self, steps: &[super::Step], i: usize) -> Option<Duration> {
        let j = steps
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, s)| s.kind.is_action() && !is_respond(&s.kind))
            .map(|(j, _)| j)?;
        self.instants[j]
    }
}

fn is_respond(k: &StepKind) -> bool {
    matches!(k, StepKind::Command(c) if c.verb() == "respond")
}

/// `! respond` must be the reference application's answer.
fn check_reference_answer(c: &Command, line: usize) -> Result<(), Unsupported> {
    let cmd = c
        .render(&Vars::new())
        .map_err(|e| unsupported(Some(line), e))?;
    match cmd.action {
        AppAction::Respond { status, text }
            if status == REFERENCE_STATUS
                && text == REFERENCE_TEXT
                && cmd.expect_error.is_none() =>
        {
            Ok(())
        }
        _ => Err(unsupported(
            Some(line),
            format!(
                "`! {}`: a live node's application answers every request \
                 `{REFERENCE_STATUS} {REFERENCE_TEXT}`, and answering cannot fail",
                c.text
            ),
        )),
    }
}

/// Values for every `${name}` in `lines`, to check the shape of a PDU
/// before the real values are captured.
fn placeholder_vars(lines: &[String]) -> Vars {
    let mut v = Vars::new();
    for l in lines {
        let mut rest = l.as_str();
        while let Some(i) = rest.find("${") {
            let after = &rest[i + 2..];
            let Some(end) = after.find('}') else { break };
            v.set(&after[..end], "x");
            rest = &after[end + 1..];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;

    fn support(text: &str, t: Transport) -> Result<(), Unsupported> {
        parse("t.scenario", text).unwrap().network_support(t)
    }

    const OPEN: &str = "role server\n> REG /p ACORN/1.0\n> TX-ID: 1\n< ACORN/1.0 000 ACK\n";

    #[test]
    fn the_rule_accepts_a_server_scenario_that_answers_at_once() {
        let text = format!(
            "{OPEN}\n> GET /x ACORN/1.0\n> TX-ID: 2\n< ACORN/1.0 000 ACK\n\
             event RequestReceived\n! respond 200 OK\n< ACORN/1.0 200 OK\n\nat 1s\n<none\n"
        );
        assert_eq!(support(&text, Transport::Udp), Ok(()));
        assert_eq!(support(&text, Transport::Tcp), Ok(()));
    }

    #[test]
    fn the_rule_refuses_what_the_network_cannot_do_and_names_the_line() {
        let cases: [(String, Option<usize>, &str); 9] = [
            ("role client\n<none\n".into(), None, "client"),
            (
                format!("role server\ntags: engine-only\n{}", &OPEN[12..]),
                None,
                "engine-only",
            ),
            (
                "role server\nconfig max_nack_rounds=1\n<none\n".into(),
                Some(2),
                "config max_nack_rounds",
            ),
            (
                format!("{OPEN}event RequestReceived\nat 1s\n! respond 200 OK\n"),
                Some(5),
                "does not answer at once",
            ),
            (
                format!("{OPEN}event RequestReceived\n<none\n! respond 200 OK\n"),
                Some(5),
                "does not answer at once",
            ),
            (
                format!("{OPEN}event RequestReceived\n! respond 404 Nope\n"),
                Some(6),
                "answers every request",
            ),
            (format!("{OPEN}! close\n"), Some(5), "application side"),
            (format!("{OPEN}< => 10.0.0.1:1\n"), Some(4), "=> HOST:PORT"),
            (
                "role server\nsend-bytes \"x\"\nevent ProtocolViolation\n".into(),
                None,
                "only events",
            ),
        ];
        for (text, line, why) in cases {
            let e = support(&text, Transport::Udp).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e:?}");
            assert!(e.reason.contains(why), "{text}: {e:?}");
        }
    }

    #[test]
    fn tcp_refuses_datagram_only_input() {
        let bytes = "role server\nsend-bytes \"junk\"\n<none\n";
        assert_eq!(support(bytes, Transport::Udp), Ok(()));
        assert_eq!(support(bytes, Transport::Tcp).unwrap_err().line, Some(2));
        let junk = "role server\n> this is not acorn\n<none\n";
        assert_eq!(support(junk, Transport::Udp), Ok(()));
        assert_eq!(support(junk, Transport::Tcp).unwrap_err().line, Some(2));
        let vars = format!(
            "{OPEN}< Session-ID: {{sid}}\n\n> GET /x ACORN/1.0\n> Session-ID: ${{sid}}\n<none\n"
        );
        assert_eq!(support(&vars, Transport::Tcp), Ok(()));
    }

    #[test]
    fn schedule_scales_and_shortens_only_the_quiet_tail() {
        let sc = parse(
            "t.scenario",
            "role server\nat 500ms\n< ACORN/1.0 200 OK\nat +1s\n<none\nat 10s\n<none\nevent none\n",
        )
        .unwrap();
        let s = sc.network_schedule(1.0, Duration::from_secs(3)).unwrap();
        let at: Vec<Duration> = s.instants.iter().flatten().copied().collect();
        assert_eq!(
            at,
            [
                Duration::from_millis(500),
                Duration::from_millis(1500),
                Duration::from_secs(3)
            ]
        );
        assert_eq!(
            s.shortened,
            [(6, Duration::from_secs(10), Duration::from_secs(3))]
        );
        let s = sc.network_schedule(2.0, Duration::from_secs(30)).unwrap();
        assert_eq!(s.total, Duration::from_secs(20));
        // The quiet tail starts after the last `<` block: a step that
        // expects a PDU past the bound cannot be moved.
        let s = sc.network_schedule(1.0, Duration::from_secs(1)).unwrap();
        assert_eq!(s.shortened.len(), 2);
        let e = sc
            .network_schedule(1.0, Duration::from_millis(400))
            .unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
