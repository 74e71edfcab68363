//! The engine's input side: raw MIDI in, timelines, jobs and log records out.
//!
//! [`InputProcessor`] wires the pure parts of the clock side together: [`crate::midi::message::Parser`]
//! (one per port, for running status), [`Transport`] (clock, position, bars, tempo),
//! [`BarBuffers`] (the human's notes) and [`EchoFilter`] (our own notes looping back). Each
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
//! other port are counted and ignored.

use crate::clock::meter::{Meter, TimeSignature};
use crate::clock::timeline::Timeline;
use crate::clock::transport::{Anomaly, Transport, TransportConfig, TransportEvent};
use crate::config::Config;
use crate::engine::bars::{BarBuffers, NoteOutcome, MAX_PROMPT_BARS};
use crate::engine::echo::EchoFilter;
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
            | InputEvent::NoteOverflow { at } => Some(at),
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
    /// Incoming notes recognised as our own output looping back.
    pub echoes_dropped: u64,
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

/// The clock side of the engine. See the module docs.
#[derive(Clone, Debug)]
pub struct InputProcessor {
    transport: Transport,
    bars: BarBuffers,
    echo: EchoFilter,
    notes_parser: Parser,
    clock_parser: Parser,
    clock_role: PortRole,
    input_channel: u8,
    thru: bool,
    prompt_bars: usize,
    sampling: SamplingParams,
    seed: u64,
    counters: InputCounters,
}

impl InputProcessor {
    /// Builds from config (meter, prompt bars, sampling, loss timeout, input channel).
    pub fn new(cfg: &Config) -> Self {
        let transport = Transport::new(TransportConfig {
            meter: meter_of(cfg),
            initial_ns_per_pulse: 60e9
                / (cfg.clock.bpm.clamp(20.0, 400.0) * f64::from(crate::PPQN)),
            loss_intervals: cfg.clock.loss_intervals,
            loss_min_ns: (cfg.clock.loss_min_ms.max(0.0) * 1e6) as u64,
        });
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
            input_channel: cfg.midi.input_channel,
            thru: cfg.midi.thru,
            prompt_bars: (cfg.generation.prompt_bars as usize).clamp(1, MAX_PROMPT_BARS),
            sampling: cfg.sampling(cfg.generation.seed),
            seed: cfg.generation.seed,
            counters: InputCounters::default(),
        }
    }

    /// Handles one message. Runs on the MIDI input thread: no lock, no I/O; allocates only a
    /// job's prompt at a bar boundary.
    pub fn on_midi(&mut self, msg: &RawMidi, out: &mut impl FnMut(InputAction)) {
        self.counters.messages += 1;
        let at = msg.at;
        let parser = match msg.port {
            PortRole::Notes => &mut self.notes_parser,
            PortRole::Clock => &mut self.clock_parser,
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
            if msg.port != self.clock_role {
                self.counters.wrong_port += 1;
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
                if self.accept_channel_message(msg.port, channel)
                    && !self.is_echo(at, channel, key, true)
                {
                    self.forward(&parsed, out);
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
                if self.accept_channel_message(msg.port, channel)
                    && !self.is_echo(at, channel, key, false)
                {
                    self.forward(&parsed, out);
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
                    self.forward(&parsed, out);
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

    /// The engine tells us each note message we sent (echo filter). Takes `&mut self`: call it
    /// on the thread that owns the processor (the engine forwards its sends through the input
    /// queue), before the echo can be handled.
    pub fn record_sent(&mut self, at: Nanos, bytes: &[u8]) {
        self.echo.record_sent(at, bytes);
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

    fn is_echo(&mut self, at: Nanos, channel: u8, key: u8, on: bool) -> bool {
        let echo = self.echo.is_echo(at, channel, key, on);
        if echo {
            self.counters.echoes_dropped += 1;
        }
        echo
    }

    fn forward(&self, msg: &MidiMessage, out: &mut impl FnMut(InputAction)) {
        if self.thru {
            if let Some((bytes, len)) = msg.encode() {
                out(InputAction::Thru { bytes, len });
            }
        }
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
