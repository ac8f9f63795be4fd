//! Header lookup by name against a model (ASCII case-insensitive filter in
//! wire order), on the shapes that choose between the lookup's paths: up
//! to and past the eight headers whose name lengths are indexed, names of
//! the same length as the wanted one, names whose length wraps around the
//! index's byte (256 + 3 bytes looks like `Seq`'s 3; 256 looks like an
//! empty slot), the wanted name once, repeated, or absent.

use acorn::wire::{parse_datagram, ErrorKind, Field, ParseOptions};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 512;
    }
    config
}

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

fn pdu(headers: &[(String, String)]) -> Vec<u8> {
    let mut p = String::from("ACORN/1.0 001 NACK\r\n");
    for (n, v) in headers {
        p.push_str(&format!("{n}: {v}\r\n"));
    }
    p.push_str("\r\n");
    p.into_bytes()
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let all = names();
    prop::collection::vec((prop::sample::select(all), 0u64..50), 0..20).prop_map(|hs| {
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
            let model: Vec<&str> = hs
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(want))
                .map(|(_, v)| v.as_str())
                .collect();
            let got: Vec<&[u8]> = parsed.headers_named(want).map(|h| h.value).collect();
            let got: Vec<&str> = got.iter().map(|v| std::str::from_utf8(v).unwrap()).collect();
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
