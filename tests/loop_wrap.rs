//! A master looping four bars (Song Position 0 sent between the loop's last clock and the next,
//! as Ableton does) through the pure engine: input processor, worker function and scheduler
//! wired as the live engine wires them, with a worker that answers at the boundary.
//!
//! Every bar of every pass after the first two must play an answer: the one due after the loop's
//! last bar is carried into its first.

mod support;

use aria_bridge::config::Config;
use aria_bridge::engine::input::{InputAction, InputProcessor};
use aria_bridge::engine::scheduler::{PlaySource, Scheduler, SchedulerEvent};
use aria_bridge::engine::worker::run_job;
use aria_bridge::midi::sink::Recorder;
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;
use support::{note, ScriptedGenerator, Step};

/// 120 BPM.
const PULSE_NS: Nanos = 20_833_333;

struct Rig {
    input: InputProcessor,
    sched: Scheduler,
    gen: ScriptedGenerator,
    out: Recorder,
    t: Nanos,
    events: Vec<SchedulerEvent>,
}

impl Rig {
    fn new() -> Self {
        let cfg = Config::default();
        let mut gen = ScriptedGenerator::new();
        gen.fallback = Step::Notes(vec![note(60, 0, 400), note(64, 500, 900)]);
        Self {
            input: InputProcessor::new(&cfg),
            sched: Scheduler::new(&cfg),
            gen,
            out: Recorder::default(),
            t: 1_000_000_000,
            events: Vec::new(),
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let t = self.t;
        self.sched.poll(t, &mut self.out);
        let mut actions = Vec::new();
        self.input
            .on_midi(&RawMidi::new(t, PortRole::Notes, bytes), &mut |a| {
                actions.push(a)
            });
        for a in actions {
            match a {
                InputAction::Timeline(tl) => self.sched.on_timeline(tl, t, &mut self.out),
                InputAction::Job(job) => {
                    self.sched.expect(job.window, job.epoch);
                    let r = run_job(&mut self.gen, &job, None, || t);
                    self.sched.on_result(r, t);
                }
                InputAction::AllNotesOff(_) => self.sched.all_notes_off(t, &mut self.out),
                _ => {}
            }
        }
        self.sched.poll(t, &mut self.out);
        let ev = &mut self.events;
        self.sched.drain_events(|e| ev.push(e));
    }

    fn clocks(&mut self, n: u32) {
        for _ in 0..n {
            self.t += PULSE_NS;
            self.feed(&[0xF8]);
        }
    }

    /// Windows that played their own result, in order.
    fn played(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SchedulerEvent::Played {
                    bar,
                    source: PlaySource::Result,
                    ..
                } => Some(*bar),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn every_bar_of_a_four_bar_loop_plays_an_answer_after_the_first_pass() {
    let mut r = Rig::new();
    r.t += 1_000_000;
    r.feed(&[0xFA]);
    r.clocks(4 * 96);
    for _ in 0..3 {
        // Between the loop's last clock and the one that begins bar 0 again.
        r.t += PULSE_NS / 2;
        r.feed(&[0xF2, 0, 0]);
        r.t -= PULSE_NS / 2;
        r.clocks(4 * 96);
    }
    // Stop before bar 4 of the last pass would begin.
    r.t += PULSE_NS / 2;
    r.feed(&[0xFC]);
    // Pass 1: bars 2 and 3 (bars 0 and 1 have no human bars before them). Passes 2 to 4: all
    // four, bar 0 being the answer carried over the wrap.
    let expected: Vec<u64> = [
        vec![2, 3],
        vec![0, 1, 2, 3],
        vec![0, 1, 2, 3],
        vec![0, 1, 2, 3],
    ]
    .concat();
    assert_eq!(r.played(), expected, "events: {:?}", r.events);
    let carried = r
        .events
        .iter()
        .filter(|e| {
            matches!(
                e,
                SchedulerEvent::Carried {
                    from_bar: 4,
                    bar: 0
                }
            )
        })
        .count();
    assert_eq!(carried, 3);
    assert!(!r
        .events
        .iter()
        .any(|e| matches!(e, SchedulerEvent::Missed { .. })));
}
