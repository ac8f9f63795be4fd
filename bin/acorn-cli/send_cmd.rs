//! `acorn-cli send`: put one PDU on the wire and show what comes back.
//!
//! This is a raw tool, not a client of the engine: it sends the user's
//! bytes (made wire-ready, see [`to_wire`]) from a plain socket, prints every
//! PDU the peer sends back through the crate's codecs, and stops at the
//! final reply to its TX-ID. The only PDU it writes itself is the `ACK` of
//! that final reply, so that a well-behaved peer stops retransmitting it.
//!
//! On request it shapes the PDU first (SPEC §7): `--hash` and
//! `--hmac-key-file` add `Content-Hash-*` headers, and `--segment-size`
//! sends a long body as segments — each a PDU of its own, sent a window at
//! a time as the peer ACKs them (those ACKs are consumed, not printed).
//!
//! Interoperability (SPEC §10): answers are matched by TX-ID, whatever
//! address they come from (a peer may answer from elsewhere, or send to the
//! request's `From`, stamped by `--from`/`--reply-to`); the one PDU we
//! write back, the ACK, goes to where the reply came from, never to an
//! address only a header names (SPEC §9). A reply that names one segment
//! in its `Ack-Message-ID` stands in for that segment's ACK; the final
//! reply of a segmented request is the one that arrives once every segment
//! is answered (**Decision:** a 4xx/5xx reply ends it at once: a refusal
//! answers the whole payload), and a peer that answers only some of them
//! gets a `partial-answer` failure (exit 3).

use crate::addressing::Addressing;
use crate::input::{self, Source};
use crate::{duration, json, show, Status};
use acorn::codec::{CodecError, DatagramCodec, StreamCodec, MAX_UDP_PAYLOAD};
use acorn::engine::integrity::hash_header;
use acorn::engine::segment::{segment_count, segment_request};
use acorn::engine::{HashAlg, HashSpec, HmacKey};
use acorn::runtime::Dest;
use acorn::wire::{HashScope, Limits, ParseError, ParseOptions, Pdu, PduBuilder};
use anyhow::{anyhow, Context as _};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::Instant;
use tokio_util::codec::{Decoder, Encoder, FramedRead};

/// `send --help`, and the README's table (keep them in sync).
pub(crate) const EXIT_HELP: &str = "\
Exit status:
  0  the final reply arrived (status >= 200 with the request's TX-ID), or
     --count PDUs arrived, or --count 0 and the PDU was sent
  1  the PDU to send is not valid (nothing was sent)
  2  usage or I/O error: bad address, unreadable input, socket error, TCP
     connection refused or closed before the final reply, garbled stream
  3  timeout: no final reply within --timeout (also when the peer answered
     only some segments of a segmented request: partial-answer)
  4  --check-status was given and the final reply is 4xx or 5xx";

/// First UDP retransmission timer (`--retries`); it doubles after each.
const FIRST_RETRY: Duration = Duration::from_millis(500);

/// How long to wait for the peer to close a TCP connection after our ACK.
const TCP_LINGER: Duration = Duration::from_secs(1);

/// Segments sent and not yet ACKed, at most (`--segment-size` over UDP):
/// the engine's default window, so a long payload never floods the peer's
/// socket buffer.
const SEGMENT_WINDOW: usize = 64;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to send: HOST:PORT (UDP), udp://HOST:PORT or tcp://HOST:PORT.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// A file holding one PDU; `-` or nothing reads stdin. Bare LF line
    /// ends become CRLF, `Content-Length` is added when there is a body
    /// and none is given, and a missing empty line after the headers is
    /// added (all unless --raw). The PDU is checked before it is sent.
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,
    /// Send the input bytes exactly as they are: no line-end conversion, no
    /// Content-Length, no validation.
    #[arg(long)]
    raw: bool,
    /// Stop after N received PDUs even before the final reply; 0 sends and
    /// exits without waiting.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// How long to wait for the final reply (e.g. 300ms, 5s, 1m).
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration::parse)]
    timeout: Duration,
    /// UDP only: resend the same bytes up to N times, 500ms after the first
    /// send and doubling, while no PDU with the request's TX-ID has arrived.
    #[arg(long, value_name = "N", default_value_t = 0)]
    retries: u32,
    /// Do not ACK the final reply (a peer then retransmits it).
    #[arg(long)]
    no_ack: bool,
    /// UDP only: send the PDU as written, without padding it to 1200 bytes.
    /// By default a single PDU shorter than that gets an `X-Padding` header
    /// (as QUIC pads its Initial packets), so a peer keeping SPEC §9's 3x
    /// rule can afford its ACK and reply toward our not yet proven address.
    #[arg(long)]
    no_pad: bool,
    /// Exit with 4 when the final reply's status is 4xx or 5xx.
    #[arg(long)]
    check_status: bool,
    /// Print each received PDU as one JSON object per line (the `parse
    /// --json` schema), and errors as {"error":{...}}.
    #[arg(long)]
    json: bool,
    /// Trace the bytes sent (`> `) and received (`< `) on stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Send from this local address instead of an ephemeral port. Sends
    /// from the same address belong to the same session at the peer.
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<SocketAddr>,
    /// Send a request whose body is longer than N bytes as segments of at
    /// most N body bytes (SPEC §7): PDUs with `Segment: I/N`,
    /// `Payload-Length`, the request's TX-ID (one is made up if it has
    /// none) and Message-IDs `<its Message-ID>-I`. Over UDP 64 are in
    /// flight at a time, the next going as one is ACKed; --retries resends
    /// the unacknowledged ones. Segment ACKs are not printed or counted.
    #[arg(long, value_name = "N", conflicts_with = "raw",
          value_parser = clap::value_parser!(u64).range(1..))]
    segment_size: Option<u64>,
    /// Add `Content-Hash-ALG` over the body (of each segment) and, when
    /// segmented, `Payload-Hash-ALG` over the whole payload on the first
    /// segment. ALG: sha256 or sha512 (also written SHA-256, ...).
    #[arg(long, value_name = "ALG", conflicts_with = "raw", value_parser = parse_alg)]
    hash: Option<HashAlg>,
    /// Add the keyed forms (`Content-Hash-HMAC-ALG`, `Payload-Hash-HMAC-ALG`;
    /// ALG from --hash, else sha256) with the key in FILE: its bytes, less
    /// one trailing newline. The key is never printed.
    #[arg(long, value_name = "FILE", conflicts_with = "raw")]
    hmac_key_file: Option<PathBuf>,
    #[command(flatten)]
    addressing: Addressing,
}

fn parse_alg(s: &str) -> Result<HashAlg, String> {
    HashAlg::from_name(s).ok_or_else(|| format!("{s}: sha256 or sha512"))
}

/// An HMAC key from a file: its bytes, less one trailing LF or CRLF (what
/// `echo secret > key` adds). An empty key is refused.
pub(crate) fn read_hmac_key(path: &std::path::Path) -> anyhow::Result<HmacKey> {
    let mut k = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if k.ends_with(b"\n") {
        k.pop();
        if k.ends_with(b"\r") {
            k.pop();
        }
    }
    if k.is_empty() {
        anyhow::bail!("{}: the HMAC key is empty", path.display());
    }
    Ok(HmacKey::new(k))
}

/// One PDU to put on the wire, and the Message-ID its ACK will name.
struct Outgoing {
    message_id: Option<String>,
    bytes: Vec<u8>,
}

/// Apply --hash, --hmac-key-file and --segment-size to the checked PDU
/// `wire`: the PDUs to send, and the TX-ID that marks the final reply.
fn shape(
    args: &Args,
    wire: Vec<u8>,
    tx_id: Option<String>,
) -> Result<(Vec<Outgoing>, Option<String>), Fail> {
    let pdu = Pdu::parse_datagram(Bytes::from(wire), &ParseOptions::strict())
        .map_err(|e| Fail::usage(anyhow!("the PDU to send: {e}")))?;
    let message_id = pdu.message_id().ok().flatten().map(str::to_owned);
    let pdu = if args.addressing.is_empty() {
        pdu
    } else {
        let mut b = PduBuilder::from_pdu(&pdu);
        args.addressing.stamp(&mut b);
        Pdu::parse_datagram(b.to_bytes(), &ParseOptions::strict())
            .map_err(|e| Fail::usage(anyhow!("the PDU to send: {e}")))?
    };
    if args.segment_size.is_none() && args.hash.is_none() && args.hmac_key_file.is_none() {
        let bytes = pdu.as_bytes().to_vec();
        return Ok((vec![Outgoing { message_id, bytes }], tx_id));
    }
    let key = args
        .hmac_key_file
        .as_deref()
        .map(read_hmac_key)
        .transpose()
        .map_err(Fail::usage)?;
    let alg = args.hash.unwrap_or(HashAlg::Sha256);
    let specs: Vec<HashSpec> = [
        args.hash.map(|alg| HashSpec { alg, keyed: false }),
        key.as_ref().map(|_| HashSpec { alg, keyed: true }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let stamp = |b: &mut PduBuilder, scope: HashScope, data: &[u8]| {
        for spec in &specs {
            if let Some((name, value)) = hash_header(*spec, scope, key.as_ref(), data) {
                let _ = b.set_value(&name, value);
            }
        }
    };
    let mut b = PduBuilder::from_pdu(&pdu);
    let payload = pdu.body_bytes();
    let size = args.segment_size.unwrap_or(u64::MAX);
    if payload.len() as u64 <= size {
        if !payload.is_empty() {
            stamp(&mut b, HashScope::Content, &payload);
        }
        let bytes = b.to_bytes().to_vec();
        return Ok((vec![Outgoing { message_id, bytes }], tx_id));
    }
    if !pdu.is_request() {
        return Err(Fail::usage(anyhow!(
            "--segment-size: only a request is segmented (its reply answers the whole payload)"
        )));
    }
    let tx = tx_id.unwrap_or_else(|| format!("cli-t{:016x}", rand::random::<u64>()));
    b.set_header("TX-ID", tx.clone()).map_err(Fail::usage)?;
    b.remove_header("Message-ID");
    // A Content-Hash the input carries covers the whole body: on segments
    // it is a Payload-Hash, sent with the first.
    let moved: Vec<(String, Bytes)> = b
        .headers()
        .filter(|(n, _)| {
            acorn::wire::typed::hash_header_name(n.as_str())
                .is_some_and(|(scope, _, _)| scope == HashScope::Content)
        })
        .map(|(n, v)| (n.as_str().to_owned(), v.clone()))
        .collect();
    for (name, _) in &moved {
        b.remove_header(name);
    }
    let base = message_id.unwrap_or_else(|| format!("cli-m{:016x}", rand::random::<u64>()));
    let chunk = usize::try_from(size).unwrap_or(usize::MAX);
    let out = (1..=segment_count(payload.len(), chunk))
        .map(|i| {
            let mut s = segment_request(&b, &payload, chunk, i);
            let mid = format!("{base}-{i}");
            let _ = s.set_header("Message-ID", mid.clone());
            let body = s.body_bytes().clone();
            stamp(&mut s, HashScope::Content, &body);
            if i == 1 {
                stamp(&mut s, HashScope::Payload, &payload);
                for (name, value) in &moved {
                    let renamed = format!("Payload-Hash-{}", &name["Content-Hash-".len()..]);
                    let _ = s.set_header(renamed, value.clone());
                }
            }
            Outgoing {
                message_id: Some(mid),
                bytes: s.to_bytes().to_vec(),
            }
        })
        .collect();
    Ok((out, Some(tx)))
}

/// Why the command stopped short, with the exit status and the `kind` of
/// its JSON error object.
struct Fail {
    kind: &'static str,
    status: Status,
    error: anyhow::Error,
}

impl Fail {
    fn io(error: impl Into<anyhow::Error>) -> Fail {
        Fail {
            kind: "io",
            status: Status::Trouble,
            error: error.into(),
        }
    }

    fn usage(error: impl Into<anyhow::Error>) -> Fail {
        Fail {
            kind: "usage",
            status: Status::Trouble,
            error: error.into(),
        }
    }
}

impl From<anyhow::Error> for Fail {
    fn from(e: anyhow::Error) -> Fail {
        Fail::io(e)
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    match send(args) {
        Ok(status) => Ok(status),
        Err(f) => {
            let message = format!("{:#}", f.error);
            if args.json {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", json::failure(f.kind, &message))
                    .and_then(|()| out.flush())
                    .context("writing to stdout")?;
            } else {
                eprintln!("acorn-cli: error: {message}");
            }
            Ok(f.status)
        }
    }
}

fn send(args: &Args) -> Result<Status, Fail> {
    let dest: Dest = args
        .addr
        .parse()
        .map_err(|e| Fail::usage(anyhow!("ADDR: {e}")))?;
    let source = match &args.input {
        None => Source::Stdin,
        Some(p) => input::sources(std::slice::from_ref(p))
            .map_err(Fail::usage)?
            .remove(0),
    };
    let limits = Limits::default();
    let bytes = source.read(input::read_cap(&limits))?;
    let (wire, tx_id) = if args.raw {
        // Still find the TX-ID, to recognise the final reply.
        let tx = acorn::wire::parse_datagram(&bytes, &ParseOptions::lenient())
            .ok()
            .and_then(|p| p.tx_id().ok().flatten().map(str::to_owned));
        let out = Outgoing {
            message_id: None,
            bytes,
        };
        (vec![out], tx)
    } else {
        match prepare(&source, &bytes, args.json)? {
            Ok((wire, tx)) => shape(args, wire, tx)?,
            Err(status) => return Ok(status),
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut x = Exchange {
        args,
        dest,
        tx_id,
        limits,
        received: 0,
        seen_tx: false,
        pending: HashMap::new(),
        answered: 0,
        segments: if wire.len() > 1 { wire.len() } else { 0 },
        held: None,
        peer: dest.addr(),
        src: dest.addr(),
    };
    rt.block_on(async {
        match dest {
            Dest::Udp(addr) => x.udp(addr, &wire).await,
            Dest::Tcp(addr) => x.tcp(addr, &wire).await,
        }
    })
}

/// Check hand-typed input and make it wire-ready. `Ok(Err(status))` when
/// it is invalid (the diagnostic is printed).
#[allow(clippy::type_complexity)]
fn prepare(
    source: &Source,
    bytes: &[u8],
    as_json: bool,
) -> Result<Result<(Vec<u8>, Option<String>), Status>, Fail> {
    // Diagnostics point into the input as typed (a missing empty line
    // added at the end does not move anything).
    let typed = complete_head(bytes);
    if let Err(e) = input::check(&typed, &ParseOptions::lenient()) {
        invalid(source.name().as_ref(), &typed, &e, as_json)?;
        return Ok(Err(Status::Invalid));
    }
    let wire = to_wire(&typed);
    let tx = match input::check(&wire, &ParseOptions::strict()) {
        Ok(pdu) => pdu.tx_id().ok().flatten().map(str::to_owned),
        Err(e) => {
            let name = format!("{} (as converted for sending)", source.name());
            invalid(&name, &wire, &e, as_json)?;
            return Ok(Err(Status::Invalid));
        }
    };
    Ok(Ok((wire, tx)))
}

/// Print a parse error: `NAME:LINE:COL: error: ...` on stderr, or the JSON
/// error object on stdout.
fn invalid(name: &str, bytes: &[u8], e: &ParseError, as_json: bool) -> Result<(), Fail> {
    if as_json {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", json::error(e, bytes))
            .and_then(|()| out.flush())
            .context("writing to stdout")?;
    } else {
        let pos = e.position(bytes);
        eprintln!("{name}:{}:{}: error: {e}", pos.line, pos.column);
    }
    Ok(())
}

/// Input without an empty line after its headers (a here-doc that ends
/// with the last header) gets one: such a PDU can only mean "no body".
fn complete_head(input: &[u8]) -> Cow<'_, [u8]> {
    let has_empty_line = input.starts_with(b"\n")
        || input.starts_with(b"\r\n")
        || memchr::memmem::find(input, b"\n\n").is_some()
        || memchr::memmem::find(input, b"\n\r\n").is_some();
    if has_empty_line || input.is_empty() {
        return Cow::Borrowed(input);
    }
    let mut v = input.to_vec();
    if !v.ends_with(b"\n") {
        v.push(b'\n');
    }
    v.push(b'\n');
    Cow::Owned(v)
}

/// Hand-typed PDU to wire form: every head line ends in CRLF (a bare LF
/// gets its CR), `Content-Length` is added before the empty line when there
/// is a body and no such header, and the body is left exactly as it is.
/// Input without an empty line is all head.
fn to_wire(input: &[u8]) -> Vec<u8> {
    let mut head: Vec<&[u8]> = Vec::new();
    let mut body: &[u8] = &[];
    let mut rest = input;
    loop {
        let (line, next) = match memchr::memchr(b'\n', rest) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match next {
            Some(after) if line.is_empty() => {
                body = after;
                break;
            }
            Some(after) => {
                head.push(line);
                rest = after;
            }
            None => {
                if !line.is_empty() {
                    head.push(line);
                }
                break;
            }
        }
    }
    let has_length = head.iter().skip(1).any(|l| {
        let name = l.split(|&b| b == b':').next().unwrap_or(l);
        name.eq_ignore_ascii_case(b"Content-Length")
    });
    let mut out = Vec::with_capacity(input.len() + head.len() + 32);
    for l in &head {
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
    }
    if !body.is_empty() && !has_length {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// One request and what came back.
struct Exchange<'a> {
    args: &'a Args,
    dest: Dest,
    /// The TX-ID of what we sent; `None` makes any final reply ours.
    tx_id: Option<String>,
    limits: Limits,
    /// Valid PDUs received (what `--count` counts).
    received: u64,
    /// A PDU with our TX-ID arrived: the peer has the request, stop resending.
    seen_tx: bool,
    /// Segments sent and not yet ACKed: Message-ID -> index.
    pending: HashMap<String, usize>,
    /// Segments acknowledged (by an ACK or a reply standing in for one).
    answered: usize,
    /// Segments in all (0 when the request is not segmented).
    segments: usize,
    /// Where requests go (UDP); the address an answer without TX-ID must
    /// come from.
    peer: SocketAddr,
    /// The source of the PDU being handled.
    src: SocketAddr,
    /// A segmented request's reply that came before every segment was
    /// answered: the final reply once they all are, else a partial answer.
    held: Option<(Pdu, SocketAddr)>,
}

/// What a received PDU means for the exchange.
enum Step {
    Continue,
    /// `--count` PDUs have arrived.
    Enough,
    /// The final reply, with its status.
    Final(u16),
    /// A reply to a segmented request before every segment is answered.
    Held,
}

impl Exchange<'_> {
    fn trace(&self, text: impl AsRef<str>) {
        if self.args.verbose {
            eprint!("{}", text.as_ref());
        }
    }

    fn trace_bytes(&self, prefix: &str, bytes: &[u8]) {
        if self.args.verbose {
            eprint!("{}", show::prefixed(prefix, bytes));
        }
    }

    fn deadline_fail(&self, unreachable: bool) -> Fail {
        if self.held.is_some() {
            self.trace("* timeout after a partial answer\n");
            return Fail {
                kind: "partial-answer",
                status: Status::Timeout,
                error: anyhow!(
                    "partial answer: {} answered {} of {} segments within {:?}, not the whole payload",
                    self.dest,
                    self.answered,
                    self.segments,
                    self.args.timeout
                ),
            };
        }
        let mut msg = match &self.tx_id {
            Some(tx) => format!(
                "timeout: no final reply to TX-ID {tx} from {} within {:?}",
                self.dest, self.args.timeout
            ),
            None => format!(
                "timeout: no final reply from {} within {:?}",
                self.dest, self.args.timeout
            ),
        };
        msg.push_str(&format!(" ({} PDUs received)", self.received));
        if unreachable {
            msg.push_str("; the port was reported unreachable: is anything listening there?");
        }
        self.trace("* timeout\n");
        Fail {
            kind: "timeout",
            status: Status::Timeout,
            error: anyhow!(msg),
        }
    }

    /// The exit status for a final reply.
    fn verdict(&self, status: u16) -> Status {
        if self.args.check_status && (400..600).contains(&status) {
            Status::Rejected
        } else {
            Status::Ok
        }
    }

    fn count_reached(&self) -> bool {
        self.args.count.is_some_and(|n| self.received >= n)
    }

    /// Whether every segment of a segmented request has been answered.
    fn all_answered(&self) -> bool {
        self.answered >= self.segments
    }

    /// Print a received PDU and decide what it means.
    fn on_pdu(&mut self, pdu: &Pdu) -> Result<Step, Fail> {
        if let Err(e) = pdu.validate(&self.limits) {
            self.on_garbage(&e, pdu.as_bytes())?;
            return Ok(Step::Continue);
        }
        let mut out = std::io::stdout().lock();
        if self.args.json {
            let v = json::pdu(pdu, &self.limits).map_err(|e| Fail::io(anyhow!("{e}")))?;
            writeln!(out, "{v}")
        } else {
            let text = pdu.to_canonical();
            // Exactly one blank line after each PDU (a PDU without a body
            // ends with its own).
            let sep: &[u8] = if text.ends_with(b"\n\n") || text.ends_with(b"\r\n\r\n") {
                b""
            } else if text.ends_with(b"\n") {
                b"\n"
            } else {
                b"\n\n"
            };
            out.write_all(&text).and_then(|()| out.write_all(sep))
        }
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
        self.received += 1;
        let ours = match (&self.tx_id, pdu.tx_id()) {
            // Without a TX-ID to match, only the destination can answer.
            (None, _) => self.src == self.peer,
            (Some(mine), Ok(Some(theirs))) => mine == theirs,
            _ => false,
        };
        self.seen_tx |= ours;
        match pdu.status() {
            // SPEC §10: a reply to one segment is not the answer to the
            // request; it is final once every segment is answered.
            // A refusal (4xx/5xx) ends it at once: the peer takes no more.
            Some(s) if (200..400).contains(&s) && ours && !self.all_answered() => Ok(Step::Held),
            Some(s) if s >= 200 && ours => Ok(Step::Final(s)),
            _ if self.count_reached() => Ok(Step::Enough),
            _ => Ok(Step::Continue),
        }
    }

    /// An ACK of one of our segments: forget the segment. Such ACKs are
    /// the segmenting sender's business, not printed or counted. A reply
    /// (not a NACK) naming a segment in `Ack-Message-ID` stands in for its
    /// ACK (SPEC §4) but is still printed: returns false for it.
    fn segment_acked(&mut self, pdu: &Pdu) -> bool {
        if self.pending.is_empty() || pdu.is_nack() || pdu.status().is_none() {
            return false;
        }
        let Some(i) = pdu
            .ack_message_id()
            .ok()
            .flatten()
            .and_then(|m| self.pending.remove(m))
        else {
            return false;
        };
        self.answered += 1;
        self.trace(format!("* segment {} acknowledged\n", i + 1));
        pdu.is_ack()
    }

    /// After a segment was answered: the held reply, if every segment is
    /// now answered (it becomes the final reply).
    fn release_held(&mut self) -> Option<(Pdu, SocketAddr)> {
        if self.all_answered() {
            self.held.take()
        } else {
            None
        }
    }

    /// Report bytes from the peer that are not a valid PDU.
    fn on_garbage(&self, e: &ParseError, bytes: &[u8]) -> Result<(), Fail> {
        invalid(&self.dest.to_string(), bytes, e, self.args.json)
    }

    /// The ACK for `reply` ([`Self::ack_for`]) in `codec`'s framing, traced
    /// as it will go out.
    fn encode_ack<C>(&self, codec: &mut C, reply: &Pdu) -> Result<BytesMut, Fail>
    where
        C: Encoder<PduBuilder>,
        C::Error: Into<anyhow::Error>,
    {
        let mut out = BytesMut::new();
        codec
            .encode(Self::ack_for(reply)?, &mut out)
            .map_err(Fail::io)?;
        self.trace_bytes("> ", &out);
        Ok(out)
    }

    /// `ACORN/1.0 000 ACK` for `reply` (SPEC §4): its TX-ID, a Message-ID
    /// of our own, `Ack-Message-ID`, From/To swapped. No `Seq`: the user
    /// numbers the session by hand, and an ACK without one is taken outside
    /// the session's stream.
    fn ack_for(reply: &Pdu) -> anyhow::Result<PduBuilder> {
        let mut a = PduBuilder::ack();
        if let Ok(Some(tx)) = reply.tx_id() {
            a.header("TX-ID", tx.to_owned())?;
        }
        a.header("Message-ID", format!("cli-{:016x}", rand::random::<u64>()))?;
        if let Ok(Some(m)) = reply.message_id() {
            a.header("Ack-Message-ID", m.to_owned())?;
        }
        if let Ok(Some(to)) = reply.to() {
            a.header("From", to.to_string())?;
        }
        if let Ok(Some(from)) = reply.from() {
            a.header("To", from.to_string())?;
        }
        Ok(a)
    }

    async fn udp(&mut self, addr: SocketAddr, out: &[Outgoing]) -> Result<Status, Fail> {
        let local = self.args.bind.unwrap_or_else(|| wildcard(addr));
        let sock = UdpSocket::bind(local)
            .await
            .with_context(|| format!("binding UDP {local}"))?;
        // Not connected: an answer may come from another address (SPEC
        // §10) and is matched by TX-ID.
        self.peer = addr;
        if let Ok(me) = sock.local_addr() {
            self.trace(format!("* {} from {me}\n", self.dest));
        }
        let start = Instant::now();
        let deadline = start + self.args.timeout;
        // One PDU, or segments a window at a time (all of them with
        // --count 0, which waits for nothing).
        let segmented = out.len() > 1;
        let window = if self.args.count == Some(0) {
            out.len()
        } else {
            SEGMENT_WINDOW
        };
        let mut next = 0;
        while next < out.len() && next < window {
            self.send_udp(&sock, out, next).await?;
            next += 1;
        }
        if self.args.count == Some(0) {
            return Ok(Status::Ok);
        }
        let mut codec = DatagramCodec::new(ParseOptions::strict());
        let mut buf = vec![0u8; MAX_UDP_PAYLOAD + 1];
        let mut interval = FIRST_RETRY;
        let mut next_resend = (self.args.retries > 0).then(|| start + interval);
        let mut resent = 0;
        let mut unreachable = false;
        loop {
            let waiting = if segmented {
                !self.pending.is_empty()
            } else {
                !self.seen_tx
            };
            let resend_at = next_resend.filter(|_| waiting);
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Err(self.deadline_fail(unreachable)),
                _ = sleep_until(resend_at) => {
                    resent += 1;
                    self.trace(format!("* resend {resent}/{}\n", self.args.retries));
                    let mut again: Vec<usize> = if segmented {
                        self.pending.values().copied().collect()
                    } else {
                        vec![0]
                    };
                    again.sort_unstable();
                    for i in again {
                        self.send_udp(&sock, out, i).await?;
                    }
                    interval = interval.saturating_mul(2);
                    next_resend = (resent < self.args.retries).then(|| Instant::now() + interval);
                }
                r = sock.recv_from(&mut buf) => match r {
                    Ok((n, src)) => {
                        let data = &buf[..n];
                        self.src = src;
                        self.trace_bytes("< ", data);
                        let mut b = BytesMut::from(data);
                        let item = codec.decode(&mut b).map_err(Fail::io)?;
                        match item {
                            None => self.trace("* empty datagram ignored\n"),
                            Some(Err(e)) => self.on_garbage(&e, data)?,
                            Some(Ok(pdu)) => {
                                let acked = self.segment_acked(&pdu);
                                while next < out.len() && self.pending.len() < window {
                                    self.send_udp(&sock, out, next).await?;
                                    next += 1;
                                }
                                let step = if acked { Step::Continue } else { self.on_pdu(&pdu)? };
                                let (pdu, src, step) = match (step, self.release_held()) {
                                    (Step::Continue | Step::Held, Some((held, from))) => {
                                        let status = held.status().unwrap_or(0);
                                        (held, from, Step::Final(status))
                                    }
                                    (step, _) => (pdu, src, step),
                                };
                                match step {
                                    Step::Continue => {}
                                    Step::Held => {
                                        self.trace("* a reply before every segment is answered: held\n");
                                        self.held = Some((pdu, src));
                                    }
                                    Step::Enough => return Ok(Status::Ok),
                                    Step::Final(status) => {
                                        if !self.args.no_ack {
                                            let out = self.encode_ack(&mut codec, &pdu)?;
                                            // To where the reply came from (SPEC §9).
                                            sock.send_to(&out, src)
                                                .await
                                                .with_context(|| format!("sending the ACK to {src}"))?;
                                        }
                                        return Ok(self.verdict(status));
                                    }
                                }
                            }
                        }
                    }
                    // ICMP port unreachable, reported on a connected socket.
                    // Not fatal: a peer may come up before the deadline
                    // (with --retries); the timeout message says it.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        unreachable = true;
                        self.trace("* port unreachable\n");
                    }
                    Err(e) => return Err(Fail::io(anyhow!(e).context(format!("receiving from {}", self.dest)))),
                }
            }
        }
    }

    /// Send PDU `i` of `out` (a segment is then awaited as pending).
    async fn send_udp(&mut self, sock: &UdpSocket, out: &[Outgoing], i: usize) -> Result<(), Fail> {
        let o = &out[i];
        // A lone PDU is padded (SPEC §9, see `--no-pad`); segments are
        // already near the datagram budget.
        let padded = (out.len() == 1 && !self.args.no_pad)
            .then(|| crate::padding::pad(bytes::Bytes::copy_from_slice(&o.bytes)))
            .flatten();
        let bytes: &[u8] = padded.as_deref().unwrap_or(&o.bytes);
        self.trace_bytes("> ", bytes);
        sock.send_to(bytes, self.peer)
            .await
            .with_context(|| format!("sending to {}", self.dest))?;
        if out.len() > 1 {
            if let Some(m) = &o.message_id {
                self.pending.insert(m.clone(), i);
            }
        }
        Ok(())
    }

    async fn tcp(&mut self, addr: SocketAddr, out: &[Outgoing]) -> Result<Status, Fail> {
        let deadline = Instant::now() + self.args.timeout;
        let connect = async {
            match self.args.bind {
                None => TcpStream::connect(addr).await,
                Some(local) => {
                    let s = if local.is_ipv4() {
                        TcpSocket::new_v4()?
                    } else {
                        TcpSocket::new_v6()?
                    };
                    s.set_reuseaddr(true)?;
                    s.bind(local)?;
                    s.connect(addr).await
                }
            }
        };
        let stream = match tokio::time::timeout_at(deadline, connect).await {
            Err(_) => return Err(self.deadline_fail(false)),
            Ok(r) => r.with_context(|| format!("connecting to {}", self.dest))?,
        };
        let _ = stream.set_nodelay(true);
        if let Ok(me) = stream.local_addr() {
            self.trace(format!("* {} from {me}\n", self.dest));
        }
        let (read, mut write) = stream.into_split();
        // A stream needs no window: TCP paces the segments.
        for (i, o) in out.iter().enumerate() {
            self.trace_bytes("> ", &o.bytes);
            write
                .write_all(&o.bytes)
                .await
                .with_context(|| format!("sending to {}", self.dest))?;
            if let (true, Some(m)) = (out.len() > 1, &o.message_id) {
                self.pending.insert(m.clone(), i);
            }
        }
        if self.args.count == Some(0) {
            let _ = write.shutdown().await;
            return Ok(Status::Ok);
        }
        let mut codec = StreamCodec::new(ParseOptions::strict());
        let mut frames = FramedRead::new(read, codec.clone());
        let status = loop {
            let item = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return Err(self.deadline_fail(false)),
                item = frames.next() => item,
            };
            match item {
                Some(Ok(pdu)) => {
                    self.trace_bytes("< ", pdu.as_bytes());
                    let step = if self.segment_acked(&pdu) {
                        Step::Continue
                    } else {
                        self.on_pdu(&pdu)?
                    };
                    let (pdu, step) = match (step, self.release_held()) {
                        (Step::Continue | Step::Held, Some((held, _))) => {
                            let status = held.status().unwrap_or(0);
                            (held, Step::Final(status))
                        }
                        (step, _) => (pdu, step),
                    };
                    match step {
                        Step::Continue => {}
                        Step::Held => self.held = Some((pdu, addr)),
                        Step::Enough => break Status::Ok,
                        Step::Final(status) => {
                            if !self.args.no_ack {
                                let out = self.encode_ack(&mut codec, &pdu)?;
                                write
                                    .write_all(&out)
                                    .await
                                    .with_context(|| format!("sending the ACK to {}", self.dest))?;
                            }
                            break self.verdict(status);
                        }
                    }
                }
                Some(Err(CodecError::Parse { error, .. })) => {
                    let buffered = frames.read_buffer().clone();
                    self.trace_bytes("< ", &buffered);
                    self.on_garbage(&error, &buffered)?;
                    return Err(Fail::io(anyhow!(
                        "the stream from {} is out of sync after an invalid PDU",
                        self.dest
                    )));
                }
                Some(Err(e)) => {
                    return Err(Fail::io(
                        anyhow!(e).context(format!("receiving from {}", self.dest)),
                    ))
                }
                None => {
                    return Err(Fail::io(anyhow!(
                        "{} closed the connection before the final reply ({} PDUs received)",
                        self.dest,
                        self.received
                    )))
                }
            }
        };
        // Close our side and let the peer close its own, so that nothing
        // we leave unread turns the close into a reset that could destroy
        // the ACK before the peer reads it.
        let _ = write.shutdown().await;
        let _ = tokio::time::timeout(TCP_LINGER, async {
            while let Some(Ok(_)) = frames.next().await {}
        })
        .await;
        Ok(status)
    }
}

/// Sleep until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The unspecified address of `addr`'s family, port 0.
fn wildcard(addr: SocketAddr) -> SocketAddr {
    if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    }
}

#[cfg(test)]
mod tests {
    use super::{complete_head, to_wire};

    #[test]
    fn lf_becomes_crlf_and_length_is_added() {
        let w = to_wire(b"PUT /x ACORN/1.0\nTX-ID: 1\n\nhello\n");
        assert_eq!(
            w,
            b"PUT /x ACORN/1.0\r\nTX-ID: 1\r\nContent-Length: 6\r\n\r\nhello\n"
        );
    }

    #[test]
    fn crlf_input_and_given_length_are_kept() {
        let src = b"PUT /x ACORN/1.0\r\ncontent-length: 2\r\n\r\nhi";
        assert_eq!(to_wire(src), src);
        let src = b"REG / ACORN/1.0\r\nTX-ID: 1\r\n\r\n";
        assert_eq!(to_wire(src), src);
    }

    #[test]
    fn missing_empty_line_is_added() {
        let typed = complete_head(b"REG / ACORN/1.0\nTX-ID: 1\n");
        assert_eq!(&*typed, b"REG / ACORN/1.0\nTX-ID: 1\n\n");
        assert_eq!(to_wire(&typed), b"REG / ACORN/1.0\r\nTX-ID: 1\r\n\r\n");
        let typed = complete_head(b"REG / ACORN/1.0\nTX-ID: 1");
        assert_eq!(to_wire(&typed), b"REG / ACORN/1.0\r\nTX-ID: 1\r\n\r\n");
        // An empty line present: nothing added, the rest is the body.
        let typed = complete_head(b"REG / ACORN/1.0\n\nbody");
        assert_eq!(&*typed, b"REG / ACORN/1.0\n\nbody");
    }

    #[test]
    fn body_line_ends_are_not_touched() {
        let w = to_wire(b"PUT /x ACORN/1.0\n\na\nb\r\n");
        assert_eq!(w, b"PUT /x ACORN/1.0\r\nContent-Length: 5\r\n\r\na\nb\r\n");
    }
}
