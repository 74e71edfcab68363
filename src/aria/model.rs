//! One Aria decoder session under ONNX Runtime with its KV cache.
//!
//! [`AriaModel::load`] opens a model written by `models/export_onnx.py`, checks that its
//! interface is one this code drives, and reads the model's size from it:
//! - `plain` export: inputs `input_ids`, `positions`, `past_{key,value}_{i}`; outputs `logits`
//!   (last position only) and `present_{key,value}_{i}`, one token longer each step;
//! - `gqa` export: `GroupQueryAttention` with one preallocated KV buffer per layer
//!   ([`ModelOptions::max_context`] tokens) bound as both past and present, plus
//!   `logits_start`/`logits_end` so a step computes only the head rows it may sample
//!   ([`AriaModel::forward_range`]).
//!
//! The cache never crosses to the host between steps. On CPU with a `plain` model the `present_*`
//! values ORT returns are handed back as the next step's `past_*` inputs (no copy at all). On CUDA
//! the presents are bound to device memory with an IoBinding and re-bound as pasts (ort copies a
//! re-bound output on the device); with a `gqa` model ORT writes the new entries into the shared
//! buffers in place. Only the ids go up and the logits come down each step.
//!
//! Runs on the thread that owns the model (the generation worker); `forward` takes `&mut self`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, Session, SessionInputValue};
use ort::value::{DynTensor, DynValue, Tensor, TensorElementType, ValueType};

use crate::aria::graph_step::GraphStep;
use crate::aria::runtime::{Provider, Runtime, RuntimeError};
use crate::config::Device;

/// Element type of the model's weights and KV cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightDtype {
    /// 32-bit float.
    Fp32,
    /// IEEE half.
    Fp16,
    /// bfloat16.
    Bf16,
}

impl WeightDtype {
    /// The name `export_onnx.py --dtype` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightDtype::Fp32 => "fp32",
            WeightDtype::Fp16 => "fp16",
            WeightDtype::Bf16 => "bf16",
        }
    }
}

/// Which graph `export_onnx.py --variant` wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Standard ops; the cache grows by concatenation each step.
    Plain,
    /// Contrib `GroupQueryAttention` with one preallocated KV buffer per layer, bound as both
    /// past and present (same shapes and addresses every step).
    Gqa,
}

/// What the loaded model is, as read from its inputs and outputs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// Transformer layers.
    pub n_layers: usize,
    /// Attention heads.
    pub n_heads: usize,
    /// Size of one head.
    pub head_dim: usize,
    /// Rows of the output head (17727 default vocabulary, 17729 with pedal tokens).
    pub vocab_size: usize,
    /// Longest sequence the rotary table covers.
    pub max_seq_len: usize,
    /// Weights and cache dtype.
    pub dtype: WeightDtype,
    /// Graph variant.
    pub variant: Variant,
    /// The graph computes only the head rows asked for (`logits_start` / `logits_end` inputs).
    pub head_range: bool,
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file does not exist.
    #[error(
        "model file {path} not found; export one with `python3 models/export_onnx.py --checkpoint \
         CKPT.safetensors --config CONFIG.json --out {path}` or pass --model / `[model] path`"
    )]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// ORT could not parse or initialise the file.
    #[error("cannot load model {path}: {reason} (is it a complete .onnx file from models/export_onnx.py?)")]
    Load {
        /// The file.
        path: PathBuf,
        /// ORT's message.
        reason: String,
    },
    /// The file is a valid ONNX model but not an Aria decoder this code can drive.
    #[error(
        "model {path} does not have the Aria decoder interface: {reason}; re-export it with \
         models/export_onnx.py"
    )]
    Interface {
        /// The file.
        path: PathBuf,
        /// What is missing or different.
        reason: String,
    },
    /// ONNX Runtime or the execution provider could not be set up.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A forward pass failed.
    #[error("model inference failed: {0}")]
    Inference(String),
    /// `cuda_graph` was asked for a model or provider that cannot be captured.
    #[error("{path}: cannot capture the decode step in a CUDA graph: {reason}")]
    GraphUnsupported {
        /// The model file.
        path: PathBuf,
        /// Why, and what to export or pass instead.
        reason: String,
    },
    /// The sequence would outgrow the model's rotary table.
    #[error("sequence of {wanted} tokens exceeds the model's maximum of {max}")]
    ContextFull {
        /// Tokens the step needs in the cache.
        wanted: usize,
        /// The model's limit.
        max: usize,
    },
}

fn infer(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference(e.to_string())
}

/// How to open a model.
#[derive(Clone, Debug)]
pub struct ModelOptions {
    /// Execution provider to ask for.
    pub device: Device,
    /// ORT intra-op threads.
    pub threads: usize,
    /// Let ORT's threads busy-wait between operators (see [`Runtime::session_builder`]).
    pub spin: bool,
    /// Use the IoBinding path even on CPU (it is always used on CUDA); lets CPU tests cover it.
    pub force_io_binding: bool,
    /// Length of the preallocated KV buffer of a `gqa` export, in tokens (capped by the model's
    /// maximum). A jam needs prompt + one bar: ~200 + 256; the medium model's full 8192 would
    /// take 805 MB of fp16 cache.
    pub max_context: usize,
    /// Capture the decode step in a CUDA graph (CUDA only; a `gqa --full-head` export in fp16
    /// or bf16; `src/aria/graph_step.rs` says how).
    pub cuda_graph: bool,
    /// Write ORT's per-node profile (JSON) to a file starting with this prefix; see
    /// [`AriaModel::end_profiling`].
    pub profile: Option<PathBuf>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            threads: 1,
            spin: false,
            force_io_binding: false,
            max_context: 2048,
            cuda_graph: false,
            profile: None,
        }
    }
}

/// Where an input of the session gets its value from.
#[derive(Clone, Copy, Debug)]
enum Slot {
    Ids,
    Positions,
    Past(usize),
    SeqlensK,
    TotalLen,
    HeadStart,
    HeadEnd,
}

/// A loaded decoder and its cache. Not shared between threads (`forward` takes `&mut self`).
pub struct AriaModel {
    session: Session,
    path: PathBuf,
    provider: Provider,
    info: ModelInfo,
    slots: Vec<Slot>,
    past_names: Vec<String>,
    present_names: Vec<String>,
    /// `past_key_0, past_value_0, past_key_1, ...`; `None` only while a step runs.
    past: Vec<Option<DynValue>>,
    len: usize,
    logits: Vec<f32>,
    binding: Option<IoBinding>,
    device_mem: Option<MemoryInfo<'static>>,
    /// Tokens the `gqa` KV buffers hold.
    capacity: usize,
    /// Head rows the current step computes.
    head: Range<u32>,
    /// The captured decode step, with `cuda_graph`.
    graph: Option<GraphStep>,
}

impl std::fmt::Debug for AriaModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AriaModel")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .field("info", &self.info)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl AriaModel {
    /// Opens `path` on the provider `options.device` asks for.
    pub fn load(
        runtime: &Runtime,
        path: &Path,
        options: &ModelOptions,
    ) -> Result<Self, ModelError> {
        if !path.is_file() {
            return Err(ModelError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if options.cuda_graph && options.device != Device::Cuda {
            return Err(ModelError::GraphUnsupported {
                path: path.to_path_buf(),
                reason: "CUDA graphs need the CUDA provider: pass --device cuda".into(),
            });
        }
        let (mut builder, provider) = runtime.session_builder(
            options.device,
            options.threads,
            options.spin,
            options.cuda_graph,
        )?;
        if let Some(prefix) = &options.profile {
            builder = builder.with_profiling(prefix).map_err(infer)?;
        }
        let session = builder
            .commit_from_file(path)
            .map_err(|e| ModelError::Load {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        let bad = |reason: String| ModelError::Interface {
            path: path.to_path_buf(),
            reason,
        };
        let (info, slots, past_names, present_names) = read_interface(&session).map_err(bad)?;
        let gqa = info.variant == Variant::Gqa;
        let capacity = if gqa {
            options.max_context.clamp(1, info.max_seq_len)
        } else {
            info.max_seq_len
        };
        let device_mem = if provider == Provider::Cuda || options.force_io_binding || gqa {
            let dev = if provider == Provider::Cuda {
                AllocationDevice::CUDA
            } else {
                AllocationDevice::CPU
            };
            Some(
                MemoryInfo::new(dev, 0, AllocatorType::Device, MemoryType::Default)
                    .map_err(infer)?,
            )
        } else {
            None
        };
        if options.cuda_graph {
            let why = if !gqa {
                Some("it is a `plain` export: export with --variant gqa --full-head")
            } else if info.head_range {
                Some("its head-range inputs make the logits' shape vary (an `If` node, which capture refuses): export with --full-head")
            } else if info.dtype == WeightDtype::Fp32 {
                Some("ORT's CUDA GroupQueryAttention is fp16/bf16 only (fp32 would run on the CPU, which capture refuses): export with --dtype fp16 or bf16")
            } else {
                None
            };
            if let Some(reason) = why {
                return Err(ModelError::GraphUnsupported {
                    path: path.to_path_buf(),
                    reason: reason.into(),
                });
            }
        }
        let graph = if options.cuda_graph {
            Some(GraphStep::new(&session, info.vocab_size, capacity)?)
        } else {
            None
        };
        let binding = match device_mem {
            Some(_) => Some(session.create_binding().map_err(infer)?),
            None => None,
        };
        let mut model = Self {
            session,
            path: path.to_path_buf(),
            provider,
            info,
            slots,
            past_names,
            present_names,
            past: Vec::new(),
            len: 0,
            logits: Vec::new(),
            binding,
            device_mem,
            capacity,
            head: 0..0,
            graph,
        };
        model.reset()?;
        tracing::info!(
            model = %model.path.display(),
            provider = provider.as_str(),
            cuda_graph = model.graph.is_some(),
            dtype = model.info.dtype.as_str(),
            layers = model.info.n_layers,
            vocab = model.info.vocab_size,
            "model loaded"
        );
        Ok(model)
    }

    /// The execution provider the session runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The model's size and dtype.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops ORT's profiler (when [`ModelOptions::profile`] was set) and returns the file written.
    pub fn end_profiling(&mut self) -> Result<String, ModelError> {
        self.session.end_profiling().map_err(infer)
    }

    /// Tokens currently in the cache (the position of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the cache (a new sequence starts at position 0).
    pub fn reset(&mut self) -> Result<(), ModelError> {
        self.len = 0;
        let n = 2 * self.info.n_layers;
        if self.info.variant == Variant::Gqa
            && self.past.len() == n
            && self.past.iter().all(Option::is_some)
        {
            // Shared buffers are reused: GQA reads only the first seqlens_k + 1 slots, so stale
            // entries of the previous sequence are never seen.
            return Ok(());
        }
        let i = &self.info;
        let shape = match i.variant {
            Variant::Plain => [1usize, i.n_heads, 0, i.head_dim],
            Variant::Gqa => [1usize, i.n_heads, self.capacity, i.head_dim],
        };
        let mut past = Vec::with_capacity(2 * i.n_layers);
        let ty = match i.dtype {
            WeightDtype::Fp32 => TensorElementType::Float32,
            WeightDtype::Fp16 => TensorElementType::Float16,
            WeightDtype::Bf16 => TensorElementType::Bfloat16,
        };
        for _ in 0..2 * i.n_layers {
            let v: DynValue = match (&self.device_mem, i.variant) {
                (Some(mem), Variant::Gqa) => {
                    // The shared buffer lives where the provider computes.
                    let alloc =
                        ort::memory::Allocator::new(&self.session, mem.clone()).map_err(infer)?;
                    DynTensor::new(&alloc, ty, shape).map_err(infer)?.into_dyn()
                }
                _ => DynTensor::new(self.session.allocator(), ty, shape)
                    .map_err(infer)?
                    .into_dyn(),
            };
            past.push(Some(v));
        }
        self.past = past;
        self.len = 0;
        Ok(())
    }

    /// Appends `tokens` at the next positions and returns the logits after the last of them
    /// (all `vocab_size` of them).
    ///
    /// On error the cache is left empty (call [`AriaModel::reset`] or start a new sequence).
    pub fn forward(&mut self, tokens: &[u32]) -> Result<&[f32], ModelError> {
        let v = self.info.vocab_size as u32;
        self.forward_range(tokens, 0..v)
    }

    /// As [`AriaModel::forward`], but only the logits of ids in `head` need to be right: a model
    /// exported with a head range computes just those rows and the others read `-inf`; other
    /// models compute all of them. The returned slice is always `vocab_size` long.
    pub fn forward_range(
        &mut self,
        tokens: &[u32],
        head: Range<u32>,
    ) -> Result<&[f32], ModelError> {
        let v = self.info.vocab_size as u32;
        if head.start >= head.end || head.end > v {
            return Err(ModelError::Inference(format!(
                "head range {head:?} is not inside the vocabulary of {v}"
            )));
        }
        self.head = if self.info.head_range { head } else { 0..v };
        if tokens.is_empty() {
            return Err(ModelError::Inference(
                "forward called with no tokens".into(),
            ));
        }
        let wanted = self.len + tokens.len();
        if wanted > self.capacity {
            return Err(ModelError::ContextFull {
                wanted,
                max: self.capacity,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= self.info.vocab_size) {
            return Err(ModelError::Inference(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                self.info.vocab_size
            )));
        }
        let result = if self.info.variant == Variant::Gqa {
            self.step_gqa(tokens)
        } else if self.binding.is_some() {
            self.step_bound(tokens)
        } else {
            self.step_plain(tokens)
        };
        match result {
            Ok(()) => {
                self.len = wanted;
                Ok(&self.logits)
            }
            Err(e) => {
                // A half-updated cache must never be reused.
                self.len = 0;
                if self.past.iter().any(Option::is_none) {
                    self.past.clear();
                }
                let _ = self.reset();
                Err(e)
            }
        }
    }

    /// `logits_start` and `logits_end` tensors of the current step.
    fn head_tensors(&self) -> Result<(DynValue, DynValue), ModelError> {
        let a = Tensor::from_array(([1usize], vec![i64::from(self.head.start)])).map_err(infer)?;
        let b = Tensor::from_array(([1usize], vec![i64::from(self.head.end)])).map_err(infer)?;
        Ok((a.into_dyn(), b.into_dyn()))
    }

    fn ids_and_positions(&self, tokens: &[u32]) -> Result<(DynValue, DynValue), ModelError> {
        let n = tokens.len();
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let pos: Vec<i64> = (self.len..self.len + n).map(|p| p as i64).collect();
        let ids = Tensor::from_array(([1usize, n], ids)).map_err(infer)?;
        let pos = Tensor::from_array(([1usize, n], pos)).map_err(infer)?;
        Ok((ids.into_dyn(), pos.into_dyn()))
    }

    /// CPU: the previous presents go in by value and come back as this step's presents.
    fn step_plain(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        let (ids, pos) = self.ids_and_positions(tokens)?;
        let (hs, he) = self.head_tensors()?;
        let (mut ids, mut pos, mut hs, mut he) = (Some(ids), Some(pos), Some(hs), Some(he));
        let mut inputs: Vec<SessionInputValue<'_>> = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            let v = match *slot {
                Slot::Ids => ids.take(),
                Slot::Positions => pos.take(),
                Slot::Past(j) => self.past[j].take(),
                Slot::HeadStart => hs.take(),
                Slot::HeadEnd => he.take(),
                Slot::SeqlensK | Slot::TotalLen => None,
            }
            .ok_or_else(|| ModelError::Inference("KV cache missing (earlier failure)".into()))?;
            inputs.push(SessionInputValue::Owned(v));
        }
        let mut out = self.session.run(inputs.as_slice()).map_err(infer)?;
        copy_logits(&out, &mut self.logits, self.info.vocab_size, &self.head)?;
        for (j, name) in self.present_names.iter().enumerate() {
            let v = out
                .remove(name.as_str())
                .ok_or_else(|| ModelError::Inference(format!("output {name} missing")))?;
            self.past[j] = Some(v);
        }
        Ok(())
    }

    /// CUDA (or forced): presents stay in device memory through an IoBinding.
    fn step_bound(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        let (ids, pos) = self.ids_and_positions(tokens)?;
        let (hs, he) = self.head_tensors()?;
        let binding = self.binding.as_mut().expect("bound path");
        let dev = self.device_mem.as_ref().expect("bound path");
        binding.clear();
        for slot in &self.slots {
            match *slot {
                Slot::Ids => binding.bind_input("input_ids", &ids),
                Slot::Positions => binding.bind_input("positions", &pos),
                Slot::HeadStart => binding.bind_input("logits_start", &hs),
                Slot::HeadEnd => binding.bind_input("logits_end", &he),
                Slot::Past(j) => {
                    let v = self.past[j].as_ref().ok_or_else(|| {
                        ModelError::Inference("KV cache missing (earlier failure)".into())
                    })?;
                    binding.bind_input(self.past_names[j].as_str(), v)
                }
                Slot::SeqlensK | Slot::TotalLen => Ok(()),
            }
            .map_err(infer)?;
        }
        // Logits come to host memory; the cache stays where the provider computes.
        bind_logits_to_host(binding)?;
        for name in &self.present_names {
            binding
                .bind_output_to_device(name.as_str(), dev)
                .map_err(infer)?;
        }
        let mut out = self.session.run_binding(binding).map_err(infer)?;
        copy_logits(&out, &mut self.logits, self.info.vocab_size, &self.head)?;
        for (j, name) in self.present_names.iter().enumerate() {
            let v = out
                .remove(name.as_str())
                .ok_or_else(|| ModelError::Inference(format!("output {name} missing")))?;
            self.past[j] = Some(v);
        }
        Ok(())
    }
}

impl AriaModel {
    /// `gqa`: every layer's K and V buffer is bound as both past and present, so ORT writes the
    /// new entries in place; only the ids and two lengths change between steps.
    fn step_gqa(&mut self, tokens: &[u32]) -> Result<(), ModelError> {
        if let (Some(g), [token]) = (self.graph.as_mut(), tokens) {
            let mut kv: Vec<(&str, &str, &mut DynValue)> = Vec::with_capacity(self.past.len());
            for ((past, present), buf) in self
                .past_names
                .iter()
                .zip(&self.present_names)
                .zip(self.past.iter_mut())
            {
                let buf = buf.as_mut().ok_or_else(|| {
                    ModelError::Inference("KV buffer missing (earlier failure)".into())
                })?;
                kv.push((past.as_str(), present.as_str(), buf));
            }
            let data = g.decode(&mut self.session, *token, self.len, &mut kv)?;
            self.logits.clear();
            self.logits.extend_from_slice(data);
            return Ok(());
        }
        let n = tokens.len();
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::from_array(([1usize, n], ids)).map_err(infer)?;
        // seqlens_k is the index of the last token, per ORT's contrib-op spec. The kernels (CPU
        // and CUDA) take the attention length, the rotary positions and where to write the new
        // entries from it; `total_sequence_length` only sizes the present buffers, which are the
        // shared ones. So it is always the buffer length: the one value that is right for every
        // step, and the one a captured CUDA graph (which freezes this host-side input) needs.
        let seqlens =
            Tensor::from_array(([1usize], vec![(self.len + n) as i32 - 1])).map_err(infer)?;
        let total_t =
            Tensor::from_array((Vec::<usize>::new(), vec![self.capacity as i32])).map_err(infer)?;
        let (hs, he) = self.head_tensors()?;
        let binding = self.binding.as_mut().expect("gqa uses a binding");
        binding.clear();
        for slot in &self.slots {
            match *slot {
                Slot::Ids => binding.bind_input("input_ids", &ids),
                Slot::SeqlensK => binding.bind_input("seqlens_k", &seqlens),
                Slot::TotalLen => binding.bind_input("total_sequence_length", &total_t),
                Slot::HeadStart => binding.bind_input("logits_start", &hs),
                Slot::HeadEnd => binding.bind_input("logits_end", &he),
                Slot::Positions => Ok(()),
                Slot::Past(j) => {
                    let v = self.past[j].as_mut().ok_or_else(|| {
                        ModelError::Inference("KV buffer missing (earlier failure)".into())
                    })?;
                    binding
                        .bind_input(self.past_names[j].as_str(), &*v)
                        .and_then(|_| binding.bind_output(self.present_names[j].as_str(), v))
                }
            }
            .map_err(infer)?;
        }
        bind_logits_to_host(binding)?;
        let out = match &self.graph {
            Some(g) => self
                .session
                .run_binding_with_options(binding, g.prefill_options()),
            None => self.session.run_binding(binding),
        }
        .map_err(infer)?;
        copy_logits(&out, &mut self.logits, self.info.vocab_size, &self.head)
    }
}

/// Binds the `logits` output to host memory (the sampler reads it there).
fn bind_logits_to_host(binding: &mut IoBinding) -> Result<(), ModelError> {
    let host = MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Device,
        MemoryType::Default,
    )
    .map_err(infer)?;
    binding
        .bind_output_to_device("logits", &host)
        .map_err(infer)
}

fn copy_logits(
    out: &ort::session::SessionOutputs<'_>,
    dst: &mut Vec<f32>,
    vocab: usize,
    head: &Range<u32>,
) -> Result<(), ModelError> {
    let v = out
        .get("logits")
        .ok_or_else(|| ModelError::Inference("output logits missing".into()))?;
    let (_, data) = v.try_extract_tensor::<f32>().map_err(infer)?;
    let (a, b) = (head.start as usize, head.end as usize);
    if data.len() != b - a {
        return Err(ModelError::Inference(format!(
            "logits have {} values, expected {} (ids {a}..{b})",
            data.len(),
            b - a
        )));
    }
    dst.clear();
    dst.resize(vocab, f32::NEG_INFINITY);
    dst[a..b].copy_from_slice(data);
    Ok(())
}

type Interface = (ModelInfo, Vec<Slot>, Vec<String>, Vec<String>);

fn tensor_of(t: &ValueType) -> Option<(TensorElementType, Vec<i64>)> {
    match t {
        ValueType::Tensor { ty, shape, .. } => Some((*ty, shape.to_vec())),
        _ => None,
    }
}

/// Reads and checks the session's inputs and outputs against the exporter's plain interface.
fn read_interface(session: &Session) -> Result<Interface, String> {
    let inputs = session.inputs();
    let outputs = session.outputs();
    let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
    let variant = if names.contains(&"seqlens_k") {
        Variant::Gqa
    } else {
        Variant::Plain
    };
    let needed: &[&str] = match variant {
        Variant::Plain => &["input_ids", "positions", "past_key_0", "past_value_0"],
        Variant::Gqa => &[
            "input_ids",
            "seqlens_k",
            "total_sequence_length",
            "past_key_0",
            "past_value_0",
        ],
    };
    for &need in needed {
        if !names.contains(&need) {
            return Err(format!(
                "input `{need}` is missing (inputs are: {})",
                names.join(", ")
            ));
        }
    }
    let n_layers = names.iter().filter(|n| n.starts_with("past_key_")).count();
    let mut past_names = Vec::new();
    let mut present_names = Vec::new();
    for l in 0..n_layers {
        for kv in ["key", "value"] {
            let p = format!("past_{kv}_{l}");
            if !names.contains(&p.as_str()) {
                return Err(format!("input `{p}` is missing"));
            }
            let o = format!("present_{kv}_{l}");
            if !outputs.iter().any(|x| x.name() == o) {
                return Err(format!("output `{o}` is missing"));
            }
            past_names.push(p);
            present_names.push(o);
        }
    }
    let mut slots = Vec::new();
    for n in &names {
        slots.push(match *n {
            "input_ids" => Slot::Ids,
            "positions" => Slot::Positions,
            "seqlens_k" => Slot::SeqlensK,
            "total_sequence_length" => Slot::TotalLen,
            "logits_start" => Slot::HeadStart,
            "logits_end" => Slot::HeadEnd,
            other => match past_names.iter().position(|p| p == other) {
                Some(j) => Slot::Past(j),
                None => return Err(format!("unexpected input `{other}`")),
            },
        });
    }
    let (ty, shape) = inputs
        .iter()
        .find(|i| i.name() == "past_key_0")
        .and_then(|i| tensor_of(i.dtype()))
        .ok_or("`past_key_0` is not a tensor")?;
    let dtype = match ty {
        TensorElementType::Float32 => WeightDtype::Fp32,
        TensorElementType::Float16 => WeightDtype::Fp16,
        TensorElementType::Bfloat16 => WeightDtype::Bf16,
        other => return Err(format!("`past_key_0` has element type {other:?}")),
    };
    if shape.len() != 4 || shape[1] <= 0 || shape[3] <= 0 {
        return Err(format!(
            "`past_key_0` has shape {shape:?}, expected [1, heads, past, head_dim]"
        ));
    }
    let logits = outputs
        .iter()
        .find(|o| o.name() == "logits")
        .and_then(|o| tensor_of(o.dtype()))
        .ok_or("output `logits` is missing")?;
    let head_range = names.contains(&"logits_start") && names.contains(&"logits_end");
    if logits.0 != TensorElementType::Float32 || logits.1.len() != 2 {
        return Err(format!(
            "`logits` is {:?} {:?}, expected float32 [1, vocab]",
            logits.0, logits.1
        ));
    }
    let meta = |key: &str| -> Option<usize> {
        session
            .metadata()
            .ok()
            .and_then(|m| m.custom(key))
            .and_then(|s| s.parse().ok())
    };
    let vocab_size = if logits.1[1] > 0 {
        logits.1[1] as usize
    } else {
        meta("aria.vocab_size").ok_or("the vocabulary size is neither in `logits` nor metadata")?
    };
    let max_seq_len = meta("aria.max_seq_len").unwrap_or(1024);
    let info = ModelInfo {
        n_layers,
        n_heads: shape[1] as usize,
        head_dim: shape[3] as usize,
        vocab_size,
        max_seq_len,
        dtype,
        variant,
        head_range,
    };
    Ok((info, slots, past_names, present_names))
}
