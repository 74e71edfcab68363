//! Transport scenarios: positions, bar boundaries, relocation, loss and tempo, driven through
//! the pure `Transport` with virtual time.

use aria_bridge::clock::meter::{Meter, TimeSignature};
use aria_bridge::clock::timeline::Carry;
use aria_bridge::clock::transport::{
    Anomaly, PlayState, Transport, TransportConfig, TransportEvent,
};
use aria_bridge::midi::message::MidiMessage;
use aria_bridge::Nanos;
use proptest::prelude::*;

fn period(bpm: f64) -> f64 {
    60e9 / (bpm * 24.0)
}

/// Deterministic uniform noise in [-1, 1] (xorshift).
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// A transport with a virtual master clock.
struct Rig {
    t: Transport,
    /// Ideal time of the last clock, ns.
    now: f64,
    bpm: f64,
    jitter: f64,
    noise: Noise,
    events: Vec<TransportEvent>,
}

impl Rig {
    fn new(meter: Meter) -> Self {
        Self {
            t: Transport::new(TransportConfig {
                meter,
                initial_ns_per_pulse: period(120.0),
                loss_intervals: 4.0,
                loss_min_ns: 100_000_000,
            }),
            now: 1e9,
            bpm: 120.0,
            jitter: 0.0,
            noise: Noise(0x5EED),
            events: Vec::new(),
        }
    }

    fn common() -> Self {
        Self::new(Meter::constant(TimeSignature::COMMON))
    }

    fn send(&mut self, msg: MidiMessage) {
        let at = self.now as Nanos + 1_000;
        let ev = &mut self.events;
        self.t.on_message(&msg, at, &mut |e| ev.push(e));
    }

    fn clocks(&mut self, n: usize) {
        for _ in 0..n {
            self.now += period(self.bpm);
            let at = (self.now + self.jitter * period(self.bpm) * self.noise.next()) as Nanos;
            let ev = &mut self.events;
            self.t
                .on_message(&MidiMessage::Clock, at, &mut |e| ev.push(e));
        }
    }

    fn wait(&mut self, ns: f64) {
        self.now += ns;
    }

    fn tick(&mut self) {
        let ev = &mut self.events;
        self.t.on_tick(self.now as Nanos, &mut |e| ev.push(e));
    }

    fn take(&mut self) -> Vec<TransportEvent> {
        std::mem::take(&mut self.events)
    }

    /// (bar, complete, next_bar) of every bar that ended.
    fn ended(events: &[TransportEvent]) -> Vec<(u64, bool, u64)> {
        events
            .iter()
            .filter_map(|e| match *e {
                TransportEvent::BarEnded {
                    bar,
                    complete,
                    next_bar,
                    ..
                } => Some((bar, complete, next_bar)),
                _ => None,
            })
            .collect()
    }

    /// (bar, pulse, partial) of every slot that began.
    fn began(events: &[TransportEvent]) -> Vec<(u64, u64, bool)> {
        events
            .iter()
            .filter_map(|e| match *e {
                TransportEvent::BarBegan {
                    bar,
                    pulse,
                    partial,
                    ..
                } => Some((bar, pulse, partial)),
                _ => None,
            })
            .collect()
    }

    fn bpm_estimate(&self) -> f64 {
        self.t.timeline().bpm()
    }
}

#[test]
fn start_at_1_1_1_puts_the_first_clock_at_pulse_0_and_the_bar_1_boundary_at_pulse_96() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(96);
    let ev = r.take();
    assert_eq!(Rig::began(&ev), vec![(0, 0, false)]);
    assert!(Rig::ended(&ev).is_empty(), "no boundary before pulse 96");
    r.clocks(1);
    let ev = r.take();
    assert_eq!(Rig::ended(&ev), vec![(0, true, 1)]);
    assert_eq!(Rig::began(&ev), vec![(1, 96, false)]);
    assert_eq!(r.t.position(), 97);
}

#[test]
fn song_position_then_continue_two_seconds_later_starts_mid_song() {
    let mut r = Rig::common();
    // Bar 2 beat 2: 8 + 4 = 36 sixteenths = pulse 216 (bar 2 starts at 192).
    r.send(MidiMessage::SongPosition(36));
    r.wait(2e9);
    r.send(MidiMessage::Continue);
    r.clocks(1);
    let ev = r.take();
    assert_eq!(Rig::began(&ev), vec![(2, 216, true)]);
    r.clocks(72 + 96);
    let ev = r.take();
    // Bar 2 was entered mid-bar: skipped; bar 3 played through.
    assert_eq!(Rig::ended(&ev), vec![(2, false, 3), (3, true, 4)]);
}

#[test]
fn song_position_on_a_bar_start_makes_that_bar_complete() {
    let mut r = Rig::common();
    r.send(MidiMessage::SongPosition(16));
    r.send(MidiMessage::Continue);
    r.clocks(97);
    assert_eq!(Rig::ended(&r.take()), vec![(1, true, 2)]);
}

#[test]
fn loop_wrap_with_mid_stream_song_position_rephases_and_bumps_the_epoch() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(4 * 96);
    let epoch = r.t.epoch();
    r.take();
    // A 4-bar loop wraps: the master sends SPP 0 between pulse 383 and the next clock.
    r.send(MidiMessage::SongPosition(0));
    let ev = r.take();
    assert!(ev.contains(&TransportEvent::Relocated {
        at: r.now as Nanos + 1_000,
        from: 384,
        to: 0
    }));
    assert_eq!(r.t.epoch(), epoch + 1);
    let tl = ev
        .iter()
        .find_map(|e| match e {
            TransportEvent::Timeline(tl) => Some(*tl),
            _ => None,
        })
        .expect("relocation publishes a timeline");
    assert_eq!((tl.epoch, tl.anchor_pulse), (epoch + 1, 0.0));
    // The answer due at old pulse 384 (bar 4) is carried to bar 0.
    assert_eq!(
        tl.carry,
        Some(Carry {
            from_epoch: epoch,
            from_pulse: 384,
            to_pulse: 0,
            to_bar: 0,
            to_len_pulses: 96
        })
    );
    r.clocks(1);
    let ev = r.take();
    // Bar 3 was played through; its answer goes to the bar after the one we landed in.
    assert_eq!(Rig::ended(&ev), vec![(3, true, 0)]);
    assert_eq!(Rig::began(&ev), vec![(0, 0, false)]);
    r.clocks(96);
    assert_eq!(Rig::ended(&r.take()), vec![(0, true, 1)]);
    assert!(r.t.timeline().carry.is_some(), "the carry lasts its epoch");
    r.send(MidiMessage::Stop);
    assert_eq!(r.t.timeline().carry, None, "a later epoch inherits nothing");
}

#[test]
fn a_jump_that_leaves_or_lands_off_a_bar_line_carries_nothing() {
    for (played, spp) in [(4 * 96 - 24, 0), (4 * 96, 2)] {
        let mut r = Rig::common();
        r.send(MidiMessage::Start);
        r.clocks(played);
        r.send(MidiMessage::SongPosition(spp));
        assert!(r
            .take()
            .iter()
            .any(|e| matches!(e, TransportEvent::Relocated { .. })));
        assert_eq!(
            r.t.timeline().carry,
            None,
            "left {played}, landed at 16th {spp}"
        );
    }
}

#[test]
fn mid_bar_song_position_while_running_skips_both_broken_bars() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(96 + 50);
    r.take();
    r.send(MidiMessage::SongPosition(4 * 16 + 4)); // bar 4, beat 2: pulse 408
    r.clocks(1 + 71 + 96 + 1);
    assert_eq!(
        Rig::ended(&r.take()),
        vec![(1, false, 4), (4, false, 5), (5, true, 6)]
    );
}

#[test]
fn stop_keeps_the_position_and_continue_resumes_from_it() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(150);
    r.send(MidiMessage::Stop);
    assert_eq!(r.t.state(), PlayState::Stopped);
    assert_eq!(r.t.position(), 150);
    // The master keeps its clock running while stopped: tempo only.
    r.clocks(30);
    assert_eq!(r.t.position(), 150);
    r.take();
    r.send(MidiMessage::Continue);
    r.clocks(1);
    assert_eq!(Rig::began(&r.take()), vec![(1, 150, true)]);
    r.clocks(41 + 96 + 1);
    assert_eq!(Rig::ended(&r.take()), vec![(1, false, 2), (2, true, 3)]);
}

#[test]
fn every_discontinuity_bumps_the_epoch() {
    let mut r = Rig::common();
    let mut last = r.t.epoch();
    let mut bumped = |r: &Rig| {
        let e = r.t.epoch();
        let b = e > last;
        last = e;
        b
    };
    r.send(MidiMessage::Start);
    assert!(bumped(&r));
    r.clocks(100);
    assert!(!bumped(&r));
    r.send(MidiMessage::SongPosition(2));
    assert!(bumped(&r));
    r.clocks(10);
    r.send(MidiMessage::Stop);
    assert!(bumped(&r));
    r.send(MidiMessage::Continue);
    assert!(bumped(&r));
    r.clocks(10);
    r.wait(1e9);
    r.tick();
    assert!(bumped(&r), "clock loss");
    r.clocks(1);
    assert!(bumped(&r), "clock resumed");
}

#[test]
fn tempo_ramp_from_60_to_300_bpm_is_followed() {
    let mut r = Rig::common();
    r.bpm = 60.0;
    r.jitter = 0.02;
    r.send(MidiMessage::Start);
    r.clocks(48);
    // 16 beats of linear ramp.
    for i in 0..16 * 24 {
        r.bpm = 60.0 + 240.0 * i as f64 / (16.0 * 24.0);
        r.clocks(1);
        if i > 24 {
            let err = (r.bpm_estimate() - r.bpm).abs() / r.bpm;
            assert!(
                err < 0.12,
                "{:.1} BPM read as {:.1}",
                r.bpm,
                r.bpm_estimate()
            );
        }
    }
    r.bpm = 300.0;
    r.clocks(24);
    assert!(
        (r.bpm_estimate() - 300.0).abs() / 300.0 < 0.01,
        "{}",
        r.bpm_estimate()
    );
    // Boundaries stay pulse-exact whatever the tempo does: 456 clocks = bar 4 + 72 pulses.
    let ends = Rig::ended(&r.take());
    assert_eq!(ends.len(), 4);
    assert!(ends.iter().all(|e| e.1));
}

#[test]
fn tempo_steps_are_followed_within_one_beat() {
    let mut r = Rig::common();
    r.jitter = 0.05;
    r.send(MidiMessage::Start);
    r.clocks(96);
    for to in [150.0, 95.0, 200.0] {
        r.bpm = to;
        r.clocks(24);
        let err = (r.bpm_estimate() - to).abs() / to;
        assert!(err < 0.015, "step to {to} read as {}", r.bpm_estimate());
        r.clocks(72);
    }
}

#[test]
fn meter_changes_4_4_then_3_4_then_7_8_move_the_boundaries() {
    let ts = |s| TimeSignature::parse(s).unwrap();
    let mut r = Rig::new(Meter::with_changes(
        ts("4/4"),
        &[(2, ts("3/4")), (4, ts("7/8"))],
    ));
    r.send(MidiMessage::Start);
    let mut boundaries = Vec::new();
    for pulse in 0..700u64 {
        r.clocks(1);
        if !Rig::ended(&r.take()).is_empty() {
            boundaries.push(pulse);
        }
    }
    assert_eq!(boundaries, vec![96, 192, 264, 336, 420, 504, 588, 672]);
}

#[test]
fn twenty_percent_clock_jitter_keeps_boundaries_exact_and_tempo_close() {
    let mut r = Rig::common();
    r.jitter = 0.2;
    r.send(MidiMessage::Start);
    r.clocks(96 * 20);
    let ends = Rig::ended(&r.take());
    assert_eq!(ends.len(), 19);
    assert!(ends.iter().all(|e| e.1));
    assert!(
        (r.bpm_estimate() - 120.0).abs() < 1.0,
        "{}",
        r.bpm_estimate()
    );
}

#[test]
fn clock_pulled_for_two_seconds_is_detected_and_resumes() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(120);
    r.take();
    // 4 periods at 120 BPM = 83 ms < the 100 ms floor: nothing at 90 ms, loss at 110 ms.
    r.wait(90e6);
    r.tick();
    assert!(r.take().is_empty());
    r.wait(20e6);
    r.tick();
    let ev = r.take();
    assert!(ev
        .iter()
        .any(|e| matches!(e, TransportEvent::ClockLost { .. })));
    assert_eq!(r.t.state(), PlayState::Lost);
    r.wait(2e9);
    r.tick();
    assert!(r.take().is_empty(), "loss is reported once");
    r.clocks(1);
    let ev = r.take();
    assert!(ev
        .iter()
        .any(|e| matches!(e, TransportEvent::ClockResumed { pulse: 120, .. })));
    assert_eq!(Rig::began(&ev), vec![(1, 120, true)]);
    assert_eq!(r.t.state(), PlayState::Running);
    r.clocks(24);
    assert!(
        (r.bpm_estimate() - 120.0).abs() < 0.5,
        "{}",
        r.bpm_estimate()
    );
}

#[test]
fn free_running_clock_without_start_moves_no_bars_but_gives_the_tempo() {
    let mut r = Rig::common();
    r.bpm = 97.0;
    r.clocks(500);
    let ev = r.take();
    assert!(Rig::began(&ev).is_empty() && Rig::ended(&ev).is_empty());
    assert_eq!(r.t.position(), 0);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(
                e,
                TransportEvent::Anomaly {
                    kind: Anomaly::ClockWithoutStart,
                    ..
                }
            ))
            .count(),
        1
    );
    assert!((r.bpm_estimate() - 97.0).abs() < 0.2);
    assert!(!r.t.timeline().running);
    // No loss while stopped.
    r.wait(5e9);
    r.tick();
    assert!(r.take().is_empty());
}

#[test]
fn double_start_restarts_from_pulse_zero() {
    let mut r = Rig::common();
    r.send(MidiMessage::Start);
    r.clocks(130);
    r.take();
    r.send(MidiMessage::Start);
    let ev = r.take();
    assert!(ev
        .iter()
        .any(|e| matches!(e, TransportEvent::Started { restart: true, .. })));
    r.clocks(97);
    let ev = r.take();
    assert_eq!(Rig::began(&ev), vec![(0, 0, false), (1, 96, false)]);
    assert_eq!(Rig::ended(&ev), vec![(0, true, 1)]);
}

#[test]
fn stop_without_start_and_continue_while_running_are_survived() {
    let mut r = Rig::common();
    r.send(MidiMessage::Stop);
    assert!(r.take().iter().any(|e| matches!(
        e,
        TransportEvent::Anomaly {
            kind: Anomaly::StopWhileStopped,
            ..
        }
    )));
    r.send(MidiMessage::Start);
    r.clocks(10);
    let epoch = r.t.epoch();
    r.send(MidiMessage::Continue);
    assert_eq!(r.t.epoch(), epoch);
    assert_eq!(r.t.position(), 10);
}

#[test]
fn continue_from_zero_without_start_plays_bar_0() {
    let mut r = Rig::common();
    r.send(MidiMessage::Continue);
    r.clocks(97);
    assert_eq!(Rig::ended(&r.take()), vec![(0, true, 1)]);
}

#[test]
fn clock_already_running_before_continue_mid_bar_waits_for_the_next_bar() {
    let mut r = Rig::common();
    r.clocks(300); // free-running before the master starts
    r.send(MidiMessage::SongPosition(3));
    r.send(MidiMessage::Continue);
    r.clocks(1 + 77 + 96 + 1);
    let ev = r.take();
    assert_eq!(Rig::began(&ev)[0], (0, 18, true));
    assert_eq!(Rig::ended(&ev), vec![(0, false, 1), (1, true, 2)]);
}

fn transport_message() -> impl Strategy<Value = (u8, u16, u32)> {
    // (kind, spp value, gap before it in µs)
    (0u8..8, 0u16..2000, 0u32..300_000)
}

proptest! {
    #[test]
    fn arbitrary_transport_sequences_keep_epochs_monotonic_and_boundaries_consistent(
        msgs in prop::collection::vec(transport_message(), 0..400)
    ) {
        let mut t = Transport::new(TransportConfig {
            meter: Meter::constant(TimeSignature::COMMON),
            initial_ns_per_pulse: period(120.0),
            loss_intervals: 4.0,
            loss_min_ns: 100_000_000,
        });
        let mut now: Nanos = 0;
        let mut events = Vec::new();
        for (kind, spp, gap) in msgs {
            now += u64::from(gap) * 1000;
            let msg = match kind {
                0 => MidiMessage::Start,
                1 => MidiMessage::Stop,
                2 => MidiMessage::Continue,
                3 => MidiMessage::SongPosition(spp),
                _ => MidiMessage::Clock,
            };
            t.on_message(&msg, now, &mut |e| events.push(e));
            t.on_tick(now, &mut |e| events.push(e));
            prop_assert!(t.tempo().ns_per_pulse() > 0.0);
        }
        let mut last_epoch = 0;
        let mut relocated_in_slot = false;
        for e in &events {
            match *e {
                TransportEvent::Timeline(tl) => {
                    prop_assert!(tl.epoch >= last_epoch);
                    last_epoch = tl.epoch;
                }
                TransportEvent::Relocated { .. } => relocated_in_slot = true,
                TransportEvent::BarBegan { .. } => relocated_in_slot = false,
                // Only a relocation during the slot may make the next bar another than bar + 1.
                TransportEvent::BarEnded { bar, complete: true, next_bar, .. } if next_bar != bar + 1 => {
                    prop_assert!(relocated_in_slot);
                }
                _ => {}
            }
        }
    }
}

#[test]
fn a_carry_into_a_bar_of_another_meter_takes_that_bars_length() {
    let ts = |s| TimeSignature::parse(s).unwrap();
    // Bars 0 and 1 in 3/4 (72 pulses), 4/4 from bar 2 (pulse 144); the master jumps from the
    // end of bar 3 (pulse 336) back to bar 1 (pulse 72).
    let mut r = Rig::new(Meter::with_changes(ts("3/4"), &[(2, ts("4/4"))]));
    r.send(MidiMessage::Start);
    r.clocks(336);
    let epoch = r.t.epoch();
    r.send(MidiMessage::SongPosition(72 / 6));
    assert_eq!(
        r.t.timeline().carry,
        Some(Carry {
            from_epoch: epoch,
            from_pulse: 336,
            to_pulse: 72,
            to_bar: 1,
            to_len_pulses: 72
        })
    );
}
