//! The input seam: timestamped raw MIDI messages from ports, an internal clock or a file.
//!
//! Port adapters build a [`RawMidi`] in their driver callback (no allocation: the bytes are
//! copied into a fixed array) and hand it over with a non-blocking `try_send`; the engine's input
//! side parses it.

use crate::Nanos;

/// Which port a message came from, when the clock and the notes arrive on different ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortRole {
    /// The port carrying the human's notes (and the clock, when no separate clock port is set).
    Notes,
    /// A separate port carrying only the clock; its note messages are ignored.
    Clock,
    /// Our own clock (`clock.source = "internal"`), handed to the engine directly, never
    /// through a port: with it running, transport arriving on the ports is ignored.
    Internal,
}

/// One MIDI message as it arrived: up to 3 bytes inline. Longer messages (SysEx) keep their
/// first 3 bytes with `truncated` set; the parser ignores them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawMidi {
    /// Driver timestamp (CoreMIDI host time, ALSA queue time, JACK frame time), or virtual time.
    pub at: Nanos,
    /// Where it came from.
    pub port: PortRole,
    /// The message bytes; only the first `len` are valid.
    pub bytes: [u8; 3],
    /// Number of valid bytes, 0..=3.
    pub len: u8,
    /// The driver delivered more than 3 bytes (SysEx or a malformed run).
    pub truncated: bool,
}

impl RawMidi {
    /// Copies up to 3 bytes of `msg`; never allocates.
    pub fn new(at: Nanos, port: PortRole, msg: &[u8]) -> Self {
        let mut bytes = [0u8; 3];
        let n = msg.len().min(3);
        bytes[..n].copy_from_slice(&msg[..n]);
        Self {
            at,
            port,
            bytes,
            len: n as u8,
            truncated: msg.len() > 3,
        }
    }

    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}
