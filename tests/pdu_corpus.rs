//! Conformance runner for `corpus/pdu` (see its README for the naming).
//!
//! Cases are discovered by listing the directory, so adding a case never
//! means editing a list. Every case is run twice: through the library
//! (`parse_datagram` + `validate`, the verdict and the error kind) and
//! through the built `acorn-cli` binary (exit codes, the `--json` output
//! compared as JSON values with the expected file, the diagnostics). All
//! failures are collected and reported together, so one broken case does
//! not hide the others.

mod wire_support;

use acorn::wire::{parse_datagram, parse_head, IgnoreSeq, ParseError, ParseOptions, PduRef};
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use wire_support::{roomy, PDU_KEYS};

/// Fewer cases than this means discovery broke (or the corpus was gutted).
const MIN_CASES: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accept,
    Reject,
}

#[derive(Debug)]
struct Case {
    /// File stem, e.g. `reject-bare-cr`.
    name: String,
    path: PathBuf,
    expect: Expect,
    lenient: bool,
    /// Framed as on a stream (`parse_head`, then `Content-Length` bytes)
    /// instead of as one datagram.
    stream: bool,
    bytes: Vec<u8>,
}

impl Case {
    fn opts(&self) -> ParseOptions {
        if self.lenient {
            ParseOptions::lenient()
        } else {
            ParseOptions::strict()
        }
    }

    /// The companion file: `.json` for accept cases, `.error` for reject cases.
    fn companion(&self) -> PathBuf {
        self.path.with_extension(match self.expect {
            Expect::Accept => "json",
            Expect::Reject => "error",
        })
    }
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/pdu")
}

/// List the corpus. Malformed names and orphaned companion files are
/// failures, not silently skipped cases.
fn discover(failures: &mut Vec<String>) -> Vec<Case> {
    let dir = corpus_dir();
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").file_name())
        .map(|n| n.into_string().expect("corpus file names are UTF-8"))
        .collect();
    names.sort();
    let stems: BTreeSet<&str> = names
        .iter()
        .filter_map(|n| n.strip_suffix(".acorn"))
        .collect();
    let mut cases = Vec::new();
    for file in &names {
        if let Some(stem) = file
            .strip_suffix(".json")
            .or_else(|| file.strip_suffix(".error"))
        {
            if !stems.contains(stem) {
                failures.push(format!("{file}: no {stem}.acorn beside it"));
            }
            continue;
        }
        let Some(stem) = file.strip_suffix(".acorn") else {
            if file != "README.md" {
                failures.push(format!("{file}: not a corpus file (see README.md)"));
            }
            continue;
        };
        let (expect, rest) = if let Some(r) = stem.strip_prefix("accept-") {
            (Expect::Accept, r)
        } else if let Some(r) = stem.strip_prefix("reject-") {
            (Expect::Reject, r)
        } else {
            failures.push(format!("{file}: name must start with accept- or reject-"));
            continue;
        };
        let path = dir.join(file);
        cases.push(Case {
            name: stem.to_owned(),
            bytes: fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())),
            path,
            expect,
            lenient: tags(rest).contains(&"lenient"),
            stream: tags(rest).contains(&"stream"),
        });
    }
    cases
}

/// The leading words of a name after `accept-`/`reject-` that say how to
/// parse it (README): `lenient`, `stream`, and the descriptive `datagram`
/// and `interop`, in any order.
fn tags(rest: &str) -> Vec<&str> {
    rest.split('-')
        .take_while(|w| ["lenient", "stream", "datagram", "interop"].contains(w))
        .collect()
}

fn check<'a>(bytes: &'a [u8], opts: &ParseOptions) -> Result<PduRef<'a>, ParseError> {
    let pdu = parse_datagram(bytes, opts)?;
    pdu.validate(&opts.limits)?;
    Ok(pdu)
}

/// A stream case: the head must end in its empty line (`parse_head`), the
/// input must hold exactly the `Content-Length` bytes after it, and the PDU
/// must validate. Returns the PDU as a datagram view of the same bytes.
fn check_stream<'a>(bytes: &'a [u8], opts: &ParseOptions) -> Result<PduRef<'a>, ParseError> {
    let head = parse_head(bytes, opts)?;
    let framed = head.len() + head.body_len();
    if framed != bytes.len() {
        panic!(
            "a stream case holds one whole PDU: {} bytes framed of {}",
            framed,
            bytes.len()
        );
    }
    check(bytes, opts)
}

impl Case {
    /// The library's verdict under this case's framing.
    fn verdict(&self) -> Result<PduRef<'_>, ParseError> {
        if self.stream {
            check_stream(&self.bytes, &self.opts())
        } else {
            check(&self.bytes, &self.opts())
        }
    }
}

fn read_expected_json(case: &Case) -> Result<Value, String> {
    let path = case.companion();
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: bad JSON: {e}", path.display()))?;
    let keys: BTreeSet<&str> = v
        .as_object()
        .ok_or_else(|| format!("{}: not a JSON object", path.display()))?
        .keys()
        .map(String::as_str)
        .collect();
    if keys != PDU_KEYS.into_iter().collect() {
        return Err(format!(
            "{}: keys {keys:?}, expected exactly {PDU_KEYS:?}",
            path.display()
        ));
    }
    Ok(v)
}

fn read_expected_code(case: &Case) -> Result<String, String> {
    let path = case.companion();
    let code = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let code = code.trim();
    if code.is_empty() || code.contains(char::is_whitespace) {
        return Err(format!("{}: expected one error code", path.display()));
    }
    Ok(code.to_owned())
}

/// Everything that identifies a PDU's meaning, for comparing a PDU with
/// its canonical form (which may quote differently, add `Content-Length`
/// and capitalise `ACORN`).
fn meaning(pdu: &PduRef<'_>) -> String {
    let headers: Vec<(String, Vec<u8>)> = pdu
        .headers()
        .filter(|h| !h.is("Content-Length"))
        .map(|h| (h.name.to_owned(), h.text().into_owned()))
        .collect();
    let ignore = match pdu.ignore_seq() {
        Ok(Some(IgnoreSeq::All)) => "*".to_owned(),
        Ok(Some(IgnoreSeq::List(l))) => l.to_string(),
        other => format!("{other:?}"),
    };
    format!(
        "{:?} {} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {} {:?} {:?}",
        pdu.kind(),
        pdu.version().to_ascii_uppercase(),
        pdu.method(),
        pdu.target(),
        pdu.status(),
        pdu.status_text().map(String::from_utf8_lossy),
        headers,
        pdu.body(),
        pdu.seq(),
        ignore,
        pdu.need_seq().map(|l| l.map(|l| l.to_string())),
        (pdu.request_session_mode(), pdu.set_session_mode()),
    )
}

/// The library's verdict on one case.
fn run_library(case: &Case, failures: &mut Vec<String>) {
    match (case.expect, case.verdict()) {
        (Expect::Accept, Ok(pdu)) => {
            // The canonical form (what `fmt` prints) must itself be valid
            // (within `roomy` limits), mean the same thing, and be a fixed
            // point of canonicalisation.
            let canon = pdu.to_canonical();
            match check(&canon, &roomy()) {
                Ok(again) => {
                    if meaning(&again) != meaning(&pdu) {
                        failures.push(format!(
                            "{}: canonical form changes the meaning:\n  was {}\n  now {}",
                            case.name,
                            meaning(&pdu),
                            meaning(&again)
                        ));
                    }
                    if again.to_canonical() != canon {
                        failures.push(format!(
                            "{}: canonical form is not a fixed point",
                            case.name
                        ));
                    }
                }
                Err(e) => failures.push(format!(
                    "{}: canonical form {:?} does not parse: {e}",
                    case.name,
                    String::from_utf8_lossy(&canon)
                )),
            }
        }
        (Expect::Accept, Err(e)) => {
            failures.push(format!("{}: library rejected it: {e}", case.name));
        }
        (Expect::Reject, Ok(_)) => {
            failures.push(format!("{}: library accepted it", case.name));
        }
        (Expect::Reject, Err(e)) => match read_expected_code(case) {
            Ok(code) if code == e.kind.code() => {
                if e.offset > case.bytes.len() {
                    failures.push(format!(
                        "{}: error offset {} is past the input ({} bytes)",
                        case.name,
                        e.offset,
                        case.bytes.len()
                    ));
                }
            }
            Ok(code) => failures.push(format!(
                "{}: library error kind {}, expected {code} ({e})",
                case.name,
                e.kind.code()
            )),
            Err(msg) => failures.push(msg),
        },
    }
}

fn cli(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_acorn-cli"))
        .args(args)
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("running acorn-cli")
}

/// The CLI's verdict on one case, in `--json` and in text mode. `parse`
/// reads datagrams, so stream cases are the library's alone.
fn run_cli(case: &Case, failures: &mut Vec<String>) {
    if case.stream {
        return;
    }
    let mut args = vec!["parse"];
    if case.lenient {
        args.push("--lenient");
    }
    let text = cli(&args, &case.path);
    args.push("--json");
    let json = cli(&args, &case.path);
    let name = &case.name;
    let parsed: Result<Value, _> = serde_json::from_slice(&json.stdout);
    let lib = check(&case.bytes, &case.opts());
    match case.expect {
        Expect::Accept => {
            if json.status.code() != Some(0) || text.status.code() != Some(0) {
                failures.push(format!(
                    "{name}: CLI exit codes {:?} (--json) and {:?}, expected 0; stderr: {}",
                    json.status.code(),
                    text.status.code(),
                    String::from_utf8_lossy(&text.stderr)
                ));
            }
            match (parsed, read_expected_json(case)) {
                (Ok(got), Ok(want)) if got == want => {}
                (Ok(got), Ok(want)) => failures.push(format!(
                    "{name}: --json output differs\n  got  {got}\n  want {want}"
                )),
                (Err(e), _) => failures.push(format!("{name}: --json printed no JSON: {e}")),
                (_, Err(msg)) => failures.push(msg),
            }
            if json.stdout.iter().filter(|&&b| b == b'\n').count() != 1 {
                failures.push(format!("{name}: --json output is not exactly one line"));
            }
            if let Ok(pdu) = &lib {
                if text.stdout != pdu.to_canonical() {
                    failures.push(format!(
                        "{name}: parse printed {:?}, not the canonical form",
                        String::from_utf8_lossy(&text.stdout)
                    ));
                }
            }
        }
        Expect::Reject => {
            if json.status.code() != Some(1) || text.status.code() != Some(1) {
                failures.push(format!(
                    "{name}: CLI exit codes {:?} (--json) and {:?}, expected 1",
                    json.status.code(),
                    text.status.code()
                ));
            }
            if !text.stdout.is_empty() {
                failures.push(format!("{name}: parse printed a PDU for a rejected input"));
            }
            match (parsed, &lib) {
                (Ok(v), Err(e)) => check_cli_error(case, &v, e, &text, failures),
                (Err(e), _) => failures.push(format!(
                    "{name}: --json printed no JSON ({e}): {:?}",
                    String::from_utf8_lossy(&json.stdout)
                )),
                // The library accepting it is reported by `run_library`.
                (Ok(_), Ok(_)) => {}
            }
        }
    }
}

/// A rejected case's `{"error": ...}` object and text diagnostic must agree
/// with the library's error and with the expected code.
fn check_cli_error(
    case: &Case,
    v: &Value,
    e: &ParseError,
    text: &Output,
    failures: &mut Vec<String>,
) {
    let name = &case.name;
    let pos = e.position(&case.bytes);
    let err = &v["error"];
    let want_keys: BTreeSet<&str> = ["message", "kind", "offset", "line", "column"].into();
    let keys: BTreeSet<&str> = err
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    if keys != want_keys || v.as_object().map(|o| o.len()) != Some(1) {
        failures.push(format!("{name}: error JSON has the wrong shape: {v}"));
        return;
    }
    match read_expected_code(case) {
        Ok(code) if err["kind"] == code.as_str() => {}
        Ok(code) => failures.push(format!(
            "{name}: CLI error kind {}, expected {code}",
            err["kind"]
        )),
        Err(msg) => failures.push(msg),
    }
    let located = err["offset"] == e.offset
        && err["line"] == pos.line
        && err["column"] == pos.column
        && err["message"] == e.to_string().as_str();
    if !located {
        failures.push(format!(
            "{name}: CLI error {err} disagrees with the library ({e} at {}:{})",
            pos.line, pos.column
        ));
    }
    let diag = String::from_utf8_lossy(&text.stderr);
    let prefix = format!(
        "{}:{}:{}: error: ",
        case.path.display(),
        pos.line,
        pos.column
    );
    if !diag.starts_with(&prefix) || diag.lines().count() != 1 {
        failures.push(format!(
            "{name}: diagnostic {diag:?} is not one line starting with {prefix:?}"
        ));
    }
}

#[test]
fn corpus_conforms() {
    let mut failures = Vec::new();
    let cases = discover(&mut failures);
    for case in &cases {
        run_library(case, &mut failures);
        run_cli(case, &mut failures);
    }
    let accepts = cases.iter().filter(|c| c.expect == Expect::Accept).count();
    let rejects = cases.len() - accepts;
    assert!(
        failures.is_empty(),
        "{} corpus failure(s) over {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= MIN_CASES && accepts > 0 && rejects > 0,
        "only {accepts} accept and {rejects} reject cases found in {}",
        corpus_dir().display()
    );
}

// ------------------------------------------------ CLI behaviour around the corpus

fn acorn_cli(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_acorn-cli"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting acorn-cli");
    let mut pipe = child.stdin.take().expect("stdin pipe");
    // The CLI may exit before reading (usage errors): ignore a broken pipe.
    let _ = pipe.write_all(stdin);
    drop(pipe);
    child.wait_with_output().expect("running acorn-cli")
}

fn case_path(stem: &str) -> String {
    corpus_dir()
        .join(format!("{stem}.acorn"))
        .to_string_lossy()
        .into_owned()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .expect("JSON output is UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON value"))
        .collect()
}

#[test]
fn several_inputs_each_get_a_verdict_and_the_worst_exit_code() {
    let good = case_path("accept-spec-example");
    let bad = case_path("reject-bare-lf-strict");
    let out = acorn_cli(&["parse", "--json", &good, &bad, &good], b"");
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "one line per input");
    let want: Value = serde_json::from_str(
        &fs::read_to_string(corpus_dir().join("accept-spec-example.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(lines[0], want);
    assert_eq!(lines[1]["error"]["kind"], "bare-lf");
    assert_eq!(lines[1]["error"]["line"], 1);
    assert_eq!(lines[2], want);

    let out = acorn_cli(&["parse", &good, &good], b"");
    assert_eq!(out.status.code(), Some(0));
    let one = fs::read(&good).unwrap();
    let canon = check(&one, &ParseOptions::strict()).unwrap().to_canonical();
    assert_eq!(out.stdout, [&canon[..], &canon[..]].concat());
}

#[test]
fn unreadable_input_exits_2_after_checking_the_others() {
    let missing = corpus_dir().join("no-such-case.acorn");
    let missing = missing.to_string_lossy();
    let good = case_path("accept-seq-u64-max");
    let bad = case_path("reject-seq-u64-max-plus-1");
    let out = acorn_cli(&["parse", "--json", &missing, &good, &bad], b"");
    assert_eq!(out.status.code(), Some(2), "I/O trouble outranks invalid");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0]["seq"].as_u64(),
        Some(u64::MAX),
        "u64 above 2^53 printed exactly"
    );
    assert_eq!(lines[1]["error"]["kind"], "invalid-value:Seq");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-case.acorn"), "stderr: {stderr}");

    let out = acorn_cli(&["fmt", &missing], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["parse", "--no-such-flag"][..],
        &[][..],
        &["no-such-command"][..],
        &["parse", "-", "-"][..],
        &["fmt", "a", "b"][..],
    ] {
        let out = acorn_cli(args, b"");
        assert_eq!(out.status.code(), Some(2), "acorn-cli {args:?}");
        assert!(!out.stderr.is_empty(), "acorn-cli {args:?} says why");
    }
}

#[test]
fn help_documents_the_exit_codes() {
    for args in [
        &["--help"][..],
        &["parse", "--help"][..],
        &["fmt", "--help"][..],
    ] {
        let out = acorn_cli(args, b"");
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Exit status"), "{args:?}: {help}");
        for code in ["  0  ", "  1  ", "  2  "] {
            assert!(
                help.contains(code),
                "{args:?} documents exit {code}: {help}"
            );
        }
    }
}

#[test]
fn stdin_is_read_when_no_file_or_dash_is_given() {
    let raw = b"ACORN/1.0 001\r\nNeed-Seq: 3..4, 1\r\n\r\n";
    for args in [&["parse", "--json"][..], &["parse", "--json", "-"][..]] {
        let out = acorn_cli(args, raw);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let v = &json_lines(&out)[0];
        assert_eq!(v["status"], "001");
        assert_eq!(v["text"], "");
        assert_eq!(v["need_seq"], serde_json::json!([[1, 1], [3, 4]]));
    }
    let out = acorn_cli(&["parse"], b"REG / ACORN/1.0\nSeq: x\n\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("<stdin>:1:16: error: bare-lf at byte 15: expected CR before LF")
    );
    let out = acorn_cli(&["parse", "--lenient", "-"], b"REG / ACORN/1.0\nSeq: x\n\n");
    assert_eq!(out.status.code(), Some(1), "typed headers are validated");
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("<stdin>:2:6: error: invalid Seq value"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fmt_prints_the_canonical_form() {
    let raw =
        b"put \"/a\\x\" acorn/1.0.0\nX-Note:   \"  spaced\"  \nSeq:\t7\nContent-Length: 2\n\n{}";
    let out = acorn_cli(&["fmt", "--lenient"], raw);
    assert_eq!(out.status.code(), Some(1), "\\x is not an escape");
    let raw =
        b"put \"/a\\\\x\" acorn/1.0.0\nX-Note:   \"  spaced\"  \nSeq:\t7\nContent-Length: 2\n\n{}";
    let out = acorn_cli(&["fmt", "--lenient", "-"], raw);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "put \"/a\\\\x\" ACORN/1.0.0\r\nX-Note: \"  spaced\"\r\nSeq: 7\r\nContent-Length: 2\r\n\r\n{}"
    );
    let out = acorn_cli(&["fmt"], raw);
    assert_eq!(out.status.code(), Some(1), "strict by default");
    assert!(out.stdout.is_empty());
    let case = case_path("reject-obs-fold-tab");
    let out = acorn_cli(&["fmt", &case], b"");
    assert_eq!(out.status.code(), Some(1));
    let diag = String::from_utf8_lossy(&out.stderr);
    assert!(
        diag.starts_with(&format!("{case}:3:1: error: obs-fold")),
        "{diag}"
    );
}
