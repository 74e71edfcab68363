//! The whole pure engine under random transport and notes: input processor, worker function and
//! scheduler wired as the engine wires them, driven by arbitrary sequences of Start, Stop,
//! Continue, Song Position, clocks with irregular gaps (including clock loss) and human notes.
//!
//! Properties: no generated note sounds while the transport is stopped (Stop or clock loss), and
//! every generated note is closed at each Stop and at shutdown. (That nothing plays outside its
//! window is pinned at the scheduler level, in tests/scheduler_prop.rs.)

mod support;

use aria_bridge::config::{Config, Fallback};
use aria_bridge::engine::input::{InputAction, InputProcessor};
use aria_bridge::engine::scheduler::Scheduler;
use aria_bridge::engine::worker::run_job;
use aria_bridge::midi::sink::MidiOut;
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;
use proptest::prelude::*;
use support::{note, ScriptedGenerator, Step};

/// One step of a random performance.
#[derive(Clone, Debug)]
enum Ev {
    /// Clocks: this many, each after `gap_us` (a long gap is clock loss).
    Clocks(u8, u32),
    Start,
    Stop,
    Continue,
    /// Song Position in sixteenths.
    Spp(u16),
    Note(u8, bool),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        8 => (1u8..120, prop_oneof![4 => 19_000u32..23_000, 1 => 5_000u32..400_000]).prop_map(|(n, g)| Ev::Clocks(n, g)),
        1 => Just(Ev::Start),
        1 => Just(Ev::Stop),
        1 => Just(Ev::Continue),
        1 => (0u16..64).prop_map(Ev::Spp),
        3 => (48u8..72, any::<bool>()).prop_map(|(p, on)| Ev::Note(p, on)),
    ]
}

/// A sink that keeps what the scheduler sent.
#[derive(Default)]
struct Checked {
    events: Vec<(Nanos, [u8; 3], u8)>,
}

impl MidiOut for Checked {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        let mut b = [0u8; 3];
        b[..bytes.len().min(3)].copy_from_slice(&bytes[..bytes.len().min(3)]);
        self.events.push((at, b, bytes.len() as u8));
    }
}

fn sounding(events: &[(Nanos, [u8; 3], u8)]) -> usize {
    let mut on = [0i32; 128];
    for (_, b, len) in events {
        if *len == 3 {
            match b[0] & 0xF0 {
                0x90 if b[2] > 0 => on[b[1] as usize] += 1,
                0x80 | 0x90 => on[b[1] as usize] = (on[b[1] as usize] - 1).max(0),
                _ => {}
            }
        }
    }
    on.iter().map(|&n| n as usize).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn random_transport_and_notes_never_leave_a_note_sounding(
        evs in prop::collection::vec(ev(), 1..60),
        fallback in prop_oneof![Just(Fallback::Silence), Just(Fallback::RepeatLast), Just(Fallback::LateJoin)],
        ring_out in 0u32..48,
    ) {
        let mut cfg = Config::default();
        cfg.playback.fallback = fallback;
        cfg.playback.ring_out_pulses = ring_out;
        cfg.generation.prompt_bars = 1;
        let mut input = InputProcessor::new(&cfg);
        let mut sched = Scheduler::new(&cfg);
        let mut gen = ScriptedGenerator::new();
        // Notes spread over a whole bar and beyond it (the scheduler must cut them).
        gen.fallback = Step::Notes((0..8).map(|i| note(60 + i, i as u32 * 300, i as u32 * 300 + 900)).collect());
        let mut out = Checked::default();
        let mut t: Nanos = 1_000_000_000;
        let mut running = false;
        let mut actions = Vec::new();

        let mut feed = |t: Nanos, bytes: &[u8], input: &mut InputProcessor, sched: &mut Scheduler, out: &mut Checked, running: &mut bool| {
            // Everything due before this message goes out first, as the scheduler thread would.
            sched.poll(t, out);
            input.on_midi(&RawMidi::new(t, PortRole::Notes, bytes), &mut |a| actions.push(a));
            input.on_tick(t, &mut |a| actions.push(a));
            for a in actions.drain(..) {
                match a {
                    InputAction::Timeline(tl) => { *running = tl.running; sched.on_timeline(tl, t, out); }
                    InputAction::Job(job) => {
                        sched.expect(job.window, job.epoch);
                        // A zero-latency worker: the result is ready at the boundary.
                        let r = run_job(&mut gen, &job, None, || t);
                        sched.on_result(r, t);
                    }
                    InputAction::AllNotesOff(_) => sched.all_notes_off(t, out),
                    _ => {}
                }
            }
            sched.poll(t, out);
        };

        for e in &evs {
            match e {
                Ev::Clocks(n, gap_us) => for _ in 0..*n {
                    t += *gap_us as Nanos * 1_000;
                    feed(t, &[0xF8], &mut input, &mut sched, &mut out, &mut running);
                },
                Ev::Start => { t += 1_000_000; feed(t, &[0xFA], &mut input, &mut sched, &mut out, &mut running); }
                Ev::Continue => { t += 1_000_000; feed(t, &[0xFB], &mut input, &mut sched, &mut out, &mut running); }
                Ev::Spp(s) => { t += 1_000_000; feed(t, &[0xF2, (*s & 0x7F) as u8, (*s >> 7) as u8], &mut input, &mut sched, &mut out, &mut running); }
                Ev::Note(p, on) => {
                    t += 3_000_000;
                    let msg = if *on { [0x90, *p, 90] } else { [0x80, *p, 0] };
                    feed(t, &msg, &mut input, &mut sched, &mut out, &mut running);
                }
                Ev::Stop => {
                    t += 1_000_000;
                    feed(t, &[0xFC], &mut input, &mut sched, &mut out, &mut running);
                    let upto = out.events.partition_point(|e| e.0 <= t);
                    prop_assert_eq!(sounding(&out.events[..upto]), 0, "notes sounding right after Stop");
                }
            }
            if !running {
                // Stopped (Stop or clock loss): nothing of ours may still sound.
                prop_assert_eq!(sounding(&out.events), 0, "notes sounding while the transport is stopped");
                prop_assert_eq!(sched.sounding_notes(), 0);
            }
        }
        // Shutdown.
        t += 1_000_000;
        sched.all_notes_off(t, &mut out);
        prop_assert_eq!(sounding(&out.events), 0, "notes left hanging at shutdown");
        prop_assert_eq!(sched.sounding_notes(), 0);
    }
}
