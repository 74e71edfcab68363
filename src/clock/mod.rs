//! The master's time: where the clock says we are, and when each pulse happens.
//!
//! - [`timebase`]: the monotonic [`crate::Nanos`] every live timestamp is expressed in.
//! - [`transport`]: Start/Stop/Continue/Song Position and 24-PPQN clocks → play state, pulses,
//!   bar boundaries and epochs.
//! - [`tempo`]: the delay-locked loop that filters clock timestamps into a steady period.
//! - [`timeline`]: the resulting pulse ↔ time map the scheduler sends by.
//! - [`meter`]: time signatures and bar ↔ pulse arithmetic.
//! - [`internal`]: our own clock, for headless jams and `run --bpm`.
//!
//! Everything here is pure (time comes in as an argument) except [`timebase`], which reads the
//! OS clock, and [`internal::play`], which sleeps on it.

pub mod internal;
pub mod meter;
pub mod tempo;
pub mod timebase;
pub mod timeline;
pub mod transport;
