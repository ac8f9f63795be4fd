//! `SeqList` against a model: a set of "cells" over a small domain that
//! still reaches both ends of `u64`.
//!
//! The domain is the 64 smallest Seqs (`0..=63`), the 64 largest
//! (`u64::MAX - 63..=u64::MAX`) and one cell for everything between them
//! (`64..=u64::MAX - 64`). Every operation takes its numbers from the two
//! ends only, so the middle cell is always wholly in or wholly out: the
//! model (a `BTreeSet` of cell numbers) is then exact. After every
//! operation the list must equal the model in its ranges, count, first
//! Seq, membership of every domain value and of probes inside the middle,
//! and its wire form (`Display`) must be the model's and parse back to the
//! same list. A separate operation parses arbitrary list text (digits,
//! dots, commas, blanks) through a PDU's `Need-Seq` header and compares
//! with a direct reading of the ABNF (`seq-list`) and a naive merge.
//!
//! Input: a sequence of records, one operation byte (taken modulo 6) and
//! its arguments (see `Op`); the run ends with the input (a record cut
//! short reads zeros). A seed can therefore be written by hand:
//! `05 <max items> <len> <text>` parses `<text>` (`fuzz/seeds.sh`).
#![no_main]

use acorn::wire::{ErrorKind, ParseOptions, Pdu, SeqList};
use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

/// Cells of the model: `0..=63` low values, `MIDDLE`, then `65..=128` the
/// 64 highest values.
const MIDDLE: u8 = 64;

/// The domain value an argument byte names (the two ends of `u64`).
fn value(k: u8) -> u64 {
    let k = k % 128;
    if k < 64 {
        u64::from(k)
    } else {
        u64::MAX - 127 + u64::from(k)
    }
}

/// The cell holding `value(k)`.
fn cell(k: u8) -> u8 {
    let k = k % 128;
    if k < 64 {
        k
    } else {
        k + 1
    }
}

/// The Seqs a cell stands for.
fn cell_span(c: u8) -> (u64, u64) {
    match c {
        c if c < MIDDLE => (u64::from(c), u64::from(c)),
        MIDDLE => (64, u64::MAX - 64),
        c => {
            let v = value(c - 1);
            (v, v)
        }
    }
}

#[derive(Debug)]
enum Op {
    Insert(u8),
    InsertRange(u8, u8),
    RemoveThrough(u8),
    Truncate(u8),
    FromRanges(Vec<(u8, u8)>),
    Parse { max_items: u8, text: Vec<u8> },
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let byte = |u: &mut Unstructured<'_>| u.arbitrary::<u8>();
    Ok(match byte(u)? % 6 {
        0 => Op::Insert(byte(u)?),
        1 => Op::InsertRange(byte(u)?, byte(u)?),
        2 => Op::RemoveThrough(byte(u)?),
        3 => Op::Truncate(byte(u)? % 8),
        4 => {
            let n = byte(u)? % 8;
            let mut v = Vec::new();
            for _ in 0..n {
                v.push((byte(u)?, byte(u)?));
            }
            Op::FromRanges(v)
        }
        _ => {
            let max_items = byte(u)?;
            let len = usize::from(byte(u)?).min(u.len());
            Op::Parse {
                max_items,
                text: u.bytes(len)?.to_vec(),
            }
        }
    })
}

/// The model's ranges: runs of consecutive cells.
fn model_ranges(m: &BTreeSet<u8>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u8, u8)> = Vec::new();
    for &c in m {
        match out.last_mut() {
            Some(r) if r.1 + 1 == c => r.1 = c,
            _ => out.push((c, c)),
        }
    }
    out.into_iter()
        .map(|(a, b)| (cell_span(a).0, cell_span(b).1))
        .collect()
}

fn model_insert(m: &mut BTreeSet<u8>, a: u8, b: u8) {
    let (a, b) = (cell(a).min(cell(b)), cell(a).max(cell(b)));
    m.extend(a..=b);
}

/// A `Need-Seq` header with `text` as its value, read with `max_items`.
fn parse_list(text: &[u8], max_items: usize) -> std::result::Result<SeqList, ErrorKind> {
    let mut pdu = b"ACORN/1.0 000 ACK\r\nNeed-Seq: ".to_vec();
    pdu.extend_from_slice(text);
    pdu.extend_from_slice(b"\r\n\r\n");
    let pdu = Pdu::parse_datagram(pdu.into(), &ParseOptions::default())
        .unwrap_or_else(|e| panic!("a PDU around {:?} did not parse: {e}", text));
    match pdu.need_seq_limited(max_items) {
        Ok(Some(list)) => Ok(list),
        Ok(None) => panic!("the Need-Seq header was not found"),
        Err(e) => Err(e.kind),
    }
}

/// How the model reads a list: the ranges (unmerged), or whether the
/// failure is the item limit (`true`) or a malformed list (`false`).
fn model_parse(text: &[u8], max_items: usize) -> std::result::Result<Vec<(u64, u64)>, bool> {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = text.iter().position(|b| !ows(b)).unwrap_or(text.len());
    let end = text.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    let v = &text[start..end];
    let mut p = 0;
    let number = |p: &mut usize| -> Option<u64> {
        let s = *p;
        while v.get(*p).is_some_and(u8::is_ascii_digit) {
            *p += 1;
        }
        if *p == s {
            return None;
        }
        std::str::from_utf8(&v[s..*p]).ok()?.parse().ok()
    };
    let mut items = Vec::new();
    loop {
        if items.len() >= max_items {
            return Err(true);
        }
        let a = number(&mut p).ok_or(false)?;
        let b = if v[p..].starts_with(b"..") {
            p += 2;
            number(&mut p).ok_or(false)?
        } else {
            a
        };
        if b < a {
            return Err(false);
        }
        items.push((a, b));
        while v.get(p).is_some_and(ows) {
            p += 1;
        }
        match v.get(p) {
            None => return Ok(items),
            Some(b',') => {
                p += 1;
                while v.get(p).is_some_and(ows) {
                    p += 1;
                }
            }
            Some(_) => return Err(false),
        }
    }
}

/// Sort and merge with 128-bit arithmetic (no saturation to get right).
fn naive_merge(mut items: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    items.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in items {
        match out.last_mut() {
            Some(r) if u128::from(a) <= u128::from(r.1) + 1 => r.1 = r.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// List text from arbitrary bytes: digits, dots, commas and blanks.
fn list_text(raw: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 16] = b"0123456789..,, \t";
    raw.iter()
        .map(|&b| {
            if ALPHABET.contains(&b) {
                b
            } else {
                ALPHABET[usize::from(b % 16)]
            }
        })
        .collect()
}

fn check(list: &SeqList, m: &BTreeSet<u8>) {
    let want = model_ranges(m);
    let got: Vec<(u64, u64)> = list.ranges().collect();
    assert_eq!(got, want, "ranges");
    assert_eq!(list.range_count(), want.len());
    assert_eq!(list.is_empty(), m.is_empty());
    assert_eq!(list.first(), want.first().map(|r| r.0));
    let count: u128 = want.iter().map(|&(a, b)| u128::from(b - a) + 1).sum();
    assert_eq!(list.count(), count, "count");
    for k in 0..128u8 {
        assert_eq!(
            list.contains(value(k)),
            m.contains(&cell(k)),
            "{}",
            value(k)
        );
    }
    for probe in [64, 1 << 40, u64::MAX / 2, u64::MAX - 64] {
        assert_eq!(list.contains(probe), m.contains(&MIDDLE), "{probe}");
    }
    assert_eq!(*list, SeqList::from_ranges(want.iter().copied()));
    let text = list.to_string();
    let model_text: Vec<String> = want
        .iter()
        .map(|&(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}..{b}")
            }
        })
        .collect();
    assert_eq!(text, model_text.join(","), "wire form");
    if !list.is_empty() {
        let again = parse_list(text.as_bytes(), list.range_count())
            .unwrap_or_else(|e| panic!("{text:?} does not parse back: {e:?}"));
        assert_eq!(&again, list, "parse(format)");
        // One item fewer than the list holds is over the limit.
        assert_eq!(
            parse_list(text.as_bytes(), list.range_count() - 1),
            Err(ErrorKind::Limit(acorn::wire::Limit::SeqListItems))
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut list = SeqList::new();
    let mut model = BTreeSet::new();
    // Reading past the end gives zeros, not an error: stop at the end.
    while !u.is_empty() {
        let Ok(op) = op(&mut u) else { break };
        match op {
            Op::Insert(k) => {
                list.insert(value(k));
                model_insert(&mut model, k, k);
            }
            Op::InsertRange(a, b) => {
                list.insert_range(value(a), value(b));
                model_insert(&mut model, a, b);
            }
            Op::RemoveThrough(k) => {
                list.remove_through(value(k));
                model.retain(|&c| c > cell(k));
            }
            Op::Truncate(n) => {
                let t = list.truncated(usize::from(n));
                let runs = model_ranges(&model);
                let keep: Vec<(u64, u64)> = runs.into_iter().take(usize::from(n)).collect();
                model.retain(|&c| {
                    let (a, _) = cell_span(c);
                    keep.iter().any(|&(x, y)| x <= a && a <= y)
                });
                assert!(t.range_count() <= usize::from(n));
                list = t;
            }
            Op::FromRanges(v) => {
                list = SeqList::from_ranges(v.iter().map(|&(a, b)| (value(a), value(b))));
                model.clear();
                for (a, b) in v {
                    model_insert(&mut model, a, b);
                }
            }
            Op::Parse { max_items, text } => {
                let text = list_text(&text);
                let max = usize::from(max_items % 16);
                let got = parse_list(&text, max);
                let blank = text.iter().all(|b| *b == b' ' || *b == b'\t');
                match model_parse(&text, max) {
                    _ if blank => assert!(got.is_err(), "an empty list was accepted"),
                    Ok(items) => {
                        let got = got.unwrap_or_else(|e| panic!("{text:?} refused: {e:?}"));
                        let want = naive_merge(items.clone());
                        assert_eq!(got.ranges().collect::<Vec<_>>(), want, "{text:?}");
                        assert_eq!(got, SeqList::from_ranges(items));
                        let mut built = SeqList::new();
                        for (a, b) in want {
                            built.insert_range(a, b);
                        }
                        assert_eq!(got, built);
                    }
                    Err(limit) => {
                        let e = got.expect_err("the model refused the list");
                        assert_eq!(
                            e == ErrorKind::Limit(acorn::wire::Limit::SeqListItems),
                            limit,
                            "{text:?}: {e:?}"
                        );
                    }
                }
            }
        }
        check(&list, &model);
    }
});
