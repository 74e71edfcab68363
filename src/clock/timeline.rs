//! The filtered clock timeline: a linear map between pulses and time, valid from an anchor.
//!
//! The transport publishes a new [`Timeline`] whenever the tempo estimate moves or the position
//! jumps; the scheduler converts pulses to send instants with the newest one it holds.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::Nanos;

/// A linear pulse/time map: pulse `p` happens at `anchor_ns + (p - anchor_pulse) * ns_per_pulse`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeline {
    /// Bumped on every discontinuity (Start, Stop, Continue, Song Position jump, clock loss);
    /// anything scheduled under an older epoch is void.
    pub epoch: u32,
    /// Whether the transport is playing. A stopped timeline schedules nothing.
    pub running: bool,
    /// Pulse position at the anchor (fractional: the filter may place it between clock ticks).
    pub anchor_pulse: f64,
    /// Time of the anchor.
    pub anchor_ns: Nanos,
    /// Filtered pulse period (20.83 ms at 120 BPM).
    pub ns_per_pulse: f64,
    /// Set for the whole epoch that a Song Position jump while running began (a loop wrap, or a
    /// jump to a bar line): the answer that was due where the jump left plays where it landed.
    pub carry: Option<Carry>,
}

/// The window of an old epoch that a jump carries into the new one: the bar that was due at
/// `from_pulse` (epoch `from_epoch`) plays at `to_pulse`, bar `to_bar`. Without it a 4-bar
/// loop would lose one answer in four: that window's job was built a bar before the wrap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carry {
    /// The epoch the jump ended.
    pub from_epoch: u32,
    /// The song position the next clock would have carried (a bar start).
    pub from_pulse: u64,
    /// Where the jump landed (a bar start).
    pub to_pulse: u64,
    /// The bar that begins at `to_pulse`.
    pub to_bar: u64,
    /// That bar's length in pulses (it may differ from the old window's after a meter change).
    pub to_len_pulses: u32,
}

impl Carry {
    /// Whether a window of `epoch` starting at `start_pulse` is the one carried.
    pub fn carries(&self, epoch: u32, start_pulse: u64) -> bool {
        epoch == self.from_epoch && start_pulse == self.from_pulse
    }
}

/// The current epoch's carry, shared lock-free between the input thread (writer) and the
/// generation worker (reader), so that a job for the carried window still waiting in the queue
/// at a loop wrap is run, not skipped as stale. One word: the old epoch and the pulse (up to
/// 2^32 - 2, 50 hours at 120 BPM; beyond that nothing is carried past the queue).
#[derive(Debug)]
pub struct SharedCarry(AtomicU64);

impl Default for SharedCarry {
    fn default() -> Self {
        Self(AtomicU64::new(Self::NONE))
    }
}

impl SharedCarry {
    const NONE: u64 = u64::MAX;

    /// Publishes the carry of the timeline about to become current (before its epoch).
    pub fn store(&self, carry: Option<Carry>) {
        let word = match carry {
            Some(c) if c.from_pulse < u64::from(u32::MAX) => {
                (u64::from(c.from_epoch) << 32) | c.from_pulse
            }
            _ => Self::NONE,
        };
        self.0.store(word, Ordering::Release);
    }

    /// Whether a job of `epoch` whose window starts at `start_pulse` is carried.
    pub fn carries(&self, epoch: u32, start_pulse: u64) -> bool {
        let word = self.0.load(Ordering::Acquire);
        word != Self::NONE && word >> 32 == u64::from(epoch) && word & 0xFFFF_FFFF == start_pulse
    }
}

impl Timeline {
    /// A stopped timeline at pulse 0, 120 BPM.
    pub const fn stopped() -> Self {
        Self {
            epoch: 0,
            running: false,
            anchor_pulse: 0.0,
            anchor_ns: 0,
            ns_per_pulse: 20_833_333.333,
            carry: None,
        }
    }

    /// The instant pulse `pulse` happens (saturating at 0 for pulses before the origin).
    pub fn time_of(&self, pulse: f64) -> Nanos {
        let t = self.anchor_ns as f64 + (pulse - self.anchor_pulse) * self.ns_per_pulse;
        if t <= 0.0 {
            0
        } else {
            t.round() as Nanos
        }
    }

    /// The (fractional) pulse position at instant `t`.
    pub fn pulse_at(&self, t: Nanos) -> f64 {
        self.anchor_pulse + (t as f64 - self.anchor_ns as f64) / self.ns_per_pulse
    }

    /// Milliseconds per pulse at this tempo.
    pub fn ms_per_pulse(&self) -> f64 {
        self.ns_per_pulse / 1e6
    }

    /// Tempo in quarter notes per minute.
    pub fn bpm(&self) -> f64 {
        60e9 / (self.ns_per_pulse * crate::PPQN as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_and_pulse_are_inverse() {
        let tl = Timeline {
            epoch: 1,
            running: true,
            anchor_pulse: 96.0,
            anchor_ns: 2_000_000_000,
            ns_per_pulse: 20_833_333.333,
            carry: None,
        };
        let t = tl.time_of(120.5);
        assert!((tl.pulse_at(t) - 120.5).abs() < 1e-6);
        assert!((tl.bpm() - 120.0).abs() < 1e-6);
    }
}
