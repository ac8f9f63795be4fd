//! What a user of the published crate gets, asked of cargo itself (offline,
//! against the committed Cargo.lock):
//! - a library user (`default-features = false`) builds none of the CLI's
//!   dependencies (`cargo tree -e normal --no-default-features`);
//! - the package (`cargo package --list`) is the library and its binary,
//!   their docs, the grammar, the corpus, the licences and changelog, and
//!   not CI, fuzzing, benchmarks or the test suite.

use std::process::Command;

/// Crates only `acorn-cli` needs (feature `cli`).
const CLI_ONLY: &[&str] = &[
    "clap",
    "clap_complete",
    "clap_mangen",
    "indicatif",
    "hdrhistogram",
    "tracing-subscriber",
    "anyhow",
    "serde_json",
];

/// The first word of each line cargo prints for `args` (run offline in the crate's root).
fn cargo_words(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .arg("--offline")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The crate names of `cargo tree -e normal` with these extra arguments.
fn tree(args: &[&str]) -> Vec<String> {
    let mut all = vec!["tree", "-e", "normal", "--prefix", "none", "-p", "acorn"];
    all.extend_from_slice(args);
    cargo_words(&all)
}

#[test]
fn library_without_default_features_has_no_cli_dependencies() {
    let lib = tree(&["--no-default-features"]);
    assert!(
        lib.iter().any(|c| c == "tokio"),
        "the tree lists the library's own deps: {lib:?}"
    );
    for c in CLI_ONLY {
        assert!(!lib.iter().any(|n| n == c), "{c} is in the library's tree");
    }
}

#[test]
fn default_features_bring_the_cli_dependencies() {
    let all = tree(&[]);
    for c in CLI_ONLY {
        assert!(
            all.iter().any(|n| n == c),
            "{c} is missing with the default `cli` feature"
        );
    }
}

#[test]
fn package_holds_the_library_docs_grammar_and_corpus_only() {
    let files = cargo_words(&["package", "--list", "--allow-dirty"]);
    for f in [
        "Cargo.toml",
        "README.md",
        "CHANGELOG.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "src/lib.rs",
        "bin/acorn-cli/main.rs",
        "examples/client.rs",
        "docs/protocol.md",
        "grammar/acorn.abnf",
        "corpus/pdu/accept-spec-example.acorn",
    ] {
        assert!(files.iter().any(|n| n == f), "{f} is not in the package");
    }
    assert!(
        files.iter().any(|n| n.starts_with("corpus/sessions/")),
        "no session scenarios"
    );
    for dir in [".ci/", "fuzz/", "benches/", "tests/", "target/"] {
        let stray: Vec<_> = files.iter().filter(|n| n.starts_with(dir)).collect();
        assert!(stray.is_empty(), "{dir} is packaged: {stray:?}");
    }
}

/// A test that runs `acorn-cli` cannot build without the binary, so each
/// must say `required-features = ["cli"]` in Cargo.toml; otherwise
/// `cargo test --no-default-features` fails to compile instead of skipping it.
#[test]
fn every_test_running_the_binary_requires_the_cli_feature() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(root.join("tests")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Spelled in two halves so this file does not match itself.
        let runs_binary = text.contains(concat!("CARGO_BIN_EXE_", "acorn"))
            || text.contains(concat!("mod cli", "_support;"));
        if !runs_binary {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy();
        let entry = format!("[[test]]\nname = \"{name}\"\nrequired-features = [\"cli\"]");
        assert!(manifest.contains(&entry), "Cargo.toml needs:\n{entry}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} tests run the binary?");
}
