//! Concrete tuning advice from a [`Report`]'s figures. Pure.
//!
//! The time model: the job for bar k is built at the boundary that ends it and its result plays
//! at the start of bar k+2, so each generation has one bar (k+1) minus
//! `generation.deadline_margin_ms`. At B BPM a bar of q quarter notes lasts `q * 60000 / B` ms,
//! so a boundary-to-result time T (queue wait + generation, p99) sustains up to
//! `q * 60000 / (T + margin)` BPM.

use super::stats::Report;

/// Highest tempo, BPM, at which one bar of `quarters` quarter notes covers `total_ms` plus
/// `margin_ms`.
pub fn max_sustained_bpm(quarters: f64, total_ms: f64, margin_ms: f64) -> f64 {
    quarters * 60_000.0 / (total_ms + margin_ms).max(1e-3)
}

/// Advice lines, most important first.
pub fn advise(r: &Report) -> Vec<String> {
    let mut out = Vec::new();
    if !r.skipped.is_empty() {
        out.push(format!(
            "{} log lines were skipped (see the list above); figures cover the {} readable records.",
            r.skipped.len(),
            r.records
        ));
    }
    let Some(set) = &r.settings else {
        out.push("The log has no session header: tempo advice needs the run's settings (write the log with `--log` of this version).".into());
        return out;
    };
    let Some(total) = &r.stages.total else {
        out.push("No generation finished in this log: nothing to measure.".into());
        return out;
    };
    let quarters = set.pulses_per_bar as f64 / crate::PPQN as f64;
    let bar_ms = quarters * 60_000.0 / set.bpm;
    let sched = r.stages.scheduling.as_ref().map_or(0.0, |q| q.p99);
    let need = total.p99 + sched;
    let max_bpm = max_sustained_bpm(quarters, need, set.deadline_margin_ms);
    out.push(format!(
        "At {} the measured p99 of {:.1} ms from boundary to result (+{:.0} ms margin) sustains up to {:.0} BPM with prompt_bars = {} and max_new_tokens = {} (this run: {:.0} BPM, a bar is {:.0} ms).",
        set.time_signature, need, set.deadline_margin_ms, max_bpm.floor(), set.prompt_bars, set.max_new_tokens, set.bpm, bar_ms
    ));

    let budget = bar_ms - set.deadline_margin_ms - sched;
    let trouble = r.missed > 0 || r.dropped > 0 || need > budget;
    if !trouble {
        out.push(format!(
            "No misses or drops; p99 uses {:.0}% of the {:.0} ms budget.",
            100.0 * need / budget.max(1e-3),
            budget
        ));
        return out;
    }
    if r.missed > 0 || r.dropped > 0 {
        out.push(format!(
            "{} of {} windows missed ({:.1}%) and {} dropped ({:.1}%).",
            r.missed,
            r.windows,
            100.0 * r.miss_rate,
            r.dropped,
            100.0 * r.drop_rate
        ));
    }
    if set.bpm > max_bpm {
        out.push(format!(
            "To stop misses without changing the model: play at {:.0} BPM or slower.",
            max_bpm.floor()
        ));
    }
    let p99 = |q: &Option<super::stats::Quantiles>| q.as_ref().map_or(0.0, |q| q.p99);
    let (prefill, decode) = (p99(&r.stages.prefill), p99(&r.stages.decode));
    let rest = p99(&r.stages.tokenize) + p99(&r.stages.detokenize) + p99(&r.stages.queue_wait);
    let tps = r.tokens_per_s.as_ref().map(|q| q.p50).unwrap_or(0.0);
    if decode > 0.0 && decode >= prefill && tps > 0.0 {
        let room_ms = (budget - prefill - rest).max(0.0);
        let tokens = (tps * room_ms / 1e3).floor() as u32;
        out.push(format!(
            "Decode dominates (p99 {decode:.0} ms at a median {tps:.0} tokens/s): set generation.max_new_tokens to {} (now {}) to fit {:.0} ms of decoding.",
            tokens.min(set.max_new_tokens.saturating_sub(1)),
            set.max_new_tokens,
            room_ms
        ));
    } else if prefill > decode && set.prompt_bars > 1 {
        out.push(format!(
            "Prefill dominates (p99 {prefill:.0} ms): lower generation.prompt_bars from {} to {} (prefill grows with the prompt's tokens).",
            set.prompt_bars,
            set.prompt_bars - 1
        ));
    }
    if r.providers.iter().any(|p| p == "cpu") {
        out.push("The model ran on the CPU: set model.device = \"cuda\" on a machine with an NVIDIA GPU.".into());
    }
    if r.drop_reasons.get("queue_full").copied().unwrap_or(0) > 0 {
        out.push(format!(
            "Jobs were evicted from a full queue (capacity {}): the model is slower than one bar per bar; a bigger queue only adds latency.",
            set.queue_capacity
        ));
    }
    if set.fallback == "silence" && r.missed > 0 {
        out.push("Missed bars stay silent: playback.fallback = \"late_join\" plays the rest of a late result.".into());
    }
    if let Some(j) = &r.clock.jitter_ms {
        if j.p95 > 2.0 {
            out.push(format!(
                "Clock jitter p95 is {:.1} ms: use a dedicated clock port (midi.clock_port) or a steadier clock source.",
                j.p95
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_of_four_quarters_at_500_ms_per_generation_sustains_480_bpm() {
        // 4 quarters x 60000 / (485 + 15) = 480.
        assert_eq!(max_sustained_bpm(4.0, 485.0, 15.0), 480.0);
    }
}
