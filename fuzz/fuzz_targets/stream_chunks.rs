//! Arbitrary bytes through `StreamCodec` in chunks whose sizes come from the
//! input: the framing must not depend on the split. Fed all at once and fed
//! in chunks, the decoder must return the same PDUs and end the same way
//! (clean end, the same framing error at the same place, or the same
//! truncation). Every decoded PDU must also be exactly what the datagram
//! parser makes of its bytes, and the work must stay linear.
#![no_main]

use acorn::codec::{CodecError, StreamCodec};
use acorn::wire::{Limits, ParseError, ParseOptions, Pdu};
use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

/// The input, read byte by byte so a seed is easy to write (and stays
/// what it says under any `arbitrary` version): byte 0 holds the flags
/// (bit 0 lenient, bit 1 tight), bytes 1..=4 the limit seed, byte 5 the
/// number of chunk sizes that follow (at most 15), and everything after
/// them is the stream. Six zero bytes and then a stream is the stream fed
/// whole and byte by byte, with the default limits.
///
/// (The derived layout this replaces read `data: Vec<u8>` with a
/// "continue" byte before each element, as `arbitrary` 1.5 does for every
/// collection, even the last field: a PDU file appended to a prefix was
/// read as alternate flag and data bytes, and ended at the first even
/// byte, so the 282 seeds made of corpus PDUs decoded to a handful of
/// near-empty streams.)
#[derive(Debug)]
struct Input {
    lenient: bool,
    /// Small limits (derived from `limit_seed`), so the limit paths are
    /// reached with short inputs.
    tight: bool,
    limit_seed: [u8; 4],
    /// Chunk sizes, used in turn (0 means 1).
    chunks: Vec<u8>,
    data: Vec<u8>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let flags: u8 = u.arbitrary()?;
        let limit_seed: [u8; 4] = u.arbitrary()?;
        let n = usize::from(u.arbitrary::<u8>()? % 16).min(u.len());
        let chunks = u.bytes(n)?.to_vec();
        let data = u.bytes(u.len())?.to_vec();
        Ok(Input {
            lenient: flags & 1 != 0,
            tight: flags & 2 != 0,
            limit_seed,
            chunks,
            data,
        })
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// How a decoding run ended.
#[derive(Debug, PartialEq)]
enum End {
    Clean,
    Parse(ParseError, u64),
    Truncated(usize, Option<usize>, u64),
}

fn end_of(e: CodecError) -> End {
    match e {
        CodecError::Parse { error, pdu_start } => End::Parse(error, pdu_start),
        CodecError::TruncatedAtEof {
            buffered,
            expected,
            pdu_start,
        } => End::Truncated(buffered, expected, pdu_start),
        other => panic!("the stream decoder produced {other}"),
    }
}

/// Decode `data` fed in pieces of the given sizes (cycled), then EOF.
fn run(opts: ParseOptions, data: &[u8], sizes: &[usize]) -> (Vec<Pdu>, End, StreamCodec) {
    let mut codec = StreamCodec::new(opts);
    let mut buf = BytesMut::new();
    let mut pdus = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < data.len() {
        let n = sizes[i % sizes.len()].min(data.len() - pos);
        i += 1;
        buf.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => pdus.push(p),
                Ok(None) => break,
                Err(e) => {
                    let end = end_of(e);
                    // Failed for good: the same error again.
                    assert_eq!(end_of(codec.decode(&mut buf).unwrap_err()), end);
                    return (pdus, end, codec);
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(p)) => pdus.push(p),
            Ok(None) => return (pdus, End::Clean, codec),
            Err(e) => return (pdus, end_of(e), codec),
        }
    }
}

fuzz_target!(|input: Input| {
    let mut opts = ParseOptions {
        allow_bare_lf: input.lenient,
        ..ParseOptions::default()
    };
    if input.tight {
        let s = input.limit_seed;
        opts.limits = Limits {
            max_line_len: 4 + usize::from(s[0] % 64),
            max_headers: usize::from(s[1] % 8),
            max_head_len: 8 + usize::from(s[2]),
            max_body_len: usize::from(s[3]),
            max_seq_items: 8,
        };
    }
    let data = &input.data;
    let (whole, whole_end, codec) = run(opts, data, &[data.len().max(1)]);
    let sizes: Vec<usize> = if input.chunks.is_empty() {
        vec![1]
    } else {
        input
            .chunks
            .iter()
            .map(|&c| usize::from(c).max(1))
            .collect()
    };
    let (split, split_end, split_codec) = run(opts, data, &sizes);
    assert_eq!(whole, split, "PDUs depend on the split");
    assert_eq!(whole_end, split_end, "the outcome depends on the split");

    // Linear work: each head byte scanned at most once and parsed at most
    // twice, bodies neither; a final failed parse sees at most the input.
    let n = data.len() as u64;
    for c in [&codec, &split_codec] {
        assert!(c.bytes_scanned() <= n);
        assert!(c.bytes_parsed() <= 3 * n);
    }

    // A stream-framed PDU is also a valid datagram, parsed identically.
    for p in &whole {
        let again = Pdu::parse_datagram(p.bytes().clone(), &opts)
            .unwrap_or_else(|e| panic!("decoded PDU is not a datagram: {e}"));
        assert_eq!(&again, p);
    }
});
