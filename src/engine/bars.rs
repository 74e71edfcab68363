//! Human notes per bar, and the prompts built from them.
//!
//! [`BarBuffers`] keeps the human's notes and sustain-pedal changes of the last
//! [`MAX_PROMPT_BARS`] bars (plus the one being played) on the *run* time axis of
//! [`crate::clock::transport`]: fractional pulses counted since the run began, continuous across loop
//! wraps. A note belongs to the bar where it starts; a note held across a boundary keeps one
//! entry whose end is filled in when its note-off arrives, in whatever bar that is.
//!
//! [`BarBuffers::prompt`] turns the last `n` ended bar slots into a [`Prompt`] in whole ms from
//! the first slot's start, at one tempo. Notes still held when the prompt is built (their end
//! is not known yet) get a **provisional end at the prompt's end** (the boundary): the model
//! sees a note sounding to the end of the bar, which is what the player is doing at that
//! instant. A later prompt that covers the same bar sees the real end.
//!
//! Storage is preallocated ([`NOTE_CAPACITY`] notes, [`PEDAL_CAPACITY`] pedal changes); a note
//! beyond that is dropped and counted. Only [`BarBuffers::prompt`] allocates (two `Vec`s per
//! bar boundary, sized exactly).

use crate::music::note::{MsNote, PedalEvent, Prompt};

/// Most bars a prompt may cover (`generation.prompt_bars` is 1..=8).
pub const MAX_PROMPT_BARS: usize = 8;
/// Bar slots kept: the prompt bars plus the one being played.
const SLOTS: usize = MAX_PROMPT_BARS + 1;
/// Notes kept: 9 bars of a very dense player (16th-note chords of 6 at 200 BPM is ~100 notes
/// a bar) fit 4 times over.
pub const NOTE_CAPACITY: usize = 4096;
/// Pedal changes kept.
pub const PEDAL_CAPACITY: usize = 1024;

#[derive(Clone, Copy, Debug)]
struct HeldNote {
    channel: u8,
    pitch: u8,
    velocity: u8,
    start: f64,
    end: Option<f64>,
}

#[derive(Clone, Copy, Debug)]
struct PedalMark {
    at: f64,
    down: bool,
}

/// One bar as played in the current run, in run pulses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BarSlot {
    /// Song bar index.
    pub bar: u64,
    /// Run position of its first played pulse.
    pub start: u64,
    /// Run position just past its last played pulse (`None` while it is being played).
    pub end: Option<u64>,
}

/// What a note message did to the buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteOutcome {
    /// Stored (note-on) or matched (note-off).
    Stored,
    /// Note-on dropped: the buffer is full.
    Overflow,
    /// Note-off with no sounding note of that pitch and channel.
    Unmatched,
}

/// The human's recent bars. Runs on the MIDI input thread.
#[derive(Debug)]
pub struct BarBuffers {
    notes: Vec<HeldNote>,
    pedal: Vec<PedalMark>,
    /// Pedal state before the first kept mark.
    pedal_before: bool,
    slots: [BarSlot; SLOTS],
    /// Index of the oldest slot and number of slots in use.
    head: usize,
    len: usize,
}

impl Clone for BarBuffers {
    /// A copy with the same preallocated capacity (a derived clone would shrink the vectors to
    /// their length, and the next note would allocate).
    fn clone(&self) -> Self {
        let mut c = Self::new();
        c.notes.extend_from_slice(&self.notes);
        c.pedal.extend_from_slice(&self.pedal);
        c.pedal_before = self.pedal_before;
        c.slots = self.slots;
        c.head = self.head;
        c.len = self.len;
        c
    }
}

impl Default for BarBuffers {
    fn default() -> Self {
        Self::new()
    }
}

impl BarBuffers {
    /// Empty buffers with their storage preallocated.
    pub fn new() -> Self {
        Self {
            notes: Vec::with_capacity(NOTE_CAPACITY),
            pedal: Vec::with_capacity(PEDAL_CAPACITY),
            pedal_before: false,
            slots: [BarSlot {
                bar: 0,
                start: 0,
                end: None,
            }; SLOTS],
            head: 0,
            len: 0,
        }
    }

    /// Forgets everything (a new run: Start, Stop, clock loss). The pedal is assumed up.
    pub fn clear(&mut self) {
        self.notes.clear();
        self.pedal.clear();
        self.pedal_before = false;
        self.head = 0;
        self.len = 0;
    }

    /// Number of notes stored.
    pub fn note_count(&self) -> usize {
        self.notes.len()
    }

    /// The slots kept, oldest first.
    pub fn slots(&self) -> impl Iterator<Item = BarSlot> + '_ {
        (0..self.len).map(move |i| self.slots[(self.head + i) % SLOTS])
    }

    /// A bar slot begins at run position `played`. Evicts the oldest slot (and the notes and
    /// pedal changes before the next one) when all are in use.
    pub fn begin_bar(&mut self, bar: u64, played: u64) {
        if self.len == SLOTS {
            self.head = (self.head + 1) % SLOTS;
            self.len -= 1;
            let keep_from = self.slots[self.head].start as f64;
            self.notes.retain(|n| n.start >= keep_from);
            let mut before = self.pedal_before;
            for m in self.pedal.iter().take_while(|m| m.at < keep_from) {
                before = m.down;
            }
            self.pedal_before = before;
            self.pedal.retain(|m| m.at >= keep_from);
        }
        let i = (self.head + self.len) % SLOTS;
        self.slots[i] = BarSlot {
            bar,
            start: played,
            end: None,
        };
        self.len += 1;
    }

    /// The slot being played ends at run position `played_end`.
    pub fn end_bar(&mut self, played_end: u64) {
        if self.len > 0 {
            let i = (self.head + self.len - 1) % SLOTS;
            self.slots[i].end = Some(played_end.max(self.slots[i].start));
        }
    }

    /// A key went down at run position `at`. A second note-on of a sounding key ends the first.
    pub fn note_on(&mut self, channel: u8, pitch: u8, velocity: u8, at: f64) -> NoteOutcome {
        self.close(channel, pitch, at);
        if self.notes.len() == NOTE_CAPACITY {
            return NoteOutcome::Overflow;
        }
        self.notes.push(HeldNote {
            channel,
            pitch,
            velocity: velocity.clamp(1, 127),
            start: at,
            end: None,
        });
        NoteOutcome::Stored
    }

    /// A key went up at run position `at`.
    pub fn note_off(&mut self, channel: u8, pitch: u8, at: f64) -> NoteOutcome {
        if self.close(channel, pitch, at) {
            NoteOutcome::Stored
        } else {
            NoteOutcome::Unmatched
        }
    }

    fn close(&mut self, channel: u8, pitch: u8, at: f64) -> bool {
        // Newest first: the open note of a key is always near the end.
        match self
            .notes
            .iter_mut()
            .rev()
            .find(|n| n.end.is_none() && n.pitch == pitch && n.channel == channel)
        {
            Some(n) => {
                n.end = Some(at.max(n.start));
                true
            }
            None => false,
        }
    }

    /// The sustain pedal moved at run position `at` (repeats of the same state are dropped).
    pub fn pedal(&mut self, down: bool, at: f64) {
        let current = self.pedal.last().map_or(self.pedal_before, |m| m.down);
        if current == down || self.pedal.len() == PEDAL_CAPACITY {
            return;
        }
        self.pedal.push(PedalMark { at, down });
    }

    /// The prompt over the last `bars` ended slots (fewer when the run is younger), in ms at
    /// `ms_per_pulse`; `None` when no slot has ended. Allocates the prompt's two vectors.
    pub fn prompt(&self, bars: usize, ms_per_pulse: f64) -> Option<Prompt> {
        let ended = (0..self.len)
            .rev()
            .map(|i| self.slots[(self.head + i) % SLOTS])
            .filter(|s| s.end.is_some());
        let mut last: Option<BarSlot> = None;
        let mut first: Option<BarSlot> = None;
        for s in ended.take(bars.max(1)) {
            last.get_or_insert(s);
            first = Some(s);
        }
        let (first, last) = (first?, last?);
        let ps = first.start as f64;
        let pe = last.end.unwrap_or(last.start) as f64;
        let to_ms = |p: f64| ((p - ps).max(0.0) * ms_per_pulse).round() as u32;
        let count = self
            .notes
            .iter()
            .filter(|n| n.start >= ps && n.start < pe)
            .count();
        let mut notes = Vec::with_capacity(count);
        for n in self.notes.iter().filter(|n| n.start >= ps && n.start < pe) {
            let start_ms = to_ms(n.start);
            let end_ms = to_ms(n.end.unwrap_or(pe).min(pe)).max(start_ms);
            notes.push(MsNote {
                pitch: n.pitch,
                velocity: n.velocity,
                start_ms,
                end_ms,
            });
        }
        notes.sort_unstable_by_key(|n| (n.start_ms, n.pitch, n.end_ms));
        let mut down = self.pedal_before;
        for m in self.pedal.iter().take_while(|m| m.at < ps) {
            down = m.down;
        }
        let inside = self.pedal.iter().filter(|m| m.at >= ps && m.at < pe);
        let mut pedal = Vec::with_capacity(inside.clone().count() + usize::from(down));
        if down {
            pedal.push(PedalEvent {
                at_ms: 0,
                down: true,
            });
        }
        pedal.extend(inside.map(|m| PedalEvent {
            at_ms: to_ms(m.at),
            down: m.down,
        }));
        Some(Prompt {
            notes,
            pedal,
            length_ms: to_ms(pe),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 120 BPM: 20.833 ms per pulse.
    const MS: f64 = 20.833_333;

    fn two_bars() -> BarBuffers {
        let mut b = BarBuffers::new();
        b.begin_bar(0, 0);
        b
    }

    #[test]
    fn note_held_across_a_boundary_gets_a_provisional_end_then_its_real_end() {
        let mut b = two_bars();
        b.note_on(0, 60, 100, 90.0);
        b.end_bar(96);
        b.begin_bar(1, 96);
        let p = b.prompt(2, MS).unwrap();
        assert_eq!(p.length_ms, 2000);
        assert_eq!(
            p.notes,
            vec![MsNote {
                pitch: 60,
                velocity: 100,
                start_ms: 1875,
                end_ms: 2000
            }]
        );
        b.note_off(0, 60, 120.0);
        b.end_bar(192);
        b.begin_bar(2, 192);
        let p = b.prompt(2, MS).unwrap();
        assert_eq!(p.notes[0].end_ms, 2500);
        assert_eq!(p.length_ms, 4000);
    }

    #[test]
    fn prompt_covers_only_the_last_n_bars_and_counts_from_their_start() {
        let mut b = two_bars();
        b.note_on(0, 50, 80, 10.0);
        b.note_off(0, 50, 20.0);
        b.end_bar(96);
        b.begin_bar(1, 96);
        b.note_on(0, 62, 80, 96.0 + 24.0);
        b.note_off(0, 62, 96.0 + 48.0);
        b.end_bar(192);
        b.begin_bar(2, 192);
        let p = b.prompt(1, MS).unwrap();
        assert_eq!(p.notes.len(), 1);
        assert_eq!(
            (p.notes[0].pitch, p.notes[0].start_ms, p.notes[0].end_ms),
            (62, 500, 1000)
        );
        assert_eq!(p.length_ms, 2000);
        let p = b.prompt(2, MS).unwrap();
        assert_eq!(p.notes.len(), 2);
        assert_eq!(p.notes[1].start_ms, 2500);
    }

    #[test]
    fn pedal_down_before_the_prompt_is_carried_in_at_zero() {
        let mut b = two_bars();
        b.pedal(true, 5.0);
        b.end_bar(96);
        b.begin_bar(1, 96);
        b.pedal(false, 100.0);
        b.pedal(false, 101.0);
        b.end_bar(192);
        b.begin_bar(2, 192);
        let p = b.prompt(1, MS).unwrap();
        assert_eq!(
            p.pedal,
            vec![
                PedalEvent {
                    at_ms: 0,
                    down: true
                },
                PedalEvent {
                    at_ms: 83,
                    down: false
                }
            ]
        );
    }

    #[test]
    fn restruck_key_ends_the_previous_note() {
        let mut b = two_bars();
        b.note_on(0, 60, 100, 0.0);
        b.note_on(0, 60, 90, 12.0);
        b.note_off(0, 60, 24.0);
        b.end_bar(96);
        let p = b.prompt(1, MS).unwrap();
        assert_eq!(p.notes.len(), 2);
        assert_eq!((p.notes[0].start_ms, p.notes[0].end_ms), (0, 250));
        assert_eq!((p.notes[1].start_ms, p.notes[1].end_ms), (250, 500));
    }

    #[test]
    fn old_bars_are_evicted_with_their_notes() {
        let mut b = BarBuffers::new();
        for bar in 0..20u64 {
            b.begin_bar(bar, bar * 96);
            b.note_on(0, 60, 100, (bar * 96) as f64 + 1.0);
            b.note_off(0, 60, (bar * 96) as f64 + 2.0);
            b.end_bar((bar + 1) * 96);
        }
        assert_eq!(b.slots().count(), SLOTS);
        assert!(b.note_count() <= SLOTS);
        assert_eq!(b.prompt(8, MS).unwrap().notes.len(), 8);
    }

    #[test]
    fn overflow_is_reported_not_panicked() {
        let mut b = two_bars();
        for i in 0..NOTE_CAPACITY {
            assert_eq!(
                b.note_on(0, (i % 128) as u8, 1, i as f64 * 1e-3),
                NoteOutcome::Stored
            );
        }
        assert_eq!(b.note_on(1, 1, 1, 95.0), NoteOutcome::Overflow);
        assert_eq!(b.note_off(2, 3, 95.0), NoteOutcome::Unmatched);
    }

    #[test]
    fn no_prompt_before_a_bar_has_ended() {
        let b = two_bars();
        assert!(b.prompt(2, MS).is_none());
    }
}
