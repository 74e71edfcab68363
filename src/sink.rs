//! The output seam: where the scheduler's MIDI goes (a port live, a file headless, a recorder in
//! tests).

use crate::Nanos;

/// A destination for outgoing MIDI messages.
///
/// Called from the scheduler thread (live) or the jam loop (headless). Implementations must not
/// block for long: a live port hands bytes to its own sender thread.
pub trait MidiOut: Send {
    /// Sends one complete MIDI message (1 to 3 bytes) meant to sound at `at` (the instant the
    /// scheduler computed, before any output offset).
    fn send(&mut self, at: Nanos, bytes: &[u8]);
}

/// A sink that keeps every message with its instant; used headless to write the session file.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    /// Messages in send order: (instant, status, data1, data2, length).
    pub events: Vec<(Nanos, [u8; 3], u8)>,
}

impl MidiOut for Recorder {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        let mut b = [0u8; 3];
        let n = bytes.len().min(3);
        b[..n].copy_from_slice(&bytes[..n]);
        self.events.push((at, b, n as u8));
    }
}
