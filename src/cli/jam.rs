//! `aria-bridge jam`: a headless jam from a MIDI file to a MIDI file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use aria_bridge::config::Config;
use aria_bridge::jam::{self, JamOptions, JamOutcome};
use aria_bridge::meter::TimeSignature;
use aria_bridge::smf::{self, Session};

use super::common::{self, ModelFlags};

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
        let (outcome, summary) = jam::run_realtime(&cfg, &human, generator, &opts, &mut progress)?;
        tracing::info!(?summary, "engine summary");
        outcome
    } else {
        let mut generator = generator;
        jam::run_virtual(&cfg, &human, &mut *generator, &opts, &mut progress)
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    write_session(&cfg, &args, &outcome)?;
    print_summary(&args, &outcome);
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

fn print_summary(args: &Args, o: &JamOutcome) {
    let ai_notes =
        o.ai.iter()
            .filter(|(_, b, len)| *len == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
            .count();
    let missed = o
        .marks
        .iter()
        .filter(|m| matches!(m, smf::BarMark::Missed { .. }))
        .count();
    let dropped = o.marks.len() - missed;
    println!("session: {}", args.out.display());
    println!("bars: {} | windows played: {} | missed: {missed} | dropped: {dropped} | generated notes: {ai_notes}", o.bars, o.played);
    let mut lat: Vec<f64> = o.generations.iter().map(|g| g.latency_ms).collect();
    if !lat.is_empty() {
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
        let failures = o.generations.iter().filter(|g| g.error.is_some()).count();
        let tokens: u32 = o
            .generations
            .iter()
            .filter_map(|g| g.stats.as_ref())
            .map(|s| s.new_tokens)
            .sum();
        let provider = o
            .generations
            .iter()
            .find_map(|g| g.stats.as_ref().map(|s| s.provider.clone()))
            .unwrap_or_default();
        println!(
            "generation: {} runs | p50 {:.1} ms | p95 {:.1} ms | max {:.1} ms | failures {failures} | new tokens {tokens} | provider {provider}",
            lat.len(),
            q(0.5),
            q(0.95),
            lat[lat.len() - 1],
        );
        let min_slack = o
            .generations
            .iter()
            .map(|g| g.slack_ms)
            .fold(f64::INFINITY, f64::min);
        println!("smallest slack to a deadline: {min_slack:.1} ms");
    }
    for m in &o.marks {
        println!("  {m}");
    }
}
