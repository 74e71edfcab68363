//! Which token ids may come next in a live continuation (pure: no ORT, no clock).
//!
//! Aria writes a note as `(piano, pitch, velocity)`, `("onset", ms)`, `("dur", ms)`, and a `<T>`
//! each time the clock crosses a 5000 ms segment. A jam wants exactly that and nothing else, so
//! [`Grammar::allowed`] gives the id ranges legal in the current [`Cursor`] state: a note or `<T>`
//! (or a pedal change in the pedal vocabulary) between notes, then an onset no earlier than the
//! previous one in the same segment, then a duration. `<S>`, `<P>`, `<U>`, prefix tokens, other
//! instruments and drums never; `<E>` and `<D>` end a piece, which a jam does not want. The
//! sampler draws only from these ranges, so malformed triples are never produced (rather than
//! dropped afterwards). The cursor also tracks absolute time, so the generator knows when an
//! onset passes the end of the window it fills.

use std::ops::Range;

use crate::aria::tokenizer::{Instrument, Special, Token, TokenKind, Tokenizer};

/// Length of one `<T>` segment in ms.
pub const SEGMENT_MS: u32 = 5000;

/// What the next token must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// A note, a `<T>`, or a pedal change.
    Note,
    /// The onset of the note just started.
    Onset,
    /// The duration of the note just placed.
    Dur,
}

/// Where a sequence stands: the expected token and the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// What comes next.
    pub expect: Expect,
    /// `<T>` tokens seen so far.
    pub segment: u32,
    /// Onset of the latest note in the current segment, ms within the segment.
    pub last_onset_ms: u32,
}

/// What a token did to the sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing time-related.
    Other,
    /// A note was placed at this absolute ms (from the sequence origin).
    Onset(u32),
    /// The clock moved to the start of the next segment, at this absolute ms.
    Segment(u32),
    /// `<E>`: the piece ended.
    End,
}

/// The id ranges of each token class, read once from the tokenizer.
#[derive(Clone, Debug)]
pub struct Grammar {
    notes: Vec<Range<u32>>,
    time: u32,
    pedal: Vec<Range<u32>>,
    /// Onset ids, ascending by ms when `onsets_sorted`.
    onsets: Range<u32>,
    onsets_sorted: bool,
    durs: Vec<Range<u32>>,
    onset_step_ms: u32,
}

/// Merges ascending ids into ranges.
fn ranges(ids: impl Iterator<Item = u32>) -> Vec<Range<u32>> {
    let mut out: Vec<Range<u32>> = Vec::new();
    for id in ids {
        match out.last_mut() {
            Some(r) if r.end == id => r.end = id + 1,
            _ => out.push(id..id + 1),
        }
    }
    out
}

impl Grammar {
    /// Reads the classes of every id of `tok` (17727 ids: ~1 ms, once per model load).
    pub fn new(tok: &Tokenizer) -> Self {
        let n = tok.vocab_size() as u32;
        let notes = ranges((0..n).filter(|&id| {
            matches!(
                tok.token(id),
                Some(Token::Note {
                    instrument: Instrument::Piano,
                    ..
                })
            )
        }));
        let kind_ids = |k: TokenKind| (0..n).filter(move |&id| tok.kind(id) == Some(k));
        let onset_ids: Vec<u32> = kind_ids(TokenKind::Onset).collect();
        let onsets = match (onset_ids.first(), onset_ids.last()) {
            (Some(&a), Some(&b)) => a..b + 1,
            _ => 0..0,
        };
        let onset_ms: Vec<u32> = onset_ids.iter().filter_map(|&i| tok.onset_ms(i)).collect();
        let contiguous = onset_ids.windows(2).all(|w| w[1] == w[0] + 1);
        let ascending = onset_ms.windows(2).all(|w| w[1] > w[0]);
        let step = onset_ms.get(1).copied().unwrap_or(10);
        let uniform = onset_ms
            .iter()
            .enumerate()
            .all(|(i, &ms)| ms == i as u32 * step);
        let pedal = if tok.has_pedal() {
            ranges(
                [Special::PedOn, Special::PedOff]
                    .into_iter()
                    .map(|s| tok.special_id(s)),
            )
        } else {
            Vec::new()
        };
        Grammar {
            notes,
            time: tok.special_id(Special::T),
            pedal,
            onsets,
            onsets_sorted: contiguous && ascending && uniform,
            durs: ranges(kind_ids(TokenKind::Dur)),
            onset_step_ms: step,
        }
    }

    /// The cursor after `ids` (a prompt: prefix, `<S>`, notes).
    pub fn start(&self, tok: &Tokenizer, ids: &[u32]) -> Cursor {
        let mut c = Cursor {
            expect: Expect::Note,
            segment: 0,
            last_onset_ms: 0,
        };
        for &id in ids {
            self.advance(tok, &mut c, id);
        }
        c
    }

    /// Moves the cursor past `id`.
    pub fn advance(&self, tok: &Tokenizer, c: &mut Cursor, id: u32) -> Step {
        match tok.kind(id) {
            Some(TokenKind::Special(Special::T)) => {
                c.segment += 1;
                c.last_onset_ms = 0;
                c.expect = Expect::Note;
                Step::Segment(c.segment * SEGMENT_MS)
            }
            Some(TokenKind::Special(Special::E)) => Step::End,
            Some(TokenKind::Note) => {
                c.expect = Expect::Onset;
                Step::Other
            }
            // A drum hit is followed by its onset only.
            Some(TokenKind::Drum) => {
                c.expect = Expect::Onset;
                Step::Other
            }
            Some(TokenKind::Onset) => {
                let ms = tok.onset_ms(id).unwrap_or(0);
                c.last_onset_ms = ms;
                c.expect = Expect::Dur;
                Step::Onset(c.segment * SEGMENT_MS + ms)
            }
            Some(TokenKind::Dur) => {
                c.expect = Expect::Note;
                Step::Other
            }
            _ => Step::Other,
        }
    }

    /// The ids that may follow in state `c`, written to `out` (cleared first).
    pub fn allowed(&self, c: &Cursor, out: &mut Vec<Range<u32>>) {
        out.clear();
        match c.expect {
            Expect::Note => {
                out.extend(self.notes.iter().cloned());
                out.push(self.time..self.time + 1);
                out.extend(self.pedal.iter().cloned());
            }
            Expect::Onset => {
                let mut r = self.onsets.clone();
                if self.onsets_sorted {
                    // Notes are written in onset order: nothing earlier than the last onset.
                    r.start = (r.start + c.last_onset_ms / self.onset_step_ms).min(r.end);
                }
                out.push(r);
            }
            Expect::Dur => out.extend(self.durs.iter().cloned()),
        }
        out.sort_by_key(|r| r.start);
    }
}

/// The smallest single range covering `ranges` (sorted by start), e.g. the head rows a step
/// must compute; `0..0` when empty.
pub fn hull(ranges: &[Range<u32>]) -> Range<u32> {
    match (
        ranges.iter().map(|r| r.start).min(),
        ranges.iter().map(|r| r.end).max(),
    ) {
        (Some(a), Some(b)) => a..b,
        _ => 0..0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_in(rs: &[Range<u32>]) -> Vec<u32> {
        rs.iter().flat_map(|r| r.clone()).collect()
    }

    #[test]
    fn between_notes_only_piano_notes_and_time_tokens_are_allowed() {
        let tok = Tokenizer::new();
        let g = Grammar::new(&tok);
        let mut out = Vec::new();
        let c = g.start(&tok, &[tok.special_id(Special::S)]);
        g.allowed(&c, &mut out);
        let ids = ids_in(&out);
        assert!(ids.contains(&tok.special_id(Special::T)));
        for id in ids {
            let t = tok.token(id).unwrap();
            assert!(
                matches!(
                    t,
                    Token::Special(Special::T)
                        | Token::Note {
                            instrument: Instrument::Piano,
                            ..
                        }
                ),
                "{t:?} allowed between notes"
            );
        }
    }

    #[test]
    fn a_note_is_followed_by_an_onset_not_earlier_than_the_last_then_a_dur() {
        let tok = Tokenizer::new();
        let g = Grammar::new(&tok);
        let note = tok
            .id(&Token::Note {
                instrument: Instrument::Piano,
                pitch: 60,
                velocity: 60,
            })
            .unwrap();
        let on = tok.id(&Token::Onset(1200)).unwrap();
        let dur = tok.id(&Token::Dur(300)).unwrap();
        let s = tok.special_id(Special::S);
        let mut c = g.start(&tok, &[s, note, on, dur, note]);
        assert_eq!(c.expect, Expect::Onset);
        let mut out = Vec::new();
        g.allowed(&c, &mut out);
        let ids = ids_in(&out);
        assert!(ids.contains(&on));
        assert!(!ids.contains(&tok.id(&Token::Onset(1190)).unwrap()));
        assert!(ids.iter().all(|&i| tok.kind(i) == Some(TokenKind::Onset)));
        assert_eq!(g.advance(&tok, &mut c, on), Step::Onset(1200));
        g.allowed(&c, &mut out);
        assert!(ids_in(&out)
            .iter()
            .all(|&i| tok.kind(i) == Some(TokenKind::Dur)));
    }

    #[test]
    fn time_tokens_move_the_clock_and_reset_the_onset_floor() {
        let tok = Tokenizer::new();
        let g = Grammar::new(&tok);
        let t = tok.special_id(Special::T);
        let mut c = g.start(&tok, &[tok.special_id(Special::S), t]);
        assert_eq!(c.segment, 1);
        assert_eq!(g.advance(&tok, &mut c, t), Step::Segment(10_000));
        let note = tok
            .id(&Token::Note {
                instrument: Instrument::Piano,
                pitch: 60,
                velocity: 60,
            })
            .unwrap();
        g.advance(&tok, &mut c, note);
        let on = tok.id(&Token::Onset(0)).unwrap();
        let mut out = Vec::new();
        g.allowed(&c, &mut out);
        assert!(ids_in(&out).contains(&on));
        assert_eq!(g.advance(&tok, &mut c, on), Step::Onset(10_000));
    }

    #[test]
    fn hull_covers_every_allowed_id_and_is_much_narrower_than_the_vocabulary() {
        let tok = Tokenizer::new();
        let g = Grammar::new(&tok);
        let mut out = Vec::new();
        let c = g.start(&tok, &[tok.special_id(Special::S)]);
        g.allowed(&c, &mut out);
        let h = hull(&out);
        assert!(ids_in(&out).iter().all(|id| h.contains(id)));
        assert!(h.len() < 2500, "{h:?}");
        assert_eq!(hull(&[]), 0..0);
    }

    #[test]
    fn pedal_vocabulary_allows_pedal_changes_between_notes() {
        let tok = Tokenizer::for_vocab_size(17729).unwrap();
        let g = Grammar::new(&tok);
        let mut out = Vec::new();
        let c = g.start(&tok, &[tok.special_id(Special::S)]);
        g.allowed(&c, &mut out);
        assert!(ids_in(&out).contains(&tok.special_id(Special::PedOn)));
    }
}
