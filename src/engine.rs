//! The live engine: the pure parts ([`InputProcessor`], [`Scheduler`], [`run_job`]) on their
//! threads, joined by bounded channels.
//!
//! ```text
//!  port adapters --RawMidi (try_send)--> aria-input --Timeline/Expect/Dropped/AllNotesOff--> aria-scheduler --> MidiOut
//!                                          |   ^                                                   ^     |
//!                                          |   +---- notes we sent (echo filter) ------------------|-----+
//!                                          +--GenerationJob (JobQueue, evicts oldest)--> aria-worker
//!                                                                                  WorkerReport -+
//!  aria-input / aria-scheduler --fixed-size records--> aria-log (formats, writes)
//! ```
//!
//! Threads: `aria-input` parses and follows the clock (never blocks: every hand-off is a
//! `try_send`), `aria-worker` runs the model, `aria-scheduler` sends each note at its instant,
//! `aria-log` is the only one that formats text. The headless jam ([`crate::jam`]) drives the
//! same pure parts in virtual time instead.
//!
//! [`run_job`]: crate::worker::run_job

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use crate::config::Config;
use crate::generator::{
    Generated, GenerationRequest, GenerationStats, Generator, GeneratorError, StopReason,
};
use crate::input::{InputAction, InputCounters, InputEvent, InputProcessor};
use crate::job_queue::{Enqueued, JobQueue};
use crate::log::{convert, Event, Record, RecordSink, Status};
use crate::scheduler::thread::{SchedulerMsg, SchedulerThread};
use crate::scheduler::{DropReason, Scheduler, SchedulerEvent};
use crate::sink::MidiOut;
use crate::source::{PortRole, RawMidi};
use crate::timeline::Timeline;
use crate::worker::{Worker, WorkerOptions, WorkerReport};
use crate::{clock, Nanos};

/// Raw messages waiting for the input thread. At 10,000 messages/s (a flood) this is 400 ms of
/// backlog; a full queue drops at the adapter and counts.
pub const INPUT_QUEUE: usize = 4096;
/// The input thread checks for clock loss at least this often.
const TICK: Duration = Duration::from_millis(2);
/// Notes we sent, waiting to teach the echo filter; a bar of dense piano is ~100 messages.
const ECHO_QUEUE: usize = 1024;
/// Control messages to the scheduler (timelines come once a beat, jobs once a bar).
const CONTROL_QUEUE: usize = 256;
/// Records waiting for the log thread: ~24 tempo/clock records a bar plus ~10 lifecycle ones,
/// so 1024 is dozens of bars if the log thread stalls on a slow disk.
const LOG_QUEUE: usize = 1024;
/// Bytes of an execution provider's name kept in a fixed-size record ("cuda", "cpu", ...).
const PROVIDER_BYTES: usize = 16;
/// Generation reports waiting for their job's `Enqueued` record (a race of a few µs at most).
const MAX_ORPHANS: usize = 16;

/// An engine that could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The OS refused a thread.
    #[error("could not start the {thread} thread: {source}")]
    Thread {
        /// Which thread.
        thread: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// What a live run did, for the closing log line.
#[derive(Clone, Debug, Default)]
pub struct EngineSummary {
    /// Counters of the input side.
    pub input: InputCounters,
    /// Jobs enqueued.
    pub jobs: u64,
    /// Jobs evicted from a full queue.
    pub jobs_evicted: u64,
    /// Control messages the scheduler's full queue refused.
    pub control_refused: u64,
    /// Windows that played their result.
    pub played: u64,
    /// Windows that started without a result.
    pub missed: u64,
    /// Windows whose job was dropped.
    pub dropped: u64,
    /// Log records lost because the log thread fell behind.
    pub log_lost: u64,
}

/// Counters shared by the engine threads (atomics: written on real-time threads, read anywhere).
#[derive(Debug, Default)]
struct Counters {
    jobs: AtomicU64,
    jobs_evicted: AtomicU64,
    control_refused: AtomicU64,
    played: AtomicU64,
    missed: AtomicU64,
    dropped: AtomicU64,
    log_lost: AtomicU64,
}

/// A record for the log thread; fixed size, so real-time threads hand it over without allocating.
#[derive(Clone, Copy, Debug)]
enum LogRecord {
    Input(InputEvent),
    /// A new timeline, so the log thread can give each record its pulse position.
    Timeline(Timeline),
    Enqueued {
        bar: u64,
        window_bar: u64,
        depth: usize,
        /// The job's sampling seed: unique per bar, it pairs the worker's report with the job.
        seed: u64,
        enqueued_ns: Nanos,
        deadline_ns: Nanos,
    },
    Evicted {
        bar: u64,
    },
    /// From the worker thread: one generation's measurements.
    Generated(GenTap),
}

/// One generation's measurements, fixed size (the provider's name is inlined).
#[derive(Clone, Copy, Debug)]
struct GenTap {
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

/// Wraps the generator on `aria-worker`: after each call it `try_send`s the call's
/// measurements to the log thread as a fixed-size [`GenTap`] (the worker's results go straight
/// to the scheduler thread, which must not format or log).
struct StatsTap {
    inner: Box<dyn Generator>,
    log: Sender<LogRecord>,
    counters: Arc<Counters>,
}

impl Generator for StatsTap {
    fn generate(&mut self, request: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        let started_ns = clock::now();
        let result = self.inner.generate(request);
        let finished_ns = clock::now();
        let empty = GenerationStats::default();
        let s = result.as_ref().map_or(&empty, |g| &g.stats);
        let mut provider = [0u8; PROVIDER_BYTES];
        let name = s.provider.as_bytes();
        let n = name.len().min(PROVIDER_BYTES);
        provider[..n].copy_from_slice(&name[..n]);
        let tap = GenTap {
            seed: request.params.seed,
            started_ns,
            finished_ns,
            ok: result.is_ok(),
            prompt_tokens: s.prompt_tokens,
            new_tokens: s.new_tokens,
            tokenize_ms: s.tokenize_ms,
            prefill_ms: s.prefill_ms,
            decode_ms: s.decode_ms,
            detokenize_ms: s.detokenize_ms,
            stop: s.stop,
            provider,
            provider_len: n as u8,
        };
        if self.log.try_send(LogRecord::Generated(tap)).is_err() {
            self.counters.log_lost.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Wraps the scheduler's output: every note message sent is also reported to the input thread,
/// so that our own notes echoed back by a routing loop never enter a prompt.
struct EchoTap {
    inner: Box<dyn MidiOut>,
    echo: Sender<RawMidi>,
}

impl MidiOut for EchoTap {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        self.inner.send(at, bytes);
        if matches!(bytes.first(), Some(s) if (0x80..0xA0).contains(s)) {
            // Stamp with the send time: that is when an echo would start its way back.
            let _ = self
                .echo
                .try_send(RawMidi::new(clock::now(), PortRole::Notes, bytes));
        }
    }
}

/// Optional extra outlets of a live engine.
#[derive(Default)]
pub struct LiveHooks {
    /// Receives the human's notes as they arrive, when `midi.thru` is on.
    pub thru: Option<Box<dyn MidiOut>>,
    /// Receives a copy of every scheduler lifecycle record (from the log thread; full = skipped).
    pub events: Option<Sender<SchedulerEvent>>,
    /// Receives every session event record, on the log thread (e.g. a
    /// [`crate::log::LogFile::sink`] for `--log`).
    pub log: Option<RecordSink>,
}

/// The running engine. Feed it MIDI through [`Live::input`]; stop it with [`Live::shutdown`].
pub struct Live {
    input_tx: Sender<RawMidi>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    input_thread: Option<JoinHandle<InputCounters>>,
    worker: Option<Worker>,
    scheduler: Option<SchedulerThread>,
    control: Sender<SchedulerMsg>,
    log_thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Starts the input, worker, scheduler and log threads. `out` receives our notes (already
    /// timed: each message is sent at its instant); `hooks` adds the thru output and an event tap.
    pub fn start(
        cfg: &Config,
        generator: Box<dyn Generator>,
        out: Box<dyn MidiOut>,
        hooks: LiveHooks,
    ) -> Result<Live, EngineError> {
        let LiveHooks {
            thru,
            events: tap,
            log: sink,
        } = hooks;
        let thread_err = |thread| move |source| EngineError::Thread { thread, source };
        let (input_tx, input_rx) = bounded::<RawMidi>(INPUT_QUEUE);
        let (echo_tx, echo_rx) = bounded::<RawMidi>(ECHO_QUEUE);
        let (control_tx, control_rx) = bounded::<SchedulerMsg>(CONTROL_QUEUE);
        let (report_tx, report_rx) = bounded::<WorkerReport>(cfg.generation.queue_capacity + 4);
        let (log_tx, log_rx) = bounded::<LogRecord>(LOG_QUEUE);
        let (queue, jobs_rx) = JobQueue::new(cfg.generation.queue_capacity);
        let epoch = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());

        let generator = Box::new(StatsTap {
            inner: generator,
            log: log_tx.clone(),
            counters: counters.clone(),
        });
        let worker = Worker::spawn(
            generator,
            jobs_rx,
            report_tx,
            epoch.clone(),
            WorkerOptions::live(cfg.generation.deadline_margin_ms),
        )
        .map_err(thread_err("aria-worker"))?;
        let scheduler = SchedulerThread::spawn(
            Scheduler::new(cfg),
            control_rx,
            report_rx,
            Box::new(EchoTap {
                inner: out,
                echo: echo_tx,
            }),
        )
        .map_err(thread_err("aria-scheduler"))?;

        let log_thread = {
            let events = scheduler.events();
            let mut state = LogState::new(cfg, clock::now(), counters.clone(), sink);
            std::thread::Builder::new()
                .name("aria-log".into())
                .spawn(move || log_loop(log_rx, events, &mut state, tap))
                .map_err(thread_err("aria-log"))?
        };

        let input_thread = {
            let mut processor = InputProcessor::new(cfg);
            let control = control_tx.clone();
            let stop = stop.clone();
            let counters = counters.clone();
            let mut thru = if cfg.midi.thru { thru } else { None };
            std::thread::Builder::new()
                .name("aria-input".into())
                .spawn(move || {
                    let mut ctx = InputContext {
                        control,
                        queue,
                        epoch,
                        log: log_tx,
                        counters,
                    };
                    input_loop(
                        &mut processor,
                        &input_rx,
                        &echo_rx,
                        &stop,
                        &mut ctx,
                        &mut thru,
                    );
                    processor.counters()
                })
                .map_err(thread_err("aria-input"))?
        };

        Ok(Live {
            input_tx,
            stop,
            counters,
            input_thread: Some(input_thread),
            worker: Some(worker),
            scheduler: Some(scheduler),
            control: control_tx,
            log_thread: Some(log_thread),
        })
    }

    /// The sender port adapters hand raw messages to (`try_send`: never block a driver thread).
    pub fn input(&self) -> Sender<RawMidi> {
        self.input_tx.clone()
    }

    /// Stops every thread: the input first (no new jobs), then the scheduler (it sends note-offs
    /// for every sounding note, sustain off and All Notes Off), the worker (after the job in
    /// progress) and the log. Returns what happened.
    pub fn shutdown(mut self) -> EngineSummary {
        self.stop.store(true, Ordering::Relaxed);
        let input = self
            .input_thread
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let _ = self.control.try_send(SchedulerMsg::Shutdown);
        if let Some(s) = self.scheduler.take() {
            if s.join().is_err() {
                tracing::error!(target: "aria_bridge::engine", "the scheduler thread panicked; its notes may not have been closed");
            }
        }
        if let Some(w) = self.worker.take() {
            w.shutdown();
        }
        if let Some(h) = self.log_thread.take() {
            let _ = h.join();
        }
        let c = &self.counters;
        EngineSummary {
            input,
            jobs: c.jobs.load(Ordering::Relaxed),
            jobs_evicted: c.jobs_evicted.load(Ordering::Relaxed),
            control_refused: c.control_refused.load(Ordering::Relaxed),
            played: c.played.load(Ordering::Relaxed),
            missed: c.missed.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            log_lost: c.log_lost.load(Ordering::Relaxed),
        }
    }
}

/// What the input thread hands its actions to.
struct InputContext {
    control: Sender<SchedulerMsg>,
    queue: JobQueue,
    epoch: Arc<AtomicU32>,
    log: Sender<LogRecord>,
    counters: Arc<Counters>,
}

impl InputContext {
    fn control(&self, msg: SchedulerMsg) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.control.try_send(msg)
        {
            self.counters
                .control_refused
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn log(&self, rec: LogRecord) {
        if self.log.try_send(rec).is_err() {
            self.counters.log_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Carries out one action of the input processor. Runs on `aria-input`: only `try_send`s.
    fn act(&self, action: InputAction, thru: &mut Option<Box<dyn MidiOut>>) {
        match action {
            InputAction::Timeline(tl) => {
                // The worker reads the epoch to skip jobs whose windows will never come.
                self.epoch.store(tl.epoch, Ordering::Release);
                self.control(SchedulerMsg::Timeline(tl));
                self.log(LogRecord::Timeline(tl));
            }
            InputAction::Job(job) => {
                let (window, epoch, bar) = (job.window, job.epoch, job.bar);
                let (seed, enqueued_ns, deadline_ns) =
                    (job.params.seed, job.enqueued_ns, job.deadline_ns);
                // Expect first: a fast worker's result must find its window known.
                self.control(SchedulerMsg::Expect { window, epoch });
                self.counters.jobs.fetch_add(1, Ordering::Relaxed);
                match self.queue.push(job) {
                    Enqueued::Queued => {}
                    Enqueued::Evicted(old) | Enqueued::Refused(old) => {
                        self.counters.jobs_evicted.fetch_add(1, Ordering::Relaxed);
                        self.control(SchedulerMsg::Dropped {
                            window: old.window,
                            epoch: old.epoch,
                            reason: DropReason::QueueFull,
                        });
                        self.log(LogRecord::Evicted { bar: old.bar });
                    }
                }
                self.log(LogRecord::Enqueued {
                    bar,
                    window_bar: window.bar,
                    depth: self.queue.len(),
                    seed,
                    enqueued_ns,
                    deadline_ns,
                });
            }
            InputAction::AllNotesOff(_) => self.control(SchedulerMsg::AllNotesOff),
            InputAction::Thru { bytes, len } => {
                if let Some(t) = thru.as_mut() {
                    t.send(clock::now(), &bytes[..len as usize]);
                }
            }
            InputAction::Event(ev) => self.log(LogRecord::Input(ev)),
        }
    }
}

/// The `aria-input` loop: waits for a message or the next tick, teaches the echo filter what we
/// sent, and runs the processor.
fn input_loop(
    processor: &mut InputProcessor,
    input: &Receiver<RawMidi>,
    echo: &Receiver<RawMidi>,
    stop: &AtomicBool,
    ctx: &mut InputContext,
    thru: &mut Option<Box<dyn MidiOut>>,
) {
    let mut last_tick = clock::now();
    while !stop.load(Ordering::Relaxed) {
        let msg = select! {
            recv(input) -> m => match m { Ok(m) => Some(m), Err(_) => break },
            default(TICK) => None,
        };
        for sent in echo.try_iter() {
            processor.record_sent(sent.at, sent.as_slice());
        }
        if let Some(m) = msg {
            processor.on_midi(&m, &mut |a| ctx.act(a, thru));
        }
        let now = clock::now();
        if now.saturating_sub(last_tick) >= TICK.as_nanos() as u64 {
            last_tick = now;
            processor.on_tick(now, &mut |a| ctx.act(a, thru));
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

/// What the log thread keeps between records: the session origin, the newest timeline (for
/// pulse positions), jobs awaiting their generation report, the status line, and the sink.
struct LogState {
    origin: Nanos,
    timeline: Option<Timeline>,
    pending: std::collections::VecDeque<PendingJob>,
    orphans: Vec<GenTap>,
    status: Status,
    counters: Arc<Counters>,
    sink: Option<RecordSink>,
}

impl LogState {
    fn new(cfg: &Config, origin: Nanos, counters: Arc<Counters>, sink: Option<RecordSink>) -> Self {
        let mut state = Self {
            origin,
            timeline: None,
            pending: std::collections::VecDeque::with_capacity(MAX_WINDOWS_PENDING),
            orphans: Vec::with_capacity(MAX_ORPHANS),
            status: Status::new(cfg.log.status_every_bars),
            counters,
            sink,
        };
        state.emit(origin, convert::session(cfg, "live", cfg.clock.bpm));
        state
    }

    /// Stamps `event` at `at` and hands it to the status line and the sink.
    fn emit(&mut self, at: Nanos, event: Event) {
        let t_ms = at.saturating_sub(self.origin) as f64 / 1e6;
        let pulse = self
            .timeline
            .filter(|tl| tl.running)
            .map(|tl| tl.pulse_at(at))
            .filter(|p| *p >= 0.0);
        let wall_ms = clock::now().saturating_sub(self.origin) as f64 / 1e6;
        let record = Record::new(t_ms, wall_ms, pulse, event);
        if let Some(line) = self.status.observe(&record) {
            tracing::info!(target: "aria_bridge::status", "{line}");
        }
        if let Some(sink) = self.sink.as_mut() {
            sink(&record);
        }
    }

    fn on_record(&mut self, rec: LogRecord) {
        match rec {
            LogRecord::Input(ev) => {
                if matches!(ev, InputEvent::TempoSample { .. }) {
                    tracing::trace!(target: "aria_bridge::input", ?ev);
                } else {
                    tracing::debug!(target: "aria_bridge::input", ?ev);
                }
                if let Some(e) = convert::input_event(&ev) {
                    self.emit(input_time(&ev).unwrap_or_else(clock::now), e);
                }
            }
            LogRecord::Timeline(tl) => self.timeline = Some(tl),
            LogRecord::Enqueued {
                bar,
                window_bar,
                depth,
                seed,
                enqueued_ns,
                deadline_ns,
            } => {
                tracing::debug!(target: "aria_bridge::engine", bar, window_bar, queue_depth = depth, "job enqueued");
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
            LogRecord::Evicted { bar } => {
                tracing::warn!(target: "aria_bridge::engine", bar, "job dropped: queue full (the model is slower than the music)");
            }
            LogRecord::Generated(tap) => self.on_generated(tap),
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

    fn on_scheduler_event(&mut self, ev: SchedulerEvent) {
        let c = &self.counters;
        match ev {
            SchedulerEvent::Played { .. } => {
                c.played.fetch_add(1, Ordering::Relaxed);
            }
            SchedulerEvent::Missed { .. } => {
                c.missed.fetch_add(1, Ordering::Relaxed);
            }
            SchedulerEvent::Dropped { .. } => {
                c.dropped.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
        tracing::debug!(target: "aria_bridge::scheduler", ?ev);
        // Scheduler records carry no instant; they reach this thread within a few µs.
        self.emit(clock::now(), convert::scheduler_event(&ev));
    }
}

/// Jobs the log thread remembers while they wait for the worker (queue capacity is at most 64).
const MAX_WINDOWS_PENDING: usize = 128;

/// The instant of an input record.
fn input_time(ev: &InputEvent) -> Option<Nanos> {
    Some(match *ev {
        InputEvent::Started { at, .. }
        | InputEvent::Continued { at, .. }
        | InputEvent::Stopped { at, .. }
        | InputEvent::PositionSet { at, .. }
        | InputEvent::Relocated { at, .. }
        | InputEvent::ClockLost { at, .. }
        | InputEvent::ClockResumed { at, .. }
        | InputEvent::BoundaryDetected { at, .. }
        | InputEvent::BarSkipped { at, .. }
        | InputEvent::TempoSample { at, .. }
        | InputEvent::TempoJump { at, .. }
        | InputEvent::Malformed { at, .. }
        | InputEvent::SysEx { at }
        | InputEvent::Anomaly { at, .. }
        | InputEvent::NoteOverflow { at } => at,
    })
}

/// The `aria-log` loop: the only place live records become text. Runs until both the input
/// side and the scheduler have closed their channels.
fn log_loop(
    records: Receiver<LogRecord>,
    events: Receiver<SchedulerEvent>,
    state: &mut LogState,
    tap: Option<Sender<SchedulerEvent>>,
) {
    // A closed channel is swapped for `never()` so the loop drains the other one to its end.
    let (mut records, mut events) = (records, events);
    let (mut records_open, mut events_open) = (true, true);
    while records_open || events_open {
        select! {
            recv(records) -> r => match r {
                Ok(rec) => state.on_record(rec),
                Err(_) => {
                    records_open = false;
                    records = crossbeam_channel::never();
                }
            },
            recv(events) -> e => match e {
                Ok(ev) => {
                    if let Some(t) = &tap {
                        let _ = t.try_send(ev);
                    }
                    state.on_scheduler_event(ev);
                }
                Err(_) => {
                    events_open = false;
                    events = crossbeam_channel::never();
                }
            },
        }
    }
}
