//! `aria-bridge report`: figures and advice from a `--log` file, and plots.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use aria_bridge::report::{self, piano_roll, plot};

/// Flags of `report`.
#[derive(Debug, clap::Args)]
#[command(arg_required_else_help = true)]
pub struct Args {
    /// The event log written with `--log` (JSON lines).
    #[arg(required_unless_present = "piano_roll")]
    pub log: Option<PathBuf>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Draw a PNG: generation time per bar against the deadline (with a log), or the piano roll
    /// (with `--piano-roll`).
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
    /// A session file written by `jam --out`: draw its human and generated notes over bar lines
    /// (needs `--plot`).
    #[arg(long, value_name = "SESSION.mid", requires = "plot")]
    pub piano_roll: Option<PathBuf>,
}

/// Runs `report`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(mid) = &args.piano_roll {
        let out = args
            .plot
            .as_deref()
            .context("--piano-roll needs --plot OUT.png")?;
        let roll = piano_roll::piano_roll_png(mid, out)?;
        eprintln!(
            "piano roll: {} ({} human notes, {} generated, {} bars)",
            out.display(),
            roll.human.len(),
            roll.ai.len(),
            roll.bar_lines.len()
        );
        if args.log.is_none() {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let Some(log) = &args.log else {
        return Ok(ExitCode::SUCCESS);
    };
    let r = report::read_report(log)?;
    let text = if args.json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        report::render_text(&r)
    };
    // A reader that stops early (`| head`) is not an error.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if let (Some(out), None) = (&args.plot, &args.piano_roll) {
        plot::latency_png(&r, out)?;
        eprintln!("plot: {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}
