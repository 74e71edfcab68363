//! Notes in milliseconds: the unit the model speaks (Aria's tokenizer counts ms).

/// A note with start and end in whole milliseconds relative to an origin (a prompt's start or a
/// result window's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsNote {
    /// MIDI key number, 0..=127.
    pub pitch: u8,
    /// MIDI velocity, 1..=127.
    pub velocity: u8,
    /// Onset in ms from the origin.
    pub start_ms: u32,
    /// Release in ms from the origin; `end_ms >= start_ms`.
    pub end_ms: u32,
}

/// A sustain-pedal (CC64) change in ms from the prompt's origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PedalEvent {
    /// Time in ms from the origin.
    pub at_ms: u32,
    /// True when the pedal goes down (CC64 value >= 64).
    pub down: bool,
}

/// What the model is asked to continue: the human's notes of the last bars, in ms from the start
/// of the first prompt bar, with the pedal changes that shape their durations.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prompt {
    /// Notes sorted by start, then pitch.
    pub notes: Vec<MsNote>,
    /// Pedal changes sorted by time.
    pub pedal: Vec<PedalEvent>,
    /// Length of the prompt span in ms (the bars it covers at the tempo it was built with).
    pub length_ms: u32,
}
