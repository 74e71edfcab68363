//! The filtered clock timeline: a linear map between pulses and time, valid from an anchor.
//!
//! The transport publishes a new [`Timeline`] whenever the tempo estimate moves or the position
//! jumps; the scheduler converts pulses to send instants with the newest one it holds.

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
        };
        let t = tl.time_of(120.5);
        assert!((tl.pulse_at(t) - 120.5).abs() < 1e-6);
        assert!((tl.bpm() - 120.0).abs() < 1e-6);
    }
}
