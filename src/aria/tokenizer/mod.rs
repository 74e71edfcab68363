//! Aria's `AbsTokenizer` (ariautils, default config): notes in ms <-> token ids, bit-exact with the
//! reference.
//!
//! Principal types: [`Token`] (one vocabulary entry, in the reference's notation), [`TokenKind`]
//! (its cheap class, used by the sampling mask), [`Tokenizer`] (the vocabulary plus the encode and
//! decode paths). A note is three tokens: `(instrument, pitch, velocity)`, `("onset", ms within
//! the current 5000 ms segment)`, `("dur", ms)`; a `<T>` marks each crossing of a 5000 ms
//! boundary. [`crate::aria::midi_dict::MidiDict`] is the reference's view of a MIDI file that the
//! encoder reads. Everything here is pure: no files, threads or clocks.
//!
//! Thread: the generation worker calls it. It allocates (token vectors, a few small maps), so it
//! stays off the real-time MIDI and scheduler threads; measured cost (`cargo bench --bench
//! tokenizer`) is ~6 us to encode a two-bar prompt and ~1.4 us to decode a 96-token bar.

mod decode;
mod encode;
pub mod quantize;
pub mod vocab;

use serde_json::Value;

pub use decode::{DecodedNote, DecodedPedal, Detokenized};
pub use encode::{Case, EncodeOptions};

use crate::aria::midi_dict::MidiDict;
use crate::music::note::{MsNote, Prompt};
use vocab::Vocab;

/// Special tokens; the discriminant is the id for the first six.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Special {
    /// `<S>`: start of the note sequence (after the prefix).
    S = 0,
    /// `<E>`: end of the piece.
    E = 1,
    /// `<P>`: padding.
    P = 2,
    /// `<U>`: unknown token (what an id outside the vocabulary decodes to).
    U = 3,
    /// `<D>`: "diminish", placed ~100 tokens before the end of long training pieces.
    D = 4,
    /// `<T>`: the onset clock crossed a 5000 ms segment boundary.
    T = 5,
    /// `<PED_ON>`: sustain pedal down (pedal vocabulary only, id 17727).
    PedOn = 6,
    /// `<PED_OFF>`: sustain pedal up (pedal vocabulary only, id 17728).
    PedOff = 7,
}

impl Special {
    /// The six specials every vocabulary starts with, in id order.
    pub const BASE: [Special; 6] = [
        Special::S,
        Special::E,
        Special::P,
        Special::U,
        Special::D,
        Special::T,
    ];

    /// The reference's spelling, e.g. `<S>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Special::S => "<S>",
            Special::E => "<E>",
            Special::P => "<P>",
            Special::U => "<U>",
            Special::D => "<D>",
            Special::T => "<T>",
            Special::PedOn => "<PED_ON>",
            Special::PedOff => "<PED_OFF>",
        }
    }

    /// Parses the reference's spelling.
    pub fn from_str_ref(s: &str) -> Option<Special> {
        [
            Special::S,
            Special::E,
            Special::P,
            Special::U,
            Special::D,
            Special::T,
            Special::PedOn,
            Special::PedOff,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// The 16 General MIDI instrument families the reference maps programs to (8 programs each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Instrument {
    /// Programs 0..=7.
    Piano,
    /// Programs 8..=15 (chromatic percussion; not tokenized).
    Chromatic,
    /// Programs 16..=23.
    Organ,
    /// Programs 24..=31.
    Guitar,
    /// Programs 32..=39.
    Bass,
    /// Programs 40..=47.
    Strings,
    /// Programs 48..=55.
    Ensemble,
    /// Programs 56..=63.
    Brass,
    /// Programs 64..=71.
    Reed,
    /// Programs 72..=79.
    Pipe,
    /// Programs 80..=87.
    SynthLead,
    /// Programs 88..=95 (not tokenized).
    SynthPad,
    /// Programs 96..=103 (not tokenized).
    SynthEffect,
    /// Programs 104..=111 (not tokenized).
    Ethnic,
    /// Programs 112..=119 (not tokenized).
    Percussive,
    /// Programs 120..=127 (not tokenized).
    Sfx,
}

impl Instrument {
    /// All families in program order (family = program / 8).
    pub const ALL: [Instrument; 16] = [
        Instrument::Piano,
        Instrument::Chromatic,
        Instrument::Organ,
        Instrument::Guitar,
        Instrument::Bass,
        Instrument::Strings,
        Instrument::Ensemble,
        Instrument::Brass,
        Instrument::Reed,
        Instrument::Pipe,
        Instrument::SynthLead,
        Instrument::SynthPad,
        Instrument::SynthEffect,
        Instrument::Ethnic,
        Instrument::Percussive,
        Instrument::Sfx,
    ];

    /// The 10 families the default config keeps (others are removed before tokenizing), in
    /// vocabulary order.
    pub const TOKENIZED: [Instrument; 10] = [
        Instrument::Piano,
        Instrument::Organ,
        Instrument::Guitar,
        Instrument::Bass,
        Instrument::Strings,
        Instrument::Ensemble,
        Instrument::Brass,
        Instrument::Reed,
        Instrument::Pipe,
        Instrument::SynthLead,
    ];

    /// The reference's name, e.g. `synth_lead`.
    pub fn name(self) -> &'static str {
        match self {
            Instrument::Piano => "piano",
            Instrument::Chromatic => "chromatic",
            Instrument::Organ => "organ",
            Instrument::Guitar => "guitar",
            Instrument::Bass => "bass",
            Instrument::Strings => "strings",
            Instrument::Ensemble => "ensemble",
            Instrument::Brass => "brass",
            Instrument::Reed => "reed",
            Instrument::Pipe => "pipe",
            Instrument::SynthLead => "synth_lead",
            Instrument::SynthPad => "synth_pad",
            Instrument::SynthEffect => "synth_effect",
            Instrument::Ethnic => "ethnic",
            Instrument::Percussive => "percussive",
            Instrument::Sfx => "sfx",
        }
    }

    /// Parses the reference's name.
    pub fn from_name(s: &str) -> Option<Instrument> {
        Self::ALL.into_iter().find(|i| i.name() == s)
    }

    /// The family of a MIDI program (0..=127; higher values are masked to 7 bits).
    pub fn from_program(program: u8) -> Instrument {
        Self::ALL[((program & 0x7F) / 8) as usize]
    }

    /// The program the reference writes for this family when detokenizing (config
    /// `instrument_programs`: piano 0, organ 16, ..., pipe 73).
    pub fn program(self) -> u8 {
        match self {
            Instrument::Chromatic => 13,
            Instrument::Pipe => 73,
            other => other as u8 * 8,
        }
    }

    /// Whether the default config tokenizes this family.
    pub fn is_tokenized(self) -> bool {
        self.tokenized_index().is_some()
    }

    /// Position among [`Instrument::TOKENIZED`].
    pub fn tokenized_index(self) -> Option<usize> {
        Self::TOKENIZED.iter().position(|&i| i == self)
    }
}

/// One vocabulary entry, in the reference's notation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Token {
    /// A special token such as `<S>` or `<T>`.
    Special(Special),
    /// `("prefix", category, value)`, e.g. `("prefix", "instrument", "piano")`.
    Prefix(String, String),
    /// `(instrument, pitch, velocity)`: the first token of a note; velocity is on the 10-grid.
    Note {
        /// Instrument family.
        instrument: Instrument,
        /// MIDI key.
        pitch: u8,
        /// Quantised velocity 0..=120.
        velocity: u8,
    },
    /// `("drum", key)`: a drum hit (channel 10), followed by an onset only.
    Drum(u8),
    /// `("onset", ms)`: note start within the current 5000 ms segment.
    Onset(u32),
    /// `("dur", ms)`: note duration.
    Dur(u32),
}

/// Cheap class of a token id, for the sampling mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A special token.
    Special(Special),
    /// A prefix token.
    Prefix,
    /// A note token (instrument, pitch, velocity).
    Note,
    /// A drum token.
    Drum,
    /// An onset token.
    Onset,
    /// A duration token.
    Dur,
}

impl Token {
    /// The class of this token.
    pub fn kind(&self) -> TokenKind {
        match self {
            Token::Special(s) => TokenKind::Special(*s),
            Token::Prefix(..) => TokenKind::Prefix,
            Token::Note { .. } => TokenKind::Note,
            Token::Drum(_) => TokenKind::Drum,
            Token::Onset(_) => TokenKind::Onset,
            Token::Dur(_) => TokenKind::Dur,
        }
    }

    /// The reference's JSON notation: a string for specials, an array for tuples.
    pub fn to_json(&self) -> Value {
        match self {
            Token::Special(s) => Value::from(s.as_str()),
            Token::Prefix(c, v) => Value::from(vec![
                Value::from("prefix"),
                Value::from(c.as_str()),
                Value::from(v.as_str()),
            ]),
            Token::Note {
                instrument,
                pitch,
                velocity,
            } => Value::from(vec![
                Value::from(instrument.name()),
                Value::from(*pitch),
                Value::from(*velocity),
            ]),
            Token::Drum(k) => Value::from(vec![Value::from("drum"), Value::from(*k)]),
            Token::Onset(ms) => Value::from(vec![Value::from("onset"), Value::from(*ms)]),
            Token::Dur(ms) => Value::from(vec![Value::from("dur"), Value::from(*ms)]),
        }
    }

    /// Parses the reference's JSON notation (`None` for anything that is not a token).
    pub fn from_json(v: &Value) -> Option<Token> {
        if let Some(s) = v.as_str() {
            return Special::from_str_ref(s).map(Token::Special);
        }
        let a = v.as_array()?;
        let head = a.first()?.as_str()?;
        let int = |i: usize| a.get(i).and_then(Value::as_u64);
        match (head, a.len()) {
            ("prefix", 3) => Some(Token::Prefix(
                a[1].as_str()?.to_owned(),
                a[2].as_str()?.to_owned(),
            )),
            ("drum", 2) => Some(Token::Drum(u8::try_from(int(1)?).ok()?)),
            ("onset", 2) => Some(Token::Onset(u32::try_from(int(1)?).ok()?)),
            ("dur", 2) => Some(Token::Dur(u32::try_from(int(1)?).ok()?)),
            (name, 3) => Some(Token::Note {
                instrument: Instrument::from_name(name)?,
                pitch: u8::try_from(int(1)?).ok()?,
                velocity: u8::try_from(int(2)?).ok()?,
            }),
            _ => None,
        }
    }
}

/// Errors of the tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// The model's vocabulary size matches neither tokenizer variant.
    #[error(
        "model vocabulary has {0} entries; Aria's tokenizer has 17727 (default) or 17729 (with \
         <PED_ON>/<PED_OFF>): check that the checkpoint is an Aria model"
    )]
    UnsupportedVocabSize(usize),
    /// Nothing to tokenize once the ignored instruments are removed.
    #[error(
        "no notes to tokenize after removing ignored instruments (chromatic, synth pad/effect, \
         ethnic, percussive, sfx): the MIDI file needs at least one note of a kept instrument"
    )]
    NoNotes,
    /// The pedal vocabulary only models solo piano.
    #[error(
        "the pedal vocabulary (17729) only supports piano, but the file uses other instruments \
         or only drums: use a 17727-entry model for this file"
    )]
    PedalNeedsPiano,
}

/// Aria's `AbsTokenizer`: the vocabulary and both directions of the conversion.
#[derive(Clone, Debug)]
pub struct Tokenizer {
    vocab: Vocab,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Tokenizer {
    /// The default tokenizer (17727 ids, no pedal tokens).
    pub fn new() -> Self {
        Tokenizer {
            vocab: Vocab::build(false),
        }
    }

    /// The tokenizer that matches a model's vocabulary size: 17727 (default) or 17729 (pedal).
    pub fn for_vocab_size(n: usize) -> Result<Self, TokenizerError> {
        let pedal = match u32::try_from(n) {
            Ok(vocab::DEFAULT_VOCAB_SIZE) => false,
            Ok(vocab::PEDAL_VOCAB_SIZE) => true,
            _ => return Err(TokenizerError::UnsupportedVocabSize(n)),
        };
        Ok(Tokenizer {
            vocab: Vocab::build(pedal),
        })
    }

    /// Number of ids.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// Whether pedal changes are tokens (`<PED_ON>`, `<PED_OFF>`) in this vocabulary.
    pub fn has_pedal(&self) -> bool {
        self.vocab.has_pedal()
    }

    /// The id of a token, `None` when it is not in the vocabulary.
    pub fn id(&self, t: &Token) -> Option<u32> {
        self.vocab.id(t)
    }

    /// The token of an id, `None` outside the vocabulary.
    pub fn token(&self, id: u32) -> Option<&Token> {
        self.vocab.token(id)
    }

    /// The class of an id in O(1), `None` outside the vocabulary.
    pub fn kind(&self, id: u32) -> Option<TokenKind> {
        self.vocab.kind(id)
    }

    /// The onset in ms of an onset id.
    pub fn onset_ms(&self, id: u32) -> Option<u32> {
        match self.vocab.token(id)? {
            Token::Onset(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The duration in ms of a duration id.
    pub fn dur_ms(&self, id: u32) -> Option<u32> {
        match self.vocab.token(id)? {
            Token::Dur(ms) => Some(*ms),
            _ => None,
        }
    }

    /// The id of a special token; the pedal tokens of a vocabulary without them give `<U>`'s id.
    pub fn special_id(&self, s: Special) -> u32 {
        self.vocab.special_id(s).unwrap_or(Special::U as u32)
    }

    /// Tokens to ids; a token outside the vocabulary becomes `<U>` (as the reference does).
    pub fn encode(&self, tokens: &[Token]) -> Vec<u32> {
        let unk = Special::U as u32;
        tokens
            .iter()
            .map(|t| self.vocab.id(t).unwrap_or(unk))
            .collect()
    }

    /// Ids to tokens; an id outside the vocabulary becomes `<U>` (as the reference does).
    pub fn decode(&self, ids: &[u32]) -> Vec<Token> {
        const UNK: Token = Token::Special(Special::U);
        ids.iter()
            .map(|&id| self.vocab.token(id).unwrap_or(&UNK).clone())
            .collect()
    }

    /// Tokenizes a [`MidiDict`] as the reference's `tokenize(midi_dict, **options)`.
    pub fn tokenize(
        &self,
        md: &MidiDict,
        opts: &EncodeOptions,
    ) -> Result<Vec<Token>, TokenizerError> {
        encode::tokenize(md, opts, self.has_pedal())
    }

    /// Tokenizes a [`MidiDict`] in one of the named cases.
    pub fn tokenize_case(&self, md: &MidiDict, case: Case) -> Result<Vec<Token>, TokenizerError> {
        self.tokenize(md, &case.options())
    }

    /// Live prompt (prompt case, leading silence kept) -> ids.
    ///
    /// Equal to tokenizing the same notes written to a MIDI file at 500 ticks per beat and tempo
    /// 500000 (1 tick = 1 ms), channel 0, program 0. A prompt without notes gives the piano prefix
    /// and `<S>` (the reference refuses it; a model can still continue from there).
    pub fn encode_prompt(&self, prompt: &Prompt) -> Vec<u32> {
        let md = MidiDict::from_prompt(prompt);
        match self.tokenize(&md, &Case::Prompt.options()) {
            Ok(tokens) => self.encode(&tokens),
            Err(_) => self.empty_prompt_ids(),
        }
    }

    /// What a prompt without notes encodes to: the piano prefix and `<S>`.
    fn empty_prompt_ids(&self) -> Vec<u32> {
        vec![
            self.id(&Token::Prefix("instrument".into(), "piano".into()))
                .unwrap_or(Special::U as u32),
            Special::S as u32,
        ]
    }

    /// Live prompt re-based at its first event -> (ids, offset in ms of that event).
    ///
    /// This is how the reference's own inference prompts the model (leading silence removed: the
    /// first note sits at onset 0, all the model saw after `<S>` in training); no `<D>`, no `<E>`.
    /// Add the offset back to notes decoded from the continuation to place them in the prompt's
    /// time. An empty prompt gives the piano prefix, `<S>` and offset 0.
    pub fn encode_prompt_rebased(&self, prompt: &Prompt) -> (Vec<u32>, u32) {
        let md = MidiDict::from_prompt(prompt);
        let opts = EncodeOptions {
            remove_preceding_silence: true,
            ..Case::Prompt.options()
        };
        match encode::tokenize_with_origin(&md, &opts, self.has_pedal()) {
            // 1 tick = 1 ms in a prompt's dict.
            Ok((tokens, origin)) => (self.encode(&tokens), origin.min(u32::MAX as u64) as u32),
            Err(_) => (self.empty_prompt_ids(), 0),
        }
    }

    /// Reference detokenization of a token sequence (notes and pedal changes in ms, with the
    /// channel the reference assigns from the instrument prefix tokens).
    pub fn detokenize(&self, tokens: &[Token]) -> Detokenized {
        let refs: Vec<&Token> = tokens.iter().collect();
        decode::detokenize(&refs)
    }

    /// Reference detokenization of ids (unknown ids read as `<U>`).
    pub fn detokenize_ids(&self, ids: &[u32]) -> Detokenized {
        const UNK: Token = Token::Special(Special::U);
        let refs: Vec<&Token> = ids
            .iter()
            .map(|&id| self.vocab.token(id).unwrap_or(&UNK))
            .collect();
        decode::detokenize(&refs)
    }

    /// Model output (any ids, possibly malformed) -> notes in ms from the sequence start
    /// (reference rules), sorted by start.
    ///
    /// `ids` must be the whole sequence from its prefix (prompt ids followed by generated ids):
    /// the reference only decodes notes of instruments named in the prefix and counts time from
    /// the `<T>` tokens before them. Drum hits and velocity-0 notes (silent in MIDI) are left out.
    /// Pedal tokens (pedal vocabulary) are not applied: in training, durations already include
    /// the sustain; [`Tokenizer::detokenize_ids`] returns them.
    pub fn decode_notes(&self, ids: &[u32]) -> Vec<MsNote> {
        self.decode_notes_from(ids, 0)
    }

    /// As [`Tokenizer::decode_notes`], keeping only notes whose first token is at index
    /// `first_index` or later (e.g. the prompt's length: only what the model generated).
    pub fn decode_notes_from(&self, ids: &[u32], first_index: usize) -> Vec<MsNote> {
        self.detokenize_ids(ids)
            .notes
            .iter()
            .filter(|n| {
                n.token_index >= first_index && n.channel != decode::DRUM_CHANNEL && n.velocity > 0
            })
            .map(DecodedNote::to_ms_note)
            .collect()
    }
}
