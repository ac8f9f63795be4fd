//! The Acorn parser against its anchor, `httparse`, on the same bytes.
//!
//! Each PDU is benchmarked three ways in one criterion group, so the numbers
//! come from the same run on the same (shared, noisy) machine:
//! - `httparse`: the PDU with its version token swapped for `HTTP/1.1`,
//!   parsed into a `[httparse::EMPTY_HEADER; 16]` array;
//! - `acorn_raw`: [`parse_datagram`] (start line, headers, body framing);
//! - `acorn_typed`: `parse_datagram` plus the typed decode of `Seq`,
//!   `Need-Seq` and `Request-Session-Mode`.
//!
//! Absolute times on a shared machine are noise, so after criterion finishes
//! the binary prints ratios twice: from criterion's own estimates of this
//! run, and from an interleaved timing loop (the three contenders take turns
//! in short rounds, so a burst of load from a neighbour hits all of them).
//! Targets: `acorn_raw / httparse <= 1.0`, `acorn_typed / acorn_raw <= 1.3`.

use acorn::wire::{parse_datagram, ParseOptions, PduRef, SessionMode};
mod common;

use criterion::{black_box, criterion_group, BenchmarkId, Criterion, Throughput};
use std::time::Instant;

/// One benchmark input: the Acorn bytes and the same PDU as HTTP/1.1.
struct Case {
    name: &'static str,
    acorn: Vec<u8>,
    http: Vec<u8>,
    /// Whether the start line is a reply (httparse::Response) or a request.
    reply: bool,
    /// More than 16 headers: httparse gets a 32-header array.
    wide: bool,
}

/// An ACK as a session sends it after every PDU: two headers, no body.
const SHORT: &str = "ACORN/1.0 000 ACK\r\nTX-ID: tx-1\r\nSeq: 7\r\n\r\n";

/// A request opening an ordered session: about 250 bytes, 8 headers.
const TYPICAL: &str = "REG /path/to/whatever ACORN/1.0\r\n\
Message-ID: 7f3c9a12-0001-4e5b-9a77-msg\r\n\
TX-ID: tx-4711-0001\r\n\
From: node1@192.168.0.1:7077\r\n\
To: node2@192.168.0.2:7078\r\n\
Seq: 1222\r\n\
Need-Seq: 12..17,19, 30\r\n\
Request-Session-Mode: ordered\r\n\
Content-Length: 46\r\n\
\r\n\
{\"op\":\"subscribe\",\"topic\":\"sensors/7\",\"qos\":1}";

/// `TYPICAL` with 22 more headers (a relay's trace and extension headers),
/// 30 in all, the session headers spread among them: past the eight whose
/// name lengths the first index word holds.
fn many_headers() -> String {
    let mut lines: Vec<String> = TYPICAL
        .split("\r\n")
        .take_while(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let extra = [
        "Via: relay-a@10.0.0.1:7077",
        "Via: relay-b@10.0.0.2:7077",
        "X-Trace-Id: 4bf92f3577b34da6a3ce929d0e0e4736",
        "X-Span-Id: 00f067aa0ba902b7",
        "X-Sampled: 1",
        "X-Tenant: acme",
        "X-Region: eu-west-1",
        "X-Zone: b",
        "X-Priority: 3",
        "X-Client: acorn-cli/0.1.0",
        "X-Request-Start: 1733289600123",
        "X-Forwarded-For: 192.168.0.1",
        "X-Hop-Count: 2",
        "X-Deadline-Ms: 1500",
        "X-Retry: 0",
        "X-Route: sensors",
        "X-Shard: 7",
        "X-Feature: batch",
        "X-Build: 2026.12.04",
        "X-Checksum: 9a77",
        "X-Debug: off",
        "Date: Fri, 04 Dec 2026 04:00:00 GMT",
    ];
    // Keep the start line first and the session headers where a relay
    // appending its own would leave them: among and after the extras.
    let (start, own) = lines.split_at_mut(1);
    let mut out: Vec<String> = start.to_vec();
    for (i, x) in extra.iter().enumerate() {
        out.push((*x).to_owned());
        if i % 3 == 2 {
            if let Some(h) = own.iter_mut().find(|h| !h.is_empty()) {
                out.push(std::mem::take(h));
            }
        }
    }
    out.extend(own.iter().filter(|h| !h.is_empty()).cloned());
    lines.clear();
    let body = TYPICAL.split("\r\n\r\n").nth(1).expect("a body");
    format!("{}\r\n\r\n{body}", out.join("\r\n"))
}

fn cases() -> Vec<Case> {
    let many: &'static str = Box::leak(many_headers().into_boxed_str());
    [
        ("short", SHORT, true),
        ("typical", TYPICAL, false),
        ("many", many, false),
    ]
    .into_iter()
    .map(|(name, text, reply)| {
        let acorn = text.as_bytes().to_vec();
        let http = text.replacen("ACORN/1.0", "HTTP/1.1", 1).into_bytes();
        let case = Case {
            name,
            wide: name == "many",
            acorn,
            http,
            reply,
        };
        check(&case);
        case
    })
    .collect()
}

/// Both parsers must accept the case and see the same head, so the
/// comparison is about the same work.
fn check(c: &Case) {
    let opts = ParseOptions::default();
    let pdu = parse_datagram(&c.acorn, &opts).expect("the bench PDU parses");
    let head = httparse_head(c).expect("httparse accepts the bench PDU");
    // "HTTP/1.1" is one byte shorter than "ACORN/1.0".
    assert_eq!(head + 1, pdu.head().len(), "{}: same head", c.name);
    typed(&c.acorn, &opts);
}

/// httparse over the HTTP/1.1 twin; returns the head length. A header
/// array just big enough for the case (16, or 32 for `many`), as a caller
/// sizes it: a bigger one would only add its initialisation.
#[inline]
fn httparse_head(c: &Case) -> Option<usize> {
    if c.wide {
        httparse_into::<32>(c)
    } else {
        httparse_into::<16>(c)
    }
}

#[inline(always)]
fn httparse_into<const N: usize>(c: &Case) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; N];
    let status = if c.reply {
        httparse::Response::new(&mut headers).parse(&c.http)
    } else {
        httparse::Request::new(&mut headers).parse(&c.http)
    };
    match status {
        Ok(httparse::Status::Complete(n)) => Some(n),
        _ => None,
    }
}

#[inline]
fn raw(buf: &[u8], opts: &ParseOptions) -> usize {
    parse_datagram(buf, opts).map_or(0, |p| p.header_count())
}

/// Parse, then decode the session headers an engine reads on every PDU.
#[inline]
fn typed(buf: &[u8], opts: &ParseOptions) -> u64 {
    // Borrowed from the result, as `raw` reads it: moving the PDU out would
    // add a copy of its layout that has nothing to do with decoding.
    let parsed = parse_datagram(buf, opts);
    let pdu = parsed.as_ref().expect("parses");
    read_seq(pdu) ^ read_need_seq(pdu) ^ read_mode(pdu)
}

#[inline]
fn read_seq(pdu: &PduRef) -> u64 {
    pdu.seq().expect("Seq").unwrap_or(0)
}

#[inline]
fn read_need_seq(pdu: &PduRef) -> u64 {
    // Read in place: moving the set out of its `Result` is a copy the
    // decode does not need.
    let need = pdu.need_seq();
    let need = need.as_ref().expect("Need-Seq").as_ref();
    need.map_or(0, |l| l.range_count() as u64)
}

#[inline]
fn read_mode(pdu: &PduRef) -> u64 {
    u64::from(pdu.request_session_mode().expect("mode") == Some(SessionMode::Ordered))
}

/// Parse, then one typed accessor (`fixed_loop` only).
#[inline]
fn one_accessor(buf: &[u8], opts: &ParseOptions, read: impl Fn(&PduRef) -> u64) -> u64 {
    let parsed = parse_datagram(buf, opts);
    read(parsed.as_ref().expect("parses"))
}

fn bench(c: &mut Criterion) {
    let opts = ParseOptions::default();
    for case in cases() {
        let mut g = c.benchmark_group(format!("parse/{}", case.name));
        g.throughput(Throughput::Bytes(case.acorn.len() as u64));
        g.bench_function(BenchmarkId::from_parameter("httparse"), |b| {
            b.iter(|| httparse_head(black_box(&case)))
        });
        g.bench_function(BenchmarkId::from_parameter("acorn_raw"), |b| {
            b.iter(|| raw(black_box(&case.acorn), black_box(&opts)))
        });
        g.bench_function(BenchmarkId::from_parameter("acorn_typed"), |b| {
            b.iter(|| typed(black_box(&case.acorn), black_box(&opts)))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);

const CONTENDERS: [&str; 3] = ["httparse", "acorn_raw", "acorn_typed"];

/// Nanoseconds per call of each contender, in [`CONTENDERS`] order.
type Times = [f64; 3];

/// Interleaved timing: rounds of `iters` calls of each contender in turn.
/// Returns, per contender, the best round and the median round. On a
/// shared machine a round is only ever slowed down by the neighbours, never
/// sped up, so the best of many short rounds is the steadiest estimate of
/// what a call costs; the median shows how much the load moved things.
fn interleaved(case: &Case, rounds: usize, iters: u32) -> (Times, Times) {
    let opts = ParseOptions::default();
    let (best, median) = interleaved_calls(
        rounds,
        iters,
        &[
            &|| httparse_head(black_box(case)).unwrap_or(0) as u64,
            &|| raw(black_box(&case.acorn), black_box(&opts)) as u64,
            &|| typed(black_box(&case.acorn), black_box(&opts)),
        ],
    );
    ([0, 1, 2].map(|i| best[i]), [0, 1, 2].map(|i| median[i]))
}

/// [`interleaved`] over any calls: per call, the best and the median round
/// in nanoseconds per call.
fn interleaved_calls(
    rounds: usize,
    iters: u32,
    calls: &[&dyn Fn() -> u64],
) -> (Vec<f64>, Vec<f64>) {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); calls.len()];
    let time = |f: &dyn Fn() -> u64| {
        let t = Instant::now();
        let mut acc = 0u64;
        for _ in 0..iters {
            acc = acc.wrapping_add(f());
        }
        black_box(acc);
        t.elapsed().as_nanos() as f64 / f64::from(iters)
    };
    for _ in 0..rounds {
        for (s, f) in samples.iter_mut().zip(calls) {
            s.push(time(*f));
        }
    }
    for s in &mut samples {
        s.sort_by(f64::total_cmp);
    }
    (
        samples.iter().map(|s| s[0]).collect(),
        samples.iter().map(|s| s[s.len() / 2]).collect(),
    )
}

fn print_ratios(source: &str, name: &str, t: &Times) {
    println!(
        "{source:<13} {name:<8} httparse {:>7.1} ns  acorn_raw {:>7.1} ns  acorn_typed {:>7.1} ns  \
         raw/httparse {:>5.2} (target <= 1.00)  typed/raw {:>5.2} (+{:>4.1} %, target <= +30 %)",
        t[0],
        t[1],
        t[2],
        t[1] / t[0],
        t[2] / t[1],
        (t[2] / t[1] - 1.0) * 100.0,
    );
}

/// `ACORN_BENCH_LOOP=<case>/<contender>/<iterations>`: run one contender
/// that many times and exit, without criterion. Besides the three
/// contenders, `acorn_seq`, `acorn_need_seq` and `acorn_mode` parse and
/// read one typed header, to see what each adds. For instruction counts that
/// do not depend on the neighbours' load:
/// `valgrind --tool=callgrind <bench binary>` once with 1 and once with
/// 100001 iterations; the difference divided by 100000 is the cost of one call.
/// `ACORN_BENCH_LOOP=rounds/<n>` runs [`rounds_only`] instead.
fn fixed_loop(spec: &str) {
    if let Some(rounds) = spec.strip_prefix("rounds/") {
        return rounds_only(rounds.parse::<usize>().expect("round count").max(1));
    }
    let mut parts = spec.split('/');
    let (Some(case), Some(who), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("ACORN_BENCH_LOOP=<case>/<contender>/<iterations>, got {spec:?}");
    };
    let n: u64 = n.parse().expect("iteration count");
    let case = cases()
        .into_iter()
        .find(|c| c.name == case)
        .expect("case is short, typical or many");
    let opts = ParseOptions::default();
    let mut acc = 0u64;
    for _ in 0..n {
        acc = acc.wrapping_add(match who {
            "httparse" => httparse_head(black_box(&case)).unwrap_or(0) as u64,
            "acorn_raw" => raw(black_box(&case.acorn), black_box(&opts)) as u64,
            "acorn_typed" => typed(black_box(&case.acorn), black_box(&opts)),
            // One accessor at a time, to see what each adds.
            "acorn_seq" => one_accessor(black_box(&case.acorn), black_box(&opts), read_seq),
            "acorn_need_seq" => {
                one_accessor(black_box(&case.acorn), black_box(&opts), read_need_seq)
            }
            "acorn_mode" => one_accessor(black_box(&case.acorn), black_box(&opts), read_mode),
            other => panic!("unknown contender {other:?}"),
        });
    }
    println!("{acc}");
}

/// `ACORN_BENCH_LOOP=rounds/<n>`: only the interleaved rounds, `n` of
/// them per case: a quick look at the ratios while changing the parser,
/// steadier than timing whole processes and much shorter than criterion.
fn rounds_only(rounds: usize) {
    let opts = ParseOptions::default();
    for case in cases() {
        let (acorn, opts) = (&case.acorn, &opts);
        let calls: [(&str, &dyn Fn() -> u64); 5] = [
            ("acorn_raw", &|| {
                raw(black_box(acorn), black_box(opts)) as u64
            }),
            ("acorn_seq", &|| {
                one_accessor(black_box(acorn), black_box(opts), read_seq)
            }),
            ("acorn_need_seq", &|| {
                one_accessor(black_box(acorn), black_box(opts), read_need_seq)
            }),
            ("acorn_mode", &|| {
                one_accessor(black_box(acorn), black_box(opts), read_mode)
            }),
            ("acorn_typed", &|| typed(black_box(acorn), black_box(opts))),
        ];
        // The accessors alone, on a PDU parsed once: what decoding costs
        // without the parse around it.
        let pre = parse_datagram(acorn, opts).expect("parses");
        let decode_only: [(&str, &dyn Fn() -> u64); 4] = [
            ("Seq", &|| read_seq(black_box(&pre))),
            ("Need-Seq", &|| read_need_seq(black_box(&pre))),
            ("mode", &|| read_mode(black_box(&pre))),
            ("all three", &|| {
                let p = black_box(&pre);
                read_seq(p) ^ read_need_seq(p) ^ read_mode(p)
            }),
        ];
        let fns: Vec<&dyn Fn() -> u64> = decode_only.iter().map(|c| c.1).collect();
        let (_, median) = interleaved_calls(rounds, 2_000, &fns);
        let parts: Vec<String> = decode_only
            .iter()
            .zip(&median)
            .map(|(c, t)| format!("{} {t:.1} ns", c.0))
            .collect();
        println!("decode only   {:<8} {}", case.name, parts.join("  "));
        let fns: Vec<&dyn Fn() -> u64> = calls.iter().map(|c| c.1).collect();
        interleaved_calls(50, 2_000, &fns);
        let (best, median) = interleaved_calls(rounds, 2_000, &fns);
        let line = |label: &str, t: &[f64]| {
            let parts: Vec<String> = calls
                .iter()
                .zip(t)
                .skip(1)
                .map(|(c, x)| format!("{} +{:.1} %", c.0, (x / t[0] - 1.0) * 100.0))
                .collect();
            println!(
                "{label:<13} {:<8} acorn_raw {:>6.1} ns  {}",
                case.name,
                t[0],
                parts.join("  ")
            );
        };
        line("best round", &best);
        line("median round", &median);
    }
}

fn main() {
    let Some(started) = common::fixed_loop_or_criterion(fixed_loop, benches) else {
        return;
    };

    println!("\n== Ratios (same run; absolute times on a shared machine are noise) ==");
    for case in cases() {
        let group = format!("parse/{}", case.name);
        let est = CONTENDERS
            .map(|id| common::criterion_estimate(&group, id, started).unwrap_or(f64::NAN));
        match est {
            t if t.iter().all(|x| x.is_finite()) => print_ratios("criterion", case.name, &t),
            _ => println!(
                "criterion     {:<8} (no estimates from this run; was a filter given?)",
                case.name
            ),
        }
        // Warm up, then a few seconds of short interleaved rounds.
        interleaved(&case, 50, 2_000);
        let (best, median) = interleaved(&case, 1001, 2_000);
        print_ratios("best round", case.name, &best);
        print_ratios("median round", case.name, &median);
    }
}
