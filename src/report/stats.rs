//! Figures of a session log: per-stage latency quantiles, deadline slack, miss and drop rates,
//! clock jitter and tempo stability, and the per-bar series the plot draws. Pure.
//!
//! Quantiles use the nearest-rank rule: the p-quantile of n sorted values is the value at rank
//! `ceil(p * n)` (1-based), so every figure is a value that was really measured.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::log::{Event, Record, SkippedLine};

/// The nearest-rank `p`-quantile of `values` (`None` when empty; NaNs sort last).
pub fn quantile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = (p.clamp(0.0, 1.0) * v.len() as f64).ceil().max(1.0) as usize;
    Some(v[rank - 1])
}

/// Distribution of one measured quantity.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Smallest.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
}

impl Quantiles {
    /// The distribution of `values`; `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let q = |p| quantile(values, p);
        Some(Self {
            n: values.len(),
            p50: q(0.5)?,
            p95: q(0.95)?,
            p99: q(0.99)?,
            max: q(1.0)?,
            min: q(0.0)?,
            mean: values.iter().sum::<f64>() / values.len() as f64,
        })
    }
}

/// Per-stage latency, ms. A stage with no samples is `None`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stages {
    /// Boundary (job enqueued) to the worker taking it.
    pub queue_wait: Option<Quantiles>,
    /// Prompt to tokens.
    pub tokenize: Option<Quantiles>,
    /// Prefill forward pass.
    pub prefill: Option<Quantiles>,
    /// All decode steps.
    pub decode: Option<Quantiles>,
    /// Tokens to notes.
    pub detokenize: Option<Quantiles>,
    /// Result ready to accepted by the scheduler.
    pub scheduling: Option<Quantiles>,
    /// The whole generation as the worker saw it.
    pub generation: Option<Quantiles>,
    /// Queue wait plus generation: boundary to result.
    pub total: Option<Quantiles>,
}

/// Run settings from the log's `session` header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// "virtual" or "live".
    pub mode: String,
    /// Configured tempo, BPM.
    pub bpm: f64,
    /// Meter at bar 0.
    pub time_signature: String,
    /// Pulses per bar at bar 0.
    pub pulses_per_bar: u32,
    /// `generation.prompt_bars`.
    pub prompt_bars: u32,
    /// `generation.max_new_tokens`.
    pub max_new_tokens: u32,
    /// `generation.queue_capacity`.
    pub queue_capacity: usize,
    /// `generation.deadline_margin_ms`.
    pub deadline_margin_ms: f64,
    /// `playback.fallback`.
    pub fallback: String,
}

/// One answered (or not) window, for the plot.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BarPoint {
    /// Window bar.
    pub window_bar: u64,
    /// Session time of the boundary that built its job, ms (when known).
    pub t_ms: Option<f64>,
    /// Queue wait + generation, ms (`None`: never generated).
    pub total_ms: Option<f64>,
    /// Time the job had: boundary to window start, ms (`None` when unknown).
    pub budget_ms: Option<f64>,
    /// Result to window start, ms; negative when late.
    pub slack_ms: Option<f64>,
    /// The window started without its result.
    pub missed: bool,
    /// The job was dropped before generation.
    pub dropped: bool,
}

/// Tempo and clock figures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clock {
    /// Tempo samples (once a beat), BPM.
    pub bpm: Option<Quantiles>,
    /// Standard deviation of the tempo samples, BPM.
    pub bpm_stddev: Option<f64>,
    /// Mean absolute clock jitter per sample, ms.
    pub jitter_ms: Option<Quantiles>,
    /// Tempo relocks (steps or gaps).
    pub tempo_jumps: u64,
}

/// Everything `aria-bridge report` prints.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The run's settings, when the log has its header.
    pub settings: Option<Settings>,
    /// Records used.
    pub records: usize,
    /// Lines skipped, with reasons.
    pub skipped: Vec<SkippedLine>,
    /// Bar boundaries seen (jobs built).
    pub boundaries: u64,
    /// Jobs enqueued.
    pub jobs: u64,
    /// Generations run.
    pub generations: u64,
    /// Generations that failed.
    pub failures: u64,
    /// Windows accounted for: on time + missed + dropped.
    pub windows: u64,
    /// Windows that played their own result from their start.
    pub on_time: u64,
    /// Windows that started without their result.
    pub missed: u64,
    /// Windows whose job was dropped.
    pub dropped: u64,
    /// Results that came after their window started.
    pub late: u64,
    /// Windows a loop wrap (Song Position jump) moved to where it landed.
    pub carried: u64,
    /// `missed / windows`.
    pub miss_rate: f64,
    /// `dropped / windows`.
    pub drop_rate: f64,
    /// Drops by reason.
    pub drop_reasons: BTreeMap<String, u64>,
    /// Per-stage latency.
    pub stages: Stages,
    /// Result-to-window-start slack, ms.
    pub slack_ms: Option<Quantiles>,
    /// Slack histogram: (lower edge ms, count) in 50 ms bins; the bin at -50 holds every late result.
    pub slack_histogram: Vec<(f64, u64)>,
    /// Tokens in the prompt.
    pub prompt_tokens: Option<Quantiles>,
    /// Tokens generated per bar.
    pub new_tokens: Option<Quantiles>,
    /// Decode speed, tokens/s.
    pub tokens_per_s: Option<Quantiles>,
    /// Execution providers seen.
    pub providers: Vec<String>,
    /// Tempo and jitter.
    pub clock: Clock,
    /// The per-window series (for the plot).
    pub bars: Vec<BarPoint>,
    /// Advice derived from the figures.
    pub advice: Vec<String>,
}

/// Width of a slack histogram bin, ms.
const SLACK_BIN_MS: f64 = 50.0;

/// Computes the report of a log's records. `skipped` is carried into the report.
pub fn compute(records: &[Record], skipped: Vec<SkippedLine>) -> Report {
    let mut settings = None;
    let (mut boundaries, mut jobs, mut gens, mut failures) = (0u64, 0u64, 0u64, 0u64);
    let (mut on_time, mut missed, mut dropped, mut late) = (0u64, 0u64, 0u64, 0u64);
    let mut carried = 0u64;
    let mut drop_reasons = BTreeMap::new();
    let mut s = StageSamples::default();
    let mut slack = Vec::new();
    let (mut prompt_tokens, mut new_tokens, mut tps) = (Vec::new(), Vec::new(), Vec::new());
    let mut providers: Vec<String> = Vec::new();
    let (mut bpm, mut jitter, mut jumps) = (Vec::new(), Vec::new(), 0u64);
    // Per window bar: boundary time, queue wait, generation, ready slack, flags.
    let mut by_window: BTreeMap<u64, WindowAcc> = BTreeMap::new();

    for r in records {
        match &r.event {
            Event::Session {
                mode,
                bpm: b,
                time_signature,
                pulses_per_bar,
                prompt_bars,
                max_new_tokens,
                queue_capacity,
                deadline_margin_ms,
                fallback,
            } => {
                settings = Some(Settings {
                    mode: mode.clone(),
                    bpm: *b,
                    time_signature: time_signature.clone(),
                    pulses_per_bar: *pulses_per_bar,
                    prompt_bars: *prompt_bars,
                    max_new_tokens: *max_new_tokens,
                    queue_capacity: *queue_capacity,
                    deadline_margin_ms: *deadline_margin_ms,
                    fallback: fallback.clone(),
                })
            }
            Event::Boundary { .. } => boundaries += 1,
            Event::Enqueued { window_bar, .. } => {
                jobs += 1;
                by_window.entry(*window_bar).or_default().enqueued_ms = Some(r.t_ms);
            }
            Event::Dropped { window_bar, reason } => {
                dropped += 1;
                *drop_reasons.entry(reason.clone()).or_insert(0) += 1;
                by_window.entry(*window_bar).or_default().dropped = true;
            }
            Event::GenerationStarted {
                window_bar,
                queue_wait_ms,
                ..
            } => {
                s.queue_wait.push(*queue_wait_ms);
                by_window.entry(*window_bar).or_default().queue_wait_ms = Some(*queue_wait_ms);
            }
            Event::Generated {
                window_bar,
                gen_ms,
                prompt_tokens: pt,
                new_tokens: nt,
                tokenize_ms,
                prefill_ms,
                decode_ms,
                detokenize_ms,
                tokens_per_s,
                provider,
                error,
                ..
            } => {
                gens += 1;
                s.generation.push(*gen_ms);
                by_window.entry(*window_bar).or_default().gen_ms = Some(*gen_ms);
                if error.is_some() {
                    failures += 1;
                    continue;
                }
                s.tokenize.push(*tokenize_ms);
                s.prefill.push(*prefill_ms);
                s.decode.push(*decode_ms);
                s.detokenize.push(*detokenize_ms);
                prompt_tokens.push(*pt as f64);
                new_tokens.push(*nt as f64);
                if *tokens_per_s > 0.0 {
                    tps.push(*tokens_per_s);
                }
                if !providers.contains(provider) {
                    providers.push(provider.clone());
                }
            }
            Event::ResultReady {
                window_bar,
                slack_ms,
                ..
            } => {
                slack.push(*slack_ms);
                by_window.entry(*window_bar).or_default().ready_slack_ms = Some(*slack_ms);
            }
            Event::Scheduled {
                window_bar,
                slack_ms,
                ..
            } => {
                if let Some(ready) = by_window.get(window_bar).and_then(|w| w.ready_slack_ms) {
                    // Both slacks count to the same window start: their difference is the
                    // time the result spent reaching the scheduler.
                    s.scheduling.push((ready - slack_ms).max(0.0));
                }
            }
            Event::Played { source, .. } if source == "result" => on_time += 1,
            Event::Missed { window_bar, .. } => {
                missed += 1;
                by_window.entry(*window_bar).or_default().missed = true;
            }
            Event::Late { .. } => late += 1,
            Event::Carried { .. } => carried += 1,
            Event::Tempo { bpm: b, jitter_ms } => {
                bpm.push(*b);
                jitter.push(*jitter_ms);
            }
            Event::TempoJump { .. } => jumps += 1,
            _ => {}
        }
    }

    let bars: Vec<BarPoint> = by_window
        .iter()
        .map(|(&window_bar, w)| {
            let total = w.gen_ms.map(|g| g + w.queue_wait_ms.unwrap_or(0.0));
            BarPoint {
                window_bar,
                t_ms: w.enqueued_ms,
                total_ms: total,
                budget_ms: match (total, w.ready_slack_ms) {
                    (Some(t), Some(sl)) => Some(t + sl),
                    _ => None,
                },
                slack_ms: w.ready_slack_ms,
                missed: w.missed,
                dropped: w.dropped,
            }
        })
        .collect();
    s.total = bars.iter().filter_map(|b| b.total_ms).collect();

    let windows = on_time + missed + dropped;
    let rate = |n: u64| {
        if windows == 0 {
            0.0
        } else {
            n as f64 / windows as f64
        }
    };
    let bpm_stddev = (!bpm.is_empty()).then(|| {
        let m = bpm.iter().sum::<f64>() / bpm.len() as f64;
        (bpm.iter().map(|b| (b - m) * (b - m)).sum::<f64>() / bpm.len() as f64).sqrt()
    });
    let mut report = Report {
        settings,
        records: records.len(),
        skipped,
        boundaries,
        jobs,
        generations: gens,
        failures,
        windows,
        on_time,
        missed,
        dropped,
        late,
        carried,
        miss_rate: rate(missed),
        drop_rate: rate(dropped),
        drop_reasons,
        stages: s.finish(),
        slack_histogram: histogram(&slack),
        slack_ms: Quantiles::of(&slack),
        prompt_tokens: Quantiles::of(&prompt_tokens),
        new_tokens: Quantiles::of(&new_tokens),
        tokens_per_s: Quantiles::of(&tps),
        providers,
        clock: Clock {
            bpm: Quantiles::of(&bpm),
            bpm_stddev,
            jitter_ms: Quantiles::of(&jitter),
            tempo_jumps: jumps,
        },
        bars,
        advice: Vec::new(),
    };
    report.advice = super::advice::advise(&report);
    report
}

/// Slack values binned by [`SLACK_BIN_MS`]; every negative (late) value falls in one bin below 0.
fn histogram(slack: &[f64]) -> Vec<(f64, u64)> {
    let mut bins: BTreeMap<i64, u64> = BTreeMap::new();
    for &v in slack {
        let bin = if v < 0.0 {
            -1
        } else {
            (v / SLACK_BIN_MS).floor() as i64
        };
        *bins.entry(bin).or_insert(0) += 1;
    }
    bins.into_iter()
        .map(|(b, n)| (b as f64 * SLACK_BIN_MS, n))
        .collect()
}

#[derive(Default)]
struct WindowAcc {
    enqueued_ms: Option<f64>,
    queue_wait_ms: Option<f64>,
    gen_ms: Option<f64>,
    ready_slack_ms: Option<f64>,
    missed: bool,
    dropped: bool,
}

#[derive(Default)]
struct StageSamples {
    queue_wait: Vec<f64>,
    tokenize: Vec<f64>,
    prefill: Vec<f64>,
    decode: Vec<f64>,
    detokenize: Vec<f64>,
    scheduling: Vec<f64>,
    generation: Vec<f64>,
    total: Vec<f64>,
}

impl StageSamples {
    fn finish(&self) -> Stages {
        Stages {
            queue_wait: Quantiles::of(&self.queue_wait),
            tokenize: Quantiles::of(&self.tokenize),
            prefill: Quantiles::of(&self.prefill),
            decode: Quantiles::of(&self.decode),
            detokenize: Quantiles::of(&self.detokenize),
            scheduling: Quantiles::of(&self.scheduling),
            generation: Quantiles::of(&self.generation),
            total: Quantiles::of(&self.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles_are_measured_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.95), Some(95.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
        assert_eq!(quantile(&v, 1.0), Some(100.0));
        assert_eq!(quantile(&[7.0], 0.99), Some(7.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn late_results_share_one_bin_below_zero() {
        let h = histogram(&[-30.0, -1.0, 0.0, 49.0, 120.0]);
        assert_eq!(h, vec![(-50.0, 2), (0.0, 2), (100.0, 1)]);
    }
}
