//! The tokenizer against the reference's own output (ariautils @ e122d03) on every MIDI file in
//! `tests/fixtures/aria/midi/`: MidiDict, tokens and ids of both cases, detokenised notes,
//! quantisers and the vocabulary.
//!
//! Two things in the reference are random: the order of the prefix tokens (compared as a set)
//! and the position of `<D>` (compared with `<D>` removed, and separately checked to be one of
//! the 21 positions the reference can draw).

use std::path::{Path, PathBuf};

use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::tokenizer::{
    quantize, Case, Instrument, Special, Token, TokenKind, Tokenizer,
};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aria")
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// (name, golden json, MidiDict parsed from the .mid)
fn cases() -> Vec<(String, Value, MidiDict)> {
    let mut out = Vec::new();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("midi"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let golden = read_json(&fixtures().join("golden").join(format!("{name}.json")));
        let md = MidiDict::from_smf(&std::fs::read(&p).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, golden, md));
    }
    assert!(
        out.len() >= 13,
        "expected every fixture MIDI file, found {}",
        out.len()
    );
    out
}

fn tokens_of(v: &Value) -> Vec<Token> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| Token::from_json(t).unwrap_or_else(|| panic!("unparsable token {t}")))
        .collect()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Splits at `<S>`: (sorted prefix, rest from `<S>` on).
fn split_prefix<T: Clone + Ord + PartialEq>(seq: &[T], start: &T) -> (Vec<T>, Vec<T>) {
    let at = seq
        .iter()
        .position(|t| t == start)
        .expect("sequence has <S>");
    let mut prefix = seq[..at].to_vec();
    prefix.sort();
    (prefix, seq[at..].to_vec())
}

fn json_strings(tokens: &[Token]) -> Vec<String> {
    tokens.iter().map(|t| t.to_json().to_string()).collect()
}

#[test]
fn vocabulary_matches_reference_order() {
    let vocab = read_json(&fixtures().join("golden/vocab.json"));
    let vocab = vocab.as_array().unwrap();
    let tok = Tokenizer::new();
    assert_eq!(vocab.len(), tok.vocab_size());
    for (id, v) in vocab.iter().enumerate() {
        let t = Token::from_json(v).unwrap_or_else(|| panic!("unparsable vocab entry {v}"));
        assert_eq!(tok.token(id as u32), Some(&t), "id {id}");
        assert_eq!(tok.id(&t), Some(id as u32), "token {v}");
        assert_eq!(&t.to_json(), v, "notation of id {id}");
    }
}

#[test]
fn pedal_vocabulary_appends_two_tokens() {
    let tok = Tokenizer::for_vocab_size(17729).unwrap();
    assert_eq!(tok.special_id(Special::PedOn), 17727);
    assert_eq!(tok.special_id(Special::PedOff), 17728);
    assert_eq!(tok.kind(17728), Some(TokenKind::Special(Special::PedOff)));
    assert!(Tokenizer::for_vocab_size(17728).is_err());
    assert!(Tokenizer::for_vocab_size(0).is_err());
}

#[test]
fn quantisers_match_reference_for_every_input() {
    let q = read_json(&fixtures().join("golden/quantisers.json"));
    let col = |k: &str| ids_of(&q[k]);
    for (n, &want) in col("onset").iter().enumerate() {
        assert_eq!(quantize::quantize_onset(n as i64), want, "onset {n}");
    }
    for (n, &want) in col("dur").iter().enumerate() {
        assert_eq!(quantize::quantize_dur(n as i64), want, "dur {n}");
    }
    for (n, &want) in col("velocity").iter().enumerate() {
        assert_eq!(quantize::quantize_velocity(n as i64), want, "velocity {n}");
    }
}

#[test]
fn midi_dict_matches_reference_on_every_file() {
    for (name, golden, md) in cases() {
        let g = &golden["midi_dict"];
        assert_eq!(
            md.ticks_per_beat as u64,
            g["ticks_per_beat"].as_u64().unwrap(),
            "{name}"
        );
        let gn = g["notes"].as_array().unwrap();
        assert_eq!(md.notes.len(), gn.len(), "{name}: note count");
        for (i, (n, w)) in md.notes.iter().zip(gn).enumerate() {
            let got = (
                n.pitch as u64,
                n.velocity as u64,
                n.start,
                n.end,
                n.channel as u64,
            );
            let want = (
                w["pitch"].as_u64().unwrap(),
                w["velocity"].as_u64().unwrap(),
                w["start"].as_u64().unwrap(),
                w["end"].as_u64().unwrap(),
                w["channel"].as_u64().unwrap(),
            );
            assert_eq!(got, want, "{name}: note {i}");
        }
        let gp = g["pedal_msgs"].as_array().unwrap();
        let got: Vec<_> = md
            .pedal_msgs
            .iter()
            .map(|p| (p.down as u64, p.value as u64, p.tick, p.channel as u64))
            .collect();
        let want: Vec<_> = gp
            .iter()
            .map(|p| {
                (
                    p["data"].as_u64().unwrap(),
                    p["value"].as_u64().unwrap(),
                    p["tick"].as_u64().unwrap(),
                    p["channel"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}: pedal");
        let got: Vec<_> = md
            .tempo_msgs
            .iter()
            .map(|t| (t.tempo as u64, t.tick))
            .collect();
        let want: Vec<_> = g["tempo_msgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["data"].as_u64().unwrap(), t["tick"].as_u64().unwrap()))
            .collect();
        assert_eq!(got, want, "{name}: tempo");
        let got: Vec<_> = md
            .instrument_msgs
            .iter()
            .map(|t| (t.program as u64, t.tick, t.channel as u64))
            .collect();
        let want: Vec<_> = g["instrument_msgs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["data"].as_u64().unwrap(),
                    t["tick"].as_u64().unwrap(),
                    t["channel"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}: instruments");
    }
}

#[test]
fn prompt_case_tokens_and_ids_match_reference_exactly() {
    let tok = Tokenizer::new();
    for (name, golden, md) in cases() {
        let case = &golden["cases"]["prompt"];
        let ours = tok.tokenize_case(&md, Case::Prompt).unwrap();
        let s = Token::Special(Special::S).to_json().to_string();
        let (op, orest) = split_prefix(&json_strings(&ours), &s);
        let (gp, grest) = split_prefix(&json_strings(&tokens_of(&case["tokens"])), &s);
        assert_eq!(op, gp, "{name}: prefix set");
        let first_diff = orest.iter().zip(&grest).position(|(a, b)| a != b);
        assert_eq!(
            orest.len(),
            grest.len(),
            "{name}: length (first difference at {first_diff:?})"
        );
        assert_eq!(first_diff, None, "{name}: tokens after <S>");

        let (oi, oirest) = split_prefix(&tok.encode(&ours), &(Special::S as u32));
        let (gi, girest) = split_prefix(&ids_of(&case["ids"]), &(Special::S as u32));
        assert_eq!(oi, gi, "{name}: prefix ids");
        assert_eq!(oirest, girest, "{name}: ids");
    }
}

#[test]
fn default_case_matches_reference_without_dim_token() {
    let tok = Tokenizer::new();
    let d = Token::Special(Special::D);
    for (name, golden, md) in cases() {
        let case = &golden["cases"]["default"];
        let mut ours = tok.tokenize_case(&md, Case::Default).unwrap();
        let mut theirs = tokens_of(&case["tokens"]);
        ours.retain(|t| *t != d);
        theirs.retain(|t| *t != d);
        let s = Token::Special(Special::S).to_json().to_string();
        let (op, orest) = split_prefix(&json_strings(&ours), &s);
        let (gp, grest) = split_prefix(&json_strings(&theirs), &s);
        assert_eq!(op, gp, "{name}: prefix set");
        let first_diff = orest.iter().zip(&grest).position(|(a, b)| a != b);
        assert_eq!(
            orest.len(),
            grest.len(),
            "{name}: length (first difference at {first_diff:?})"
        );
        assert_eq!(first_diff, None, "{name}: tokens after <S>");
    }
}

#[test]
fn dim_token_lands_where_one_of_the_reference_draws_puts_it() {
    let tok = Tokenizer::new();
    for (name, golden, md) in cases() {
        let theirs = tokens_of(&golden["cases"]["default"]["tokens"]);
        let s = Token::Special(Special::S);
        let rest = |v: &[Token]| v[v.iter().position(|t| *t == s).unwrap()..].to_vec();
        let has_d = theirs.contains(&Token::Special(Special::D));
        let mut matched = Vec::new();
        for offset in -10i8..=10 {
            let mut opts = Case::Default.options();
            opts.dim_offset = offset;
            let ours = tok.tokenize(&md, &opts).unwrap();
            assert_eq!(
                ours.contains(&Token::Special(Special::D)),
                has_d,
                "{name}: <D> presence"
            );
            if rest(&ours) == rest(&theirs) {
                matched.push(offset);
            }
        }
        assert!(
            !matched.is_empty(),
            "{name}: no offset in -10..=10 reproduces <D>"
        );
    }
}

#[test]
fn detokenized_notes_match_reference_for_both_cases() {
    let tok = Tokenizer::new();
    let mut checked_ids = 0;
    for (name, golden, _) in cases() {
        for case_name in ["default", "prompt"] {
            let case = &golden["cases"][case_name];
            let want: Vec<_> = case["detokenized_notes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| {
                    (
                        n["pitch"].as_u64().unwrap(),
                        n["velocity"].as_u64().unwrap(),
                        n["start"].as_u64().unwrap(),
                        n["end"].as_u64().unwrap(),
                        n["channel"].as_u64().unwrap(),
                    )
                })
                .collect();
            // The reference detokenises its token list; drum keys outside 35..=81 are tokens
            // without an id (they encode as <U>), so ids decode to the same notes only when
            // every token has an id.
            let tokens = tokens_of(&case["tokens"]);
            let from_tokens = tok.detokenize(&tokens);
            if tokens.iter().all(|t| tok.id(t).is_some()) {
                let from_ids = tok.detokenize_ids(&ids_of(&case["ids"]));
                assert!(
                    from_ids == from_tokens,
                    "{name}/{case_name}: ids and tokens agree"
                );
                checked_ids += 1;
            }
            let got: Vec<_> = from_tokens
                .notes
                .iter()
                .map(|n| {
                    (
                        n.pitch as u64,
                        n.velocity as u64,
                        n.start_ms,
                        n.end_ms,
                        n.channel as u64,
                    )
                })
                .collect();
            assert_eq!(got.len(), want.len(), "{name}/{case_name}: note count");
            assert_eq!(got, want, "{name}/{case_name}: notes");
        }
    }
    assert!(
        checked_ids >= 20,
        "ids path checked on {checked_ids} cases only"
    );
}

#[test]
fn token_kinds_and_values_follow_the_vocabulary() {
    let tok = Tokenizer::new();
    let onset = tok.id(&Token::Onset(4990)).unwrap();
    let dur = tok.id(&Token::Dur(5000)).unwrap();
    assert_eq!(tok.kind(onset), Some(TokenKind::Onset));
    assert_eq!(tok.onset_ms(onset), Some(4990));
    assert_eq!(tok.dur_ms(dur), Some(5000));
    assert_eq!(tok.onset_ms(dur), None);
    assert_eq!(tok.kind(17727), None);
    assert_eq!(tok.special_id(Special::T), 5);
}

/// Ids of the prompts the reference model was run on (`reference-model/`): every note whose
/// start is at or before `prompt_ms`, tokenized in the prompt case.
#[test]
fn model_reference_prompts_cut_at_prompt_ms_match() {
    let tok = Tokenizer::new();
    let doc = read_json(&fixtures().join("golden/tiny_prompts.json"));
    for case in doc["cases"].as_array().unwrap() {
        let file = case["prompt_file"].as_str().unwrap();
        let prompt_ms = case["prompt_ms"].as_i64().unwrap();
        let bytes = std::fs::read(fixtures().join("midi").join(file)).unwrap();
        let mut md = MidiDict::from_smf(&bytes).unwrap();
        let kept: Vec<_> = md
            .notes
            .iter()
            .copied()
            .filter(|n| md.tick_to_ms(n.start) <= prompt_ms)
            .collect();
        md.notes = kept;
        let ours = tok.encode(&tok.tokenize_case(&md, Case::Prompt).unwrap());
        let (op, orest) = split_prefix(&ours, &(Special::S as u32));
        let (gp, grest) = split_prefix(&ids_of(&case["prompt_ids"]), &(Special::S as u32));
        assert_eq!(op, gp, "{file}: prefix");
        assert_eq!(orest, grest, "{file}: ids");

        // The model's greedy continuation decodes without panicking; notes of instruments the
        // prefix does not name (it named only piano) are dropped as in the reference.
        let mut all = ids_of(&case["prompt_ids"]);
        let prompt_len = all.len();
        all.extend(ids_of(&case["greedy_ids"]));
        let decoded = tok.detokenize_ids(&all);
        for n in decoded.notes.iter().filter(|n| n.token_index >= prompt_len) {
            let first = tok.token(all[n.token_index]).unwrap();
            assert!(
                matches!(
                    first,
                    Token::Note {
                        instrument: Instrument::Piano,
                        ..
                    }
                ),
                "{file}: decoded a non-piano note {first:?}"
            );
        }
        let prompt_notes = decoded
            .notes
            .iter()
            .filter(|n| n.token_index < prompt_len)
            .count();
        assert_eq!(
            prompt_notes,
            (prompt_len - 2) / 3,
            "{file}: prompt notes decode"
        );
    }
}
