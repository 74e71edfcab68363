//! Bad or unusual MIDI input: a clear error or the reference's behaviour, never a panic.

use std::path::Path;

use aria_bridge::aria::midi_dict::{MidiDict, MidiDictError};
use aria_bridge::aria::tokenizer::{Case, Token, Tokenizer, TokenizerError};
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

/// A MIDI event at an absolute tick.
enum Ev {
    On(u8, u8, u8),
    Off(u8, u8),
    Program(u8, u8),
    Tempo(u32),
}

/// Writes a one-track file; events must be in tick order.
fn smf(tpb: u16, events: &[(u32, Ev)]) -> Vec<u8> {
    let mut track = Vec::new();
    let mut last = 0u32;
    for (tick, ev) in events {
        let kind = match *ev {
            Ev::On(ch, key, vel) => TrackEventKind::Midi {
                channel: u4::new(ch),
                message: MidiMessage::NoteOn {
                    key: u7::new(key),
                    vel: u7::new(vel),
                },
            },
            Ev::Off(ch, key) => TrackEventKind::Midi {
                channel: u4::new(ch),
                message: MidiMessage::NoteOff {
                    key: u7::new(key),
                    vel: u7::new(0),
                },
            },
            Ev::Program(ch, p) => TrackEventKind::Midi {
                channel: u4::new(ch),
                message: MidiMessage::ProgramChange {
                    program: u7::new(p),
                },
            },
            Ev::Tempo(t) => TrackEventKind::Meta(MetaMessage::Tempo(u24::new(t))),
        };
        track.push(TrackEvent {
            delta: u28::new(tick - last),
            kind,
        });
        last = *tick;
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Metrical(u15::new(tpb))),
        tracks: vec![track],
    };
    let mut out = Vec::new();
    smf.write_std(&mut out).unwrap();
    out
}

fn prompt_tokens(bytes: &[u8]) -> Result<Vec<Token>, TokenizerError> {
    let md = MidiDict::from_smf(bytes).unwrap();
    Tokenizer::new().tokenize_case(&md, Case::Prompt)
}

#[test]
fn truncated_fixture_files_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aria/midi");
    let tok = Tokenizer::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in (0..bytes.len()).step_by(11) {
            if let Ok(md) = MidiDict::from_smf(&bytes[..cut]) {
                let _ = tok.tokenize_case(&md, Case::Default);
            }
        }
    }
}

#[test]
fn a_cut_header_is_a_parse_error() {
    let bytes = smf(480, &[(0, Ev::On(0, 60, 90)), (480, Ev::Off(0, 60))]);
    assert!(matches!(
        MidiDict::from_smf(&bytes[..10]),
        Err(MidiDictError::Parse(_))
    ));
    assert!(matches!(
        MidiDict::from_smf(b"RIFF....WAVEfmt "),
        Err(MidiDictError::Parse(_))
    ));
}

#[test]
fn smpte_timing_is_rejected_with_an_error() {
    let smf = Smf {
        header: Header::new(Format::SingleTrack, Timing::Timecode(midly::Fps::Fps25, 40)),
        tracks: vec![vec![]],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    assert!(matches!(
        MidiDict::from_smf(&bytes),
        Err(MidiDictError::Timecode)
    ));
}

#[test]
fn zero_ticks_per_beat_is_rejected_with_an_error() {
    let bytes = smf(0, &[(0, Ev::On(0, 60, 90)), (10, Ev::Off(0, 60))]);
    assert!(matches!(
        MidiDict::from_smf(&bytes),
        Err(MidiDictError::ZeroTicksPerBeat)
    ));
}

#[test]
fn a_file_without_notes_is_a_tokenizer_error() {
    let bytes = smf(480, &[(0, Ev::Tempo(500_000))]);
    assert!(matches!(
        prompt_tokens(&bytes),
        Err(TokenizerError::NoNotes)
    ));
}

#[test]
fn only_ignored_instruments_is_a_tokenizer_error() {
    // Program 88 is a synth pad, which the default config removes.
    let bytes = smf(
        480,
        &[
            (0, Ev::Program(0, 88)),
            (0, Ev::On(0, 60, 90)),
            (480, Ev::Off(0, 60)),
        ],
    );
    assert!(matches!(
        prompt_tokens(&bytes),
        Err(TokenizerError::NoNotes)
    ));
}

#[test]
fn zero_length_notes_are_dropped() {
    let bytes = smf(
        480,
        &[
            (0, Ev::On(0, 60, 90)),
            (0, Ev::Off(0, 60)),
            (10, Ev::On(0, 62, 90)),
            (490, Ev::Off(0, 62)),
        ],
    );
    let tokens = prompt_tokens(&bytes).unwrap();
    let notes: Vec<_> = tokens
        .iter()
        .filter(|t| matches!(t, Token::Note { .. }))
        .collect();
    assert_eq!(notes.len(), 1);
}

#[test]
fn notes_longer_than_five_seconds_get_the_longest_duration() {
    // 480 tpb at 120 bpm: 9600 ticks = 10 s.
    let bytes = smf(480, &[(0, Ev::On(0, 60, 90)), (9600, Ev::Off(0, 60))]);
    let tokens = prompt_tokens(&bytes).unwrap();
    assert!(tokens.contains(&Token::Dur(5000)));
}

#[test]
fn tempo_zero_collapses_time_without_panicking() {
    let bytes = smf(
        480,
        &[
            (0, Ev::Tempo(0)),
            (0, Ev::On(0, 60, 90)),
            (960, Ev::On(0, 62, 90)),
            (1920, Ev::Off(0, 60)),
            (1920, Ev::Off(0, 62)),
        ],
    );
    let tokens = prompt_tokens(&bytes).unwrap();
    assert!(tokens
        .iter()
        .filter(|t| matches!(t, Token::Onset(_)))
        .all(|t| *t == Token::Onset(0)));
    assert!(tokens
        .iter()
        .filter(|t| matches!(t, Token::Dur(_)))
        .all(|t| *t == Token::Dur(10)));
}

#[test]
fn unknown_drum_keys_encode_as_unknown() {
    // Key 20 on the drum channel has no drum token: the reference keeps ("drum", 20), id <U>.
    let bytes = smf(
        480,
        &[
            (0, Ev::On(9, 20, 90)),
            (10, Ev::Off(9, 20)),
            (20, Ev::On(0, 60, 90)),
            (500, Ev::Off(0, 60)),
        ],
    );
    let tok = Tokenizer::new();
    let tokens = prompt_tokens(&bytes).unwrap();
    assert!(tokens.contains(&Token::Drum(20)));
    let ids = tok.encode(&tokens);
    assert!(ids.contains(&3));
}

#[test]
fn pedal_vocabulary_rejects_other_instruments() {
    let bytes = smf(
        480,
        &[
            (0, Ev::Program(0, 40)),
            (0, Ev::On(0, 60, 90)),
            (480, Ev::Off(0, 60)),
        ],
    );
    let md = MidiDict::from_smf(&bytes).unwrap();
    let tok = Tokenizer::for_vocab_size(17729).unwrap();
    assert!(matches!(
        tok.tokenize_case(&md, Case::Prompt),
        Err(TokenizerError::PedalNeedsPiano)
    ));
}
