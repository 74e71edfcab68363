//! Tokenizer cost on the live path: a two-bar prompt to ids, and one generated bar back to notes.
//!
//! Run: `cargo bench --bench tokenizer`. Target: <= 50 us each.

use std::hint::black_box;

use aria_bridge::aria::tokenizer::{Instrument, Special, Token, Tokenizer};
use aria_bridge::music::note::{MsNote, PedalEvent, Prompt};
use criterion::{criterion_group, criterion_main, Criterion};

/// Two 4/4 bars at 120 bpm (4000 ms): 16 eighth-note-ish notes and a pedal change per bar.
fn two_bar_prompt() -> Prompt {
    let notes = (0..16u32)
        .map(|i| MsNote {
            pitch: 48 + ((i * 7) % 24) as u8,
            velocity: 60 + (i % 5) as u8 * 10,
            start_ms: i * 250,
            end_ms: i * 250 + 230,
        })
        .collect();
    let pedal = vec![
        PedalEvent {
            at_ms: 0,
            down: true,
        },
        PedalEvent {
            at_ms: 1900,
            down: false,
        },
        PedalEvent {
            at_ms: 2000,
            down: true,
        },
        PedalEvent {
            at_ms: 3900,
            down: false,
        },
    ];
    Prompt {
        notes,
        pedal,
        length_ms: 4000,
    }
}

/// A prefix, `<S>`, and one bar of 32 generated notes (96 tokens).
fn generated_bar(tok: &Tokenizer) -> Vec<u32> {
    let mut ids = vec![
        tok.id(&Token::Prefix("instrument".into(), "piano".into()))
            .unwrap(),
        tok.special_id(Special::S),
    ];
    for i in 0..32u32 {
        let note = Token::Note {
            instrument: Instrument::Piano,
            pitch: 60 + (i % 12) as u8,
            velocity: 70,
        };
        ids.push(tok.id(&note).unwrap());
        ids.push(tok.id(&Token::Onset(i * 120)).unwrap());
        ids.push(tok.id(&Token::Dur(110)).unwrap());
    }
    ids
}

fn bench(c: &mut Criterion) {
    let tok = Tokenizer::new();
    let prompt = two_bar_prompt();
    c.bench_function("encode_prompt_two_bars_16_notes_pedal", |b| {
        b.iter(|| tok.encode_prompt(black_box(&prompt)))
    });
    let ids = generated_bar(&tok);
    c.bench_function("decode_notes_96_token_bar", |b| {
        b.iter(|| tok.decode_notes(black_box(&ids)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
