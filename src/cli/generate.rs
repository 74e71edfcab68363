//! `aria-bridge generate`.

use std::process::ExitCode;

/// Flags of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `generate`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`generate` is not built yet")
}
