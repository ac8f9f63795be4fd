//! The repository stands alone: a fresh clone has everything a reader needs.
//!
//! - No file points outside the repository at the protocol notes it was
//!   built from; `docs/protocol.md` is the protocol document.
//! - `docs/protocol.md` has the ten numbered sections the code cites as
//!   "SPEC §N", with their fixed titles, and the appendix that explains the
//!   "seed 00N" citations.
//! - Every "SPEC §N" citation anywhere in the repository names a section
//!   that exists, and every "seed 00N" names a seed note the appendix
//!   describes.
//! - Every relative link in `README.md` and `docs/*.md` points at a file
//!   that exists, and every `#anchor` at a heading of the file it names.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Paths (relative to the root) the walk does not enter: build output,
/// git's own data, and fuzzing's generated inputs.
const SKIPPED: &[&str] = &[
    "target",
    ".git",
    "fuzz/target",
    "fuzz/corpus",
    "fuzz/artifacts",
];

/// Every file of the repository outside [`SKIPPED`], with its relative path.
fn repo_files() -> Vec<(String, PathBuf)> {
    let root = root();
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {dir:?}: {e}"));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let rel = path
                .strip_prefix(&root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            if SKIPPED.contains(&rel.as_str()) {
                continue;
            }
            let kind = entry.file_type().expect("file type");
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                out.push((rel, path));
            }
        }
    }
    out.sort();
    assert!(
        out.len() > 50,
        "the walk found only {} files: is the root right?",
        out.len()
    );
    out
}

/// The UTF-8 text files of the repository (binary corpus files are skipped).
fn text_files() -> Vec<(String, String)> {
    repo_files()
        .into_iter()
        .filter_map(|(rel, path)| {
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
            String::from_utf8(bytes).ok().map(|text| (rel, text))
        })
        .collect()
}

fn protocol() -> String {
    fs::read_to_string(root().join("docs/protocol.md")).expect("docs/protocol.md exists")
}

/// The numbers N of the `## N. Title` headings of `docs/protocol.md`, with
/// their titles.
fn sections(doc: &str) -> HashMap<u32, String> {
    let mut out = HashMap::new();
    for line in outside_code(doc) {
        let Some(rest) = line.strip_prefix("## ") else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Some(title) = rest[digits.len()..].strip_prefix(". ") else {
            continue;
        };
        if let Ok(n) = digits.parse::<u32>() {
            assert!(
                out.insert(n, title.trim().to_owned()).is_none(),
                "docs/protocol.md has two sections numbered {n}"
            );
        }
    }
    out
}

/// The lines of a markdown text that are not inside a fenced code block.
fn outside_code(doc: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push(line);
        }
    }
    out
}

#[test]
fn no_file_points_outside_the_repository() {
    // Built at run time, so this file does not match itself.
    let needles = [
        format!("..{}shared/", '/'),
        format!("shared/{}", "SPEC"),
        format!("SPEC{}md", '.'),
    ];
    let mut hits = Vec::new();
    for (rel, path) in repo_files() {
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
        for needle in &needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(format!("{rel}: contains {needle:?}"));
            }
        }
    }
    assert!(
        hits.is_empty(),
        "files point outside the repository (use docs/protocol.md):\n{}",
        hits.join("\n")
    );
}

#[test]
fn protocol_document_has_the_ten_sections() {
    let doc = protocol();
    let found = sections(&doc);
    // The titles carry the meaning code comments rely on when they cite
    // "SPEC §N"; a section may be reworded, but not renumbered.
    let expected = [
        (1, "Wire format"),
        (2, "Status codes"),
        (3, "Headers with meaning"),
        (4, "Acknowledgement"),
        (5, "Node-to-node addressing"),
        (6, "Retries, timeouts, expiry"),
        (7, "Segmentation and integrity"),
        (8, "Sessions"),
        (9, "Hostile networks"),
        (10, "Interoperability"),
    ];
    for (n, title) in expected {
        let got = found
            .get(&n)
            .unwrap_or_else(|| panic!("docs/protocol.md has no heading `## {n}. …`"));
        assert!(
            got.starts_with(title),
            "docs/protocol.md §{n} is titled {got:?}, expected it to start with {title:?}"
        );
    }
    assert_eq!(
        found.len(),
        expected.len(),
        "docs/protocol.md has numbered sections beyond §1–§10: {found:?}"
    );
    // The preface says how the code cites the document.
    assert!(
        doc.contains("\"SPEC §N\""),
        "the preface must say code comments cite this document as \"SPEC §N\""
    );
}

/// The section numbers of each "SPEC §N" citation in `text`, with the line
/// it is on. Follows a list such as "SPEC §3, §7", "SPEC §6/§8" or
/// "SPEC §5–§7" to its end.
fn spec_citations(text: &str) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("SPEC") {
            rest = &rest[at + "SPEC".len()..];
            let mut tail = rest.strip_prefix(".md").unwrap_or(rest).trim_start();
            while let Some(after) = tail.strip_prefix('§') {
                let after = after.trim_start();
                let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
                let Ok(n) = digits.parse::<u32>() else {
                    break;
                };
                out.push((i + 1, n));
                tail = &after[digits.len()..];
                // A sub-section number ("§8.1") belongs to section 8.
                if let Some(sub) = tail.strip_prefix('.') {
                    let d = sub.chars().take_while(char::is_ascii_digit).count();
                    if d > 0 {
                        tail = &sub[d..];
                    }
                }
                let sep = tail
                    .char_indices()
                    .find(|&(_, c)| !matches!(c, ' ' | ',' | '/' | '–' | '-' | '&'))
                    .map_or(tail.len(), |(j, _)| j);
                let next = &tail[sep..];
                let next = next
                    .strip_prefix("and ")
                    .or_else(|| next.strip_prefix("to "))
                    .unwrap_or(next);
                tail = next;
            }
        }
    }
    out
}

/// The seed numbers of each "seed 00N" / "seeds 000–002" citation in
/// `text`, with the line it is on. Only three-digit numbers with a leading
/// zero are seed notes ("seed 42" is a random seed).
fn seed_citations(text: &str) -> Vec<(usize, u32)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lower = line.to_lowercase();
        let mut rest = lower.as_str();
        while let Some(at) = rest.find("seed") {
            rest = &rest[at + "seed".len()..];
            let mut tail = rest.strip_prefix('s').unwrap_or(rest);
            let mut first = true;
            loop {
                let next = if first {
                    // "seed 000": at least one space after the word.
                    let t = tail.trim_start_matches(' ');
                    if t.len() == tail.len() {
                        break;
                    }
                    t
                } else {
                    // "000, 001", "000–002", "000/001", "000 and 001".
                    let t = tail.trim_start_matches([' ', ',', '/', '–', '-']);
                    let t = t
                        .strip_prefix("and ")
                        .or_else(|| t.strip_prefix("to "))
                        .unwrap_or(t);
                    t.trim_start_matches(' ')
                };
                let digits: String = next.chars().take_while(char::is_ascii_digit).collect();
                if digits.len() != 3 || !digits.starts_with('0') {
                    break;
                }
                out.push((i + 1, digits.parse().expect("three digits")));
                tail = &next[digits.len()..];
                first = false;
            }
        }
    }
    out
}

#[test]
fn citation_parsers_read_every_form_used() {
    assert_eq!(spec_citations("see SPEC §3"), vec![(1, 3)]);
    assert_eq!(
        spec_citations("(SPEC §3, §7) and SPEC §6/§8: SPEC §5–§7"),
        vec![(1, 3), (1, 7), (1, 6), (1, 8), (1, 5), (1, 7)]
    );
    // Built at run time, so this file does not name the old file itself.
    let old_name = format!("SPEC §8.1 then\nSPEC{}md §10", '.');
    assert_eq!(spec_citations(&old_name), vec![(1, 8), (2, 10)]);
    assert_eq!(spec_citations("SPEC §N and SPEC alone"), vec![]);
    assert_eq!(
        seed_citations("(seed 000: …) seeds 000–002, Seed 003; seeds 001 and 002"),
        vec![(1, 0), (1, 0), (1, 2), (1, 3), (1, 1), (1, 2)]
    );
    assert_eq!(seed_citations("seed 42, --seed 7, seeded"), vec![]);
}

#[test]
fn every_spec_citation_names_a_section_that_exists() {
    let known = sections(&protocol());
    let mut bad = Vec::new();
    let mut cited = 0;
    for (rel, text) in text_files() {
        for (line, n) in spec_citations(&text) {
            cited += 1;
            if !known.contains_key(&n) {
                bad.push(format!("{rel}:{line}: SPEC §{n}"));
            }
        }
    }
    assert!(
        cited > 100,
        "only {cited} SPEC citations found: is the parser right?"
    );
    assert!(
        bad.is_empty(),
        "citations of sections docs/protocol.md does not have:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_seed_citation_names_a_seed_note_the_appendix_describes() {
    let doc = protocol();
    let appendix = doc
        .split("## Appendix A")
        .nth(1)
        .expect("docs/protocol.md has an `## Appendix A` on the seed notes");
    let described: BTreeSet<u32> = (0..10)
        .filter(|n| appendix.contains(&format!("**Seed {n:03}")))
        .collect();
    assert_eq!(
        described,
        (0..4).collect(),
        "Appendix A describes seeds 000 to 003"
    );
    let mut bad = Vec::new();
    for (rel, text) in text_files() {
        for (line, n) in seed_citations(&text) {
            if !described.contains(&n) {
                bad.push(format!("{rel}:{line}: seed {n:03}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "citations of seed notes Appendix A does not describe:\n{}",
        bad.join("\n")
    );
}

/// GitHub's anchor for each heading of a markdown text: lower case, every
/// character but letters, digits, `-`, `_` and spaces dropped, spaces made
/// `-`; a repeated anchor gets `-1`, `-2`, ….
fn anchors(doc: &str) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = BTreeSet::new();
    for line in outside_code(doc) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
            continue;
        }
        let slug: String = line[hashes..]
            .trim()
            .to_lowercase()
            .chars()
            .filter(|&c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = seen.entry(slug.clone()).or_insert(0);
        let anchor = if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        };
        *n += 1;
        out.insert(anchor);
    }
    out
}

/// The targets of the inline links `[text](target)` and reference
/// definitions `[label]: target` of a markdown text, outside code blocks
/// and inline code, with their line numbers.
fn links(doc: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in doc.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code spans, which may hold `](` of their own.
        let mut plain = String::new();
        for (k, part) in line.split('`').enumerate() {
            if k % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push((i + 1, rest[..end].to_owned()));
                rest = &rest[end..];
            }
        }
        let t = plain.trim_start();
        if t.starts_with('[') {
            if let Some(close) = t.find("]: ") {
                out.push((i + 1, t[close + 3..].trim().to_owned()));
            }
        }
    }
    out.into_iter()
        .map(|(l, target)| {
            let target = target.split_whitespace().next().unwrap_or("").to_owned();
            let target = target
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_owned();
            (l, target)
        })
        .collect()
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = root();
    let mut docs: Vec<PathBuf> = vec![root.join("README.md")];
    let mut in_docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    docs.extend(in_docs);
    let mut checked = 0;
    let mut bad = Vec::new();
    for doc in &docs {
        let text = fs::read_to_string(doc).expect("markdown file");
        let rel_doc = doc.strip_prefix(&root).expect("under the root").display();
        for (line, target) in links(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let file: PathBuf = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().expect("a directory").join(path)
            };
            if !file.exists() {
                bad.push(format!("{rel_doc}:{line}: {target} (no such file)"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if file.extension().is_some_and(|e| e == "md") {
                let linked = fs::read_to_string(&file).expect("markdown file");
                if !anchors(&linked).contains(anchor) {
                    bad.push(format!("{rel_doc}:{line}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} relative links found");
    assert!(
        bad.is_empty(),
        "links that do not resolve:\n{}",
        bad.join("\n")
    );
}

#[test]
fn anchor_and_link_parsers_follow_github() {
    let doc = "# 1. Wire format\n## Retries, timeouts, expiry\n```\n# not a heading\n```\n### `acorn-cli send ADDR`\n## Limits\n## Limits\n";
    let a = anchors(doc);
    for want in [
        "1-wire-format",
        "retries-timeouts-expiry",
        "acorn-cli-send-addr",
        "limits",
        "limits-1",
    ] {
        assert!(a.contains(want), "{want} missing from {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    let l = links("see [a](docs/a.md#x) and `[b](no)`\n[r]: ../r.md \"title\"\n");
    assert_eq!(
        l,
        vec![(1, "docs/a.md#x".to_owned()), (2, "../r.md".to_owned())]
    );
}
