//! The bundled demo model (`models/aria-demo.onnx`): it loads, speaks the tokenizer's vocabulary,
//! and fills bars of the bundled human part with well-formed notes. Needs ONNX Runtime
//! (`scripts/setup.sh`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use aria_bridge::aria::generator::{AriaGenerator, Limits};
use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::model::{AriaModel, ModelOptions};
use aria_bridge::aria::runtime::Runtime;
use aria_bridge::aria::tokenizer::{Special, TokenKind, Tokenizer};
use aria_bridge::engine::generator::{GenerationRequest, Generator, SamplingParams};
use aria_bridge::music::note::{MsNote, Prompt};

/// 4/4 at 120 BPM: the tempo of examples/human.mid.
const BAR_MS: u32 = 2000;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn model_path() -> PathBuf {
    root().join("models/aria-demo.onnx")
}

fn generator() -> AriaGenerator {
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let model = AriaModel::load(rt, &model_path(), &ModelOptions::default()).unwrap();
    AriaGenerator::new(model, Duration::from_millis(5)).unwrap()
}

/// Every note of examples/human.mid in ms from its start.
fn human_notes() -> Vec<MsNote> {
    let bytes = std::fs::read(root().join("examples/human.mid")).unwrap();
    let md = MidiDict::from_smf(&bytes).unwrap();
    md.notes
        .iter()
        .map(|n| MsNote {
            pitch: n.pitch,
            velocity: n.velocity,
            start_ms: md.tick_to_ms(n.start) as u32,
            end_ms: md.tick_to_ms(n.end) as u32,
        })
        .collect()
}

/// Bars `first..first + 2` of the human part as a prompt, times from the first bar's start
/// (what the bridge sends for the answer to bar `first + 1`).
fn human_prompt(first: u32) -> Prompt {
    let (t0, t1) = (first * BAR_MS, (first + 2) * BAR_MS);
    let notes = human_notes()
        .into_iter()
        .filter(|n| n.start_ms >= t0 && n.start_ms < t1)
        .map(|n| MsNote {
            start_ms: n.start_ms - t0,
            end_ms: n.end_ms.min(t1) - t0,
            ..n
        })
        .collect();
    Prompt {
        notes,
        pedal: vec![],
        length_ms: 2 * BAR_MS,
    }
}

#[test]
fn demo_model_has_the_tokenizers_vocabulary_and_its_card_config() {
    let g = generator();
    let info = g.model().info().clone();
    assert_eq!(info.vocab_size, Tokenizer::new().vocab_size());
    let text = std::fs::read_to_string(root().join("models/aria-demo.config.json")).unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cfg["vocab_size"], info.vocab_size);
    assert_eq!(cfg["n_layers"], info.n_layers);
    assert_eq!(cfg["n_heads"], info.n_heads);
    assert_eq!(cfg["d_model"], info.n_heads * info.head_dim);
    assert_eq!(cfg["max_seq_len"], info.max_seq_len);
    // What the bridge needs of a trained model (export_onnx.py also writes both into the model's
    // metadata as aria_bridge.train_bpm / aria_bridge.max_prompt_tokens): the tempo the corpus was
    // rendered at and the training window.
    assert_eq!(cfg["train_bpm"], 120);
    assert_eq!(cfg["max_prompt_tokens"], 384);
}

#[test]
fn demo_model_file_stays_under_25_mb() {
    let len = std::fs::metadata(model_path()).unwrap().len();
    assert!(len <= 25_000_000, "{len} bytes");
}

#[test]
fn demo_model_continues_in_note_onset_duration_triples_with_rising_onsets() {
    let mut g = generator();
    let tok = g.tokenizer().clone();
    let prompt = tok.encode_prompt(&human_prompt(0));
    let params = SamplingParams {
        seed: 3,
        max_new_tokens: 150,
        ..SamplingParams::default()
    };
    let limits = Limits {
        masked: true,
        ..Limits::default()
    };
    let cont = g.continue_ids(&prompt, &params, &limits).unwrap();
    let (mut i, mut segment, mut last_onset, mut notes) = (0, 0u32, 0u32, 0);
    while i + 2 < cont.ids.len() {
        if tok.kind(cont.ids[i]) == Some(TokenKind::Special(Special::T)) {
            segment += 1;
            i += 1;
            continue;
        }
        assert_eq!(tok.kind(cont.ids[i]), Some(TokenKind::Note), "at {i}");
        let onset = tok
            .onset_ms(cont.ids[i + 1])
            .expect("an onset after a note");
        assert!(
            tok.dur_ms(cont.ids[i + 2]).is_some(),
            "a duration after an onset"
        );
        let abs = segment * 5000 + onset;
        assert!(abs >= last_onset, "onset {abs} ms after {last_onset} ms");
        last_onset = abs;
        notes += 1;
        i += 3;
    }
    assert!(notes >= 20, "{notes} notes in 150 tokens");
}

#[test]
fn demo_model_fills_bars_of_the_human_part_with_notes_inside_the_bar() {
    let mut g = generator();
    let mut total = 0;
    for (first, seed) in [(0u32, 1u64), (2, 2), (5, 3), (10, 4)] {
        let prompt = human_prompt(first);
        let request = GenerationRequest {
            prompt: &prompt,
            window_start_ms: 2 * BAR_MS,
            window_len_ms: BAR_MS,
            params: SamplingParams {
                seed,
                ..SamplingParams::default()
            },
            deadline: None,
        };
        let out = g.generate(&request).unwrap();
        for w in out.notes.windows(2) {
            assert!(w[0].start_ms <= w[1].start_ms, "{w:?} out of order");
        }
        for n in &out.notes {
            assert!(n.start_ms < BAR_MS, "{n:?} starts after the bar");
            assert!(n.end_ms > n.start_ms, "{n:?} has no duration");
            assert!(n.velocity > 0, "{n:?} is silent");
        }
        total += out.notes.len();
    }
    assert!(total >= 8, "only {total} notes in four bars");
}
