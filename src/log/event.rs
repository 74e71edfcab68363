//! The one event schema of the session log: what the live engine's log thread and the headless
//! jam write, one JSON object per line, and what `aria-bridge report` reads back.
//!
//! Every line is a [`Record`]: `{"v":1,"t_ms":..,"wall_ms":..,"pulse":..,"event":"<name>",...}`.
//! `v` is [`VERSION`]; a reader skips lines of other versions and names them. Times are in ms
//! so a person can read the file: `t_ms` is the engine's clock from the session origin (virtual
//! time in a headless jam), `wall_ms` is the wall clock since the run began (equal to `t_ms` up to
//! the origin live; how long the computation really took in a virtual jam).

use serde::{Deserialize, Serialize};

/// Version written in every record's `v` field.
pub const VERSION: u32 = 1;

/// One line of the session log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Schema version ([`VERSION`]).
    pub v: u32,
    /// Engine time, ms from the session origin (pulse 0 in a jam; the first record live).
    pub t_ms: f64,
    /// Wall-clock ms since the run began.
    pub wall_ms: f64,
    /// Transport position at `t_ms`, pulses (24 per quarter), when the transport runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse: Option<f64>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Record {
    /// A record of the current version.
    pub fn new(t_ms: f64, wall_ms: f64, pulse: Option<f64>, event: Event) -> Self {
        Self {
            v: VERSION,
            t_ms,
            wall_ms,
            pulse,
            event,
        }
    }

    /// The record as one JSON line (with its `\n`). Non-finite numbers become `null`, which the
    /// reader then skips with a reason rather than misreading.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// The steps of a bar's life, plus the settings and clock samples a report needs.
///
/// `bar` is always the human bar a job answers; `window_bar` is the bar its result plays in
/// (`bar + 2`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The settings of the run, first in every log.
    Session {
        /// "virtual" (headless jam in virtual time) or "live".
        mode: String,
        /// Configured tempo, BPM.
        bpm: f64,
        /// Meter at bar 0, "N/D".
        time_signature: String,
        /// Clock pulses per bar at bar 0.
        pulses_per_bar: u32,
        /// `generation.prompt_bars`.
        prompt_bars: u32,
        /// `generation.max_new_tokens`.
        max_new_tokens: u32,
        /// `generation.queue_capacity`.
        queue_capacity: usize,
        /// `generation.deadline_margin_ms`.
        deadline_margin_ms: f64,
        /// `playback.fallback`.
        fallback: String,
    },
    /// A human bar ended; a job is built for it.
    Boundary {
        /// The bar that ended.
        bar: u64,
    },
    /// A job entered the queue.
    Enqueued {
        /// Human bar.
        bar: u64,
        /// Window bar.
        window_bar: u64,
        /// Jobs waiting after this one went in.
        queue_depth: u32,
    },
    /// A job was dropped before generation; its window falls back.
    Dropped {
        /// Window bar.
        window_bar: u64,
        /// "queue_full", "stale_epoch" or "deadline_passed".
        reason: String,
    },
    /// The worker took a job.
    GenerationStarted {
        /// Human bar.
        bar: u64,
        /// Window bar.
        window_bar: u64,
        /// Time the job waited in the queue, ms.
        queue_wait_ms: f64,
    },
    /// The generator returned (or failed).
    Generated {
        /// Human bar.
        bar: u64,
        /// Window bar.
        window_bar: u64,
        /// Whole generation, worker start to result, ms.
        gen_ms: f64,
        /// Tokens in the prompt.
        prompt_tokens: u32,
        /// Tokens generated.
        new_tokens: u32,
        /// Tokenizing the prompt, ms.
        tokenize_ms: f64,
        /// Prefill, ms.
        prefill_ms: f64,
        /// All decode steps, ms.
        decode_ms: f64,
        /// Tokens back to notes, ms.
        detokenize_ms: f64,
        /// New tokens per second of decode (0 when nothing was decoded).
        tokens_per_s: f64,
        /// Execution provider that ran ("cpu", "cuda", ...).
        provider: String,
        /// Why decoding ended, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stop: Option<String>,
        /// Why it failed, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A result reached the scheduler's side.
    ResultReady {
        /// Human bar.
        bar: u64,
        /// Window bar.
        window_bar: u64,
        /// Time left until the window starts, ms; negative when late.
        slack_ms: f64,
    },
    /// The scheduler accepted a result for its window.
    Scheduled {
        /// Window bar.
        window_bar: u64,
        /// Notes in the result.
        notes: u32,
        /// Time left until the window starts when accepted, ms.
        slack_ms: f64,
    },
    /// A window ended having played something.
    Played {
        /// Window bar.
        window_bar: u64,
        /// "result", "repeat_last" or "late_join".
        source: String,
        /// Note-ons sent.
        notes_on: u32,
        /// Notes cut at the window end.
        notes_cut: u32,
    },
    /// A window started without its result.
    Missed {
        /// Window bar.
        window_bar: u64,
        /// What was done instead ("silence", "repeat_last", "late_join").
        fallback: String,
    },
    /// A result arrived after its window had started.
    Late {
        /// Window bar.
        window_bar: u64,
        /// How late, ms.
        late_by_ms: f64,
        /// Whether its remainder was played.
        joined: bool,
    },
    /// A Song Position jump (a loop wrap) moved a window not yet started to where it landed.
    Carried {
        /// The window's bar before the jump.
        from_window_bar: u64,
        /// Its bar now.
        window_bar: u64,
    },
    /// Our own output comes back on an input (a routing loop); logged once per loop found.
    RoutingLoop {
        /// The input it comes back on: "notes" or "clock".
        port: String,
        /// Measured round trip, ms.
        round_trip_ms: f64,
        /// Thru was on and has been stopped (the notes it held closed).
        thru_stopped: bool,
    },
    /// A window or result was thrown away.
    Discarded {
        /// Window bar.
        window_bar: u64,
        /// "stale_epoch", "failed", "duplicate" or "overflow".
        why: String,
    },
    /// A tempo and clock-jitter sample (once a beat).
    Tempo {
        /// Filtered tempo, BPM.
        bpm: f64,
        /// Mean absolute clock jitter, ms.
        jitter_ms: f64,
    },
    /// The tempo loop relocked (a step or a gap in the clock).
    TempoJump {
        /// New tempo, BPM.
        bpm: f64,
        /// A gap rather than a step.
        gap: bool,
    },
    /// A transport change or survived oddity (start, stop, relocation, clock loss, bad bytes).
    Transport {
        /// What, in a few words.
        what: String,
    },
}

impl Event {
    /// The `event` tag of this variant, as written.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Session { .. } => "session",
            Event::Boundary { .. } => "boundary",
            Event::Enqueued { .. } => "enqueued",
            Event::Dropped { .. } => "dropped",
            Event::GenerationStarted { .. } => "generation_started",
            Event::Generated { .. } => "generated",
            Event::ResultReady { .. } => "result_ready",
            Event::Scheduled { .. } => "scheduled",
            Event::Played { .. } => "played",
            Event::Missed { .. } => "missed",
            Event::Late { .. } => "late",
            Event::Carried { .. } => "carried",
            Event::Discarded { .. } => "discarded",
            Event::RoutingLoop { .. } => "routing_loop",
            Event::Tempo { .. } => "tempo",
            Event::TempoJump { .. } => "tempo_jump",
            Event::Transport { .. } => "transport",
        }
    }
}

/// A line the reader could not use, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedLine {
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

/// A log file read back: the usable records in order, and the lines skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedLog {
    /// Records of the supported version.
    pub records: Vec<Record>,
    /// Lines that were empty-but-not-blank, truncated, foreign or of another version.
    pub skipped: Vec<SkippedLine>,
}

/// Reads a log's text. Never fails: blank lines are ignored, every other unusable line is listed
/// in [`ParsedLog::skipped`] with its reason, and the rest is kept.
pub fn parse_log(text: &str) -> ParsedLog {
    let mut out = ParsedLog::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(r) => out.records.push(r),
            Err(reason) => out.skipped.push(SkippedLine {
                line: i + 1,
                reason,
            }),
        }
    }
    out
}

/// One line to a record, or why not.
fn parse_line(line: &str) -> Result<Record, String> {
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = value
        .as_object()
        .ok_or_else(|| "not a JSON object".to_string())?;
    let v = match obj.get("v") {
        None => return Err("no \"v\" field: not an aria-bridge event".into()),
        Some(v) => v.as_u64().ok_or_else(|| format!("bad version {v}"))?,
    };
    if v != VERSION as u64 {
        return Err(format!(
            "event version {v}; this reader knows version {VERSION}"
        ));
    }
    let name = obj
        .get("event")
        .and_then(|e| e.as_str())
        .unwrap_or("")
        .to_string();
    serde_json::from_value(value).map_err(|e| {
        if name.is_empty() {
            format!("no \"event\" field ({e})")
        } else {
            format!("event \"{name}\": {e}")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_through_its_line() {
        let r = Record::new(
            12.5,
            3.0,
            Some(96.0),
            Event::Enqueued {
                bar: 1,
                window_bar: 3,
                queue_depth: 1,
            },
        );
        let line = r.to_line();
        assert!(line.starts_with("{\"v\":1,"), "{line}");
        assert!(line.contains("\"event\":\"enqueued\""), "{line}");
        let back = parse_log(&line);
        assert_eq!(back.records, vec![r]);
        assert!(back.skipped.is_empty());
    }

    #[test]
    fn foreign_truncated_and_future_lines_are_skipped_with_reasons() {
        let good = Record::new(0.0, 0.0, None, Event::Boundary { bar: 0 }).to_line();
        let text = format!(
            "{good}{{\"level\":\"INFO\",\"msg\":\"hi\"}}\n{}\n{{\"v\":2,\"event\":\"boundary\",\"bar\":1}}\n{{\"v\":1,\"t_ms\":0,\"wall_ms\":0,\"event\":\"warp\"}}\n\n{good}",
            &good[..good.len() / 2]
        );
        let p = parse_log(&text);
        assert_eq!(p.records.len(), 2);
        let lines: Vec<usize> = p.skipped.iter().map(|s| s.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5]);
        assert!(p.skipped[0].reason.contains("\"v\""), "{:?}", p.skipped);
        assert!(p.skipped[1].reason.contains("not JSON"), "{:?}", p.skipped);
        assert!(p.skipped[2].reason.contains("version 2"), "{:?}", p.skipped);
        assert!(p.skipped[3].reason.contains("warp"), "{:?}", p.skipped);
    }
}
