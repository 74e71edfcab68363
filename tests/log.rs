//! The session event log of the live engine (a realtime headless jam): every lifecycle step of
//! every bar is written, generation stats travel from the worker, and the `--log` file holds
//! exactly the records the run kept.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aria_bridge::config::Config;
use aria_bridge::engine::jam::{run_realtime_logged, JamOptions};
use aria_bridge::log::{parse_log, Event, LogFile, Record};
use aria_bridge::midi::smf::TimedMessage;
use support::{note, ScriptedGenerator, Step};

/// 4 bars of quarter notes at 400 BPM (600 ms bars).
fn short_part() -> Vec<TimedMessage> {
    (0..16)
        .flat_map(|i| {
            let t = i as f64 * 150.0;
            let p = 60 + (i % 5) as u8;
            [
                TimedMessage {
                    at_ms: t,
                    bytes: [0x90, p, 90],
                    len: 3,
                },
                TimedMessage {
                    at_ms: t + 100.0,
                    bytes: [0x80, p, 0],
                    len: 3,
                },
            ]
        })
        .collect()
}

fn window_bars(events: &[Record], pick: impl Fn(&Event) -> Option<u64>) -> BTreeSet<u64> {
    events.iter().filter_map(|r| pick(&r.event)).collect()
}

#[test]
fn a_live_jam_logs_each_bar_from_boundary_to_played_with_worker_stats() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.jsonl");
    let file = LogFile::create(&path).unwrap();
    let mut g = ScriptedGenerator::new().with_delay(Duration::from_millis(20));
    g.fallback = Step::Notes((0..4).map(|i| note(70, i * 150, i * 150 + 100)).collect());
    let opts = JamOptions {
        bpm: 400.0,
        tail_bars: 2,
        assume_latency: None,
    };
    let (o, _) = run_realtime_logged(
        &Config::default(),
        &short_part(),
        Box::new(g),
        &opts,
        &mut |_, _| {},
        Some(file.sink()),
    )
    .unwrap();
    drop(file);

    let ev = &o.events;
    match &ev[0].event {
        Event::Session { mode, .. } => assert_eq!(mode, "live"),
        e => panic!("first record is {e:?}"),
    }
    let enqueued = window_bars(ev, |e| match e {
        Event::Enqueued { window_bar, .. } => Some(*window_bar),
        _ => None,
    });
    assert_eq!(enqueued.len(), 5, "{enqueued:?}");
    let dropped = window_bars(ev, |e| match e {
        Event::Dropped { window_bar, .. } => Some(*window_bar),
        _ => None,
    });
    let started = window_bars(ev, |e| match e {
        Event::GenerationStarted { window_bar, .. } => Some(*window_bar),
        _ => None,
    });
    let ready = window_bars(ev, |e| match e {
        Event::ResultReady { window_bar, .. } => Some(*window_bar),
        _ => None,
    });
    // Every job was either generated (started, stats, ready) or dropped, never both.
    let generated: BTreeSet<u64> = enqueued.difference(&dropped).copied().collect();
    assert_eq!(started, generated);
    assert_eq!(ready, generated);
    for r in ev {
        if let Event::Generated {
            provider,
            bar,
            window_bar,
            gen_ms,
            ..
        } = &r.event
        {
            assert_eq!(provider, "scripted");
            assert_eq!(*window_bar, bar + 2);
            assert!(*gen_ms >= 20.0, "the double sleeps 20 ms: {gen_ms}");
        }
    }
    let boundaries = window_bars(ev, |e| match e {
        Event::Boundary { bar } => Some(*bar),
        _ => None,
    });
    assert_eq!(boundaries, (0..5).collect());
    assert!(ev.iter().any(|r| matches!(r.event, Event::Played { .. })));
    assert!(ev.iter().any(|r| matches!(r.event, Event::Tempo { .. })));
    // Records of a running transport carry their pulse position.
    assert!(ev
        .iter()
        .filter(|r| matches!(r.event, Event::Boundary { .. }))
        .all(|r| r.pulse.is_some()));

    let text = std::fs::read_to_string(&path).unwrap();
    let back = parse_log(&text);
    assert!(back.skipped.is_empty(), "{:?}", back.skipped);
    // JSON keeps every field; floats within their printed precision.
    assert_eq!(back.records.len(), ev.len());
    for (b, e) in back.records.iter().zip(ev) {
        assert_eq!(b.event.name(), e.event.name());
        assert!((b.t_ms - e.t_ms).abs() < 1e-9 && (b.wall_ms - e.wall_ms).abs() < 1e-9);
    }
    let bars = |v: &[Record]| {
        v.iter()
            .filter_map(|r| match r.event {
                Event::Enqueued { bar, .. } => Some(bar),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(bars(&back.records), bars(ev));
}

#[test]
fn a_virtual_jam_logs_the_same_steps_as_the_live_engine() {
    let opts = JamOptions {
        bpm: 400.0,
        tail_bars: 2,
        assume_latency: Some(Duration::from_millis(20)),
    };
    let mut g = ScriptedGenerator::new();
    let o = aria_bridge::engine::jam::run_virtual(
        &Config::default(),
        &short_part(),
        &mut g,
        &opts,
        &mut |_, _| {},
    );
    let names: BTreeSet<&str> = o.events.iter().map(|r| r.event.name()).collect();
    for step in [
        "session",
        "boundary",
        "enqueued",
        "generation_started",
        "generated",
        "result_ready",
        "scheduled",
        "played",
        "tempo",
        "transport",
    ] {
        assert!(names.contains(step), "no {step} in {names:?}");
    }
    // Session time never runs backwards in a virtual jam.
    assert!(o.events.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
}

#[test]
fn a_log_file_that_cannot_be_created_names_its_path() {
    let err =
        LogFile::create(std::path::Path::new("/nonexistent-dir/x/session.jsonl")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent-dir/x/session.jsonl") && msg.contains("writable"),
        "{msg}"
    );
}
