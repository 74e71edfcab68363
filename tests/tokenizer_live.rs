//! The live path: a bar prompt to ids and a model continuation back to notes in ms.

use aria_bridge::aria::tokenizer::{Instrument, Special, Token, Tokenizer};
use aria_bridge::music::note::{MsNote, PedalEvent, Prompt};

fn note(pitch: u8, velocity: u8, start_ms: u32, end_ms: u32) -> MsNote {
    MsNote {
        pitch,
        velocity,
        start_ms,
        end_ms,
    }
}

fn piano(pitch: u8, velocity: u8) -> Token {
    Token::Note {
        instrument: Instrument::Piano,
        pitch,
        velocity,
    }
}

#[test]
fn prompt_keeps_leading_silence_and_crosses_segments() {
    let tok = Tokenizer::new();
    let prompt = Prompt {
        notes: vec![note(60, 64, 120, 480), note(64, 100, 5004, 5500)],
        pedal: vec![],
        length_ms: 6000,
    };
    let want = [
        Token::Prefix("instrument".into(), "piano".into()),
        Token::Special(Special::S),
        piano(60, 60),
        Token::Onset(120),
        Token::Dur(360),
        Token::Special(Special::T),
        piano(64, 100),
        Token::Onset(0),
        Token::Dur(500),
    ];
    assert_eq!(tok.encode_prompt(&prompt), tok.encode(&want));
}

#[test]
fn sustain_pedal_extends_a_release_inside_it() {
    let tok = Tokenizer::new();
    let prompt = Prompt {
        notes: vec![note(60, 80, 0, 300), note(62, 80, 0, 1200)],
        pedal: vec![
            PedalEvent {
                at_ms: 100,
                down: true,
            },
            PedalEvent {
                at_ms: 1000,
                down: false,
            },
        ],
        length_ms: 2000,
    };
    let tokens = tok.decode(&tok.encode_prompt(&prompt));
    let durs: Vec<&Token> = tokens
        .iter()
        .filter(|t| matches!(t, Token::Dur(_)))
        .collect();
    // 60 is released at 300 ms inside the pedal (100..1000): it lasts to 1000; 62 ends after it.
    assert_eq!(durs, vec![&Token::Dur(1000), &Token::Dur(1200)]);
}

#[test]
fn pedal_vocabulary_emits_pedal_tokens_in_time_order() {
    let tok = Tokenizer::for_vocab_size(17729).unwrap();
    let prompt = Prompt {
        notes: vec![note(60, 80, 0, 300)],
        pedal: vec![
            PedalEvent {
                at_ms: 100,
                down: true,
            },
            PedalEvent {
                at_ms: 1000,
                down: false,
            },
        ],
        length_ms: 2000,
    };
    let tokens = tok.decode(&tok.encode_prompt(&prompt));
    assert_eq!(
        &tokens[2..],
        &[
            piano(60, 80),
            Token::Onset(0),
            Token::Dur(1000),
            Token::Special(Special::PedOn),
            Token::Onset(100),
            Token::Special(Special::PedOff),
            Token::Onset(1000),
        ]
    );
    // The reference reads triples, so an event in the last two tokens is never decoded: only
    // the pedal-down comes back.
    let d = tok.detokenize(&tokens);
    assert_eq!(d.pedals.len(), 1);
    assert!(d.pedals[0].down);
    assert_eq!(d.pedals[0].at_ms, 100);
}

#[test]
fn empty_prompt_still_gives_a_sequence_to_continue() {
    let tok = Tokenizer::new();
    let ids = tok.encode_prompt(&Prompt::default());
    assert_eq!(ids, vec![6, tok.special_id(Special::S)]);
}

#[test]
fn continuation_notes_count_time_from_the_prompt_start() {
    let tok = Tokenizer::new();
    let prompt = Prompt {
        notes: vec![note(60, 80, 4000, 6000)],
        pedal: vec![],
        length_ms: 8000,
    };
    let mut ids = tok.encode_prompt(&prompt);
    let prompt_len = ids.len();
    // The model goes on: a <T> (now in 5000..10000), a note at onset 2500, then a dangling note.
    let generated = [
        tok.special_id(Special::T),
        tok.id(&piano(67, 90)).unwrap(),
        tok.id(&Token::Onset(2500)).unwrap(),
        tok.id(&Token::Dur(400)).unwrap(),
        tok.id(&piano(69, 90)).unwrap(),
        tok.id(&Token::Onset(2600)).unwrap(),
    ];
    ids.extend(generated);
    let all = tok.decode_notes(&ids);
    assert_eq!(all.len(), 2);
    let new = tok.decode_notes_from(&ids, prompt_len);
    assert_eq!(new, vec![note(67, 90, 7500, 7900)]);
}

#[test]
fn unknown_ids_and_velocity_zero_notes_are_skipped() {
    let tok = Tokenizer::new();
    let ids = vec![
        6,
        0,
        99_999,
        tok.id(&piano(60, 0)).unwrap(),
        tok.id(&Token::Onset(0)).unwrap(),
        tok.id(&Token::Dur(100)).unwrap(),
        tok.id(&piano(62, 50)).unwrap(),
        tok.id(&Token::Onset(10)).unwrap(),
        tok.id(&Token::Dur(100)).unwrap(),
    ];
    assert_eq!(tok.decode_notes(&ids), vec![note(62, 50, 10, 110)]);
}

#[test]
fn rebased_prompt_starts_at_onset_zero_and_reports_the_offset() {
    let tok = Tokenizer::new();
    let prompt = Prompt {
        notes: vec![note(60, 64, 5120, 5480), note(64, 100, 6004, 6500)],
        pedal: vec![],
        length_ms: 8000,
    };
    let (ids, offset) = tok.encode_prompt_rebased(&prompt);
    assert_eq!(offset, 5120);
    let want = [
        Token::Prefix("instrument".into(), "piano".into()),
        Token::Special(Special::S),
        piano(60, 60),
        Token::Onset(0),
        Token::Dur(360),
        piano(64, 100),
        Token::Onset(880),
        Token::Dur(500),
    ];
    assert_eq!(ids, tok.encode(&want));
    let notes = tok.decode_notes(&ids);
    assert_eq!(notes[1].start_ms + offset, 6000);
    assert_eq!(
        tok.encode_prompt_rebased(&Prompt::default()),
        (vec![6, 0], 0)
    );
}
