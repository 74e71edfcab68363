//! The MIDI clock transport: Start/Stop/Continue/Song Position, pulses and bar boundaries.
//!
//! [`Transport`] is a pure state machine fed with parsed real-time messages and their driver
//! timestamps; it reports what happened as [`TransportEvent`]s through a callback. It owns the
//! [`TempoDll`] (every 0xF8 is tempo evidence, running or not) and the [`Meter`].
//!
//! # Positions
//! - `pulse`: the song position in clock pulses. The first 0xF8 after Start is pulse 0, so bar
//!   `k` begins at `meter.bar_start(k)` exactly (96·k in 4/4). After Continue the first 0xF8 is
//!   the stored position: where Stop left it, or the Song Position Pointer (sixteenths × 6).
//! - `played`: pulses counted since the current *run* began (Start, Continue, or the clock
//!   resuming after a loss). It never jumps, even when a mid-stream Song Position relocates
//!   `pulse`, so the human's notes keep a continuous time axis across loop wraps.
//!
//! # Bars and the completeness rule
//! A *slot* is the stretch of one bar actually played in a run. A slot begins at the first
//! clock of a run, at each bar's first pulse, and at the first clock after a relocation; it
//! ends when the next slot begins ([`TransportEvent::BarEnded`], emitted at that clock: for bar
//! `k` played through, that is the first pulse of bar `k+1`). A bar is *complete* when the clock
//! delivered every one of its pulses in this run: its slot began on the bar's first pulse and
//! ended after its last. Only complete bars get a job. So after Start bar 0 is complete; after
//! Continue, a Song Position jump or a resumed clock, the bar it lands in is complete only when
//! it lands on that bar's first pulse, otherwise the first job is for the next bar. Stop and
//! clock loss drop the open slot without ending it.
//!
//! Runs on the MIDI input thread; never allocates.

use crate::clock::meter::Meter;
use crate::clock::tempo::{TempoDll, TempoUpdate};
use crate::clock::timeline::{Carry, Timeline};
use crate::midi::message::MidiMessage;
use crate::Nanos;

/// Pulses per Song Position unit (a sixteenth note at 24 PPQN).
pub const PULSES_PER_SIXTEENTH: u64 = 6;
/// A running timeline is republished at least once a beat even when nothing moved, so a
/// scheduler that missed one catches up within 24 pulses.
const REPUBLISH_PULSES: u32 = 24;
/// Republish when the filtered period moved by more than this fraction (0.1% ≈ 0.12 BPM).
const REPUBLISH_PERIOD_FRACTION: f64 = 1e-3;
/// Republish when the next pulse's predicted instant moved by more than this, ns (a quarter of
/// the ~1 ms a listener notices).
const REPUBLISH_PHASE_NS: f64 = 250_000.0;
/// A fractional note position is clamped this far below the next pulse, so a note never lands
/// on a pulse that has not arrived (and so never in a bar that has not begun).
const BELOW_NEXT_PULSE: f64 = 1e-3;

/// Where the transport is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlayState {
    /// Not playing; clocks only feed the tempo estimate.
    Stopped,
    /// Start or Continue received; the next clock is the run's first pulse.
    Armed,
    /// Playing: each clock advances the position.
    Running,
    /// Running, but the clock went silent; the next clock resumes from the stored position.
    Lost,
}

/// Something odd the transport survived (counted and logged, never fatal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anomaly {
    /// Start while already running or armed: treated as a restart from pulse 0.
    DoubleStart,
    /// Stop while stopped.
    StopWhileStopped,
    /// Continue while running or armed: ignored.
    ContinueWhileRunning,
    /// A clock while stopped (a free-running master): tempo only, no bars. Reported once per
    /// stopped stretch.
    ClockWithoutStart,
}

/// What one message or tick did. Emitted in order; fixed-size, no allocation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TransportEvent {
    /// Start: armed at pulse 0 (`restart` when it interrupted a run).
    Started {
        /// When.
        at: Nanos,
        /// It interrupted a run (a double Start).
        restart: bool,
    },
    /// Continue: armed at `pulse`.
    Continued {
        /// When.
        at: Nanos,
        /// Position of the next clock.
        pulse: u64,
    },
    /// Stop: the position (`pulse`, the next clock's) is kept.
    Stopped {
        /// When.
        at: Nanos,
        /// Kept position.
        pulse: u64,
    },
    /// Song Position while not running: the next run starts there.
    PositionSet {
        /// When.
        at: Nanos,
        /// New position.
        pulse: u64,
    },
    /// Song Position while running that moves the position (a loop wrap): new epoch.
    Relocated {
        /// When.
        at: Nanos,
        /// Where the next clock would have been.
        from: u64,
        /// Where it will be.
        to: u64,
    },
    /// Song Position while running that names the position we were at anyway: nothing moves.
    SppInPlace {
        /// When.
        at: Nanos,
        /// The position.
        pulse: u64,
    },
    /// No clock for the loss timeout while running: handled like Stop.
    ClockLost {
        /// When the loss was noticed.
        at: Nanos,
        /// Silence so far, ns.
        silent_ns: u64,
    },
    /// The first clock after a loss: a new run from the kept position.
    ClockResumed {
        /// When.
        at: Nanos,
        /// Position of this clock.
        pulse: u64,
    },
    /// A timeline worth publishing (new epoch, tempo or phase moved, or a beat went by).
    Timeline(Timeline),
    /// A slot began: the clock at `pulse` is the first played pulse of `bar` in this stretch.
    BarBegan {
        /// The bar.
        bar: u64,
        /// Song position of this clock.
        pulse: u64,
        /// Run position of this clock.
        played: u64,
        /// When.
        at: Nanos,
        /// The slot does not begin on the bar's first pulse.
        partial: bool,
    },
    /// A slot ended at the clock `at` (the one that begins the next slot).
    BarEnded {
        /// The bar whose slot ended.
        bar: u64,
        /// Run position of the clock that ended it (exclusive end of the slot).
        played_end: u64,
        /// When.
        at: Nanos,
        /// Every pulse of the bar was played in this run (see the module docs).
        complete: bool,
        /// The bar the ending clock belongs to (normally `bar + 1`; elsewhere after a jump).
        next_bar: u64,
    },
    /// Once a beat of clocks: the tempo estimate, for logs.
    TempoSample {
        /// When.
        at: Nanos,
        /// Filtered tempo.
        bpm: f64,
        /// Mean absolute clock jitter, ns.
        jitter_ns: f64,
    },
    /// The tempo loop relocked (a step in tempo, or a gap in the clock).
    TempoJump {
        /// When.
        at: Nanos,
        /// Tempo after the relock.
        bpm: f64,
        /// It was a gap (missing pulses), not a step.
        gap: bool,
    },
    /// Something odd, survived.
    Anomaly {
        /// When.
        at: Nanos,
        /// What.
        kind: Anomaly,
    },
}

impl TransportEvent {
    /// When it happened (or was noticed); `None` for a timeline.
    pub fn at(&self) -> Option<Nanos> {
        match *self {
            TransportEvent::Timeline(_) => None,
            TransportEvent::Started { at, .. }
            | TransportEvent::Continued { at, .. }
            | TransportEvent::Stopped { at, .. }
            | TransportEvent::PositionSet { at, .. }
            | TransportEvent::Relocated { at, .. }
            | TransportEvent::SppInPlace { at, .. }
            | TransportEvent::ClockLost { at, .. }
            | TransportEvent::ClockResumed { at, .. }
            | TransportEvent::BarBegan { at, .. }
            | TransportEvent::BarEnded { at, .. }
            | TransportEvent::TempoSample { at, .. }
            | TransportEvent::TempoJump { at, .. }
            | TransportEvent::Anomaly { at, .. } => Some(at),
        }
    }
}

/// Settings of a [`Transport`].
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Bars to pulses.
    pub meter: Meter,
    /// Tempo assumed before the clock tells, ns per pulse.
    pub initial_ns_per_pulse: f64,
    /// Clock loss after this many expected pulse periods of silence while running.
    pub loss_intervals: f64,
    /// ...but never sooner than this, ns.
    pub loss_min_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    bar: u64,
    first_pulse: u64,
    last_pulse: u64,
}

/// The clock-following state machine. See the module docs.
#[derive(Clone, Debug)]
pub struct Transport {
    cfg: TransportConfig,
    dll: TempoDll,
    state: PlayState,
    /// Song position the next clock carries.
    next_pulse: u64,
    /// Run position of the last clock (valid when `run_clocks > 0`).
    played: u64,
    /// Clocks in the current run.
    run_clocks: u64,
    last_clock_at: Option<Nanos>,
    slot: Option<Slot>,
    relocated: bool,
    epoch: u32,
    /// The current epoch's carry (see [`Carry`]).
    carry: Option<Carry>,
    published: Timeline,
    since_publish: u32,
    clocks_seen: u64,
    free_running_reported: bool,
}

impl Transport {
    /// A stopped transport at pulse 0.
    pub fn new(cfg: TransportConfig) -> Self {
        let dll = TempoDll::new(cfg.initial_ns_per_pulse);
        let mut published = Timeline::stopped();
        published.ns_per_pulse = cfg.initial_ns_per_pulse;
        Self {
            cfg,
            dll,
            state: PlayState::Stopped,
            next_pulse: 0,
            played: 0,
            run_clocks: 0,
            last_clock_at: None,
            slot: None,
            relocated: false,
            epoch: 0,
            carry: None,
            published,
            since_publish: 0,
            clocks_seen: 0,
            free_running_reported: false,
        }
    }

    /// The play state.
    pub fn state(&self) -> PlayState {
        self.state
    }

    /// Song position of the next clock.
    pub fn position(&self) -> u64 {
        self.next_pulse
    }

    /// The meter in use.
    pub fn meter(&self) -> &Meter {
        &self.cfg.meter
    }

    /// The tempo loop (read-only).
    pub fn tempo(&self) -> &TempoDll {
        &self.dll
    }

    /// The current epoch (bumped on every discontinuity).
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// The timeline as of now (published or not).
    pub fn timeline(&self) -> Timeline {
        let running = self.state == PlayState::Running;
        let anchor_ns = if self.dll.is_locked() {
            self.dll.next_pulse_ns().max(0.0).round() as Nanos
        } else {
            self.last_clock_at.unwrap_or(self.published.anchor_ns)
        };
        Timeline {
            epoch: self.epoch,
            running,
            anchor_pulse: self.next_pulse as f64,
            anchor_ns,
            ns_per_pulse: self.dll.ns_per_pulse(),
            carry: self.carry,
        }
    }

    /// Starts a new epoch; `carry` says what it inherits from the old one.
    fn bump_epoch(&mut self, carry: Option<Carry>) {
        self.epoch = self.epoch.wrapping_add(1);
        self.carry = carry;
    }

    /// The run position of an instant, for placing a human note: the last clock's run position
    /// plus the time since it in filtered pulse periods, clamped below the next pulse. `None`
    /// when not playing; 0 while armed (a note just before the run's first clock belongs to it).
    pub fn played_position(&self, t: Nanos) -> Option<f64> {
        match self.state {
            PlayState::Armed => Some(0.0),
            PlayState::Running => match self.last_clock_at {
                Some(last) if self.run_clocks > 0 => {
                    let frac = t.saturating_sub(last) as f64 / self.dll.ns_per_pulse();
                    Some(self.played as f64 + frac.min(1.0 - BELOW_NEXT_PULSE))
                }
                _ => Some(0.0),
            },
            PlayState::Stopped | PlayState::Lost => None,
        }
    }

    /// Handles a real-time or transport message; other messages are ignored.
    pub fn on_message(
        &mut self,
        msg: &MidiMessage,
        at: Nanos,
        out: &mut impl FnMut(TransportEvent),
    ) {
        match *msg {
            MidiMessage::Clock => self.on_clock(at, out),
            MidiMessage::Start => self.on_start(at, out),
            MidiMessage::Continue => self.on_continue(at, out),
            MidiMessage::Stop => self.on_stop(at, out),
            MidiMessage::SongPosition(s) => self.on_song_position(s, at, out),
            _ => {}
        }
    }

    /// Periodic check for clock loss; call every few ms with the current time.
    pub fn on_tick(&mut self, now: Nanos, out: &mut impl FnMut(TransportEvent)) {
        if self.state != PlayState::Running || self.run_clocks == 0 {
            return;
        }
        let Some(last) = self.last_clock_at else {
            return;
        };
        let silent = now.saturating_sub(last);
        let limit =
            (self.cfg.loss_intervals * self.dll.ns_per_pulse()).max(self.cfg.loss_min_ns as f64);
        if silent as f64 > limit {
            self.state = PlayState::Lost;
            self.slot = None;
            self.relocated = false;
            self.dll.unlock();
            self.bump_epoch(None);
            out(TransportEvent::ClockLost {
                at: now,
                silent_ns: silent,
            });
            self.publish(out);
        }
    }

    fn begin_run(&mut self) {
        self.run_clocks = 0;
        self.played = 0;
        self.slot = None;
        self.relocated = false;
    }

    fn on_start(&mut self, at: Nanos, out: &mut impl FnMut(TransportEvent)) {
        let restart = matches!(self.state, PlayState::Running | PlayState::Armed);
        if restart {
            out(TransportEvent::Anomaly {
                at,
                kind: Anomaly::DoubleStart,
            });
        }
        self.state = PlayState::Armed;
        self.next_pulse = 0;
        self.begin_run();
        self.bump_epoch(None);
        out(TransportEvent::Started { at, restart });
        self.publish(out);
    }

    fn on_continue(&mut self, at: Nanos, out: &mut impl FnMut(TransportEvent)) {
        if matches!(self.state, PlayState::Running | PlayState::Armed) {
            out(TransportEvent::Anomaly {
                at,
                kind: Anomaly::ContinueWhileRunning,
            });
            return;
        }
        self.state = PlayState::Armed;
        self.begin_run();
        self.bump_epoch(None);
        out(TransportEvent::Continued {
            at,
            pulse: self.next_pulse,
        });
        self.publish(out);
    }

    fn on_stop(&mut self, at: Nanos, out: &mut impl FnMut(TransportEvent)) {
        if self.state == PlayState::Stopped {
            out(TransportEvent::Anomaly {
                at,
                kind: Anomaly::StopWhileStopped,
            });
            return;
        }
        self.state = PlayState::Stopped;
        self.slot = None;
        self.relocated = false;
        self.free_running_reported = false;
        self.bump_epoch(None);
        out(TransportEvent::Stopped {
            at,
            pulse: self.next_pulse,
        });
        self.publish(out);
    }

    fn on_song_position(
        &mut self,
        sixteenths: u16,
        at: Nanos,
        out: &mut impl FnMut(TransportEvent),
    ) {
        let to = u64::from(sixteenths) * PULSES_PER_SIXTEENTH;
        match self.state {
            PlayState::Running if to == self.next_pulse && !self.relocated => {
                out(TransportEvent::SppInPlace { at, pulse: to });
            }
            PlayState::Running => {
                let from = self.next_pulse;
                self.next_pulse = to;
                self.relocated = true;
                let meter = &self.cfg.meter;
                let carry = match (meter.bar_at(from), meter.bar_at(to)) {
                    ((_, 0), (to_bar, 0)) => Some(Carry {
                        from_epoch: self.epoch,
                        from_pulse: from,
                        to_pulse: to,
                        to_bar,
                        to_len_pulses: meter.pulses_per_bar(to_bar),
                    }),
                    // Off a bar line the old window does not map onto a new one.
                    _ => None,
                };
                self.bump_epoch(carry);
                out(TransportEvent::Relocated { at, from, to });
                self.publish(out);
            }
            PlayState::Armed | PlayState::Stopped | PlayState::Lost => {
                self.next_pulse = to;
                out(TransportEvent::PositionSet { at, pulse: to });
                self.publish(out);
            }
        }
    }

    fn on_clock(&mut self, at: Nanos, out: &mut impl FnMut(TransportEvent)) {
        let update = self.dll.update(at);
        self.clocks_seen += 1;
        if matches!(update, TempoUpdate::Jump | TempoUpdate::Gap) {
            out(TransportEvent::TempoJump {
                at,
                bpm: bpm_of(self.dll.ns_per_pulse()),
                gap: update == TempoUpdate::Gap,
            });
        }
        if self.clocks_seen.is_multiple_of(u64::from(crate::PPQN)) {
            out(TransportEvent::TempoSample {
                at,
                bpm: bpm_of(self.dll.ns_per_pulse()),
                jitter_ns: self.dll.jitter_ns(),
            });
        }
        match self.state {
            PlayState::Stopped => {
                if !self.free_running_reported {
                    self.free_running_reported = true;
                    out(TransportEvent::Anomaly {
                        at,
                        kind: Anomaly::ClockWithoutStart,
                    });
                }
                self.last_clock_at = Some(at);
                self.maybe_publish(out);
                return;
            }
            PlayState::Lost => {
                self.state = PlayState::Running;
                self.begin_run();
                self.bump_epoch(None);
                out(TransportEvent::ClockResumed {
                    at,
                    pulse: self.next_pulse,
                });
            }
            PlayState::Armed => self.state = PlayState::Running,
            PlayState::Running => {}
        }
        let pulse = self.next_pulse;
        let first_of_run = self.run_clocks == 0;
        if !first_of_run {
            self.played += 1;
        }
        self.run_clocks += 1;
        self.last_clock_at = Some(at);
        self.next_pulse = pulse + 1;
        if first_of_run {
            self.publish(out);
        } else {
            self.maybe_publish(out);
        }
        let (bar, offset) = self.cfg.meter.bar_at(pulse);
        let begins = self.relocated || offset == 0 || self.slot.is_none();
        self.relocated = false;
        if begins {
            if let Some(s) = self.slot.take() {
                let start = self.cfg.meter.bar_start(s.bar);
                let end = start + u64::from(self.cfg.meter.pulses_per_bar(s.bar));
                out(TransportEvent::BarEnded {
                    bar: s.bar,
                    played_end: self.played,
                    at,
                    complete: s.first_pulse == start && s.last_pulse + 1 == end,
                    next_bar: bar,
                });
            }
            self.slot = Some(Slot {
                bar,
                first_pulse: pulse,
                last_pulse: pulse,
            });
            out(TransportEvent::BarBegan {
                bar,
                pulse,
                played: self.played,
                at,
                partial: offset != 0,
            });
        } else if let Some(s) = self.slot.as_mut() {
            s.last_pulse = pulse;
        }
    }

    fn publish(&mut self, out: &mut impl FnMut(TransportEvent)) {
        self.published = self.timeline();
        self.since_publish = 0;
        out(TransportEvent::Timeline(self.published));
    }

    fn maybe_publish(&mut self, out: &mut impl FnMut(TransportEvent)) {
        self.since_publish += 1;
        let now = self.timeline();
        let p = &self.published;
        let period_moved =
            (now.ns_per_pulse / p.ns_per_pulse - 1.0).abs() > REPUBLISH_PERIOD_FRACTION;
        let phase_moved =
            (p.time_of(now.anchor_pulse) as f64 - now.anchor_ns as f64).abs() > REPUBLISH_PHASE_NS;
        if self.since_publish >= REPUBLISH_PULSES
            || period_moved
            || phase_moved
            || now.running != p.running
        {
            self.publish(out);
        }
    }
}

fn bpm_of(ns_per_pulse: f64) -> f64 {
    60e9 / (ns_per_pulse * f64::from(crate::PPQN))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::meter::TimeSignature;

    const P120: f64 = 20_833_333.333;

    fn transport() -> Transport {
        Transport::new(TransportConfig {
            meter: Meter::constant(TimeSignature::COMMON),
            initial_ns_per_pulse: P120,
            loss_intervals: 4.0,
            loss_min_ns: 100_000_000,
        })
    }

    fn feed(t: &mut Transport, msg: MidiMessage, at: Nanos) -> Vec<TransportEvent> {
        let mut v = Vec::new();
        t.on_message(&msg, at, &mut |e| v.push(e));
        v
    }

    #[test]
    fn first_clock_after_start_is_pulse_zero_and_begins_bar_zero() {
        let mut t = transport();
        feed(&mut t, MidiMessage::Start, 0);
        let ev = feed(&mut t, MidiMessage::Clock, 1_000_000);
        assert!(ev.contains(&TransportEvent::BarBegan {
            bar: 0,
            pulse: 0,
            played: 0,
            at: 1_000_000,
            partial: false
        }));
        assert_eq!(t.position(), 1);
    }

    #[test]
    fn song_position_in_place_does_not_bump_the_epoch() {
        let mut t = transport();
        feed(&mut t, MidiMessage::Start, 0);
        for i in 0..10 {
            feed(&mut t, MidiMessage::Clock, i * 20_833_333);
        }
        let e = t.epoch();
        // 10 pulses is not a sixteenth boundary; 12 is (2 sixteenths).
        feed(&mut t, MidiMessage::Clock, 10 * 20_833_333);
        feed(&mut t, MidiMessage::Clock, 11 * 20_833_333);
        let ev = feed(&mut t, MidiMessage::SongPosition(2), 11 * 20_833_333 + 1000);
        assert_eq!(
            ev,
            vec![TransportEvent::SppInPlace {
                at: 11 * 20_833_333 + 1000,
                pulse: 12
            }]
        );
        assert_eq!(t.epoch(), e);
    }

    #[test]
    fn notes_are_placed_between_pulses_and_clamped_below_the_next() {
        let mut t = transport();
        assert_eq!(t.played_position(0), None);
        feed(&mut t, MidiMessage::Start, 0);
        assert_eq!(t.played_position(5), Some(0.0));
        feed(&mut t, MidiMessage::Clock, 1_000_000_000);
        feed(&mut t, MidiMessage::Clock, 1_020_833_333);
        let half = t.played_position(1_020_833_333 + 10_416_667).unwrap();
        assert!((half - 1.5).abs() < 0.01, "{half}");
        let late = t.played_position(1_020_833_333 + 90_000_000).unwrap();
        assert!(late < 2.0 && late > 1.99, "{late}");
    }
}
