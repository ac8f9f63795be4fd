//! The typed accessors against a model of SPEC §3, on the shapes that
//! choose between their fast and general paths: a header written once or
//! repeated, raw or quoted, seq lists in ascending or any order, with or
//! without spaces, at and over the item limit, numbers of up to 20 digits.
//! Whichever path an input takes, the answer must be the model's. The
//! lookup by name underneath them is checked the same way (last section).

use acorn::wire::{parse_datagram, ErrorKind, Field, Limit, ParseOptions, SeqList};
use proptest::prelude::*;

mod wire_support;

fn config() -> ProptestConfig {
    wire_support::proptest_config(512)
}

/// Numbers near the edges that decide the 19-digit fast path.
fn number() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..40,
        Just(9_999_999_999_999_999_999),
        Just(10_000_000_000_000_000_000),
        Just(u64::MAX),
        any::<u64>(),
    ]
}

fn item() -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        number().prop_map(|a| (a, a)),
        (number(), number()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        (0u64..40, 0u64..5).prop_map(|(a, d)| (a, a + d)),
    ]
}

fn write_item(out: &mut String, (a, b): (u64, u64)) {
    if a == b {
        out.push_str(&a.to_string());
    } else {
        out.push_str(&format!("{a}..{b}"));
    }
}

/// One header value: the items with one of the separators SPEC allows,
/// raw or quoted.
fn list_value(items: &[(u64, u64)], spaced: bool, quoted: bool) -> String {
    let mut v = String::new();
    for (i, &it) in items.iter().enumerate() {
        if i > 0 {
            v.push_str(if spaced { " , " } else { "," });
        }
        write_item(&mut v, it);
    }
    if quoted {
        format!("\"{v}\"")
    } else {
        v
    }
}

fn pdu(headers: &[(String, String)]) -> Vec<u8> {
    let mut p = String::from("ACORN/1.0 001 NACK\r\n");
    for (n, v) in headers {
        p.push_str(&format!("{n}: {v}\r\n"));
    }
    p.push_str("\r\n");
    p.into_bytes()
}

proptest! {
    #![proptest_config(config())]

    /// `Need-Seq` over one to three headers: the union of all items, or the
    /// item limit named once the items outnumber it.
    #[test]
    fn need_seq_is_the_union_of_its_items(
        lists in prop::collection::vec(
            (prop::collection::vec(item(), 1..8), any::<bool>(), any::<bool>(), any::<bool>()),
            1..4,
        ),
        max_items in 1usize..20,
        name_case in prop::sample::select(vec!["Need-Seq", "need-seq", "NEED-SEQ"]),
    ) {
        let mut headers = vec![("TX-ID".to_owned(), "t1".to_owned())];
        let mut all = Vec::new();
        for (items, sorted, spaced, quoted) in &lists {
            let mut items = items.clone();
            if *sorted {
                items.sort_unstable();
            }
            all.extend(items.iter().copied());
            headers.push((name_case.to_owned(), list_value(&items, *spaced, *quoted)));
        }
        let bytes = pdu(&headers);
        let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
        let got = parsed.need_seq_limited(max_items);
        if all.len() > max_items {
            let e = got.expect_err("over the item limit");
            prop_assert_eq!(e.kind, ErrorKind::Limit(Limit::SeqListItems));
        } else {
            prop_assert_eq!(got.expect("valid list"), Some(SeqList::from_ranges(all)));
        }
    }

    /// A malformed item anywhere makes the whole header invalid, whether
    /// the items before it were in order or not.
    #[test]
    fn a_bad_item_fails_the_list(
        items in prop::collection::vec(item(), 0..6),
        sorted in any::<bool>(),
        bad in prop::sample::select(vec!["", "x", "5..3", "1.2", "18446744073709551616", "-1", "1,,2"]),
        at in any::<prop::sample::Index>(),
    ) {
        let mut items: Vec<String> = {
            let mut items = items;
            if sorted {
                items.sort_unstable();
            }
            items
                .into_iter()
                .map(|it| {
                    let mut s = String::new();
                    write_item(&mut s, it);
                    s
                })
                .collect()
        };
        items.insert(at.index(items.len() + 1), bad.to_owned());
        let bytes = pdu(&[("Need-Seq".to_owned(), items.join(","))]);
        let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
        let e = parsed.need_seq().expect_err("a bad item");
        prop_assert_eq!(e.kind, ErrorKind::InvalidValue(Field::NeedSeq));
    }

    /// `Seq` written once or repeated, raw or quoted: its value when every
    /// copy agrees, a conflict at the first one that does not.
    #[test]
    fn seq_repeats_must_agree(
        copies in prop::collection::vec((number(), any::<bool>()), 1..4),
    ) {
        let headers: Vec<(String, String)> = copies
            .iter()
            .map(|&(n, quoted)| {
                let v = if quoted { format!("\"{n}\"") } else { n.to_string() };
                ("Seq".to_owned(), v)
            })
            .collect();
        let bytes = pdu(&headers);
        let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
        let first = copies[0].0;
        match copies.iter().position(|&(n, _)| n != first) {
            None => prop_assert_eq!(parsed.seq().expect("agreeing copies"), Some(first)),
            Some(i) => {
                let e = parsed.seq().expect_err("conflicting copies");
                prop_assert_eq!(e.kind, ErrorKind::ConflictingValues(Field::Seq));
                let at = parsed.headers_named("Seq").nth(i).expect("copy").value_offset;
                prop_assert!(e.offset >= at, "error at {} before copy {} at {}", e.offset, i, at);
            }
        }
    }
}

#[test]
fn twenty_digit_seq_is_out_of_range_and_nineteen_is_not() {
    for (value, expect) in [
        ("9999999999999999999", Some(9_999_999_999_999_999_999)),
        ("18446744073709551615", Some(u64::MAX)),
        ("18446744073709551616", None),
        ("00000000000000000000007", Some(7)),
    ] {
        let bytes = pdu(&[("Seq".to_owned(), value.to_owned())]);
        let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
        match expect {
            Some(n) => assert_eq!(parsed.seq().expect(value), Some(n), "{value}"),
            None => assert_eq!(
                parsed.seq().expect_err(value).kind,
                ErrorKind::InvalidValue(Field::Seq)
            ),
        }
    }
}

/// One ascending header with one range more, one range fewer and exactly
/// as many ranges as the set holds inline: the fast path collects up to
/// that many before building the set, and reads a longer list again
/// straight into it. Adjacent items merge on the way.
#[test]
fn need_seq_around_the_inline_ranges() {
    for ranges in 1..=7u64 {
        // Range k is 10k..10k+2, written as "10k..10k+1,10k+2" so that
        // every range also merges an adjacent item.
        let items: Vec<(u64, u64)> = (1..=ranges)
            .flat_map(|k| [(10 * k, 10 * k + 1), (10 * k + 2, 10 * k + 2)])
            .collect();
        for spaced in [false, true] {
            let value = list_value(&items, spaced, false);
            let bytes = pdu(&[("Need-Seq".to_owned(), value.clone())]);
            let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
            let got = parsed.need_seq().expect(&value).expect("present");
            assert_eq!(got.range_count() as u64, ranges, "{value}");
            assert_eq!(got, SeqList::from_ranges(items.iter().copied()), "{value}");
        }
    }
}

// ------------------------------------------------------------ lookup by name
//
// Header lookup by name against a model (ASCII case-insensitive filter in
// wire order), on the shapes that choose between the lookup's paths: up to
// and past the eight headers of one index word, past the 32 of the whole
// index (then lookups walk): 0 to 39 headers, names of the
// same length as the wanted one, names whose length wraps around the
// index's byte (256 + 3 bytes looks like `Seq`'s 3; 256 looks like an empty
// slot), the wanted name once, repeated, or absent.

/// Names that collide with the looked-up ones in length, in case, or in
/// length modulo 256.
fn names() -> Vec<String> {
    vec![
        "Seq".into(),
        "seq".into(),
        "SEQ".into(),
        "Sex".into(),
        "Need-Seq".into(),
        "need-seq".into(),
        "Need-Sex".into(),
        "To".into(),
        "Request-Session-Mode".into(),
        "Request-Session-Modx".into(),
        "x".repeat(256 + 3),
        "x".repeat(256),
        "X-Long".into(),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let all = names();
    prop::collection::vec((prop::sample::select(all), 0u64..50), 0..40).prop_map(|hs| {
        hs.into_iter()
            .map(|(name, n)| {
                // Mode headers need a mode, the others a number.
                let value = if name.eq_ignore_ascii_case("Request-Session-Mode") {
                    if n % 2 == 0 { "ordered" } else { "unordered" }.to_owned()
                } else {
                    n.to_string()
                };
                (name, value)
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(config())]

    /// Every lookup by name finds exactly the model's headers, in order,
    /// and the single-valued accessors see the same ones.
    #[test]
    fn lookup_finds_exactly_the_headers_of_that_name(hs in headers()) {
        let bytes = pdu(&hs);
        let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
        let mut wanted = names();
        wanted.push("Nothing-Here".into());
        wanted.push(String::new());
        for want in &wanted {
            let (model, got) = model_and_lookup(&hs, &parsed, want);
            prop_assert_eq!(&got, &model, "headers_named({:?})", want);
            prop_assert_eq!(
                parsed.header(want).map(|v| std::str::from_utf8(v).unwrap()),
                model.first().copied(),
                "header({:?})",
                want
            );
        }

        let seqs: Vec<u64> = hs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Seq"))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        match seqs.split_first() {
            None => prop_assert_eq!(parsed.seq().expect("absent"), None),
            Some((&first, rest)) if rest.iter().all(|&s| s == first) => {
                prop_assert_eq!(parsed.seq().expect("agreeing"), Some(first));
            }
            Some(_) => prop_assert_eq!(
                parsed.seq().expect_err("conflicting").kind,
                ErrorKind::ConflictingValues(Field::Seq)
            ),
        }

        let modes: Vec<&str> = hs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Request-Session-Mode"))
            .map(|(_, v)| v.as_str())
            .collect();
        let mode = parsed.request_session_mode();
        match modes.split_first() {
            None => prop_assert_eq!(mode.expect("absent"), None),
            Some((first, rest)) if rest.iter().all(|m| m == first) => {
                prop_assert_eq!(mode.expect("agreeing").map(|m| m.as_str()), Some(*first));
            }
            Some(_) => prop_assert_eq!(
                mode.expect_err("conflicting").kind,
                ErrorKind::ConflictingValues(Field::RequestSessionMode)
            ),
        }

        // Need-Seq over any number of headers is the union of their items.
        let mut needed: Vec<u64> = hs
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Need-Seq"))
            .map(|(_, v)| v.parse().unwrap())
            .collect();
        needed.sort_unstable();
        needed.dedup();
        let need = parsed.need_seq().expect("valid items");
        match need {
            None => prop_assert!(needed.is_empty()),
            Some(list) => {
                let got: Vec<u64> = list.ranges().flat_map(|(a, b)| a..=b).collect();
                prop_assert_eq!(got, needed);
            }
        }
    }
}

/// The values of the headers called `want` in the model `hs` and as
/// `headers_named` finds them in `parsed`.
fn model_and_lookup<'a>(
    hs: &'a [(String, String)],
    parsed: &'a acorn::wire::PduRef<'_>,
    want: &'a str,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let model = hs
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(want))
        .map(|(_, v)| v.as_str())
        .collect();
    let got = parsed
        .headers_named(want)
        .map(|h| std::str::from_utf8(h.value).unwrap())
        .collect();
    (model, got)
}

/// At every header count from 0 to past the index's 32 headers, and with
/// the wanted header at every position (or absent, or twice), among
/// fillers of the same length, of other cases and of a length that wraps
/// to the same byte: lookups find exactly the model's headers. Exhaustive
/// where the property test above samples.
#[test]
fn lookup_is_exact_at_every_count_and_position() {
    let fillers = [
        "Sex",
        "X-Long",
        "To",
        "SEQ-",
        &"y".repeat(256 + 3),
        "Need-Sex",
    ];
    for count in 0..=36usize {
        for at in 0..=count {
            for twice in [false, true] {
                let mut hs: Vec<(String, String)> = (0..count)
                    .map(|i| (fillers[i % fillers.len()].to_owned(), i.to_string()))
                    .collect();
                if at < count {
                    hs[at] = ("Seq".to_owned(), "7".to_owned());
                    if twice {
                        let other = (at + count / 2 + 1) % count;
                        hs[other] = ("sEQ".to_owned(), "9".to_owned());
                    }
                } else if twice {
                    continue;
                }
                let bytes = pdu(&hs);
                let parsed = parse_datagram(&bytes, &ParseOptions::default()).expect("parses");
                for want in ["Seq", "Sex", "X-Long", "Nothing", "Need-Sex"] {
                    let (model, got) = model_and_lookup(&hs, &parsed, want);
                    assert_eq!(
                        got, model,
                        "{want} among {count} headers, Seq at {at}, twice {twice}"
                    );
                }
                let seqs: Vec<u64> = hs
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("Seq"))
                    .map(|(_, v)| v.parse().unwrap())
                    .collect();
                match seqs.as_slice() {
                    [] => assert_eq!(parsed.seq().expect("absent"), None),
                    [one] => assert_eq!(parsed.seq().expect("one"), Some(*one), "{count} {at}"),
                    _ => assert_eq!(
                        parsed.seq().expect_err("conflicting").kind,
                        ErrorKind::ConflictingValues(Field::Seq),
                        "{count} {at}"
                    ),
                }
            }
        }
    }
}
