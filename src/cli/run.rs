//! `aria-bridge run`: the live daemon beside a DAW.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aria_bridge::clock::internal;
use aria_bridge::config::{ClockSource, Config};
use aria_bridge::engine::live::{Live, LiveHooks};
use aria_bridge::engine::reload;
use aria_bridge::midi::ports::{Ports, IN_PORT, OUT_PORT};

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

/// The settings of a run: the config file (or the defaults), then the flags, validated. Read at
/// start and again at every SIGHUP.
fn settings(args: &Args) -> anyhow::Result<Config> {
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
    Ok(cfg)
}

/// SIGHUP: reads the settings again; the engine takes what it can live, the rest is named in
/// one warning and keeps its running value; a file that does not load or validate changes
/// nothing. Returns the settings in force afterwards. Never stops the daemon.
fn reload(args: &Args, running: Config, live: &Live) -> Config {
    let Some(path) = args.config.as_deref() else {
        tracing::info!("SIGHUP: no --config file to reload; settings unchanged");
        return running;
    };
    let reloaded = match settings(args) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                "config reload rejected, the running settings stay: {e:#} ({})",
                path.display()
            );
            return running;
        }
    };
    let plan = reload::plan(&running, &reloaded);
    if plan.is_empty() {
        tracing::info!("config reloaded from {}: nothing changed", path.display());
        return running;
    }
    if !plan.live.is_empty() {
        if !live.reconfigure(&plan.next) {
            tracing::error!("config reload: the engine did not take the new settings (stopping, or reloads too fast); try again");
            return running;
        }
        let keys: Vec<String> = plan.live.iter().map(ToString::to_string).collect();
        tracing::info!(
            "config reloaded from {}: applied {}",
            path.display(),
            keys.join(", ")
        );
    }
    if !plan.restart.is_empty() {
        let keys: Vec<String> = plan.restart.iter().map(ToString::to_string).collect();
        tracing::warn!(
            "config reload: {} changed key(s) need a restart and keep their running values until then: {}",
            keys.len(),
            keys.join(", ")
        );
    }
    plan.next
}

/// How our port and what it connects to read in warnings: `"aria-bridge out"` or
/// `"aria-bridge out" (connected to "synth in")`.
fn port_label(ours: &str, peer: Option<&str>) -> String {
    match peer {
        Some(p) if p != ours => format!("\"{ours}\" (connected to \"{p}\")"),
        _ => format!("\"{ours}\""),
    }
}

/// Runs the daemon until Ctrl-C or SIGTERM; SIGHUP reloads the config.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = settings(&args)?;

    let stop = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .with_context(|| format!("cannot install the handler of signal {sig}"))?;
    }
    #[cfg(unix)]
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("cannot install the SIGHUP (config reload) handler")?;

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
    let out_peer = ports.connected().first().map(|(_, p)| p.clone());
    let port_names = (
        port_label(OUT_PORT, out_peer.as_deref()),
        port_label(IN_PORT, cfg.midi.input_port.as_deref()),
    );
    let live = Live::start(
        &cfg,
        generator,
        ports.output(),
        LiveHooks {
            thru: Some(ports.output()),
            sweep: true,
            port_names: Some(port_names),
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
        if hangup.swap(false, Ordering::Relaxed) {
            cfg = reload(&args, cfg, &live);
        }
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
