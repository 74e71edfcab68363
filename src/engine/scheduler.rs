//! Places each result in its bar window and emits it pulse-accurately, with note hygiene and
//! fallbacks.
//!
//! # Principal types
//! - [`Scheduler`] is pure: time comes in as [`Nanos`], MIDI goes out through a
//!   [`MidiOut`]. It holds a table of expected windows (one per queued job), the notes of
//!   results waiting for or playing in their window, and the note sounding on each pitch.
//! - [`SchedulerEvent`] is a fixed-size lifecycle record (scheduled, played, missed, late,
//!   dropped, discarded) drained by the log side with [`Scheduler::drain_events`].
//! - [`thread::SchedulerThread`] is the live shell: it feeds timelines, expectations and worker
//!   reports into a [`Scheduler`] and wakes precisely for the next send.
//!
//! # Time model
//! A result's notes are in ms from its window start. They are turned into pulses with the
//! *newest* [`Timeline`] at the moment they are due (`pulse = B + ms / ms_per_pulse`), so a tempo
//! change re-times notes not yet played. A message for pulse `p` is sent at
//! `timeline.time_of(p) + output_offset`. Note-ons only happen in `[B, B + len)`; note-offs
//! happen at the note's end, cut at `B + len + ring_out_pulses`.
//!
//! # Real time
//! Every method runs on the scheduler thread (live) or the jam loop (headless). [`Scheduler::poll`]
//! neither allocates nor frees: result buffers are moved in by [`Scheduler::on_result`] and freed
//! by the next `expect`/`on_result`/`on_timeline`; the event ring and tables are preallocated.

pub mod thread;

use std::collections::VecDeque;

use crate::clock::timeline::Timeline;
use crate::config::{Config, Fallback};
use crate::engine::job::{GenerationResult, Window};
use crate::engine::worker::SkipReason;
use crate::midi::sink::MidiOut;
use crate::music::note::MsNote;
use crate::Nanos;

/// Windows the scheduler tracks at once: `generation.queue_capacity` allows 64 queued jobs, plus
/// the window playing and results waiting for theirs.
pub const MAX_WINDOWS: usize = 128;
/// Notes kept for `repeat_last`; `max_new_tokens` = 4096 at 3 tokens per note is ~1365 notes.
pub const MAX_REPEAT_NOTES: usize = 2048;
/// Lifecycle records buffered between two drains; at one bar per 2 s, 256 is minutes of slack.
pub const EVENT_CAPACITY: usize = 256;

/// Why a job never produced a result for its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The job queue was full and this (oldest) job was removed to make room.
    QueueFull,
    /// The worker skipped it: the transport epoch had moved on.
    StaleEpoch,
    /// The worker skipped it: its window had already started.
    DeadlinePassed,
}

impl From<SkipReason> for DropReason {
    fn from(r: SkipReason) -> Self {
        match r {
            SkipReason::StaleEpoch => DropReason::StaleEpoch,
            SkipReason::DeadlinePassed => DropReason::DeadlinePassed,
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DropReason::QueueFull => "queue full",
            DropReason::StaleEpoch => "stale epoch",
            DropReason::DeadlinePassed => "deadline passed",
        })
    }
}

/// Why a result or an expected window was thrown away without playing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscardReason {
    /// It belongs to an epoch older than the current timeline's.
    StaleEpoch,
    /// The generation failed (error or panic); the window falls back like a miss.
    Failed,
    /// A second result for a window that already has one.
    Duplicate,
    /// The window table ([`MAX_WINDOWS`]) was full.
    Overflow,
}

/// What a window played.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlaySource {
    /// The window's own result, ready at its start.
    Result,
    /// The last played bar again (`fallback = "repeat_last"`).
    RepeatLast,
    /// The part of a late result not yet passed (`fallback = "late_join"`).
    LateJoin,
}

/// A fixed-size lifecycle record; `bar` is always the window's bar (the human bar + 2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SchedulerEvent {
    /// A result was accepted before its window started.
    Scheduled {
        /// Window bar.
        bar: u64,
        /// Notes in the result.
        notes: u32,
        /// Time left until the window starts, ms (negative: already started).
        slack_ms: f64,
    },
    /// A window that played something ended (or was stopped).
    Played {
        /// Window bar.
        bar: u64,
        /// What played.
        source: PlaySource,
        /// Note-ons sent.
        notes_on: u32,
        /// Notes whose end was cut at the window end (+ ring-out).
        notes_cut: u32,
    },
    /// A window started without its result (not ready, or failed).
    Missed {
        /// Window bar.
        bar: u64,
        /// What was done instead.
        fallback: Fallback,
    },
    /// A result arrived after its window had started.
    Late {
        /// Window bar.
        bar: u64,
        /// How long after the window start it arrived, ms.
        late_by_ms: f64,
        /// Whether its remaining part was played (`late_join`).
        joined: bool,
    },
    /// The job for this window was dropped before generation.
    Dropped {
        /// Window bar.
        bar: u64,
        /// Why.
        reason: DropReason,
    },
    /// A Song Position jump carried a window not yet started to where it landed (a loop wrap:
    /// the answer due after the loop's last bar plays in its first).
    Carried {
        /// The window's bar before the jump.
        from_bar: u64,
        /// Its bar now.
        bar: u64,
    },
    /// A window or result was thrown away.
    Discarded {
        /// Window bar.
        bar: u64,
        /// Why.
        why: DiscardReason,
    },
}

/// Where a window is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SlotState {
    /// Job queued or generating.
    Expected,
    /// Result in hand, window not started.
    Ready,
    /// The generation failed; the window will miss.
    Failed,
    /// The job was dropped; the window will fall back silently.
    Dropped,
    /// Inside the window, emitting notes.
    Playing,
    /// Inside the window with nothing to play (a late result may still join).
    Missed,
    /// Over; freed by the next non-tick call.
    Done,
}

#[derive(Debug)]
struct Slot {
    window: Window,
    epoch: u32,
    state: SlotState,
    /// The result's notes sorted by start (empty for repeats: those read `last_played`).
    notes: Vec<MsNote>,
    /// Index of the next note-on.
    next: usize,
    source: PlaySource,
    notes_on: u32,
    notes_cut: u32,
    /// When the result (or failure) arrived; a result that arrived after the window's start
    /// instant is late even if no poll ran in between.
    arrived_ns: Nanos,
}

impl Slot {
    fn new(window: Window, epoch: u32, state: SlotState) -> Self {
        Self {
            window,
            epoch,
            state,
            notes: Vec::new(),
            next: 0,
            source: PlaySource::Result,
            notes_on: 0,
            notes_cut: 0,
            arrived_ns: 0,
        }
    }

    fn end_pulse(&self) -> f64 {
        (self.window.start_pulse + self.window.len_pulses as u64) as f64
    }
}

/// The note sounding on one pitch.
#[derive(Clone, Copy, Debug)]
struct Sounding {
    /// Pulse of the note-on (the note-off never precedes it).
    on_pulse: f64,
    /// Its window's first pulse (its end is in ms from there).
    window_start: u64,
    /// End in ms from the window start.
    end_ms: u32,
    /// The pulse where it is cut: window end + ring-out.
    cut_pulse: f64,
}

/// Something due at an instant. Order matters at equal instants: note-offs first (a re-strike or
/// a new window never loses its note to an old note-off), then window ends, window starts,
/// note-ons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Due {
    NoteOff(u8),
    WindowEnd(usize),
    WindowStart(usize),
    NoteOn(usize),
}

impl Due {
    fn rank(self) -> u8 {
        match self {
            Due::NoteOff(_) => 0,
            Due::WindowEnd(_) => 1,
            Due::WindowStart(_) => 2,
            Due::NoteOn(_) => 3,
        }
    }
}

/// The `[playback]` settings the scheduler may take while running (a config reload).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlaybackSettings {
    /// `playback.fallback`.
    pub fallback: Fallback,
    /// `playback.ring_out_pulses`.
    pub ring_out_pulses: u32,
    /// `playback.output_offset_ms`.
    pub output_offset_ms: f64,
    /// `playback.output_channel`, 1..=16.
    pub output_channel: u8,
}

impl PlaybackSettings {
    /// The settings of `cfg`.
    pub fn from_config(cfg: &Config) -> Self {
        let p = &cfg.playback;
        Self {
            fallback: p.fallback,
            ring_out_pulses: p.ring_out_pulses,
            output_offset_ms: p.output_offset_ms,
            output_channel: p.output_channel,
        }
    }
}

/// The pure scheduler: windows, fallbacks, note hygiene.
#[derive(Debug)]
pub struct Scheduler {
    fallback: Fallback,
    ring_out_pulses: u32,
    offset_ns: i64,
    /// Output channel, 0-based (the status nibble).
    channel: u8,
    timeline: Timeline,
    slots: Vec<Slot>,
    sounding: [Option<Sounding>; 128],
    sounding_count: usize,
    last_played: Vec<MsNote>,
    events: VecDeque<SchedulerEvent>,
    events_lost: u64,
}

impl Scheduler {
    /// A scheduler with `[playback]` settings, a stopped timeline and no windows.
    pub fn new(cfg: &Config) -> Self {
        let p = PlaybackSettings::from_config(cfg);
        Self {
            fallback: p.fallback,
            ring_out_pulses: p.ring_out_pulses,
            offset_ns: (p.output_offset_ms * 1e6).round() as i64,
            channel: p.output_channel.clamp(1, 16) - 1,
            timeline: Timeline::stopped(),
            slots: Vec::with_capacity(MAX_WINDOWS),
            sounding: [None; 128],
            sounding_count: 0,
            last_played: Vec::with_capacity(MAX_REPEAT_NOTES),
            events: VecDeque::with_capacity(EVENT_CAPACITY),
            events_lost: 0,
        }
    }

    /// The timeline in use.
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    /// Takes a new timeline. A new epoch (or the transport stopping) silences everything
    /// (see [`Scheduler::all_notes_off`]) and discards windows of older epochs, except the one a
    /// jump carries ([`Timeline::carry`]: it moves to where the jump landed, not yet started);
    /// a tempo change in the same epoch only re-times what is still to come.
    pub fn on_timeline(&mut self, tl: Timeline, now: Nanos, out: &mut dyn MidiOut) {
        let epoch_changed = tl.epoch != self.timeline.epoch;
        let stopping = self.timeline.running && !tl.running;
        if let (true, Some(c)) = (epoch_changed, tl.carry) {
            // A carried window whose result began a moment before the jump arrived (the
            // scheduler's estimate reached its first pulse first) starts over where it landed;
            // the notes it sent are silenced below with everything else.
            for s in &mut self.slots {
                if s.state == SlotState::Playing
                    && s.source == PlaySource::Result
                    && c.carries(s.epoch, s.window.start_pulse)
                {
                    s.state = SlotState::Ready;
                }
            }
        }
        if (epoch_changed || stopping) && (self.timeline.running || self.sounding_count > 0) {
            self.all_notes_off(now, out);
        }
        if epoch_changed {
            for i in 0..self.slots.len() {
                let s = &self.slots[i];
                if s.epoch >= tl.epoch || s.state == SlotState::Done {
                    continue;
                }
                let bar = s.window.bar;
                let carry = tl
                    .carry
                    .filter(|c| c.carries(s.epoch, s.window.start_pulse));
                // Only a window not yet started moves; a fallback in progress ended above.
                let waiting = matches!(
                    s.state,
                    SlotState::Expected | SlotState::Ready | SlotState::Failed | SlotState::Dropped
                );
                match carry {
                    Some(c) if waiting => {
                        let s = &mut self.slots[i];
                        s.window.start_pulse = c.to_pulse;
                        s.window.bar = c.to_bar;
                        s.window.len_pulses = c.to_len_pulses;
                        s.epoch = tl.epoch;
                        s.next = 0;
                        s.notes_on = 0;
                        s.notes_cut = 0;
                        self.push(SchedulerEvent::Carried {
                            from_bar: bar,
                            bar: c.to_bar,
                        });
                    }
                    _ => {
                        self.slots[i].state = SlotState::Done;
                        self.push(SchedulerEvent::Discarded {
                            bar,
                            why: DiscardReason::StaleEpoch,
                        });
                    }
                }
            }
        }
        self.timeline = tl;
        self.compact();
    }

    /// `(epoch, window)` moved into the current epoch when the current timeline carries it.
    fn carried(&self, epoch: u32, window: Window) -> (u32, Window) {
        match self.timeline.carry {
            Some(c) if c.carries(epoch, window.start_pulse) => (
                self.timeline.epoch,
                Window {
                    bar: c.to_bar,
                    start_pulse: c.to_pulse,
                    len_pulses: c.to_len_pulses,
                },
            ),
            _ => (epoch, window),
        }
    }

    /// A job for `window` was enqueued in `epoch`: a missing result at the window start will be
    /// a miss.
    pub fn expect(&mut self, window: Window, epoch: u32) {
        self.compact();
        let (epoch, window) = self.carried(epoch, window);
        if epoch < self.timeline.epoch {
            self.push(SchedulerEvent::Discarded {
                bar: window.bar,
                why: DiscardReason::StaleEpoch,
            });
            return;
        }
        if self.find(window.bar, epoch).is_some() {
            return;
        }
        self.insert(Slot::new(window, epoch, SlotState::Expected));
    }

    /// The job for `window` was dropped (queue full or skipped by the worker): the window falls
    /// back (silence, or `repeat_last`) without counting as a miss.
    pub fn dropped(&mut self, window: Window, epoch: u32, reason: DropReason) {
        self.compact();
        let (epoch, window) = self.carried(epoch, window);
        self.push(SchedulerEvent::Dropped {
            bar: window.bar,
            reason,
        });
        if epoch < self.timeline.epoch {
            return;
        }
        match self.find(window.bar, epoch) {
            Some(i) => {
                if self.slots[i].state == SlotState::Expected {
                    self.slots[i].state = SlotState::Dropped;
                }
            }
            None => {
                self.insert(Slot::new(window, epoch, SlotState::Dropped));
            }
        }
    }

    /// A result from the worker. Accepted for its window unless its epoch is old; a result
    /// whose window has already started is late (joined with `late_join`, else discarded).
    pub fn on_result(&mut self, mut r: GenerationResult, now: Nanos) {
        self.compact();
        (r.epoch, r.window) = self.carried(r.epoch, r.window);
        let bar = r.window.bar;
        if r.epoch < self.timeline.epoch {
            self.push(SchedulerEvent::Discarded {
                bar,
                why: DiscardReason::StaleEpoch,
            });
            return;
        }
        let running = self.timeline.running && r.epoch == self.timeline.epoch;
        let start_at = self.at(r.window.start_pulse as f64);
        let end_at = self.at((r.window.start_pulse + r.window.len_pulses as u64) as f64);
        let i = match self.find(bar, r.epoch) {
            Some(i) => i,
            None => {
                if running && now >= end_at {
                    let late_by_ms = now.saturating_sub(start_at) as f64 / 1e6;
                    self.push(SchedulerEvent::Late {
                        bar,
                        late_by_ms,
                        joined: false,
                    });
                    return;
                }
                if !self.insert(Slot::new(r.window, r.epoch, SlotState::Expected)) {
                    return;
                }
                self.slots.len() - 1
            }
        };
        let late_by_ms = now.saturating_sub(start_at) as f64 / 1e6;
        let state = self.slots[i].state;
        let source = self.slots[i].source;
        let notes = match r.outcome {
            Ok(g) => g.notes,
            Err(_) => {
                if matches!(state, SlotState::Expected | SlotState::Dropped) {
                    self.slots[i].state = SlotState::Failed;
                    self.slots[i].arrived_ns = now;
                }
                self.push(SchedulerEvent::Discarded {
                    bar,
                    why: DiscardReason::Failed,
                });
                return;
            }
        };
        match (state, source) {
            (SlotState::Expected | SlotState::Dropped, _) => {
                let slot = &mut self.slots[i];
                slot.notes = notes;
                slot.notes.sort_unstable_by_key(|n| (n.start_ms, n.pitch));
                slot.state = SlotState::Ready;
                slot.arrived_ns = now;
                let n = slot.notes.len() as u32;
                // Past the start instant it is late; the next poll reports it in time order
                // (after whatever precedes the window start, such as the bar that feeds a repeat).
                if !(running && now >= start_at) {
                    let slack_ms = if running {
                        (start_at as f64 - now as f64) / 1e6
                    } else {
                        f64::NAN
                    };
                    self.push(SchedulerEvent::Scheduled {
                        bar,
                        notes: n,
                        slack_ms,
                    });
                }
            }
            (SlotState::Missed, _) if self.fallback == Fallback::LateJoin => {
                let mut notes = notes;
                notes.sort_unstable_by_key(|n| (n.start_ms, n.pitch));
                let b = self.slots[i].window.start_pulse;
                let next = notes.partition_point(|n| self.at(self.note_pulse(b, n.start_ms)) < now);
                let slot = &mut self.slots[i];
                slot.notes = notes;
                slot.next = next;
                slot.source = PlaySource::LateJoin;
                slot.state = SlotState::Playing;
                self.push(SchedulerEvent::Late {
                    bar,
                    late_by_ms,
                    joined: true,
                });
            }
            (SlotState::Missed, _) | (SlotState::Playing, PlaySource::RepeatLast) => {
                self.push(SchedulerEvent::Late {
                    bar,
                    late_by_ms,
                    joined: false,
                });
            }
            _ => self.push(SchedulerEvent::Discarded {
                bar,
                why: DiscardReason::Duplicate,
            }),
        }
    }

    /// Silences everything now (Stop, clock loss, shutdown): a note-off for every sounding note,
    /// then sustain off (CC64 = 0) and All Notes Off (CC123) on the output channel, all at
    /// `now` (not shifted: a panic is immediate). Windows already playing stop; windows not yet
    /// started keep waiting.
    pub fn all_notes_off(&mut self, now: Nanos, out: &mut dyn MidiOut) {
        for p in 0..128u8 {
            if self.sounding[p as usize].take().is_some() {
                out.send(now, &[0x80 | self.channel, p, 0]);
            }
        }
        self.sounding_count = 0;
        out.send(now, &[0xB0 | self.channel, 64, 0]);
        out.send(now, &[0xB0 | self.channel, 123, 0]);
        for i in 0..self.slots.len() {
            match self.slots[i].state {
                SlotState::Playing => self.end_window(i),
                SlotState::Missed => self.slots[i].state = SlotState::Done,
                _ => {}
            }
        }
    }

    /// Silences every key of the output channel now, whatever is believed sounding: a note-off
    /// on all 128 keys (some synths ignore All Notes Off), then sustain off (CC64 = 0) and All
    /// Notes Off (CC123). For the moment the output opens and every Start: a previous instance
    /// that crashed mid-note left it hanging. 130 messages; windows are left as they are.
    pub fn clear_output(&mut self, now: Nanos, out: &mut dyn MidiOut) {
        for p in 0..128u8 {
            out.send(now, &[0x80 | self.channel, p, 0]);
        }
        self.sounding = [None; 128];
        self.sounding_count = 0;
        out.send(now, &[0xB0 | self.channel, 64, 0]);
        out.send(now, &[0xB0 | self.channel, 123, 0]);
    }

    /// Takes new `[playback]` settings (a config reload) at `now`; they apply to what is still
    /// to come. A new output channel first closes what sounds on the old one.
    pub fn reconfigure(&mut self, p: &PlaybackSettings, now: Nanos, out: &mut dyn MidiOut) {
        let channel = p.output_channel.clamp(1, 16) - 1;
        if channel != self.channel {
            for k in 0..128u8 {
                if self.sounding[k as usize].take().is_some() {
                    out.send(now, &[0x80 | self.channel, k, 0]);
                }
            }
            self.sounding_count = 0;
            self.channel = channel;
        }
        self.fallback = p.fallback;
        self.ring_out_pulses = p.ring_out_pulses;
        self.offset_ns = (p.output_offset_ms * 1e6).round() as i64;
    }

    /// Emits everything due at or before `now`, in time order; returns the next instant it needs
    /// to run (None: nothing pending, or the transport is stopped). Never allocates.
    pub fn poll(&mut self, now: Nanos, out: &mut dyn MidiOut) -> Option<Nanos> {
        if !self.timeline.running {
            return None;
        }
        loop {
            let (at, due) = self.next_due()?;
            if at > now {
                return Some(at);
            }
            match due {
                Due::NoteOff(p) => {
                    self.sounding[p as usize] = None;
                    self.sounding_count -= 1;
                    out.send(at, &[0x80 | self.channel, p, 0]);
                }
                Due::WindowEnd(i) => self.end_window(i),
                Due::WindowStart(i) => self.start_window(i, at),
                Due::NoteOn(i) => self.note_on(i, at, out),
            }
        }
    }

    /// Hands every buffered lifecycle record to `f`, oldest first, without allocating.
    pub fn drain_events(&mut self, mut f: impl FnMut(SchedulerEvent)) {
        while let Some(e) = self.events.pop_front() {
            f(e);
        }
    }

    /// Records dropped because the ring ([`EVENT_CAPACITY`]) was full between drains.
    pub fn events_lost(&self) -> u64 {
        self.events_lost
    }

    /// Notes sounding now (0 after [`Scheduler::all_notes_off`]: no stuck notes).
    pub fn sounding_notes(&self) -> usize {
        self.sounding_count
    }

    // ---- internals -------------------------------------------------------------------------

    /// Send instant of pulse `p` with the current timeline and the output offset.
    fn at(&self, p: f64) -> Nanos {
        let t = self.timeline.time_of(p) as i64 + self.offset_ns;
        t.max(0) as Nanos
    }

    fn push(&mut self, e: SchedulerEvent) {
        if self.events.len() == EVENT_CAPACITY {
            self.events_lost += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn find(&self, bar: u64, epoch: u32) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.window.bar == bar && s.epoch == epoch && s.state != SlotState::Done)
    }

    /// Adds a slot; false (and a Discarded record) when the table is full.
    fn insert(&mut self, slot: Slot) -> bool {
        if self.slots.len() >= MAX_WINDOWS {
            self.push(SchedulerEvent::Discarded {
                bar: slot.window.bar,
                why: DiscardReason::Overflow,
            });
            return false;
        }
        self.slots.push(slot);
        true
    }

    /// Frees finished slots (and their note buffers); called outside the tick.
    fn compact(&mut self) {
        self.slots.retain(|s| s.state != SlotState::Done);
    }

    /// Pulse of an onset or release `ms` after `window_start`, at the current tempo.
    fn note_pulse(&self, window_start: u64, ms: u32) -> f64 {
        window_start as f64 + ms as f64 / self.timeline.ms_per_pulse()
    }

    fn slot_note(&self, i: usize, k: usize) -> Option<MsNote> {
        let s = &self.slots[i];
        match s.source {
            PlaySource::RepeatLast => self.last_played.get(k).copied(),
            _ => s.notes.get(k).copied(),
        }
    }

    /// The earliest thing due (instant, then [`Due`] order), if any.
    fn next_due(&self) -> Option<(Nanos, Due)> {
        let mut best: Option<(Nanos, Due)> = None;
        let mut consider = |at: Nanos, d: Due| {
            if best.is_none_or(|(b, bd)| (at, d.rank()) < (b, bd.rank())) {
                best = Some((at, d));
            }
        };
        if self.sounding_count > 0 {
            for (p, s) in self.sounding.iter().enumerate() {
                if let Some(s) = s {
                    consider(self.at(self.off_pulse(s)), Due::NoteOff(p as u8));
                }
            }
        }
        for (i, s) in self.slots.iter().enumerate() {
            if s.epoch != self.timeline.epoch {
                continue;
            }
            match s.state {
                SlotState::Expected | SlotState::Ready | SlotState::Failed | SlotState::Dropped => {
                    consider(self.at(s.window.start_pulse as f64), Due::WindowStart(i))
                }
                SlotState::Playing => {
                    if let Some(n) = self.slot_note(i, s.next) {
                        let p = self.note_pulse(s.window.start_pulse, n.start_ms);
                        if p < s.end_pulse() {
                            consider(self.at(p), Due::NoteOn(i));
                        }
                    }
                    consider(self.at(s.end_pulse()), Due::WindowEnd(i));
                }
                SlotState::Missed => consider(self.at(s.end_pulse()), Due::WindowEnd(i)),
                SlotState::Done => {}
            }
        }
        best
    }

    /// Where a sounding note ends: its own end, cut at window end + ring-out, never before its
    /// note-on.
    fn off_pulse(&self, s: &Sounding) -> f64 {
        self.note_pulse(s.window_start, s.end_ms)
            .min(s.cut_pulse)
            .max(s.on_pulse)
    }

    /// Index of the first of `notes` (sorted, in ms from pulse `b`) whose send instant is not
    /// before `from`.
    fn first_from(&self, notes: &[MsNote], b: u64, from: Nanos) -> usize {
        notes.partition_point(|n| self.at(self.note_pulse(b, n.start_ms)) < from)
    }

    /// Starts window `i`, whose start instant is `at`. A result that arrived after `at` makes
    /// this a miss: the fallback then starts from the arrival (a repeat or a late join skips
    /// the notes already passed), so a late discovery never bursts out old notes.
    fn start_window(&mut self, i: usize, at: Nanos) {
        let s = &self.slots[i];
        let (bar, state, arrived) = (s.window.bar, s.state, s.arrived_ns);
        let late = matches!(state, SlotState::Ready | SlotState::Failed) && arrived > at;
        match state {
            SlotState::Ready if !late => {
                let s = &mut self.slots[i];
                s.state = SlotState::Playing;
                s.source = PlaySource::Result;
                s.next = 0;
            }
            SlotState::Ready | SlotState::Expected | SlotState::Failed | SlotState::Dropped => {
                if state != SlotState::Dropped {
                    self.push(SchedulerEvent::Missed {
                        bar,
                        fallback: self.fallback,
                    });
                }
                let from = if late { arrived } else { at };
                let b = self.slots[i].window.start_pulse;
                let has_result = state == SlotState::Ready;
                if has_result {
                    let late_by_ms = arrived.saturating_sub(at) as f64 / 1e6;
                    let joined = self.fallback == Fallback::LateJoin;
                    self.push(SchedulerEvent::Late {
                        bar,
                        late_by_ms,
                        joined,
                    });
                }
                if has_result && self.fallback == Fallback::LateJoin {
                    let next = self.first_from(&self.slots[i].notes, b, from);
                    let s = &mut self.slots[i];
                    s.state = SlotState::Playing;
                    s.source = PlaySource::LateJoin;
                    s.next = next;
                } else if self.fallback == Fallback::RepeatLast && !self.last_played.is_empty() {
                    let next = self.first_from(&self.last_played, b, from);
                    let s = &mut self.slots[i];
                    s.state = SlotState::Playing;
                    s.source = PlaySource::RepeatLast;
                    s.next = next;
                } else {
                    self.slots[i].state = SlotState::Missed;
                }
            }
            _ => {}
        }
    }

    fn end_window(&mut self, i: usize) {
        let s = &mut self.slots[i];
        let was = s.state;
        s.state = SlotState::Done;
        if was != SlotState::Playing {
            return;
        }
        let (bar, source, notes_on, notes_cut) = (s.window.bar, s.source, s.notes_on, s.notes_cut);
        if source != PlaySource::RepeatLast {
            // Copy, not move: `poll` must not free, and the buffer is reused bar after bar.
            let n = s.notes.len().min(MAX_REPEAT_NOTES);
            self.last_played.clear();
            self.last_played
                .extend_from_slice(&self.slots[i].notes[..n]);
        }
        self.push(SchedulerEvent::Played {
            bar,
            source,
            notes_on,
            notes_cut,
        });
    }

    fn note_on(&mut self, i: usize, at: Nanos, out: &mut dyn MidiOut) {
        let k = self.slots[i].next;
        self.slots[i].next += 1;
        let Some(n) = self.slot_note(i, k) else {
            return;
        };
        if n.pitch > 127 {
            return;
        }
        let s = &self.slots[i];
        let b = s.window.start_pulse;
        let on_pulse = self.note_pulse(b, n.start_ms);
        let cut_pulse = s.end_pulse() + self.ring_out_pulses as f64;
        let cut = self.note_pulse(b, n.end_ms) > cut_pulse;
        let ch = self.channel;
        if self.sounding[n.pitch as usize].is_some() {
            // Re-strike: end the sounding note first, so its later note-off cannot cut this one.
            out.send(at, &[0x80 | ch, n.pitch, 0]);
        } else {
            self.sounding_count += 1;
        }
        out.send(at, &[0x90 | ch, n.pitch, n.velocity.clamp(1, 127)]);
        self.sounding[n.pitch as usize] = Some(Sounding {
            on_pulse,
            window_start: b,
            end_ms: n.end_ms,
            cut_pulse,
        });
        let s = &mut self.slots[i];
        s.notes_on += 1;
        s.notes_cut += cut as u32;
    }
}
