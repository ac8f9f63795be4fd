//! The stream codec against its anchor, the bare head parser, on the same
//! bytes: a buffer of pipelined typical PDUs (about 250 bytes, 8 headers,
//! a small JSON body).
//!
//! Contenders, in one criterion group:
//! - `bare`: [`parse_head`] on each PDU at its known boundaries plus the
//!   body slice ([`Head::into_pdu`] on a `Bytes::slice`): the least work
//!   that yields the same `Pdu`s;
//! - `codec`: [`StreamCodec::decode`] over the whole buffer until it runs
//!   dry: find each head end, parse, frame the body, `split_to().freeze()`;
//! - `codec_mss`: the codec fed 1460-byte segments (one TCP segment per
//!   read), which adds the copy into the read buffer a socket read does.
//!
//! `bare` and `codec` each get a freshly written copy of the buffer per
//! pass (made outside the timing), as bytes from a socket would be.
//!
//! The figure of merit is `codec / bare` (framing overhead, target <= 1.15),
//! printed after criterion twice: from criterion's estimates of this run and
//! from an interleaved loop in which the contenders take turns in short
//! rounds, so load from neighbours on a shared machine hits all of them.

use acorn::codec::StreamCodec;
use acorn::wire::{parse_head, ParseOptions, Pdu};
use bytes::{Bytes, BytesMut};
mod common;

use criterion::{black_box, criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use std::time::Instant;
use tokio_util::codec::Decoder;

/// PDUs in the pipelined buffer.
const PDUS: usize = 256;
/// A TCP segment on Ethernet.
const MSS: usize = 1460;
const GROUP: &str = "codec/pipelined_typical";
const CONTENDERS: [&str; 3] = ["bare", "codec", "codec_mss"];

/// A request opening an ordered session, as in `benches/parse.rs`: 8
/// headers and a 46-byte body; `Seq` varies per PDU.
fn typical(seq: u64) -> String {
    format!(
        "REG /path/to/whatever ACORN/1.0\r\n\
         Message-ID: 7f3c9a12-0001-4e5b-9a77-{seq:06}\r\n\
         TX-ID: tx-4711-0001\r\n\
         From: node1@192.168.0.1:7077\r\n\
         To: node2@192.168.0.2:7078\r\n\
         Seq: {seq}\r\n\
         Need-Seq: 12..17,19, 30\r\n\
         Request-Session-Mode: ordered\r\n\
         Content-Length: 46\r\n\
         \r\n\
         {{\"op\":\"subscribe\",\"topic\":\"sensors/7\",\"qos\":1}}"
    )
}

/// The pipelined buffer and each PDU's `[start, end)`.
struct Input {
    buf: Bytes,
    bounds: Vec<(usize, usize)>,
}

fn input() -> Input {
    let mut buf = Vec::new();
    let mut bounds = Vec::new();
    for i in 0..PDUS as u64 {
        let start = buf.len();
        buf.extend_from_slice(typical(1000 + i).as_bytes());
        bounds.push((start, buf.len()));
    }
    let input = Input {
        buf: Bytes::from(buf),
        bounds,
    };
    // Both contenders must produce the same PDUs.
    let mut from_codec = Vec::new();
    codec_whole(&mut BytesMut::from(&input.buf[..]), &mut |p| {
        from_codec.push(p)
    });
    let mut from_bare = Vec::new();
    bare(&input, &mut |p| from_bare.push(p));
    assert_eq!(from_codec.len(), PDUS);
    assert_eq!(from_codec, from_bare);
    input
}

impl Input {
    /// The same PDUs in a newly written buffer. Bytes arrive from the socket
    /// into memory the parser has not touched yet; both contenders get such
    /// a copy (made outside the timing), so neither gains from a buffer
    /// that stays hot in cache across passes.
    fn fresh(&self) -> Input {
        Input {
            buf: Bytes::copy_from_slice(&self.buf),
            bounds: self.bounds.clone(),
        }
    }
}

/// Parse each head at its known place and attach the body.
#[inline]
fn bare(input: &Input, sink: &mut impl FnMut(Pdu)) {
    let opts = ParseOptions::default();
    for &(start, end) in &input.bounds {
        let head = parse_head(&input.buf[start..end], &opts).expect("parses");
        debug_assert_eq!(start + head.len() + head.body_len(), end);
        sink(head.into_pdu(input.buf.slice(start..end)));
    }
}

/// Decode the whole buffer with the stream codec.
#[inline]
fn codec_whole(buf: &mut BytesMut, sink: &mut impl FnMut(Pdu)) {
    let mut codec = StreamCodec::default();
    loop {
        match codec.decode(buf) {
            Ok(Some(p)) => sink(p),
            Ok(None) => break,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Feed the codec one segment at a time, as socket reads would.
#[inline]
fn codec_segments(input: &Input, sink: &mut impl FnMut(Pdu)) {
    let mut codec = StreamCodec::default();
    let mut buf = BytesMut::with_capacity(8 * 1024);
    for seg in input.buf.chunks(MSS) {
        buf.extend_from_slice(seg);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => sink(p),
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// What the sink does with each PDU: look at it, then drop it.
#[inline]
fn consume(acc: &mut usize) -> impl FnMut(Pdu) + '_ {
    move |p| *acc += p.header_count() + p.body().len()
}

fn bench(c: &mut Criterion) {
    let input = input();
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Bytes(input.buf.len() as u64));
    g.bench_function(BenchmarkId::from_parameter("bare"), |b| {
        b.iter_batched_ref(
            || input.fresh(),
            |fresh| {
                let mut acc = 0;
                bare(black_box(fresh), &mut consume(&mut acc));
                acc
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function(BenchmarkId::from_parameter("codec"), |b| {
        b.iter_batched_ref(
            || BytesMut::from(&input.buf[..]),
            |buf| {
                let mut acc = 0;
                codec_whole(black_box(buf), &mut consume(&mut acc));
                acc
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function(BenchmarkId::from_parameter("codec_mss"), |b| {
        b.iter(|| {
            let mut acc = 0;
            codec_segments(black_box(&input), &mut consume(&mut acc));
            acc
        })
    });
    g.finish();
}

criterion_group!(benches, bench);

/// Nanoseconds per pass over the buffer, in [`CONTENDERS`] order.
type Times = [f64; 3];

/// Rounds of `passes` passes of each contender in turn; per contender the
/// round at the 10th percentile. Short rounds and a low percentile keep the
/// figure to the rounds no neighbour interrupted: on a loaded shared
/// machine the median mostly measures the scheduler. Fresh input copies are made before a round starts, as
/// criterion's `iter_batched_ref` does.
fn interleaved(input: &Input, rounds: usize, passes: usize) -> Times {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for _ in 0..rounds {
        let mut acc = 0usize;
        let fresh: Vec<Input> = (0..passes).map(|_| input.fresh()).collect();
        let t = Instant::now();
        for f in &fresh {
            bare(black_box(f), &mut consume(&mut acc));
        }
        samples[0].push(t.elapsed().as_nanos() as f64 / passes as f64);
        drop(fresh);

        let mut bufs: Vec<BytesMut> = (0..passes)
            .map(|_| BytesMut::from(&input.buf[..]))
            .collect();
        let t = Instant::now();
        for buf in &mut bufs {
            codec_whole(black_box(buf), &mut consume(&mut acc));
        }
        samples[1].push(t.elapsed().as_nanos() as f64 / passes as f64);
        drop(bufs);

        let t = Instant::now();
        for _ in 0..passes {
            codec_segments(black_box(input), &mut consume(&mut acc));
        }
        samples[2].push(t.elapsed().as_nanos() as f64 / passes as f64);
        black_box(acc);
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 10]
    })
}

fn print_ratios(source: &str, bytes: usize, t: &Times) {
    let mbs = |ns: f64| bytes as f64 / ns * 1e9 / 1e6;
    println!(
        "{source:<12} bare {:>6.0} MB/s  codec {:>6.0} MB/s  codec_mss {:>6.0} MB/s  \
         codec/bare {:>5.3} (target <= 1.15)  codec_mss/bare {:>5.3}",
        mbs(t[0]),
        mbs(t[1]),
        mbs(t[2]),
        t[1] / t[0],
        t[2] / t[0],
    );
}

/// One timed unit of each contender, kept out of line so an instruction
/// counter can attribute exactly this work (`valgrind --tool=callgrind
/// --toggle-collect='codec::pass_*'`).
#[inline(never)]
fn pass_bare(input: &Input) -> usize {
    let mut acc = 0;
    bare(input, &mut consume(&mut acc));
    acc
}

#[inline(never)]
fn pass_codec(buf: &mut BytesMut) -> usize {
    let mut acc = 0;
    codec_whole(buf, &mut consume(&mut acc));
    acc
}

#[inline(never)]
fn pass_codec_mss(input: &Input) -> usize {
    let mut acc = 0;
    codec_segments(input, &mut consume(&mut acc));
    acc
}

/// `ACORN_BENCH_LOOP=<contender>/<passes>`: run one contender over fresh
/// copies of the buffer and exit, without criterion. Instruction counts do
/// not depend on the neighbours' load:
/// `valgrind --tool=callgrind --toggle-collect='codec::pass_*' <bench binary>`
/// gives the instructions of exactly `passes` passes.
fn fixed_loop(spec: &str) {
    let (who, n) = spec
        .split_once('/')
        .unwrap_or_else(|| panic!("ACORN_BENCH_LOOP=<contender>/<passes>, got {spec:?}"));
    let n: usize = n.parse().expect("pass count");
    let input = input();
    let mut acc = 0usize;
    for _ in 0..n {
        acc += match who {
            "bare" => pass_bare(black_box(&input.fresh())),
            "codec" => pass_codec(black_box(&mut BytesMut::from(&input.buf[..]))),
            "codec_mss" => pass_codec_mss(black_box(&input)),
            other => panic!("unknown contender {other:?}"),
        };
    }
    println!("{acc}");
}

fn main() {
    let Some(started) = common::fixed_loop_or_criterion(fixed_loop, benches) else {
        return;
    };
    let input = input();
    let bytes = input.buf.len();
    println!(
        "\n== Codec framing overhead: {PDUS} pipelined PDUs of {} bytes ({bytes} bytes per pass) ==",
        bytes / PDUS
    );
    let est = CONTENDERS.map(|id| common::criterion_estimate(GROUP, id, started));
    match est {
        [Some(a), Some(b), Some(c)] => print_ratios("criterion", bytes, &[a, b, c]),
        _ => println!("criterion    (no estimates from this run; was a filter given?)"),
    }
    interleaved(&input, 20, 4);
    let t = interleaved(&input, 2001, 4);
    print_ratios("interleaved", bytes, &t);
}
