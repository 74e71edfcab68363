//! The monotonic timebase that live timestamps are expressed in.
//!
//! Port adapters convert driver timestamps into this base, so the transport, the worker's
//! deadlines and the scheduler's send instants all speak one [`Nanos`]. On Unix it is
//! `CLOCK_MONOTONIC` itself (not an offset from process start), so two processes on one machine
//! agree on every instant: the port tests compare the daemon's intended send instants with a
//! peer's arrival times directly. Headless jams use virtual time and never call these functions.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Nanos;

/// Nanoseconds of the machine's monotonic clock (`CLOCK_MONOTONIC` on Unix; elsewhere, since
/// the first call in this process).
pub fn now() -> Nanos {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Unix we
        // build for, so the call cannot fail (it returns -1 only for a bad clock id or pointer).
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        ts.tv_sec as Nanos * 1_000_000_000 + ts.tv_nsec as Nanos
    }
    #[cfg(not(unix))]
    {
        fallback_origin().elapsed().as_nanos() as Nanos
    }
}

#[cfg(not(unix))]
fn fallback_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// A pair read together once: the [`Instant`] and the [`now`] of the same moment, so instants
/// convert both ways without a system call each time.
fn anchor() -> (Instant, Nanos) {
    static ANCHOR: OnceLock<(Instant, Nanos)> = OnceLock::new();
    *ANCHOR.get_or_init(|| (Instant::now(), now()))
}

/// The [`Instant`] of a live timestamp.
pub fn to_instant(t: Nanos) -> Instant {
    let (i, n) = anchor();
    if t >= n {
        i + Duration::from_nanos(t - n)
    } else {
        i.checked_sub(Duration::from_nanos(n - t)).unwrap_or(i)
    }
}

/// The live timestamp of an [`Instant`].
pub fn from_instant(i: Instant) -> Nanos {
    let (ai, an) = anchor();
    match i.checked_duration_since(ai) {
        Some(d) => an + d.as_nanos() as Nanos,
        None => an.saturating_sub(ai.duration_since(i).as_nanos() as Nanos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_and_timestamps_convert_both_ways() {
        let t = now();
        let back = from_instant(to_instant(t));
        assert!(back.abs_diff(t) < 1_000, "{t} -> {back}");
        let later = to_instant(t + 5_000_000);
        assert!(later > to_instant(t));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let a = now();
        let b = now();
        assert!(b >= a);
    }
}
