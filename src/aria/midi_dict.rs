//! The reference's `MidiDict`: a MIDI file as lists of notes, pedal changes, tempo changes and
//! program changes, all in ticks, plus the tick -> ms conversion the tokenizer uses.
//!
//! Built from a Standard MIDI File ([`MidiDict::from_smf`], parsed with midly) or from a live
//! [`crate::music::note::Prompt`] ([`MidiDict::from_prompt`], which goes through the same note parser as
//! a file so both tokenize identically). Pure: bytes in, values out.

use std::collections::HashMap;

use midly::{MetaMessage, MidiMessage, Smf, Timing, TrackEventKind};

use crate::aria::tokenizer::Instrument;
use crate::music::note::Prompt;

/// MIDI channel (0-based) the reference treats as drums.
pub const DRUM_CHANNEL: u8 = 9;
/// Tempo when a file has none: 500000 us per beat (120 bpm).
pub const DEFAULT_TEMPO: u32 = 500_000;
/// Ticks per beat of a live prompt: with [`DEFAULT_TEMPO`] one tick is exactly one ms.
pub const PROMPT_TICKS_PER_BEAT: u32 = 500;

/// A note with start and end in ticks (the reference's note message; its `tick` is `start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoteMsg {
    /// MIDI key.
    pub pitch: u8,
    /// Note-on velocity (1..=127).
    pub velocity: u8,
    /// Start tick.
    pub start: u64,
    /// End tick (the closing note-off).
    pub end: u64,
    /// MIDI channel 0..=15.
    pub channel: u8,
}

/// A sustain-pedal (CC64) change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PedalMsg {
    /// True for value >= 64 (the reference's `data` 1).
    pub down: bool,
    /// The raw controller value.
    pub value: u8,
    /// Tick of the change.
    pub tick: u64,
    /// MIDI channel.
    pub channel: u8,
}

/// A tempo change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TempoMsg {
    /// Microseconds per beat.
    pub tempo: u32,
    /// Tick of the change.
    pub tick: u64,
}

/// A program change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentMsg {
    /// MIDI program 0..=127.
    pub program: u8,
    /// Tick of the change.
    pub tick: u64,
    /// MIDI channel.
    pub channel: u8,
}

/// Metadata that becomes prefix tokens when it names a known composer, form or genre.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Composer, e.g. `chopin`.
    pub composer: Option<String>,
    /// Form, e.g. `nocturne`.
    pub form: Option<String>,
    /// Genre, e.g. `jazz`.
    pub genre: Option<String>,
}

/// Errors reading a MIDI file into a [`MidiDict`].
#[derive(Debug, thiserror::Error)]
pub enum MidiDictError {
    /// midly could not parse the bytes.
    #[error(
        "not a readable Standard MIDI File (midly: {0}); check that the file is a complete .mid"
    )]
    Parse(midly::Error),
    /// SMPTE timing has no ticks per beat.
    #[error("SMPTE (timecode) timing is not supported: re-export the MIDI file with metrical timing (ticks per beat)")]
    Timecode,
    /// A header with 0 ticks per beat makes every time infinite.
    #[error("the MIDI header says 0 ticks per beat: the file is corrupt")]
    ZeroTicksPerBeat,
}

impl From<midly::Error> for MidiDictError {
    fn from(e: midly::Error) -> Self {
        MidiDictError::Parse(e)
    }
}

/// The reference's view of a MIDI file.
#[derive(Clone, Debug, PartialEq)]
pub struct MidiDict {
    /// Ticks per beat (> 0).
    pub ticks_per_beat: u32,
    /// Notes, stably sorted by start tick.
    pub notes: Vec<NoteMsg>,
    /// Pedal changes, stably sorted by tick.
    pub pedal_msgs: Vec<PedalMsg>,
    /// Tempo changes sorted by tick; never empty (default 500000 at tick 0).
    pub tempo_msgs: Vec<TempoMsg>,
    /// Program changes sorted by tick; never empty (default program 0 on channel 0).
    pub instrument_msgs: Vec<InstrumentMsg>,
    /// Composer/form/genre, when known.
    pub metadata: Metadata,
}

/// The reference's per-track note pairing.
///
/// An off at tick T closes every open note of that key and channel that started before T; notes
/// of that key that started at T survive only if the same off closed an older note (otherwise an
/// on and an off at the same tick leave nothing).
#[derive(Default)]
struct NoteParser {
    open: HashMap<(u8, u8), Vec<(u64, u8)>>,
    notes: Vec<NoteMsg>,
}

impl NoteParser {
    fn on(&mut self, tick: u64, channel: u8, pitch: u8, velocity: u8) {
        if velocity == 0 {
            return self.off(tick, channel, pitch);
        }
        self.open
            .entry((pitch, channel))
            .or_default()
            .push((tick, velocity));
    }

    fn off(&mut self, tick: u64, channel: u8, pitch: u8) {
        let Some(open) = self.open.remove(&(pitch, channel)) else {
            return;
        };
        let mut keep = Vec::new();
        let mut closed = 0usize;
        for (start, velocity) in open {
            if start == tick {
                keep.push((start, velocity));
            } else {
                closed += 1;
                self.notes.push(NoteMsg {
                    pitch,
                    velocity,
                    start,
                    end: tick,
                    channel,
                });
            }
        }
        if closed > 0 && !keep.is_empty() {
            self.open.insert((pitch, channel), keep);
        }
    }
}

/// One track's messages as the reference extracts them.
#[derive(Default)]
struct TrackData {
    tempo: Vec<TempoMsg>,
    pedal: Vec<PedalMsg>,
    instruments: Vec<InstrumentMsg>,
    notes: NoteParser,
}

impl TrackData {
    fn control(&mut self, tick: u64, channel: u8, controller: u8, value: u8) {
        if controller == 64 {
            self.pedal.push(PedalMsg {
                down: value >= 64,
                value,
                tick,
                channel,
            });
        }
    }
}

impl MidiDict {
    /// Builds a dict as the reference's constructor does: default tempo and program when none,
    /// notes stably sorted by start.
    pub fn new(
        ticks_per_beat: u32,
        mut notes: Vec<NoteMsg>,
        pedal_msgs: Vec<PedalMsg>,
        mut tempo_msgs: Vec<TempoMsg>,
        mut instrument_msgs: Vec<InstrumentMsg>,
        metadata: Metadata,
    ) -> Self {
        notes.sort_by_key(|n| n.start);
        if tempo_msgs.is_empty() {
            tempo_msgs.push(TempoMsg {
                tempo: DEFAULT_TEMPO,
                tick: 0,
            });
        }
        if instrument_msgs.is_empty() {
            instrument_msgs.push(InstrumentMsg {
                program: 0,
                tick: 0,
                channel: 0,
            });
        }
        MidiDict {
            ticks_per_beat: ticks_per_beat.max(1),
            notes,
            pedal_msgs,
            tempo_msgs,
            instrument_msgs,
            metadata,
        }
    }

    /// Reads a Standard MIDI File as the reference's `MidiDict.from_midi` does.
    pub fn from_smf(bytes: &[u8]) -> Result<Self, MidiDictError> {
        if crate::midi::smf::has_overflowing_smpte_division(bytes) {
            return Err(MidiDictError::Timecode);
        }
        let smf = Smf::parse(bytes)?;
        let tpb = match smf.header.timing {
            Timing::Metrical(t) => t.as_int() as u32,
            Timing::Timecode(..) => return Err(MidiDictError::Timecode),
        };
        if tpb == 0 {
            return Err(MidiDictError::ZeroTicksPerBeat);
        }
        let (mut tempo, mut pedal, mut instruments, mut notes) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for track in &smf.tracks {
            let mut data = TrackData::default();
            let mut tick = 0u64;
            for ev in track {
                tick += ev.delta.as_int() as u64;
                match ev.kind {
                    TrackEventKind::Meta(MetaMessage::Tempo(t)) => data.tempo.push(TempoMsg {
                        tempo: t.as_int(),
                        tick,
                    }),
                    TrackEventKind::Midi { channel, message } => {
                        let ch = channel.as_int();
                        match message {
                            MidiMessage::NoteOn { key, vel } => {
                                data.notes.on(tick, ch, key.as_int(), vel.as_int())
                            }
                            MidiMessage::NoteOff { key, .. } => {
                                data.notes.off(tick, ch, key.as_int())
                            }
                            MidiMessage::ProgramChange { program } => {
                                data.instruments.push(InstrumentMsg {
                                    program: program.as_int(),
                                    tick,
                                    channel: ch,
                                })
                            }
                            MidiMessage::Controller { controller, value } => {
                                data.control(tick, ch, controller.as_int(), value.as_int())
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            tempo.extend(data.tempo);
            pedal.extend(data.pedal);
            instruments.extend(data.instruments);
            notes.extend(data.notes.notes);
        }
        tempo.sort_by_key(|m: &TempoMsg| m.tick);
        pedal.sort_by_key(|m: &PedalMsg| m.tick);
        instruments.sort_by_key(|m: &InstrumentMsg| m.tick);
        Ok(Self::new(
            tpb,
            notes,
            pedal,
            tempo,
            instruments,
            Metadata::default(),
        ))
    }

    /// The dict of a live prompt, exactly as if its notes were written to a MIDI file by the
    /// reference (`MidiDict.to_midi`: overlaps resolved, offs before ons at a tick, ons by
    /// velocity) at 500 ticks per beat, tempo 500000, channel 0, program 0, and read back.
    ///
    /// Going through the file path matters for faithfulness: zero-length notes vanish and
    /// overlapping notes of one key are cut exactly where a file round trip cuts them.
    pub fn from_prompt(prompt: &Prompt) -> Self {
        // The dict the prompt describes, sorted as the reference's constructor sorts.
        let mut notes: Vec<NoteMsg> = prompt
            .notes
            .iter()
            .map(|n| NoteMsg {
                pitch: n.pitch & 0x7F,
                velocity: n.velocity.min(127),
                start: n.start_ms as u64,
                end: n.end_ms.max(n.start_ms) as u64,
                channel: 0,
            })
            .collect();
        notes.sort_by_key(|n| n.start);
        resolve_overlaps(&mut notes);

        // Events in the writer's append order, then its stable sort by (tick, velocity or 1000).
        enum Ev {
            Tempo,
            Pedal(bool),
            Program,
            On(u8, u8),
            Off(u8),
        }
        let mut evs: Vec<(u64, u32, Ev)> =
            Vec::with_capacity(3 + prompt.pedal.len() + 2 * notes.len());
        evs.push((0, 1000, Ev::Tempo));
        for p in &prompt.pedal {
            evs.push((p.at_ms as u64, 1000, Ev::Pedal(p.down)));
        }
        evs.push((0, 1000, Ev::Program));
        for n in &notes {
            evs.push((n.start, n.velocity as u32, Ev::On(n.pitch, n.velocity)));
        }
        let mut keys: Vec<u8> = Vec::new();
        for n in &notes {
            if !keys.contains(&n.pitch) {
                keys.push(n.pitch);
            }
        }
        for &key in &keys {
            let same: Vec<(u64, u64)> = notes
                .iter()
                .filter(|n| n.pitch == key)
                .map(|n| (n.start, n.end))
                .collect();
            for &(s, e) in &same {
                let hidden = same.iter().any(|&(s2, e2)| s < s2 && s2 < e && e < e2);
                if !hidden {
                    evs.push((e, 0, Ev::Off(key)));
                }
            }
        }
        evs.sort_by_key(|e| (e.0, e.1));

        let mut data = TrackData::default();
        for (tick, _, ev) in evs {
            match ev {
                Ev::Tempo => data.tempo.push(TempoMsg {
                    tempo: DEFAULT_TEMPO,
                    tick,
                }),
                Ev::Pedal(down) => data.control(tick, 0, 64, if down { 127 } else { 0 }),
                Ev::Program => data.instruments.push(InstrumentMsg {
                    program: 0,
                    tick,
                    channel: 0,
                }),
                Ev::On(pitch, vel) => data.notes.on(tick, 0, pitch, vel),
                Ev::Off(pitch) => data.notes.off(tick, 0, pitch),
            }
        }
        Self::new(
            PROMPT_TICKS_PER_BEAT,
            data.notes.notes,
            data.pedal,
            data.tempo,
            data.instruments,
            Metadata::default(),
        )
    }

    /// Milliseconds between two ticks, as the reference's `get_duration_ms`.
    ///
    /// Sums `ticks * tempo * 1e-6 / ticks_per_beat` seconds per tempo segment in f64 and rounds
    /// half to even. Kept quirk: when `start` lies after the last tempo change and there are
    /// several, the reference starts from the second-to-last segment and subtracts the ticks
    /// between the last change and `start` at that segment's tempo; results differ from a plain
    /// sum only when those two tempos differ.
    pub fn duration_ms(&self, start: u64, end: u64) -> i64 {
        let t = &self.tempo_msgs;
        let (start, end) = (start as i64, end as i64);
        let mut idx = t.len() - 1;
        if let Some(i) = t.iter().position(|m| start <= m.tick as i64) {
            idx = i;
        }
        idx = idx.saturating_sub(1);
        let tpb = self.ticks_per_beat as f64;
        let secs = |ticks: i64, tempo: u32| ticks as f64 * (tempo as f64 * 1e-6 / tpb);
        let mut duration = 0.0f64;
        let mut curr = start;
        for w in t[idx..].windows(2) {
            let next = w[1].tick as i64;
            if end < next {
                duration += secs(end - curr, w[0].tempo);
                break;
            }
            duration += secs(next - curr, w[0].tempo);
            curr = next;
        }
        let last = t[t.len() - 1];
        if end > last.tick as i64 {
            duration += secs(end - curr, last.tempo);
        }
        (duration * 1e3).round_ties_even() as i64
    }

    /// Milliseconds from tick 0.
    pub fn tick_to_ms(&self, tick: u64) -> i64 {
        self.duration_ms(0, tick)
    }

    /// Sustain intervals per channel: an ON opens one when none is open, an OFF closes it; one
    /// never closed ends at the end of the last note (in start order).
    pub fn pedal_intervals(&self) -> [Vec<(u64, u64)>; 16] {
        let mut out: [Vec<(u64, u64)>; 16] = Default::default();
        let mut open: [Option<u64>; 16] = [None; 16];
        for p in &self.pedal_msgs {
            let ch = (p.channel & 0x0F) as usize;
            match (p.down, open[ch]) {
                (true, None) => open[ch] = Some(p.tick),
                (false, Some(s)) => {
                    out[ch].push((s, p.tick));
                    open[ch] = None;
                }
                _ => {}
            }
        }
        if let Some(last) = self.notes.last() {
            for (ch, start) in open.iter().enumerate() {
                if let Some(s) = start {
                    out[ch].push((*s, last.end));
                }
            }
        }
        out
    }

    /// The reference's `remove_instruments` with the default config: every channel (but the
    /// drum channel) that ever selects a program of an ignored family loses all its messages.
    pub fn without_ignored_instruments(&self) -> MidiDict {
        let mut removed = [false; 16];
        for m in &self.instrument_msgs {
            let ignored = m.program != 0 && !Instrument::from_program(m.program).is_tokenized();
            if ignored && m.channel != DRUM_CHANNEL {
                removed[(m.channel & 0x0F) as usize] = true;
            }
        }
        let keep = |ch: u8| !removed[(ch & 0x0F) as usize];
        MidiDict {
            ticks_per_beat: self.ticks_per_beat,
            notes: self
                .notes
                .iter()
                .copied()
                .filter(|m| keep(m.channel))
                .collect(),
            pedal_msgs: self
                .pedal_msgs
                .iter()
                .copied()
                .filter(|m| keep(m.channel))
                .collect(),
            tempo_msgs: self.tempo_msgs.clone(),
            instrument_msgs: self
                .instrument_msgs
                .iter()
                .copied()
                .filter(|m| keep(m.channel))
                .collect(),
            metadata: self.metadata.clone(),
        }
    }
}

/// The reference's `resolve_overlaps`: per key, a note still sounding when the next one of the
/// same key starts is cut at that start.
fn resolve_overlaps(notes: &mut [NoteMsg]) {
    let mut by_key: HashMap<(u8, u8), Vec<usize>> = HashMap::new();
    for (i, n) in notes.iter().enumerate() {
        by_key.entry((n.channel, n.pitch)).or_default().push(i);
    }
    for (_, mut idx) in by_key {
        idx.sort_by_key(|&i| (notes[i].start, notes[i].end));
        let mut prev_off: i64 = -1;
        for k in 0..idx.len() {
            let (on, off) = (notes[idx[k]].start, notes[idx[k]].end);
            if prev_off > on as i64 {
                notes[idx[k - 1]].end = on;
            }
            prev_off = off as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::music::note::{MsNote, PedalEvent};

    fn md_with_tempi(tempi: &[(u64, u32)], tpb: u32) -> MidiDict {
        let tempo = tempi
            .iter()
            .map(|&(tick, tempo)| TempoMsg { tempo, tick })
            .collect();
        MidiDict::new(tpb, vec![], vec![], tempo, vec![], Metadata::default())
    }

    #[test]
    fn one_tick_is_one_ms_at_prompt_resolution() {
        let md = md_with_tempi(&[], PROMPT_TICKS_PER_BEAT);
        assert_eq!(md.duration_ms(0, 1234), 1234);
        assert_eq!(md.duration_ms(17, 4999), 4982);
    }

    #[test]
    fn duration_sums_tempo_segments() {
        // 480 tpb: 480 ticks at 500000 = 500 ms, then 480 ticks at 1000000 = 1000 ms.
        let md = md_with_tempi(&[(0, 500_000), (480, 1_000_000)], 480);
        assert_eq!(md.duration_ms(0, 960), 1500);
        assert_eq!(md.duration_ms(240, 720), 750);
    }

    #[test]
    fn duration_keeps_the_reference_quirk_after_the_last_tempo() {
        // start 960 > last change 480: the reference counts (480 - 960) ticks at 500000 and
        // (1440 - 480) at 1000000: -500 + 2000 = 1500 ms (a plain sum gives 1000).
        let md = md_with_tempi(&[(0, 500_000), (480, 1_000_000)], 480);
        assert_eq!(md.duration_ms(960, 1440), 1500);
    }

    #[test]
    fn tempo_zero_gives_zero_ms_without_panicking() {
        let md = md_with_tempi(&[(0, 0)], 480);
        assert_eq!(md.duration_ms(0, 10_000), 0);
    }

    #[test]
    fn an_on_and_off_at_the_same_tick_leave_no_note() {
        let mut p = NoteParser::default();
        p.on(10, 0, 60, 90);
        p.off(10, 0, 60);
        p.off(20, 0, 60);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn a_retrigger_at_the_off_tick_survives_when_an_older_note_closes() {
        let mut p = NoteParser::default();
        p.on(0, 0, 60, 90);
        p.on(10, 0, 60, 80);
        p.off(10, 0, 60);
        p.off(30, 0, 60);
        assert_eq!(p.notes.len(), 2);
        assert_eq!((p.notes[0].start, p.notes[0].end), (0, 10));
        assert_eq!((p.notes[1].start, p.notes[1].end), (10, 30));
    }

    #[test]
    fn unclosed_pedal_ends_at_the_last_note_end() {
        let note = |s, e| NoteMsg {
            pitch: 60,
            velocity: 64,
            start: s,
            end: e,
            channel: 0,
        };
        let pedal = |down, tick| PedalMsg {
            down,
            value: if down { 127 } else { 0 },
            tick,
            channel: 0,
        };
        let md = MidiDict::new(
            500,
            vec![note(0, 100), note(50, 900)],
            vec![
                pedal(true, 10),
                pedal(true, 20),
                pedal(false, 30),
                pedal(false, 40),
                pedal(true, 60),
            ],
            vec![],
            vec![],
            Metadata::default(),
        );
        assert_eq!(md.pedal_intervals()[0], vec![(10, 30), (60, 900)]);
    }

    #[test]
    fn prompt_drops_zero_length_notes_like_a_file_round_trip() {
        let n = |pitch, s, e| MsNote {
            pitch,
            velocity: 80,
            start_ms: s,
            end_ms: e,
        };
        let prompt = Prompt {
            notes: vec![n(60, 0, 100), n(62, 50, 50)],
            pedal: vec![PedalEvent {
                at_ms: 10,
                down: true,
            }],
            length_ms: 1000,
        };
        let md = MidiDict::from_prompt(&prompt);
        assert_eq!(md.notes.len(), 1);
        assert_eq!(md.notes[0].pitch, 60);
        assert_eq!(md.pedal_msgs.len(), 1);
    }

    #[test]
    fn corrupt_bytes_are_an_error() {
        assert!(MidiDict::from_smf(b"MThd\x00\x00").is_err());
        assert!(MidiDict::from_smf(b"not a midi file").is_err());
    }
}
