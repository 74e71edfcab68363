//! The live engine's threads wired the way a DAW's patch bay can wire them: output patched back
//! into the input (with thru on, with our own clock running), a player holding notes when the
//! daemon stops, the output of a crashed predecessor, and settings reloaded while running.
//!
//! The loop here is a [`Loopback`] output that hands every message straight back to the
//! engine's input, as a virtual cable would; the JACK end-to-end versions are in
//! `tests/jack_routing.rs`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aria_bridge::clock::internal;
use aria_bridge::clock::timeline::Timeline;
use aria_bridge::config::{ClockSource, Config};
use aria_bridge::engine::generator::{Generated, GenerationStats};
use aria_bridge::engine::job::{GenerationResult, Window};
use aria_bridge::engine::live::{Live, LiveHooks};
use aria_bridge::engine::scheduler::{PlaybackSettings, Scheduler};
use aria_bridge::log::{Event, Record, RecordSink};
use aria_bridge::midi::sink::{MidiOut, Recorder};
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::music::note::MsNote;
use aria_bridge::{clock, Nanos};
use crossbeam_channel::Sender;
use support::ScriptedGenerator;

/// Records what it is given (shared with the test).
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Recorder>>);

impl MidiOut for Shared {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        self.0.lock().unwrap().send(at, bytes);
    }
}

impl Shared {
    fn events(&self) -> Vec<[u8; 3]> {
        self.0.lock().unwrap().events.iter().map(|e| e.1).collect()
    }
}

/// An output patched back into the engine's input: every message is recorded and arrives again
/// on the note port at once, stamped `delay_ns` after it was sent (a JACK period: the stamp of
/// the period it arrives in).
#[derive(Clone, Default)]
struct Loopback {
    input: Arc<OnceLock<Sender<RawMidi>>>,
    sent: Shared,
    delay_ns: u64,
}

impl MidiOut for Loopback {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        self.sent.send(at, bytes);
        if let Some(tx) = self.input.get() {
            let stamp = clock::timebase::now() + self.delay_ns;
            let _ = tx.try_send(RawMidi::new(stamp, PortRole::Notes, bytes));
        }
    }
}

/// A log sink that keeps every record.
fn records() -> (RecordSink, Arc<Mutex<Vec<Record>>>) {
    let keep: Arc<Mutex<Vec<Record>>> = Arc::default();
    let k = keep.clone();
    (
        Box::new(move |r: &Record| k.lock().unwrap().push(r.clone())),
        keep,
    )
}

fn note_on(bytes: &[u8]) -> RawMidi {
    RawMidi::new(clock::timebase::now(), PortRole::Notes, bytes)
}

#[test]
fn thru_into_a_routing_loop_is_stopped_not_amplified() {
    let mut cfg = Config::default();
    cfg.midi.thru = true;
    let lb = Loopback::default();
    let (sink, recs) = records();
    let live = Live::start(
        &cfg,
        Box::new(ScriptedGenerator::new()),
        Box::new(lb.clone()),
        LiveHooks {
            thru: Some(Box::new(lb.clone())),
            log: Some(sink),
            ..LiveHooks::default()
        },
    )
    .unwrap();
    lb.input.set(live.input()).unwrap();
    live.input().try_send(note_on(&[0x91, 62, 90])).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let went_round = lb.sent.events().len();
    // The player goes on after the loop was found: not forwarded any more.
    live.input().try_send(note_on(&[0x92, 64, 90])).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let sent = lb.sent.events();
    let _ = live.shutdown();
    assert!(
        went_round <= 16,
        "{went_round} messages went round the loop in 500 ms"
    );
    assert_eq!(
        sent.len(),
        went_round,
        "thru forwarded after the loop was found"
    );
    let loops: Vec<Record> = recs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.event.name() == "routing_loop")
        .cloned()
        .collect();
    assert_eq!(loops.len(), 1, "{loops:?}");
    assert_eq!(
        lb.sent.0.lock().unwrap().hanging_notes(),
        0,
        "the note thru held is closed when thru stops"
    );
    println!("thru loop: {went_round} messages went round, then thru stopped");
}

#[test]
fn our_own_clock_echoed_back_does_not_double_the_tempo() {
    let mut cfg = Config::default();
    cfg.clock.source = ClockSource::Internal;
    cfg.clock.bpm = 100.0;
    let lb = Loopback {
        delay_ns: 1_333_333,
        ..Loopback::default()
    };
    let (sink, recs) = records();
    let live = Live::start(
        &cfg,
        Box::new(ScriptedGenerator::new()),
        Box::new(lb.clone()),
        LiveHooks {
            log: Some(sink),
            ..LiveHooks::default()
        },
    )
    .unwrap();
    lb.input.set(live.input()).unwrap();
    // The daemon's clock thread: every message to the engine and to the (looped) output.
    let stop = Arc::new(AtomicBool::new(false));
    let clock = {
        let (input, mut out, stop) = (live.input(), lb.clone(), stop.clone());
        std::thread::spawn(move || internal::run_live(100.0, &input, &mut out, &stop))
    };
    // 5 beats at 100 BPM: the tempo filter has settled.
    std::thread::sleep(Duration::from_millis(3_000));
    stop.store(true, Ordering::Relaxed);
    clock.join().unwrap();
    let _ = live.shutdown();
    let recs = recs.lock().unwrap();
    let bpm: Vec<f64> = recs
        .iter()
        .filter_map(|r| match r.event {
            Event::Tempo { bpm, .. } => Some(bpm),
            _ => None,
        })
        .collect();
    assert!(bpm.len() >= 3, "tempo records: {bpm:?}");
    for b in &bpm[bpm.len() - 3..] {
        assert!((b - 100.0).abs() < 5.0, "tempo read {b:.1} BPM: {bpm:?}");
    }
    let said = recs
        .iter()
        .filter(|r| matches!(&r.event, Event::Transport { what } if what.contains("own clock")))
        .count();
    assert_eq!(said, 1, "the ignored clock is reported once");
}

#[test]
fn thru_notes_the_player_holds_are_closed_at_shutdown_on_their_channels() {
    let mut cfg = Config::default();
    cfg.midi.thru = true;
    let thru = Shared::default();
    let live = Live::start(
        &cfg,
        Box::new(ScriptedGenerator::new()),
        Box::new(Shared::default()),
        LiveHooks {
            thru: Some(Box::new(thru.clone())),
            ..LiveHooks::default()
        },
    )
    .unwrap();
    for ch in 0..16u8 {
        live.input()
            .try_send(note_on(&[0x90 | ch, 60 + ch, 90]))
            .unwrap();
    }
    live.input().try_send(note_on(&[0xB8, 64, 127])).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _ = live.shutdown();
    let rec = thru.0.lock().unwrap().clone();
    assert_eq!(rec.hanging_notes(), 0, "{:?}", rec.events);
    assert!(
        rec.events.iter().any(|e| e.1 == [0xB8, 64, 0]),
        "the pedal thru held on channel 9 is released"
    );
}

#[test]
fn the_output_is_swept_when_the_engine_starts_and_at_every_start() {
    let mut cfg = Config::default();
    cfg.playback.output_channel = 3;
    let out = Shared::default();
    let live = Live::start(
        &cfg,
        Box::new(ScriptedGenerator::new()),
        Box::new(out.clone()),
        LiveHooks {
            sweep: true,
            ..LiveHooks::default()
        },
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut sweep: Vec<[u8; 3]> = (0..128u8).map(|k| [0x82, k, 0]).collect();
    sweep.push([0xB2, 64, 0]);
    sweep.push([0xB2, 123, 0]);
    assert_eq!(out.events(), sweep, "before any Start");
    live.input().try_send(note_on(&[0xFA])).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _ = live.shutdown();
    let ev = out.events();
    assert_eq!(&ev[130..260], &sweep[..], "at Start");
}

#[test]
fn a_reload_takes_effect_in_the_running_engine() {
    let cfg = Config::default();
    let thru = Shared::default();
    let live = Live::start(
        &cfg,
        Box::new(ScriptedGenerator::new()),
        Box::new(Shared::default()),
        LiveHooks {
            thru: Some(Box::new(thru.clone())),
            ..LiveHooks::default()
        },
    )
    .unwrap();
    let wait = || std::thread::sleep(Duration::from_millis(50));
    live.input().try_send(note_on(&[0x90, 60, 90])).unwrap();
    wait();
    assert!(thru.events().is_empty(), "thru is off");
    let mut on = cfg.clone();
    on.midi.thru = true;
    assert!(live.reconfigure(&on));
    wait();
    live.input().try_send(note_on(&[0x90, 62, 90])).unwrap();
    wait();
    assert_eq!(thru.events(), vec![[0x90, 62, 90]]);
    assert!(live.reconfigure(&cfg));
    wait();
    live.input().try_send(note_on(&[0x90, 64, 90])).unwrap();
    wait();
    let _ = live.shutdown();
    assert_eq!(
        thru.events(),
        vec![[0x90, 62, 90], [0x80, 62, 0]],
        "thru turned off closes its held note and forwards no more"
    );
}

#[test]
fn a_new_output_channel_closes_the_notes_sounding_on_the_old_one() {
    let cfg = Config::default();
    let mut s = Scheduler::new(&cfg);
    let mut rec = Recorder::default();
    let t0: Nanos = 1_000_000_000;
    let nspp = 20_000_000.0;
    let tl = Timeline {
        epoch: 1,
        running: true,
        anchor_pulse: 0.0,
        anchor_ns: t0,
        ns_per_pulse: nspp,
        carry: None,
    };
    s.on_timeline(tl, t0, &mut rec);
    let window = Window {
        bar: 2,
        start_pulse: 192,
        len_pulses: 96,
    };
    s.expect(window, 1);
    let n = |pitch, start_ms, end_ms| MsNote {
        pitch,
        velocity: 80,
        start_ms,
        end_ms,
    };
    s.on_result(
        GenerationResult {
            bar: 0,
            epoch: 1,
            window,
            ms_per_pulse: 20.0,
            outcome: Ok(Generated {
                notes: vec![n(60, 0, 1000), n(62, 500, 900)],
                stats: GenerationStats::default(),
            }),
            started_ns: t0,
            finished_ns: t0,
        },
        t0,
    );
    let at = |p: f64| t0 + (p * nspp) as Nanos;
    s.poll(at(192.0), &mut rec);
    let mut p = PlaybackSettings::from_config(&cfg);
    p.output_channel = 2;
    s.reconfigure(&p, at(200.0), &mut rec);
    s.poll(at(288.0), &mut rec);
    let bytes: Vec<[u8; 3]> = rec.events.iter().map(|e| e.1).collect();
    assert_eq!(
        bytes[..3],
        [[0x90, 60, 80], [0x80, 60, 0], [0x91, 62, 80]],
        "{bytes:?}"
    );
    assert_eq!(s.sounding_notes(), 0);
    assert_eq!(rec.hanging_notes(), 0);
}
