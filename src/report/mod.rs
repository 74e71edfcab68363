//! `aria-bridge report`: figures, advice and plots from a session's event log.
//!
//! - [`stats`] computes a [`Report`] from [`crate::log::Record`]s (per-stage quantiles, slack,
//!   miss and drop rates, clock jitter and tempo stability, the per-bar series).
//! - [`advice`] turns the figures into settings to change.
//! - [`plot`] draws generation time against the deadline; [`piano_roll`] draws a session file.
//!
//! Everything here runs off the real-time path, after (or, for the jam summary, at the end of)
//! a run.

pub mod advice;
pub mod piano_roll;
pub mod plot;
pub mod stats;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub use stats::{compute, quantile, Quantiles, Report};

/// A log that could not be read at all (unreadable lines are skipped, not errors).
#[derive(Debug, thiserror::Error)]
#[error("cannot read the event log {path}: {error}; pass the file written with `--log`")]
pub struct ReportError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

/// Reads a JSONL log and computes its report. Bytes that are not UTF-8 are replaced, so a
/// truncated multi-byte character only spoils its own line.
pub fn read_report(path: &Path) -> Result<Report, ReportError> {
    let bytes = std::fs::read(path).map_err(|error| ReportError {
        path: path.to_path_buf(),
        error,
    })?;
    let parsed = crate::log::parse_log(&String::from_utf8_lossy(&bytes));
    Ok(compute(&parsed.records, parsed.skipped))
}

fn q_row(out: &mut String, name: &str, q: &Option<Quantiles>, unit: &str) {
    match q {
        Some(q) => {
            let _ = writeln!(
                out,
                "  {name:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1}  {unit} (n={})",
                q.p50, q.p95, q.p99, q.max, q.n
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  {name:<12} {:>9} {:>9} {:>9} {:>9}",
                "-", "-", "-", "-"
            );
        }
    }
}

/// The report as text for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    if let Some(s) = &r.settings {
        let _ = writeln!(
            o,
            "session: {} | {} BPM {} | prompt_bars {} | max_new_tokens {} | queue {} | margin {} ms | fallback {}",
            s.mode, s.bpm, s.time_signature, s.prompt_bars, s.max_new_tokens, s.queue_capacity,
            s.deadline_margin_ms, s.fallback
        );
    }
    let _ = writeln!(
        o,
        "records: {} | skipped lines: {}",
        r.records,
        r.skipped.len()
    );
    for s in r.skipped.iter().take(20) {
        let _ = writeln!(o, "  skipped line {}: {}", s.line, s.reason);
    }
    if r.skipped.len() > 20 {
        let _ = writeln!(o, "  ... and {} more", r.skipped.len() - 20);
    }
    let _ = writeln!(
        o,
        "bars: {} boundaries | {} jobs | {} generations ({} failed) | providers: {}",
        r.boundaries,
        r.jobs,
        r.generations,
        r.failures,
        if r.providers.is_empty() {
            "-".to_string()
        } else {
            r.providers.join(", ")
        }
    );
    let _ = writeln!(
        o,
        "windows: {} | on time {} | missed {} ({:.1}%) | dropped {} ({:.1}%) | late results {} | carried over a loop wrap {}",
        r.windows,
        r.on_time,
        r.missed,
        100.0 * r.miss_rate,
        r.dropped,
        100.0 * r.drop_rate,
        r.late,
        r.carried
    );
    if !r.drop_reasons.is_empty() {
        let reasons: Vec<String> = r
            .drop_reasons
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(o, "drops by reason: {}", reasons.join(", "));
    }
    let _ = writeln!(
        o,
        "\nstage latency (ms)     p50       p95       p99       max"
    );
    let st = &r.stages;
    for (name, q) in [
        ("queue wait", &st.queue_wait),
        ("tokenize", &st.tokenize),
        ("prefill", &st.prefill),
        ("decode", &st.decode),
        ("detokenize", &st.detokenize),
        ("scheduling", &st.scheduling),
        ("generation", &st.generation),
        ("total", &st.total),
    ] {
        q_row(&mut o, name, q, "ms");
    }
    let _ = writeln!(
        o,
        "\nother                  p50       p95       p99       max"
    );
    q_row(&mut o, "slack", &r.slack_ms, "ms to the window start");
    q_row(&mut o, "prompt tok", &r.prompt_tokens, "tokens");
    q_row(&mut o, "new tokens", &r.new_tokens, "tokens");
    q_row(&mut o, "tokens/s", &r.tokens_per_s, "decode");
    q_row(&mut o, "tempo", &r.clock.bpm, "BPM");
    q_row(&mut o, "jitter", &r.clock.jitter_ms, "ms");
    if let Some(sd) = r.clock.bpm_stddev {
        let _ = writeln!(
            o,
            "tempo stability: std dev {sd:.3} BPM | relocks {}",
            r.clock.tempo_jumps
        );
    }
    if !r.slack_histogram.is_empty() {
        let _ = writeln!(o, "\nslack distribution (50 ms bins):");
        let most = r.slack_histogram.iter().map(|b| b.1).max().unwrap_or(1);
        for &(edge, n) in &r.slack_histogram {
            let label = if edge < 0.0 {
                "late".to_string()
            } else {
                format!("{:.0}-{:.0}", edge, edge + 50.0)
            };
            let bar = "#".repeat(((n * 40).div_ceil(most)) as usize);
            let _ = writeln!(o, "  {label:>11} ms {n:>5} {bar}");
        }
    }
    let _ = writeln!(o, "\nadvice:");
    for a in &r.advice {
        let _ = writeln!(o, "  - {a}");
    }
    o
}
