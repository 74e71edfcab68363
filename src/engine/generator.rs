//! The seam to the model: a [`Generator`] turns a prompt into the notes of one bar.
//!
//! The real implementation is Aria under ONNX Runtime ([`crate::aria`]); tests plug in doubles
//! that live under `tests/`. A generator runs on the worker thread only ([`crate::engine::worker`]).

use std::time::Instant;

use crate::music::note::{MsNote, Prompt};

/// Sampling settings for one generation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus mass kept (reference semantics: a token stays while the mass before it is <= top_p).
    pub top_p: f32,
    /// When set, keep tokens whose probability is >= min_p x the largest (top_p is then ignored).
    pub min_p: Option<f32>,
    /// Seed of this generation's random stream (the jam seed mixed with the bar index).
    pub seed: u64,
    /// Hard cap on new tokens for one bar.
    pub max_new_tokens: u32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        // The bridge this project replaces used 0.8 / 0.9; a bar of dense piano is ~30 notes =
        // 90 tokens, so 256 leaves room without letting a runaway loop eat the deadline.
        Self {
            temperature: 0.8,
            top_p: 0.9,
            min_p: None,
            seed: 0,
            max_new_tokens: 256,
        }
    }
}

/// One request: continue `prompt` and return the notes that fall in the window
/// `[window_start_ms, window_start_ms + window_len_ms)` (ms from the prompt's origin).
#[derive(Clone, Debug)]
pub struct GenerationRequest<'a> {
    /// The human's recent bars.
    pub prompt: &'a Prompt,
    /// Where the window to fill begins, in ms from the prompt's origin (usually the prompt's end).
    pub window_start_ms: u32,
    /// Length of the window in ms (one bar at the current tempo).
    pub window_len_ms: u32,
    /// Sampling settings.
    pub params: SamplingParams,
    /// Stop early (returning what is complete) when this instant is near; `None` in virtual time.
    pub deadline: Option<Instant>,
}

/// Why decoding ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An onset passed the end of the window.
    WindowFilled,
    /// The model produced an end-of-sequence token.
    EndOfSequence,
    /// The token cap was reached.
    TokenCap,
    /// The deadline (minus a safety margin) arrived.
    Deadline,
}

/// Measurements of one generation, for logs and reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct GenerationStats {
    /// Tokens in the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub new_tokens: u32,
    /// Tokenizing the prompt, ms.
    pub tokenize_ms: f64,
    /// Prefill forward pass, ms.
    pub prefill_ms: f64,
    /// All decode steps together, ms.
    pub decode_ms: f64,
    /// Turning tokens back into notes, ms.
    pub detokenize_ms: f64,
    /// The execution provider that actually ran ("cpu", "cuda", or a test double's name).
    pub provider: String,
    /// Why decoding ended, when the generator knows.
    pub stop: Option<StopReason>,
}

/// What a generator returns for one window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Generated {
    /// Notes in ms from the window's start; notes may ring past the window end (the scheduler cuts them).
    pub notes: Vec<MsNote>,
    /// Measurements.
    pub stats: GenerationStats,
}

/// A failure of one generation: the bar stays silent, the worker carries on.
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    /// The model runtime failed on this input.
    #[error("model inference failed: {0}")]
    Inference(String),
    /// The prompt could not be turned into tokens.
    #[error("prompt could not be tokenized: {0}")]
    Prompt(String),
}

/// Turns a prompt into one bar of notes. Runs on the worker thread; may take longer than a bar.
pub trait Generator: Send {
    /// Generates the notes for `request`'s window.
    fn generate(&mut self, request: &GenerationRequest<'_>) -> Result<Generated, GeneratorError>;

    /// A short description for logs (model file, provider, dtype).
    fn describe(&self) -> String;
}
