//! A library user (`default-features = false`) must not build the CLI's
//! dependencies: `cargo tree -e normal --no-default-features` of this crate
//! names none of them. Runs offline against the committed Cargo.lock.

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

/// The crate names (first word of each line) of a `cargo tree --prefix none` listing.
fn tree(args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "-p",
            "acorn",
        ])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
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
