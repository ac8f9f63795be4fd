//! `acorn-cli`: the command-line front end of the acorn toolkit.
//!
//! This file only owns argument parsing (clap), dispatch and the mapping of
//! outcomes to exit codes. Each subcommand lives in its own module with an
//! `Args` struct and a `run` function returning a [`Status`], so adding one
//! (`send`, `listen`, `conformance`…) touches this file in two places: the
//! [`Command`] variant and its arm in [`run`].

mod addressing;
mod conformance_cmd;
mod docs_cmd;
mod duration;
mod fmt_cmd;
mod input;
mod json;
mod ladder_cmd;
mod listen_cmd;
mod load_cmd;
mod padding;
mod parse_cmd;
mod relay_cmd;
mod send_cmd;
mod show;
mod transport_args;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Exit codes, documented in `--help` (keep [`EXIT_CODES_HELP`] in sync).
///
/// Ordered by severity so that a command handling several inputs can keep
/// the worst outcome with `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Status {
    /// Everything asked for succeeded; every input was valid.
    Ok = 0,
    /// The command ran, but at least one input was rejected (invalid PDU).
    Invalid = 1,
    /// The command could not do its job: bad usage, unreadable input,
    /// unwritable output. clap's own usage errors also exit with 2.
    Trouble = 2,
    /// `send`: no final reply before the timeout.
    Timeout = 3,
    /// `send --check-status`: the final reply is 4xx or 5xx.
    Rejected = 4,
    /// `load`: a message was lost, duplicated or delivered out of order.
    Lost = 5,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(s as u8)
    }
}

const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success: every input is a valid PDU
  1  at least one input is not a valid PDU (malformed, over a limit, or a
     typed header with an invalid value)
  2  usage error, or an input or output could not be read or written";

/// The top-level summary; each subcommand's `--help` has its own table.
const ALL_EXIT_CODES_HELP: &str = "\
Exit status (details in each command's --help):
  0  success
  1  an input is not a valid PDU; conformance: a case failed
  2  usage error, or an I/O error
  3  send: no final reply before --timeout; load: nothing was answered
  4  send --check-status: the final reply is 4xx or 5xx
     load: a session was refused, or a reply was not 2xx
  5  load: a message was lost, duplicated or delivered out of order

Set RUST_LOG (e.g. RUST_LOG=acorn=debug) to see the library's tracing on stderr.";

/// Toolkit for the Acorn text protocol (ACORN/1.0).
#[derive(Debug, Parser)]
#[command(name = "acorn-cli", version, about, after_help = ALL_EXIT_CODES_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse and validate PDUs; print their canonical form or JSON.
    #[command(after_help = EXIT_CODES_HELP)]
    Parse(parse_cmd::Args),
    /// Print the canonical form of one PDU.
    #[command(after_help = EXIT_CODES_HELP)]
    Fmt(fmt_cmd::Args),
    /// Send one PDU to a peer and print what comes back, up to the final reply.
    #[command(after_help = send_cmd::EXIT_HELP)]
    Send(send_cmd::Args),
    /// Run a reference peer: answer every request with 200 OK echoing its
    /// body, and log every PDU and engine event.
    #[command(after_help = listen_cmd::EXIT_HELP)]
    Listen(listen_cmd::Args),
    /// Put load on a peer: concurrent sessions (or plain transactions) at a
    /// rate or as fast as possible; check delivery, report throughput and
    /// latency percentiles.
    #[command(after_help = load_cmd::EXIT_HELP)]
    Load(load_cmd::Args),
    /// Relay UDP between clients and a peer, dropping, duplicating,
    /// reordering and delaying datagrams at seeded random rates.
    #[command(after_help = relay_cmd::EXIT_HELP)]
    Relay(relay_cmd::Args),
    /// Play the session scenario corpus against a live peer (UDP or TCP)
    /// and grade each case: pass, non-strict, fail or unsupported.
    #[command(after_help = conformance_cmd::EXIT_HELP)]
    Conformance(conformance_cmd::Args),
    /// Draw a `listen --json` log as ladder diagrams in a self-contained
    /// HTML page.
    #[command(after_help = ladder_cmd::EXIT_HELP)]
    Ladder(ladder_cmd::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs_cmd::CompletionsArgs),
    /// Print the man page (roff) of acorn-cli or of one subcommand.
    Man(docs_cmd::ManArgs),
}

fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Parse(args) => parse_cmd::run(&args),
        Command::Fmt(args) => fmt_cmd::run(&args),
        Command::Send(args) => send_cmd::run(&args),
        Command::Listen(args) => listen_cmd::run(&args),
        Command::Load(args) => load_cmd::run(&args),
        Command::Relay(args) => relay_cmd::run(&args),
        Command::Conformance(args) => conformance_cmd::run(&args),
        Command::Ladder(args) => ladder_cmd::run(&args),
        Command::Completions(args) => docs_cmd::completions(&args),
        Command::Man(args) => docs_cmd::man(&args),
    }
}

fn main() -> ExitCode {
    // Usage errors exit with 2 here; `--help` and `--version` with 0.
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match run(cli) {
        Ok(status) => status.into(),
        Err(e) => {
            eprintln!("acorn-cli: error: {e:#}");
            Status::Trouble.into()
        }
    }
}
