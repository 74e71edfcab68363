//! The internal clock: when no master is present (headless jams, `clock.source = "internal"`), we
//! play the master ourselves. [`Script`] lays out Start, every 0xF8 and Stop at a fixed tempo,
//! merged with a timed human part; the headless jam feeds it to the engine in virtual time, and
//! [`play`] feeds it on the wall clock.

use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, TrySendError};

use crate::midi::smf::TimedMessage;
use crate::midi::source::{PortRole, RawMidi};
use crate::{clock, Nanos, PPQN};

/// A complete input performance: transport, clock and human messages, sorted by time. The
/// transport is ours ([`PortRole::Internal`]), the human part arrives as on the note port.
#[derive(Clone, Debug)]
pub struct Script {
    /// Messages in time order (clock before notes at equal times, so a note at a bar's first
    /// instant lands in that bar).
    pub messages: Vec<RawMidi>,
    /// Instant of pulse 0 (the first clock after Start).
    pub origin: Nanos,
    /// Pulse period in ns.
    pub ns_per_pulse: f64,
    /// Total pulses sent.
    pub pulses: u64,
}

impl Script {
    /// Lays out Start at `origin - 1 ms`, `pulses` clocks from `origin` at `bpm`, the human part
    /// (`at_ms` from pulse 0; messages at or after the last pulse are dropped), and Stop half a
    /// pulse after the last clock.
    pub fn new(bpm: f64, origin: Nanos, pulses: u64, human: &[TimedMessage]) -> Self {
        let ns_per_pulse = 60e9 / (bpm * PPQN as f64);
        let at = |p: u64| origin + (p as f64 * ns_per_pulse).round() as Nanos;
        let end = at(pulses.saturating_sub(1));
        // Keys sort clock/transport (0) before human (1) at equal instants.
        let mut keyed: Vec<(Nanos, u8, RawMidi)> =
            Vec::with_capacity(pulses as usize + human.len() + 2);
        keyed.push((
            origin.saturating_sub(1_000_000),
            0,
            RawMidi::new(
                origin.saturating_sub(1_000_000),
                PortRole::Internal,
                &[0xFA],
            ),
        ));
        for p in 0..pulses {
            let t = at(p);
            keyed.push((t, 0, RawMidi::new(t, PortRole::Internal, &[0xF8])));
        }
        for m in human {
            if !m.at_ms.is_finite() || m.at_ms < 0.0 {
                continue;
            }
            let t = origin + (m.at_ms * 1e6).round() as Nanos;
            if t >= end {
                continue;
            }
            keyed.push((
                t,
                1,
                RawMidi::new(t, PortRole::Notes, &m.bytes[..m.len as usize]),
            ));
        }
        // Half a pulse after the last clock: the bar in progress is over for the listener, and a
        // window that would begin on the next pulse never starts (a Stop racing a window start
        // would otherwise sound its first notes for a few microseconds).
        let stop = end + (ns_per_pulse / 2.0).round() as Nanos;
        keyed.push((stop, 0, RawMidi::new(stop, PortRole::Internal, &[0xFC])));
        keyed.sort_by_key(|k| (k.0, k.1));
        Self {
            messages: keyed.into_iter().map(|k| k.2).collect(),
            origin,
            ns_per_pulse,
            pulses,
        }
    }

    /// Instant of the last message (Stop).
    pub fn end(&self) -> Nanos {
        self.messages.last().map_or(self.origin, |m| m.at)
    }
}

/// Plays `script` on the wall clock: waits (spin_sleep, ~40 µs p99 oversleep measured on 2 busy
/// cores) until each message's instant, stamps it with that instant in the live timebase, shows it to
/// `on_send` (to forward the clock to other devices, or record the human part) and hands it to
/// the engine with `try_send`. Returns the shift from script time to real time and the number of
/// messages the engine's full queue refused. Runs on the calling thread until done or `stop`.
pub fn play(
    script: &Script,
    input: &Sender<RawMidi>,
    on_send: &mut dyn FnMut(&RawMidi),
    stop: &AtomicBool,
) -> (Nanos, u64) {
    let sleeper = spin_sleep::SpinSleeper::default();
    let start = clock::timebase::now();
    let shift = start.saturating_sub(script.messages.first().map_or(0, |m| m.at));
    let mut refused = 0;
    for m in &script.messages {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let due = m.at + shift;
        sleeper.sleep_until(clock::timebase::to_instant(due));
        // Stamped with the instant it was due, not the instant this thread woke: we are the
        // master, so our schedule is the truth, and a preempted wake-up (several ms on a loaded
        // 2-core machine) must not read as clock jitter downstream.
        let mut msg = *m;
        msg.at = due;
        on_send(&msg);
        match input.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => refused += 1,
            Err(TrySendError::Disconnected(_)) => break,
        }
    }
    (shift, refused)
}

/// Runs an open-ended clock at `bpm` on the wall clock until `stop` is set: Start, then a 0xF8
/// every pulse period, then Stop. Each message goes to the engine (`try_send`; refusals counted
/// and returned) and to `out`, so that other devices can follow our clock. Runs on the calling
/// thread (the daemon gives it its own, `aria-clock`).
pub fn run_live(
    bpm: f64,
    input: &Sender<RawMidi>,
    out: &mut dyn crate::midi::sink::MidiOut,
    stop: &AtomicBool,
) -> u64 {
    let sleeper = spin_sleep::SpinSleeper::default();
    let ns_per_pulse = 60e9 / (bpm * PPQN as f64);
    let mut refused = 0;
    let mut emit = |at: Nanos, byte: u8| {
        out.send(at, &[byte]);
        if let Err(TrySendError::Full(_)) =
            input.try_send(RawMidi::new(at, PortRole::Internal, &[byte]))
        {
            refused += 1;
        }
    };
    // The first clock follows Start by 1 ms, as in the headless script.
    let origin = clock::timebase::now() + 1_000_000;
    emit(origin - 1_000_000, 0xFA);
    let mut pulse: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = origin + (pulse as f64 * ns_per_pulse).round() as Nanos;
        sleeper.sleep_until(clock::timebase::to_instant(due));
        emit(due, 0xF8);
        pulse += 1;
    }
    emit(clock::timebase::now(), 0xFC);
    refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_starts_clock_at_origin_and_keeps_clock_before_simultaneous_notes() {
        let human = [TimedMessage {
            at_ms: 0.0,
            bytes: [0x90, 60, 100],
            len: 3,
        }];
        let s = Script::new(120.0, 1_000_000_000, 96 * 2, &human);
        assert_eq!(s.messages[0].bytes[0], 0xFA);
        assert!(s.messages[0].at < s.origin);
        assert_eq!((s.messages[1].bytes[0], s.messages[1].at), (0xF8, s.origin));
        assert_eq!(s.messages[2].bytes[0], 0x90);
        assert_eq!(
            s.messages.iter().filter(|m| m.bytes[0] == 0xF8).count(),
            192
        );
        assert_eq!(s.messages.last().unwrap().bytes[0], 0xFC);
    }

    #[test]
    fn human_messages_after_the_last_pulse_are_left_out() {
        let human = [TimedMessage {
            at_ms: 10_000.0,
            bytes: [0x90, 60, 100],
            len: 3,
        }];
        let s = Script::new(120.0, 0, 96, &human);
        assert!(s.messages.iter().all(|m| m.bytes[0] != 0x90));
    }
}
