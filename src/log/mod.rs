//! The session event log: one schema ([`event`]), built from engine records ([`convert`]),
//! written as JSON lines ([`mod@file`]) and summarised live ([`status`]).
//!
//! Live, the real-time threads only `try_send` fixed-size records to `aria-log`
//! ([`crate::engine::live`]); that thread turns them into [`Record`]s, feeds the status line and hands
//! each record to a [`RecordSink`]. The headless jam builds the same records in virtual time
//! ([`crate::engine::jam`]). `aria-bridge report` reads them back with [`parse_log`].

pub mod convert;
pub mod event;
pub mod file;
pub mod live;
pub mod status;

pub use event::{parse_log, Event, ParsedLog, Record, SkippedLine, VERSION};
pub use file::{LogFile, LogFileError, RecordSink};
pub use status::Status;
