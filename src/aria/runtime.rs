//! Loading ONNX Runtime and choosing the execution provider.
//!
//! [`Runtime::get`] finds `libonnxruntime.so` (in the order `ORT_DYLIB_PATH`, `[model] runtime`,
//! then `.ort/libonnxruntime.so` relative to the current directory and to the executable's
//! ancestors, where `scripts/setup.sh` puts it), checks that the file exists, loads it with
//! `ort::init_from` and builds the process-wide ORT environment once. [`Runtime::session_builder`]
//! registers the execution provider asked for by [`Device`]: `cuda` fails loudly when CUDA cannot
//! be registered (never a silent CPU fallback), `auto` logs ORT's reason and falls back to CPU.
//! Everything here runs on whichever thread loads the model (the worker, or the CLI's main thread).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::config::Device;

/// The ONNX Runtime release the `ort` crate (2.0.0-rc.15, API 31) is built against.
pub const ORT_VERSION: &str = "1.31.1";

/// Where `scripts/setup.sh` unpacks the library, relative to the repository root.
pub const DEFAULT_LIBRARY: &str = ".ort/libonnxruntime.so";

/// The execution provider a session actually runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// ORT's CPU provider.
    Cpu,
    /// ORT's CUDA provider (registered with `error_on_failure`).
    Cuda,
}

impl Provider {
    /// The short name used in logs, stats and bench reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
        }
    }
}

/// Why ONNX Runtime or an execution provider could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No library file at any of the places searched.
    #[error(
        "ONNX Runtime library not found (looked at: {}); run `scripts/setup.sh` to install \
         onnxruntime {ORT_VERSION} into .ort/, or set ORT_DYLIB_PATH or `[model] runtime` to a \
         libonnxruntime.so {ORT_VERSION}",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    LibraryMissing {
        /// Every path that was checked, in order.
        tried: Vec<PathBuf>,
    },
    /// The file exists but could not be loaded (not a library, wrong version, wrong architecture).
    #[error(
        "cannot load ONNX Runtime from {path}: {reason}; install onnxruntime {ORT_VERSION} \
         (`scripts/setup.sh`) or point ORT_DYLIB_PATH at a libonnxruntime.so {ORT_VERSION}"
    )]
    Load {
        /// The library file.
        path: PathBuf,
        /// ort's message.
        reason: String,
    },
    /// The ORT environment or session options could not be created.
    #[error("ONNX Runtime setup failed: {0}")]
    Setup(String),
    /// `device = "cuda"` and the CUDA provider did not register.
    #[error(
        "CUDA execution provider could not be registered: {reason}; install onnxruntime-gpu \
         {ORT_VERSION} and CUDA 13 with cuDNN 9 (libcudart.so.13, libcublas.so.13, \
         libcublasLt.so.13, libcudnn.so.9 on LD_LIBRARY_PATH), point ORT_DYLIB_PATH at its \
         libonnxruntime.so, or use --device cpu"
    )]
    CudaUnavailable {
        /// ORT's reason.
        reason: String,
    },
}

/// The loaded ONNX Runtime: one per process (ORT allows a single environment).
pub struct Runtime {
    env: Environment,
    library: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The places searched for the library, in order; the first that exists wins.
///
/// `env_path` is `ORT_DYLIB_PATH` (ignored when empty), `config_path` is `[model] runtime`.
pub fn library_candidates(
    env_path: Option<&Path>,
    config_path: Option<&Path>,
    cwd: Option<&Path>,
    exe: Option<&Path>,
) -> Vec<PathBuf> {
    // An explicit choice is never second-guessed: if it is set, it is the only candidate, so a
    // typo fails instead of silently picking another library.
    if let Some(p) = env_path.filter(|p| !p.as_os_str().is_empty()) {
        return vec![p.to_path_buf()];
    }
    if let Some(p) = config_path {
        return vec![p.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Some(cwd) = cwd {
        out.push(cwd.join(DEFAULT_LIBRARY));
    }
    // target/debug/aria-bridge -> target/debug, target, <repo>: the binary finds the library of
    // its own checkout wherever it is started from.
    if let Some(exe) = exe {
        for dir in exe.ancestors().skip(1) {
            let p = dir.join(DEFAULT_LIBRARY);
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Finds the library for this process (see [`library_candidates`]).
pub fn locate_library(config_path: Option<&Path>) -> Result<PathBuf, RuntimeError> {
    let env = std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from);
    let cwd = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    let tried = library_candidates(env.as_deref(), config_path, cwd.as_deref(), exe.as_deref());
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(RuntimeError::LibraryMissing { tried }),
    }
}

impl Runtime {
    /// Loads ONNX Runtime once per process; later calls return the same runtime whatever
    /// `config_path` says (ORT cannot be loaded twice).
    pub fn get(config_path: Option<&Path>) -> Result<&'static Runtime, RuntimeError> {
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let library = locate_library(config_path)?;
        let builder = ort::init_from(&library).map_err(|e| RuntimeError::Load {
            path: library.clone(),
            reason: e.to_string(),
        })?;
        let env = builder
            .with_name("aria-bridge")
            .build()
            .map_err(|e| RuntimeError::Setup(e.to_string()))?;
        tracing::info!(library = %library.display(), "ONNX Runtime loaded");
        Ok(RUNTIME.get_or_init(|| Runtime { env, library }))
    }

    /// The library file that was loaded.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// A session builder with `threads` intra-op threads and the provider for `device` registered.
    ///
    /// `spin` lets ORT's threads busy-wait between operators instead of sleeping. With two or
    /// more threads that is what makes them pay off (on a 2-core machine a d256 bar at 2 threads
    /// took 117.5 ms sleeping and 70.4 ms spinning, against 105.2 ms on one thread), but it keeps
    /// every core busy while a bar is generated, so it is off unless asked for.
    ///
    /// `cuda_graph` asks the CUDA provider to capture the decode step as a CUDA graph (only for
    /// models whose step has fixed shapes and addresses: the `gqa` export).
    pub fn session_builder(
        &self,
        device: Device,
        threads: usize,
        spin: bool,
        cuda_graph: bool,
    ) -> Result<(SessionBuilder, Provider), RuntimeError> {
        let base = || -> Result<SessionBuilder, RuntimeError> {
            let setup = |e: ort::Error<SessionBuilder>| RuntimeError::Setup(e.to_string());
            ort::session::Session::builder(&self.env)
                .map_err(|e| RuntimeError::Setup(e.to_string()))?
                .with_optimization_level(GraphOptimizationLevel::All)
                .map_err(setup)?
                .with_intra_threads(threads.max(1))
                .map_err(setup)?
                .with_inter_threads(1)
                .map_err(setup)?
                .with_intra_op_spinning(spin)
                .map_err(setup)?
                .with_inter_op_spinning(false)
                .map_err(setup)
        };
        match device {
            Device::Cpu => Ok((base()?, Provider::Cpu)),
            Device::Cuda => {
                let b = register_cuda(base()?, cuda_graph)
                    .map_err(|reason| RuntimeError::CudaUnavailable { reason })?;
                Ok((b, Provider::Cuda))
            }
            Device::Auto => match register_cuda(base()?, cuda_graph) {
                Ok(b) => Ok((b, Provider::Cuda)),
                Err(reason) => {
                    tracing::info!(%reason, "CUDA execution provider not available; using CPU");
                    Ok((base()?, Provider::Cpu))
                }
            },
        }
    }
}

/// Registers CUDA with `error_on_failure`; returns ORT's reason when it cannot.
fn register_cuda(b: SessionBuilder, cuda_graph: bool) -> Result<SessionBuilder, String> {
    let ep = ort::ep::CUDA::default()
        .with_device_id(0)
        .with_cuda_graph(cuda_graph)
        .build()
        .error_on_failure();
    b.with_execution_providers([ep])
        .map_err(|e| e.message().trim_end_matches('.').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_path_is_the_only_candidate_when_set() {
        let c = library_candidates(
            Some(Path::new("/x/lib.so")),
            Some(Path::new("/cfg/lib.so")),
            Some(Path::new("/cwd")),
            None,
        );
        assert_eq!(c, vec![PathBuf::from("/x/lib.so")]);
    }

    #[test]
    fn empty_env_path_falls_through_to_config() {
        let c = library_candidates(
            Some(Path::new("")),
            Some(Path::new("/cfg/lib.so")),
            None,
            None,
        );
        assert_eq!(c, vec![PathBuf::from("/cfg/lib.so")]);
    }

    #[test]
    fn default_search_covers_cwd_then_executable_ancestors() {
        let c = library_candidates(
            None,
            None,
            Some(Path::new("/cwd")),
            Some(Path::new("/repo/target/debug/aria-bridge")),
        );
        assert_eq!(c[0], PathBuf::from("/cwd/.ort/libonnxruntime.so"));
        assert!(c.contains(&PathBuf::from("/repo/.ort/libonnxruntime.so")));
        assert!(c.contains(&PathBuf::from("/repo/target/debug/.ort/libonnxruntime.so")));
    }
}
