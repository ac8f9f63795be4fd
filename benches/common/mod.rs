//! What the three benchmarks share: finding criterion's estimates of the
//! run that just finished, so each can print its ratios beside criterion's
//! own report, and telling a measurement run from `cargo test --benches`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Where criterion writes its reports (criterion 0.5's order of choices,
/// with the executable's own target directory as the fallback).
pub fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(Path::new(&target).join("criterion"));
    }
    // target/<profile>/deps/<bench>-<hash>
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The typical time criterion printed for benchmark `id` of `group` in this
/// run (slope when it was estimated, mean otherwise); `None` when the
/// estimate is missing or older than `since` (left over from an earlier run).
pub fn criterion_estimate(group: &str, id: &str, since: SystemTime) -> Option<f64> {
    let file = criterion_dir()?
        .join(group.replace('/', "_"))
        .join(id)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&file).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
    ["slope", "mean"]
        .iter()
        .find_map(|k| json.get(k)?.get("point_estimate")?.as_f64())
}

/// The criterion run every benchmark starts with: `benches` under the
/// command line's options, then criterion's summary. Returns when the run
/// started if it was a real measurement run (so ratios can follow from its
/// estimates), `None` otherwise.
pub fn run_criterion(benches: fn()) -> Option<SystemTime> {
    let started = SystemTime::now();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
    measuring().then_some(started)
}

/// [`run_criterion`], unless `ACORN_BENCH_LOOP` asks for a fixed loop of
/// one contender instead (for instruction counts and profiles, which need a
/// run that does nothing else): then `fixed_loop` gets its value and there
/// are no estimates (`None`).
#[allow(dead_code)] // Not every benchmark has a fixed loop.
pub fn fixed_loop_or_criterion(fixed_loop: fn(&str), benches: fn()) -> Option<SystemTime> {
    match std::env::var("ACORN_BENCH_LOOP") {
        Ok(spec) => {
            fixed_loop(&spec);
            None
        }
        Err(_) => run_criterion(benches),
    }
}

/// Whether this is a real measurement run: `cargo test --benches` and
/// `cargo bench -- --test` run each benchmark once, `--list` lists them,
/// `--profile-time` profiles; none of them leaves estimates worth a ratio.
fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    has("--bench") && !has("--test") && !has("--list") && !has("--profile-time")
}
