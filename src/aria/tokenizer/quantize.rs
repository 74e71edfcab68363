//! Nearest-value quantisers of the reference tokenizer (onset, duration, velocity).
//!
//! The reference picks the grid value with a binary search rather than by rounding, so ties
//! (inputs ending in 5) go left or right depending on the search path and the grid length:
//! onset 5 -> 0 but 15 -> 20, velocity 75 -> 70 but 85 -> 90. Reproducing the search itself is
//! the only way to be exact on all 500 onset ties.

/// Grid step of onsets and durations in ms.
pub const TIME_STEP_MS: u32 = 10;
/// Longest duration token in ms; also the length of one `<T>` segment.
pub const MAX_DUR_MS: u32 = 5000;
/// Length of one time segment in ms: each `<T>` advances the clock by this much.
pub const ABS_TIME_STEP_MS: u32 = 5000;
/// Grid step of velocities.
pub const VELOCITY_STEP: u32 = 10;
/// Largest velocity token (the grid is 0, 10, ..., 120; 127 / 10 = 12 steps).
pub const MAX_VELOCITY: u32 = 120;

/// Number of onset grid values (0..=4990 ms).
pub const N_ONSETS: u32 = MAX_DUR_MS / TIME_STEP_MS;
/// Number of duration grid values (0..=5000 ms).
pub const N_DURS: u32 = MAX_DUR_MS / TIME_STEP_MS + 1;
/// Number of velocity grid values (0..=120).
pub const N_VELOCITIES: u32 = MAX_VELOCITY / VELOCITY_STEP + 1;

/// The reference's binary search over the uniform grid `step * i` for `i in 0..len`.
///
/// The midpoint is rounded down, a candidate replaces the best only when strictly closer, and the
/// search moves right when the midpoint value is below `n`.
fn closest_on_grid(n: i64, step: i64, len: i64) -> i64 {
    let (mut left, mut right) = (0i64, len - 1);
    let mut closest = 0i64;
    while left <= right {
        let mid = (left + right).div_euclid(2);
        let value = mid * step;
        if (value - n).abs() < (closest - n).abs() {
            closest = value;
        }
        if value < n {
            left = mid + 1;
        } else {
            right = mid - 1;
        }
    }
    closest
}

/// Quantises an onset (ms within a segment) to the 10 ms grid 0..=4990.
pub fn quantize_onset(ms: i64) -> u32 {
    closest_on_grid(ms, TIME_STEP_MS as i64, N_ONSETS as i64) as u32
}

/// Quantises a duration in ms to the grid 10..=5000 (0 becomes 10: a note always sounds).
pub fn quantize_dur(ms: i64) -> u32 {
    let d = closest_on_grid(ms, TIME_STEP_MS as i64, N_DURS as i64) as u32;
    if d == 0 {
        TIME_STEP_MS
    } else {
        d
    }
}

/// Quantises a MIDI velocity to the grid 0..=120; a non-zero velocity never becomes 0.
pub fn quantize_velocity(velocity: i64) -> u32 {
    let v = closest_on_grid(velocity, VELOCITY_STEP as i64, N_VELOCITIES as i64) as u32;
    if v == 0 && velocity != 0 {
        VELOCITY_STEP
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onset_ties_follow_the_search_path() {
        assert_eq!(quantize_onset(5), 0);
        assert_eq!(quantize_onset(15), 20);
        assert_eq!(quantize_onset(25), 20);
        assert_eq!(quantize_onset(35), 40);
        assert_eq!(quantize_onset(315), 310);
        assert_eq!(quantize_onset(325), 330);
        assert_eq!(quantize_onset(4999), 4990);
    }

    #[test]
    fn duration_zero_and_ties() {
        assert_eq!(quantize_dur(0), 10);
        assert_eq!(quantize_dur(5), 10);
        assert_eq!(quantize_dur(25), 20);
        assert_eq!(quantize_dur(9000), 5000);
        assert_eq!(quantize_dur(-40), 10);
    }

    #[test]
    fn velocity_ties_and_floor() {
        assert_eq!(quantize_velocity(0), 0);
        assert_eq!(quantize_velocity(1), 10);
        assert_eq!(quantize_velocity(75), 70);
        assert_eq!(quantize_velocity(85), 90);
        assert_eq!(quantize_velocity(95), 90);
        assert_eq!(quantize_velocity(127), 120);
    }
}
