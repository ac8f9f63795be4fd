//! PDUs per second through a pair of session engines joined in memory by
//! `acorn::sim::Network`, against the lossless ordered session as anchor.
//!
//! One criterion group, four cases, throughput in elements (PDUs put on
//! the simulated wire by both engines):
//! - `ordered_lossless` (the anchor), `unordered_lossless`;
//! - `ordered_loss5`, `unordered_loss5`: 5 % of datagrams lost, so the
//!   PDUs include ACK-driven and NACK-driven retransmissions and NACKs.
//!
//! One iteration is a whole session: open, `MESSAGES` requests with at most
//! `WINDOW` outstanding, each answered and the answer ACKed. Simulated time
//! costs nothing, so the figure is the engines' (and simulator's) CPU per
//! PDU. Every case is checked before it is timed: all requests delivered
//! (exactly once, in order for ordered sessions) and all replies received.
//!
//! Absolute times on a shared machine are noise, so after criterion
//! finishes the binary prints a table twice: PDUs/s from criterion's own
//! estimates of this run, and from an interleaved timing loop (the cases
//! take turns in short rounds, best round kept), each with its ratio to the
//! anchor.

use acorn::engine::{Config, Event, SessionHandle};
use acorn::sim::{LinkConfig, Network};
use acorn::wire::{PduBuilder, SessionMode};
mod common;

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use std::time::{Duration, Instant};

const MESSAGES: u64 = 500;
const WINDOW: u64 = 32;
const SEED: u64 = 5;

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    mode: SessionMode,
    loss: f64,
}

const CASES: [Case; 4] = [
    Case {
        name: "ordered_lossless",
        mode: SessionMode::Ordered,
        loss: 0.0,
    },
    Case {
        name: "unordered_lossless",
        mode: SessionMode::Unordered,
        loss: 0.0,
    },
    Case {
        name: "ordered_loss5",
        mode: SessionMode::Ordered,
        loss: 0.05,
    },
    Case {
        name: "unordered_loss5",
        mode: SessionMode::Unordered,
        loss: 0.05,
    },
];

/// What one session did.
struct Outcome {
    /// Datagrams both engines sent.
    pdus: u64,
    delivered: Vec<u64>,
    replies: u64,
}

/// One whole session over the simulated network.
fn session(case: Case) -> Outcome {
    let link = LinkConfig {
        delay: Duration::from_millis(5),
        loss: case.loss,
        ..LinkConfig::default()
    };
    let mut net = Network::new(SEED, link);
    let c = net.add_node(Config::default());
    let s = net.add_node(Config::default());
    let server = net.addr(s);
    let now = net.now();
    let handle = net
        .endpoint(c)
        .open_session(now, server, "/bench", case.mode)
        .expect("open");
    let deadline = net.now() + Duration::from_secs(600);
    let (mut open, mut closed) = (false, false);
    let (mut sent, mut in_flight, mut replies) = (0u64, 0u64, 0u64);
    let mut delivered = Vec::with_capacity(MESSAGES as usize);
    loop {
        for e in net.take_events(s) {
            if let Event::RequestReceived { id, pdu, .. } = e {
                let body = pdu.body();
                delivered.push(std::str::from_utf8(body).unwrap().parse().unwrap());
                let mut r = PduBuilder::reply(200, "OK").unwrap();
                r.body(pdu.body_bytes());
                let now = net.now();
                net.endpoint(s).respond(now, id, r).expect("respond");
            }
        }
        for e in net.take_events(c) {
            match e {
                Event::SessionOpened { .. } => open = true,
                Event::ReplyReceived { .. } => {
                    replies += 1;
                    in_flight -= 1;
                }
                Event::SessionClosed { .. } | Event::RequestTimedOut { .. } => closed = true,
                _ => {}
            }
        }
        while open && !closed && sent < MESSAGES && in_flight < WINDOW {
            let now = net.now();
            let mut p = PduBuilder::request("PUT", "/bench").unwrap();
            p.body(sent.to_string());
            net.endpoint(c)
                .send(now, SessionHandle(handle.0), p)
                .expect("send");
            sent += 1;
            in_flight += 1;
        }
        if replies == MESSAGES || closed || !net.step(deadline) {
            break;
        }
    }
    Outcome {
        pdus: net.stats().sent,
        delivered,
        replies,
    }
}

/// Run `case` once, check it did all its work, and return its PDU count
/// (the same on every run: the network is seeded).
fn checked_pdus(case: Case) -> u64 {
    let o = session(case);
    assert_eq!(o.replies, MESSAGES, "{}: every request answered", case.name);
    let mut d = o.delivered.clone();
    if case.mode == SessionMode::Unordered {
        d.sort_unstable();
    }
    assert_eq!(
        d,
        (0..MESSAGES).collect::<Vec<_>>(),
        "{}: delivered once (in order when ordered)",
        case.name
    );
    assert_eq!(session(case).pdus, o.pdus, "{}: deterministic", case.name);
    o.pdus
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");
    g.sample_size(30);
    for case in CASES {
        let pdus = checked_pdus(case);
        g.throughput(Throughput::Elements(pdus));
        g.bench_function(BenchmarkId::from_parameter(case.name), |b| {
            b.iter(|| black_box(session(black_box(case)).pdus))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);

/// Interleaved rounds: each case runs one session in turn; the best round
/// per case (neighbours' load only ever slows a round down).
fn best_rounds(rounds: usize) -> [f64; 4] {
    let mut best = [f64::INFINITY; 4];
    for _ in 0..rounds {
        for (i, case) in CASES.iter().enumerate() {
            let t = Instant::now();
            black_box(session(*case).pdus);
            best[i] = best[i].min(t.elapsed().as_nanos() as f64);
        }
    }
    best
}

fn print_table(source: &str, ns: &[f64; 4], pdus: &[u64; 4]) {
    println!("\n{source}:");
    println!(
        "| case | PDUs per session | PDUs/s | ratio to ordered_lossless |\n|---|---:|---:|---:|"
    );
    let rate = |i: usize| pdus[i] as f64 / (ns[i] * 1e-9);
    for (i, case) in CASES.iter().enumerate() {
        println!(
            "| {} | {} | {:.0} | {:.2} |",
            case.name,
            pdus[i],
            rate(i),
            rate(i) / rate(0)
        );
    }
}

fn main() {
    let Some(started) = common::run_criterion(benches) else {
        return;
    };
    let pdus = CASES.map(checked_pdus);
    println!("\n== engine throughput (same run; absolute rates on a shared machine are noise) ==");
    let est =
        CASES.map(|c| common::criterion_estimate("engine", c.name, started).unwrap_or(f64::NAN));
    match est {
        ns if ns.iter().all(|x| x.is_finite()) => print_table("criterion estimates", &ns, &pdus),
        _ => println!("criterion estimates: none from this run (was a filter given?)"),
    }
    best_rounds(3);
    print_table("best of 30 interleaved rounds", &best_rounds(30), &pdus);
}
