//! The unit of work between the input thread and the worker, and what comes back.

use crate::engine::generator::{Generated, SamplingParams};
use crate::music::note::Prompt;
use crate::Nanos;

/// Where a result plays: pulses `[start_pulse, start_pulse + len_pulses)` of the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Bar index whose window this is (the human bar + 2).
    pub bar: u64,
    /// First pulse of that bar: the deadline.
    pub start_pulse: u64,
    /// Pulses in that bar.
    pub len_pulses: u32,
}

/// A request to generate the answer to human bar `bar`, built at the boundary that ends it.
#[derive(Clone, Debug)]
pub struct GenerationJob {
    /// The human bar just completed (k); the prompt covers bars k-n+1..=k.
    pub bar: u64,
    /// Transport epoch the job was built in; a later epoch voids it.
    pub epoch: u32,
    /// The human's notes in ms from the prompt's first bar.
    pub prompt: Prompt,
    /// Sampling settings (seed already mixed with the bar index).
    pub params: SamplingParams,
    /// Where the result plays.
    pub window: Window,
    /// Milliseconds per pulse of the tempo the prompt was built with.
    pub ms_per_pulse: f64,
    /// Estimated instant of `window.start_pulse` (the deadline) when the job was built.
    pub deadline_ns: Nanos,
    /// Instant the job was built (the boundary).
    pub enqueued_ns: Nanos,
}

/// A finished (or failed) generation on its way to the scheduler.
#[derive(Debug)]
pub struct GenerationResult {
    /// The human bar the job answered.
    pub bar: u64,
    /// The job's epoch.
    pub epoch: u32,
    /// Where it plays.
    pub window: Window,
    /// Milliseconds per pulse the job was built with (results are re-timed at the current tempo).
    pub ms_per_pulse: f64,
    /// The notes, or why there are none (the bar then stays silent or falls back).
    pub outcome: Result<Generated, String>,
    /// When the worker took the job.
    pub started_ns: Nanos,
    /// When the worker finished it.
    pub finished_ns: Nanos,
}
