//! Console logging for every command: human-readable on stderr, filtered like `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. ONNX Runtime forwards ~80 INFO lines per session into the
/// `ort` target, so it is held at `warn` unless `RUST_LOG` names it.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
