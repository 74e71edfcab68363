//! `aria-bridge generate`: continue a MIDI prompt with the model.
//!
//! The prompt is every note of the file whose start is at or before `--prompt-ms` (inclusive, ms
//! from the file start), tokenized in the reference's prompt case (leading silence kept), exactly
//! as the reference's own runs. `--json` prints the prompt and generated ids; otherwise the prompt
//! and its continuation are written to a MIDI file (1 tick = 1 ms).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use aria_bridge::aria::generator::{AriaGenerator, Limits};
use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::tokenizer::Case;
use aria_bridge::config::{Device, ModelConfig};
use aria_bridge::engine::generator::SamplingParams;
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::cli::bench::{init_logging, parse_device};

/// Flags of `generate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ONNX model from models/export_onnx.py.
    #[arg(long, default_value = "models/aria-tiny-dev.onnx")]
    pub model: PathBuf,
    /// MIDI file to continue.
    #[arg(long)]
    pub prompt: PathBuf,
    /// Keep the notes starting at or before this many ms from the file start (default: all).
    #[arg(long)]
    pub prompt_ms: Option<i64>,
    /// Always take the most likely token (temperature 0).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "min_p"])]
    pub greedy: bool,
    /// Softmax temperature.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Nucleus mass kept (ignored when --min-p is given).
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Keep tokens with probability >= min_p x the largest.
    #[arg(long)]
    pub min_p: Option<f32>,
    /// Seed of the random stream.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tokens to generate (fewer when the model ends the piece).
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: u32,
    /// Sample from the whole vocabulary as the reference does, instead of only the tokens that
    /// can legally come next in a piano continuation.
    #[arg(long)]
    pub no_mask: bool,
    /// Print {"prompt_ids": [...], "generated_ids": [...]} instead of writing MIDI.
    #[arg(long)]
    pub json: bool,
    /// MIDI file to write (default: <prompt>.continued.mid next to the prompt).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Execution provider: auto, cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: Device,
    /// libonnxruntime.so to load (ORT_DYLIB_PATH wins).
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// ORT intra-op threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

#[derive(serde::Serialize)]
struct Ids<'a> {
    prompt_ids: &'a [u32],
    generated_ids: &'a [u32],
}

/// Runs `generate`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let bytes = std::fs::read(&args.prompt)
        .with_context(|| format!("cannot read MIDI file {}", args.prompt.display()))?;
    let mut md =
        MidiDict::from_smf(&bytes).with_context(|| format!("in {}", args.prompt.display()))?;
    if let Some(cut) = args.prompt_ms {
        let kept: Vec<_> = md
            .notes
            .iter()
            .copied()
            .filter(|n| md.tick_to_ms(n.start) <= cut)
            .collect();
        md.notes = kept;
    }
    let cfg = ModelConfig {
        path: args.model.clone(),
        device: args.device,
        runtime: args.runtime.clone(),
        threads: args.threads,
        spin: false,
        cuda_graph: false,
    };
    let mut generator = AriaGenerator::load(&cfg, Duration::ZERO)?;
    let tok = generator.tokenizer().clone();
    let tokens = tok
        .tokenize_case(&md, Case::Prompt)
        .with_context(|| format!("cannot tokenize {}", args.prompt.display()))?;
    let prompt_ids = tok.encode(&tokens);
    let params = SamplingParams {
        temperature: if args.greedy { 0.0 } else { args.temperature },
        top_p: args.top_p,
        min_p: args.min_p,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
    };
    let limits = Limits {
        window_end_ms: None,
        deadline: None,
        masked: !args.no_mask,
    };
    let cont = generator.continue_ids(&prompt_ids, &params, &limits)?;
    tracing::info!(
        prompt_tokens = prompt_ids.len(),
        new_tokens = cont.ids.len(),
        stop = ?cont.stop,
        prefill_ms = cont.prefill_ms,
        decode_ms = cont.decode_ms,
        provider = generator.model().provider().as_str(),
        "generated"
    );
    if args.json {
        let ids = Ids {
            prompt_ids: &prompt_ids,
            generated_ids: &cont.ids,
        };
        println!("{}", serde_json::to_string(&ids)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut all = prompt_ids.clone();
    all.extend_from_slice(&cont.ids);
    let notes = tok.detokenize_ids(&all).notes;
    let out = args.out.unwrap_or_else(|| {
        let stem = args
            .prompt
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prompt".into());
        args.prompt.with_file_name(format!("{stem}.continued.mid"))
    });
    write_midi(
        &out,
        notes
            .iter()
            .map(|n| (n.start_ms, n.end_ms, n.pitch, n.velocity, n.channel)),
    )?;
    eprintln!(
        "wrote {} ({} prompt + {} generated tokens, {} notes)",
        out.display(),
        prompt_ids.len(),
        cont.ids.len(),
        notes.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes notes `(start_ms, end_ms, pitch, velocity, channel)` as a single-track file at 500
/// ticks per beat and 120 BPM, so that one tick is one ms.
fn write_midi(
    path: &std::path::Path,
    notes: impl Iterator<Item = (u64, u64, u8, u8, u8)>,
) -> anyhow::Result<()> {
    // (time, order, kind): offs sort before ons at the same tick so repeated keys re-strike.
    let mut events: Vec<(u64, u8, TrackEventKind<'static>)> = Vec::new();
    for (start, end, pitch, vel, ch) in notes {
        let (key, channel) = (u7::new(pitch.min(127)), u4::new(ch.min(15)));
        events.push((
            start,
            1,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOn {
                    key,
                    vel: u7::new(vel.clamp(1, 127)),
                },
            },
        ));
        events.push((
            end.max(start),
            0,
            TrackEventKind::Midi {
                channel,
                message: MidiMessage::NoteOff {
                    key,
                    vel: u7::new(0),
                },
            },
        ));
    }
    events.sort_by_key(|&(t, o, _)| (t, o));
    let mut track = vec![TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
    }];
    let mut now = 0u64;
    for (t, _, kind) in events {
        track.push(TrackEvent {
            delta: u28::new((t - now).min(u64::from(u32::MAX >> 4)) as u32),
            kind,
        });
        now = t;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let mut smf = Smf::new(Header::new(
        Format::SingleTrack,
        Timing::Metrical(u15::new(500)),
    ));
    smf.tracks.push(track);
    smf.save(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
