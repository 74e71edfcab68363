//! The live engine's side of the session log: the fixed-size [`LiveRecord`]s real-time threads
//! `try_send` to `aria-log`, and [`LiveLog`], which turns them into [`Record`]s there.
//!
//! The input thread sends only `Copy` records (no allocation, no formatting); the worker adds a
//! [`GenTap`] per generation (its results go straight to the scheduler thread, which must not
//! log). A generation is paired with its job by the job's sampling seed, unique per bar.

use std::collections::VecDeque;

use crate::clock;
use crate::clock::timeline::Timeline;
use crate::clock::transport::TransportEvent;
use crate::config::Config;
use crate::engine::generator::{GenerationStats, StopReason};
use crate::engine::input::InputEvent;
use crate::engine::scheduler::SchedulerEvent;
use crate::midi::source::PortRole;
use crate::Nanos;

use super::{convert, Event, Record, RecordSink, Status};

/// Bytes of an execution provider's name kept in a fixed-size record ("cuda", "cpu", ...).
const PROVIDER_BYTES: usize = 16;
/// Generation reports waiting for their job's `Enqueued` record (a race of a few µs at most).
const MAX_ORPHANS: usize = 16;

/// A record for the log thread; fixed size, so real-time threads hand it over without allocating.
#[derive(Clone, Copy, Debug)]
pub enum LiveRecord {
    /// A record of the input processor.
    Input(InputEvent),
    /// A new timeline, so the log thread can give each record its pulse position.
    Timeline(Timeline),
    /// A job entered the queue.
    Enqueued {
        /// Human bar.
        bar: u64,
        /// Window bar.
        window_bar: u64,
        /// Jobs waiting after the push.
        depth: usize,
        /// The job's sampling seed: unique per bar, it pairs the worker's report with the job.
        seed: u64,
        /// When the job was built.
        enqueued_ns: Nanos,
        /// Estimated start of its window.
        deadline_ns: Nanos,
    },
    /// The oldest job was evicted from a full queue.
    Evicted {
        /// Its human bar.
        bar: u64,
    },
    /// From the worker thread: one generation's measurements.
    Generated(GenTap),
}

/// One generation's measurements, fixed size (the provider's name is inlined).
#[derive(Clone, Copy, Debug)]
pub struct GenTap {
    seed: u64,
    started_ns: Nanos,
    finished_ns: Nanos,
    ok: bool,
    prompt_tokens: u32,
    new_tokens: u32,
    tokenize_ms: f64,
    prefill_ms: f64,
    decode_ms: f64,
    detokenize_ms: f64,
    stop: Option<StopReason>,
    provider: [u8; PROVIDER_BYTES],
    provider_len: u8,
}

impl GenTap {
    /// The record of one generator call: the request's seed, when it ran, and its stats
    /// (`None`: it failed). Runs on the worker thread; copies, never allocates.
    pub fn new(
        seed: u64,
        started_ns: Nanos,
        finished_ns: Nanos,
        stats: Option<&GenerationStats>,
    ) -> Self {
        let empty = GenerationStats::default();
        let s = stats.unwrap_or(&empty);
        let mut provider = [0u8; PROVIDER_BYTES];
        let name = s.provider.as_bytes();
        let n = name.len().min(PROVIDER_BYTES);
        provider[..n].copy_from_slice(&name[..n]);
        Self {
            seed,
            started_ns,
            finished_ns,
            ok: stats.is_some(),
            prompt_tokens: s.prompt_tokens,
            new_tokens: s.new_tokens,
            tokenize_ms: s.tokenize_ms,
            prefill_ms: s.prefill_ms,
            decode_ms: s.decode_ms,
            detokenize_ms: s.detokenize_ms,
            stop: s.stop,
            provider,
            provider_len: n as u8,
        }
    }

    fn stats(&self) -> GenerationStats {
        GenerationStats {
            prompt_tokens: self.prompt_tokens,
            new_tokens: self.new_tokens,
            tokenize_ms: self.tokenize_ms,
            prefill_ms: self.prefill_ms,
            decode_ms: self.decode_ms,
            detokenize_ms: self.detokenize_ms,
            provider: String::from_utf8_lossy(&self.provider[..self.provider_len as usize])
                .into_owned(),
            stop: self.stop,
        }
    }
}

/// A job waiting for its generation report, as the log thread knows it.
#[derive(Clone, Copy, Debug)]
struct PendingJob {
    seed: u64,
    bar: u64,
    window_bar: u64,
    enqueued_ns: Nanos,
    deadline_ns: Nanos,
}

/// The log thread's side of the session log: turns [`LiveRecord`]s and scheduler records into
/// [`Record`]s. Keeps the session origin, the newest timeline (for pulse positions), jobs
/// awaiting their generation report, and the status line; hands every record to the sink.
/// Runs on `aria-log` (it formats, allocates and reads the clock).
pub struct LiveLog {
    origin: Nanos,
    timeline: Option<Timeline>,
    pending: VecDeque<PendingJob>,
    orphans: Vec<GenTap>,
    status: Status,
    sink: Option<RecordSink>,
    /// (output, note input) as named in warnings.
    ports: (String, String),
}

impl std::fmt::Debug for LiveLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveLog")
            .field("origin", &self.origin)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl LiveLog {
    /// Starts a session log at `origin` (live clock) and writes its header.
    pub fn new(cfg: &Config, origin: Nanos, sink: Option<RecordSink>) -> Self {
        let mut state = Self {
            origin,
            timeline: None,
            pending: VecDeque::with_capacity(MAX_WINDOWS_PENDING),
            orphans: Vec::with_capacity(MAX_ORPHANS),
            status: Status::new(cfg.log.status_every_bars)
                .with_every_secs(cfg.log.status_every_secs),
            sink,
            ports: ("the output".into(), "the input".into()),
        };
        state.emit(origin, convert::session(cfg, "live", cfg.clock.bpm));
        state
    }

    /// How the output and the note input are called in warnings (e.g. `"aria-bridge out"
    /// (connected to "synth in")`).
    pub fn name_ports(&mut self, output: String, input: String) {
        self.ports = (output, input);
    }

    /// The console line of a record that needs a person's attention (a routing loop, our own
    /// clock echoed back), if it is one.
    fn warning(&self, ev: &InputEvent) -> Option<String> {
        let (output, input) = (&self.ports.0, &self.ports.1);
        match *ev {
            InputEvent::RoutingLoop {
                port,
                round_trip_ms,
                thru_stopped,
                ..
            } => {
                let back = match port {
                    PortRole::Notes => input.clone(),
                    _ => "the clock input".into(),
                };
                let action = if thru_stopped {
                    "thru stopped (it would feed the loop forever), the notes it held closed; \
                     remove the connection, then reload (SIGHUP) or restart to turn thru on again"
                } else {
                    "echoes are recognised and kept out of the prompts; remove the connection \
                     unless it is meant"
                };
                Some(format!(
                    "MIDI routing loop: what we send on {output} comes back on {back} \
                     ({round_trip_ms:.1} ms round trip); {action}"
                ))
            }
            InputEvent::ForeignClockIgnored { status, port, .. } => Some(format!(
                "clock and transport arriving on the {} input ({status:#04x} first) are ignored: \
                     this daemon runs its own clock (clock.source = \"internal\"); our clock sent on \
                     {output} may be coming back (a routing loop). Said once.",
                convert::port_name(port)
            )),
            _ => None,
        }
    }

    /// Stamps `event` at `at` and hands it to the status line and the sink.
    fn emit(&mut self, at: Nanos, event: Event) {
        let t_ms = at.saturating_sub(self.origin) as f64 / 1e6;
        let pulse = self
            .timeline
            .filter(|tl| tl.running)
            .map(|tl| tl.pulse_at(at))
            .filter(|p| *p >= 0.0);
        let wall_ms = clock::timebase::now().saturating_sub(self.origin) as f64 / 1e6;
        let record = Record::new(t_ms, wall_ms, pulse, event);
        if let Some(line) = self.status.observe(&record) {
            tracing::info!(target: "aria_bridge::status", "{line}");
        }
        if let Some(sink) = self.sink.as_mut() {
            sink(&record);
        }
    }

    /// Takes one record from the real-time threads.
    pub fn on_record(&mut self, rec: LiveRecord) {
        match rec {
            LiveRecord::Input(ev) => {
                let event = convert::input_event(&ev);
                // Transport changes are what a musician looks for on the console ("did it see my
                // Stop?"); a lost clock is a warning; per-beat tempo samples and malformed bytes
                // (a flood can bring thousands a second; they are counted) stay below info.
                // A routing loop or our own clock echoed back: a warning with what to do.
                let warning = self.warning(&ev);
                match (&ev, &event) {
                    _ if warning.is_some() => {
                        let w = warning.as_deref().unwrap_or("");
                        tracing::warn!(target: "aria_bridge::engine::input", "{w}")
                    }
                    (
                        InputEvent::Transport(TransportEvent::TempoSample { .. })
                        | InputEvent::Malformed { .. },
                        _,
                    ) => tracing::trace!(target: "aria_bridge::engine::input", ?ev),
                    (
                        InputEvent::Transport(TransportEvent::ClockLost { .. })
                        | InputEvent::NoteOverflow { .. },
                        Some(Event::Transport { what }),
                    ) => tracing::warn!(target: "aria_bridge::clock::transport", "{what}"),
                    (_, Some(Event::Transport { what })) => {
                        tracing::info!(target: "aria_bridge::clock::transport", "{what}")
                    }
                    _ => tracing::debug!(target: "aria_bridge::engine::input", ?ev),
                }
                if let Some(e) = event {
                    self.emit(ev.at().unwrap_or_else(clock::timebase::now), e);
                }
            }
            LiveRecord::Timeline(tl) => self.timeline = Some(tl),
            LiveRecord::Enqueued {
                bar,
                window_bar,
                depth,
                seed,
                enqueued_ns,
                deadline_ns,
            } => {
                tracing::debug!(target: "aria_bridge::engine::live", bar, window_bar, queue_depth = depth, "job enqueued");
                self.emit(
                    enqueued_ns,
                    Event::Enqueued {
                        bar,
                        window_bar,
                        queue_depth: depth as u32,
                    },
                );
                if self.pending.len() == MAX_WINDOWS_PENDING {
                    self.pending.pop_front();
                }
                let job = PendingJob {
                    seed,
                    bar,
                    window_bar,
                    enqueued_ns,
                    deadline_ns,
                };
                self.pending.push_back(job);
                if let Some(i) = self.orphans.iter().position(|t| t.seed == seed) {
                    let tap = self.orphans.swap_remove(i);
                    self.on_generated(tap);
                }
            }
            LiveRecord::Evicted { bar } => {
                tracing::warn!(target: "aria_bridge::engine::live", bar, "job dropped: queue full (the model is slower than the music)");
            }
            LiveRecord::Generated(tap) => self.on_generated(tap),
        }
    }

    /// Pairs a generation report with its job and writes started, generated and ready.
    fn on_generated(&mut self, tap: GenTap) {
        let Some(i) = self.pending.iter().position(|j| j.seed == tap.seed) else {
            if self.orphans.len() < MAX_ORPHANS {
                self.orphans.push(tap);
            }
            return;
        };
        let job = self.pending.remove(i).unwrap_or_else(|| unreachable!());
        let (bar, window_bar) = (job.bar, job.window_bar);
        self.emit(
            tap.started_ns,
            Event::GenerationStarted {
                bar,
                window_bar,
                queue_wait_ms: tap.started_ns.saturating_sub(job.enqueued_ns) as f64 / 1e6,
            },
        );
        let gen_ms = tap.finished_ns.saturating_sub(tap.started_ns) as f64 / 1e6;
        let stats = tap.stats();
        let outcome = if tap.ok {
            Ok(&stats)
        } else {
            Err("generation failed")
        };
        self.emit(
            tap.finished_ns,
            convert::generated(bar, window_bar, gen_ms, outcome),
        );
        // The deadline as estimated when the job was built; the scheduler's `scheduled`
        // record carries the slack against the newest timeline.
        let slack_ms = (job.deadline_ns as f64 - tap.finished_ns as f64) / 1e6;
        self.emit(
            tap.finished_ns,
            Event::ResultReady {
                bar,
                window_bar,
                slack_ms,
            },
        );
    }

    /// Takes one scheduler lifecycle record.
    pub fn on_scheduler_event(&mut self, ev: SchedulerEvent) {
        tracing::debug!(target: "aria_bridge::engine::scheduler", ?ev);
        // Scheduler records carry no instant; they reach this thread within a few µs.
        self.emit(clock::timebase::now(), convert::scheduler_event(&ev));
    }
}

/// Jobs the log thread remembers while they wait for the worker (queue capacity is at most 64).
const MAX_WINDOWS_PENDING: usize = 128;
