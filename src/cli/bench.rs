//! `aria-bridge bench`.

use std::process::ExitCode;

/// Flags of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `bench`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`bench` is not built yet")
}
