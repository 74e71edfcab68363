//! The piano roll of a session file: human and generated notes in two colours over bar lines.
//!
//! Reads the format-1 session `aria-bridge jam` writes (tracks named "human" and "aria"; a file
//! without those names takes its first and second tracks with notes). Bars come from the time
//! signatures of any track (4/4 until the first).

use std::path::Path;

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};
use plotters::prelude::*;

use super::plot::{draw_err, register_font, PlotError, FAMILY};

/// One sounding note, in quarter notes from the file's start.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RollNote {
    /// Onset, quarters.
    pub start: f64,
    /// End, quarters.
    pub end: f64,
    /// MIDI pitch.
    pub pitch: u8,
}

/// The notes and bar lines of a session.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Roll {
    /// The human part.
    pub human: Vec<RollNote>,
    /// The generated part.
    pub ai: Vec<RollNote>,
    /// Bar starts, quarters (through the last note's end).
    pub bar_lines: Vec<f64>,
}

/// A session file that could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum RollError {
    /// The file could not be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// Not a standard MIDI file, or a corrupt one.
    #[error("{path} is not a readable MIDI file ({detail}); pass the session file written by `aria-bridge jam --out`")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        detail: String,
    },
    /// SMPTE timing: no bars to draw.
    #[error("{path} uses SMPTE timing; a piano roll needs metrical (ticks per quarter) timing")]
    Smpte {
        /// The file.
        path: String,
    },
    /// Drawing failed.
    #[error(transparent)]
    Plot(#[from] PlotError),
}

/// Reads the roll of a session file's bytes (`path` names it in errors).
pub fn parse_roll(bytes: &[u8], path: &Path) -> Result<Roll, RollError> {
    let name = path.display().to_string();
    if crate::midi::smf::has_overflowing_smpte_division(bytes) {
        return Err(RollError::Smpte { path: name });
    }
    let smf = Smf::parse(bytes).map_err(|e| RollError::Parse {
        path: name.clone(),
        detail: e.to_string(),
    })?;
    let tpq = match smf.header.timing {
        Timing::Metrical(t) => t.as_int().max(1) as f64,
        Timing::Timecode(..) => return Err(RollError::Smpte { path: name }),
    };
    let mut sigs: Vec<(u64, u8, u8)> = Vec::new();
    let mut parts: Vec<(Option<Vec<u8>>, Vec<RollNote>)> = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        let mut name = None;
        let mut open: [[Option<u64>; 128]; 16] = [[None; 128]; 16];
        let mut notes = Vec::new();
        for ev in track {
            tick += ev.delta.as_int() as u64;
            let q = |t: u64| t as f64 / tpq;
            match ev.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => name = Some(n.to_vec()),
                TrackEventKind::Meta(MetaMessage::TimeSignature(num, den, ..)) => {
                    sigs.push((tick, num.max(1), den.min(6)))
                }
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int() as usize;
                    let (pitch, on) = match message {
                        MidiMessage::NoteOn { key, vel } => (key.as_int(), vel.as_int() > 0),
                        MidiMessage::NoteOff { key, .. } => (key.as_int(), false),
                        _ => continue,
                    };
                    let slot = &mut open[ch][pitch as usize];
                    // A re-strike closes the sounding note first.
                    if let Some(s) = slot.take() {
                        notes.push(RollNote {
                            start: q(s),
                            end: q(tick),
                            pitch,
                        });
                    }
                    if on {
                        *slot = Some(tick);
                    }
                }
                _ => {}
            }
        }
        for pitches in &open {
            for (p, s) in pitches.iter().enumerate() {
                if let Some(s) = s {
                    notes.push(RollNote {
                        start: *s as f64 / tpq,
                        end: tick as f64 / tpq,
                        pitch: p as u8,
                    });
                }
            }
        }
        parts.push((name, notes));
    }
    let take = |want: &[u8], parts: &mut Vec<(Option<Vec<u8>>, Vec<RollNote>)>| {
        parts
            .iter()
            .position(|(n, _)| n.as_deref() == Some(want))
            .map(|i| parts.remove(i).1)
    };
    let human = take(b"human", &mut parts);
    let ai = take(b"aria", &mut parts);
    let mut rest = parts.into_iter().map(|p| p.1).filter(|n| !n.is_empty());
    let human = human.or_else(|| rest.next()).unwrap_or_default();
    let ai = ai.or_else(|| rest.next()).unwrap_or_default();

    let end = human
        .iter()
        .chain(&ai)
        .map(|n| n.end)
        .fold(0.0f64, f64::max);
    sigs.sort_by_key(|s| s.0);
    let mut bar_lines = Vec::new();
    let mut at = 0.0f64;
    let mut i = 0;
    let mut sig = (4u8, 2u8);
    // Bars past 10,000 are not drawn: a stray event far out would otherwise loop for long.
    while at <= end && bar_lines.len() < 10_000 {
        while i < sigs.len() && sigs[i].0 as f64 / tpq <= at + 1e-9 {
            sig = (sigs[i].1, sigs[i].2);
            i += 1;
        }
        bar_lines.push(at);
        at += sig.0 as f64 * 4.0 / (1u32 << sig.1) as f64;
    }
    Ok(Roll {
        human,
        ai,
        bar_lines,
    })
}

/// Draws the piano roll of the session file `mid` to a PNG at `out` (1400 x 600).
pub fn piano_roll_png(mid: &Path, out: &Path) -> Result<Roll, RollError> {
    let bytes = std::fs::read(mid).map_err(|error| RollError::Read {
        path: mid.display().to_string(),
        error,
    })?;
    let roll = parse_roll(&bytes, mid)?;
    draw(&roll, mid, out)?;
    Ok(roll)
}

fn draw(roll: &Roll, mid: &Path, out: &Path) -> Result<(), PlotError> {
    register_font();
    let notes = || roll.human.iter().chain(&roll.ai);
    if notes().next().is_none() {
        return Err(PlotError::Empty);
    }
    let err = draw_err(out);
    let lo = notes()
        .map(|n| n.pitch)
        .min()
        .unwrap_or(48)
        .saturating_sub(2) as f64;
    let hi = notes()
        .map(|n| n.pitch)
        .max()
        .unwrap_or(72)
        .saturating_add(3) as f64;
    let end = notes().map(|n| n.end).fold(1.0f64, f64::max);

    let root = BitMapBackend::new(out, (1400, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let title = format!(
        "{} - human {} notes, generated {} notes",
        mid.file_name().map_or_else(
            || mid.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        roll.human.len(),
        roll.ai.len()
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FAMILY, 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, lo..hi)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("quarter notes (vertical lines: bars)")
        .y_desc("MIDI pitch")
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .x_label_formatter(&|q| format!("{q:.0}"))
        .y_label_formatter(&|p| format!("{p:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(
            roll.bar_lines
                .iter()
                .map(|&x| PathElement::new([(x, lo), (x, hi)], BLACK.mix(0.25).stroke_width(1))),
        )
        .map_err(|e| err(&e))?;
    let human_c = RGBColor(40, 90, 200);
    let ai_c = RGBColor(230, 120, 20);
    for (part, color, label) in [
        (&roll.human, human_c, "human"),
        (&roll.ai, ai_c, "generated"),
    ] {
        chart
            .draw_series(part.iter().map(|n| {
                let y = n.pitch as f64;
                Rectangle::new(
                    [(n.start, y - 0.4), (n.end.max(n.start + 0.05), y + 0.4)],
                    color.mix(0.85).filled(),
                )
            }))
            .map_err(|e| err(&e))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
