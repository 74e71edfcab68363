//! `aria-bridge report` against headless jams: its figures equal figures computed here, straight
//! from the JSON lines; damaged lines are named and skipped; plots and the piano roll render.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aria_bridge::config::Config;
use aria_bridge::engine::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError,
};
use aria_bridge::engine::jam::{run_virtual, JamOptions, JamOutcome};
use aria_bridge::log::{Event, LogFile, Record};
use aria_bridge::midi::smf::{self, BarMark, TimedMessage};
use aria_bridge::report::{self, piano_roll, plot, Quantiles, Report};
use serde_json::Value;
use support::note;

fn human() -> Vec<TimedMessage> {
    smf::read_human(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/human.mid"))
        .expect("example part reads")
}

/// Answers with two notes and stage times that change with every call; fails every `fail_every`th.
struct Staged {
    calls: u32,
    fail_every: u32,
}

impl Generator for Staged {
    fn generate(&mut self, _: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        self.calls += 1;
        let i = self.calls;
        if self.fail_every > 0 && i.is_multiple_of(self.fail_every) {
            return Err(GeneratorError::Inference("scripted failure".into()));
        }
        Ok(Generated {
            notes: vec![note(60, 0, 200), note(64, 250, 400)],
            stats: GenerationStats {
                prompt_tokens: 40 + (i * 7) % 23,
                new_tokens: 6 + i % 5,
                tokenize_ms: 0.1 * i as f64,
                prefill_ms: 10.0 + (i * 13 % 17) as f64,
                decode_ms: 30.0 + (i * 29 % 41) as f64,
                detokenize_ms: 0.05 * i as f64,
                provider: "staged".into(),
                stop: None,
            },
        })
    }

    fn describe(&self) -> String {
        "staged test generator".into()
    }
}

fn jam(bpm: f64, latency_ms: f64, fail_every: u32) -> JamOutcome {
    let mut g = Staged {
        calls: 0,
        fail_every,
    };
    let opts = JamOptions {
        bpm,
        tail_bars: 2,
        assume_latency: Some(Duration::from_secs_f64(latency_ms / 1e3)),
    };
    run_virtual(&Config::default(), &human(), &mut g, &opts, &mut |_, _| {})
}

/// Writes the jam's events through the `--log` writer and returns the file.
fn write_log(o: &JamOutcome, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let file = LogFile::create(&path).expect("log file opens");
    let mut sink = file.sink();
    o.events.iter().for_each(&mut sink);
    drop(sink);
    drop(file);
    path
}

/// Every line of a log as JSON, read without the crate's types.
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every written line is JSON"))
        .collect()
}

fn of<'a>(lines: &'a [Value], event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |l| l["event"] == event)
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// Nearest rank: the value at 1-based rank ceil(p * n) of the sorted samples.
fn nearest_rank(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).max(1);
    v[rank - 1]
}

fn assert_quantiles(name: &str, got: &Option<Quantiles>, samples: Vec<f64>) {
    if samples.is_empty() {
        assert_eq!(got, &None, "{name}: figures without samples");
        return;
    }
    let q = got
        .as_ref()
        .unwrap_or_else(|| panic!("{name}: no figures for {} samples", samples.len()));
    assert_eq!(q.n, samples.len(), "{name} n");
    for (p, v) in [(0.5, q.p50), (0.95, q.p95), (0.99, q.p99), (1.0, q.max)] {
        let want = nearest_rank(samples.clone(), p);
        assert!((v - want).abs() < 1e-9, "{name} p{p}: {v} != {want}");
    }
}

/// Checks every figure of `r` against the same figure computed from `lines`.
fn check_against_lines(r: &Report, lines: &[Value]) {
    let count = |e| of(lines, e).count() as u64;
    assert_eq!(r.records, lines.len());
    assert_eq!(r.boundaries, count("boundary"));
    assert_eq!(r.jobs, count("enqueued"));
    assert_eq!(r.generations, count("generated"));
    let failures = of(lines, "generated")
        .filter(|g| g.get("error").is_some())
        .count() as u64;
    assert_eq!(r.failures, failures);
    let on_time = of(lines, "played")
        .filter(|p| p["source"] == "result")
        .count() as u64;
    assert_eq!(
        (r.on_time, r.missed, r.dropped, r.late),
        (on_time, count("missed"), count("dropped"), count("late"))
    );
    assert_eq!(r.carried, count("carried"));
    let windows = on_time + count("missed") + count("dropped");
    assert_eq!(r.windows, windows);
    if windows > 0 {
        assert!((r.miss_rate - count("missed") as f64 / windows as f64).abs() < 1e-12);
        assert!((r.drop_rate - count("dropped") as f64 / windows as f64).abs() < 1e-12);
    }

    let ok: Vec<&Value> = of(lines, "generated")
        .filter(|g| g.get("error").is_none())
        .collect();
    let stage = |key: &str| ok.iter().map(|g| f(g, key)).collect::<Vec<_>>();
    assert_quantiles(
        "queue wait",
        &r.stages.queue_wait,
        of(lines, "generation_started")
            .map(|g| f(g, "queue_wait_ms"))
            .collect(),
    );
    assert_quantiles("tokenize", &r.stages.tokenize, stage("tokenize_ms"));
    assert_quantiles("prefill", &r.stages.prefill, stage("prefill_ms"));
    assert_quantiles("decode", &r.stages.decode, stage("decode_ms"));
    assert_quantiles("detokenize", &r.stages.detokenize, stage("detokenize_ms"));
    assert_quantiles(
        "generation",
        &r.stages.generation,
        of(lines, "generated").map(|g| f(g, "gen_ms")).collect(),
    );
    assert_quantiles(
        "slack",
        &r.slack_ms,
        of(lines, "result_ready")
            .map(|g| f(g, "slack_ms"))
            .collect(),
    );
    assert_quantiles(
        "new tokens",
        &r.new_tokens,
        ok.iter().map(|g| f(g, "new_tokens")).collect(),
    );
    // Total per window: its queue wait plus its generation.
    let total: Vec<f64> = of(lines, "generated")
        .map(|g| {
            let wait = of(lines, "generation_started")
                .find(|s| s["window_bar"] == g["window_bar"])
                .map_or(0.0, |s| f(s, "queue_wait_ms"));
            wait + f(g, "gen_ms")
        })
        .collect();
    assert_quantiles("total", &r.stages.total, total);
    // Scheduling: the ready slack minus the slack when the scheduler accepted the result.
    let sched: Vec<f64> = of(lines, "scheduled")
        .filter_map(|s| {
            of(lines, "result_ready")
                .find(|r| r["window_bar"] == s["window_bar"])
                .map(|r| (f(r, "slack_ms") - f(s, "slack_ms")).max(0.0))
        })
        .collect();
    assert_quantiles("scheduling", &r.stages.scheduling, sched);
    assert_quantiles(
        "tempo",
        &r.clock.bpm,
        of(lines, "tempo").map(|t| f(t, "bpm")).collect(),
    );
    assert_quantiles(
        "jitter",
        &r.clock.jitter_ms,
        of(lines, "tempo").map(|t| f(t, "jitter_ms")).collect(),
    );
}

#[test]
fn report_of_a_jam_with_failures_matches_figures_computed_from_its_lines() {
    let dir = tempfile::tempdir().unwrap();
    let o = jam(120.0, 50.0, 5);
    let path = write_log(&o, dir.path(), "failures.jsonl");
    let lines = lines(&path);
    assert_eq!(lines.len(), o.events.len());
    let r = report::read_report(&path).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    // 16 human bars and the first tail bar end with a boundary; every 5th generation fails and
    // its window misses.
    assert_eq!(r.jobs, 17);
    assert_eq!(r.failures, 3);
    assert_eq!(r.missed, 3);
    check_against_lines(&r, &lines);
    assert_eq!(r.providers, vec!["staged".to_string()]);
    let s = r.settings.as_ref().expect("session header");
    assert_eq!(
        (s.bpm, s.pulses_per_bar, s.mode.as_str()),
        (120.0, 96, "virtual")
    );
}

#[test]
fn report_of_a_jam_too_slow_for_its_tempo_matches_its_lines_and_advises_a_slower_tempo() {
    let dir = tempfile::tempdir().unwrap();
    // 400 BPM: a 600 ms bar; each generation takes 1000 ms, so the queue backs up and drops.
    let o = jam(400.0, 1000.0, 0);
    let path = write_log(&o, dir.path(), "slow.jsonl");
    let lines = lines(&path);
    let r = report::read_report(&path).unwrap();
    check_against_lines(&r, &lines);
    assert!(r.missed + r.dropped > 0, "{r:?}");
    let marks_missed = o
        .marks
        .iter()
        .filter(|m| matches!(m, BarMark::Missed { .. }))
        .count() as u64;
    assert_eq!(r.missed, marks_missed);
    assert_eq!(r.dropped, o.marks.len() as u64 - marks_missed);
    // p99 total >= 1000 ms + 15 ms margin: 4 quarters sustain at most 60000 * 4 / 1015 = 236 BPM.
    let total_p99 = r.stages.total.as_ref().unwrap().p99;
    let bpm = (4.0 * 60_000.0 / (total_p99 + 15.0)).floor();
    assert!(bpm <= 236.0);
    let advice = r.advice.join("\n");
    assert!(
        advice.contains(&format!("up to {bpm:.0} BPM"))
            && advice.contains(&format!("play at {bpm:.0} BPM or slower")),
        "{advice}"
    );
    assert!(advice.contains("max_new_tokens"), "{advice}");
}

#[test]
fn damaged_lines_are_named_and_the_rest_still_reports() {
    let dir = tempfile::tempdir().unwrap();
    let o = jam(120.0, 50.0, 5);
    let clean = write_log(&o, dir.path(), "clean.jsonl");
    let text = std::fs::read_to_string(&clean).unwrap();
    let mut kept: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 3: a foreign JSON log line; line 10: a future version; the last: cut in half.
    let mut damaged = kept.clone();
    damaged.insert(
        2,
        r#"{"timestamp":"x","level":"INFO","fields":{"message":"hi"}}"#.into(),
    );
    damaged[9] = damaged[9].replacen("\"v\":1", "\"v\":2", 1);
    let last = damaged.len() - 1;
    damaged[last] = damaged[last][..damaged[last].len() / 2].to_string();
    let path = dir.path().join("damaged.jsonl");
    std::fs::write(&path, damaged.join("\n")).unwrap();

    let r = report::read_report(&path).unwrap();
    let skipped: Vec<usize> = r.skipped.iter().map(|s| s.line).collect();
    assert_eq!(skipped, vec![3, 10, damaged.len()], "{:?}", r.skipped);
    assert!(r.skipped[1].reason.contains("version 2"), "{:?}", r.skipped);
    // The report covers exactly the undamaged lines.
    kept.remove(kept.len() - 1);
    kept.remove(8);
    let kept: Vec<Value> = kept
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_against_lines(&r, &kept);
    assert!(report::render_text(&r).contains("skipped line 10: event version 2"));
}

#[test]
fn windows_carried_over_loop_wraps_are_counted_and_shown() {
    let dir = tempfile::tempdir().unwrap();
    let o = jam(120.0, 50.0, 0);
    let clean = write_log(&o, dir.path(), "clean.jsonl");
    let mut text = std::fs::read_to_string(&clean).unwrap();
    for (t, wall) in [(8000.0, 8001.0), (16000.0, 16002.0)] {
        text.push_str(&format!(
            "{{\"v\":1,\"event\":\"carried\",\"t_ms\":{t},\"wall_ms\":{wall},\"from_window_bar\":4,\"window_bar\":0}}\n"
        ));
    }
    let path = dir.path().join("looped.jsonl");
    std::fs::write(&path, &text).unwrap();
    let r = report::read_report(&path).unwrap();
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.carried, 2);
    assert!(report::render_text(&r).contains("carried over a loop wrap 2"));
}

#[test]
fn a_file_that_is_not_a_log_reports_every_line_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.jsonl");
    std::fs::write(&path, "MThd\u{0}\u{0}\nnot json\n[1,2]\n").unwrap();
    let r = report::read_report(&path).unwrap();
    assert_eq!(r.records, 0);
    assert_eq!(r.skipped.len(), 3);
    assert!(r.advice.iter().any(|a| a.contains("no session header")));
    let missing = report::read_report(&dir.path().join("absent.jsonl")).unwrap_err();
    assert!(missing.to_string().contains("absent.jsonl"), "{missing}");
}

#[test]
fn the_jam_summary_figures_come_from_the_same_events_as_the_outcome() {
    let o = jam(120.0, 50.0, 5);
    let r = report::compute(&o.events, Vec::new());
    assert_eq!(r.on_time, o.played);
    assert_eq!(r.generations as usize, o.generations.len());
    let from_outcome: Vec<f64> = o.generations.iter().map(|g| g.slack_ms).collect();
    assert_eq!(
        r.slack_ms.as_ref().unwrap().min,
        nearest_rank(from_outcome, 0.0)
    );
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(
        &b[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

#[test]
fn latency_plot_and_piano_roll_are_written_as_png() {
    let dir = tempfile::tempdir().unwrap();
    let o = jam(400.0, 1000.0, 0);
    let r = report::compute(&o.events, Vec::new());
    let png = dir.path().join("latency.png");
    plot::latency_png(&r, &png).unwrap();
    assert_eq!(png_size(&png), (1200, 600));

    let mid = dir.path().join("session.mid");
    let meter = [(0u64, aria_bridge::clock::meter::TimeSignature::COMMON)];
    smf::write_session(
        &mid,
        &smf::Session {
            bpm: 400.0,
            meter: &meter,
            origin: o.origin,
            human: &o.human,
            ai: &o.ai,
            marks: &o.marks,
        },
    )
    .unwrap();
    let roll_png = dir.path().join("roll.png");
    let roll = piano_roll::piano_roll_png(&mid, &roll_png).unwrap();
    assert_eq!(png_size(&roll_png), (1400, 600));
    let ons = |v: &[(u64, [u8; 3], u8)]| {
        v.iter()
            .filter(|(_, b, _)| b[0] & 0xF0 == 0x90 && b[2] > 0)
            .count()
    };
    assert_eq!(roll.human.len(), ons(&o.human));
    assert_eq!(roll.ai.len(), ons(&o.ai));
    // 4/4: a line every 4 quarters, from 0 through the last note's end.
    let end = roll
        .human
        .iter()
        .chain(&roll.ai)
        .map(|n| n.end)
        .fold(0.0, f64::max);
    let want: Vec<f64> = (0..=(end / 4.0).floor() as u32)
        .map(|b| b as f64 * 4.0)
        .collect();
    assert_eq!(roll.bar_lines, want);

    let empty = report::compute(&[], Vec::new());
    assert!(plot::latency_png(&empty, &dir.path().join("e.png")).is_err());
    let bad = dir.path().join("bad.mid");
    std::fs::write(&bad, b"MThd\x00\x00\x00\x06\x00").unwrap();
    let err = piano_roll::piano_roll_png(&bad, &roll_png).unwrap_err();
    assert!(err.to_string().contains("bad.mid"), "{err}");
}

/// A hand-written log at `bpm` whose every generation takes `prefill` + `decode` ms on `provider`.
fn synthetic_log(bpm: f64, prefill: f64, decode: f64, provider: &str) -> Vec<Record> {
    let session = Event::Session {
        mode: "live".into(),
        bpm,
        time_signature: "4/4".into(),
        pulses_per_bar: 96,
        prompt_bars: 2,
        max_new_tokens: 256,
        queue_capacity: 4,
        deadline_margin_ms: 15.0,
        fallback: "silence".into(),
    };
    let bar_ms = 4.0 * 60_000.0 / bpm;
    let mut v = vec![Record::new(0.0, 0.0, None, session)];
    for bar in 0..10u64 {
        let t = bar as f64 * bar_ms;
        let (wb, gen) = (bar + 2, prefill + decode);
        let ev = [
            Event::Boundary { bar },
            Event::Enqueued {
                bar,
                window_bar: wb,
                queue_depth: 1,
            },
            Event::GenerationStarted {
                bar,
                window_bar: wb,
                queue_wait_ms: 0.0,
            },
            Event::Generated {
                bar,
                window_bar: wb,
                gen_ms: gen,
                prompt_tokens: 300,
                new_tokens: 100,
                tokenize_ms: 0.0,
                prefill_ms: prefill,
                decode_ms: decode,
                detokenize_ms: 0.0,
                tokens_per_s: 100.0 / (decode / 1e3),
                provider: provider.into(),
                stop: None,
                error: None,
            },
            Event::ResultReady {
                bar,
                window_bar: wb,
                slack_ms: bar_ms - gen,
            },
            if gen < bar_ms {
                Event::Played {
                    window_bar: wb,
                    source: "result".into(),
                    notes_on: 4,
                    notes_cut: 0,
                }
            } else {
                Event::Missed {
                    window_bar: wb,
                    fallback: "silence".into(),
                }
            },
        ];
        v.extend(ev.into_iter().map(|e| Record::new(t, t, None, e)));
    }
    v
}

#[test]
fn advice_names_prompt_bars_when_prefill_dominates_and_cuda_on_cpu() {
    // 200 BPM: a 1200 ms bar; 1000 ms prefill + 400 ms decode miss every window.
    let r = report::compute(&synthetic_log(200.0, 1000.0, 400.0, "cpu"), Vec::new());
    assert_eq!((r.missed, r.windows), (10, 10));
    let advice = r.advice.join("\n");
    // 4 x 60000 / (1400 + 15) = 169.6 -> 169 BPM.
    assert!(advice.contains("sustains up to 169 BPM"), "{advice}");
    assert!(advice.contains("play at 169 BPM or slower"), "{advice}");
    assert!(advice.contains("prompt_bars from 2 to 1"), "{advice}");
    assert!(advice.contains("model.device = \"cuda\""), "{advice}");
}

#[test]
fn advice_sizes_max_new_tokens_to_the_decode_budget() {
    // 200 BPM: budget 1200 - 15 = 1185 ms; prefill 100 ms leaves 1085 ms at 100 tokens / 1.5 s
    // = 66.7 tokens/s -> 72 tokens.
    let r = report::compute(&synthetic_log(200.0, 100.0, 1500.0, "cuda"), Vec::new());
    let advice = r.advice.join("\n");
    assert!(
        advice.contains("set generation.max_new_tokens to 72 (now 256)"),
        "{advice}"
    );
    assert!(!advice.contains("model.device"), "{advice}");
}

#[test]
fn advice_reports_headroom_when_nothing_missed() {
    let r = report::compute(&synthetic_log(120.0, 100.0, 300.0, "cuda"), Vec::new());
    assert_eq!(r.missed, 0);
    let advice = r.advice.join("\n");
    // 400 ms of a 2000 - 15 ms budget = 20%; 4 x 60000 / 415 = 578 BPM, above the clock's
    // 400 BPM limit, so the advice names the limit instead.
    assert!(
        advice.contains("uses 20% of the 1985 ms budget"),
        "{advice}"
    );
    assert!(
        advice.contains("sustains any tempo up to the 400 BPM limit"),
        "{advice}"
    );
}
