//! `aria-bridge tokenize`.

use std::process::ExitCode;

/// Flags of `tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `tokenize`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`tokenize` is not built yet")
}
