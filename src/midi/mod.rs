//! Bytes and files: what crosses the boundary between aria-bridge and the MIDI world.
//!
//! - [`message`]: raw bytes → typed messages (running status, malformed input) and back.
//! - [`source`] and [`sink`]: the engine's input and output seams ([`source::RawMidi`],
//!   [`sink::MidiOut`]); every MIDI producer and consumer meets the engine there.
//! - [`smf`]: Standard MIDI Files in (a human part, a prompt) and out (a jam session).
//! - [`ports`]: the live adapter over midir (ALSA, JACK, CoreMIDI, WinMM): the only module that
//!   talks to a MIDI driver.

pub mod message;
pub mod ports;
pub mod sink;
pub mod smf;
pub mod source;
