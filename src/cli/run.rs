//! `aria-bridge run`: the live daemon beside a DAW.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aria_bridge::clock::internal;
use aria_bridge::config::ClockSource;
use aria_bridge::engine::live::{Live, LiveHooks};
use aria_bridge::midi::ports::Ports;

use super::common::{self, ModelFlags};
use super::logging::LogFlags;

/// Flags of `run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Configuration file (defaults apply to every key it leaves out).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Run our own clock at this tempo instead of following a master (sets `clock.source =
    /// "internal"` and `clock.bpm`).
    #[arg(long)]
    pub bpm: Option<f64>,
    /// Connect the note input to this port (substring, case-insensitive) instead of creating
    /// "aria-bridge in".
    #[arg(long)]
    pub input_port: Option<String>,
    /// Connect to this output port instead of creating "aria-bridge out".
    #[arg(long)]
    pub output_port: Option<String>,
    /// Port carrying the clock, when it is not the note input.
    #[arg(long)]
    pub clock_port: Option<String>,
    /// Write one line per sent message (intended instant, send instant in CLOCK_MONOTONIC ns,
    /// bytes in hex) to this file, to measure output timing.
    #[arg(long)]
    pub send_log: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub log: LogFlags,
}

/// Runs the daemon until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = common::load_config(args.config.as_deref())?;
    if let Some(bpm) = args.bpm {
        cfg.clock.source = ClockSource::Internal;
        cfg.clock.bpm = bpm;
    }
    for (slot, flag) in [
        (&mut cfg.midi.input_port, &args.input_port),
        (&mut cfg.midi.output_port, &args.output_port),
        (&mut cfg.midi.clock_port, &args.clock_port),
    ] {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    }
    args.model.apply(&mut cfg);
    cfg.validate()
        .context("invalid settings (from the config file or the flags)")?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
            .context("cannot install the Ctrl-C/SIGTERM handler")?;
    }

    // Kept alive for the whole run: dropping it flushes the buffered lines.
    let log_file = args.log.open()?;
    let generator = common::load_generator(&cfg)?;
    tracing::info!("model: {}", generator.describe());
    let mut ports = Ports::open_output(&cfg.midi)?;
    if let Some(path) = &args.send_log {
        ports
            .log_sends(path)
            .with_context(|| format!("cannot write the send log {}", path.display()))?;
    }
    let live = Live::start(
        &cfg,
        generator,
        ports.output(),
        LiveHooks {
            thru: Some(ports.output()),
            events: None,
            log: log_file.as_ref().map(|f| f.sink()),
        },
    )?;
    ports.open_inputs(live.input())?;
    let priority = cfg.playback.realtime_priority;
    if priority > 0 {
        aria_bridge::engine::live::promote_logged(
            "midi sender",
            priority,
            ports.promote_sender(priority),
        );
    }
    for (link, name) in ports.connected() {
        tracing::info!("{link}: {name}");
    }

    let clock = if cfg.clock.source == ClockSource::Internal {
        let (input, mut out, stop, bpm) =
            (live.input(), ports.output(), stop.clone(), cfg.clock.bpm);
        tracing::info!("internal clock at {bpm} BPM (sent on the output too)");
        let handle = std::thread::Builder::new()
            .name("aria-clock".into())
            .spawn(move || internal::run_live(bpm, &input, &mut *out, &stop))
            .context("cannot start the internal clock thread")?;
        if priority > 0 {
            aria_bridge::engine::live::promote_logged(
                "aria-clock",
                priority,
                aria_bridge::engine::realtime::promote(&handle, priority),
            );
        }
        Some(handle)
    } else {
        tracing::info!("waiting for a MIDI clock master (Start, or Song Position + Continue)");
        None
    };

    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("shutting down: closing notes and ports");
    if let Some(c) = clock {
        let refused = c.join().unwrap_or(0);
        if refused > 0 {
            tracing::warn!(
                refused,
                "internal clock messages refused by a full input queue"
            );
        }
    }
    let summary = live.shutdown();
    let port_stats = ports.close();
    tracing::info!(?summary, "engine summary");
    tracing::info!(?port_stats, "port summary");
    if let Some(f) = log_file {
        eprintln!("event log: {}", f.path().display());
    }
    Ok(ExitCode::SUCCESS)
}
