//! Generation end to end on the tiny model (CPU): the `generate` command, and `AriaGenerator`
//! filling a bar window. Needs ONNX Runtime (`scripts/setup.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aria_bridge::aria::generator::{AriaGenerator, Limits};
use aria_bridge::aria::model::{AriaModel, ModelOptions};
use aria_bridge::aria::runtime::Runtime;
use aria_bridge::aria::tokenizer::{Special, TokenKind};
use aria_bridge::engine::generator::{
    GenerationRequest, Generator, GeneratorError, SamplingParams, StopReason,
};
use aria_bridge::music::note::{MsNote, Prompt};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/reference-model")
}

fn midi(name: &str) -> PathBuf {
    root().join("tests/fixtures/aria/midi").join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("aria-tiny-dev.reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn generator(options: ModelOptions) -> AriaGenerator {
    let rt = Runtime::get(None).expect("ONNX Runtime (run scripts/setup.sh)");
    let model = AriaModel::load(rt, &root().join("models/aria-tiny-dev.onnx"), &options).unwrap();
    AriaGenerator::new(model, Duration::from_millis(5)).unwrap()
}

#[test]
fn generate_json_reproduces_the_reference_greedy_ids() {
    for case in reference()["cases"].as_array().unwrap() {
        let file = case["prompt_file"].as_str().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
            .current_dir(root())
            .args([
                "generate",
                "--device",
                "cpu",
                "--greedy",
                "--no-mask",
                "--json",
            ])
            .args(["--max-new-tokens", "64", "--prompt-ms"])
            .arg(case["prompt_ms"].to_string())
            .arg("--prompt")
            .arg(midi(file))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(got["prompt_ids"], case["prompt_ids"], "{file}: prompt ids");
        assert_eq!(
            got["generated_ids"], case["greedy_ids"],
            "{file}: greedy ids"
        );
    }
}

#[test]
fn generate_without_json_writes_prompt_and_continuation_as_midi() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cont.mid");
    let status = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .current_dir(root())
        .args([
            "generate",
            "--device",
            "cpu",
            "--seed",
            "4",
            "--max-new-tokens",
            "60",
        ])
        .args(["--prompt-ms", "4000", "--prompt"])
        .arg(midi("pokey_jazz.mid"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    let ons = smf.tracks[0]
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                midly::TrackEventKind::Midi {
                    message: midly::MidiMessage::NoteOn { .. },
                    ..
                }
            )
        })
        .count();
    // The prompt alone has 20 notes (62 tokens); 60 masked tokens add 20 more.
    assert!(ons > 20, "only {ons} notes written");
}

#[test]
fn masked_continuation_is_well_formed_piano_triples() {
    let mut g = generator(ModelOptions::default());
    let tok = g.tokenizer().clone();
    let case = &reference()["cases"][0];
    let prompt: Vec<u32> = case["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let params = SamplingParams {
        temperature: 1.0,
        top_p: 1.0,
        min_p: None,
        seed: 8,
        max_new_tokens: 150,
    };
    let limits = Limits {
        masked: true,
        ..Limits::default()
    };
    let cont = g.continue_ids(&prompt, &params, &limits).unwrap();
    assert_eq!(cont.stop, StopReason::TokenCap);
    assert_eq!(cont.ids.len(), 150);
    let mut i = 0;
    while i < cont.ids.len() {
        let k = tok.kind(cont.ids[i]).unwrap();
        if k == TokenKind::Special(Special::T) {
            i += 1;
            continue;
        }
        assert_eq!(k, TokenKind::Note, "id {} at {i}", cont.ids[i]);
        if let Some(&o) = cont.ids.get(i + 1) {
            assert_eq!(tok.kind(o), Some(TokenKind::Onset), "after a note");
        }
        if let Some(&d) = cont.ids.get(i + 2) {
            assert_eq!(tok.kind(d), Some(TokenKind::Dur), "after an onset");
        }
        i += 3;
    }
}

fn prompt() -> Prompt {
    // Two bars of 2000 ms at 120 BPM (4/4), starting with 500 ms of silence.
    let notes = (0..16)
        .map(|i| MsNote {
            pitch: 60 + (i % 5) as u8 * 2,
            velocity: 70,
            start_ms: 500 + i * 220,
            end_ms: 500 + i * 220 + 200,
        })
        .collect();
    Prompt {
        notes,
        pedal: vec![],
        length_ms: 4000,
    }
}

fn request(p: &Prompt, seed: u64, deadline: Option<Instant>) -> GenerationRequest<'_> {
    GenerationRequest {
        prompt: p,
        window_start_ms: 4000,
        window_len_ms: 2000,
        params: SamplingParams {
            seed,
            max_new_tokens: 600,
            ..SamplingParams::default()
        },
        deadline,
    }
}

#[test]
fn generated_notes_lie_in_the_window_relative_to_its_start() {
    let mut g = generator(ModelOptions::default());
    let p = prompt();
    let out = g.generate(&request(&p, 1, None)).unwrap();
    assert_eq!(out.stats.provider, "cpu");
    assert_eq!(out.stats.prompt_tokens as usize, 2 + 3 * 16);
    assert!(out.stats.new_tokens > 0);
    assert!(matches!(
        out.stats.stop,
        Some(StopReason::WindowFilled) | Some(StopReason::TokenCap)
    ));
    for n in &out.notes {
        assert!(n.start_ms < 2000, "{n:?} starts after the window");
        assert!(n.end_ms >= n.start_ms);
    }
    assert!(g.describe().contains("cpu"));
}

#[test]
fn same_seed_gives_the_same_bar() {
    let mut g = generator(ModelOptions::default());
    let p = prompt();
    let a = g.generate(&request(&p, 42, None)).unwrap();
    let b = g.generate(&request(&p, 42, None)).unwrap();
    assert_eq!(a.notes, b.notes);
    assert_eq!(a.stats.new_tokens, b.stats.new_tokens);
}

#[test]
fn a_passed_deadline_stops_before_decoding() {
    let mut g = generator(ModelOptions::default());
    let p = prompt();
    let out = g.generate(&request(&p, 1, Some(Instant::now()))).unwrap();
    assert_eq!(out.stats.stop, Some(StopReason::Deadline));
    assert_eq!(out.stats.new_tokens, 0);
    assert!(out.notes.is_empty());
}

#[test]
fn a_model_failure_mid_bar_is_an_error_result_not_a_panic() {
    // A GQA export whose KV buffer holds 60 tokens: the 50-token prompt fits, decoding overflows.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-gqa.onnx");
    let status = Command::new("python3")
        .arg(root().join("models/export_onnx.py"))
        .arg("--checkpoint")
        .arg(fixtures().join("aria-tiny-dev.safetensors"))
        .arg("--config")
        .arg(fixtures().join("aria-tiny-dev.config.json"))
        .args(["--variant", "gqa", "--out"])
        .arg(&path)
        .status()
        .expect("python3 is needed (scripts/setup.sh installs numpy and onnx)");
    assert!(status.success());
    let rt = Runtime::get(None).unwrap();
    let opts = ModelOptions {
        max_context: 60,
        ..ModelOptions::default()
    };
    let model = AriaModel::load(rt, &path, &opts).unwrap();
    let mut g = AriaGenerator::new(model, Duration::ZERO).unwrap();
    let p = prompt();
    let err = g.generate(&request(&p, 1, None)).unwrap_err();
    assert!(matches!(err, GeneratorError::Inference(_)), "{err}");
    // The generator survives: a shorter request on the same instance still works.
    let mut short = request(&p, 1, None);
    short.params.max_new_tokens = 5;
    let r = g.generate(&short);
    assert!(r.is_ok(), "{:?}", r.err());
}

#[test]
fn leading_silence_is_removed_before_the_model_sees_the_prompt() {
    // First note at 7000 ms: encoded as is, the prompt would start with a `<T>`; re-based, the
    // first note sits at onset 0 and the prompt is prefix, `<S>` and 3 ids per note.
    let mut g = generator(ModelOptions::default());
    let notes: Vec<MsNote> = (0..4)
        .map(|i| MsNote {
            pitch: 60 + i as u8,
            velocity: 70,
            start_ms: 7000 + i * 300,
            end_ms: 7000 + i * 300 + 250,
        })
        .collect();
    let p = Prompt {
        notes,
        pedal: vec![],
        length_ms: 9000,
    };
    let mut req = request(&p, 3, None);
    req.window_start_ms = 9000;
    let out = g.generate(&req).unwrap();
    assert_eq!(out.stats.prompt_tokens, 2 + 3 * 4);
    for n in &out.notes {
        assert!(n.start_ms < 2000);
    }
}
