//! The process-wide monotonic timebase that live timestamps are expressed in.
//!
//! Port adapters convert driver timestamps into this base, so the transport, the worker's
//! deadlines and the scheduler's send instants all speak one [`Nanos`]. Headless jams use
//! virtual time instead and never call these functions.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::Nanos;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the process's clock origin (fixed at the first call of any function here).
pub fn now() -> Nanos {
    origin().elapsed().as_nanos() as Nanos
}

/// The [`Instant`] of a live timestamp.
pub fn to_instant(t: Nanos) -> Instant {
    origin() + Duration::from_nanos(t)
}

/// The live timestamp of an [`Instant`] (0 for instants before the origin).
pub fn from_instant(i: Instant) -> Nanos {
    i.saturating_duration_since(origin()).as_nanos() as Nanos
}
