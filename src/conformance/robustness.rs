//! The robustness suite: malformed and hostile PDUs sent to a live peer,
//! each followed by a liveness probe, in the manner of PROTOS c07-sip.
//!
//! The inputs ([`generate`]) are, in this order: a fixed list written from
//! the grammar (a tab in each place of the start line, bare CR and LF,
//! numbers past `u64`, huge ranges and lengths, control bytes, an empty
//! datagram), the corpus's `reject-*.acorn` cases as given, then seeded
//! mutations of a valid request (bytes flipped, inserted, deleted,
//! truncated, lines repeated) — the same seed gives the same inputs.
//!
//! After each input the runner sends a probe, a valid padded request that
//! must be answered (any PDU with the probe's `TX-ID`). The first probe
//! left unanswered ends the run: the report says after which input the
//! peer stopped answering. An input that does not parse but is answered
//! with a 2xx, or is answered with more than 3x its bytes (SPEC §9), is
//! reported as answered wrongly.
//!
//! Bounds: at most [`MAX_COUNT`] inputs, sent at most [`Options::rate`]
//! datagrams per second; the target must be loopback unless the caller
//! says otherwise ([`Options::allow_remote`]), and never an unspecified,
//! broadcast or multicast address. UDP only.

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// The most inputs one run sends, whatever the caller asks.
pub const MAX_COUNT: usize = 10_000;

/// Every probe's TX-ID starts with this.
const PROBE_TX_PREFIX: &str = "rb-probe-";

/// The largest UDP payload over IPv4; larger corpus cases are skipped.
pub const MAX_DATAGRAM: usize = 65_507;

/// The size a probe is padded to, so a peer keeping the 3x rule of SPEC
/// §9 may answer it (as QUIC pads its Initial packets).
const PROBE_SIZE: usize = 1200;

/// How a run is bounded. Exhaustive on purpose, so a caller writes
/// `Options { count: 50, ..Options::default() }`.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many inputs to send (at most [`MAX_COUNT`]).
    pub count: usize,
    /// Datagrams per second, inputs and probes together.
    pub rate: u32,
    /// The seed of the mutations.
    pub seed: u64,
    /// How long a probe may wait for its answer (it is sent twice, so a
    /// lost datagram is not a crash).
    pub probe_timeout: Duration,
    /// Whether a target that is not loopback may be tested.
    pub allow_remote: bool,
}

impl Default for Options {
    /// 300 inputs at 200 datagrams per second (a few seconds), seed 1,
    /// probes answered within 500 ms, loopback only.
    fn default() -> Options {
        Options {
            count: 300,
            rate: 200,
            seed: 1,
            probe_timeout: Duration::from_millis(500),
            allow_remote: false,
        }
    }
}

/// One hostile input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Where it came from: `grammar:<what>`, `corpus:<file>`,
    /// `mutation:<n>`.
    pub origin: String,
    /// The datagram.
    pub bytes: Vec<u8>,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = crate::scenario::show_bytes(&self.bytes);
        let shown: String = shown.replace("\n    ", " ").chars().take(120).collect();
        write!(f, "{} {shown}", self.origin)
    }
}

/// An input the peer answered, but wrongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrong {
    /// Its number (1-based, as in the report).
    pub case: usize,
    /// The input.
    pub input: Input,
    /// What was wrong with the answer.
    pub why: String,
}

/// What a run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The target tested.
    pub target: SocketAddr,
    /// Inputs sent.
    pub sent: usize,
    /// The input after which the peer stopped answering probes (1-based).
    pub stopped_after: Option<(usize, Input)>,
    /// Inputs answered wrongly.
    pub wrong: Vec<Wrong>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "robustness of udp://{}: {} inputs sent",
            self.target, self.sent
        )?;
        for w in &self.wrong {
            writeln!(
                f,
                "answered wrongly case {}: {}: {}",
                w.case, w.why, w.input
            )?;
        }
        match &self.stopped_after {
            Some((n, input)) => writeln!(f, "stopped answering after case {n}: {input}"),
            None => writeln!(f, "answered every probe"),
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RobustnessError {
    /// The target is not one this suite may send hostile input to.
    #[error("refusing target {0}: {1}")]
    Target(SocketAddr, &'static str),
    /// The peer did not answer the probe before any input was sent.
    #[error("{0} does not answer the liveness probe (a padded GET) before any input")]
    NotAnswering(SocketAddr),
    /// A socket operation failed.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Inputs written from the grammar: each breaks one rule.
fn grammar_inputs() -> Vec<Input> {
    let cases: &[(&str, &[u8])] = &[
        ("empty-datagram", b""),
        ("bare-cr", b"GET /x ACORN/1.0\rTX-ID: r\r\n\r\n"),
        ("bare-lf", b"GET /x ACORN/1.0\nTX-ID: r\n\n"),
        ("nul-in-target", b"GET /\0 ACORN/1.0\r\nTX-ID: r\r\n\r\n"),
        (
            "seq-past-u64",
            b"GET /x ACORN/1.0\r\nTX-ID: r\r\nSeq: 18446744073709551616\r\n\r\n",
        ),
        (
            "need-seq-huge-range",
            b"GET /x ACORN/1.0\r\nTX-ID: r\r\nNeed-Seq: 1..18446744073709551615\r\n\r\n",
        ),
        (
            "content-length-huge",
            b"PUT /x ACORN/1.0\r\nTX-ID: r\r\nContent-Length: 99999999999999999999\r\n\r\nab",
        ),
        (
            "content-length-conflict",
            b"PUT /x ACORN/1.0\r\nTX-ID: r\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        (
            "header-without-colon",
            b"GET /x ACORN/1.0\r\nTX-ID r\r\n\r\n",
        ),
        ("version-unknown", b"GET /x ACORN/9.9\r\nTX-ID: r\r\n\r\n"),
        ("status-not-digits", b"ACORN/1.0 2x0 OK\r\nTX-ID: r\r\n\r\n"),
        (
            "attempt-zero",
            b"GET /x ACORN/1.0\r\nTX-ID: r\r\nAttempt: 0/3\r\n\r\n",
        ),
        (
            "obs-fold",
            b"GET /x ACORN/1.0\r\nTX-ID: r\r\n continued\r\n\r\n",
        ),
        (
            "high-bytes-in-method",
            b"G\xffT /x ACORN/1.0\r\nTX-ID: r\r\n\r\n",
        ),
        (
            "tab-in-start-line",
            b"GET\t/x ACORN/1.0\r\nTX-ID: r\r\n\r\n",
        ),
        (
            "tab-before-version",
            b"GET /x\tACORN/1.0\r\nTX-ID: r\r\n\r\n",
        ),
        (
            "tab-in-status-line",
            b"ACORN/1.0\t200 OK\r\nTX-ID: r\r\n\r\n",
        ),
    ];
    cases
        .iter()
        .map(|(what, b)| Input {
            origin: format!("grammar:{what}"),
            bytes: b.to_vec(),
        })
        .collect()
}

/// The inputs of a run: the grammar's, then `corpus` (e.g. the
/// `reject-*.acorn` files, as `(name, bytes)`), then seeded mutations,
/// `count` in all.
pub fn generate(opts: &Options, corpus: &[(String, Vec<u8>)]) -> Vec<Input> {
    let count = opts.count.min(MAX_COUNT);
    let mut inputs = grammar_inputs();
    // A case larger than one UDP datagram cannot be sent as one (the
    // corpus holds some, for stream framing): it is left out.
    inputs.extend(
        corpus
            .iter()
            .filter(|(_, b)| b.len() <= MAX_DATAGRAM)
            .map(|(name, b)| Input {
                origin: format!("corpus:{name}"),
                bytes: b.clone(),
            }),
    );
    let seed: &[u8] =
        b"PUT /m ACORN/1.0\r\nTX-ID: m\r\nSeq: 1\r\nNeed-Seq: 1..3\r\nContent-Length: 2\r\n\r\nok";
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let mut n = 0;
    while inputs.len() < count {
        n += 1;
        let mut b = seed.to_vec();
        for _ in 0..rng.gen_range(1..=4) {
            let at = rng.gen_range(0..b.len().max(1));
            match rng.gen_range(0..5) {
                0 if !b.is_empty() => b[at] = rng.gen(),
                1 => b.insert(
                    at.min(b.len()),
                    *b"\t\r\n\0: -\x7f\xff"
                        .get(rng.gen_range(0..9))
                        .unwrap_or(&b' '),
                ),
                2 if !b.is_empty() => {
                    b.remove(at);
                }
                3 => b.truncate(at),
                _ => {
                    let line_end = b[at..].iter().position(|&c| c == b'\n').map(|p| at + p + 1);
                    if let Some(end) = line_end {
                        let line = b[at..end].to_vec();
                        b.splice(end..end, line);
                    }
                }
            }
        }
        inputs.push(Input {
            origin: format!("mutation:{n}"),
            bytes: b,
        });
    }
    inputs.truncate(count);
    inputs
}

fn probe(n: usize) -> (String, Vec<u8>) {
    let tx = format!("{PROBE_TX_PREFIX}{n}");
    let head = format!("GET /robustness/probe ACORN/1.0\r\nTX-ID: {tx}\r\nX-Padding: ");
    let pad = PROBE_SIZE.saturating_sub(head.len() + 4);
    let mut b = head.into_bytes();
    b.extend(std::iter::repeat_n(b'0', pad));
    b.extend_from_slice(b"\r\n\r\n");
    (tx, b)
}

/// Whether `payload` parses as a PDU whose TX-ID is `tx`.
fn answers(payload: &[u8], tx: &str) -> bool {
    let opts = crate::wire::ParseOptions::default();
    crate::wire::Pdu::parse_datagram(bytes::Bytes::copy_from_slice(payload), &opts)
        .ok()
        .is_some_and(|p| p.tx_id().ok().flatten() == Some(tx))
}

/// Whether `payload` answers some probe (its TX-ID is a probe's).
fn is_probe_answer(payload: &[u8]) -> bool {
    let opts = crate::wire::ParseOptions::default();
    crate::wire::Pdu::parse_datagram(bytes::Bytes::copy_from_slice(payload), &opts)
        .ok()
        .is_some_and(|p| {
            p.tx_id()
                .ok()
                .flatten()
                .is_some_and(|t| t.starts_with(PROBE_TX_PREFIX))
        })
}

/// The 2xx status of `payload`, if it is a reply with one.
fn success(payload: &[u8]) -> Option<u16> {
    let opts = crate::wire::ParseOptions::default();
    let p = crate::wire::Pdu::parse_datagram(bytes::Bytes::copy_from_slice(payload), &opts).ok()?;
    p.status().filter(|s| (200..300).contains(s))
}

/// Whether `bytes` is a valid PDU (parses and validates).
fn valid(bytes: &[u8]) -> bool {
    let opts = crate::wire::ParseOptions::default();
    crate::wire::Pdu::parse_datagram(bytes::Bytes::copy_from_slice(bytes), &opts)
        .is_ok_and(|p| p.validate(&opts.limits).is_ok())
}

/// Sends each input to `target`, then a probe, and reports.
pub async fn run(
    target: SocketAddr,
    inputs: &[Input],
    opts: &Options,
) -> Result<Report, RobustnessError> {
    let ip = target.ip();
    if ip.is_unspecified() || ip.is_multicast() || ip == std::net::Ipv4Addr::BROADCAST {
        return Err(RobustnessError::Target(
            target,
            "unspecified, broadcast or multicast",
        ));
    }
    if !ip.is_loopback() && !opts.allow_remote {
        return Err(RobustnessError::Target(
            target,
            "not loopback (allow it explicitly)",
        ));
    }
    let local: SocketAddr = if target.is_ipv4() {
        ([127, 0, 0, 1], 0).into()
    } else {
        "[::1]:0".parse().expect("an address")
    };
    let local = if ip.is_loopback() {
        local
    } else if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        "[::]:0".parse().expect("an address")
    };
    let sock = UdpSocket::bind(local).await?;
    let gap = Duration::from_secs(1) / opts.rate.max(1);
    let mut next_send = Instant::now();
    let mut report = Report {
        target,
        sent: 0,
        stopped_after: None,
        wrong: Vec::new(),
    };
    let mut buf = vec![0u8; 65_535];
    for n in 0..=inputs.len() {
        // n == 0: the baseline probe, before any input.
        let mut extra: Vec<Vec<u8>> = Vec::new();
        if n > 0 {
            tokio::time::sleep_until(next_send).await;
            next_send = Instant::now() + gap;
            sock.send_to(&inputs[n - 1].bytes, target).await?;
            report.sent = n;
        }
        let (tx, bytes) = probe(n);
        let mut answered = false;
        'tries: for _ in 0..2 {
            tokio::time::sleep_until(next_send).await;
            next_send = Instant::now() + gap;
            sock.send_to(&bytes, target).await?;
            let deadline = Instant::now() + opts.probe_timeout;
            while let Ok(r) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                let (len, _) = match r {
                    Ok(x) => x,
                    // An ICMP error (port closed): no answer this time.
                    Err(_) => break,
                };
                if answers(&buf[..len], &tx) {
                    answered = true;
                    break 'tries;
                }
                // A late answer to an earlier probe (its reply after its
                // ACK) is not an answer to the input.
                if !is_probe_answer(&buf[..len]) {
                    extra.push(buf[..len].to_vec());
                }
            }
        }
        if n == 0 {
            if !answered {
                return Err(RobustnessError::NotAnswering(target));
            }
            continue;
        }
        let input = &inputs[n - 1];
        if !valid(&input.bytes) {
            if let Some(s) = extra.iter().find_map(|p| success(p)) {
                report.wrong.push(Wrong {
                    case: n,
                    input: input.clone(),
                    why: format!("a PDU that does not parse was answered {s}"),
                });
            }
            let out: usize = extra.iter().map(Vec::len).sum();
            if out > 3 * input.bytes.len() {
                report.wrong.push(Wrong {
                    case: n,
                    input: input.clone(),
                    why: format!(
                        "{out} bytes answered to {} (more than 3x, SPEC §9)",
                        input.bytes.len()
                    ),
                });
            }
        }
        if !answered {
            tracing::info!(case = n, "peer stopped answering the probe");
            report.stopped_after = Some((n, input.clone()));
            break;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_seeded_bounded_and_starts_with_the_grammar() {
        let opts = Options {
            count: 50,
            ..Options::default()
        };
        let corpus = vec![
            ("reject-x.acorn".to_owned(), b"X".to_vec()),
            ("reject-huge.acorn".to_owned(), vec![b'X'; MAX_DATAGRAM + 1]),
        ];
        let a = generate(&opts, &corpus);
        assert_eq!(a.len(), 50);
        assert_eq!(a, generate(&opts, &corpus));
        assert!(a.iter().any(|i| i.origin == "corpus:reject-x.acorn"));
        assert!(!a.iter().any(|i| i.origin == "corpus:reject-huge.acorn"));
        assert!(a.iter().take(20).any(|i| i.bytes.starts_with(b"GET\t")));
        let other = generate(
            &Options {
                seed: 2,
                ..opts.clone()
            },
            &corpus,
        );
        assert_ne!(a, other);
        let huge = generate(
            &Options {
                count: usize::MAX,
                ..opts
            },
            &[],
        );
        assert_eq!(huge.len(), MAX_COUNT);
        let (tx, p) = probe(3);
        assert_eq!(p.len(), PROBE_SIZE);
        assert!(answers(&p, &tx) && valid(&p));
    }
}
