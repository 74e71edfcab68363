//! The echo filter: our own output coming back on the input (a routing loop) must never reach a
//! prompt, be forwarded again by thru, or be taken for the player; and a player who merely plays
//! what we play, when we play it, must never be taken for an echo.
//!
//! Everything we send is recorded ([`EchoFilter::record_sent`]): the engine's notes and panics
//! ([`Origin::Engine`]) and what thru forwards ([`Origin::Thru`]). An incoming message is checked
//! against those records ([`EchoFilter::check`]) in two stages, per input port
//! ([`PortRole`]: the port path an echo came back on):
//!
//! - **No loop known** (the normal case): nothing is filtered. A record matching the incoming
//!   message exactly (same bytes; a note-on of velocity 0 reads as a note-off) between
//!   [`PROBE_NEG_NS`] before and [`PROBE_MAX_NS`] after it was sent is only evidence. A loop is
//!   *confirmed* when [`CONFIRM_STREAK`] records in a row, in the order we sent them, came back
//!   with round trips that agree within [`STREAK_BAND_NS`]. A loop echoes everything, in order,
//!   at a steady delay: the 130-message sweep sent at every Start (note-off on every key, sustain
//!   off, All Notes Off) confirms one before the music begins, and a message ping-ponging through
//!   thru confirms one within 8 round trips. A player coinciding with our notes does not: their
//!   bytes match ours only now and then (velocity, release velocity, timing), never 8 in a row.
//! - **Loop confirmed**: the round trip is tracked like TCP's (smoothed mean and mean deviation,
//!   updated by every echo), and an incoming message is an echo when it matches a record exactly
//!   and arrived between [`PROBE_NEG_NS`] before and `mean + max(4 ms, 4 × deviation)` (at most
//!   [`MAX_LATE_NS`] past the mean) after its send; the record is consumed (one send, at most one
//!   echo). The window is one-sided because an echo is never early, only late: measured through
//!   a JACK loop on a loaded 2-core machine, most echoes took 0.1 to 1.6 ms and a few 10 to 20
//!   ms, which pulls the mean up to ~7 ms; a window centred on it lost the fast ones. A player's
//!   note that coincides with ours survives unless it has our exact bytes *and* lands in that
//!   window; if it does, it stands in for the echo, which then passes: the prompt gets the same
//!   bytes once, a few ms apart, instead of twice.
//!
//! A confirmed loop whose records keep expiring unechoed ([`GONE_AFTER_MISSES`] in a row, e.g.
//! the patch was removed) goes back to "no loop known".
//!
//! Fixed size, never allocates: runs on the input thread.

use crate::midi::source::PortRole;
use crate::Nanos;

/// Records kept: the sweep at Start is 130 messages; a dense bar of piano at 300 BPM about 100.
pub const CAPACITY: usize = 256;
/// An echo may be stamped up to 2 ms before its send: the two stamps come from different clocks
/// (our send instant; the driver's period time mapped onto ours, [`crate::midi`]'s adapters).
pub const PROBE_NEG_NS: i64 = 2_000_000;
/// Longest round trip considered while looking for a loop: two JACK periods of 2048 frames at
/// 48 kHz (85 ms), with margin; hardware loops through a synth's MIDI thru take 5 to 20 ms.
pub const PROBE_MAX_NS: i64 = 100_000_000;
/// Records echoed in a row, in send order, that confirm a loop.
pub const CONFIRM_STREAK: u32 = 8;
/// How far the round trips of a confirming streak may spread: a sweep split across two JACK
/// periods of 64 frames differs by 1.33 ms; USB MIDI adds up to 1 ms.
pub const STREAK_BAND_NS: i64 = 4_000_000;
/// The echo window reaches at least this far past the measured round trip: 3 JACK periods of
/// 64 frames, or a USB frame and a scheduling delay.
pub const MIN_LATE_NS: f64 = 4_000_000.0;
/// ... and at most this far, however jittery the loop.
pub const MAX_LATE_NS: f64 = 25_000_000.0;
/// Records that expire unechoed in a row before a confirmed loop counts as gone.
pub const GONE_AFTER_MISSES: u32 = 64;

/// Who sent a recorded message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// The engine: answers, panics, the sweep.
    #[default]
    Engine,
    /// Thru: the player's own message forwarded.
    Thru,
}

/// A loop just confirmed on one input port.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoopFound {
    /// The port it came back on.
    pub port: PortRole,
    /// Measured round trip, ns (the middle of the confirming streak).
    pub round_trip_ns: f64,
    /// Whether thru output was among the confirming echoes (a thru feedback loop).
    pub via_thru: bool,
}

/// What [`EchoFilter::check`] says about an incoming message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// It is our own output: drop it.
    pub echo: bool,
    /// This message completed the evidence for a loop.
    pub found: Option<LoopFound>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Sent {
    seq: u64,
    at: Nanos,
    bytes: [u8; 3],
    len: u8,
    origin: Origin,
    live: bool,
}

/// What is known about a loop into one input port.
#[derive(Clone, Copy, Debug, Default)]
struct LoopState {
    confirmed: bool,
    /// Smoothed round trip and its mean deviation, ns (valid when confirmed).
    srtt: f64,
    rttvar: f64,
    /// The streak of in-order echoes being gathered.
    streak: u32,
    streak_last_seq: u64,
    streak_min: i64,
    streak_max: i64,
    streak_thru: bool,
    /// Records expired unechoed since the last echo (confirmed only).
    misses: u32,
    /// The newest record when the loop was confirmed: older ones may predate the loop (the
    /// sweep sent when the output opened, before the cable was patched) and prove nothing.
    since_seq: u64,
}

impl LoopState {
    /// How far past the measured round trip an echo may arrive.
    fn late_margin(&self) -> f64 {
        (4.0 * self.rttvar).clamp(MIN_LATE_NS, MAX_LATE_NS)
    }

    /// The latest an echo may arrive after its send, ns.
    fn window_end(&self) -> i64 {
        if self.confirmed {
            (self.srtt + self.late_margin()).round() as i64
        } else {
            PROBE_MAX_NS
        }
    }

    /// TCP's estimator (RFC 6298 gains 1/8 and 1/4).
    fn observe(&mut self, d: i64) {
        let d = d as f64;
        self.rttvar = 0.75 * self.rttvar + 0.25 * (self.srtt - d).abs();
        self.srtt = 0.875 * self.srtt + 0.125 * d;
        self.misses = 0;
    }

    /// Adds an in-order echo of record `seq` with round trip `d` to the streak; true when the
    /// streak now confirms a loop. `newest` is the newest record's seq.
    fn extend_streak(&mut self, seq: u64, d: i64, thru: bool, newest: u64) -> bool {
        let lo = self.streak_min.min(d);
        let hi = self.streak_max.max(d);
        if self.streak > 0 && seq == self.streak_last_seq + 1 && hi - lo <= STREAK_BAND_NS {
            self.streak += 1;
            self.streak_min = lo;
            self.streak_max = hi;
            self.streak_thru |= thru;
        } else {
            self.streak = 1;
            self.streak_min = d;
            self.streak_max = d;
            self.streak_thru = thru;
        }
        self.streak_last_seq = seq;
        if self.streak >= CONFIRM_STREAK {
            self.confirmed = true;
            self.srtt = (self.streak_min + self.streak_max) as f64 / 2.0;
            self.rttvar = (self.streak_max - self.streak_min) as f64 / 2.0;
            self.misses = 0;
            self.streak = 0;
            self.since_seq = newest;
            return true;
        }
        false
    }
}

/// Remembers recent sends and what is known about loops. Fixed size; never allocates.
#[derive(Clone, Debug)]
pub struct EchoFilter {
    sent: [Sent; CAPACITY],
    next: usize,
    seq: u64,
    loops: [LoopState; 2],
}

impl Default for EchoFilter {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes an echo is compared by: a note-on of velocity 0 is the note-off it means (a
/// loop through a device that uses running status may turn one into the other).
fn canonical(bytes: &[u8]) -> Option<([u8; 3], u8)> {
    let (&status, data) = bytes.split_first()?;
    if !(0x80..0xF0).contains(&status) || data.len() > 2 || data.iter().any(|&b| b > 0x7F) {
        return None;
    }
    let mut b = [status, 0, 0];
    b[1..=data.len()].copy_from_slice(data);
    if status & 0xF0 == 0x90 && data.len() == 2 && data[1] == 0 {
        b[0] = 0x80 | (status & 0x0F);
    }
    Some((b, bytes.len() as u8))
}

fn slot(role: PortRole) -> Option<usize> {
    match role {
        PortRole::Notes => Some(0),
        PortRole::Clock => Some(1),
        // Our own clock thread feeds the engine directly: no port, no loop.
        PortRole::Internal => None,
    }
}

impl EchoFilter {
    /// An empty filter: no loop known.
    pub fn new() -> Self {
        Self {
            sent: [Sent::default(); CAPACITY],
            next: 0,
            seq: 0,
            loops: [LoopState::default(); 2],
        }
    }

    /// Records a channel message we sent at `at`; anything else is ignored. The oldest record
    /// is overwritten when full (counted as a miss by a confirmed loop if it never came back).
    pub fn record_sent(&mut self, at: Nanos, bytes: &[u8], origin: Origin) {
        let Some((b, len)) = canonical(bytes) else {
            return;
        };
        let old = self.sent[self.next];
        if old.live {
            // A miss: sent while the loop was known, and its echo's time is past (a record
            // pushed out by a burst before its echo could come proves nothing).
            let age = at as i64 - old.at as i64;
            for l in self.loops.iter_mut().filter(|l| l.confirmed) {
                if old.seq > l.since_seq && age > l.window_end() {
                    l.misses += 1;
                    if l.misses >= GONE_AFTER_MISSES {
                        *l = LoopState::default();
                    }
                }
            }
        }
        self.seq += 1;
        self.sent[self.next] = Sent {
            seq: self.seq,
            at,
            bytes: b,
            len,
            origin,
            live: true,
        };
        self.next = (self.next + 1) % CAPACITY;
    }

    /// Whether a loop into `port` is confirmed.
    pub fn loop_confirmed(&self, port: PortRole) -> bool {
        slot(port).is_some_and(|i| self.loops[i].confirmed)
    }

    /// The measured round trip of the loop into `port`, ns, when one is confirmed.
    pub fn round_trip_ns(&self, port: PortRole) -> Option<f64> {
        let l = &self.loops[slot(port)?];
        l.confirmed.then_some(l.srtt)
    }

    /// Checks an incoming channel message that arrived at `at` on `port` (see the module docs).
    pub fn check(&mut self, at: Nanos, port: PortRole, bytes: &[u8]) -> Verdict {
        let human = Verdict {
            echo: false,
            found: None,
        };
        let (Some(li), Some((b, len))) = (slot(port), canonical(bytes)) else {
            return human;
        };
        let state = self.loops[li];
        let (lo, hi) = (-PROBE_NEG_NS, state.window_end());
        // Newest to oldest; stop once records are older than the window; take the oldest
        // (echoes come back in send order).
        let mut best: Option<(usize, i64)> = None;
        for k in 1..=CAPACITY {
            let i = (self.next + CAPACITY - k) % CAPACITY;
            let s = &self.sent[i];
            if s.seq == 0 {
                break;
            }
            let d = at as i64 - s.at as i64;
            if d > hi {
                break;
            }
            if !s.live || d < lo || s.len != len || s.bytes != b {
                continue;
            }
            best = Some((i, d));
        }
        let Some((i, d)) = best else {
            return human;
        };
        self.sent[i].live = false;
        let (seq, thru) = (self.sent[i].seq, self.sent[i].origin == Origin::Thru);
        let l = &mut self.loops[li];
        if l.confirmed {
            l.observe(d);
            return Verdict {
                echo: true,
                found: None,
            };
        }
        if l.extend_streak(seq, d, thru, self.seq) {
            return Verdict {
                echo: true,
                found: Some(LoopFound {
                    port,
                    round_trip_ns: l.srtt,
                    via_thru: thru || l.streak_thru,
                }),
            };
        }
        human
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// Sends `n` distinct note-offs at `t0` and echoes them `rtt` later; returns the verdicts.
    fn sweep(f: &mut EchoFilter, t0: Nanos, n: u8, rtt: u64) -> Vec<Verdict> {
        for k in 0..n {
            f.record_sent(t0, &[0x80, k, 0], Origin::Engine);
        }
        (0..n)
            .map(|k| f.check(t0 + rtt, PortRole::Notes, &[0x80, k, 0]))
            .collect()
    }

    #[test]
    fn a_single_exact_match_without_a_known_loop_is_not_an_echo() {
        let mut f = EchoFilter::new();
        f.record_sent(1_000 * MS, &[0x90, 60, 100], Origin::Engine);
        let v = f.check(1_001 * MS, PortRole::Notes, &[0x90, 60, 100]);
        assert!(!v.echo && v.found.is_none());
        assert!(!f.loop_confirmed(PortRole::Notes));
    }

    #[test]
    fn eight_in_order_echoes_at_a_steady_delay_confirm_a_loop_and_later_ones_are_echoes() {
        let mut f = EchoFilter::new();
        let v = sweep(&mut f, 1_000 * MS, 20, 2 * MS);
        assert!(v[..7].iter().all(|v| !v.echo));
        let found = v[7].found.expect("the 8th in-order echo confirms");
        assert!(v[7].echo);
        assert_eq!(found.port, PortRole::Notes);
        assert!((found.round_trip_ns - 2e6).abs() < 1.0);
        assert!(!found.via_thru);
        assert!(v[8..].iter().all(|v| v.echo && v.found.is_none()));
        assert!(f.loop_confirmed(PortRole::Notes));
        assert!(!f.loop_confirmed(PortRole::Clock), "per port");
    }

    #[test]
    fn a_confirmed_loop_filters_only_exact_bytes_inside_the_measured_window() {
        let mut f = EchoFilter::new();
        sweep(&mut f, 1_000 * MS, 16, 2 * MS);
        let t = 2_000 * MS;
        f.record_sent(t, &[0x90, 60, 100], Origin::Engine);
        // Same key, other velocity: the player.
        assert!(!f.check(t + 2 * MS, PortRole::Notes, &[0x90, 60, 99]).echo);
        // Exact bytes but 30 ms later: the player again.
        assert!(!f.check(t + 30 * MS, PortRole::Notes, &[0x90, 60, 100]).echo);
        // Exact bytes at the round trip: the echo, once.
        assert!(f.check(t + 2 * MS, PortRole::Notes, &[0x90, 60, 100]).echo);
        assert!(!f.check(t + 2 * MS, PortRole::Notes, &[0x90, 60, 100]).echo);
        // Faster than the measured round trip, or a little slower: still the echo.
        f.record_sent(t + 100 * MS, &[0x90, 61, 100], Origin::Engine);
        assert!(
            f.check(t + 100 * MS + MS / 4, PortRole::Notes, &[0x90, 61, 100])
                .echo
        );
        f.record_sent(t + 200 * MS, &[0x90, 62, 100], Origin::Engine);
        assert!(
            f.check(t + 205 * MS, PortRole::Notes, &[0x90, 62, 100])
                .echo
        );
    }

    #[test]
    fn matches_that_are_not_in_send_order_or_not_steady_never_confirm() {
        let mut f = EchoFilter::new();
        // A player doubling each of our notes 5 or 15 ms later, alternately, with our exact
        // bytes: 200 matches, none of them a loop.
        for k in 0..200u64 {
            let t = 1_000 * MS + k * 250 * MS;
            let key = 48 + (k % 24) as u8;
            f.record_sent(t, &[0x90, key, 100], Origin::Engine);
            let d = if k % 2 == 0 { 5 } else { 15 } * MS;
            assert!(!f.check(t + d, PortRole::Notes, &[0x90, key, 100]).echo);
        }
        assert!(!f.loop_confirmed(PortRole::Notes));
        // Steady delays but every other send never comes back: not in a row.
        let mut f = EchoFilter::new();
        for k in 0..200u64 {
            let t = 1_000 * MS + k * 10 * MS;
            f.record_sent(t, &[0x90, 60, 100], Origin::Engine);
            f.record_sent(t, &[0xB0, 7, 100], Origin::Engine);
            assert!(!f.check(t + MS, PortRole::Notes, &[0x90, 60, 100]).echo);
        }
        assert!(!f.loop_confirmed(PortRole::Notes));
    }

    #[test]
    fn a_thru_message_ping_ponging_confirms_a_thru_loop() {
        let mut f = EchoFilter::new();
        let mut t = 1_000 * MS;
        f.record_sent(t, &[0x91, 62, 90], Origin::Thru);
        for round in 0..CONFIRM_STREAK {
            t += 1_333_333;
            let v = f.check(t, PortRole::Notes, &[0x91, 62, 90]);
            if round + 1 < CONFIRM_STREAK {
                assert!(!v.echo, "round {round}");
                // Not known as an echo yet: thru forwards it again.
                f.record_sent(t, &[0x91, 62, 90], Origin::Thru);
            } else {
                assert!(v.echo);
                assert!(v.found.expect("confirmed").via_thru);
            }
        }
    }

    #[test]
    fn records_from_before_the_loop_or_pushed_out_by_a_burst_are_not_misses() {
        let mut f = EchoFilter::new();
        // The sweep when the output opened, before the cable was patched: never echoed.
        for k in 0..128u8 {
            f.record_sent(0, &[0x80, k, 0], Origin::Engine);
        }
        sweep(&mut f, 1_000 * MS, 16, 2 * MS);
        // A burst of 200 notes at one instant pushes those out before its echoes return.
        let t = 2_000 * MS;
        for k in 0..200u32 {
            f.record_sent(
                t,
                &[0x90, (k % 128) as u8, 1 + (k / 128) as u8],
                Origin::Engine,
            );
        }
        assert!(f.loop_confirmed(PortRole::Notes));
        let echoed = (0..200u32)
            .filter(|k| {
                let b = [0x90, (k % 128) as u8, 1 + (k / 128) as u8];
                f.check(t + MS, PortRole::Notes, &b).echo
            })
            .count();
        assert_eq!(echoed, 200);
    }

    #[test]
    fn a_loop_whose_sends_stop_coming_back_is_forgotten() {
        let mut f = EchoFilter::new();
        sweep(&mut f, 1_000 * MS, 16, 2 * MS);
        assert!(f.loop_confirmed(PortRole::Notes));
        for k in 0..(CAPACITY as u64 + GONE_AFTER_MISSES as u64) {
            f.record_sent(2_000 * MS + k * MS, &[0x90, 60, 100], Origin::Engine);
        }
        assert!(!f.loop_confirmed(PortRole::Notes));
    }

    #[test]
    fn note_on_velocity_zero_matches_a_note_off() {
        let mut f = EchoFilter::new();
        for k in 0..8u8 {
            f.record_sent(0, &[0x93, k, 0], Origin::Engine);
        }
        let v: Vec<bool> = (0..8u8)
            .map(|k| f.check(MS, PortRole::Notes, &[0x83, k, 0]).echo)
            .collect();
        assert_eq!(v.iter().filter(|e| **e).count(), 1, "the 8th confirms");
    }

    #[test]
    fn our_own_clock_thread_is_never_an_echo_path() {
        let mut f = EchoFilter::new();
        f.record_sent(0, &[0x80, 1, 0], Origin::Engine);
        assert_eq!(
            f.check(MS, PortRole::Internal, &[0x80, 1, 0]),
            Verdict {
                echo: false,
                found: None
            }
        );
    }
}
