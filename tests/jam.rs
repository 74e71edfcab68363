//! The headless jam end to end in virtual time, with the scripted generator double: where the
//! answers land, what a slow or failing generator does to the session, and note hygiene.

mod support;

use std::path::Path;
use std::time::Duration;

use aria_bridge::config::Config;
use aria_bridge::engine::jam::{run_virtual, JamOptions, JamOutcome};
use aria_bridge::midi::smf::{self, BarMark, TimedMessage};
use aria_bridge::Nanos;
use support::{note, ScriptedGenerator, Step};

/// Virtual instant of pulse 0 in a jam (one second in).
const ORIGIN: Nanos = 1_000_000_000;

fn human() -> Vec<TimedMessage> {
    smf::read_human(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/human.mid"))
        .expect("example part reads")
}

fn opts(bpm: f64, latency_ms: Option<f64>) -> JamOptions {
    JamOptions {
        bpm,
        tail_bars: 2,
        assume_latency: latency_ms.map(|ms| Duration::from_secs_f64(ms / 1e3)),
    }
}

/// A double answering every window with four quarter notes at 120 BPM (500 ms apart).
fn four_quarters() -> ScriptedGenerator {
    let mut g = ScriptedGenerator::new();
    g.fallback = Step::Notes(
        (0..4)
            .map(|i| note(60 + i as u8, i * 500, i * 500 + 400))
            .collect(),
    );
    g
}

/// Bar index of an instant for a constant tempo and pulses-per-bar.
fn bar_of(t: Nanos, bpm: f64, ppb: u32) -> (u64, f64) {
    let pulse = (t as f64 - ORIGIN as f64) / (60e9 / (bpm * 24.0));
    ((pulse / ppb as f64).floor() as u64, pulse % ppb as f64)
}

fn note_ons(o: &JamOutcome) -> Vec<Nanos> {
    o.ai.iter()
        .filter(|(_, b, len)| *len == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
        .map(|e| e.0)
        .collect()
}

#[test]
fn answers_play_only_in_windows_of_bar_two_and_later() {
    let cfg = Config::default();
    let mut g = four_quarters();
    let o = run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(50.0)),
        &mut |_, _| {},
    );
    // 16 human bars answered in bars 2..=17, each with its 4 notes.
    assert_eq!(o.bars, 18);
    assert_eq!(o.played, 16, "marks: {:?}", o.marks);
    assert!(o.marks.is_empty(), "{:?}", o.marks);
    let ons = note_ons(&o);
    assert_eq!(ons.len(), 16 * 4);
    for t in &ons {
        let (bar, _) = bar_of(*t, 120.0, 96);
        assert!(
            (2..18).contains(&bar),
            "note-on at {t} ns lies in bar {bar}"
        );
    }
    // Each window's first note sits exactly on the window's first pulse.
    for bar in 2..18u64 {
        let start = ORIGIN + (bar as f64 * 96.0 * 60e9 / (120.0 * 24.0)).round() as Nanos;
        assert!(
            ons.iter().any(|&t| t.abs_diff(start) <= 1),
            "no note at the start of bar {bar}"
        );
    }
    assert_eq!(o.hanging_notes, 0);
}

#[test]
fn prompts_cover_the_two_bars_before_each_boundary() {
    let cfg = Config::default();
    let g = four_quarters();
    let seen = g.seen();
    let mut g = g;
    run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(10.0)),
        &mut |_, _| {},
    );
    let seen = seen.lock().unwrap();
    // Bars 0..=16 end while the clock runs (bar 16 is the silent tail); bar 17 ends with the Stop.
    assert_eq!(seen.len(), 17);
    // Bar 0 has no bar before it; from bar 1 on the prompt spans two 2000 ms bars.
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.prompt_len_ms == 4000 && s.window_start_ms == 4000),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|s| s.window_len_ms == 2000 && s.deadline.is_none()));
}

#[test]
fn a_generator_slower_than_a_bar_leaves_marked_silent_bars() {
    let cfg = Config::default();
    let mut g = four_quarters();
    // A job gets one bar (2000 ms at 120 BPM) from its boundary to its window; 2500 ms misses
    // every window, and the backlog makes the worker skip jobs whose window already began.
    let o = run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(2500.0)),
        &mut |_, _| {},
    );
    assert_eq!(o.played, 0);
    assert!(note_ons(&o).is_empty());
    let marked: Vec<u64> = o.marks.iter().map(|m| m.bar()).collect();
    assert_eq!(marked, (2..18).collect::<Vec<u64>>(), "{:?}", o.marks);
    assert!(
        o.marks.iter().any(|m| matches!(m, BarMark::Dropped { .. })),
        "{:?}",
        o.marks
    );
    assert!(
        o.marks
            .iter()
            .any(|m| matches!(m, BarMark::Missed { late_by_ms: Some(ms), .. } if *ms > 400.0)),
        "{:?}",
        o.marks
    );
    assert_eq!(o.hanging_notes, 0);
}

#[test]
fn late_join_plays_the_rest_of_a_window_once_its_result_arrives() {
    let mut cfg = Config::default();
    cfg.playback.fallback = aria_bridge::config::Fallback::LateJoin;
    cfg.generation.queue_capacity = 1;
    let mut g = four_quarters();
    // 2300 ms: each result comes 300 ms into its window; the notes at 500, 1000 and 1500 ms still play.
    let o = run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(2300.0)),
        &mut |_, _| {},
    );
    let ons = note_ons(&o);
    assert!(!ons.is_empty());
    for t in &ons {
        let (bar, pulse) = bar_of(*t, 120.0, 96);
        assert!(
            bar >= 2 && pulse >= 300.0 / (500.0 / 24.0) - 1e-6,
            "note-on at bar {bar} pulse {pulse:.2}"
        );
    }
    assert_eq!(o.hanging_notes, 0);
}

#[test]
fn a_really_slow_generator_misses_on_the_wall_clock_too() {
    // Measured latency (no assumption): a 400 ms generator against 1/4 bars of 150 ms at 400 BPM.
    let mut cfg = Config::default();
    cfg.clock.time_signature = "1/4".into();
    let human: Vec<TimedMessage> = (0..8)
        .flat_map(|i| {
            let t = i as f64 * 150.0;
            [
                TimedMessage {
                    at_ms: t,
                    bytes: [0x90, 60, 90],
                    len: 3,
                },
                TimedMessage {
                    at_ms: t + 100.0,
                    bytes: [0x80, 60, 0],
                    len: 3,
                },
            ]
        })
        .collect();
    let mut g = four_quarters().with_delay(Duration::from_millis(400));
    let o = run_virtual(&cfg, &human, &mut g, &opts(400.0, None), &mut |_, _| {});
    assert!(
        o.marks
            .iter()
            .any(|m| matches!(m, BarMark::Missed { .. } | BarMark::Dropped { .. })),
        "{:?}",
        o.marks
    );
    assert!(o.generations.iter().all(|g| g.latency_ms >= 400.0));
    assert_eq!(o.hanging_notes, 0);
}

#[test]
fn failures_and_panics_leave_single_bars_silent_and_the_jam_goes_on() {
    let cfg = Config::default();
    let mut g = four_quarters().with_script([Step::Fail, Step::Panic("model exploded")]);
    g.script.push_front(Step::Notes(vec![note(64, 0, 100)]));
    let o = run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(20.0)),
        &mut |_, _| {},
    );
    let failed: Vec<u64> = o
        .generations
        .iter()
        .filter(|g| g.error.is_some())
        .map(|g| g.window_bar)
        .collect();
    assert_eq!(failed, vec![3, 4]);
    assert!(o.generations[2]
        .error
        .as_deref()
        .unwrap()
        .contains("model exploded"));
    assert_eq!(o.played, 14);
    let missed: Vec<u64> = o.marks.iter().map(|m| m.bar()).collect();
    assert_eq!(missed, vec![3, 4]);
    assert_eq!(o.hanging_notes, 0);
}

#[test]
fn the_session_file_holds_both_parts_and_the_markers() {
    let cfg = Config::default();
    let mut g = four_quarters().with_script([Step::Fail]);
    let o = run_virtual(
        &cfg,
        &human(),
        &mut g,
        &opts(120.0, Some(20.0)),
        &mut |_, _| {},
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.mid");
    let meter = [(0u64, aria_bridge::clock::meter::TimeSignature::COMMON)];
    let s = smf::Session {
        bpm: 120.0,
        meter: &meter,
        origin: o.origin,
        human: &o.human,
        ai: &o.ai,
        marks: &o.marks,
    };
    smf::write_session(&path, &s).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let smf = midly::Smf::parse(&bytes).unwrap();
    assert_eq!(smf.tracks.len(), 3);
    let text: Vec<String> = smf.tracks[0]
        .iter()
        .filter_map(|e| match e.kind {
            midly::TrackEventKind::Meta(midly::MetaMessage::Marker(m)) => {
                Some(String::from_utf8_lossy(m).into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(text, vec!["missed bar 2 (no result)".to_string()]);
    let ons = |t: &midly::Track| {
        t.iter().filter(|e| matches!(e.kind, midly::TrackEventKind::Midi { message: midly::MidiMessage::NoteOn { vel, .. }, .. } if vel > 0)).count()
    };
    assert_eq!(ons(&smf.tracks[2]), 15 * 4);
    assert!(ons(&smf.tracks[1]) > 50);
}

#[test]
fn a_realtime_jam_runs_the_live_threads_and_closes_every_note() {
    let cfg = Config::default();
    // 4 bars of human part at 400 BPM (600 ms bars) + 2 tail bars: about 3.6 s on the wall clock.
    let human: Vec<TimedMessage> = (0..16)
        .flat_map(|i| {
            let t = i as f64 * 150.0;
            [
                TimedMessage {
                    at_ms: t,
                    bytes: [0x90, 60 + (i % 5) as u8, 90],
                    len: 3,
                },
                TimedMessage {
                    at_ms: t + 100.0,
                    bytes: [0x80, 60 + (i % 5) as u8, 0],
                    len: 3,
                },
            ]
        })
        .collect();
    let mut g = ScriptedGenerator::new();
    g.fallback = Step::Notes((0..4).map(|i| note(70, i * 150, i * 150 + 100)).collect());
    let (o, summary) = aria_bridge::engine::jam::run_realtime(
        &cfg,
        &human,
        Box::new(g),
        &opts(400.0, None),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(o.bars, 6);
    assert_eq!(summary.jobs, 5, "{summary:?}");
    assert_eq!(o.human.len(), 32);
    // Windows 2..=5 play; each note-on lies inside its window (ideal instants, relative to pulse 0).
    let ns_per_bar = 96.0 * 60e9 / (400.0 * 24.0);
    let ons: Vec<f64> =
        o.ai.iter()
            .filter(|(_, b, len)| *len == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
            .map(|e| (e.0 as f64 - o.origin as f64) / ns_per_bar)
            .collect();
    assert!(
        ons.len() >= 12,
        "{} note-ons: {ons:?} {summary:?}",
        ons.len()
    );
    for b in &ons {
        assert!(*b >= 2.0 - 1e-3 && *b < 6.0, "note-on at bar position {b}");
    }
    assert_eq!(o.hanging_notes, 0);
}
