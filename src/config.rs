//! Configuration: `config/default.toml` documents every key; files are read with serde + toml
//! (unknown keys are errors) and checked by [`Config::validate`], whose errors name the key, the
//! value and the allowed range. Command-line flags override file values in the binary.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clock::meter::TimeSignature;
use crate::engine::generator::SamplingParams;

/// Everything the daemon and the headless jam can be told.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Clock source, tempo and meter.
    pub clock: ClockConfig,
    /// What the model is asked and how.
    pub generation: GenerationConfig,
    /// How results are played.
    pub playback: PlaybackConfig,
    /// MIDI ports and channels.
    pub midi: MidiConfig,
    /// Model file and runtime.
    pub model: ModelConfig,
    /// Logs and status line.
    pub log: LogConfig,
}

/// Where the clock comes from.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClockSource {
    /// Follow 0xF8/Start/Stop/Continue/SPP from a master (Ableton Live).
    #[default]
    External,
    /// Run our own clock at `clock.bpm` (and send it on the output so others can follow).
    Internal,
}

/// A time-signature change taking effect at the first pulse of `bar`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MeterChange {
    /// Bar index (0-based) where the new meter starts.
    pub bar: u64,
    /// The new meter, "N/D".
    pub time_signature: String,
}

/// `[clock]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// "external" or "internal".
    pub source: ClockSource,
    /// Tempo of the internal clock (and the initial estimate for an external one), BPM.
    pub bpm: f64,
    /// Meter at bar 0, "N/D" (MIDI clock never carries meter).
    pub time_signature: String,
    /// Later meter changes, by bar.
    pub meter_changes: Vec<MeterChange>,
    /// Clock loss: no 0xF8 for this many expected pulse periods while running.
    pub loss_intervals: f64,
    /// Clock loss never triggers sooner than this, ms.
    pub loss_min_ms: f64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            source: ClockSource::External,
            bpm: 120.0,
            time_signature: "4/4".into(),
            meter_changes: Vec::new(),
            loss_intervals: 4.0,
            loss_min_ms: 100.0,
        }
    }
}

/// `[generation]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GenerationConfig {
    /// Bars of human playing in each prompt (the bar just ended and those before it).
    pub prompt_bars: u32,
    /// Softmax temperature; 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass.
    pub top_p: f32,
    /// Min-p sampling threshold; when set, top_p is ignored (reference semantics).
    pub min_p: Option<f32>,
    /// Seed for the jam's random stream; each bar mixes in its index.
    pub seed: u64,
    /// Token cap for one bar.
    pub max_new_tokens: u32,
    /// Jobs that may wait for the worker; beyond this the oldest is dropped.
    pub queue_capacity: usize,
    /// Decoding stops this long before the deadline, ms, to leave time to schedule.
    pub deadline_margin_ms: f64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        let s = SamplingParams::default();
        Self {
            prompt_bars: 2,
            temperature: s.temperature,
            top_p: s.top_p,
            min_p: None,
            seed: 0,
            max_new_tokens: s.max_new_tokens,
            queue_capacity: 4,
            deadline_margin_ms: 15.0,
        }
    }
}

/// What to play when a bar's result is not ready at its boundary.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Leave the bar silent.
    #[default]
    Silence,
    /// Play the last bar we played again.
    RepeatLast,
    /// Play the part of the window not yet passed when the result arrives late.
    LateJoin,
}

/// `[playback]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PlaybackConfig {
    /// "silence", "repeat_last" or "late_join".
    pub fallback: Fallback,
    /// Pulses a note may ring past its window's end before it is cut.
    pub ring_out_pulses: u32,
    /// Shifts every send by this many ms (negative = earlier), like Ableton's sync delay.
    pub output_offset_ms: f64,
    /// MIDI channel of our notes, 1..=16.
    pub output_channel: u8,
    /// SCHED_FIFO priority asked for the scheduler, input and MIDI sender threads; 0 = leave
    /// them time-shared.
    pub realtime_priority: u8,
}

impl Default for PlaybackConfig {
    fn default() -> Self {
        Self {
            fallback: Fallback::Silence,
            ring_out_pulses: 0,
            output_offset_ms: 0.0,
            output_channel: 1,
            realtime_priority: 40,
        }
    }
}

/// `[midi]`
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MidiConfig {
    /// Connect the note input to the first port whose name contains this (case-insensitive);
    /// unset = create the virtual port "aria-bridge in".
    pub input_port: Option<String>,
    /// Same for the output; unset = virtual port "aria-bridge out".
    pub output_port: Option<String>,
    /// Port that carries the clock, when it is not the note input.
    pub clock_port: Option<String>,
    /// Only notes on this channel (1..=16) enter prompts; 0 = any channel.
    pub input_channel: u8,
    /// Echo the human's notes to the output.
    pub thru: bool,
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// CUDA when it registers, else CPU (logged).
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA or a startup error; never a silent CPU fallback.
    Cuda,
}

/// `[model]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// ONNX model file (exported by `models/export_onnx.py`).
    pub path: PathBuf,
    /// Execution provider: "auto", "cpu" or "cuda".
    pub device: Device,
    /// libonnxruntime.so to load; `ORT_DYLIB_PATH` wins over this.
    pub runtime: Option<PathBuf>,
    /// ONNX Runtime CPU threads (keep one core free for the clock and scheduler).
    pub threads: usize,
    /// Let ONNX Runtime's threads busy-wait between operators (faster with threads > 1, but
    /// every core stays busy while a bar is generated).
    pub spin: bool,
    /// Capture the decode step in a CUDA graph (device "cuda", a `gqa --full-head` fp16/bf16
    /// export).
    pub cuda_graph: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("models/aria-demo.onnx"),
            device: Device::Auto,
            runtime: None,
            threads: 1,
            spin: false,
            cuda_graph: false,
        }
    }
}

/// `[log]`
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Print a status line every this many bars; 0 = never.
    pub status_every_bars: u32,
    /// Also print one when this many seconds passed since the last; 0 = only by bars.
    pub status_every_secs: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            status_every_bars: 1,
            status_every_secs: 0.0,
        }
    }
}

/// A configuration that could not be read or does not make sense.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML is malformed or names an unknown key.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message (line, column, expected keys).
        message: String,
    },
    /// A value is out of its allowed range.
    #[error("config key `{key}` = {value} is invalid: {allowed}")]
    Invalid {
        /// Dotted key, e.g. `generation.top_p`.
        key: &'static str,
        /// The offending value as written.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

impl Config {
    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` only names the source in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every value against its allowed range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn bad(
            key: &'static str,
            value: impl std::fmt::Display,
            allowed: &'static str,
        ) -> ConfigError {
            ConfigError::Invalid {
                key,
                value: value.to_string(),
                allowed,
            }
        }
        let c = &self.clock;
        if !(c.bpm.is_finite() && (20.0..=400.0).contains(&c.bpm)) {
            return Err(bad("clock.bpm", c.bpm, "20 to 400 BPM"));
        }
        TimeSignature::parse(&c.time_signature).map_err(|_| {
            bad(
                "clock.time_signature",
                &c.time_signature,
                "\"N/D\" with N in 1..=32 and D in {1,2,4,8,16,32}",
            )
        })?;
        let mut last_bar = None;
        for m in &c.meter_changes {
            TimeSignature::parse(&m.time_signature).map_err(|_| {
                bad(
                    "clock.meter_changes.time_signature",
                    &m.time_signature,
                    "\"N/D\" with N in 1..=32 and D in {1,2,4,8,16,32}",
                )
            })?;
            if last_bar.is_some_and(|b| m.bar <= b) {
                return Err(bad(
                    "clock.meter_changes.bar",
                    m.bar,
                    "strictly increasing bar numbers",
                ));
            }
            last_bar = Some(m.bar);
        }
        if !(c.loss_intervals.is_finite() && (1.5..=96.0).contains(&c.loss_intervals)) {
            return Err(bad(
                "clock.loss_intervals",
                c.loss_intervals,
                "1.5 to 96 pulse periods",
            ));
        }
        if !(c.loss_min_ms.is_finite() && (10.0..=10_000.0).contains(&c.loss_min_ms)) {
            return Err(bad("clock.loss_min_ms", c.loss_min_ms, "10 to 10000 ms"));
        }
        let g = &self.generation;
        if !(1..=8).contains(&g.prompt_bars) {
            return Err(bad("generation.prompt_bars", g.prompt_bars, "1 to 8 bars"));
        }
        if !(g.temperature.is_finite() && (0.0..=5.0).contains(&g.temperature)) {
            return Err(bad(
                "generation.temperature",
                g.temperature,
                "0 (greedy) to 5",
            ));
        }
        if !(g.top_p > 0.0 && g.top_p <= 1.0) {
            return Err(bad(
                "generation.top_p",
                g.top_p,
                "greater than 0, at most 1",
            ));
        }
        if let Some(m) = g.min_p {
            if !(m > 0.0 && m < 1.0) {
                return Err(bad(
                    "generation.min_p",
                    m,
                    "greater than 0, less than 1 (or leave it out)",
                ));
            }
        }
        if !(1..=4096).contains(&g.max_new_tokens) {
            return Err(bad(
                "generation.max_new_tokens",
                g.max_new_tokens,
                "1 to 4096",
            ));
        }
        if !(1..=64).contains(&g.queue_capacity) {
            return Err(bad(
                "generation.queue_capacity",
                g.queue_capacity,
                "1 to 64 jobs",
            ));
        }
        if !(g.deadline_margin_ms.is_finite() && (0.0..=1000.0).contains(&g.deadline_margin_ms)) {
            return Err(bad(
                "generation.deadline_margin_ms",
                g.deadline_margin_ms,
                "0 to 1000 ms",
            ));
        }
        let p = &self.playback;
        if p.ring_out_pulses > 384 {
            return Err(bad(
                "playback.ring_out_pulses",
                p.ring_out_pulses,
                "0 to 384 pulses (4 bars of 4/4)",
            ));
        }
        if !(p.output_offset_ms.is_finite() && (-500.0..=500.0).contains(&p.output_offset_ms)) {
            return Err(bad(
                "playback.output_offset_ms",
                p.output_offset_ms,
                "-500 to 500 ms",
            ));
        }
        if !(1..=16).contains(&p.output_channel) {
            return Err(bad("playback.output_channel", p.output_channel, "1 to 16"));
        }
        if p.realtime_priority > 98 {
            return Err(bad(
                "playback.realtime_priority",
                p.realtime_priority,
                "0 (off) to 98",
            ));
        }
        if self.midi.input_channel > 16 {
            return Err(bad(
                "midi.input_channel",
                self.midi.input_channel,
                "0 (any) or 1 to 16",
            ));
        }
        if !(1..=64).contains(&self.model.threads) {
            return Err(bad("model.threads", self.model.threads, "1 to 64"));
        }
        let secs = self.log.status_every_secs;
        if !(secs.is_finite() && (0.0..=3600.0).contains(&secs)) {
            return Err(bad("log.status_every_secs", secs, "0 (off) to 3600 s"));
        }
        Ok(())
    }

    /// The sampling settings of `[generation]` with `seed` as given.
    pub fn sampling(&self, seed: u64) -> SamplingParams {
        let g = &self.generation;
        SamplingParams {
            temperature: g.temperature,
            top_p: g.top_p,
            min_p: g.min_p,
            seed,
            max_new_tokens: g.max_new_tokens,
        }
    }
}
