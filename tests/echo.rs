//! The echo filter in the engine: a player doubling our answers (a unison line) is never taken
//! for an echo, whatever the output offset; a real routing loop is found from what we sent and
//! its echoes kept out; thru's own output coming back stops thru instead of feeding back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aria_bridge::config::{ClockSource, Config};
use aria_bridge::engine::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError,
};
use aria_bridge::engine::input::{InputAction, InputEvent, InputProcessor};
use aria_bridge::engine::jam::{run_virtual, JamOptions};
use aria_bridge::midi::smf::TimedMessage;
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::music::note::MsNote;
use aria_bridge::Nanos;

const T0: u64 = 5_000_000_000;
/// One pulse at 120 BPM.
const P: f64 = 20_833_333.333_333;
const MS: u64 = 1_000_000;

/// What happens at an instant of a scripted input session.
#[derive(Clone, Copy, Debug)]
enum Step {
    /// A message arrives on the note port.
    In(PortRole, [u8; 3], u8),
    /// The engine sends this (the echo filter learns it).
    Sent([u8; 3]),
}

/// An input session: steps at instants, run through one processor in time order.
struct Session {
    steps: Vec<(Nanos, usize, Step)>,
}

impl Session {
    fn new() -> Self {
        Self { steps: Vec::new() }
    }

    fn add(&mut self, at: Nanos, step: Step) {
        let n = self.steps.len();
        self.steps.push((at, n, step));
    }

    fn msg(&mut self, at: Nanos, bytes: &[u8]) {
        let mut b = [0u8; 3];
        b[..bytes.len()].copy_from_slice(bytes);
        self.add(at, Step::In(PortRole::Notes, b, bytes.len() as u8));
    }

    fn sent(&mut self, at: Nanos, bytes: [u8; 3]) {
        self.add(at, Step::Sent(bytes));
    }

    /// Start, then `pulses` clocks at 120 BPM from T0.
    fn clock(&mut self, pulses: u64) {
        self.msg(T0 - MS, &[0xFA]);
        for i in 0..pulses {
            self.msg(T0 + (i as f64 * P) as u64, &[0xF8]);
        }
    }

    fn run(mut self, p: &mut InputProcessor) -> Vec<InputAction> {
        self.steps.sort_by_key(|s| (s.0, s.1));
        let mut actions = Vec::new();
        for (at, _, step) in self.steps {
            match step {
                Step::In(port, b, len) => p
                    .on_midi(&RawMidi::new(at, port, &b[..len as usize]), &mut |a| {
                        actions.push(a)
                    }),
                Step::Sent(b) => p.record_sent(at, &b),
            }
        }
        actions
    }
}

fn beat(b: u64) -> Nanos {
    T0 + (b as f64 * 24.0 * P) as u64
}

fn prompts(actions: &[InputAction]) -> Vec<Vec<MsNote>> {
    actions
        .iter()
        .filter_map(|a| match a {
            InputAction::Job(j) => Some(j.prompt.notes.clone()),
            _ => None,
        })
        .collect()
}

fn routing_loops(actions: &[InputAction]) -> Vec<InputEvent> {
    actions
        .iter()
        .filter_map(|a| match a {
            InputAction::Event(e @ InputEvent::RoutingLoop { .. }) => Some(*e),
            _ => None,
        })
        .collect()
}

/// Our answer: one note a beat for 8 beats (bars 0 and 1), velocity 80, 400 ms long.
fn our_line(s: &mut Session) -> Vec<u8> {
    let keys: Vec<u8> = (0..8).map(|b| [60u8, 64, 67, 72][b % 4]).collect();
    for (b, &k) in keys.iter().enumerate() {
        s.sent(beat(b as u64), [0x90, k, 80]);
        s.sent(beat(b as u64) + 400 * MS, [0x80, k, 0]);
    }
    keys
}

#[test]
fn a_human_unison_line_reaches_the_prompt_when_there_is_no_loop() {
    // Default channels: input any, output 1. The player doubles every note we play, on our
    // channel, 0.3 to 12 ms after ours; every other note has our exact bytes (velocity 80, a
    // note-off of velocity 0), the others a velocity of their own and a release velocity.
    let mut s = Session::new();
    s.clock(2 * 96 + 1);
    let keys = our_line(&mut s);
    let delays = [0.3, 1.0, 2.5, 6.0, 12.0];
    for (b, &k) in keys.iter().enumerate() {
        let d = (delays[b % delays.len()] * 1e6) as u64;
        let exact = b % 2 == 0;
        let on = beat(b as u64) + d;
        s.msg(on, &[0x90, k, if exact { 80 } else { 73 }]);
        s.msg(on + 380 * MS, &[0x80, k, if exact { 0 } else { 64 }]);
    }
    let mut p = InputProcessor::new(&Config::default());
    let actions = s.run(&mut p);
    let prompts = prompts(&actions);
    assert_eq!(prompts.len(), 2, "jobs for bars 0 and 1");
    let heard: Vec<u8> = prompts[1].iter().map(|n| n.pitch).collect();
    assert_eq!(heard, keys, "the player's notes, all of them");
    assert_eq!(p.counters().echoes_dropped, 0);
    assert!(routing_loops(&actions).is_empty());
}

#[test]
fn with_a_loop_only_the_echoes_are_dropped_and_a_unison_player_is_kept() {
    let mut s = Session::new();
    s.clock(2 * 96 + 1);
    // The sweep at Start, echoed 1.3 ms later (a JACK period): the loop is known from here.
    for k in 0..128u8 {
        s.sent(T0 - MS / 2, [0x80, k, 0]);
        s.msg(T0 - MS / 2 + 1_300_000, &[0x80, k, 0]);
    }
    let keys = our_line(&mut s);
    for (b, &k) in keys.iter().enumerate() {
        // Our notes echoed 1.2 to 1.4 ms after they left...
        let rtt = 1_200_000 + (b as u64 % 3) * 100_000;
        s.msg(beat(b as u64) + rtt, &[0x90, k, 80]);
        s.msg(beat(b as u64) + 400 * MS + rtt, &[0x80, k, 0]);
        // ...and the player doubling them 8 to 15 ms after, with a velocity of their own.
        let d = (8 + b as u64 % 8) * MS;
        s.msg(beat(b as u64) + d, &[0x90, k, 93]);
        s.msg(beat(b as u64) + 350 * MS + d, &[0x80, k, 64]);
    }
    let mut p = InputProcessor::new(&Config::default());
    let actions = s.run(&mut p);
    let loops = routing_loops(&actions);
    assert_eq!(loops.len(), 1, "{loops:?}");
    let prompts = prompts(&actions);
    let heard: Vec<(u8, u8)> = prompts[1].iter().map(|n| (n.pitch, n.velocity)).collect();
    let expected: Vec<(u8, u8)> = keys.iter().map(|&k| (k, 93)).collect();
    assert_eq!(heard, expected, "the player's notes and none of ours");
    assert_eq!(p.counters().echoes_dropped, (128 - 7) + 2 * 8);
}

#[test]
fn thru_output_coming_back_is_recognised_and_thru_stops_once() {
    let mut cfg = Config::default();
    cfg.midi.thru = true;
    let mut p = InputProcessor::new(&cfg);
    // A patch cable from our output back to our input: whatever thru sends arrives again one
    // JACK period (1.33 ms) later. The player holds a note on channel 2, then on channel 3.
    let rtt = 1_333_333u64;
    let mut pending: Vec<(Nanos, [u8; 3])> =
        vec![(T0, [0x91, 62, 90]), (T0 + 50 * MS, [0x92, 64, 70])];
    let mut thru_sent = 0;
    let mut events = Vec::new();
    while let Some(i) = (0..pending.len()).min_by_key(|&i| pending[i].0) {
        let (at, b) = pending.swap_remove(i);
        if at > T0 + 200 * MS {
            break;
        }
        let mut out = Vec::new();
        p.on_midi(&RawMidi::new(at, PortRole::Notes, &b), &mut |a| out.push(a));
        for a in out {
            match a {
                InputAction::Thru { bytes, .. } => {
                    thru_sent += 1;
                    pending.push((at + rtt, bytes));
                }
                InputAction::Event(e) => events.push(e),
                _ => {}
            }
        }
    }
    let loops: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, InputEvent::RoutingLoop { .. }))
        .collect();
    assert_eq!(loops.len(), 1, "{events:?}");
    match loops[0] {
        InputEvent::RoutingLoop {
            thru_stopped,
            round_trip_ms,
            ..
        } => {
            assert!(*thru_stopped);
            assert!((round_trip_ms - 1.333).abs() < 0.01, "{round_trip_ms}");
        }
        _ => unreachable!(),
    }
    assert!(!p.thru());
    // 8 round trips to confirm (the note-on forwarded 8 times), then a note-off for each on
    // its channel (their echoes dropped); the note on channel 3 comes after thru stopped and
    // is not forwarded.
    assert_eq!(thru_sent, 8 + 8, "thru sent {thru_sent} messages in 200 ms");
}

#[test]
fn transport_on_a_port_is_ignored_while_our_own_clock_runs_and_said_once() {
    let mut cfg = Config::default();
    cfg.clock.source = ClockSource::Internal;
    let mut p = InputProcessor::new(&cfg);
    let mut actions = Vec::new();
    let mut feed = |p: &mut InputProcessor, at: Nanos, port: PortRole, b: &[u8]| {
        p.on_midi(&RawMidi::new(at, port, b), &mut |a| actions.push(a));
    };
    feed(&mut p, T0 - MS, PortRole::Internal, &[0xFA]);
    feed(&mut p, T0 - MS + 300_000, PortRole::Notes, &[0xFA]);
    for i in 0..97u64 {
        let t = T0 + (i as f64 * P) as u64;
        feed(&mut p, t, PortRole::Internal, &[0xF8]);
        // Our clock echoed back by a loop, 0.3 ms later.
        feed(&mut p, t + 300_000, PortRole::Notes, &[0xF8]);
    }
    let jobs = actions
        .iter()
        .filter(|a| matches!(a, InputAction::Job(_)))
        .count();
    assert_eq!(jobs, 1, "one bar of our clock is one bar");
    let said: Vec<_> = actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                InputAction::Event(InputEvent::ForeignClockIgnored { .. })
            )
        })
        .collect();
    assert_eq!(said.len(), 1);
    assert_eq!(p.counters().foreign_transport, 98);
    assert!((p.timeline().ns_per_pulse - P).abs() < P * 0.01);
}

#[test]
fn the_output_is_cleared_at_every_start() {
    let mut p = InputProcessor::new(&Config::default());
    let mut actions = Vec::new();
    for (i, b) in [[0xFAu8], [0xF8], [0xFC], [0xFA], [0xFA]]
        .iter()
        .enumerate()
    {
        p.on_midi(
            &RawMidi::new(T0 + i as u64 * 10 * MS, PortRole::Notes, b),
            &mut |a| actions.push(a),
        );
    }
    let clears = actions
        .iter()
        .filter(|a| matches!(a, InputAction::ClearOutput))
        .count();
    assert_eq!(clears, 3, "one per Start, a restart included");
}

#[test]
fn close_thru_ends_what_thru_opened_on_its_channels() {
    let mut cfg = Config::default();
    cfg.midi.thru = true;
    let mut p = InputProcessor::new(&cfg);
    let mut sink = |_: InputAction| {};
    for ch in 0..16u8 {
        p.on_midi(
            &RawMidi::new(T0, PortRole::Notes, &[0x90 | ch, 40 + ch, 90]),
            &mut sink,
        );
    }
    // One released already; a pedal held on channel 5, released on channel 6.
    p.on_midi(
        &RawMidi::new(T0, PortRole::Notes, &[0x83, 43, 0]),
        &mut sink,
    );
    p.on_midi(
        &RawMidi::new(T0, PortRole::Notes, &[0xB4, 64, 127]),
        &mut sink,
    );
    p.on_midi(
        &RawMidi::new(T0, PortRole::Notes, &[0xB5, 64, 127]),
        &mut sink,
    );
    p.on_midi(
        &RawMidi::new(T0, PortRole::Notes, &[0xB5, 64, 0]),
        &mut sink,
    );
    let mut closed = Vec::new();
    p.close_thru(T0 + MS, &mut |a| {
        if let InputAction::Thru { bytes, .. } = a {
            closed.push(bytes);
        }
    });
    let mut expected: Vec<[u8; 3]> = (0..16u8)
        .filter(|&ch| ch != 3)
        .map(|ch| [0x80 | ch, 40 + ch, 0])
        .collect();
    expected.push([0xB4, 64, 0]);
    assert_eq!(closed, expected);
    let mut again = 0;
    p.close_thru(T0 + 2 * MS, &mut |_| again += 1);
    assert_eq!(again, 0, "closed once");
}

/// A generator that answers every window with four quarter notes (keys 60..63, velocity 80,
/// 400 ms at 120 BPM) and keeps each prompt it was given.
struct Unison {
    prompts: Arc<Mutex<Vec<Vec<MsNote>>>>,
}

impl Generator for Unison {
    fn generate(&mut self, r: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        self.prompts.lock().unwrap().push(r.prompt.notes.clone());
        Ok(Generated {
            notes: (0..4u32)
                .map(|i| MsNote {
                    pitch: 60 + i as u8,
                    velocity: 80,
                    start_ms: i * 500,
                    end_ms: i * 500 + 400,
                })
                .collect(),
            stats: GenerationStats::default(),
        })
    }

    fn describe(&self) -> String {
        "unison test generator".into()
    }
}

/// 8 bars of the very line the generator plays: from bar 2 on, the player and our answers are
/// in unison, byte for byte.
fn unison_part() -> Vec<TimedMessage> {
    let mut v = Vec::new();
    for b in 0..32u32 {
        let at = b as f64 * 500.0;
        let k = 60 + (b % 4) as u8;
        v.push(TimedMessage {
            at_ms: at,
            bytes: [0x90, k, 80],
            len: 3,
        });
        v.push(TimedMessage {
            at_ms: at + 400.0,
            bytes: [0x80, k, 0],
            len: 3,
        });
    }
    v
}

fn jam_prompts(offset_ms: f64) -> Vec<Vec<MsNote>> {
    let mut cfg = Config::default();
    cfg.playback.output_offset_ms = offset_ms;
    let prompts = Arc::new(Mutex::new(Vec::new()));
    let mut g = Unison {
        prompts: prompts.clone(),
    };
    let opts = JamOptions {
        bpm: 120.0,
        tail_bars: 2,
        assume_latency: Some(Duration::from_millis(30)),
    };
    let out = run_virtual(&cfg, &unison_part(), &mut g, &opts, &mut |_, _| {});
    assert_eq!(out.hanging_notes, 0);
    let p = prompts.lock().unwrap().clone();
    p
}

#[test]
fn a_headless_unison_with_our_answers_stays_in_the_prompts_at_any_output_offset() {
    let at_0 = jam_prompts(0.0);
    // Bars 1..=7 are two full bars of the part: 8 notes each.
    for (bar, p) in at_0.iter().enumerate().take(8).skip(1) {
        assert_eq!(p.len(), 8, "prompt of bar {bar}: {p:?}");
    }
    assert_eq!(
        at_0,
        jam_prompts(-40.0),
        "the output offset changed the prompts"
    );
}
