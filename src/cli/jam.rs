//! `aria-bridge jam`.

use std::process::ExitCode;

/// Flags of `jam`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `jam`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`jam` is not built yet")
}
