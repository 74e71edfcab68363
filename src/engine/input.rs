//! The engine's input side: raw MIDI in, timelines, jobs and log records out.
//!
//! [`InputProcessor`] wires the pure parts of the clock side together: [`crate::midi::message::Parser`]
//! (one per port, for running status), [`Transport`] (clock, position, bars, tempo),
//! [`BarBuffers`] (the human's notes) and [`EchoFilter`] (our own output looping back). Each
//! message produces zero or more [`InputAction`]s through a callback, in order: a new
//! [`Timeline`] always comes before the job built with it.
//!
//! # Threads
//! [`InputProcessor::on_midi`], [`InputProcessor::on_tick`] and [`InputProcessor::record_sent`]
//! run on the MIDI input thread (the engine serialises them). They take no lock, do no I/O and
//! never format; the only allocation is a job's prompt at a bar boundary (two vectors sized
//! exactly, once a bar; see [`BarBuffers::prompt`]).
//!
//! # Jobs
//! At the clock that ends a bar played through (the completeness rule is in
//! [`crate::clock::transport`]: after Start bar 0 counts; after Continue, a Song Position jump or a
//! resumed clock, the bar landed in counts only when landed on its first pulse), the job for
//! that bar `k` is built:
//! - prompt: the last `generation.prompt_bars` bar slots *as played*, ending with `k` (fewer
//!   when the run is younger; across a loop wrap, bar 7 then bar 4, not bars 3 and 4), in whole
//!   ms at the tempo of the boundary;
//! - window: the bar after the one the boundary clock belongs to (`k + 2` in an unbroken run);
//! - `deadline_ns`: the timeline's estimate of the window's first pulse; `enqueued_ns`: the
//!   boundary clock's timestamp; `epoch`: the timeline's;
//! - seed: [`bar_seed`] of `generation.seed` and `k`.
//!
//! Jobs built before a discontinuity carry an older epoch and are void, except the one whose
//! window began where a Song Position jump left (bar line to bar line): the scheduler moves it
//! to where the jump landed ([`crate::clock::timeline::Carry`]). The job for a bar that ends at a loop
//! wrap is built after the Song Position, in the new epoch and coordinates.
//!
//! # Ports
//! When `midi.clock_port` is set, transport messages are taken from [`PortRole::Clock`] only and
//! notes from [`PortRole::Notes`] only (a DAW that also sends its clock on the note port must
//! not double every pulse); otherwise everything comes from [`PortRole::Notes`]. Messages on the
//! other port are counted and ignored. Transport from [`PortRole::Internal`] (our own clock) is
//! always taken; while it runs (`clock.source = "internal"`), transport arriving on the ports is
//! ignored, counted, and reported once: our own clock echoed back by a routing loop would
//! otherwise double every pulse.
//!
//! # Routing loops and thru
//! Every channel message that arrives on a port that carries notes goes through the
//! [`EchoFilter`] first (see [`crate::engine::echo`]): an echo of our own output (answers,
//! panics, the sweep at Start, and what thru forwarded) is dropped and counted. When the filter
//! confirms a loop, an [`InputEvent::RoutingLoop`] is emitted once, and thru stops (forwarding
//! what comes back would feed it forever), closing first the notes it had opened. Thru keeps
//! track of the notes and pedals it forwarded on every channel, so that
//! [`InputProcessor::close_thru`] can end them at shutdown.

use crate::clock::meter::{Meter, TimeSignature};
use crate::clock::timeline::Timeline;
use crate::clock::transport::{Anomaly, Transport, TransportConfig, TransportEvent};
use crate::config::{ClockSource, Config};
use crate::engine::bars::{BarBuffers, NoteOutcome, MAX_PROMPT_BARS};
use crate::engine::echo::{EchoFilter, LoopFound, Origin};
use crate::engine::generator::SamplingParams;
use crate::engine::job::{GenerationJob, Window};
use crate::midi::message::{Malformed, MidiMessage, Parser};
use crate::midi::source::{PortRole, RawMidi};
use crate::Nanos;

/// The sustain pedal controller.
const CC_SUSTAIN: u8 = 64;
/// Most transport events one message can produce (a boundary clock: jump, sample, resume,
/// timeline, bar ended, bar began = 6).
const MAX_EVENTS: usize = 8;

/// Why every sounding note must be closed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllNotesOffReason {
    /// Start while running: the song restarts.
    Restart,
    /// Stop.
    Stop,
    /// A Song Position jump while running (a loop wrap).
    Relocation,
    /// The clock went silent while running.
    ClockLoss,
}

/// A fixed-size record for the log thread (no `String`, no allocation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputEvent {
    /// A transport change or survived oddity as the transport reported it: Started, Continued,
    /// Stopped, PositionSet, Relocated, ClockLost, ClockResumed, TempoSample, TempoJump, Anomaly
    /// (never Timeline, BarBegan, BarEnded or SppInPlace: those become actions or nothing).
    Transport(TransportEvent),
    /// Human bar `bar` was played through; a job was built for it.
    BoundaryDetected {
        /// The bar that ended.
        bar: u64,
        /// The boundary instant.
        at: Nanos,
    },
    /// Bar `bar` ended but was not played through in this run: no job.
    BarSkipped {
        /// The bar.
        bar: u64,
        /// When it ended.
        at: Nanos,
    },
    /// Bytes that are not MIDI.
    Malformed {
        /// When.
        at: Nanos,
        /// Why.
        kind: Malformed,
        /// First byte (0 when empty).
        first_byte: u8,
        /// Number of bytes.
        len: u8,
    },
    /// A SysEx message (ignored).
    SysEx {
        /// When.
        at: Nanos,
    },
    /// A human note was dropped: the note buffer is full.
    NoteOverflow {
        /// When.
        at: Nanos,
    },
    /// Our own output comes back on an input: a routing loop (reported once per loop found).
    RoutingLoop {
        /// When it was confirmed.
        at: Nanos,
        /// The input it comes back on.
        port: PortRole,
        /// Measured round trip, ms.
        round_trip_ms: f64,
        /// Thru was on and has been stopped (its notes closed) to break the feedback.
        thru_stopped: bool,
    },
    /// Transport arrived on a port while our own clock runs: ignored (reported once a run).
    ForeignClockIgnored {
        /// When the first one came.
        at: Nanos,
        /// Its status byte.
        status: u8,
        /// The port it came on.
        port: PortRole,
    },
}

impl InputEvent {
    /// When it happened (or was noticed).
    pub fn at(&self) -> Option<Nanos> {
        match *self {
            InputEvent::Transport(t) => t.at(),
            InputEvent::BoundaryDetected { at, .. }
            | InputEvent::BarSkipped { at, .. }
            | InputEvent::Malformed { at, .. }
            | InputEvent::SysEx { at }
            | InputEvent::NoteOverflow { at }
            | InputEvent::RoutingLoop { at, .. }
            | InputEvent::ForeignClockIgnored { at, .. } => Some(at),
        }
    }
}

/// What the engine must do after a message.
#[derive(Clone, Debug)]
pub enum InputAction {
    /// Publish to the scheduler (tempo moved, a beat went by, or an epoch bump).
    Timeline(Timeline),
    /// A job to enqueue (the engine does a non-blocking `try_send` and counts drops).
    Job(GenerationJob),
    /// Close every sounding note now.
    AllNotesOff(AllNotesOffReason),
    /// Start: silence every key of the output channel (note-off on all 128, sustain off, All
    /// Notes Off), whatever the engine believes is sounding: a previous instance that crashed
    /// mid-note left it hanging on the synth.
    ClearOutput,
    /// A human note/pedal message to forward when `midi.thru` is on (running status expanded).
    Thru {
        /// Message bytes.
        bytes: [u8; 3],
        /// Valid bytes.
        len: u8,
    },
    /// A record for the log thread.
    Event(InputEvent),
}

/// Counters since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputCounters {
    /// Messages handled.
    pub messages: u64,
    /// Messages that were not MIDI.
    pub malformed: u64,
    /// SysEx messages.
    pub sysex: u64,
    /// Well-formed messages the engine does not use (program change, active sensing...).
    pub ignored: u64,
    /// Incoming messages recognised as our own output looping back.
    pub echoes_dropped: u64,
    /// Routing loops confirmed (our output coming back on an input).
    pub routing_loops: u64,
    /// Transport messages on a port while our own clock runs (ignored).
    pub foreign_transport: u64,
    /// Note-ons while stopped (forwarded to thru, not buffered).
    pub notes_while_stopped: u64,
    /// Notes and pedal on a channel other than `midi.input_channel`.
    pub wrong_channel: u64,
    /// Messages on the port that does not carry them (notes on the clock port or the reverse).
    pub wrong_port: u64,
    /// Note-offs with no sounding note.
    pub unmatched_note_offs: u64,
    /// Notes dropped because the buffer was full.
    pub note_overflow: u64,
    /// Clocks while stopped (tempo only).
    pub clocks_while_stopped: u64,
    /// Start while running.
    pub double_starts: u64,
    /// Stop while stopped.
    pub stray_stops: u64,
    /// Continue while running.
    pub stray_continues: u64,
    /// Song Position jumps while running.
    pub relocations: u64,
    /// Clock losses.
    pub clock_losses: u64,
    /// Tempo loop relocks (steps and gaps).
    pub tempo_jumps: u64,
    /// Bars played through (a job was built for each).
    pub jobs_built: u64,
    /// Bars ended without being played through.
    pub bars_skipped: u64,
}

/// The seed of bar `bar`'s generation: output `bar` of a SplitMix64 stream seeded with the
/// jam seed, so every bar differs and a replay with the same seed is identical.
pub fn bar_seed(seed: u64, bar: u64) -> u64 {
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut z = seed.wrapping_add(bar.wrapping_add(1).wrapping_mul(GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The meter of a configuration (a validated config never fails to parse; 4/4 otherwise).
pub fn meter_of(cfg: &Config) -> Meter {
    let parse = |s: &str| TimeSignature::parse(s).unwrap_or(TimeSignature::COMMON);
    let changes: Vec<(u64, TimeSignature)> = cfg
        .clock
        .meter_changes
        .iter()
        .map(|m| (m.bar, parse(&m.time_signature)))
        .collect();
    Meter::with_changes(parse(&cfg.clock.time_signature), &changes)
}

/// The input side's settings that may change while running (a config reload): they apply
/// from the next message on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InputSettings {
    /// `generation.prompt_bars`.
    pub prompt_bars: usize,
    /// `[generation]` sampling (its seed is the jam seed).
    pub sampling: SamplingParams,
    /// `generation.seed`.
    pub seed: u64,
    /// `midi.input_channel` (0 = any).
    pub input_channel: u8,
    /// `midi.thru`.
    pub thru: bool,
}

impl InputSettings {
    /// The settings of `cfg`.
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            prompt_bars: (cfg.generation.prompt_bars as usize).clamp(1, MAX_PROMPT_BARS),
            sampling: cfg.sampling(cfg.generation.seed),
            seed: cfg.generation.seed,
            input_channel: cfg.midi.input_channel,
            thru: cfg.midi.thru,
        }
    }
}

/// What thru has opened and not yet closed: note-ons without their note-off per channel and
/// key (counted: a synth may stack a voice per note-on), and pedals held down.
#[derive(Clone, Copy, Debug)]
struct ThruOpen {
    notes: [[u8; 128]; 16],
    pedal: u16,
}

impl Default for ThruOpen {
    fn default() -> Self {
        Self {
            notes: [[0; 128]; 16],
            pedal: 0,
        }
    }
}

impl ThruOpen {
    fn track(&mut self, bytes: &[u8; 3]) {
        let ch = (bytes[0] & 0x0F) as usize;
        let open = &mut self.notes[ch][(bytes[1] & 0x7F) as usize];
        match bytes[0] & 0xF0 {
            0x90 if bytes[2] > 0 => *open = open.saturating_add(1),
            0x80 | 0x90 => *open = open.saturating_sub(1),
            0xB0 if bytes[1] == CC_SUSTAIN => {
                if bytes[2] >= 64 {
                    self.pedal |= 1 << ch;
                } else {
                    self.pedal &= !(1 << ch);
                }
            }
            _ => {}
        }
    }
}

/// The clock side of the engine. See the module docs.
#[derive(Clone, Debug)]
pub struct InputProcessor {
    transport: Transport,
    bars: BarBuffers,
    echo: EchoFilter,
    notes_parser: Parser,
    clock_parser: Parser,
    clock_role: PortRole,
    /// We run our own clock: transport only from [`PortRole::Internal`].
    own_clock: bool,
    foreign_reported: bool,
    input_channel: u8,
    thru: bool,
    thru_open: ThruOpen,
    prompt_bars: usize,
    sampling: SamplingParams,
    seed: u64,
    counters: InputCounters,
}

impl InputProcessor {
    /// Builds from config (meter, prompt bars, sampling, loss timeout, input channel, clock
    /// source).
    pub fn new(cfg: &Config) -> Self {
        let transport = Transport::new(TransportConfig {
            meter: meter_of(cfg),
            initial_ns_per_pulse: 60e9
                / (cfg.clock.bpm.clamp(20.0, 400.0) * f64::from(crate::PPQN)),
            loss_intervals: cfg.clock.loss_intervals,
            loss_min_ns: (cfg.clock.loss_min_ms.max(0.0) * 1e6) as u64,
        });
        let s = InputSettings::from_config(cfg);
        Self {
            transport,
            bars: BarBuffers::new(),
            echo: EchoFilter::new(),
            notes_parser: Parser::new(),
            clock_parser: Parser::new(),
            clock_role: if cfg.midi.clock_port.is_some() {
                PortRole::Clock
            } else {
                PortRole::Notes
            },
            own_clock: cfg.clock.source == ClockSource::Internal,
            foreign_reported: false,
            input_channel: s.input_channel,
            thru: s.thru,
            thru_open: ThruOpen::default(),
            prompt_bars: s.prompt_bars,
            sampling: s.sampling,
            seed: s.seed,
            counters: InputCounters::default(),
        }
    }

    /// Takes new settings (a config reload) at `now`. Thru turned off closes what it opened;
    /// thru asked for while a routing loop is known stays off and says so again.
    pub fn reconfigure(
        &mut self,
        s: &InputSettings,
        now: Nanos,
        out: &mut impl FnMut(InputAction),
    ) {
        self.prompt_bars = s.prompt_bars.clamp(1, MAX_PROMPT_BARS);
        self.sampling = s.sampling;
        self.seed = s.seed;
        self.input_channel = s.input_channel;
        let looped = self.echo.loop_confirmed(PortRole::Notes);
        if s.thru && looped && !self.thru {
            out(InputAction::Event(InputEvent::RoutingLoop {
                at: now,
                port: PortRole::Notes,
                round_trip_ms: self.echo.round_trip_ns(PortRole::Notes).unwrap_or(0.0) / 1e6,
                thru_stopped: true,
            }));
        }
        let thru = s.thru && !looped;
        if self.thru && !thru {
            self.close_thru(now, out);
        }
        self.thru = thru;
    }

    /// Whether thru forwards the player's messages now (`midi.thru`, unless a routing loop
    /// stopped it).
    pub fn thru(&self) -> bool {
        self.thru
    }

    /// Closes what thru opened and did not close: a note-off for every note-on it forwarded
    /// without its note-off, on that note's channel, and sustain off on every channel where it
    /// forwarded the pedal down. For shutdown, and when thru stops. Emitted as
    /// [`InputAction::Thru`] whether or not thru is still on.
    pub fn close_thru(&mut self, at: Nanos, out: &mut impl FnMut(InputAction)) {
        let open = std::mem::take(&mut self.thru_open);
        for (ch, keys) in open.notes.iter().enumerate() {
            for (key, &n) in keys.iter().enumerate() {
                for _ in 0..n {
                    self.emit_thru(at, [0x80 | ch as u8, key as u8, 0], 3, out);
                }
            }
        }
        for ch in 0..16u8 {
            if open.pedal & (1 << ch) != 0 {
                self.emit_thru(at, [0xB0 | ch, CC_SUSTAIN, 0], 3, out);
            }
        }
    }

    /// Handles one message. Runs on the MIDI input thread: no lock, no I/O; allocates only a
    /// job's prompt at a bar boundary.
    pub fn on_midi(&mut self, msg: &RawMidi, out: &mut impl FnMut(InputAction)) {
        self.counters.messages += 1;
        let at = msg.at;
        let parser = match msg.port {
            PortRole::Notes => &mut self.notes_parser,
            PortRole::Clock | PortRole::Internal => &mut self.clock_parser,
        };
        let parsed = match parser.parse(msg.as_slice(), msg.truncated) {
            Ok(m) => m,
            Err(kind) => {
                self.counters.malformed += 1;
                out(InputAction::Event(InputEvent::Malformed {
                    at,
                    kind,
                    first_byte: msg.bytes[0],
                    len: msg.len,
                }));
                return;
            }
        };
        if parsed.is_transport() {
            if !self.accepts_transport(msg.port) {
                if self.own_clock {
                    self.foreign_transport(at, msg, out);
                } else {
                    self.counters.wrong_port += 1;
                }
                return;
            }
            let mut buf = [None; MAX_EVENTS];
            let mut n = 0;
            self.transport.on_message(&parsed, at, &mut |e| {
                if n < MAX_EVENTS {
                    buf[n] = Some(e);
                    n += 1;
                }
            });
            if parsed == MidiMessage::Clock
                && self.transport.state() == crate::clock::transport::PlayState::Stopped
            {
                self.counters.clocks_while_stopped += 1;
            }
            self.handle_transport(&buf[..n], out);
            return;
        }
        // Our own output looping back is dropped before anything else sees it (the channel filter
        // included, so that it is counted as what it is).
        if let Some((bytes, len)) = parsed.encode() {
            let carries_notes =
                !(self.clock_role == PortRole::Clock && msg.port == PortRole::Clock);
            if carries_notes && self.is_echo(at, msg.port, &bytes[..len as usize], out) {
                return;
            }
        }
        match parsed {
            MidiMessage::SysEx => {
                self.counters.sysex += 1;
                out(InputAction::Event(InputEvent::SysEx { at }));
            }
            MidiMessage::NoteOn {
                channel,
                key,
                velocity,
            } => {
                if self.accept_channel_message(msg.port, channel) {
                    self.forward(at, &parsed, out);
                    match self.transport.played_position(at) {
                        None => self.counters.notes_while_stopped += 1,
                        Some(p) => {
                            if self.bars.note_on(channel, key, velocity, p) == NoteOutcome::Overflow
                            {
                                self.counters.note_overflow += 1;
                                out(InputAction::Event(InputEvent::NoteOverflow { at }));
                            }
                        }
                    }
                }
            }
            MidiMessage::NoteOff { channel, key, .. } => {
                if self.accept_channel_message(msg.port, channel) {
                    self.forward(at, &parsed, out);
                    if let Some(p) = self.transport.played_position(at) {
                        if self.bars.note_off(channel, key, p) == NoteOutcome::Unmatched {
                            self.counters.unmatched_note_offs += 1;
                        }
                    }
                }
            }
            MidiMessage::ControlChange {
                channel,
                controller: CC_SUSTAIN,
                value,
            } => {
                if self.accept_channel_message(msg.port, channel) {
                    self.forward(at, &parsed, out);
                    if let Some(p) = self.transport.played_position(at) {
                        self.bars.pedal(value >= 64, p);
                    }
                }
            }
            _ => self.counters.ignored += 1,
        }
    }

    /// Periodic check (every few ms from the input thread): clock loss.
    pub fn on_tick(&mut self, now: Nanos, out: &mut impl FnMut(InputAction)) {
        let mut buf = [None; MAX_EVENTS];
        let mut n = 0;
        self.transport.on_tick(now, &mut |e| {
            if n < MAX_EVENTS {
                buf[n] = Some(e);
                n += 1;
            }
        });
        self.handle_transport(&buf[..n], out);
    }

    /// The engine tells us each channel message it sent, stamped with its send instant (echo
    /// filter; thru's sends are recorded here already). Takes `&mut self`: call it on the thread
    /// that owns the processor (the engine forwards its sends through a queue), before the echo
    /// can be handled. Only where a port could carry it back: a headless jam has none.
    pub fn record_sent(&mut self, at: Nanos, bytes: &[u8]) {
        self.echo.record_sent(at, bytes, Origin::Engine);
    }

    /// Current timeline (for shells and tests).
    pub fn timeline(&self) -> Timeline {
        self.transport.timeline()
    }

    /// Counters: malformed, sysex, echoes dropped, notes while stopped, ...
    pub fn counters(&self) -> InputCounters {
        self.counters
    }

    /// The transport (read-only, for shells and tests).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    fn accept_channel_message(&mut self, port: PortRole, channel: u8) -> bool {
        if self.clock_role == PortRole::Clock && port == PortRole::Clock {
            self.counters.wrong_port += 1;
            return false;
        }
        if self.input_channel != 0 && channel + 1 != self.input_channel {
            self.counters.wrong_channel += 1;
            return false;
        }
        true
    }

    /// Transport comes from our own clock, or (when none runs) from the port that carries it.
    fn accepts_transport(&self, port: PortRole) -> bool {
        port == PortRole::Internal || (!self.own_clock && port == self.clock_role)
    }

    fn foreign_transport(&mut self, at: Nanos, msg: &RawMidi, out: &mut impl FnMut(InputAction)) {
        self.counters.foreign_transport += 1;
        if !self.foreign_reported {
            self.foreign_reported = true;
            out(InputAction::Event(InputEvent::ForeignClockIgnored {
                at,
                status: msg.bytes[0],
                port: msg.port,
            }));
        }
    }

    fn is_echo(
        &mut self,
        at: Nanos,
        port: PortRole,
        bytes: &[u8],
        out: &mut impl FnMut(InputAction),
    ) -> bool {
        let v = self.echo.check(at, port, bytes);
        if let Some(found) = v.found {
            self.on_loop(at, found, out);
        }
        if v.echo {
            self.counters.echoes_dropped += 1;
        }
        v.echo
    }

    /// A loop was confirmed: stop thru (closing what it opened) if it feeds back through it.
    fn on_loop(&mut self, at: Nanos, found: LoopFound, out: &mut impl FnMut(InputAction)) {
        self.counters.routing_loops += 1;
        let thru_stopped = self.thru && found.port == PortRole::Notes;
        if thru_stopped {
            self.thru = false;
            self.close_thru(at, out);
        }
        out(InputAction::Event(InputEvent::RoutingLoop {
            at,
            port: found.port,
            round_trip_ms: found.round_trip_ns / 1e6,
            thru_stopped,
        }));
    }

    fn forward(&mut self, at: Nanos, msg: &MidiMessage, out: &mut impl FnMut(InputAction)) {
        if self.thru {
            if let Some((bytes, len)) = msg.encode() {
                self.emit_thru(at, bytes, len, out);
            }
        }
    }

    /// Sends through thru: tracked (for [`InputProcessor::close_thru`]) and recorded as ours
    /// (its echo through a loop must not be forwarded again).
    fn emit_thru(&mut self, at: Nanos, bytes: [u8; 3], len: u8, out: &mut impl FnMut(InputAction)) {
        self.thru_open.track(&bytes);
        self.echo
            .record_sent(at, &bytes[..len as usize], Origin::Thru);
        out(InputAction::Thru { bytes, len });
    }

    fn handle_transport(
        &mut self,
        events: &[Option<TransportEvent>],
        out: &mut impl FnMut(InputAction),
    ) {
        use TransportEvent as T;
        for ev in events.iter().flatten() {
            match *ev {
                T::Timeline(tl) => out(InputAction::Timeline(tl)),
                T::Started { restart, .. } => {
                    self.bars.clear();
                    if restart {
                        out(InputAction::AllNotesOff(AllNotesOffReason::Restart));
                    }
                    out(InputAction::ClearOutput);
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::Continued { .. } => {
                    self.bars.clear();
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::Stopped { .. } => {
                    self.bars.clear();
                    out(InputAction::AllNotesOff(AllNotesOffReason::Stop));
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::PositionSet { .. } => {
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::Relocated { .. } => {
                    self.counters.relocations += 1;
                    out(InputAction::AllNotesOff(AllNotesOffReason::Relocation));
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::SppInPlace { .. } => {}
                T::ClockLost { .. } => {
                    self.counters.clock_losses += 1;
                    self.bars.clear();
                    out(InputAction::AllNotesOff(AllNotesOffReason::ClockLoss));
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::ClockResumed { .. } => {
                    self.bars.clear();
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::BarBegan { bar, played, .. } => self.bars.begin_bar(bar, played),
                T::BarEnded {
                    bar,
                    played_end,
                    at,
                    complete,
                    next_bar,
                } => {
                    self.bars.end_bar(played_end);
                    if complete {
                        self.counters.jobs_built += 1;
                        out(InputAction::Event(InputEvent::BoundaryDetected { bar, at }));
                        out(InputAction::Job(self.build_job(bar, next_bar, at)));
                    } else {
                        self.counters.bars_skipped += 1;
                        out(InputAction::Event(InputEvent::BarSkipped { bar, at }));
                    }
                }
                T::TempoSample { .. } => out(InputAction::Event(InputEvent::Transport(*ev))),
                T::TempoJump { .. } => {
                    self.counters.tempo_jumps += 1;
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
                T::Anomaly { kind, .. } => {
                    match kind {
                        Anomaly::DoubleStart => self.counters.double_starts += 1,
                        Anomaly::StopWhileStopped => self.counters.stray_stops += 1,
                        Anomaly::ContinueWhileRunning => self.counters.stray_continues += 1,
                        Anomaly::ClockWithoutStart => {}
                    }
                    out(InputAction::Event(InputEvent::Transport(*ev)));
                }
            }
        }
    }

    /// The job for human bar `bar`, built at the clock `at` that belongs to `next_bar`; its
    /// result plays in the bar after that (bar + 2 in an unbroken run).
    fn build_job(&self, bar: u64, next_bar: u64, at: Nanos) -> GenerationJob {
        let tl = self.transport.timeline();
        let ms_per_pulse = tl.ms_per_pulse();
        let prompt = self
            .bars
            .prompt(self.prompt_bars, ms_per_pulse)
            .unwrap_or_default();
        let meter = self.transport.meter();
        let wbar = next_bar + 1;
        let window = Window {
            bar: wbar,
            start_pulse: meter.bar_start(wbar),
            len_pulses: meter.pulses_per_bar(wbar),
        };
        GenerationJob {
            bar,
            epoch: tl.epoch,
            prompt,
            params: SamplingParams {
                seed: bar_seed(self.seed, bar),
                ..self.sampling
            },
            window,
            ms_per_pulse,
            deadline_ns: tl.time_of(window.start_pulse as f64),
            enqueued_ns: at,
        }
    }
}
