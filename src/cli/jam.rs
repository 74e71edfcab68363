//! `aria-bridge jam`: a headless jam from a MIDI file to a MIDI file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use aria_bridge::clock::meter::TimeSignature;
use aria_bridge::config::Config;
use aria_bridge::engine::jam::{self, JamOptions, JamOutcome};
use aria_bridge::midi::smf::{self, Session};
use aria_bridge::report;

use super::common::{self, ModelFlags};
use super::logging::LogFlags;

/// Flags of `jam`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The human part (a standard MIDI file; all tracks are merged).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the session (conductor, human and generated tracks).
    #[arg(long)]
    pub out: PathBuf,
    /// Tempo of the internal clock (overrides `clock.bpm`).
    #[arg(long)]
    pub bpm: Option<f64>,
    /// Meter, "N/D" (overrides `clock.time_signature`).
    #[arg(long)]
    pub time_signature: Option<String>,
    /// Also draw the session as a piano roll (human and generated notes over bar lines) to this PNG.
    #[arg(long, value_name = "OUT.png")]
    pub plot: Option<PathBuf>,
    /// Run on the wall clock with the live threads instead of virtual time.
    #[arg(long)]
    pub realtime: bool,
    /// Count every generation as taking this many ms (virtual time only; makes a jam reproducible
    /// regardless of machine speed). Default: the time it really takes.
    #[arg(long, conflicts_with = "realtime")]
    pub assume_latency_ms: Option<f64>,
    /// Bars of clock after the human part, so the answers to its last bars are heard.
    #[arg(long, default_value_t = 2)]
    pub tail_bars: u64,
    /// Seed of the jam's random stream (overrides `generation.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Configuration file (defaults apply to every key it leaves out).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub model: ModelFlags,
    #[command(flatten)]
    pub log: LogFlags,
}

/// Runs `jam`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut cfg = common::load_config(args.config.as_deref())?;
    if let Some(bpm) = args.bpm {
        cfg.clock.bpm = bpm;
    }
    if let Some(ts) = &args.time_signature {
        cfg.clock.time_signature = ts.clone();
    }
    if let Some(seed) = args.seed {
        cfg.generation.seed = seed;
    }
    args.model.apply(&mut cfg);
    cfg.validate()
        .context("invalid settings (from the config file or the flags)")?;

    let human = smf::read_human(&args.input)?;
    let generator = common::load_generator(&cfg)?;
    let log_file = args.log.open()?;
    tracing::info!("model: {}", generator.describe());
    let opts = JamOptions {
        bpm: cfg.clock.bpm,
        tail_bars: args.tail_bars,
        assume_latency: args
            .assume_latency_ms
            .map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1e3)),
    };

    let bar = progress_bar();
    let mut progress = |done: u64, total: u64| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    };
    let outcome = if args.realtime {
        let sink = log_file.as_ref().map(|f| f.sink());
        let (outcome, summary) =
            jam::run_realtime_logged(&cfg, &human, generator, &opts, &mut progress, sink)?;
        tracing::info!(?summary, "engine summary");
        outcome
    } else {
        let mut generator = generator;
        let outcome = jam::run_virtual(&cfg, &human, &mut *generator, &opts, &mut progress);
        if let Some(mut sink) = log_file.as_ref().map(|f| f.sink()) {
            outcome.events.iter().for_each(&mut sink);
        }
        outcome
    };
    if let Some(f) = log_file {
        eprintln!("event log: {}", f.path().display());
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    write_session(&cfg, &args, &outcome)?;
    print_summary(&args, &outcome);
    if let Some(png) = &args.plot {
        aria_bridge::report::piano_roll::piano_roll_png(&args.out, png)?;
        println!("piano roll: {}", png.display());
    }
    if outcome.hanging_notes > 0 {
        anyhow::bail!(
            "{} generated notes were left without a note-off",
            outcome.hanging_notes
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} bar {pos}/{len} [{wide_bar}] {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn write_session(cfg: &Config, args: &Args, o: &JamOutcome) -> anyhow::Result<()> {
    let first = TimeSignature::parse(&cfg.clock.time_signature)?;
    let mut meter = vec![(0u64, first)];
    for m in &cfg.clock.meter_changes {
        meter.push((m.bar, TimeSignature::parse(&m.time_signature)?));
    }
    let session = Session {
        bpm: cfg.clock.bpm,
        meter: &meter,
        origin: o.origin,
        human: &o.human,
        ai: &o.ai,
        marks: &o.marks,
    };
    smf::write_session(&args.out, &session)?;
    Ok(())
}

/// The closing summary, computed by the report from the session's event records.
fn print_summary(args: &Args, o: &JamOutcome) {
    let ai_notes =
        o.ai.iter()
            .filter(|(_, b, len)| *len == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
            .count();
    let r = report::compute(&o.events, Vec::new());
    println!("session: {}", args.out.display());
    println!(
        "bars: {} | windows: {} | on time: {} | missed: {} | dropped: {} | late: {} | generated notes: {ai_notes}",
        o.bars, r.windows, r.on_time, r.missed, r.dropped, r.late
    );
    if let Some(g) = &r.stages.generation {
        let tokens = r.new_tokens.as_ref().map_or(0.0, |q| q.mean * q.n as f64);
        println!(
            "generation: {} runs | p50 {:.1} ms | p95 {:.1} ms | p99 {:.1} ms | max {:.1} ms | failures {} | new tokens {tokens:.0} | provider {}",
            g.n, g.p50, g.p95, g.p99, g.max, r.failures, r.providers.join(", ")
        );
    }
    if let Some(s) = &r.slack_ms {
        println!(
            "slack to the window start: min {:.1} ms | p50 {:.1} ms",
            s.min, s.p50
        );
    }
    if let Some(a) = r.advice.first() {
        println!("{a}");
    }
    for m in &o.marks {
        println!("  {m}");
    }
}
