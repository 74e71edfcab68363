//! The single-token decode step of a `gqa --full-head` export captured as a CUDA graph.
//!
//! ORT's CUDA provider (with `enable_cuda_graph`) records every kernel of one `Run` and then
//! replays the recording with one launch. The medium model's step is ~16 layers x ~15 kernels;
//! at a few µs of launch each that overhead alone is about a millisecond, the whole per-token
//! budget on an H100 (the reference's own decode step took 19.8 ms eager and 2.08 ms captured).
//!
//! A replay reads and writes the same device addresses as the recorded run and copies nothing,
//! so this step owns fixed device buffers: the token id, `seqlens_k` and the logits, plus the
//! model's shared KV buffers, all bound once in their own IoBinding. Each step writes the id and
//! the length into their buffers (a synchronous host-to-device copy), replays, and copies the
//! logits back. `total_sequence_length`, read on the host and so frozen at capture, is always the
//! KV buffer length (see the `gqa` step in [`crate::aria::model`]).
//!
//! Prefill (many tokens, a different shape) runs uncaptured with `gpu_graph_id = -1`; decode
//! runs as graph 1. ORT warms up twice before it captures, inside the first decode call.
//! Everything here runs on the thread that owns the model: a graph belongs to the thread that
//! captured it.

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{IoBinding, NoSelectedOutputs, RunOptions, Session};
use ort::value::{DynTensor, DynValue, Tensor, TensorElementType};

use super::model::ModelError;

/// ORT's run-config key naming the graph a run captures or replays.
const GRAPH_ID_KEY: &str = "gpu_graph_id";
/// The decode step's graph (0 is ORT's default id; any positive id works).
const DECODE_GRAPH: &str = "1";
/// Tells ORT not to capture a run (prefill).
const NO_GRAPH: &str = "-1";

fn err(what: &str) -> impl Fn(ort::Error) -> ModelError + '_ {
    move |e| ModelError::Inference(format!("CUDA graph step, {what}: {e}"))
}

/// Fixed buffers and the binding of the captured decode step.
pub(crate) struct GraphStep {
    ids_dev: DynTensor,
    seqlens_dev: DynTensor,
    logits_dev: DynTensor,
    ids_host: DynTensor,
    seqlens_host: DynTensor,
    logits_host: DynTensor,
    /// `total_sequence_length` (host memory: the kernel reads it there).
    total: DynValue,
    decode: IoBinding,
    /// Whether `decode` holds the KV buffers yet.
    bound: bool,
    decode_opts: RunOptions<NoSelectedOutputs>,
    prefill_opts: RunOptions<NoSelectedOutputs>,
}

impl std::fmt::Debug for GraphStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphStep")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

impl GraphStep {
    /// Allocates the fixed buffers on CUDA device 0 for a model of `vocab` logits whose KV
    /// buffers hold `capacity` tokens.
    pub(crate) fn new(
        session: &Session,
        vocab: usize,
        capacity: usize,
    ) -> Result<Self, ModelError> {
        let cuda = MemoryInfo::new(
            AllocationDevice::CUDA,
            0,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(err("device memory info"))?;
        let dev = Allocator::new(session, cuda).map_err(err("device allocator"))?;
        let host = session.allocator();
        let t = |a: &Allocator, ty, shape: &[usize]| {
            DynTensor::new(a, ty, shape.to_vec()).map_err(err("buffer"))
        };
        let opts = |id: &str| -> Result<RunOptions<NoSelectedOutputs>, ModelError> {
            let mut o = RunOptions::new().map_err(err("run options"))?;
            o.set(GRAPH_ID_KEY, id).map_err(err("run options"))?;
            Ok(o)
        };
        Ok(Self {
            ids_dev: t(&dev, TensorElementType::Int64, &[1, 1])?,
            seqlens_dev: t(&dev, TensorElementType::Int32, &[1])?,
            logits_dev: t(&dev, TensorElementType::Float32, &[1, vocab])?,
            ids_host: t(host, TensorElementType::Int64, &[1, 1])?,
            seqlens_host: t(host, TensorElementType::Int32, &[1])?,
            logits_host: t(host, TensorElementType::Float32, &[1, vocab])?,
            total: Tensor::from_array((Vec::<usize>::new(), vec![capacity as i32]))
                .map_err(err("total length"))?
                .into_dyn(),
            decode: session.create_binding().map_err(err("binding"))?,
            bound: false,
            decode_opts: opts(DECODE_GRAPH)?,
            prefill_opts: opts(NO_GRAPH)?,
        })
    }

    /// Run options for an uncaptured run (prefill, or several tokens at once).
    pub(crate) fn prefill_options(&self) -> &RunOptions<NoSelectedOutputs> {
        &self.prefill_opts
    }

    /// One captured decode step: `token` at cache position `pos` (0-based). `kv` holds
    /// `(past name, present name, shared buffer)` per input; they are bound on the first call
    /// and must stay the same buffers afterwards. Returns the `vocab` logits.
    pub(crate) fn decode(
        &mut self,
        session: &mut Session,
        token: u32,
        pos: usize,
        kv: &mut [(&str, &str, &mut DynValue)],
    ) -> Result<&[f32], ModelError> {
        self.ids_host
            .try_extract_tensor_mut::<i64>()
            .map_err(err("id"))?
            .1[0] = i64::from(token);
        self.seqlens_host
            .try_extract_tensor_mut::<i32>()
            .map_err(err("length"))?
            .1[0] = pos as i32;
        // Synchronous: the data is on the device before the replay is launched.
        self.ids_host
            .copy_into(&mut self.ids_dev)
            .map_err(err("id upload"))?;
        self.seqlens_host
            .copy_into(&mut self.seqlens_dev)
            .map_err(err("length upload"))?;
        if !self.bound {
            let b = &mut self.decode;
            b.bind_input("input_ids", &self.ids_dev)
                .map_err(err("bind input_ids"))?;
            b.bind_input("seqlens_k", &self.seqlens_dev)
                .map_err(err("bind seqlens_k"))?;
            b.bind_input("total_sequence_length", &self.total)
                .map_err(err("bind total_sequence_length"))?;
            for (past, present, buf) in kv.iter_mut() {
                b.bind_input(*past, &**buf).map_err(err("bind past"))?;
                b.bind_output(*present, &mut **buf)
                    .map_err(err("bind present"))?;
            }
            b.bind_output("logits", &mut self.logits_dev)
                .map_err(err("bind logits"))?;
            self.bound = true;
        }
        session
            .run_binding_with_options(&self.decode, &self.decode_opts)
            .map_err(err("run"))?;
        self.logits_dev
            .copy_into(&mut self.logits_host)
            .map_err(err("logits download"))?;
        let (_, data) = self
            .logits_host
            .try_extract_tensor::<f32>()
            .map_err(err("logits"))?;
        Ok(data)
    }
}
