//! `aria-bridge tokenize`: prints the Aria tokens (or ids) of a MIDI file as one JSON array.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use aria_bridge::aria::midi_dict::MidiDict;
use aria_bridge::aria::tokenizer::{Case, Tokenizer};

/// Which reference call to reproduce.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum CaseArg {
    /// Leading silence kept, no `<D>`, no `<E>`: what a prompt looks like.
    Prompt,
    /// The reference's defaults: leading silence removed, `<D>` (at offset 0 of its random
    /// -10..=10 draw) and `<E>` added.
    Default,
}

/// Flags of `tokenize`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The MIDI file to tokenize.
    pub file: PathBuf,
    /// Tokenization case.
    #[arg(long, value_enum, default_value = "default")]
    pub case: CaseArg,
    /// Print token ids instead of tokens.
    #[arg(long)]
    pub ids: bool,
    /// Vocabulary size of the target model: 17727, or 17729 for the pedal variant.
    #[arg(long, default_value_t = 17727)]
    pub vocab_size: usize,
}

/// Runs `tokenize`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read MIDI file {}", args.file.display()))?;
    let md = MidiDict::from_smf(&bytes).with_context(|| format!("in {}", args.file.display()))?;
    let tok = Tokenizer::for_vocab_size(args.vocab_size)?;
    let case = match args.case {
        CaseArg::Prompt => Case::Prompt,
        CaseArg::Default => Case::Default,
    };
    let tokens = tok
        .tokenize_case(&md, case)
        .with_context(|| format!("cannot tokenize {}", args.file.display()))?;
    let json = if args.ids {
        serde_json::to_string(&tok.encode(&tokens))?
    } else {
        let values: Vec<serde_json::Value> = tokens.iter().map(|t| t.to_json()).collect();
        serde_json::to_string(&values)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")?;
    Ok(ExitCode::SUCCESS)
}
