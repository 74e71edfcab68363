//! Tokenizes a list of MIDI files for training, with the same tokenizer the bridge plays with.
//!
//! ```sh
//! cargo run --example tokenize_corpus -- --vocab vocab.json < files.txt > corpus.jsonl
//! ```
//!
//! Reads one MIDI path per line on stdin and writes one JSON line per file to stdout:
//! `{"file": PATH, "ids": [...]}` (the reference's default case: leading silence removed, `<D>` and
//! `<E>` added), or `{"file": PATH, "error": MESSAGE}` for a file that cannot be read, so one bad
//! file never stops a corpus. `--vocab FILE` also writes the vocabulary (tokens in id order, the
//! reference's JSON notation), which the training script needs for its token-level augmentation.

use std::io::{BufRead, Write};

use anyhow::Context;
use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::tokenizer::{Case, Tokenizer};
use serde_json::{json, Value};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tok = Tokenizer::new();
    match args.as_slice() {
        [] => {}
        [flag, path] if flag == "--vocab" => {
            let vocab: Vec<Value> = (0..tok.vocab_size() as u32)
                .map(|id| tok.token(id).map_or(Value::Null, |t| t.to_json()))
                .collect();
            std::fs::write(path, serde_json::to_string(&vocab)?)
                .with_context(|| format!("cannot write vocabulary to {path}"))?;
        }
        _ => anyhow::bail!("usage: tokenize_corpus [--vocab FILE] < midi-paths > corpus.jsonl"),
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in std::io::stdin().lock().lines() {
        let path = line.context("cannot read the list of MIDI files on stdin")?;
        let path = path.trim();
        if path.is_empty() {
            continue;
        }
        let record = match tokenize_file(&tok, path) {
            Ok(ids) => json!({ "file": path, "ids": ids }),
            Err(e) => json!({ "file": path, "error": format!("{e:#}") }),
        };
        writeln!(out, "{record}")?;
    }
    out.flush()?;
    Ok(())
}

/// Ids of one file in the default case.
fn tokenize_file(tok: &Tokenizer, path: &str) -> anyhow::Result<Vec<u32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {path}"))?;
    let md = MidiDict::from_smf(&bytes)?;
    let tokens = tok.tokenize_case(&md, Case::Default)?;
    Ok(tok.encode(&tokens))
}
