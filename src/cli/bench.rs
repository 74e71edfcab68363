//! `aria-bridge bench`: prefill, per-token decode and whole-bar latency of a model.
//!
//! One bar is what the jam asks for: a prompt of `--prompt-tokens` ids (prefill), then
//! `--new-tokens` sampled one at a time (decode, sampling included). Each run starts from an empty
//! cache. The figures are p50/p95/p99 over `--runs` bars after `--warmup` unrecorded ones.
//!
//! By default the loop is the jam's: a synthetic piano prompt, grammar-masked sampling, and (with
//! a head-range export) only the head rows the next draw can pick. `--unmasked` samples from the
//! whole vocabulary with the full head, as the reference's `sample_batch` does.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use aria_bridge::aria::grammar::{hull, Grammar};
use aria_bridge::aria::model::{AriaModel, ModelOptions};
use aria_bridge::aria::runtime::Runtime;
use aria_bridge::aria::sampling::Sampler;
use aria_bridge::aria::tokenizer::{Instrument, Special, Token, Tokenizer};
use aria_bridge::config::Device;
use aria_bridge::engine::generator::SamplingParams;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};

/// Flags of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ONNX model from models/export_onnx.py.
    #[arg(long, default_value = "models/aria-tiny-dev.onnx")]
    pub model: PathBuf,
    /// Execution provider: auto, cpu or cuda (cuda fails if it cannot be registered).
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: Device,
    /// libonnxruntime.so to load (ORT_DYLIB_PATH wins).
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// ORT intra-op threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Let ORT's threads busy-wait between operators (what makes --threads 2 pay off).
    #[arg(long)]
    pub spin: bool,
    /// Capture the decode step in a CUDA graph (--device cuda, a `gqa --full-head` fp16/bf16
    /// export).
    #[arg(long)]
    pub cuda_graph: bool,
    /// Prompt length in tokens (a two-bar prompt of dense piano is ~178).
    #[arg(long, default_value_t = 178)]
    pub prompt_tokens: usize,
    /// Tokens sampled per bar.
    #[arg(long, default_value_t = 96)]
    pub new_tokens: usize,
    /// Recorded bars.
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Unrecorded bars first (ORT allocates and tunes on the first runs).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Sampling temperature (the reference bench uses 0.98).
    #[arg(long, default_value_t = 0.98)]
    pub temperature: f32,
    /// Min-p threshold (the reference bench uses 0.035); 0 switches to top-p.
    #[arg(long, default_value_t = 0.035)]
    pub min_p: f32,
    /// Top-p mass, used when --min-p is 0.
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f32,
    /// Sample from the whole vocabulary with the full head (the reference loop's work).
    #[arg(long)]
    pub unmasked: bool,
    /// Write ORT's per-node profile to a JSON file starting with this prefix.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Parses `auto`, `cpu` or `cuda`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s {
        "auto" => Ok(Device::Auto),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda),
        _ => Err(format!("`{s}` is not a device: use auto, cpu or cuda")),
    }
}

/// Logs to stderr, `RUST_LOG` overriding the default (info here, warn for ORT's chatter).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[derive(Debug, serde::Serialize)]
struct Quantiles {
    p50: f64,
    p95: f64,
    p99: f64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    model: String,
    masked: bool,
    provider: &'static str,
    dtype: &'static str,
    threads: usize,
    spin: bool,
    cuda_graph: bool,
    prompt_tokens: usize,
    new_tokens: usize,
    runs: usize,
    prefill_ms: Quantiles,
    decode_token_ms: Quantiles,
    bar_ms: Quantiles,
    tokens_per_s: f64,
}

fn quantiles(h: &Histogram<u64>) -> Quantiles {
    // Recorded in microseconds.
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Quantiles {
        p50: q(0.5),
        p95: q(0.95),
        p99: q(0.99),
    }
}

/// Runs `bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging();
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(
        args.prompt_tokens > 0 && args.new_tokens > 0,
        "--prompt-tokens and --new-tokens must be at least 1"
    );
    let rt = Runtime::get(args.runtime.as_deref())?;
    let opts = ModelOptions {
        device: args.device,
        threads: args.threads,
        spin: args.spin,
        cuda_graph: args.cuda_graph,
        profile: args.profile.clone(),
        ..ModelOptions::default()
    };
    let mut model = AriaModel::load(rt, &args.model, &opts)?;
    let vocab = model.info().vocab_size as u32;
    let tok = Tokenizer::for_vocab_size(vocab as usize)
        .with_context(|| format!("model vocabulary of {vocab} ids: only --unmasked can run it"));
    let (tok, grammar) = match (tok, args.unmasked) {
        (Ok(t), _) => {
            let g = Grammar::new(&t);
            (Some(t), Some(g))
        }
        (Err(_), true) => (None, None),
        (Err(e), false) => return Err(e),
    };
    let prompt: Vec<u32> = match &tok {
        Some(t) => synthetic_prompt(t, args.prompt_tokens),
        // Any ids in range exercise the same kernels; a fixed stride keeps runs comparable.
        None => (0..args.prompt_tokens as u32)
            .map(|i| (i * 7919 + 6) % vocab)
            .collect(),
    };
    let params = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        min_p: (args.min_p > 0.0).then_some(args.min_p),
        seed: 0,
        max_new_tokens: args.new_tokens as u32,
    };
    let mut allowed = Vec::with_capacity(4);
    let mut sampler = Sampler::new(0);
    // The next draw's ids: the grammar's (masked) or all of them.
    let set_allowed = |cursor: &Option<aria_bridge::aria::grammar::Cursor>,
                       allowed: &mut Vec<std::ops::Range<u32>>| {
        match (cursor, &grammar, args.unmasked) {
            (Some(c), Some(g), false) => g.allowed(c, allowed),
            _ => {
                allowed.clear();
                allowed.push(0..vocab);
            }
        }
    };
    let new_hist = || Histogram::<u64>::new_with_bounds(1, 600_000_000, 3);
    let (mut prefill, mut decode, mut bar) = (new_hist()?, new_hist()?, new_hist()?);

    let total = (args.warmup + args.runs) as u64;
    let pb = if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(total);
        pb.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} bars")
                .context("progress template")?,
        );
        pb.set_message(format!("bench {}", args.model.display()));
        pb
    } else {
        ProgressBar::hidden()
    };
    for run in 0..total {
        let record = run >= args.warmup as u64;
        sampler.reseed(run);
        model.reset()?;
        let mut cursor = match (&tok, &grammar) {
            (Some(t), Some(g)) => Some(g.start(t, &prompt)),
            _ => None,
        };
        let t0 = Instant::now();
        set_allowed(&cursor, &mut allowed);
        let logits = model.forward_range(&prompt, hull(&allowed))?;
        let mut next = sampler
            .sample(logits, &allowed, &params)
            .context("no token could be sampled")?;
        let t1 = Instant::now();
        if record {
            prefill.saturating_record(micros(t1 - t0));
        }
        for _ in 1..args.new_tokens {
            let s = Instant::now();
            if let (Some(c), Some(t), Some(g)) = (cursor.as_mut(), &tok, &grammar) {
                g.advance(t, c, next);
            }
            set_allowed(&cursor, &mut allowed);
            let logits = model.forward_range(&[next], hull(&allowed))?;
            next = sampler
                .sample(logits, &allowed, &params)
                .context("no token could be sampled")?;
            if record {
                decode.saturating_record(micros(s.elapsed()));
            }
        }
        if record {
            bar.saturating_record(micros(t0.elapsed()));
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if args.profile.is_some() {
        eprintln!("ORT profile written to {}", model.end_profiling()?);
    }

    let bar_q = quantiles(&bar);
    let report = Report {
        model: args.model.display().to_string(),
        masked: !args.unmasked,
        provider: model.provider().as_str(),
        dtype: model.info().dtype.as_str(),
        threads: args.threads,
        spin: args.spin,
        cuda_graph: args.cuda_graph,
        prompt_tokens: args.prompt_tokens,
        new_tokens: args.new_tokens,
        runs: args.runs,
        prefill_ms: quantiles(&prefill),
        decode_token_ms: quantiles(&decode),
        tokens_per_s: args.new_tokens as f64 * 1000.0 / bar_q.p50,
        bar_ms: bar_q,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "model {} on {}{} ({}), {} thread(s){}, {} + {} tokens ({}), {} runs",
            report.model,
            report.provider,
            if report.cuda_graph {
                " (CUDA graph)"
            } else {
                ""
            },
            report.dtype,
            report.threads,
            if report.spin { " spinning" } else { "" },
            report.prompt_tokens,
            report.new_tokens,
            if report.masked { "masked" } else { "unmasked" },
            report.runs
        );
        println!("                   p50       p95       p99");
        for (name, q) in [
            ("prefill ms", &report.prefill_ms),
            ("decode ms/token", &report.decode_token_ms),
            ("bar ms", &report.bar_ms),
        ] {
            println!("{name:<16}{:>8.3}  {:>8.3}  {:>8.3}", q.p50, q.p95, q.p99);
        }
        println!("tokens/s (bar p50) {:.1}", report.tokens_per_s);
    }
    Ok(ExitCode::SUCCESS)
}

/// A grammatical piano prompt of `n` ids: prefix, `<S>`, a note every 140 ms (48 + 7i mod 36,
/// 300 ms long), `<T>` at each 5000 ms boundary; cut at `n`.
fn synthetic_prompt(tok: &Tokenizer, n: usize) -> Vec<u32> {
    let piano = Token::Prefix("instrument".into(), "piano".into());
    let mut ids = vec![
        tok.id(&piano).unwrap_or(Special::U as u32),
        tok.special_id(Special::S),
    ];
    let (mut t, mut seg, mut i) = (0u32, 0u32, 0u32);
    while ids.len() < n {
        while t >= (seg + 1) * 5000 {
            ids.push(tok.special_id(Special::T));
            seg += 1;
        }
        let note = Token::Note {
            instrument: Instrument::Piano,
            pitch: 48 + ((i * 7) % 36) as u8,
            velocity: 60,
        };
        for tk in [note, Token::Onset(t - seg * 5000), Token::Dur(300)] {
            ids.push(tok.id(&tk).unwrap_or(Special::U as u32));
        }
        t += 140;
        i += 1;
    }
    ids.truncate(n);
    ids
}

fn micros(d: std::time::Duration) -> u64 {
    d.as_micros().max(1) as u64
}
