//! Tokens -> notes, as the reference's `AbsTokenizer.detokenize`, including its handling of the
//! malformed sequences a sampled model produces.
//!
//! Rules kept from the reference: instrument prefix tokens at the start assign channels in order
//! (skipping the drum channel 9); the first token that is neither special nor prefix starts the
//! notes; every position is then read as a triple (so the last two tokens never start a note);
//! `<T>` adds 5000 ms; a note needs `note, onset, dur` in a row and a drum `drum, onset`,
//! anything else is skipped; notes of instruments without a prefix token are dropped; onsets may
//! go backwards (notes are re-sorted by start). Where the reference would crash (a pedal token
//! followed by a special or prefix token, no note token at all) this decoder skips or returns
//! nothing instead.

use super::quantize::{ABS_TIME_STEP_MS, TIME_STEP_MS};
use super::{Instrument, Special, Token};
use crate::music::note::MsNote;

/// Channel the reference gives drum notes.
pub const DRUM_CHANNEL: u8 = 9;
/// Velocity the reference gives decoded drum hits (config `drum_velocity`).
pub const DRUM_VELOCITY: u8 = 60;

/// A decoded note (the reference's note message in a dict whose ticks are ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedNote {
    /// MIDI key.
    pub pitch: u8,
    /// Velocity from the token (0..=120), or 60 for drums.
    pub velocity: u8,
    /// Start in ms from the sequence start.
    pub start_ms: u64,
    /// End in ms from the sequence start.
    pub end_ms: u64,
    /// Channel assigned from the prefix (9 for drums).
    pub channel: u8,
    /// Index of the note's first token in the decoded sequence.
    pub token_index: usize,
}

impl DecodedNote {
    /// As a [`MsNote`] (times saturate at `u32::MAX` ms, ~50 days).
    pub fn to_ms_note(&self) -> MsNote {
        let ms = |v: u64| v.min(u32::MAX as u64) as u32;
        MsNote {
            pitch: self.pitch,
            velocity: self.velocity,
            start_ms: ms(self.start_ms),
            end_ms: ms(self.end_ms),
        }
    }
}

/// A decoded pedal change (pedal vocabulary only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodedPedal {
    /// True for `<PED_ON>`.
    pub down: bool,
    /// Time in ms from the sequence start.
    pub at_ms: u64,
}

/// What a token sequence decodes to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detokenized {
    /// Notes stably sorted by start.
    pub notes: Vec<DecodedNote>,
    /// Pedal changes in token order.
    pub pedals: Vec<DecodedPedal>,
    /// `(program, channel)` of each instrument prefix, in order.
    pub instruments: Vec<(u8, u8)>,
}

/// Class names the reference compares, reduced to what decoding needs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Special,
    Prefix,
    Pedal,
    Note(Instrument),
    Drum,
    Onset,
    Dur,
}

fn class(t: &Token) -> Class {
    match t {
        Token::Special(Special::PedOn | Special::PedOff) => Class::Pedal,
        Token::Special(_) => Class::Special,
        Token::Prefix(..) => Class::Prefix,
        Token::Note { instrument, .. } => Class::Note(*instrument),
        Token::Drum(_) => Class::Drum,
        Token::Onset(_) => Class::Onset,
        Token::Dur(_) => Class::Dur,
    }
}

/// The integer the reference reads as `tok[1]` (pedal time offset), if it is one.
fn second_int(t: &Token) -> Option<u64> {
    match t {
        Token::Note { pitch, .. } => Some(*pitch as u64),
        Token::Drum(k) => Some(*k as u64),
        Token::Onset(v) | Token::Dur(v) => Some(*v as u64),
        _ => None,
    }
}

/// The reference's `_detokenize_midi_dict` over a token sequence.
pub(super) fn detokenize(tokens: &[&Token]) -> Detokenized {
    let segment = ABS_TIME_STEP_MS as u64;
    let mut out = Detokenized::default();
    // Channel per instrument (index = Instrument as usize) and for drums.
    let mut channel_of: [Option<u8>; 16] = [None; 16];
    let mut drum_channel: Option<u8> = None;
    let mut next_channel = 0u8;
    let mut tick = 0u64;

    let mut start = None;
    for (i, t) in tokens.iter().enumerate() {
        if next_channel == DRUM_CHANNEL {
            next_channel += 1;
        }
        match t {
            Token::Special(Special::T) => tick += segment,
            Token::Special(s) if !matches!(s, Special::PedOn | Special::PedOff) => {}
            Token::Prefix(c, v) if c == "instrument" && v == "drum" => {
                if drum_channel.is_none() {
                    drum_channel = Some(DRUM_CHANNEL);
                    out.instruments.push((0, DRUM_CHANNEL));
                }
            }
            Token::Prefix(c, v)
                if c == "instrument"
                    && Instrument::from_name(v).is_some_and(Instrument::is_tokenized) =>
            {
                let inst = Instrument::from_name(v).unwrap_or(Instrument::Piano);
                if channel_of[inst as usize].is_none() {
                    channel_of[inst as usize] = Some(next_channel);
                    out.instruments.push((inst.program(), next_channel));
                    next_channel += 1;
                }
            }
            Token::Prefix(c, v) if is_known_prefix(c, v) => {}
            _ => {
                start = Some(i);
                break;
            }
        }
    }
    let Some(start) = start else {
        return out;
    };

    for i in start..tokens.len().saturating_sub(2) {
        let (t1, t2, t3) = (tokens[i], tokens[i + 1], tokens[i + 2]);
        let (c1, c2, c3) = (class(t1), class(t2), class(t3));
        match (t1, c1) {
            (Token::Special(Special::T), _) => tick += segment,
            (_, Class::Special | Class::Prefix | Class::Onset | Class::Dur) => {}
            (Token::Special(s), Class::Pedal) => {
                // The reference reads tok_2[1] as the offset whatever tok_2 is, and crashes when
                // it is not an integer; skip those.
                if let Some(offset) = second_int(t2) {
                    out.pedals.push(DecodedPedal {
                        down: *s == Special::PedOn,
                        at_ms: tick + offset,
                    });
                }
            }
            (Token::Drum(pitch), _) if c2 == Class::Onset => {
                if let (Some(ch), Token::Onset(onset)) = (drum_channel, t2) {
                    let start_ms = tick + *onset as u64;
                    out.notes.push(DecodedNote {
                        pitch: *pitch,
                        velocity: DRUM_VELOCITY,
                        start_ms,
                        end_ms: start_ms + TIME_STEP_MS as u64,
                        channel: ch,
                        token_index: i,
                    });
                }
            }
            (
                Token::Note {
                    instrument,
                    pitch,
                    velocity,
                },
                _,
            ) if c2 == Class::Onset && c3 == Class::Dur && instrument.is_tokenized() => {
                if let (Some(ch), Token::Onset(onset), Token::Dur(dur)) =
                    (channel_of[*instrument as usize], t2, t3)
                {
                    let start_ms = tick + *onset as u64;
                    out.notes.push(DecodedNote {
                        pitch: *pitch,
                        velocity: *velocity,
                        start_ms,
                        end_ms: start_ms + *dur as u64,
                        channel: ch,
                        token_index: i,
                    });
                }
            }
            _ => {}
        }
    }
    // The reference's MidiDict constructor sorts notes by start (stable).
    out.notes.sort_by_key(|n| n.start_ms);
    out
}

/// Whether a prefix token is one of the vocabulary's (composer, form, genre or instrument).
fn is_known_prefix(category: &str, value: &str) -> bool {
    use super::vocab::{COMPOSERS, FORMS, GENRES};
    match category {
        "composer" => COMPOSERS.contains(&value),
        "form" => FORMS.contains(&value),
        "genre" => GENRES.contains(&value),
        "instrument" => {
            value == "drum" || Instrument::from_name(value).is_some_and(Instrument::is_tokenized)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piano() -> Token {
        Token::Prefix("instrument".into(), "piano".into())
    }
    fn note(p: u8) -> Token {
        Token::Note {
            instrument: Instrument::Piano,
            pitch: p,
            velocity: 60,
        }
    }

    fn run(tokens: Vec<Token>) -> Detokenized {
        let refs: Vec<&Token> = tokens.iter().collect();
        detokenize(&refs)
    }

    #[test]
    fn a_note_without_duration_is_skipped() {
        let d = run(vec![
            piano(),
            Token::Special(Special::S),
            note(60),
            Token::Onset(100),
            note(62),
            Token::Onset(200),
            Token::Dur(50),
        ]);
        assert_eq!(d.notes.len(), 1);
        assert_eq!(
            (d.notes[0].pitch, d.notes[0].start_ms, d.notes[0].end_ms),
            (62, 200, 250)
        );
    }

    #[test]
    fn time_tokens_add_segments_and_backward_onsets_are_resorted() {
        let d = run(vec![
            piano(),
            Token::Special(Special::S),
            Token::Special(Special::T),
            note(60),
            Token::Onset(300),
            Token::Dur(10),
            note(61),
            Token::Onset(100),
            Token::Dur(10),
        ]);
        let starts: Vec<u64> = d.notes.iter().map(|n| n.start_ms).collect();
        assert_eq!(starts, vec![5100, 5300]);
    }

    #[test]
    fn notes_without_an_instrument_prefix_are_dropped() {
        let d = run(vec![
            Token::Special(Special::S),
            note(60),
            Token::Onset(0),
            Token::Dur(10),
        ]);
        assert!(d.notes.is_empty());
    }

    #[test]
    fn only_prefix_tokens_decode_to_nothing() {
        assert!(run(vec![piano(), Token::Special(Special::S)])
            .notes
            .is_empty());
        assert!(run(vec![]).notes.is_empty());
    }

    #[test]
    fn a_pedal_token_before_a_special_is_skipped() {
        let d = run(vec![
            piano(),
            Token::Special(Special::S),
            Token::Special(Special::PedOn),
            Token::Special(Special::T),
            Token::Special(Special::PedOff),
            Token::Onset(40),
            Token::Special(Special::E),
        ]);
        assert_eq!(
            d.pedals,
            vec![DecodedPedal {
                down: false,
                at_ms: 5040
            }]
        );
    }
}
