//! Where PDUs come from (files or stdin) and how one is checked.
//!
//! Shared by every subcommand that reads PDUs, so that they all name inputs
//! the same way in diagnostics, cap how much they read the same way, and
//! agree on what "valid" means: it parses *and* every typed header decodes.

use acorn::wire::{parse_datagram, Limits, ParseError, ParseOptions, PduRef};
use anyhow::Context as _;
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One input named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// `-`, or no input named at all.
    Stdin,
    File(PathBuf),
}

impl Source {
    /// How diagnostics name this input (`<stdin>` for `-`).
    pub(crate) fn name(&self) -> Cow<'_, str> {
        match self {
            Source::Stdin => Cow::Borrowed("<stdin>"),
            Source::File(p) => p.to_string_lossy(),
        }
    }

    /// Read the whole input, but never more than `cap` bytes: anything
    /// longer is over the parser's limits anyway (see [`read_cap`]), so a
    /// huge file or an endless pipe cannot make us allocate without bound.
    pub(crate) fn read(&self, cap: u64) -> anyhow::Result<Vec<u8>> {
        let mut buf = Vec::new();
        match self {
            Source::Stdin => {
                std::io::stdin()
                    .lock()
                    .take(cap)
                    .read_to_end(&mut buf)
                    .context("reading <stdin>")?;
            }
            Source::File(p) => {
                std::fs::File::open(p)
                    .and_then(|f| f.take(cap).read_to_end(&mut buf))
                    .with_context(|| format!("reading {}", p.display()))?;
            }
        }
        Ok(buf)
    }
}

/// Turn the positional arguments into sources: none means stdin, `-` means
/// stdin. Naming stdin twice is a usage error (the second read would see
/// an empty stream and report a confusing "empty PDU").
pub(crate) fn sources(args: &[PathBuf]) -> anyhow::Result<Vec<Source>> {
    if args.is_empty() {
        return Ok(vec![Source::Stdin]);
    }
    let out: Vec<Source> = args
        .iter()
        .map(|a| {
            if a.as_path() == Path::new("-") {
                Source::Stdin
            } else {
                Source::File(a.clone())
            }
        })
        .collect();
    if out.iter().filter(|s| **s == Source::Stdin).count() > 1 {
        anyhow::bail!("stdin (`-`) can be named only once");
    }
    Ok(out)
}

/// The most bytes worth reading for one datagram PDU under `limits`: a
/// maximal head, a maximal body, and one byte more so that an over-long
/// input is still seen as over the body limit rather than silently cut to
/// a valid PDU.
pub(crate) fn read_cap(limits: &Limits) -> u64 {
    (limits.max_head_len as u64)
        .saturating_add(limits.max_body_len as u64)
        .saturating_add(1)
}

/// Parse options from the shared `--lenient` flag.
pub(crate) fn options(lenient: bool) -> ParseOptions {
    if lenient {
        ParseOptions::lenient()
    } else {
        ParseOptions::strict()
    }
}

/// Parse `bytes` as one datagram PDU and decode every typed header: a PDU
/// with a malformed `Seq`, identity, date… must not be acted on, so the CLI
/// calls it invalid even though its lines are well formed.
pub(crate) fn check<'a>(bytes: &'a [u8], opts: &ParseOptions) -> Result<PduRef<'a>, ParseError> {
    let pdu = parse_datagram(bytes, opts)?;
    pdu.validate(&opts.limits)?;
    Ok(pdu)
}

/// The one-line diagnostic `NAME:LINE:COL: error: MESSAGE` (the form
/// compilers use, so editors can jump to the spot).
pub(crate) fn diagnostic(source: &Source, input: &[u8], e: &ParseError) -> String {
    let pos = e.position(input);
    format!(
        "{}:{}:{}: error: {}",
        source.name(),
        pos.line,
        pos.column,
        e
    )
}
