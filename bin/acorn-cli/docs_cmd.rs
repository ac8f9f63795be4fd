//! `acorn-cli completions SHELL` and `acorn-cli man [COMMAND]`: the shell
//! completion script and the roff man page, both generated from the same
//! clap definition as `--help`, so they cannot drift from the options.
//!
//! Install them the usual way, e.g.
//! `acorn-cli completions bash > ~/.local/share/bash-completion/completions/acorn-cli`
//! and `acorn-cli man > ~/.local/share/man/man1/acorn-cli.1`.

use crate::{Cli, Status};
use anyhow::{bail, Context};
use clap::CommandFactory;
use clap_complete::Shell;
use std::io::Write;

/// `acorn-cli completions SHELL`.
#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// `acorn-cli man [COMMAND]`.
#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// A subcommand's own page (acorn-cli-COMMAND(1)); without it, the
    /// page of acorn-cli(1), which lists every subcommand.
    command: Option<String>,
}

/// Write the completion script for `args.shell` to stdout.
pub(crate) fn completions(args: &CompletionsArgs) -> anyhow::Result<Status> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "acorn-cli", &mut out);
    write_stdout(&out)
}

/// Write the man page (roff) to stdout.
pub(crate) fn man(args: &ManArgs) -> anyhow::Result<Status> {
    let root = Cli::command();
    let page = match &args.command {
        None => root,
        Some(name) => {
            let Some(sub) = root.find_subcommand(name) else {
                let names: Vec<_> = root.get_subcommands().map(|c| c.get_name()).collect();
                bail!("no subcommand {name:?}; one of: {}", names.join(", "));
            };
            // Named as man(1) expects a subcommand's page: acorn-cli-send(1).
            sub.clone()
                .name(format!("acorn-cli-{}", sub.get_name()))
                .version(root.get_version().unwrap_or_default().to_owned())
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .context("rendering the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<Status> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    Ok(Status::Ok)
}
