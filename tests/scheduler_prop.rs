//! Random sequences of results, tempo changes, epoch bumps, stops and panics never leave a note
//! sounding and never put a generated event outside its window.

use std::collections::HashMap;

use aria_bridge::clock::timeline::Timeline;
use aria_bridge::config::{Config, Fallback};
use aria_bridge::engine::generator::{Generated, GenerationStats};
use aria_bridge::engine::job::{GenerationResult, Window};
use aria_bridge::engine::scheduler::{DropReason, Scheduler};
use aria_bridge::midi::sink::Recorder;
use aria_bridge::music::note::MsNote;
use aria_bridge::Nanos;
use proptest::prelude::*;

const PPB: u64 = 96;
/// Pulse tolerance for float round trips through whole nanoseconds.
const EPS: f64 = 1e-3;

#[derive(Clone, Debug)]
enum Op {
    /// Expect the window `ahead` bars after the current one (2 = the usual k+2).
    Expect(u64),
    /// A result for the window `ahead` bars after the current one; `stale`: of the previous epoch.
    Result {
        ahead: u64,
        stale: bool,
        failed: bool,
        notes: Vec<(u8, u32, u32)>,
    },
    /// The job for a window was dropped.
    Drop(u64),
    /// Time passes (pulses), then poll.
    Advance(u32),
    /// A new tempo in the same epoch, ms per pulse.
    Tempo(u32),
    /// Start or a Song Position jump: a new running epoch at bar `to_bar`.
    Jump(u64),
    /// Stop: a new stopped epoch.
    Stop,
    /// Panic button (clock loss).
    AllNotesOff,
}

fn op() -> impl Strategy<Value = Op> {
    let notes = proptest::collection::vec((58u8..63, 0u32..2600, 0u32..1600), 0..8);
    prop_oneof![
        2 => (1u64..5).prop_map(Op::Expect),
        2 => (0u64..5, any::<bool>(), proptest::bool::weighted(0.1), notes).prop_map(
            |(ahead, stale, failed, notes)| Op::Result {
                ahead,
                stale,
                failed,
                notes
            }
        ),
        1 => (1u64..4).prop_map(Op::Drop),
        3 => (0u32..120).prop_map(Op::Advance),
        1 => (10u32..40).prop_map(Op::Tempo),
        1 => (0u64..6).prop_map(Op::Jump),
        1 => Just(Op::Stop),
        1 => Just(Op::AllNotesOff),
    ]
}

struct World {
    s: Scheduler,
    rec: Recorder,
    tl: Timeline,
    now: Nanos,
    offset_ns: i64,
    ring: u32,
    /// Windows announced per epoch.
    windows: HashMap<u32, Vec<Window>>,
    /// Instants where everything was silenced.
    panics: Vec<Nanos>,
    /// Messages checked so far.
    checked: usize,
    /// Sounding pitches per the output stream.
    sounding: [bool; 128],
}

impl World {
    fn window(&self, ahead: u64) -> Window {
        let bar = (self.tl.pulse_at(self.now).max(0.0) as u64) / PPB + ahead;
        Window {
            bar,
            start_pulse: bar * PPB,
            len_pulses: PPB as u32,
        }
    }

    fn announce(&mut self, epoch: u32, w: Window) {
        self.windows.entry(epoch).or_default().push(w);
    }

    fn new_timeline(&mut self, tl: Timeline) {
        let old = self.tl;
        self.tl = tl;
        if tl.epoch != old.epoch || (old.running && !tl.running) {
            self.panics.push(self.now);
        }
        self.s.on_timeline(tl, self.now, &mut self.rec);
    }

    /// Checks every message sent since the last check against the windows and the panics.
    fn check(&mut self) -> Result<(), TestCaseError> {
        let wins = self
            .windows
            .get(&self.tl.epoch)
            .cloned()
            .unwrap_or_default();
        for &(at, b, _) in &self.rec.events[self.checked..] {
            prop_assert_eq!(b[0] & 0x0F, 0, "output channel 1");
            let kind = b[0] & 0xF0;
            let pulse = self
                .tl
                .pulse_at((at as i64 - self.offset_ns).max(0) as Nanos);
            match kind {
                0x90 => {
                    prop_assert!(
                        !self.sounding[b[1] as usize],
                        "note-on over a sounding note"
                    );
                    self.sounding[b[1] as usize] = true;
                    prop_assert!(
                        wins.iter().any(|w| {
                            let s = w.start_pulse as f64;
                            pulse >= s - EPS && pulse < s + w.len_pulses as f64 + EPS
                        }),
                        "note-on at pulse {} outside every window {:?}",
                        pulse,
                        wins
                    );
                }
                0x80 => {
                    prop_assert!(self.sounding[b[1] as usize], "note-off without a note-on");
                    self.sounding[b[1] as usize] = false;
                    let in_window = wins.iter().any(|w| {
                        let s = w.start_pulse as f64;
                        let end = s + w.len_pulses as f64 + self.ring as f64;
                        pulse >= s - EPS && pulse <= end + EPS
                    });
                    prop_assert!(
                        in_window || self.panics.contains(&at),
                        "note-off at pulse {} outside every window + ring-out",
                        pulse
                    );
                }
                0xB0 => prop_assert!(self.panics.contains(&at), "CC outside a panic"),
                other => prop_assert!(false, "unexpected status {:#x}", other),
            }
        }
        self.checked = self.rec.events.len();
        Ok(())
    }
}

fn result(w: Window, epoch: u32, failed: bool, notes: &[(u8, u32, u32)]) -> GenerationResult {
    let notes = notes
        .iter()
        .map(|&(pitch, start, len)| MsNote {
            pitch,
            velocity: 64,
            start_ms: start,
            end_ms: start + len,
        })
        .collect();
    GenerationResult {
        bar: w.bar.saturating_sub(2),
        epoch,
        window: w,
        ms_per_pulse: 20.0,
        outcome: if failed {
            Err("failed".into())
        } else {
            Ok(Generated {
                notes,
                stats: GenerationStats::default(),
            })
        },
        started_ns: 0,
        finished_ns: 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_stuck_notes_and_no_generated_event_outside_its_window(
        ops in proptest::collection::vec(op(), 1..80),
        fallback in prop_oneof![Just(Fallback::Silence), Just(Fallback::RepeatLast), Just(Fallback::LateJoin)],
        ring in prop_oneof![Just(0u32), Just(12u32), Just(96u32)],
        offset_ms in prop_oneof![Just(0.0), Just(-20.0), Just(35.0)],
    ) {
        let mut c = Config::default();
        c.playback.fallback = fallback;
        c.playback.ring_out_pulses = ring;
        c.playback.output_offset_ms = offset_ms;
        let t0 = 1_000_000_000;
        let mut w = World {
            s: Scheduler::new(&c),
            rec: Recorder::default(),
            tl: Timeline::stopped(),
            now: t0,
            offset_ns: (offset_ms * 1e6) as i64,
            ring,
            windows: HashMap::new(),
            panics: Vec::new(),
            checked: 0,
            sounding: [false; 128],
        };
        w.new_timeline(Timeline { epoch: 1, running: true, anchor_pulse: 0.0, anchor_ns: t0, ns_per_pulse: 20e6, carry: None });
        for op in ops {
            match op {
                Op::Expect(ahead) => {
                    let win = w.window(ahead);
                    w.announce(w.tl.epoch, win);
                    w.s.expect(win, w.tl.epoch);
                }
                Op::Result { ahead, stale, failed, notes } => {
                    let win = w.window(ahead);
                    let epoch = if stale { w.tl.epoch.saturating_sub(1) } else { w.tl.epoch };
                    w.announce(epoch, win);
                    w.s.on_result(result(win, epoch, failed, &notes), w.now);
                }
                Op::Drop(ahead) => {
                    let win = w.window(ahead);
                    w.announce(w.tl.epoch, win);
                    w.s.dropped(win, w.tl.epoch, DropReason::QueueFull);
                }
                Op::Advance(pulses) => {
                    w.now += (pulses as f64 * w.tl.ns_per_pulse) as Nanos;
                    if let Some(next) = w.s.poll(w.now, &mut w.rec) {
                        prop_assert!(next > w.now, "next instant {} not after now {}", next, w.now);
                    }
                }
                Op::Tempo(ms) => {
                    let tl = Timeline {
                        anchor_pulse: w.tl.pulse_at(w.now),
                        anchor_ns: w.now,
                        ns_per_pulse: ms as f64 * 1e6,
                        carry: None,
                        ..w.tl
                    };
                    w.new_timeline(tl);
                }
                Op::Jump(bar) => {
                    let tl = Timeline {
                        epoch: w.tl.epoch + 1,
                        running: true,
                        anchor_pulse: (bar * PPB) as f64,
                        anchor_ns: w.now,
                        ns_per_pulse: w.tl.ns_per_pulse,
                        carry: None,
                    };
                    w.new_timeline(tl);
                }
                Op::Stop => {
                    let tl = Timeline {
                        epoch: w.tl.epoch + 1,
                        running: false,
                        anchor_pulse: w.tl.pulse_at(w.now),
                        anchor_ns: w.now,
                        ..w.tl
                    };
                    w.new_timeline(tl);
                }
                Op::AllNotesOff => {
                    w.panics.push(w.now);
                    w.s.all_notes_off(w.now, &mut w.rec);
                }
            }
            w.check()?;
            let out_sounding = w.sounding.iter().filter(|&&s| s).count();
            prop_assert_eq!(w.s.sounding_notes(), out_sounding);
        }
        w.now += 1;
        w.panics.push(w.now);
        w.s.all_notes_off(w.now, &mut w.rec);
        w.check()?;
        prop_assert_eq!(w.s.sounding_notes(), 0);
        prop_assert!(w.sounding.iter().all(|&s| !s), "a note is stuck");
    }
}
