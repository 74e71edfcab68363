//! The reference vocabulary in its exact id order, with O(1) classification of every id.
//!
//! Order (default config, 17727 entries): 6 specials `<S> <E> <P> <U> <D> <T>`; 33 prefix tokens
//! (11 instrument names incl. drum, 12 composers, 8 forms, 2 genres); 16640 note tokens
//! (10 instruments x 128 pitches x 13 velocities); 47 drum tokens (35..=81); 501 duration tokens
//! (0..=5000 ms); 500 onset tokens (0..=4990 ms). The pedal variant appends `<PED_ON>`,
//! `<PED_OFF>` (17729 entries).

use super::quantize::{MAX_DUR_MS, N_DURS, N_ONSETS, N_VELOCITIES, TIME_STEP_MS, VELOCITY_STEP};
use super::{Instrument, Special, Token, TokenKind};

/// Composer names of the reference config, in vocab order.
pub const COMPOSERS: [&str; 12] = [
    "bach",
    "beethoven",
    "mozart",
    "chopin",
    "rachmaninoff",
    "liszt",
    "debussy",
    "schubert",
    "brahms",
    "ravel",
    "satie",
    "scarlatti",
];
/// Form names of the reference config, in vocab order.
pub const FORMS: [&str; 8] = [
    "sonata",
    "prelude",
    "nocturne",
    "\u{e9}tude",
    "waltz",
    "mazurka",
    "impromptu",
    "fugue",
];
/// Genre names of the reference config, in vocab order.
pub const GENRES: [&str; 2] = ["jazz", "classical"];

/// Lowest and highest drum key with a token (General MIDI percussion map 35..=81).
pub const DRUM_KEYS: std::ops::RangeInclusive<u8> = 35..=81;

/// Number of specials before the prefix tokens.
pub const N_SPECIALS: u32 = 6;
/// Number of prefix tokens: 11 instrument names (incl. drum) + 12 composers + 8 forms + 2 genres.
pub const N_PREFIX: u32 =
    (Instrument::TOKENIZED.len() + 1 + COMPOSERS.len() + FORMS.len() + GENRES.len()) as u32;
/// First prefix id.
pub const PREFIX_BASE: u32 = N_SPECIALS;
/// First note id.
pub const NOTE_BASE: u32 = PREFIX_BASE + N_PREFIX;
/// Number of note tokens.
pub const N_NOTES: u32 = Instrument::TOKENIZED.len() as u32 * 128 * N_VELOCITIES;
/// First drum id.
pub const DRUM_BASE: u32 = NOTE_BASE + N_NOTES;
/// First duration id (duration 0 ms).
pub const DUR_BASE: u32 = DRUM_BASE + (*DRUM_KEYS.end() - *DRUM_KEYS.start() + 1) as u32;
/// First onset id (onset 0 ms).
pub const ONSET_BASE: u32 = DUR_BASE + N_DURS;
/// Size of the default vocabulary.
pub const DEFAULT_VOCAB_SIZE: u32 = ONSET_BASE + N_ONSETS;
/// Size of the pedal vocabulary (`<PED_ON>`, `<PED_OFF>` appended).
pub const PEDAL_VOCAB_SIZE: u32 = DEFAULT_VOCAB_SIZE + 2;

/// The vocabulary: tokens by id and their kinds, built once.
#[derive(Clone, Debug)]
pub struct Vocab {
    tokens: Vec<Token>,
    kinds: Vec<TokenKind>,
    pedal: bool,
}

impl Vocab {
    /// Builds the vocabulary in reference order; `pedal` appends the two pedal tokens.
    pub fn build(pedal: bool) -> Self {
        let mut tokens = Vec::with_capacity(PEDAL_VOCAB_SIZE as usize);
        for s in Special::BASE {
            tokens.push(Token::Special(s));
        }
        for i in Instrument::TOKENIZED {
            tokens.push(Token::Prefix("instrument".into(), i.name().into()));
        }
        tokens.push(Token::Prefix("instrument".into(), "drum".into()));
        for c in COMPOSERS {
            tokens.push(Token::Prefix("composer".into(), c.into()));
        }
        for f in FORMS {
            tokens.push(Token::Prefix("form".into(), f.into()));
        }
        for g in GENRES {
            tokens.push(Token::Prefix("genre".into(), g.into()));
        }
        for instrument in Instrument::TOKENIZED {
            for pitch in 0..=127u8 {
                for v in 0..N_VELOCITIES {
                    tokens.push(Token::Note {
                        instrument,
                        pitch,
                        velocity: (v * VELOCITY_STEP) as u8,
                    });
                }
            }
        }
        for k in DRUM_KEYS {
            tokens.push(Token::Drum(k));
        }
        for d in 0..N_DURS {
            tokens.push(Token::Dur(d * TIME_STEP_MS));
        }
        for o in 0..N_ONSETS {
            tokens.push(Token::Onset(o * TIME_STEP_MS));
        }
        if pedal {
            tokens.push(Token::Special(Special::PedOn));
            tokens.push(Token::Special(Special::PedOff));
        }
        let kinds = tokens.iter().map(Token::kind).collect();
        Vocab {
            tokens,
            kinds,
            pedal,
        }
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when the vocabulary has no ids (never: kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether the pedal tokens are part of the vocabulary.
    pub fn has_pedal(&self) -> bool {
        self.pedal
    }

    /// The token of an id.
    pub fn token(&self, id: u32) -> Option<&Token> {
        self.tokens.get(id as usize)
    }

    /// The kind of an id.
    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.kinds.get(id as usize).copied()
    }

    /// The id of a special token (`None` for the pedal tokens of a vocabulary without them).
    pub fn special_id(&self, s: Special) -> Option<u32> {
        match s {
            Special::PedOn if self.pedal => Some(DEFAULT_VOCAB_SIZE),
            Special::PedOff if self.pedal => Some(DEFAULT_VOCAB_SIZE + 1),
            Special::PedOn | Special::PedOff => None,
            base => Some(base as u32),
        }
    }

    /// The id of a token, computed from the layout (no hashing on the encode path).
    pub fn id(&self, t: &Token) -> Option<u32> {
        match t {
            Token::Special(s) => self.special_id(*s),
            Token::Prefix(..) => self.tokens[PREFIX_BASE as usize..NOTE_BASE as usize]
                .iter()
                .position(|p| p == t)
                .map(|i| PREFIX_BASE + i as u32),
            Token::Note {
                instrument,
                pitch,
                velocity,
            } => {
                let slot = instrument.tokenized_index()? as u32;
                let v = *velocity as u32;
                if *pitch > 127
                    || !v.is_multiple_of(VELOCITY_STEP)
                    || v / VELOCITY_STEP >= N_VELOCITIES
                {
                    return None;
                }
                Some(NOTE_BASE + (slot * 128 + *pitch as u32) * N_VELOCITIES + v / VELOCITY_STEP)
            }
            Token::Drum(k) if DRUM_KEYS.contains(k) => {
                Some(DRUM_BASE + (*k - *DRUM_KEYS.start()) as u32)
            }
            Token::Drum(_) => None,
            Token::Dur(ms) if ms.is_multiple_of(TIME_STEP_MS) && *ms <= MAX_DUR_MS => {
                Some(DUR_BASE + ms / TIME_STEP_MS)
            }
            Token::Onset(ms) if ms.is_multiple_of(TIME_STEP_MS) && *ms < MAX_DUR_MS => {
                Some(ONSET_BASE + ms / TIME_STEP_MS)
            }
            Token::Dur(_) | Token::Onset(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_default_size() {
        assert_eq!(DEFAULT_VOCAB_SIZE, 17727);
        assert_eq!(Vocab::build(false).len(), 17727);
        assert_eq!(Vocab::build(true).len(), 17729);
    }

    #[test]
    fn computed_ids_agree_with_table_positions() {
        let v = Vocab::build(true);
        for id in 0..v.len() as u32 {
            let t = v.token(id).unwrap().clone();
            assert_eq!(v.id(&t), Some(id), "{t:?}");
        }
    }
}
