//! Console logging for every command: human-readable on stderr, filtered like `RUST_LOG`, through
//! a non-blocking writer (a `tracing-appender` thread does the writes, so no engine thread ever
//! waits on the terminal); and the `--log` flag shared by the commands that run the engine.

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. ONNX Runtime forwards ~80 INFO lines per session into the
/// `ort` target, so it is held at `warn` unless `RUST_LOG` names it. Keep the returned guard
/// until the command ends: dropping it flushes the lines still queued.
pub fn init() -> WorkerGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,ort=warn"));
    // Lossy: past 128k queued lines a line is dropped rather than blocking the thread logging it.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .thread_name("aria-console")
        .finish(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false)
        .try_init();
    guard
}

/// `--log FILE.jsonl`, shared by every command that runs the engine.
#[derive(Debug, Default, clap::Args)]
pub struct LogFlags {
    /// Write one JSON event per bar lifecycle step to this file (read it with `aria-bridge report`).
    #[arg(long, value_name = "FILE.jsonl")]
    pub log: Option<std::path::PathBuf>,
}

impl LogFlags {
    /// Opens the event log when `--log` was given. Keep the file alive until the run ends:
    /// dropping it flushes the lines still buffered.
    pub fn open(&self) -> anyhow::Result<Option<aria_bridge::log::LogFile>> {
        self.log
            .as_deref()
            .map(aria_bridge::log::LogFile::create)
            .transpose()
            .map_err(Into::into)
    }
}
