//! Standard MIDI files: the human part read for a headless jam, and the session written out.
//!
//! # Principal items
//! - [`read_human`] / [`parse_human`]: every channel message of a .mid file (all tracks merged,
//!   tempo map honoured) as [`TimedMessage`]s in ms from the file's start.
//! - [`write_session`] / [`session_bytes`]: a [`Session`] (the recorded human and generated
//!   parts, constant tempo, meter, and a [`BarMark`] for each missed or dropped bar) as a format 1
//!   file at 480 ticks per quarter: a conductor track (tempo, time signatures, markers), a human
//!   track and an Aria track. [`marks_from_events`] turns the scheduler's records into marks.
//!
//! Runs off the real-time path (jam setup and teardown); allocation and file I/O are fine here.

use std::path::{Path, PathBuf};

use midly::live::LiveEvent;
use midly::num::{u15, u24, u28};
use midly::{Format, Header, MetaMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::clock::meter::{Meter, TimeSignature};
use crate::engine::scheduler::{DropReason, SchedulerEvent};
use crate::Nanos;

/// Resolution of written files: 480 ticks per quarter = 20 ticks per clock pulse.
pub const TICKS_PER_QUARTER: u16 = 480;

/// A MIDI file that could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SmfError {
    /// The file could not be opened or read.
    #[error("cannot read MIDI file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file ends inside a chunk (an interrupted download or copy).
    #[error("MIDI file {path} is truncated: {detail}; export it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where it ends.
        detail: String,
    },
    /// The bytes are not a Standard MIDI File.
    #[error("MIDI file {path} is not a valid Standard MIDI File ({detail}); re-export it as .mid from a DAW")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// midly's or our description.
        detail: String,
    },
    /// Format 2 (independent sequences) has no single timeline to play.
    #[error("MIDI file {path} is format 2 (independent sequences); save it as format 0 or 1")]
    Format2 {
        /// The file.
        path: PathBuf,
    },
    /// Nothing to play.
    #[error("MIDI file {path} has no notes: the human part needs at least one note-on")]
    NoNotes {
        /// The file.
        path: PathBuf,
    },
    /// The session could not be encoded or saved.
    #[error("cannot write session file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// One channel message of the human part, in ms from the file's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimedMessage {
    /// Time in ms from the file's start (tempo map applied).
    pub at_ms: f64,
    /// Status and data bytes; only the first `len` are valid.
    pub bytes: [u8; 3],
    /// Valid bytes: 2 (program change, channel pressure) or 3.
    pub len: u8,
}

impl TimedMessage {
    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// Reads the human part of a jam from a .mid file.
pub fn read_human(path: &Path) -> Result<Vec<TimedMessage>, SmfError> {
    let bytes = std::fs::read(path).map_err(|source| SmfError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_human(&bytes, path)
}

/// Parses .mid bytes into timed channel messages (notes, CC64 and every other channel
/// message; meta and SysEx events are dropped), all tracks merged in time order (ties keep
/// track order). `path` only names the source in errors.
pub fn parse_human(bytes: &[u8], path: &Path) -> Result<Vec<TimedMessage>, SmfError> {
    check_chunks(bytes, path)?;
    let smf = Smf::parse(bytes).map_err(|e| SmfError::Corrupt {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    if smf.header.format == Format::Sequential {
        return Err(SmfError::Format2 {
            path: path.to_owned(),
        });
    }
    let clock = TickClock::new(&smf);
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(3);
    for track in &smf.tracks {
        let mut tick = 0u64;
        for ev in track {
            tick += ev.delta.as_int() as u64;
            if let TrackEventKind::Midi { channel, message } = ev.kind {
                buf.clear();
                // Writing into a Vec cannot fail.
                let _ = LiveEvent::Midi { channel, message }.write_std(&mut buf);
                let mut b = [0u8; 3];
                let n = buf.len().min(3);
                b[..n].copy_from_slice(&buf[..n]);
                out.push(TimedMessage {
                    at_ms: clock.ms_at(tick),
                    bytes: b,
                    len: n as u8,
                });
            }
        }
    }
    out.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    if !out
        .iter()
        .any(|m| m.bytes[0] & 0xF0 == 0x90 && m.len == 3 && m.bytes[2] > 0)
    {
        return Err(SmfError::NoNotes {
            path: path.to_owned(),
        });
    }
    Ok(out)
}

/// Walks the chunk headers: midly's lenient parser silently accepts a file cut inside a chunk,
/// so truncation is detected here, with the offset in the message.
/// Whether the header's division is SMPTE with the frame-rate byte 0x80 (-128 fps, which no
/// file really uses): midly 0.5.3 negates that byte as an `i8`, which overflows and panics in
/// debug builds. Every reader checks this before handing bytes to midly.
pub fn has_overflowing_smpte_division(bytes: &[u8]) -> bool {
    bytes.len() >= 14 && bytes.starts_with(b"MThd") && bytes[12] == 0x80
}

fn check_chunks(bytes: &[u8], path: &Path) -> Result<(), SmfError> {
    let truncated = |detail: String| SmfError::Truncated {
        path: path.to_owned(),
        detail,
    };
    if bytes.len() < 14 {
        if bytes.starts_with(b"MThd") || bytes.is_empty() {
            return Err(truncated(format!(
                "{} bytes, shorter than the 14-byte header",
                bytes.len()
            )));
        }
        return Err(SmfError::Corrupt {
            path: path.to_owned(),
            detail: "no MThd header".into(),
        });
    }
    if &bytes[..4] != b"MThd" {
        return Err(SmfError::Corrupt {
            path: path.to_owned(),
            detail: "no MThd header (is it a RIFF/RMID or another format?)".into(),
        });
    }
    let be32 =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    if has_overflowing_smpte_division(bytes) {
        return Err(SmfError::Corrupt {
            path: path.to_owned(),
            detail: "SMPTE division with a frame rate of -128 (byte 0x80)".into(),
        });
    }
    let header_len = be32(4) as usize;
    let tracks = u16::from_be_bytes([bytes[10], bytes[11]]) as usize;
    let mut at = 8 + header_len;
    let mut seen = 0;
    while seen < tracks {
        if at + 8 > bytes.len() {
            return Err(truncated(format!(
                "the header announces {tracks} tracks, the file ends after {seen}"
            )));
        }
        let len = be32(at + 4) as usize;
        if at + 8 + len > bytes.len() {
            return Err(truncated(format!(
                "chunk at byte {at} declares {len} bytes, only {} remain",
                bytes.len() - at - 8
            )));
        }
        if &bytes[at..at + 4] == b"MTrk" {
            seen += 1;
        }
        at += 8 + len;
    }
    Ok(())
}

/// Ticks to ms for a parsed file: a piecewise-linear tempo map (tempo events of every track,
/// 120 BPM until the first), or a fixed rate for SMPTE timing.
struct TickClock {
    /// (tick, ms at that tick, a, b) sorted by tick: from there, ms = ms0 + ticks * a / b
    /// (multiplying first keeps whole-ms times exact: 480 ticks x 500000 us / 480000 = 500).
    segments: Vec<(u64, f64, f64, f64)>,
}

impl TickClock {
    fn new(smf: &Smf<'_>) -> Self {
        match smf.header.timing {
            Timing::Timecode(fps, sub) => {
                let ticks_per_s = fps.as_f32() as f64 * sub.max(1) as f64;
                Self {
                    segments: vec![(0, 0.0, 1000.0, ticks_per_s)],
                }
            }
            Timing::Metrical(tpq) => {
                let tpq = tpq.as_int().max(1) as f64;
                let mut tempos: Vec<(u64, u32)> = Vec::new();
                for track in &smf.tracks {
                    let mut tick = 0u64;
                    for ev in track {
                        tick += ev.delta.as_int() as u64;
                        if let TrackEventKind::Meta(MetaMessage::Tempo(us)) = ev.kind {
                            tempos.push((tick, us.as_int().max(1)));
                        }
                    }
                }
                tempos.sort_by_key(|t| t.0);
                let mut segments = vec![(0u64, 0.0, 500_000.0, tpq * 1000.0)];
                for (tick, us) in tempos {
                    let &(t0, ms0, a, b) = segments.last().expect("one segment");
                    let ms = ms0 + (tick - t0) as f64 * a / b;
                    let seg = (tick, ms, us as f64, tpq * 1000.0);
                    if tick == t0 {
                        *segments.last_mut().expect("one segment") = seg;
                    } else {
                        segments.push(seg);
                    }
                }
                Self { segments }
            }
        }
    }

    fn ms_at(&self, tick: u64) -> f64 {
        let i = self.segments.partition_point(|s| s.0 <= tick);
        let (t0, ms0, a, b) = self.segments[i.saturating_sub(1)];
        ms0 + (tick - t0) as f64 * a / b
    }
}

/// A bar that did not get its generated part, marked in the session file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BarMark {
    /// The result was not ready at the bar's start (`late_by_ms`: when it did arrive, if ever).
    Missed {
        /// The window bar.
        bar: u64,
        /// How late the result came, ms; `None` if it never came or failed.
        late_by_ms: Option<f64>,
    },
    /// The job was dropped before generation.
    Dropped {
        /// The window bar.
        bar: u64,
        /// Why.
        reason: DropReason,
    },
}

impl BarMark {
    /// The bar it marks.
    pub fn bar(&self) -> u64 {
        match *self {
            BarMark::Missed { bar, .. } | BarMark::Dropped { bar, .. } => bar,
        }
    }
}

impl std::fmt::Display for BarMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            BarMark::Missed {
                bar,
                late_by_ms: Some(ms),
            } => write!(f, "missed bar {bar} (late by {} ms)", ms.round() as i64),
            BarMark::Missed {
                bar,
                late_by_ms: None,
            } => write!(f, "missed bar {bar} (no result)"),
            BarMark::Dropped { bar, reason } => write!(f, "dropped bar {bar} ({reason})"),
        }
    }
}

/// The marks for a session from the scheduler's lifecycle records, in bar order: a miss (made
/// "late by" when its result came after all), or a drop. A record for a bar already marked
/// only refines that mark.
pub fn marks_from_events(events: &[SchedulerEvent]) -> Vec<BarMark> {
    let mut marks: Vec<BarMark> = Vec::new();
    for e in events {
        match *e {
            SchedulerEvent::Missed { bar, .. } if !marks.iter().any(|m| m.bar() == bar) => {
                marks.push(BarMark::Missed {
                    bar,
                    late_by_ms: None,
                });
            }
            SchedulerEvent::Late {
                bar, late_by_ms, ..
            } => match marks.iter_mut().find(|m| m.bar() == bar) {
                Some(BarMark::Missed { late_by_ms: l, .. }) => *l = Some(late_by_ms),
                Some(BarMark::Dropped { .. }) => {}
                None => marks.push(BarMark::Missed {
                    bar,
                    late_by_ms: Some(late_by_ms),
                }),
            },
            SchedulerEvent::Dropped { bar, reason } if !marks.iter().any(|m| m.bar() == bar) => {
                marks.push(BarMark::Dropped { bar, reason });
            }
            _ => {}
        }
    }
    marks.sort_by_key(|m| m.bar());
    marks
}

/// Everything the session file holds. Events are `(instant, bytes, length)` as recorded by
/// [`crate::midi::sink::Recorder`]; non-channel messages (clock, SysEx) are left out.
#[derive(Clone, Copy, Debug)]
pub struct Session<'a> {
    /// The jam's constant tempo, BPM.
    pub bpm: f64,
    /// Time signature at bar 0 and at each later change: `(bar, signature)`, bars increasing.
    pub meter: &'a [(u64, TimeSignature)],
    /// Instant of pulse 0 (the start of bar 0); earlier events are placed at tick 0.
    pub origin: Nanos,
    /// The human part.
    pub human: &'a [(Nanos, [u8; 3], u8)],
    /// The generated part.
    pub ai: &'a [(Nanos, [u8; 3], u8)],
    /// Missed and dropped bars.
    pub marks: &'a [BarMark],
}

/// Encodes a session as format 1 SMF bytes.
pub fn session_bytes(s: &Session<'_>) -> Vec<u8> {
    let first = s.meter.first().map_or(TimeSignature::COMMON, |m| m.1);
    let changes: Vec<(u64, TimeSignature)> = s.meter.iter().skip(1).copied().collect();
    let meter = Meter::with_changes(first, &changes);
    let ticks_per_pulse = TICKS_PER_QUARTER as u64 / crate::PPQN as u64;
    let bar_tick = |bar: u64| meter.bar_start(bar) * ticks_per_pulse;
    let bpm = if s.bpm.is_finite() && s.bpm > 0.0 {
        s.bpm
    } else {
        120.0
    };
    let ns_per_tick = 60e9 / bpm / TICKS_PER_QUARTER as f64;
    let tick_of = |t: Nanos| (t.saturating_sub(s.origin) as f64 / ns_per_tick).round() as u64;

    let texts: Vec<String> = s.marks.iter().map(|m| m.to_string()).collect();
    let mut conductor: Vec<(u64, TrackEventKind<'_>)> = vec![
        (
            0,
            TrackEventKind::Meta(MetaMessage::TrackName(b"conductor")),
        ),
        (
            0,
            TrackEventKind::Meta(MetaMessage::Tempo(u24::new(
                (60e6 / bpm)
                    .round()
                    .clamp(1.0, u24::max_value().as_int() as f64) as u32,
            ))),
        ),
    ];
    let mut sigs = vec![(0u64, first)];
    sigs.extend(changes.iter().copied().filter(|c| c.0 > 0));
    for (bar, sig) in sigs {
        conductor.push((
            bar_tick(bar),
            TrackEventKind::Meta(MetaMessage::TimeSignature(
                sig.num as u8,
                sig.den.trailing_zeros() as u8,
                24,
                8,
            )),
        ));
    }
    for (m, text) in s.marks.iter().zip(&texts) {
        conductor.push((
            bar_tick(m.bar()),
            TrackEventKind::Meta(MetaMessage::Marker(text.as_bytes())),
        ));
    }
    let part = |name: &'static [u8], events: &[(Nanos, [u8; 3], u8)]| {
        let mut v = vec![(0u64, TrackEventKind::Meta(MetaMessage::TrackName(name)))];
        for &(t, b, n) in events {
            if let Some(kind) = channel_event(&b[..(n as usize).min(3)]) {
                v.push((tick_of(t), kind));
            }
        }
        v
    };
    let tracks = [conductor, part(b"human", s.human), part(b"aria", s.ai)];
    let mut smf = Smf::new(Header::new(
        Format::Parallel,
        Timing::Metrical(u15::new(TICKS_PER_QUARTER)),
    ));
    for mut t in tracks {
        // Stable: events at one tick keep their recorded order (note-off before re-strike).
        t.sort_by_key(|e| e.0);
        let mut last = 0u64;
        let mut track = Vec::with_capacity(t.len() + 1);
        for (tick, kind) in t {
            track.push(TrackEvent {
                delta: delta(tick - last),
                kind,
            });
            last = tick;
        }
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
        });
        smf.tracks.push(track);
    }
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes)
        .expect("writing a MIDI file into memory cannot fail");
    bytes
}

/// Writes a session file.
pub fn write_session(path: &Path, s: &Session<'_>) -> Result<(), SmfError> {
    std::fs::write(path, session_bytes(s)).map_err(|source| SmfError::Write {
        path: path.to_owned(),
        source,
    })
}

/// A delta time, saturating at the 28-bit maximum (~4.6 days at 480 ticks per quarter, 120 BPM).
fn delta(ticks: u64) -> u28 {
    u28::new(ticks.min(u28::max_value().as_int() as u64) as u32)
}

/// The track event of a channel message; `None` for anything else or malformed bytes.
fn channel_event(bytes: &[u8]) -> Option<TrackEventKind<'static>> {
    match LiveEvent::parse(bytes).ok()? {
        LiveEvent::Midi { channel, message } => Some(TrackEventKind::Midi { channel, message }),
        _ => None,
    }
}
