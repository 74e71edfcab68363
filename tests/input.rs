//! The input side end to end: raw bytes in, timelines, jobs, notes-off and counters out.

use aria_bridge::clock::transport::TransportEvent;
use aria_bridge::config::Config;
use aria_bridge::engine::input::{
    bar_seed, AllNotesOffReason, InputAction, InputEvent, InputProcessor,
};
use aria_bridge::engine::job::{GenerationJob, Window};
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::music::note::{MsNote, PedalEvent};
use aria_bridge::Nanos;
use proptest::prelude::*;

const T0: f64 = 5e9;
/// 120 BPM.
const P: f64 = 20_833_333.333_333;

struct Jam {
    p: InputProcessor,
    /// Pulses sent since the rig began (the next clock is at T0 + sent·P).
    sent: u64,
    actions: Vec<InputAction>,
}

impl Jam {
    fn new(edit: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::default();
        edit(&mut cfg);
        cfg.validate().unwrap();
        Self {
            p: InputProcessor::new(&cfg),
            sent: 0,
            actions: Vec::new(),
        }
    }

    /// Time of the clock with index `i`, plus `us` microseconds.
    fn at(i: f64, us: f64) -> Nanos {
        (T0 + i * P + us * 1e3) as Nanos
    }

    fn now(&self) -> Nanos {
        Self::at(self.sent as f64 - 1.0, 0.0)
    }

    fn raw(&mut self, at: Nanos, port: PortRole, bytes: &[u8]) {
        let msg = RawMidi::new(at, port, bytes);
        let a = &mut self.actions;
        self.p.on_midi(&msg, &mut |x| a.push(x));
    }

    /// Sends `bytes` on the note port `us` µs after the last clock.
    fn send(&mut self, us: f64, bytes: &[u8]) {
        let at = Self::at(self.sent as f64 - 1.0, us);
        self.raw(at, PortRole::Notes, bytes);
    }

    fn clocks(&mut self, n: u64) {
        for _ in 0..n {
            let at = Self::at(self.sent as f64, 0.0);
            self.raw(at, PortRole::Notes, &[0xF8]);
            self.sent += 1;
        }
    }

    fn take(&mut self) -> Vec<InputAction> {
        std::mem::take(&mut self.actions)
    }

    fn jobs(actions: &[InputAction]) -> Vec<GenerationJob> {
        actions
            .iter()
            .filter_map(|a| match a {
                InputAction::Job(j) => Some(j.clone()),
                _ => None,
            })
            .collect()
    }

    fn notes_off(actions: &[InputAction]) -> Vec<AllNotesOffReason> {
        actions
            .iter()
            .filter_map(|a| match a {
                InputAction::AllNotesOff(r) => Some(*r),
                _ => None,
            })
            .collect()
    }
}

fn note(pitch: u8, velocity: u8, start_ms: u32, end_ms: u32) -> MsNote {
    MsNote {
        pitch,
        velocity,
        start_ms,
        end_ms,
    }
}

#[test]
fn first_job_after_start_is_for_bar_0_plays_in_bar_2_and_is_due_at_its_first_pulse() {
    let mut j = Jam::new(|c| {
        c.generation.seed = 7;
        c.generation.temperature = 0.5;
    });
    j.send(0.0, &[0xFA]);
    j.clocks(25);
    j.send(1.0, &[0x90, 60, 100]); // beat 2 of bar 0
    j.clocks(12);
    j.send(1.0, &[0x80, 60, 0]);
    j.clocks(96 - 37);
    assert!(Jam::jobs(&j.take()).is_empty(), "no job before pulse 96");
    j.clocks(1);
    let jobs = Jam::jobs(&j.take());
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.bar, 0);
    assert_eq!(
        job.window,
        Window {
            bar: 2,
            start_pulse: 192,
            len_pulses: 96
        }
    );
    // Only bar 0 has been played: the prompt covers it alone (1 bar = 2000 ms at 120 BPM).
    assert_eq!(job.prompt.notes, vec![note(60, 100, 500, 750)]);
    assert_eq!(job.prompt.length_ms, 2000);
    assert!((job.ms_per_pulse - 20.8333).abs() < 1e-3);
    assert_eq!(job.enqueued_ns, Jam::at(96.0, 0.0));
    assert!(job.deadline_ns.abs_diff(Jam::at(192.0, 0.0)) < 1_000);
    assert_eq!(job.epoch, j.p.timeline().epoch);
    assert_eq!(job.params.seed, bar_seed(7, 0));
    assert_eq!(job.params.temperature, 0.5);
}

#[test]
fn timeline_is_published_before_the_job_built_with_it() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    j.clocks(97);
    let actions = j.take();
    let first_tl = actions
        .iter()
        .position(|a| matches!(a, InputAction::Timeline(t) if t.running))
        .unwrap();
    let job = actions
        .iter()
        .position(|a| matches!(a, InputAction::Job(_)))
        .unwrap();
    assert!(first_tl < job);
}

#[test]
fn prompt_holds_the_last_n_bars_in_ms_from_their_start() {
    let mut j = Jam::new(|c| c.generation.prompt_bars = 2);
    j.send(0.0, &[0xFA]);
    j.clocks(1);
    for bar in 0..3u64 {
        // One note per bar on beat 1, a quarter long, pitch 60 + bar.
        j.send(1.0, &[0x90, 60 + bar as u8, 90]);
        j.clocks(24);
        j.send(1.0, &[0x80, 60 + bar as u8, 0]);
        j.clocks(72);
    }
    let jobs = Jam::jobs(&j.take());
    assert_eq!(
        jobs.iter().map(|j| j.bar).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let last = &jobs[2];
    assert_eq!(
        last.prompt.notes,
        vec![note(61, 90, 0, 500), note(62, 90, 2000, 2500)]
    );
    assert_eq!(last.prompt.length_ms, 4000);
    assert_eq!(last.window.bar, 4);
}

#[test]
fn note_held_across_the_boundary_ends_there_provisionally_then_for_real() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    j.clocks(91);
    j.send(1.0, &[0x90, 64, 70]); // pulse 90
    j.clocks(30);
    j.send(1.0, &[0x90, 64, 0]); // velocity-0 note-on = note-off, pulse 120
    j.clocks(96 - 24 + 1);
    let jobs = Jam::jobs(&j.take());
    assert_eq!(jobs[0].prompt.notes, vec![note(64, 70, 1875, 2000)]);
    assert_eq!(jobs[1].prompt.notes, vec![note(64, 70, 1875, 2500)]);
}

#[test]
fn pedal_changes_enter_the_prompt() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    j.clocks(49);
    j.send(1.0, &[0xB0, 64, 127]);
    j.clocks(24);
    j.send(1.0, &[0xB0, 64, 0]);
    j.clocks(96 - 72);
    let jobs = Jam::jobs(&j.take());
    assert_eq!(
        jobs[0].prompt.pedal,
        vec![
            PedalEvent {
                at_ms: 1000,
                down: true
            },
            PedalEvent {
                at_ms: 1500,
                down: false
            }
        ]
    );
}

#[test]
fn channel_filter_keeps_only_the_input_channel() {
    let mut j = Jam::new(|c| c.midi.input_channel = 2);
    j.send(0.0, &[0xFA]);
    j.clocks(2);
    j.send(1.0, &[0x90, 60, 100]); // channel 1
    j.send(2.0, &[0x91, 62, 100]); // channel 2
    j.clocks(95);
    let jobs = Jam::jobs(&j.take());
    let pitches: Vec<u8> = jobs[0].prompt.notes.iter().map(|n| n.pitch).collect();
    assert_eq!(pitches, vec![62]);
    assert_eq!(j.p.counters().wrong_channel, 1);
}

#[test]
fn notes_while_stopped_are_counted_and_forwarded_but_not_buffered() {
    let mut j = Jam::new(|c| c.midi.thru = true);
    j.send(0.0, &[0x90, 60, 100]);
    let thru: Vec<_> = j
        .take()
        .into_iter()
        .filter(|a| {
            matches!(
                a,
                InputAction::Thru {
                    bytes: [0x90, 60, 100],
                    len: 3
                }
            )
        })
        .collect();
    assert_eq!(thru.len(), 1);
    assert_eq!(j.p.counters().notes_while_stopped, 1);
    j.send(0.0, &[0xFA]);
    j.clocks(97);
    assert!(Jam::jobs(&j.take())[0].prompt.notes.is_empty());
}

#[test]
fn running_status_notes_are_forwarded_with_their_status_expanded() {
    let mut j = Jam::new(|c| c.midi.thru = true);
    j.send(0.0, &[0x92, 60, 100]);
    j.send(0.0, &[62, 100]);
    let thru: Vec<[u8; 3]> = j
        .take()
        .into_iter()
        .filter_map(|a| match a {
            InputAction::Thru { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(thru, vec![[0x92, 60, 100], [0x92, 62, 100]]);
}

#[test]
fn our_own_notes_echoed_back_through_a_loop_never_enter_the_prompt() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    // The sweep sent at Start comes back 0.8 ms later: a loop, confirmed before any music.
    let sweep_at = j.now();
    for k in 0..128u8 {
        j.p.record_sent(sweep_at, &[0x80, k, 0]);
    }
    for k in 0..128u8 {
        j.raw(sweep_at + 800_000, PortRole::Notes, &[0x80, k, 0]);
    }
    assert_eq!(j.p.counters().routing_loops, 1);
    j.clocks(10);
    let sent_at = j.now();
    j.p.record_sent(sent_at, &[0x90, 72, 80]);
    j.p.record_sent(sent_at + 100_000_000, &[0x80, 72, 0]);
    j.send(800.0, &[0x90, 72, 80]); // echo, 0.8 ms later
    j.send(900.0, &[0x90, 48, 80]); // the human
    j.clocks(6);
    j.raw(sent_at + 100_700_000, PortRole::Notes, &[0x80, 72, 0]);
    j.clocks(81);
    let actions = j.take();
    let jobs = Jam::jobs(&actions);
    let pitches: Vec<u8> = jobs[0].prompt.notes.iter().map(|n| n.pitch).collect();
    assert_eq!(pitches, vec![48]);
    // The sweep's first 7 echoes are only evidence; the 8th confirms the loop.
    assert_eq!(j.p.counters().echoes_dropped, 128 - 7 + 2);
}

#[test]
fn seeds_mix_the_jam_seed_with_the_bar_index() {
    let run = |seed: u64| {
        let mut j = Jam::new(|c| c.generation.seed = seed);
        j.send(0.0, &[0xFA]);
        j.clocks(3 * 96 + 1);
        Jam::jobs(&j.take())
            .iter()
            .map(|job| job.params.seed)
            .collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a.len(), 3);
    assert_eq!(a, run(1), "same seed, same stream");
    assert_ne!(a[0], a[1]);
    assert_ne!(a[1], a[2]);
    assert_ne!(a, run(2));
}

#[test]
fn loop_wrap_voids_old_jobs_closes_notes_and_keeps_the_prompt_continuous() {
    let mut j = Jam::new(|c| c.generation.prompt_bars = 2);
    j.send(0.0, &[0xFA]);
    j.clocks(3 * 96 + 1);
    j.send(1.0, &[0x90, 67, 100]); // bar 3, beat 1
    j.clocks(24);
    j.send(1.0, &[0x80, 67, 0]);
    j.clocks(71);
    let before = j.take();
    let old_epoch = Jam::jobs(&before).last().unwrap().epoch;
    j.send(1.0, &[0xF2, 0, 0]); // 4-bar loop wraps to bar 0
    let at_spp = j.take();
    assert_eq!(Jam::notes_off(&at_spp), vec![AllNotesOffReason::Relocation]);
    assert!(at_spp.iter().any(|a| matches!(
        a,
        InputAction::Timeline(t) if t.epoch > old_epoch && t.anchor_pulse == 0.0
    )));
    j.clocks(1);
    let jobs = Jam::jobs(&j.take());
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.bar, 3);
    assert!(job.epoch > old_epoch);
    // We landed in bar 0; the answer to bar 3 plays in the bar after it.
    assert_eq!(job.window.bar, 1);
    assert_eq!(job.window.start_pulse, 96);
    // Pulse 96 of the new pass is 96 clocks after the clock that began it.
    assert!(
        job.deadline_ns
            .abs_diff(Jam::at(j.sent as f64 - 1.0 + 96.0, 0.0))
            < 1_000
    );
    // Bars 2 and 3 as played.
    assert_eq!(job.prompt.notes, vec![note(67, 100, 2000, 2500)]);
}

#[test]
fn stop_closes_notes_and_voids_queued_jobs() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    j.clocks(150);
    let epoch = j.p.timeline().epoch;
    j.take();
    j.send(1.0, &[0xFC]);
    let actions = j.take();
    assert_eq!(Jam::notes_off(&actions), vec![AllNotesOffReason::Stop]);
    assert!(actions
        .iter()
        .any(|a| matches!(a, InputAction::Timeline(t) if !t.running && t.epoch > epoch)));
}

#[test]
fn clock_loss_is_handled_like_stop_and_logged() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0xFA]);
    j.clocks(50);
    j.take();
    let a = &mut j.actions;
    j.p.on_tick(Jam::at(49.0, 150_000.0), &mut |x| a.push(x));
    let actions = j.take();
    assert_eq!(Jam::notes_off(&actions), vec![AllNotesOffReason::ClockLoss]);
    assert!(actions.iter().any(|a| matches!(
        a,
        InputAction::Event(InputEvent::Transport(TransportEvent::ClockLost { .. }))
    )));
    assert_eq!(j.p.counters().clock_losses, 1);
}

#[test]
fn clock_on_the_note_port_is_ignored_when_a_clock_port_is_set() {
    let mut j = Jam::new(|c| c.midi.clock_port = Some("clock".into()));
    j.send(0.0, &[0xFA]);
    j.clocks(200);
    assert!(Jam::jobs(&j.take()).is_empty());
    assert_eq!(j.p.counters().wrong_port, 201);
    j.raw(Jam::at(200.0, 0.0), PortRole::Clock, &[0xFA]);
    for i in 0..97 {
        j.raw(Jam::at(201.0 + i as f64, 0.0), PortRole::Clock, &[0xF8]);
    }
    assert_eq!(Jam::jobs(&j.take()).len(), 1);
}

#[test]
fn bad_bytes_are_counted_and_logged_not_fatal() {
    let mut j = Jam::new(|_| {});
    j.send(0.0, &[0x40, 0x40]); // data without running status
    j.send(0.0, &[0x90, 0x80, 0x40]);
    j.send(0.0, &[0x90, 60]);
    j.raw(0, PortRole::Notes, &[0xF0, 0x7E, 0x7F, 0x09, 0xF7]);
    j.send(0.0, &[0x80, 61, 0]); // note-off for nothing
    j.send(0.0, &[0xFE]); // active sensing
    let c = j.p.counters();
    assert_eq!((c.malformed, c.sysex, c.ignored), (3, 1, 1));
    let logged = j
        .take()
        .iter()
        .filter(|a| matches!(a, InputAction::Event(InputEvent::Malformed { .. })))
        .count();
    assert_eq!(logged, 3);
    assert_eq!(c.messages, 6);
}

fn raw_message() -> impl Strategy<Value = (Vec<u8>, bool, u16)> {
    (
        prop::collection::vec(any::<u8>(), 0..6),
        any::<bool>(),
        0u16..50_000,
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_between_clocks_never_panic(
        msgs in prop::collection::vec(raw_message(), 0..300)
    ) {
        let mut j = Jam::new(|c| { c.midi.thru = true; c.generation.prompt_bars = 8; });
        j.send(0.0, &[0xFA]);
        let mut t: Nanos = Jam::at(0.0, 0.0);
        let mut handled = 1;
        for (bytes, clock_port, gap_us) in msgs {
            t += u64::from(gap_us) * 1_000;
            let port = if clock_port { PortRole::Clock } else { PortRole::Notes };
            j.raw(t, port, &bytes);
            j.p.record_sent(t, &bytes);
            let a = &mut j.actions;
            j.p.on_tick(t, &mut |x| a.push(x));
            handled += 1;
            j.actions.clear();
        }
        prop_assert_eq!(j.p.counters().messages, handled);
        prop_assert!(j.p.timeline().ns_per_pulse > 0.0);
    }
}

#[test]
fn job_window_follows_the_meter_changes() {
    use aria_bridge::config::MeterChange;
    let mut j = Jam::new(|c| {
        c.clock.meter_changes = vec![
            MeterChange {
                bar: 2,
                time_signature: "3/4".into(),
            },
            MeterChange {
                bar: 3,
                time_signature: "7/8".into(),
            },
        ];
    });
    j.send(0.0, &[0xFA]);
    j.clocks(96 + 96 + 72 + 1);
    let windows: Vec<Window> = Jam::jobs(&j.take()).iter().map(|j| j.window).collect();
    assert_eq!(
        windows,
        vec![
            Window {
                bar: 2,
                start_pulse: 192,
                len_pulses: 72
            },
            Window {
                bar: 3,
                start_pulse: 264,
                len_pulses: 84
            },
            Window {
                bar: 4,
                start_pulse: 348,
                len_pulses: 84
            },
        ]
    );
}
