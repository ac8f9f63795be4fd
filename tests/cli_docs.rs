//! `acorn-cli completions SHELL` and `acorn-cli man`: each generates
//! non-empty output that names every subcommand `--help` lists; the bash
//! script is valid bash; the man page is roff that `man -l` renders (when
//! `man` is installed; otherwise its `.TH` header and subcommand entries
//! are checked in the source).

use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_acorn-cli");

fn acorn(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("acorn-cli runs")
}

/// stdout of a run that must succeed.
fn stdout_of(args: &[&str]) -> String {
    let out = acorn(args);
    assert!(
        out.status.success(),
        "acorn-cli {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The subcommands `acorn-cli --help` lists (clap's own `help` aside).
fn subcommands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|n| n != "help")
        .collect();
    for expected in [
        "parse",
        "send",
        "listen",
        "conformance",
        "completions",
        "man",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not in {names:?}"
        );
    }
    names
}

#[test]
fn completions_name_every_subcommand() {
    let subs = subcommands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.len() > 200, "{shell}: {} bytes", script.len());
        for sub in &subs {
            assert!(script.contains(sub.as_str()), "{shell} script lacks {sub}");
        }
    }
}

#[test]
fn bash_completion_is_valid_bash() {
    let script = stdout_of(&["completions", "bash"]);
    let file =
        std::env::temp_dir().join(format!("acorn-cli-completion-{}.bash", std::process::id()));
    std::fs::write(&file, &script).unwrap();
    let st = Command::new("bash").arg("-n").arg(&file).status();
    let _ = std::fs::remove_file(&file);
    match st {
        Ok(st) => assert!(st.success(), "bash -n refused the script"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "bash: {e}"),
    }
}

#[test]
fn completions_refuse_an_unknown_shell_with_usage_code() {
    let out = acorn(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn man_page_has_a_title_and_every_subcommand() {
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH acorn-cli 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in subcommands() {
        // roff escapes '-': acorn\-cli\-send(1)
        let entry = format!("acorn\\-cli\\-{}(1)", sub);
        assert!(page.contains(&entry), "no {entry} in the man page");
    }
    let send = stdout_of(&["man", "send"]);
    assert!(send.contains(".TH acorn-cli-send 1"), "{send}");
    assert!(
        send.contains("\\-\\-timeout"),
        "send's page lists its options"
    );
}

#[test]
fn man_page_renders() {
    let file = std::env::temp_dir().join(format!("acorn-cli-{}.1", std::process::id()));
    std::fs::write(&file, stdout_of(&["man"])).unwrap();
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .output();
    let _ = std::fs::remove_file(&file);
    match out {
        Ok(out) => {
            assert!(
                out.status.success(),
                "man -l: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
            assert!(text.contains("acorn-cli-conformance(1)"), "{text}");
        }
        // No man(1) here: man_page_has_a_title_and_every_subcommand checked the roff.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "man: {e}"),
    }
}

#[test]
fn man_for_an_unknown_subcommand_is_a_usage_error() {
    let out = acorn(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of: parse"));
}
