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

impl Recorder {
    /// Note-ons still without their note-off at the end of the recording, per channel and key.
    /// Strict: All Notes Off (CC123) does not count as closing a note, since some synths ignore
    /// it; a correct session has none.
    pub fn hanging_notes(&self) -> usize {
        let mut on = [[0u32; 128]; 16];
        for (_, b, len) in &self.events {
            if *len < 2 {
                continue;
            }
            let ch = (b[0] & 0x0F) as usize;
            match b[0] & 0xF0 {
                0x90 if *len == 3 && b[2] > 0 => on[ch][b[1] as usize & 0x7F] += 1,
                0x80 | 0x90 => {
                    on[ch][b[1] as usize & 0x7F] = on[ch][b[1] as usize & 0x7F].saturating_sub(1)
                }
                _ => {}
            }
        }
        on.iter().flatten().map(|&n| n as usize).sum()
    }
}

impl MidiOut for Recorder {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        let mut b = [0u8; 3];
        let n = bytes.len().min(3);
        b[..n].copy_from_slice(&bytes[..n]);
        self.events.push((at, b, n as u8));
    }
}
