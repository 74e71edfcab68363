//! The `--log FILE.jsonl` writer: records become JSON lines on the calling thread (the log
//! thread live, the jam's shell headless) and reach the disk through a tracing-appender
//! non-blocking writer, whose own thread does the `write` calls.

use std::io::Write;
use std::path::{Path, PathBuf};

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

use super::event::Record;

/// Something that takes every record of a run (called on the log thread live).
pub type RecordSink = Box<dyn FnMut(&Record) + Send>;

/// Lines buffered between the writer and its disk thread; a session writes ~15 records a bar,
/// so this is hours of slack. Full: the caller waits (never a real-time thread; see
/// [`crate::engine::live`]).
const BUFFERED_LINES: usize = 65_536;

/// A log file that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot create the event log {path}: {error}; check that its folder exists and is writable"
)]
pub struct LogFileError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub error: std::io::Error,
}

/// An open JSONL event log. Dropping it flushes what is buffered and closes the file.
pub struct LogFile {
    writer: NonBlocking,
    _guard: WorkerGuard,
    path: PathBuf,
}

impl std::fmt::Debug for LogFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFile").field("path", &self.path).finish()
    }
}

impl LogFile {
    /// Creates (truncates) `path` and starts its writer thread.
    pub fn create(path: &Path) -> Result<Self, LogFileError> {
        let file = std::fs::File::create(path).map_err(|error| LogFileError {
            path: path.to_path_buf(),
            error,
        })?;
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(false)
            .buffered_lines_limit(BUFFERED_LINES)
            .thread_name("aria-log-file")
            .finish(std::io::BufWriter::new(file));
        Ok(Self {
            writer,
            _guard: guard,
            path: path.to_path_buf(),
        })
    }

    /// Where it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A sink writing one line per record to this file (usable from any thread).
    pub fn sink(&self) -> RecordSink {
        let mut w = self.writer.clone();
        Box::new(move |r: &Record| {
            let _ = w.write_all(r.to_line().as_bytes());
        })
    }
}
