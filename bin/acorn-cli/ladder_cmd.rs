//! `acorn-cli ladder LOG`: a `listen --json` log drawn as ladder diagrams
//! (one per peer) in a self-contained HTML page on stdout.
//!
//! Every line of the log is one JSON object. Wire lines (`{"dir":"in"|"out",
//! "peer":..., "pdu":{...}}` or `{..., "error":{...}}`) become arrows:
//! the node that wrote the log is the left lane, the peer the right.
//! Everything else (engine events, `relay --json` reports, lines that are
//! not JSON) is counted and named under the diagram, never fatal: logs
//! gain fields and kinds of line over time, and a tool that reads them
//! must not break when they do. Extra keys are ignored; a time in seconds
//! under `elapsed_s`, `time_s` or `t` is drawn when a line has one.

use crate::Status;
use acorn::conformance::ladder::{self, Arrow, Direction, Ladder, Mark};
use anyhow::Context as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// `ladder --help`.
pub(crate) const EXIT_HELP: &str = "\
Reads the JSON log of `acorn-cli listen --json` (one object per line) and
prints an HTML page with one ladder diagram per peer: this node on the
left, the peer on the right, one arrow per PDU, time going down; bytes that
did not parse are drawn red. Lines that are not PDUs are counted.

Exit status:
  0  the page was written
  2  the log cannot be read, or stdout cannot be written";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The log file; `-` or nothing reads stdin.
    #[arg(value_name = "LOG|-")]
    log: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let text = match args.log.as_deref() {
        None => std::io::read_to_string(std::io::stdin()).context("reading stdin")?,
        Some(p) if p.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).context("reading stdin")?
        }
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
    };
    let name = match args.log.as_deref() {
        Some(p) if p.as_os_str() != "-" => p.display().to_string(),
        _ => "stdin".to_owned(),
    };
    let html = render(&name, &text);
    let mut out = std::io::stdout().lock();
    out.write_all(html.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to stdout")?;
    Ok(Status::Ok)
}

/// The page for log `text` named `name`.
pub(crate) fn render(name: &str, text: &str) -> String {
    let mut peers: BTreeMap<String, Ladder> = BTreeMap::new();
    let mut other: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            *other
                .entry("lines that are not JSON".to_owned())
                .or_default() += 1;
            continue;
        };
        let Some(arrow) = arrow(&v) else {
            let kind = if let Some(e) = v.get("event").and_then(Value::as_str) {
                format!("engine event `{e}`")
            } else if v.get("report").is_some() {
                "relay reports".to_owned()
            } else {
                "other lines".to_owned()
            };
            *other.entry(kind).or_default() += 1;
            continue;
        };
        let peer = v
            .get("peer")
            .and_then(Value::as_str)
            .unwrap_or("(unknown peer)")
            .to_owned();
        peers
            .entry(peer.clone())
            .or_insert_with(|| Ladder {
                title: format!("{name}: with {peer}"),
                left: "this node".to_owned(),
                right: peer,
                ..Ladder::default()
            })
            .arrows
            .push(arrow);
    }
    let mut body = String::new();
    let pdus: usize = peers.values().map(|l| l.arrows.len()).sum();
    body.push_str(&format!(
        "<p>{} PDUs with {} peer(s)</p>\n",
        pdus,
        peers.len()
    ));
    if !other.is_empty() {
        body.push_str("<p>Not drawn:</p>\n<ul>\n");
        for (kind, n) in &other {
            body.push_str(&format!("<li>{}: {n}</li>\n", ladder::escape(kind)));
        }
        body.push_str("</ul>\n");
    }
    for l in peers.values() {
        body.push_str(&l.section());
    }
    ladder::page(&format!("ladder of {name}"), &body)
}

/// The arrow of a wire line, `None` for any other line.
fn arrow(v: &Value) -> Option<Arrow> {
    let direction = match v.get("dir")?.as_str()? {
        "in" => Direction::Left,
        "out" => Direction::Right,
        _ => return None,
    };
    let at = ["elapsed_s", "time_s", "t"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_f64))
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64);
    if let Some(pdu) = v.get("pdu") {
        let s = |k: &str| pdu.get(k).and_then(Value::as_str).unwrap_or("");
        let label = if s("kind") == "request" {
            format!("{} {} {}", s("method"), s("target"), s("version"))
        } else {
            format!("{} {} {}", s("version"), s("status"), s("text"))
        };
        let mut detail = label.clone();
        for h in pdu
            .get("headers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let (Some(n), Some(val)) = (
                h.get(0).and_then(Value::as_str),
                h.get(1).and_then(Value::as_str),
            ) {
                detail.push_str(&format!("\n{n}: {val}"));
            }
        }
        if let Some(b) = pdu.get("body").and_then(Value::as_str) {
            if !b.is_empty() {
                detail.push_str("\n\n");
                detail.push_str(b);
            }
        }
        return Some(Arrow {
            direction,
            at,
            label: label.trim().to_owned(),
            detail,
            mark: Mark::Normal,
            note: None,
        });
    }
    let err = v.get("error")?;
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("does not parse");
    Some(Arrow {
        direction,
        at,
        label: "(does not parse)".to_owned(),
        detail: err.to_string(),
        mark: Mark::Failed,
        note: Some(message.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listen_log_draws_one_ladder_per_peer_and_counts_the_rest() {
        let log = r#"{"dir":"in","peer":"udp://127.0.0.1:9","tx_id":"7","elapsed_s":0.001,"pdu":{"kind":"request","version":"ACORN/1.0","method":"GET","target":"/x","status":null,"text":null,"headers":[["TX-ID","7"]],"body":""}}
{"dir":"out","peer":"udp://127.0.0.1:9","pdu":{"kind":"reply","version":"ACORN/1.0","method":null,"target":null,"status":"200","text":"OK","headers":[["TX-ID","7"]],"body":"hi"}}
{"dir":"in","peer":"udp://127.0.0.1:10","error":{"message":"bare CR at 3","kind":"bare-cr"}}
{"event":"violation","peer":"udp://127.0.0.1:10"}
{"report":"final"}
not json
"#;
        let html = render("x.log", log);
        assert_eq!(html.matches("<section>").count(), 2);
        assert_eq!(html.matches("<polygon class=\"head").count(), 3);
        assert!(html.contains("GET /x ACORN/1.0"));
        assert!(html.contains("ACORN/1.0 200 OK"));
        assert!(html.contains("+1.0ms"));
        assert_eq!(html.matches("class=\"arrow failed\"").count(), 1);
        assert!(html.contains("bare CR at 3"));
        for kind in [
            "engine event `violation`: 1",
            "relay reports: 1",
            "not JSON: 1",
        ] {
            assert!(html.contains(&ladder::escape(kind)), "{kind}");
        }
    }
}
