//! [`AriaGenerator`]: the engine's [`Generator`] backed by Aria under ONNX Runtime.
//!
//! One bar: re-base the prompt at its first onset (the model only ever saw `<S>` followed by a
//! note at onset 0 in training), tokenize it, prefill, then sample one token at a time under the
//! [`Grammar`] mask until an onset passes the end of the window (or a `<T>` moves the clock past
//! it), the token cap, or the deadline minus a margin; decode the notes and shift them back by the
//! re-basing offset into ms from the window start. Notes still held when the prompt was cut carry
//! the provisional duration [`crate::engine::bars`] gave them (the model reads them as ending there).
//!
//! Runs on the worker thread only; it allocates (token vectors) and calls ORT, so it never runs on
//! the MIDI or scheduler threads. A model failure is a [`GeneratorError`] for that bar, never a
//! panic.

use std::ops::Range;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::aria::grammar::{hull, Cursor, Grammar, Step};
use crate::aria::model::{AriaModel, ModelError, ModelOptions};
use crate::aria::runtime::Runtime;
use crate::aria::sampling::Sampler;
use crate::aria::tokenizer::Tokenizer;
use crate::config::ModelConfig;
use crate::engine::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError, SamplingParams,
    StopReason,
};
use crate::music::note::MsNote;

/// Why an [`AriaGenerator`] could not be built (at startup, before any bar).
#[derive(Debug, thiserror::Error)]
pub enum AriaSetupError {
    /// The runtime or the model file failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model's output head does not match a vocabulary the tokenizer knows.
    #[error(
        "model {path} has a vocabulary of {size} ids, but Aria's tokenizer has 17727 (default) or \
         17729 (with pedal tokens); export the model from a matching checkpoint \
         (models/export_onnx.py reads the size from the checkpoint's embedding)"
    )]
    VocabMismatch {
        /// The model file.
        path: PathBuf,
        /// Rows of the model's output head.
        size: usize,
    },
}

/// What bounds one continuation besides the token cap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    /// Stop once an onset (or a `<T>`) reaches this ms from the sequence origin.
    pub window_end_ms: Option<u32>,
    /// Stop when the next step would end later than this instant minus the margin.
    pub deadline: Option<Instant>,
    /// Apply the grammar mask (a jam always does; `generate --no-mask` reproduces the
    /// reference's unmasked sampling).
    pub masked: bool,
}

/// The ids a continuation produced and how it went.
#[derive(Clone, Debug, PartialEq)]
pub struct Continuation {
    /// Generated ids, in order (without the prompt).
    pub ids: Vec<u32>,
    /// Why decoding ended.
    pub stop: StopReason,
    /// Prefill forward pass, ms.
    pub prefill_ms: f64,
    /// All decode steps (forward + sampling), ms.
    pub decode_ms: f64,
}

/// Aria under ONNX Runtime as a [`Generator`].
pub struct AriaGenerator {
    model: AriaModel,
    tok: Tokenizer,
    grammar: Grammar,
    sampler: Sampler,
    margin: Duration,
    allowed: Vec<Range<u32>>,
}

impl std::fmt::Debug for AriaGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AriaGenerator")
            .field("model", &self.model)
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl AriaGenerator {
    /// Wraps a loaded model; fails when its vocabulary is not one the tokenizer knows.
    /// `deadline_margin` is how long before a request's deadline decoding stops.
    pub fn new(model: AriaModel, deadline_margin: Duration) -> Result<Self, AriaSetupError> {
        let size = model.info().vocab_size;
        let tok = Tokenizer::for_vocab_size(size).map_err(|_| AriaSetupError::VocabMismatch {
            path: model.path().to_path_buf(),
            size,
        })?;
        let grammar = Grammar::new(&tok);
        Ok(Self {
            model,
            tok,
            grammar,
            sampler: Sampler::new(0),
            margin: deadline_margin,
            allowed: Vec::new(),
        })
    }

    /// Loads ONNX Runtime and the model of `[model]` and wraps it (see [`AriaGenerator::new`]).
    pub fn load(cfg: &ModelConfig, deadline_margin: Duration) -> Result<Self, AriaSetupError> {
        let rt = Runtime::get(cfg.runtime.as_deref()).map_err(ModelError::from)?;
        let opts = ModelOptions {
            device: cfg.device,
            threads: cfg.threads,
            spin: cfg.spin,
            cuda_graph: cfg.cuda_graph,
            ..ModelOptions::default()
        };
        let model = AriaModel::load(rt, &cfg.path, &opts)?;
        Self::new(model, deadline_margin)
    }

    /// The tokenizer matching the model's vocabulary.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tok
    }

    /// The model.
    pub fn model(&self) -> &AriaModel {
        &self.model
    }

    /// Prefills `prompt_ids` and samples up to `params.max_new_tokens` ids within `limits`.
    pub fn continue_ids(
        &mut self,
        prompt_ids: &[u32],
        params: &SamplingParams,
        limits: &Limits,
    ) -> Result<Continuation, GeneratorError> {
        let fail = |e: ModelError| GeneratorError::Inference(e.to_string());
        let vocab = self.model.info().vocab_size as u32;
        if prompt_ids.is_empty() {
            return Err(GeneratorError::Prompt("the prompt has no tokens".into()));
        }
        self.sampler.reseed(params.seed);
        let mut cursor: Cursor = self.grammar.start(&self.tok, prompt_ids);
        let mut out = Vec::with_capacity(params.max_new_tokens as usize);
        let done = |stop, prefill_ms, decode_ms, ids| {
            Ok(Continuation {
                ids,
                stop,
                prefill_ms,
                decode_ms,
            })
        };
        let margin = self.margin;
        let late = |step: Duration| {
            limits
                .deadline
                .is_some_and(|d| Instant::now() + step + margin >= d)
        };
        if late(Duration::ZERO) {
            return done(StopReason::Deadline, 0.0, 0.0, out);
        }
        self.model.reset().map_err(fail)?;
        let t0 = Instant::now();
        self.set_allowed(&cursor, limits.masked, vocab);
        // Only the rows the next draw can pick are computed (see `AriaModel::forward_range`).
        let mut logits = self
            .model
            .forward_range(prompt_ids, hull(&self.allowed))
            .map_err(fail)?;
        let prefill_ms = ms(t0.elapsed());
        let t1 = Instant::now();
        // The last step's duration predicts the next one: stop before a step that would overrun.
        let mut step_cost = Duration::ZERO;
        let stop = loop {
            if out.len() >= params.max_new_tokens as usize {
                break StopReason::TokenCap;
            }
            if late(step_cost) {
                break StopReason::Deadline;
            }
            let s = Instant::now();
            let next = self
                .sampler
                .sample(logits, &self.allowed, params)
                .ok_or_else(|| {
                    GeneratorError::Inference("the model gave no finite logit to sample".into())
                })?;
            out.push(next);
            let reached = |ms: u32| limits.window_end_ms.is_some_and(|end| ms >= end);
            match self.grammar.advance(&self.tok, &mut cursor, next) {
                Step::End => break StopReason::EndOfSequence,
                Step::Onset(ms) | Step::Segment(ms) if reached(ms) => {
                    break StopReason::WindowFilled;
                }
                _ => {}
            }
            if out.len() >= params.max_new_tokens as usize {
                break StopReason::TokenCap;
            }
            self.set_allowed(&cursor, limits.masked, vocab);
            logits = self
                .model
                .forward_range(&[next], hull(&self.allowed))
                .map_err(fail)?;
            step_cost = s.elapsed();
        };
        let decode_ms = ms(t1.elapsed());
        done(stop, prefill_ms, decode_ms, out)
    }
}

impl AriaGenerator {
    /// The ids the next draw may pick: the grammar's, or the whole vocabulary unmasked.
    fn set_allowed(&mut self, cursor: &Cursor, masked: bool, vocab: u32) {
        if masked {
            self.grammar.allowed(cursor, &mut self.allowed);
        } else {
            self.allowed.clear();
            self.allowed.push(0..vocab);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Generator for AriaGenerator {
    fn generate(&mut self, request: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        let t0 = Instant::now();
        // Leading silence removed, as the reference prompts the model; `offset` puts it back.
        let (prompt_ids, offset) = self.tok.encode_prompt_rebased(request.prompt);
        let tokenize_ms = ms(t0.elapsed());
        let window_start = request.window_start_ms;
        let window_end = window_start.saturating_add(request.window_len_ms);
        let limits = Limits {
            window_end_ms: Some(window_end.saturating_sub(offset)),
            deadline: request.deadline,
            masked: true,
        };
        let cont = self.continue_ids(&prompt_ids, &request.params, &limits)?;
        let t1 = Instant::now();
        let mut all = prompt_ids.clone();
        all.extend_from_slice(&cont.ids);
        let notes = self
            .tok
            .decode_notes_from(&all, prompt_ids.len())
            .into_iter()
            .filter_map(|n| {
                let start = n.start_ms.checked_add(offset)?;
                let end = n.end_ms.checked_add(offset)?;
                // Notes the model placed before the window (in the gap after the prompt) belong
                // to a bar that is already playing.
                (start >= window_start && start < window_end).then(|| MsNote {
                    start_ms: start - window_start,
                    end_ms: end - window_start,
                    ..n
                })
            })
            .collect();
        let detokenize_ms = ms(t1.elapsed());
        Ok(Generated {
            notes,
            stats: GenerationStats {
                prompt_tokens: prompt_ids.len() as u32,
                new_tokens: cont.ids.len() as u32,
                tokenize_ms,
                prefill_ms: cont.prefill_ms,
                decode_ms: cont.decode_ms,
                detokenize_ms,
                provider: self.model.provider().as_str().to_string(),
                stop: Some(cont.stop),
            },
        })
    }

    fn describe(&self) -> String {
        let i = self.model.info();
        format!(
            "aria {} on {} ({}, {} layers, d{}, vocab {})",
            self.model.path().display(),
            self.model.provider().as_str(),
            i.dtype.as_str(),
            i.n_layers,
            i.n_heads * i.head_dim,
            i.vocab_size
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_can_move_to_the_worker_thread() {
        fn send<T: Send>() {}
        send::<AriaGenerator>();
        let _: Option<Box<dyn Generator>> = None::<AriaGenerator>.map(|g| Box::new(g) as _);
    }
}
