//! Property tests: notes survive a token round trip up to the reference's quantisation, a live
//! prompt tokenizes like the same notes written to a MIDI file, and no id sequence makes the
//! decoder panic.

use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::tokenizer::quantize::{quantize_dur, quantize_onset, quantize_velocity};
use aria_bridge::aria::tokenizer::{Case, Tokenizer};
use aria_bridge::music::note::{MsNote, PedalEvent, Prompt};
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use proptest::prelude::*;

/// Notes with distinct pitches (21 + index), sorted by start then pitch as a `Prompt` requires.
fn notes(max: usize, min_len: u32) -> impl Strategy<Value = Vec<MsNote>> {
    prop::collection::vec((0u32..20_000, min_len..7_000u32, 1u8..=127), 0..max).prop_map(|raw| {
        let mut v: Vec<MsNote> = raw
            .into_iter()
            .enumerate()
            .map(|(i, (start, len, velocity))| MsNote {
                pitch: 21 + i as u8,
                velocity,
                start_ms: start,
                end_ms: start + len,
            })
            .collect();
        v.sort_by_key(|n| (n.start_ms, n.pitch));
        v
    })
}

fn pedals() -> impl Strategy<Value = Vec<PedalEvent>> {
    prop::collection::vec((0u32..25_000, any::<bool>()), 0..8).prop_map(|raw| {
        let mut v: Vec<PedalEvent> = raw
            .into_iter()
            .map(|(at_ms, down)| PedalEvent { at_ms, down })
            .collect();
        v.sort_by_key(|p| p.at_ms);
        v
    })
}

/// Writes a prompt as a plain MIDI file: 500 ticks per beat, tempo 500000 (1 tick = 1 ms),
/// channel 0, program 0; at one tick note-offs come before note-ons, pedal changes last.
fn write_smf(p: &Prompt) -> Vec<u8> {
    let ch = u4::new(0);
    let mut evs: Vec<(u32, u8, usize, TrackEventKind<'static>)> = vec![
        (
            0,
            0,
            0,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
        ),
        (
            0,
            0,
            1,
            TrackEventKind::Midi {
                channel: ch,
                message: MidiMessage::ProgramChange {
                    program: u7::new(0),
                },
            },
        ),
    ];
    for (i, n) in p.notes.iter().enumerate() {
        let on = MidiMessage::NoteOn {
            key: u7::new(n.pitch),
            vel: u7::new(n.velocity),
        };
        let off = MidiMessage::NoteOff {
            key: u7::new(n.pitch),
            vel: u7::new(0),
        };
        evs.push((
            n.start_ms,
            2,
            i,
            TrackEventKind::Midi {
                channel: ch,
                message: on,
            },
        ));
        evs.push((
            n.end_ms,
            1,
            i,
            TrackEventKind::Midi {
                channel: ch,
                message: off,
            },
        ));
    }
    for (i, e) in p.pedal.iter().enumerate() {
        let value = u7::new(if e.down { 127 } else { 0 });
        let message = MidiMessage::Controller {
            controller: u7::new(64),
            value,
        };
        evs.push((
            e.at_ms,
            3,
            i,
            TrackEventKind::Midi {
                channel: ch,
                message,
            },
        ));
    }
    evs.sort_by_key(|e| (e.0, e.1, e.2));
    let mut track = Vec::new();
    let mut last = 0;
    for (tick, _, _, kind) in evs {
        track.push(TrackEvent {
            delta: u28::new(tick - last),
            kind,
        });
        last = tick;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(500))),
        tracks: vec![track],
    };
    let mut out = Vec::new();
    smf.write_std(&mut out).unwrap();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_keeps_pitch_and_quantised_timing(ns in notes(40, 1)) {
        let tok = Tokenizer::new();
        let prompt = Prompt { notes: ns.clone(), pedal: vec![], length_ms: 30_000 };
        let ids = tok.encode_prompt(&prompt);
        let mut got: Vec<(u8, u32, u32, u8)> = tok
            .decode_notes(&ids)
            .iter()
            .map(|n| (n.pitch, n.start_ms, n.end_ms - n.start_ms, n.velocity))
            .collect();
        let mut want: Vec<(u8, u32, u32, u8)> = ns
            .iter()
            .map(|n| {
                let start = (n.start_ms / 5000) * 5000 + quantize_onset((n.start_ms % 5000) as i64);
                let dur = quantize_dur((n.end_ms - n.start_ms) as i64);
                (n.pitch, start, dur, quantize_velocity(n.velocity as i64) as u8)
            })
            .collect();
        got.sort();
        want.sort();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn prompt_tokenizes_like_the_same_notes_in_a_midi_file(ns in notes(24, 0), pedal in pedals()) {
        let tok = Tokenizer::new();
        let prompt = Prompt { notes: ns, pedal, length_ms: 30_000 };
        let md = MidiDict::from_smf(&write_smf(&prompt)).unwrap();
        let via_file = match tok.tokenize_case(&md, Case::Prompt) {
            Ok(tokens) => tok.encode(&tokens),
            Err(_) => vec![6, 0],
        };
        prop_assert_eq!(tok.encode_prompt(&prompt), via_file);
    }

    #[test]
    fn pedal_vocabulary_prompt_round_trips_notes(ns in notes(16, 1), pedal in pedals()) {
        let tok = Tokenizer::for_vocab_size(17729).unwrap();
        let prompt = Prompt { notes: ns.clone(), pedal, length_ms: 30_000 };
        let ids = tok.encode_prompt(&prompt);
        let got = tok.decode_notes(&ids);
        prop_assert_eq!(got.len(), ns.len());
    }

    #[test]
    fn random_ids_never_panic_on_decode(
        ids in prop::collection::vec(0u32..18_000, 0..400),
        with_prefix in any::<bool>(),
        pedal in any::<bool>(),
    ) {
        let tok = Tokenizer::for_vocab_size(if pedal { 17729 } else { 17727 }).unwrap();
        let mut seq = if with_prefix { vec![6, 16, 0] } else { vec![] };
        seq.extend(ids);
        let notes = tok.decode_notes(&seq);
        for n in &notes {
            prop_assert!(n.end_ms >= n.start_ms && n.velocity > 0);
        }
        let _ = tok.decode_notes_from(&seq, seq.len() / 2);
        let _ = tok.detokenize_ids(&seq);
    }

    #[test]
    fn random_token_like_streams_never_panic_on_decode(
        kinds in prop::collection::vec((0u8..6, 0u32..600), 0..300),
    ) {
        // Biased towards well-formed pieces so that the triple logic is exercised.
        let tok = Tokenizer::for_vocab_size(17729).unwrap();
        let mut seq = vec![6, 16, 0];
        for (k, x) in kinds {
            seq.push(match k {
                0 => 39 + x * 13 % 16640,
                1 => 17227 + x % 500,
                2 => 16726 + x % 501,
                3 => 5,
                4 => 16679 + x % 47,
                _ => 17727 + x % 2,
            });
        }
        let d = tok.detokenize_ids(&seq);
        for n in &d.notes {
            prop_assert!(n.end_ms >= n.start_ms);
        }
    }
}
