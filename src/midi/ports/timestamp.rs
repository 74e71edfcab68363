//! Converting driver timestamps into the process timebase ([`crate::clock::timebase`]).
//!
//! midir stamps each message in microseconds from an origin of its own, different per backend
//! and per connection: ALSA sequencer queue time, JACK `jack_get_time()` taken in the process
//! callback (so every event of one period shares a stamp: 1.33 ms at 64 frames / 48 kHz),
//! CoreMIDI host time, WinMM milliseconds since the port opened. The engine needs
//! [`crate::clock::timebase::now`] nanoseconds.
//!
//! Why not stamp with `clock::timebase::now()` in the callback: the callback runs after the OS wakes a
//! thread, which adds 0.05 to several ms of scheduling latency that varies message to message;
//! that jitter would land in the tempo estimate. The driver's stamp is taken closer to the wire,
//! so we keep its intervals and only estimate the constant offset between the two clocks.
//!
//! How: each message gives one sample `now - driver`, which is the true offset plus a delivery
//! delay that is never negative. The smallest sample over a sliding window is the message that
//! was delivered fastest, so it is the best estimate of the offset; later slow deliveries do not
//! move it. The window (two buckets of 2 s of driver time) lets the estimate follow slow drift
//! between the two clocks (WinMM's ms counter vs QPC drifts by up to ~100 ppm, 0.2 ms per 2 s)
//! and recover within 4 s from a clock that jumps.
//!
//! Pure and allocation-free: runs inside the driver callback (a real-time thread under JACK).

use crate::Nanos;

/// Default bucket length in driver time: 2 s (48 clock pulses at 60 BPM, 192 at 240 BPM).
pub const DEFAULT_BUCKET_NS: u64 = 2_000_000_000;

/// Sliding-minimum estimate of `clock::timebase::now() - driver_time`.
#[derive(Clone, Debug)]
pub struct OffsetEstimator {
    bucket_ns: u64,
    /// Driver time where the current bucket began; `None` before the first message.
    bucket_start: Option<u64>,
    /// Smallest sample in the current bucket.
    cur_min: i128,
    /// Smallest sample in the previous bucket.
    prev_min: i128,
}

impl Default for OffsetEstimator {
    fn default() -> Self {
        Self::new(DEFAULT_BUCKET_NS)
    }
}

impl OffsetEstimator {
    /// An estimator whose window covers between one and two buckets of `bucket_ns` driver time.
    pub fn new(bucket_ns: u64) -> Self {
        Self {
            bucket_ns: bucket_ns.max(1),
            bucket_start: None,
            cur_min: 0,
            prev_min: 0,
        }
    }

    /// Records one message stamped `driver_ns` by the driver and seen at `now`, and returns its
    /// time in the process timebase (never later than `now`).
    pub fn observe(&mut self, driver_ns: u64, now: Nanos) -> Nanos {
        let sample = now as i128 - driver_ns as i128;
        match self.bucket_start {
            // First message, or the driver clock went backwards (a new origin): start over.
            Some(start) if driver_ns >= start => {
                if driver_ns - start >= self.bucket_ns {
                    self.prev_min = self.cur_min;
                    self.cur_min = sample;
                    self.bucket_start = Some(driver_ns);
                } else {
                    self.cur_min = self.cur_min.min(sample);
                }
            }
            _ => {
                self.bucket_start = Some(driver_ns);
                self.cur_min = sample;
                self.prev_min = sample;
            }
        }
        let t = driver_ns as i128 + self.offset_ns().unwrap_or(sample as i64) as i128;
        t.clamp(0, now as i128) as Nanos
    }

    /// The current offset estimate (`clock - driver`, ns), once a message has been seen.
    pub fn offset_ns(&self) -> Option<i64> {
        self.bucket_start?;
        let m = self.cur_min.min(self.prev_min);
        Some(m.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
    }
}

/// midir's microseconds as nanoseconds (saturating: a u64 of µs exceeds u64 ns after 213 days).
pub fn micros_to_nanos(us: u64) -> u64 {
    us.saturating_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn delivery_jitter_does_not_reach_timestamps() {
        // Driver stamps every 20 ms; the clock is 5 s ahead; deliveries are late by 0..3 ms.
        let mut e = OffsetEstimator::default();
        let offset = 5_000 * MS;
        let delays = [0, 3 * MS, MS, 2 * MS / 3, 3 * MS, 0, 2 * MS];
        let mut out = Vec::new();
        for (i, d) in delays.iter().enumerate() {
            let drv = 1_000 * MS + i as u64 * 20 * MS;
            out.push(e.observe(drv, drv + offset + d));
        }
        for (i, t) in out.iter().enumerate() {
            assert_eq!(*t, 1_000 * MS + i as u64 * 20 * MS + offset, "message {i}");
        }
    }

    #[test]
    fn first_message_is_stamped_at_its_arrival() {
        let mut e = OffsetEstimator::default();
        assert_eq!(e.offset_ns(), None);
        assert_eq!(e.observe(7 * MS, 100 * MS), 100 * MS);
        assert_eq!(e.offset_ns(), Some(93 * MS as i64));
    }

    #[test]
    fn a_slow_first_delivery_is_corrected_by_a_faster_one() {
        let mut e = OffsetEstimator::default();
        assert_eq!(e.observe(0, 10 * MS + 4 * MS), 14 * MS);
        assert_eq!(e.observe(20 * MS, 30 * MS), 30 * MS);
        assert_eq!(e.offset_ns(), Some(10 * MS as i64));
    }

    #[test]
    fn driver_clock_ahead_of_process_clock_gives_negative_offset() {
        // ALSA queue time can exceed our process time (queue started before we did).
        let mut e = OffsetEstimator::default();
        assert_eq!(e.observe(900 * MS, 50 * MS), 50 * MS);
        assert_eq!(e.observe(910 * MS, 61 * MS), 60 * MS);
        assert_eq!(e.offset_ns(), Some(-850 * MS as i64));
    }

    #[test]
    fn estimate_follows_a_clock_step_within_two_buckets() {
        let mut e = OffsetEstimator::new(100 * MS);
        for i in 0..10 {
            e.observe(i * 10 * MS, i * 10 * MS + MS);
        }
        assert_eq!(e.offset_ns(), Some(MS as i64));
        // The process clock now runs 7 ms further ahead (e.g. a driver clock correction).
        let mut last = 0;
        for i in 10..40 {
            last = e.observe(i * 10 * MS, i * 10 * MS + 8 * MS);
        }
        assert_eq!(e.offset_ns(), Some(8 * MS as i64));
        assert_eq!(last, 39 * 10 * MS + 8 * MS);
    }

    #[test]
    fn driver_clock_going_backwards_restarts_the_estimate() {
        let mut e = OffsetEstimator::default();
        e.observe(500 * MS, 600 * MS);
        assert_eq!(e.observe(3 * MS, 700 * MS), 700 * MS);
        assert_eq!(e.offset_ns(), Some(697 * MS as i64));
    }

    #[test]
    fn timestamps_never_exceed_arrival_time() {
        let mut e = OffsetEstimator::default();
        for i in 0..100u64 {
            let drv = i * 3 * MS;
            let now = drv + 40 * MS + (i * 7919 % 5) * MS;
            assert!(e.observe(drv, now) <= now);
        }
    }

    #[test]
    fn micros_convert_and_saturate() {
        assert_eq!(micros_to_nanos(1_500), 1_500_000);
        assert_eq!(micros_to_nanos(u64::MAX), u64::MAX);
    }
}
