//! What several commands share: the config file, model flags, building the generator.

use std::path::{Path, PathBuf};

use std::time::Duration;

use aria_bridge::aria::generator::AriaGenerator;
use aria_bridge::config::{Config, Device};
use aria_bridge::engine::generator::Generator;

/// Model flags shared by commands that run the model.
#[derive(Debug, Clone, clap::Args)]
pub struct ModelFlags {
    /// ONNX model (overrides `model.path`).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Execution provider: auto, cpu or cuda (overrides `model.device`).
    #[arg(long, value_parser = parse_device)]
    pub device: Option<Device>,
    /// libonnxruntime.so to load (overrides `model.runtime`; ORT_DYLIB_PATH still wins).
    #[arg(long)]
    pub runtime: Option<PathBuf>,
    /// ONNX Runtime CPU threads (overrides `model.threads`).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Let ONNX Runtime's threads busy-wait between operators (sets `model.spin`).
    #[arg(long)]
    pub spin: bool,
}

impl ModelFlags {
    /// Writes the flags that were given into `cfg`.
    pub fn apply(&self, cfg: &mut Config) {
        if let Some(m) = &self.model {
            cfg.model.path = m.clone();
        }
        if let Some(d) = self.device {
            cfg.model.device = d;
        }
        if let Some(r) = &self.runtime {
            cfg.model.runtime = Some(r.clone());
        }
        if let Some(t) = self.threads {
            cfg.model.threads = t;
        }
        if self.spin {
            cfg.model.spin = true;
        }
    }
}

/// Parses `auto`, `cpu` or `cuda`.
pub fn parse_device(s: &str) -> Result<Device, String> {
    match s.to_ascii_lowercase().as_str() {
        "auto" => Ok(Device::Auto),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda),
        _ => Err(format!("unknown device {s:?}: use auto, cpu or cuda")),
    }
}

/// The config file when given, else the built-in defaults (which `config/default.toml` documents).
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    })
}

/// Builds the model-backed generator that `[model]` describes (loads ONNX Runtime, registers
/// the execution provider, checks the model's inputs and vocabulary).
pub fn load_generator(cfg: &Config) -> anyhow::Result<Box<dyn Generator>> {
    let margin = Duration::from_secs_f64(cfg.generation.deadline_margin_ms.max(0.0) / 1e3);
    let generator = AriaGenerator::load(&cfg.model, margin)?;
    Ok(Box::new(generator))
}
