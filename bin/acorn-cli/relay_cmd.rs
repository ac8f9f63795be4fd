//! `acorn-cli relay --listen ADDR --to ADDR`: a UDP relay that makes the
//! network bad on purpose — drops, duplicates, reorders and delays
//! datagrams at seeded random rates — so a peer can be tested on a lossy
//! link without root or kernel tools (netem).
//!
//! Each client (source address) that sends to `--listen` gets its own
//! upstream socket connected to `--to`, so the peer sees one address per
//! client and its replies find their way back. At most `--max-clients`
//! are kept; a new one evicts the least recently active. What happens to
//! each datagram is decided by [`acorn::relay::Impairer`] (one per
//! direction, both seeded from `--seed`); the datagrams held back are sent
//! from one task in deadline order, so a constant delay keeps the order.

use crate::{duration, listen_cmd::Stop, Status};
use acorn::relay::{Fate, Impairer, Impairments};
use acorn::runtime::Dest;
use anyhow::{anyhow, bail, Context as _};
use bytes::Bytes;
use serde_json::{json, Value};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `relay --help`, and the README's table (keep them in sync).
pub(crate) const EXIT_HELP: &str = "\
Exit status:
  0  stopped by Ctrl-C, SIGTERM or --exit-after (after the final report)
  2  usage error, or an address that cannot be bound

Report (stderr), every --report-every and once on exit, per direction
(client->server, server->client): datagrams received, relayed (copies
sent), dropped, duplicated, reordered (held back), send errors; clients
active, seen and evicted. With --json, one object per report:
{\"report\":\"periodic\"|\"final\",\"elapsed_s\",\"seed\",\"client_to_server\":{...},
\"server_to_client\":{...},\"clients\":{...},\"in_flight\"}.";

/// Largest datagram relayed.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams from upstream sockets queued for the relay task.
const DOWN_QUEUE: usize = 4096;

/// Pause after a receive error on an upstream socket (e.g. the peer's port
/// is closed and ICMP says so), so an error that repeats does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where clients send: HOST:PORT or udp://HOST:PORT (port 0 picks a
    /// free port; the one bound is printed).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// The peer to relay to: HOST:PORT or udp://HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    to: String,
    /// Probability a datagram is dropped: 0.05 or 5%.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    loss: f64,
    /// Probability a datagram is sent twice.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    duplicate: f64,
    /// Probability a datagram is held back (up to --reorder-delay) so later
    /// ones overtake it.
    #[arg(long, value_name = "RATE", default_value = "0", value_parser = rate)]
    reorder: f64,
    /// Delay of every datagram (e.g. 5ms).
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = duration::parse)]
    delay: Duration,
    /// Extra delay of each datagram, uniform between 0 and this.
    #[arg(long, value_name = "DURATION", default_value = "0", value_parser = duration::parse)]
    jitter: Duration,
    /// The most a reordered datagram is held back.
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = duration::parse)]
    reorder_delay: Duration,
    /// Seed of the random draws (the same seed and traffic give the same
    /// fates) [default: random, printed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Clients (source addresses) relayed at once; a new one evicts the
    /// least recently active.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_clients: usize,
    /// Print the counts this often (e.g. 1s), besides once on exit.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    report_every: Option<Duration>,
    /// Print the reports as one JSON object per line.
    #[arg(long)]
    json: bool,
    /// Stop after this long (for scripts), e.g. 30s.
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    exit_after: Option<Duration>,
}

/// A probability: `0.05` or `5%`.
fn rate(s: &str) -> Result<f64, String> {
    let (number, scale) = match s.trim().strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (s.trim(), 1.0),
    };
    let p = number
        .parse::<f64>()
        .map_err(|_| format!("`{s}` is not a number (e.g. 0.05 or 5%)"))?
        / scale;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("`{s}` is not between 0 and 1 (0% and 100%)"));
    }
    Ok(p)
}

/// `HOST:PORT` or `udp://HOST:PORT`.
fn udp_addr(what: &str, s: &str) -> anyhow::Result<SocketAddr> {
    match s.parse::<Dest>().map_err(|e| anyhow!("{what}: {e}"))? {
        Dest::Udp(a) => Ok(a),
        Dest::Tcp(_) => bail!("{what}: the relay is UDP only, not {s}"),
    }
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let listen = udp_addr("--listen", &args.listen)?;
    let to = udp_addr("--to", &args.to)?;
    if args.max_clients == 0 {
        bail!("--max-clients must be at least 1");
    }
    if args.report_every.is_some_and(|d| d.is_zero()) {
        bail!("--report-every must be longer than 0");
    }
    let cfg = Impairments {
        loss: args.loss,
        duplicate: args.duplicate,
        reorder: args.reorder,
        delay: args.delay,
        jitter: args.jitter,
        reorder_delay: args.reorder_delay,
    };
    cfg.validate()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(relay(args, cfg, listen, to))
}

/// What one direction did.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    received: u64,
    relayed: u64,
    dropped: u64,
    duplicated: u64,
    reordered: u64,
    send_errors: u64,
}

impl Counts {
    fn json(&self) -> Value {
        json!({
            "received": self.received,
            "relayed": self.relayed,
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "reordered": self.reordered,
            "send_errors": self.send_errors,
        })
    }

    fn text(&self) -> String {
        format!(
            "received {} relayed {} dropped {} duplicated {} reordered {}{}",
            self.received,
            self.relayed,
            self.dropped,
            self.duplicated,
            self.reordered,
            if self.send_errors > 0 {
                format!(" send errors {}", self.send_errors)
            } else {
                String::new()
            }
        )
    }
}

/// A datagram on its way out.
enum Out {
    /// To the peer, from a client's upstream socket.
    Up(Arc<UdpSocket>, Bytes),
    /// To a client, from the listening socket.
    Down(SocketAddr, Bytes),
}

/// A datagram held back until `at`; `n` keeps equal deadlines in order.
struct Held {
    at: Instant,
    n: u64,
    out: Out,
}

impl PartialEq for Held {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.n) == (o.at, o.n)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Held {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.n).cmp(&(o.at, o.n))
    }
}

/// A client and its upstream socket.
struct Client {
    sock: Arc<UdpSocket>,
    reader: tokio::task::JoinHandle<()>,
    last: u64,
}

struct Relay {
    front: Arc<UdpSocket>,
    to: SocketAddr,
    upstream_bind: SocketAddr,
    clients: HashMap<SocketAddr, Client>,
    max_clients: usize,
    clients_seen: u64,
    evicted: u64,
    activity: u64,
    down_tx: mpsc::Sender<(SocketAddr, Bytes)>,
    up_fate: Impairer,
    down_fate: Impairer,
    up: Counts,
    down: Counts,
    held: BinaryHeap<Reverse<Held>>,
    held_n: u64,
    seed: u64,
    started: Instant,
    json: bool,
}

async fn relay(
    args: &Args,
    cfg: Impairments,
    listen: SocketAddr,
    to: SocketAddr,
) -> anyhow::Result<Status> {
    let mut stop = Stop::new(args.exit_after)?;
    let front = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("binding udp://{listen}"))?;
    let bound = front.local_addr()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let upstream_ip = match (to.ip(), to.ip().is_loopback()) {
        (IpAddr::V4(_), true) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        (IpAddr::V4(_), false) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (IpAddr::V6(_), true) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        (IpAddr::V6(_), false) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    eprintln!("listening on udp://{bound}");
    eprintln!(
        "relaying to udp://{to}: loss {}, duplicate {}, reorder {} (held up to {}), \
         delay {} + jitter up to {}, seed {seed}",
        percent(cfg.loss),
        percent(cfg.duplicate),
        percent(cfg.reorder),
        ms(cfg.reorder_delay),
        ms(cfg.delay),
        ms(cfg.jitter)
    );
    let (down_tx, mut down_rx) = mpsc::channel(DOWN_QUEUE);
    let mut r = Relay {
        front: Arc::new(front),
        to,
        upstream_bind: SocketAddr::new(upstream_ip, 0),
        clients: HashMap::new(),
        max_clients: args.max_clients,
        clients_seen: 0,
        evicted: 0,
        activity: 0,
        down_tx,
        // One generator per direction: what happens to replies does not
        // depend on how they interleave with requests.
        up_fate: Impairer::new(cfg, seed),
        down_fate: Impairer::new(cfg, seed ^ 0x9e37_79b9_7f4a_7c15),
        up: Counts::default(),
        down: Counts::default(),
        held: BinaryHeap::new(),
        held_n: 0,
        seed,
        started: Instant::now(),
        json: args.json,
    };
    let mut report = args.report_every.map(|d| {
        let mut i = tokio::time::interval_at(Instant::now() + d, d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let front = r.front.clone();
    loop {
        r.send_due().await;
        let next = r.held.peek().map(|Reverse(h)| h.at);
        let tick = async {
            match report.as_mut() {
                Some(i) => i.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = front.recv_from(&mut buf) => match got {
                Ok((n, from)) => {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    r.on_client_datagram(from, data).await;
                }
                Err(e) => tracing::debug!(error = %e, "receive error on the listening socket"),
            },
            Some((client, data)) = down_rx.recv() => r.on_peer_datagram(client, data).await,
            _ = sleep_until(next) => {}
            _ = tick => r.report(false),
            why = stop.wait() => {
                eprintln!("acorn-cli: {why}; stopping the relay");
                break;
            }
        }
    }
    r.report(true);
    for (_, c) in r.clients.drain() {
        c.reader.abort();
    }
    Ok(Status::Ok)
}

/// A probability as a percentage, without float noise (`7%`, not
/// `7.000000000000001%`).
fn percent(p: f64) -> String {
    let s = format!("{:.4}", p * 100.0);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A duration in milliseconds, as the options take it (`0ms`, `2.5ms`).
fn ms(d: Duration) -> String {
    format!("{}ms", d.as_secs_f64() * 1000.0)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Relay {
    /// A datagram from a client: to the peer through its upstream socket.
    async fn on_client_datagram(&mut self, from: SocketAddr, data: Bytes) {
        self.activity += 1;
        let sock = match self.clients.get_mut(&from) {
            Some(c) => {
                c.last = self.activity;
                c.sock.clone()
            }
            None => match self.add_client(from).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(client = %from, error = %e, "no upstream socket");
                    self.up.received += 1;
                    self.up.send_errors += 1;
                    return;
                }
            },
        };
        let fate = self.up_fate.fate();
        self.up.received += 1;
        self.carry_out(fate, |data| Out::Up(sock.clone(), data), data, true)
            .await;
    }

    /// A datagram from the peer to `client`.
    async fn on_peer_datagram(&mut self, client: SocketAddr, data: Bytes) {
        self.activity += 1;
        if let Some(c) = self.clients.get_mut(&client) {
            c.last = self.activity;
        }
        let fate = self.down_fate.fate();
        self.down.received += 1;
        self.carry_out(fate, |data| Out::Down(client, data), data, false)
            .await;
    }

    async fn carry_out(&mut self, fate: Fate, make: impl Fn(Bytes) -> Out, data: Bytes, up: bool) {
        let counts = if up { &mut self.up } else { &mut self.down };
        match fate {
            Fate::Drop => {
                counts.dropped += 1;
                return;
            }
            Fate::Forward {
                duplicate,
                reordered,
                ..
            } => {
                counts.duplicated += u64::from(duplicate.is_some());
                counts.reordered += u64::from(reordered);
            }
        }
        let now = Instant::now();
        for delay in fate.copies() {
            let out = make(data.clone());
            if delay.is_zero() {
                self.send(out).await;
            } else {
                self.held_n += 1;
                self.held.push(Reverse(Held {
                    at: now + delay,
                    n: self.held_n,
                    out,
                }));
            }
        }
    }

    /// Send every held datagram whose time has come, in deadline order.
    async fn send_due(&mut self) {
        let now = Instant::now();
        while self.held.peek().is_some_and(|Reverse(h)| h.at <= now) {
            if let Some(Reverse(h)) = self.held.pop() {
                self.send(h.out).await;
            }
        }
    }

    async fn send(&mut self, out: Out) {
        let (res, counts) = match &out {
            Out::Up(sock, data) => (sock.send(data).await, &mut self.up),
            Out::Down(to, data) => (self.front.send_to(data, *to).await, &mut self.down),
        };
        match res {
            Ok(_) => counts.relayed += 1,
            Err(e) => {
                counts.send_errors += 1;
                tracing::debug!(error = %e, "relay send failed");
            }
        }
    }

    /// An upstream socket for a new client, evicting the least recently
    /// active one when full.
    async fn add_client(&mut self, client: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
        if self.clients.len() >= self.max_clients {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, c)| c.last)
                .map(|(a, _)| *a);
            if let Some(c) = oldest.and_then(|a| self.clients.remove(&a)) {
                c.reader.abort();
                self.evicted += 1;
            }
        }
        let sock = UdpSocket::bind(self.upstream_bind).await?;
        sock.connect(self.to).await?;
        let sock = Arc::new(sock);
        let reader = tokio::spawn(read_upstream(sock.clone(), client, self.down_tx.clone()));
        self.clients.insert(
            client,
            Client {
                sock: sock.clone(),
                reader,
                last: self.activity,
            },
        );
        self.clients_seen += 1;
        Ok(sock)
    }

    fn report(&self, last: bool) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if self.json {
            let v = json!({
                "report": if last { "final" } else { "periodic" },
                "elapsed_s": elapsed,
                "seed": self.seed,
                "client_to_server": self.up.json(),
                "server_to_client": self.down.json(),
                "clients": {
                    "active": self.clients.len(),
                    "seen": self.clients_seen,
                    "evicted": self.evicted,
                },
                "in_flight": self.held.len(),
            });
            eprintln!("{v}");
        } else {
            eprintln!(
                "relay {}{elapsed:.1}s: client->server {}; server->client {}; \
                 clients {} (seen {}, evicted {}); in flight {}",
                if last { "final " } else { "" },
                self.up.text(),
                self.down.text(),
                self.clients.len(),
                self.clients_seen,
                self.evicted,
                self.held.len()
            );
        }
    }
}

/// Forward what the peer sends to a client's upstream socket.
async fn read_upstream(
    sock: Arc<UdpSocket>,
    client: SocketAddr,
    tx: mpsc::Sender<(SocketAddr, Bytes)>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match sock.recv(&mut buf).await {
            Ok(n) => {
                if tx
                    .send((client, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(%client, error = %e, "upstream receive error");
                tokio::time::sleep(ERROR_PAUSE).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates() {
        assert_eq!(rate("0.05"), Ok(0.05));
        assert_eq!(rate("5%"), Ok(0.05));
        assert_eq!(rate("0"), Ok(0.0));
        assert_eq!(rate("100%"), Ok(1.0));
        assert_eq!(super::percent(0.07), "7%");
        assert_eq!(super::percent(0.0), "0%");
        assert_eq!(super::percent(0.125), "12.5%");
        for bad in ["", "x", "1.5", "-0.1", "150%", "5 %%"] {
            assert!(rate(bad).is_err(), "{bad:?}");
        }
    }
}
