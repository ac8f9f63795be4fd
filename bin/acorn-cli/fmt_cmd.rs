//! `acorn-cli fmt`: rewrite one PDU in canonical form.
//!
//! The canonical form is what this project's encoder writes for the same
//! PDU: `Name: value` headers, quoting only where needed, one
//! `Content-Length` equal to the body, `ACORN` in capitals.

use crate::input::{self, Source};
use crate::{parse_cmd, Status};
use anyhow::Context as _;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Accept a bare LF as a line end (for hand-typed input).
    #[arg(long)]
    lenient: bool,
    /// A file holding one datagram PDU; `-` or nothing reads stdin.
    #[arg(value_name = "FILE|-")]
    input: Option<PathBuf>,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<Status> {
    let opts = input::options(args.lenient);
    let source = match &args.input {
        None => Source::Stdin,
        Some(p) => input::sources(std::slice::from_ref(p))?.remove(0),
    };
    let bytes = source.read(input::read_cap(&opts.limits))?;
    let mut out = std::io::stdout().lock();
    let status = parse_cmd::report(&mut out, &source, &bytes, &opts, false)?;
    out.flush().context("writing to stdout")?;
    Ok(status)
}
