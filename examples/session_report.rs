//! A headless jam with a synthetic generator whose cost varies from bar to bar, so that the
//! event log has something to show: writes `OUT/session.jsonl` and `OUT/session.mid`.
//!
//! ```text
//! cargo run --example session_report -- OUT_DIR [BPM]
//! aria-bridge report OUT_DIR/session.jsonl --plot OUT_DIR/latency.png
//! aria-bridge report --piano-roll OUT_DIR/session.mid --plot OUT_DIR/roll.png
//! ```
//!
//! The generator echoes the prompt's last bar an octave up and sleeps a pseudo-random 35% to 110%
//! of a bar, reporting made-up but consistent stage times (10% prefill, 85% decode), so some
//! bars miss their window.

use std::path::PathBuf;
use std::time::Duration;

use aria_bridge::clock::meter::TimeSignature;
use aria_bridge::config::Config;
use aria_bridge::engine::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError, StopReason,
};
use aria_bridge::engine::jam::{run_virtual, JamOptions};
use aria_bridge::log::LogFile;
use aria_bridge::midi::smf::{self, Session};
use aria_bridge::music::note::MsNote;

/// Costs a varying share of a bar and answers with the prompt's last bar an octave up.
struct Synthetic {
    state: u64,
    bar_ms: f64,
}

impl Generator for Synthetic {
    fn generate(&mut self, r: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        // xorshift: a fixed, seedless sequence of costs.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let share = 0.35 + 0.75 * (self.state % 1000) as f64 / 1000.0;
        let ms = self.bar_ms * share;
        std::thread::sleep(Duration::from_secs_f64(ms / 1e3));
        let from = r.window_start_ms.saturating_sub(r.window_len_ms);
        let notes: Vec<MsNote> = r
            .prompt
            .notes
            .iter()
            .filter(|n| n.start_ms >= from && n.start_ms < r.window_start_ms)
            .map(|n| MsNote {
                pitch: (n.pitch + 12).min(127),
                velocity: n.velocity,
                start_ms: n.start_ms - from,
                end_ms: n.end_ms.saturating_sub(from).max(n.start_ms - from + 1),
            })
            .collect();
        let new_tokens = notes.len() as u32 * 3 + 1;
        Ok(Generated {
            stats: GenerationStats {
                prompt_tokens: r.prompt.notes.len() as u32 * 3 + 4,
                new_tokens,
                tokenize_ms: 0.02 * ms,
                prefill_ms: 0.10 * ms,
                decode_ms: 0.85 * ms,
                detokenize_ms: 0.01 * ms,
                provider: "synthetic".into(),
                stop: Some(StopReason::WindowFilled),
            },
            notes,
        })
    }

    fn describe(&self) -> String {
        "synthetic generator (varying cost)".into()
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "target/session-report".into()),
    );
    let bpm: f64 = args.next().map_or(Ok(180.0), |s| s.parse())?;
    std::fs::create_dir_all(&out)?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let human = smf::read_human(&root.join("examples/human.mid"))?;
    let mut cfg = Config::default();
    cfg.clock.bpm = bpm;
    let mut g = Synthetic {
        state: 0x9E37_79B9_7F4A_7C15,
        bar_ms: 4.0 * 60_000.0 / bpm,
    };
    let opts = JamOptions {
        bpm,
        tail_bars: 2,
        assume_latency: None,
    };
    let o = run_virtual(&cfg, &human, &mut g, &opts, &mut |_, _| {});
    let log = LogFile::create(&out.join("session.jsonl"))?;
    let mut sink = log.sink();
    o.events.iter().for_each(&mut sink);
    drop(log);
    let meter = [(0u64, TimeSignature::parse(&cfg.clock.time_signature)?)];
    smf::write_session(
        &out.join("session.mid"),
        &Session {
            bpm,
            meter: &meter,
            origin: o.origin,
            human: &o.human,
            ai: &o.ai,
            marks: &o.marks,
        },
    )?;
    println!(
        "{} bars, {} events, {} marks -> {}",
        o.bars,
        o.events.len(),
        o.marks.len(),
        out.display()
    );
    Ok(())
}
