//! Meter: how many pulses each bar has. MIDI clock never carries meter, so it comes from config,
//! optionally changing at given bars.

use crate::PPQN;

/// A time signature such as 4/4 or 7/8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSignature {
    /// Beats per bar.
    pub num: u32,
    /// Beat unit (1, 2, 4, 8, 16 or 32).
    pub den: u32,
}

/// A string that is not a time signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("time signature {0:?} is not \"N/D\" with N in 1..=32 and D in 1, 2, 4, 8, 16, 32")]
pub struct BadTimeSignature(pub String);

impl TimeSignature {
    /// 4/4.
    pub const COMMON: Self = Self { num: 4, den: 4 };

    /// Parses "N/D".
    pub fn parse(s: &str) -> Result<Self, BadTimeSignature> {
        let bad = || BadTimeSignature(s.to_owned());
        let (n, d) = s.trim().split_once('/').ok_or_else(bad)?;
        let num: u32 = n.trim().parse().map_err(|_| bad())?;
        let den: u32 = d.trim().parse().map_err(|_| bad())?;
        if !(1..=32).contains(&num) || ![1, 2, 4, 8, 16, 32].contains(&den) {
            return Err(bad());
        }
        // 32nd-note beats: 96 * num / 32 must be whole pulses, true for all num since 96/32 = 3.
        Ok(Self { num, den })
    }

    /// Pulses per bar at 24 PPQN: 4/4 = 96, 3/4 = 72, 6/8 = 72, 7/8 = 84.
    pub fn pulses_per_bar(self) -> u32 {
        PPQN * 4 * self.num / self.den
    }
}

impl std::fmt::Display for TimeSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// Bars to pulses: a meter at bar 0 and optional changes at later bars.
#[derive(Clone, Debug, PartialEq)]
pub struct Meter {
    /// (first bar, first pulse of that bar, signature), sorted by bar; the first entry is bar 0.
    segments: Vec<(u64, u64, TimeSignature)>,
}

impl Meter {
    /// One meter for the whole session.
    pub fn constant(sig: TimeSignature) -> Self {
        Self {
            segments: vec![(0, 0, sig)],
        }
    }

    /// A meter starting with `first` and changing at the given bars (strictly increasing, > 0;
    /// a change at bar 0 replaces `first`).
    pub fn with_changes(first: TimeSignature, changes: &[(u64, TimeSignature)]) -> Self {
        let mut m = Self::constant(first);
        for &(bar, sig) in changes {
            let last = *m.segments.last().expect("meter has a first segment");
            if bar <= last.0 {
                if bar == 0 {
                    m.segments[0].2 = sig;
                }
                continue;
            }
            let pulse = last.1 + (bar - last.0) * last.2.pulses_per_bar() as u64;
            m.segments.push((bar, pulse, sig));
        }
        m
    }

    fn segment_for_bar(&self, bar: u64) -> (u64, u64, TimeSignature) {
        let i = self.segments.partition_point(|s| s.0 <= bar);
        self.segments[i.saturating_sub(1)]
    }

    /// The time signature of `bar`.
    pub fn signature(&self, bar: u64) -> TimeSignature {
        self.segment_for_bar(bar).2
    }

    /// Pulses in `bar`.
    pub fn pulses_per_bar(&self, bar: u64) -> u32 {
        self.signature(bar).pulses_per_bar()
    }

    /// First pulse of `bar`.
    pub fn bar_start(&self, bar: u64) -> u64 {
        let (b0, p0, sig) = self.segment_for_bar(bar);
        p0 + (bar - b0) * sig.pulses_per_bar() as u64
    }

    /// The bar that contains `pulse`, and the pulse offset inside it.
    pub fn bar_at(&self, pulse: u64) -> (u64, u32) {
        let i = self.segments.partition_point(|s| s.1 <= pulse);
        let (b0, p0, sig) = self.segments[i.saturating_sub(1)];
        let ppb = sig.pulses_per_bar() as u64;
        let rel = pulse - p0;
        (b0 + rel / ppb, (rel % ppb) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TimeSignature {
        TimeSignature::parse(s).unwrap()
    }

    #[test]
    fn pulses_per_bar_follow_the_signature() {
        assert_eq!(ts("4/4").pulses_per_bar(), 96);
        assert_eq!(ts("3/4").pulses_per_bar(), 72);
        assert_eq!(ts("6/8").pulses_per_bar(), 72);
        assert_eq!(ts("7/8").pulses_per_bar(), 84);
    }

    #[test]
    fn malformed_signatures_are_rejected() {
        for s in ["", "4", "4/3", "0/4", "33/4", "a/4", "4/4/4"] {
            assert!(TimeSignature::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn meter_changes_move_bar_starts() {
        // 4/4 for bars 0-1, 3/4 for bars 2-3, 7/8 from bar 4.
        let m = Meter::with_changes(ts("4/4"), &[(2, ts("3/4")), (4, ts("7/8"))]);
        assert_eq!(m.bar_start(0), 0);
        assert_eq!(m.bar_start(2), 192);
        assert_eq!(m.bar_start(3), 264);
        assert_eq!(m.bar_start(4), 336);
        assert_eq!(m.bar_start(5), 420);
        assert_eq!(m.bar_at(191), (1, 95));
        assert_eq!(m.bar_at(192), (2, 0));
        assert_eq!(m.bar_at(335), (3, 71));
        assert_eq!(m.bar_at(421), (5, 1));
        assert_eq!(m.pulses_per_bar(9), 84);
    }
}
