//! The echo filter: our own notes coming back on the input (a routing loop) must never reach a
//! prompt.
//!
//! The engine records every note message it sends ([`EchoFilter::record_sent`]); an incoming
//! note-on/off with the same channel, key and direction within [`ECHO_WINDOW_NS`] of a recorded
//! one is an echo and consumes that record (one send, at most one echo). A human playing the
//! very same key on our output channel within 50 ms of our note is dropped too; that is the
//! price of never feeding the model its own output.

use crate::Nanos;

/// How far apart a send and its echo may be: 50 ms covers a virtual-port loop (< 1 ms) and a
/// hardware loop through a synth's MIDI thru (~5-20 ms) with margin.
pub const ECHO_WINDOW_NS: u64 = 50_000_000;
/// Sends remembered: at 16 notes a beat at 300 BPM (80 messages/s) a 50 ms window holds ~4;
/// 64 leaves room for chords of dense bursts.
const CAPACITY: usize = 64;

#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    at: Nanos,
    channel: u8,
    key: u8,
    on: bool,
    live: bool,
}

/// Remembers recent sends. Fixed size; never allocates.
#[derive(Clone, Debug)]
pub struct EchoFilter {
    sent: [Sent; CAPACITY],
    next: usize,
}

impl Default for EchoFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl EchoFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self {
            sent: [Sent::default(); CAPACITY],
            next: 0,
        }
    }

    /// Records a message we sent at `at`; anything but a note-on/off is ignored. The oldest
    /// record is overwritten when full.
    pub fn record_sent(&mut self, at: Nanos, bytes: &[u8]) {
        let Some((channel, key, on)) = note_of(bytes) else {
            return;
        };
        self.sent[self.next] = Sent {
            at,
            channel,
            key,
            on,
            live: true,
        };
        self.next = (self.next + 1) % CAPACITY;
    }

    /// Whether an incoming note message at `at` is the echo of a recorded send; if so the
    /// record is consumed.
    pub fn is_echo(&mut self, at: Nanos, channel: u8, key: u8, on: bool) -> bool {
        for s in self.sent.iter_mut() {
            if s.live
                && s.channel == channel
                && s.key == key
                && s.on == on
                && s.at.abs_diff(at) <= ECHO_WINDOW_NS
            {
                s.live = false;
                return true;
            }
        }
        false
    }
}

/// (channel, key, is-on) of a complete note message; note-on velocity 0 is an off.
fn note_of(bytes: &[u8]) -> Option<(u8, u8, bool)> {
    let (&status, data) = bytes.split_first()?;
    if data.len() < 2 || data[0] > 0x7F || data[1] > 0x7F {
        return None;
    }
    match status & 0xF0 {
        0x90 => Some((status & 0x0F, data[0], data[1] > 0)),
        0x80 => Some((status & 0x0F, data[0], false)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_within_the_window_is_recognised_once() {
        let mut f = EchoFilter::new();
        f.record_sent(1_000_000_000, &[0x90, 60, 100]);
        assert!(f.is_echo(1_002_000_000, 0, 60, true));
        assert!(!f.is_echo(1_003_000_000, 0, 60, true), "a send echoes once");
    }

    #[test]
    fn different_key_channel_direction_or_late_arrival_is_not_an_echo() {
        let mut f = EchoFilter::new();
        f.record_sent(1_000_000_000, &[0x90, 60, 100]);
        assert!(!f.is_echo(1_000_000_000, 0, 61, true));
        assert!(!f.is_echo(1_000_000_000, 1, 60, true));
        assert!(!f.is_echo(1_000_000_000, 0, 60, false));
        assert!(!f.is_echo(1_060_000_000, 0, 60, true));
    }

    #[test]
    fn note_on_velocity_zero_is_recorded_as_an_off() {
        let mut f = EchoFilter::new();
        f.record_sent(0, &[0x93, 64, 0]);
        f.record_sent(0, &[0xB0, 64, 127]);
        assert!(f.is_echo(1, 3, 64, false));
    }
}
