//! `acorn-cli parse`: check PDUs, print each one canonically or as JSON.

use crate::input::{self, Source};
use crate::{json, Status};
use anyhow::Context as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Print one JSON object per input, one per line (errors too, as
    /// {"error": {...}}), instead of the canonical PDU bytes.
    #[arg(long)]
    json: bool,
    /// Accept a bare LF as a line end (for hand-typed input).
    #[arg(long)]
    lenient: bool,
    /// Files, each holding one datagram PDU; `-` or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    inputs: Vec<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let opts = input::options(args.lenient);
    let cap = input::read_cap(&opts.limits);
    let sources = input::sources(&args.inputs)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut status = Status::Ok;
    for source in &sources {
        let bytes = match source.read(cap) {
            Ok(b) => b,
            Err(e) => {
                // Keep going: one unreadable file should not hide the
                // verdict on the others. The exit code still says 2.
                out.flush().context("writing to stdout")?;
                eprintln!("acorn-cli: error: {e:#}");
                status = status.max(Status::Trouble);
                continue;
            }
        };
        status = status.max(report(&mut out, source, &bytes, &opts, args.json)?);
    }
    out.flush().context("writing to stdout")?;
    Ok(status)
}

/// Check one input and print its verdict: the canonical bytes or JSON on
/// stdout, or a diagnostic. `Err` only for output failures.
pub(crate) fn report(
    out: &mut impl Write,
    source: &Source,
    bytes: &[u8],
    opts: &acorn::wire::ParseOptions,
    as_json: bool,
) -> anyhow::Result<Status> {
    let checked = input::check(bytes, opts).and_then(|pdu| {
        if as_json {
            json::pdu(&pdu, &opts.limits).map(Output::Json)
        } else {
            Ok(Output::Canonical(pdu.to_canonical()))
        }
    });
    let status = match checked {
        Ok(Output::Json(v)) => {
            writeln!(out, "{v}").context("writing to stdout")?;
            Status::Ok
        }
        Ok(Output::Canonical(b)) => {
            out.write_all(&b).context("writing to stdout")?;
            Status::Ok
        }
        Err(e) if as_json => {
            writeln!(out, "{}", json::error(&e, bytes)).context("writing to stdout")?;
            Status::Invalid
        }
        Err(e) => {
            // Flush first so that stdout and stderr, if they go to the same
            // terminal, show the verdicts in input order.
            out.flush().context("writing to stdout")?;
            eprintln!("{}", input::diagnostic(source, bytes, &e));
            Status::Invalid
        }
    };
    Ok(status)
}

enum Output {
    Json(serde_json::Value),
    Canonical(bytes::Bytes),
}
