//! `acorn-cli ladder` on a real `listen --json` log, and the page it
//! writes loaded in a real headless browser (Debian's chromium, which
//! `.ci/run` installs): the screenshot must show the lanes and the arrows
//! in their colours. Loopback only, every child bounded.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod cli_support;
use cli_support::{run, send, Listener};

/// The lane colour (`.lane` in the page's CSS) and the normal arrow's.
const LANE: [u8; 3] = [0x1f, 0x4e, 0x9c];
const ARROW: [u8; 3] = [0x1a, 0x8f, 0x3c];

/// A log of one request and its ACK and reply, from a real listen.
fn listen_log() -> String {
    let l = Listener::start(&["udp://127.0.0.1:0", "--json"]);
    let r = send(&[l.addr()], "GET /ladder ACORN/1.0\nTX-ID: lad-1\n\n");
    assert_eq!(r.code, Some(0), "stderr: {}", r.stderr);
    // The reply is logged before send prints it; the log is flushed per line.
    l.wait_log("\"200\"")
}

#[test]
fn ladder_draws_a_listen_log() {
    let log = listen_log();
    let page = run(&["ladder", "-"], &log, Duration::from_secs(20));
    assert_eq!(page.code, Some(0), "stderr: {}", page.stderr);
    let html = page.stdout;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert_eq!(html.matches("<section>").count(), 1, "one peer: {html}");
    // The request in, its reply out (and the ACK, if the node sent one).
    assert!(html.matches("<polygon class=\"head normal\"").count() >= 2);
    assert!(html.contains("GET /ladder ACORN/1.0"));
    assert!(html.contains("ACORN/1.0 200 OK"));
}

/// Counts the pixels of `png` within a small distance of `rgb`.
fn pixels_of(png: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png).expect("open the screenshot"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let step = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => panic!("unexpected colour type {other:?}"),
    };
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 8))
        .count()
}

#[test]
fn the_ladder_page_renders_in_headless_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
    else {
        eprintln!("SKIPPED: no chromium binary (CI installs it: .ci/run)");
        return;
    };
    let log = listen_log();
    let page = run(&["ladder", "-"], &log, Duration::from_secs(20));
    assert_eq!(page.code, Some(0), "stderr: {}", page.stderr);
    let dir = std::env::temp_dir().join(format!("acorn-ladder-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let html = dir.join("ladder.html");
    std::fs::write(&html, &page.stdout).unwrap();
    let shot = dir.join("ladder.png");
    let out = Command::new("timeout")
        .arg("60")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .expect("run chromium");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {stderr}");
    // The page has no script; a console message would be the CSP refusing
    // a fetch the page should not make.
    assert!(
        !stderr.contains("CONSOLE") && !stderr.contains("Content Security Policy"),
        "{stderr}"
    );
    let bytes = std::fs::metadata(&shot).expect("a screenshot").len();
    assert!(bytes > 5_000, "screenshot of {bytes} bytes");
    // Two lanes of 4 px over hundreds of pixels, two arrows of 2 px over
    // ~400: far more than anti-aliased text would give by chance.
    let lane = pixels_of(&shot, LANE);
    let arrow = pixels_of(&shot, ARROW);
    assert!(lane > 1_000, "lane pixels: {lane}");
    assert!(arrow > 1_000, "arrow pixels: {arrow}");
    if std::env::var_os("ACORN_KEEP_SCREENSHOT").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("screenshot kept: {}", shot.display());
    }
}
