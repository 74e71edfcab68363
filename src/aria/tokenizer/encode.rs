//! MidiDict -> tokens, as the reference's `AbsTokenizer.tokenize`.

use super::quantize::{quantize_dur, quantize_onset, quantize_velocity, ABS_TIME_STEP_MS};
use super::vocab::{COMPOSERS, FORMS, GENRES};
use super::{Instrument, Special, Token, TokenKind, TokenizerError};
use crate::aria::midi_dict::{MidiDict, DRUM_CHANNEL};

/// Options of the reference's `tokenize` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Start the clock at the first event instead of tick 0.
    pub remove_preceding_silence: bool,
    /// Insert `<D>` about 100 tokens before the end of sequences longer than 150 tokens.
    pub add_dim_tok: bool,
    /// Append `<E>`.
    pub add_eos_tok: bool,
    /// Where `<D>` goes: the reference draws this in -10..=10 at random (its position is
    /// `-100 + dim_offset` from the end, moved back to the note token when it lands on an onset
    /// or a duration). Values outside the range are clamped.
    pub dim_offset: i8,
}

/// The two ways this crate tokenizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// The reference's defaults: leading silence removed, `<D>` and `<E>` added.
    Default,
    /// A prompt: leading silence kept, no `<D>`, no `<E>` (the sequence continues).
    Prompt,
}

impl Case {
    /// The options of this case (`<D>` at the centre of the reference's random range).
    pub fn options(self) -> EncodeOptions {
        match self {
            Case::Default => EncodeOptions {
                remove_preceding_silence: true,
                add_dim_tok: true,
                add_eos_tok: true,
                dim_offset: 0,
            },
            Case::Prompt => EncodeOptions {
                remove_preceding_silence: false,
                add_dim_tok: false,
                add_eos_tok: false,
                dim_offset: 0,
            },
        }
    }
}

/// One event of the merged, time-ordered stream the encoder walks.
enum Event {
    Note(usize),
    Pedal(usize),
}

/// The reference's `_tokenize_midi_dict`.
pub(super) fn tokenize(
    source: &MidiDict,
    opts: &EncodeOptions,
    include_pedal: bool,
) -> Result<Vec<Token>, TokenizerError> {
    tokenize_with_origin(source, opts, include_pedal).map(|(tokens, _)| tokens)
}

/// As [`tokenize`], also giving the tick the clock starts from (the first event's tick when
/// leading silence is removed, else 0).
pub(super) fn tokenize_with_origin(
    source: &MidiDict,
    opts: &EncodeOptions,
    include_pedal: bool,
) -> Result<(Vec<Token>, u64), TokenizerError> {
    let md = source.without_ignored_instruments();
    if md.notes.is_empty() {
        return Err(TokenizerError::NoNotes);
    }
    let intervals = md.pedal_intervals();

    let mut used = [false; 16];
    for n in &md.notes {
        used[(n.channel & 0x0F) as usize] = true;
    }
    // Last program change per channel wins (messages are sorted by tick).
    let mut instrument_of: [Option<Instrument>; 16] = [None; 16];
    for m in &md.instrument_msgs {
        if m.channel != DRUM_CHANNEL {
            instrument_of[(m.channel & 0x0F) as usize] = Some(Instrument::from_program(m.program));
        }
    }
    for ch in 0..16 {
        if used[ch] && ch != DRUM_CHANNEL as usize && instrument_of[ch].is_none() {
            instrument_of[ch] = Some(Instrument::Piano);
        }
    }
    let mut instruments: Vec<Instrument> = instrument_of.iter().flatten().copied().collect();
    instruments.sort();
    instruments.dedup();
    if include_pedal && instruments != [Instrument::Piano] {
        return Err(TokenizerError::PedalNeedsPiano);
    }

    // The reference shuffles the prefix at random; this order is the vocabulary's.
    let mut prefix: Vec<Token> = Vec::new();
    let meta = [
        ("genre", md.metadata.genre.as_deref(), &GENRES[..]),
        ("form", md.metadata.form.as_deref(), &FORMS[..]),
        ("composer", md.metadata.composer.as_deref(), &COMPOSERS[..]),
    ];
    for (category, value, known) in meta {
        if let Some(v) = value.filter(|v| known.contains(v)) {
            prefix.push(Token::Prefix(category.into(), v.into()));
        }
    }
    for i in &instruments {
        prefix.push(Token::Prefix("instrument".into(), i.name().into()));
    }
    if used[DRUM_CHANNEL as usize] {
        prefix.push(Token::Prefix("instrument".into(), "drum".into()));
    }

    // Notes then pedals, stably sorted by tick: a note and a pedal change at one tick keep
    // note-first order.
    let mut events: Vec<(u64, Event)> = md
        .notes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.start, Event::Note(i)))
        .collect();
    if include_pedal {
        events.extend(
            md.pedal_msgs
                .iter()
                .enumerate()
                .map(|(i, p)| (p.tick, Event::Pedal(i))),
        );
        events.sort_by_key(|e| e.0);
    }
    let initial_tick = if opts.remove_preceding_silence {
        events[0].0
    } else {
        0
    };

    let segment = ABS_TIME_STEP_MS as i64;
    let mut seq: Vec<Token> = Vec::with_capacity(3 * md.notes.len() + 16);
    let mut curr_ms = 0i64;
    for (tick, ev) in &events {
        let prev_ms = curr_ms;
        curr_ms = md.duration_ms(initial_tick, *tick);
        // `<T>` count is decided on the unquantised ms: 4995 ms stays in segment 0 as onset 4990.
        let crossings = curr_ms.div_euclid(segment) - prev_ms.div_euclid(segment);
        for _ in 0..crossings.max(0) {
            seq.push(Token::Special(Special::T));
        }
        let onset = Token::Onset(quantize_onset(curr_ms.rem_euclid(segment)));
        let channel = match ev {
            Event::Note(i) => md.notes[*i].channel,
            Event::Pedal(i) => md.pedal_msgs[*i].channel,
        };
        match ev {
            _ if channel == DRUM_CHANNEL => {
                match ev {
                    Event::Note(i) => seq.push(Token::Drum(md.notes[*i].pitch)),
                    // The reference emits ("drum", None) here, which encodes as <U>.
                    Event::Pedal(_) => seq.push(Token::Special(Special::U)),
                }
                seq.push(onset);
            }
            Event::Pedal(i) => {
                let s = if md.pedal_msgs[*i].down {
                    Special::PedOn
                } else {
                    Special::PedOff
                };
                seq.push(Token::Special(s));
                seq.push(onset);
            }
            Event::Note(i) => {
                let n = md.notes[*i];
                let mut end = n.end;
                // A note released while the pedal is down sounds until the pedal comes up.
                if let Some(&(_, pedal_end)) = intervals[(channel & 0x0F) as usize]
                    .iter()
                    .find(|&&(s, e)| s < end && end < e)
                {
                    end = pedal_end;
                }
                let instrument =
                    instrument_of[(channel & 0x0F) as usize].unwrap_or(Instrument::Piano);
                seq.push(Token::Note {
                    instrument,
                    pitch: n.pitch,
                    velocity: quantize_velocity(n.velocity as i64) as u8,
                });
                seq.push(onset);
                seq.push(Token::Dur(quantize_dur(md.duration_ms(n.start, end))));
            }
        }
    }

    if opts.add_dim_tok && seq.len() > 150 {
        let idx = seq.len() as i64 - 100 + opts.dim_offset.clamp(-10, 10) as i64;
        // Never between a note and its onset/duration.
        let at = match seq[idx as usize].kind() {
            TokenKind::Onset => idx - 1,
            TokenKind::Dur => idx - 2,
            _ => idx,
        };
        seq.insert(at.max(0) as usize, Token::Special(Special::D));
    }

    let mut out = Vec::with_capacity(prefix.len() + seq.len() + 2);
    out.extend(prefix);
    out.push(Token::Special(Special::S));
    out.extend(seq);
    if opts.add_eos_tok {
        out.push(Token::Special(Special::E));
    }
    Ok((out, initial_tick))
}
