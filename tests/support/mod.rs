//! Test doubles shared by the integration tests: a scripted [`Generator`] with a configurable
//! delay that can fail or panic on cue, and builders for jobs.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aria_bridge::engine::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError, SamplingParams,
};
use aria_bridge::engine::job::{GenerationJob, Window};
use aria_bridge::music::note::{MsNote, Prompt};
use aria_bridge::Nanos;

/// What the double does on one call.
#[derive(Clone, Debug)]
pub enum Step {
    /// Return these notes.
    Notes(Vec<MsNote>),
    /// Return an inference error.
    Fail,
    /// Panic with this message.
    Panic(&'static str),
}

/// What the double saw in one request.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// The prompt's length, ms.
    pub prompt_len_ms: u32,
    /// Window start, ms from the prompt origin.
    pub window_start_ms: u32,
    /// Window length, ms.
    pub window_len_ms: u32,
    /// The deadline passed, if any.
    pub deadline: Option<Instant>,
    /// The sampling seed (tests put the job's bar there to identify calls).
    pub seed: u64,
}

/// A generator that follows a script (then repeats `fallback`), sleeping `delay` per call.
pub struct ScriptedGenerator {
    /// Time each call takes.
    pub delay: Duration,
    /// Steps to play in order.
    pub script: VecDeque<Step>,
    /// Step used once the script is exhausted.
    pub fallback: Step,
    /// Every request seen, shared with the test.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl ScriptedGenerator {
    /// A double that returns one middle C per call, instantly.
    pub fn new() -> Self {
        Self {
            delay: Duration::ZERO,
            script: VecDeque::new(),
            fallback: Step::Notes(vec![note(60, 0, 100)]),
            seen: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Plays `steps` first.
    pub fn with_script(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.script = steps.into_iter().collect();
        self
    }

    /// Sleeps `d` in every call.
    pub fn with_delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }

    /// The shared request log.
    pub fn seen(&self) -> Arc<Mutex<Vec<Seen>>> {
        self.seen.clone()
    }
}

impl Generator for ScriptedGenerator {
    fn generate(&mut self, r: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        self.seen.lock().unwrap().push(Seen {
            prompt_len_ms: r.prompt.length_ms,
            window_start_ms: r.window_start_ms,
            window_len_ms: r.window_len_ms,
            deadline: r.deadline,
            seed: r.params.seed,
        });
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        let step = self
            .script
            .pop_front()
            .unwrap_or_else(|| self.fallback.clone());
        match step {
            Step::Notes(notes) => Ok(Generated {
                notes,
                stats: GenerationStats {
                    provider: "scripted".into(),
                    ..GenerationStats::default()
                },
            }),
            Step::Fail => Err(GeneratorError::Inference("scripted failure".into())),
            Step::Panic(msg) => panic!("{msg}"),
        }
    }

    fn describe(&self) -> String {
        "scripted test generator".into()
    }
}

/// A note with velocity 80.
pub fn note(pitch: u8, start_ms: u32, end_ms: u32) -> MsNote {
    MsNote {
        pitch,
        velocity: 80,
        start_ms,
        end_ms,
    }
}

/// The 4/4 window of `bar` (96 pulses).
pub fn window(bar: u64) -> Window {
    Window {
        bar,
        start_pulse: bar * 96,
        len_pulses: 96,
    }
}

/// A job for human bar `bar` (window bar + 2) at 120 BPM with a 2-bar prompt; the seed is `bar`.
pub fn job(bar: u64, epoch: u32, deadline_ns: Nanos) -> GenerationJob {
    GenerationJob {
        bar,
        epoch,
        prompt: Prompt {
            notes: vec![note(60, 0, 500)],
            pedal: vec![],
            length_ms: 4000,
        },
        params: SamplingParams {
            seed: bar,
            ..SamplingParams::default()
        },
        window: window(bar + 2),
        ms_per_pulse: 20.833_333,
        deadline_ns,
        enqueued_ns: 0,
    }
}
