//! `grammar/acorn.abnf` and the parser mirror each other (as the head of
//! the grammar file says: each ABNF rule names the function that implements
//! it, and each parser function's doc comment names its rule). This test
//! keeps it that way:
//!
//! - the grammar is a well-formed RFC 5234 rule list as far as a small
//!   scanner can tell (rule names, balanced groups and options, every rule a
//!   definition uses is defined or is a core rule);
//! - every rule has at least one `; parser: wire::<module>::<function>`
//!   comment, the function exists in `src/wire/<module>.rs`, and its doc
//!   comment names the rule;
//! - every rule a doc comment in `src/wire` defines (`` `name = ...` ``) or
//!   cites (`` ABNF `name` ``) is a rule of the grammar.
//!
//! `grammar/check_abnf.py` goes further (a real ABNF parser, the corpus).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const CORE: [&str; 16] = [
    "ALPHA", "BIT", "CHAR", "CR", "CRLF", "CTL", "DIGIT", "DQUOTE", "HEXDIG", "HTAB", "LF", "LWSP",
    "OCTET", "SP", "VCHAR", "WSP",
];

/// The modules whose doc comments state rules.
const MODULES: [&str; 3] = ["grammar", "parse", "typed"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// One rule of the grammar file.
#[derive(Debug, Default)]
struct AbnfRule {
    /// As written (rule names compare case-insensitively).
    name: String,
    line: usize,
    definition: String,
    /// `wire::<module>::<function>` from the comments just above the rule.
    parsers: Vec<String>,
}

/// A line without its comment (a `;` outside a quoted string).
fn strip_comment(line: &str) -> (&str, Option<&str>) {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return (&line[..i], Some(&line[i + 1..])),
            _ => {}
        }
    }
    (line, None)
}

fn is_rulename(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn parse_grammar(text: &str) -> Vec<AbnfRule> {
    let mut rules: Vec<AbnfRule> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let (body, comment) = strip_comment(line);
        if body.trim().is_empty() {
            match comment {
                Some(c) => {
                    if let Some(p) = c.trim().strip_prefix("parser:") {
                        pending.push(p.trim().to_string());
                    }
                }
                // A blank line ends the comment block above a rule.
                None => pending.clear(),
            }
            continue;
        }
        if line.starts_with(|c: char| c.is_whitespace()) {
            let last = rules
                .last_mut()
                .unwrap_or_else(|| panic!("line {}: continuation before any rule", n + 1));
            last.definition.push(' ');
            last.definition.push_str(body.trim());
            continue;
        }
        let (name, rest) = body
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: expected `rulename = ...`", n + 1));
        let name = name.trim();
        assert!(is_rulename(name), "line {}: bad rule name {name:?}", n + 1);
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        rules.push(AbnfRule {
            name: name.to_string(),
            line: n + 1,
            definition: rest.trim().to_string(),
            parsers: std::mem::take(&mut pending),
        });
    }
    rules
}

/// The rule names a definition uses, after checking that its quoted
/// strings, numeric values, groups and options are well formed.
fn references(rule: &AbnfRule) -> Vec<String> {
    let d = rule.definition.as_bytes();
    let mut out = Vec::new();
    let mut depth: Vec<u8> = Vec::new();
    let mut i = 0;
    let fail = |what: &str| -> ! { panic!("rule {} (line {}): {what}", rule.name, rule.line) };
    while i < d.len() {
        match d[i] {
            b'"' => {
                let end = d[i + 1..]
                    .iter()
                    .position(|&b| b == b'"')
                    .unwrap_or_else(|| fail("unterminated string"));
                i += end + 2;
            }
            b'%' => {
                i += 1;
                match d.get(i).map(u8::to_ascii_lowercase) {
                    Some(b's' | b'i') if d.get(i + 1) == Some(&b'"') => i += 1,
                    Some(b'x') => {
                        i += 1;
                        let n = d[i..]
                            .iter()
                            .take_while(|b| b.is_ascii_hexdigit() || **b == b'.' || **b == b'-')
                            .count();
                        if n == 0 {
                            fail("empty %x value");
                        }
                        i += n;
                    }
                    Some(b'd' | b'b') => {
                        i += 1;
                        i += d[i..]
                            .iter()
                            .take_while(|b| b.is_ascii_digit() || **b == b'.' || **b == b'-')
                            .count();
                    }
                    _ => fail("bad numeric or case-sensitive value"),
                }
                if d.get(i) == Some(&b'"') {
                    continue;
                }
            }
            open @ (b'(' | b'[') => {
                depth.push(open);
                i += 1;
            }
            close @ (b')' | b']') => {
                let want = if close == b')' { b'(' } else { b'[' };
                if depth.pop() != Some(want) {
                    fail("unbalanced group or option");
                }
                i += 1;
            }
            b'<' => fail("prose values are not used in this grammar"),
            b if b.is_ascii_alphabetic() => {
                let n = d[i..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
                    .count();
                out.push(rule.definition[i..i + n].to_string());
                i += n;
            }
            b if b.is_ascii_digit() || b == b'*' || b == b'/' || b.is_ascii_whitespace() => i += 1,
            other => fail(&format!("unexpected {:?}", other as char)),
        }
    }
    if !depth.is_empty() {
        fail("unclosed group or option");
    }
    out
}

/// Doc comment lines of `src/wire/<module>.rs`, and for each function the
/// doc comment just above it (attributes between are skipped).
fn docs(module: &str) -> (Vec<String>, BTreeMap<String, String>) {
    let src = read(&format!("src/wire/{module}.rs"));
    let lines: Vec<&str> = src.lines().collect();
    let mut all = Vec::new();
    let mut by_fn = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if let Some(doc) = t.strip_prefix("///").or_else(|| t.strip_prefix("//!")) {
            all.push(doc.to_string());
        }
        if let Some(name) = fn_name(t) {
            let mut doc = Vec::new();
            for prev in lines[..i].iter().rev() {
                let p = prev.trim_start();
                if let Some(d) = p.strip_prefix("///") {
                    doc.push(d);
                } else if !p.starts_with("#[") {
                    break;
                }
            }
            doc.reverse();
            by_fn.entry(name).or_insert_with(|| doc.join("\n"));
        }
    }
    (all, by_fn)
}

/// `foo` of a line declaring `fn foo`.
fn fn_name(line: &str) -> Option<String> {
    let at = line.find("fn ")?;
    let before = &line[..at];
    let ok_before = before.split_whitespace().all(|w| {
        matches!(
            w,
            "pub" | "pub(crate)" | "const" | "unsafe" | "async" | "extern"
        )
    });
    if !ok_before {
        return None;
    }
    let name: String = line[at + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

/// Whether a doc comment names `rule` in backticks (`` `rule` `` or
/// `` `rule = ...` `` or `` `rule ...` ``).
fn doc_names(doc: &str, rule: &str) -> bool {
    doc.match_indices(&format!("`{rule}")).any(|(i, m)| {
        matches!(
            doc[i + m.len()..].chars().next(),
            Some('`' | ' ' | '=' | ',' | ')')
        )
    })
}

/// Rules a doc comment line defines (`` `name = `` or `` `name =/ ``) or
/// cites after the word ABNF (`` ABNF `name` ``).
fn rules_in_doc(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (k, seg) in line.split('`').enumerate() {
        if k % 2 == 0 {
            continue;
        }
        if let Some((name, _)) = seg.split_once('=') {
            let name = name.trim();
            if is_rulename(name) && seg[name.len()..].trim_start().starts_with('=') {
                out.push(name.to_string());
                continue;
            }
        }
        let before = line.split('`').take(k).collect::<Vec<_>>().join("`");
        if before.trim_end().ends_with("ABNF") && is_rulename(seg) {
            out.push(seg.to_string());
        }
    }
    out
}

#[test]
fn grammar_is_well_formed() {
    let rules = parse_grammar(&read("grammar/acorn.abnf"));
    assert!(rules.len() > 50, "only {} rules found", rules.len());
    let mut defined = BTreeSet::new();
    for r in &rules {
        assert!(
            defined.insert(r.name.to_ascii_lowercase()),
            "rule {} defined twice (line {})",
            r.name,
            r.line
        );
    }
    let core: BTreeSet<String> = CORE.iter().map(|c| c.to_ascii_lowercase()).collect();
    for r in &rules {
        for name in references(r) {
            let key = name.to_ascii_lowercase();
            assert!(
                defined.contains(&key) || core.contains(&key),
                "rule {} (line {}) uses undefined rule {name}",
                r.name,
                r.line
            );
        }
    }
}

#[test]
fn every_rule_names_its_parser_and_the_parser_names_the_rule() {
    let rules = parse_grammar(&read("grammar/acorn.abnf"));
    let docs: BTreeMap<&str, BTreeMap<String, String>> =
        MODULES.iter().map(|m| (*m, docs(m).1)).collect();
    let mut problems = Vec::new();
    for r in &rules {
        if r.parsers.is_empty() {
            problems.push(format!(
                "rule {} (line {}) has no `; parser:` comment",
                r.name, r.line
            ));
        }
        for p in &r.parsers {
            let parts: Vec<&str> = p.split("::").collect();
            let [wire, module, function] = parts[..] else {
                problems.push(format!(
                    "rule {}: `{p}` is not wire::<module>::<fn>",
                    r.name
                ));
                continue;
            };
            let Some(fns) = docs.get(module).filter(|_| wire == "wire") else {
                problems.push(format!(
                    "rule {}: `{p}`: no module src/wire/{module}.rs",
                    r.name
                ));
                continue;
            };
            match fns.get(function) {
                None => problems.push(format!("rule {}: `{p}`: no fn {function}", r.name)),
                Some(doc) if !doc_names(doc, &r.name) => problems.push(format!(
                    "rule {}: the doc comment of {p} does not name it",
                    r.name
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_rule_in_the_parser_docs_is_in_the_grammar() {
    let rules = parse_grammar(&read("grammar/acorn.abnf"));
    let defined: BTreeSet<String> = rules
        .iter()
        .map(|r| r.name.to_ascii_lowercase())
        .chain(CORE.iter().map(|c| c.to_ascii_lowercase()))
        .collect();
    let mut missing = BTreeSet::new();
    let mut seen = 0;
    for module in MODULES {
        for line in docs(module).0 {
            for rule in rules_in_doc(&line) {
                seen += 1;
                if !defined.contains(&rule.to_ascii_lowercase()) {
                    missing.insert(format!("{rule} (src/wire/{module}.rs)"));
                }
            }
        }
    }
    assert!(seen > 40, "only {seen} rules found in the doc comments");
    assert!(
        missing.is_empty(),
        "rules in doc comments but not in grammar/acorn.abnf:\n{}",
        missing.into_iter().collect::<Vec<_>>().join("\n")
    );
}
