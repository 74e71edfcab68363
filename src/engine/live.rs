//! The live engine: the pure parts ([`InputProcessor`], [`Scheduler`], [`run_job`]) on their
//! threads, joined by bounded channels.
//!
//! ```text
//!  port adapters --RawMidi (try_send)--> aria-input --Timeline/Expect/Dropped/AllNotesOff--> aria-scheduler --> MidiOut
//!                                          |   ^  |                                                ^     |
//!                                          |   |  +-- thru --> MidiOut (recorded as ours too)      |     |
//!                                          |   +---- messages we sent (echo filter) ---------------|-----+
//!                                          +--GenerationJob (JobQueue, evicts oldest)--> aria-worker
//!                                                                                  WorkerReport -+
//!  aria-input / aria-worker / aria-scheduler --fixed-size records--> aria-log (formats, status line, --log sink)
//!  Live::reconfigure (a config reload) --InputSettings--> aria-input, --PlaybackSettings--> aria-scheduler
//! ```
//!
//! Threads: `aria-input` parses and follows the clock (never blocks: every hand-off is a
//! `try_send`), `aria-worker` runs the model, `aria-scheduler` sends each note at its instant,
//! `aria-log` is the only one that formats text. The headless jam ([`crate::engine::jam`]) drives the
//! same pure parts in virtual time instead.
//!
//! [`run_job`]: crate::engine::worker::run_job

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};

use crate::clock::timeline::SharedCarry;
use crate::config::Config;
use crate::engine::generator::{Generated, GenerationRequest, Generator, GeneratorError};
use crate::engine::input::{InputAction, InputCounters, InputProcessor, InputSettings};
use crate::engine::job_queue::{Enqueued, JobQueue};
use crate::engine::scheduler::thread::{SchedulerMsg, SchedulerThread};
use crate::engine::scheduler::{DropReason, PlaybackSettings, Scheduler, SchedulerEvent};
use crate::engine::worker::{Worker, WorkerOptions, WorkerReport};
use crate::log::live::{GenTap, LiveLog, LiveRecord};
use crate::log::RecordSink;
use crate::midi::sink::MidiOut;
use crate::midi::source::{PortRole, RawMidi};
use crate::{clock, Nanos};

/// Raw messages waiting for the input thread. At 10,000 messages/s (a flood) this is 400 ms of
/// backlog; a full queue drops at the adapter and counts.
pub const INPUT_QUEUE: usize = 4096;
/// The input thread checks for clock loss at least this often.
const TICK: Duration = Duration::from_millis(2);
/// Messages we sent, waiting to teach the echo filter; a bar of dense piano is ~100 messages,
/// the sweep at Start 130.
const ECHO_QUEUE: usize = 1024;
/// Settings waiting for the input thread (a config reload; a person sends SIGHUP by hand).
const SETTINGS_QUEUE: usize = 4;
/// Control messages to the scheduler (timelines come once a beat, jobs once a bar).
const CONTROL_QUEUE: usize = 256;
/// Records waiting for the log thread: ~24 tempo/clock records a bar plus ~10 lifecycle ones,
/// so 1024 is dozens of bars if the log thread stalls on a slow disk.
const LOG_QUEUE: usize = 1024;

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

/// Wraps the generator on `aria-worker`: after each call it `try_send`s the call's
/// measurements to the log thread as a fixed-size [`GenTap`] (the worker's results go straight
/// to the scheduler thread, which must not format or log).
struct StatsTap {
    inner: Box<dyn Generator>,
    log: Sender<LiveRecord>,
    counters: Arc<Counters>,
}

impl Generator for StatsTap {
    fn generate(&mut self, request: &GenerationRequest<'_>) -> Result<Generated, GeneratorError> {
        let started_ns = clock::timebase::now();
        let result = self.inner.generate(request);
        let finished_ns = clock::timebase::now();
        let stats = result.as_ref().ok().map(|g| &g.stats);
        let tap = GenTap::new(request.params.seed, started_ns, finished_ns, stats);
        if self.log.try_send(LiveRecord::Generated(tap)).is_err() {
            self.counters.log_lost.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Wraps the scheduler's output: every channel message sent is also reported to the input
/// thread, so that our own output echoed back by a routing loop never enters a prompt.
struct EchoTap {
    inner: Box<dyn MidiOut>,
    echo: Sender<RawMidi>,
}

impl MidiOut for EchoTap {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        if matches!(bytes.first(), Some(s) if (0x80..0xF0).contains(s)) {
            // Stamped with the send instant (that is when an echo starts its way back), and
            // queued before the bytes leave, so the record is there before any echo can be.
            let _ =
                self.echo
                    .try_send(RawMidi::new(clock::timebase::now(), PortRole::Notes, bytes));
        }
        self.inner.send(at, bytes);
    }
}

/// Optional extra outlets of a live engine.
#[derive(Default)]
pub struct LiveHooks {
    /// Receives the human's notes as they arrive, while `midi.thru` is on (it may be turned on
    /// and off by a config reload, and off by a routing loop).
    pub thru: Option<Box<dyn MidiOut>>,
    /// Silence every key of the output channel when the engine starts and at every Start
    /// ([`crate::engine::scheduler::Scheduler::clear_output`]): for a port a crashed instance
    /// may have left notes hanging on. Off for a recording (a headless session file).
    pub sweep: bool,
    /// How the output and the note input are named (as the backend lists them, with what they
    /// connect to), for the routing-loop warning; `None`: "the output" and "the input".
    pub port_names: Option<(String, String)>,
    /// Receives a copy of every scheduler lifecycle record (from the log thread; full = skipped).
    pub events: Option<Sender<SchedulerEvent>>,
    /// Receives every session event record, on the log thread (e.g. a
    /// [`crate::log::LogFile::sink`] for `--log`).
    pub log: Option<RecordSink>,
}

/// The running engine. Feed it MIDI through [`Live::input`]; stop it with [`Live::shutdown`].
pub struct Live {
    input_tx: Sender<RawMidi>,
    settings: Sender<InputSettings>,
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
            sweep,
            port_names,
            events: tap,
            log: sink,
        } = hooks;
        let thread_err = |thread| move |source| EngineError::Thread { thread, source };
        let (input_tx, input_rx) = bounded::<RawMidi>(INPUT_QUEUE);
        let (echo_tx, echo_rx) = bounded::<RawMidi>(ECHO_QUEUE);
        let (settings_tx, settings_rx) = bounded::<InputSettings>(SETTINGS_QUEUE);
        let (control_tx, control_rx) = bounded::<SchedulerMsg>(CONTROL_QUEUE);
        let (report_tx, report_rx) = bounded::<WorkerReport>(cfg.generation.queue_capacity + 4);
        let (log_tx, log_rx) = bounded::<LiveRecord>(LOG_QUEUE);
        let (queue, jobs_rx) = JobQueue::new(cfg.generation.queue_capacity);
        let epoch = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());

        let generator = Box::new(StatsTap {
            inner: generator,
            log: log_tx.clone(),
            counters: counters.clone(),
        });
        let carry = Arc::new(SharedCarry::default());
        let worker = Worker::spawn(
            generator,
            jobs_rx,
            report_tx,
            epoch.clone(),
            WorkerOptions {
                carry: carry.clone(),
                ..WorkerOptions::live(cfg.generation.deadline_margin_ms)
            },
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
        if sweep {
            // The output is open: whatever a crashed predecessor left sounding stops now.
            let _ = control_tx.try_send(SchedulerMsg::ClearOutput);
        }

        let log_thread = {
            let events = scheduler.events();
            let counters = counters.clone();
            let mut state = LiveLog::new(cfg, clock::timebase::now(), sink);
            if let Some((output, input)) = port_names {
                state.name_ports(output, input);
            }
            std::thread::Builder::new()
                .name("aria-log".into())
                .spawn(move || log_loop(log_rx, events, &mut state, &counters, tap))
                .map_err(thread_err("aria-log"))?
        };

        let input_thread = {
            let mut processor = InputProcessor::new(cfg);
            let control = control_tx.clone();
            let stop = stop.clone();
            let counters = counters.clone();
            let mut thru = thru;
            std::thread::Builder::new()
                .name("aria-input".into())
                .spawn(move || {
                    let mut ctx = InputContext {
                        control,
                        queue,
                        epoch,
                        carry,
                        log: log_tx,
                        counters,
                        sweep,
                    };
                    let queues = InputQueues {
                        input: input_rx,
                        echo: echo_rx,
                        settings: settings_rx,
                    };
                    input_loop(&mut processor, &queues, &stop, &mut ctx, &mut thru);
                    // Notes the player still holds were opened on the synth by thru: close them
                    // (on their own channels) before the ports go.
                    processor.close_thru(clock::timebase::now(), &mut |a| ctx.act(a, &mut thru));
                    processor.counters()
                })
                .map_err(thread_err("aria-input"))?
        };

        let priority = cfg.playback.realtime_priority;
        if priority > 0 {
            promote_logged("aria-scheduler", priority, scheduler.promote(priority));
            promote_logged(
                "aria-input",
                priority,
                crate::engine::realtime::promote(&input_thread, priority),
            );
        }

        Ok(Live {
            input_tx,
            settings: settings_tx,
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

    /// Applies the settings of `cfg` that can change while running (see
    /// [`crate::engine::reload`]): the input side's ([`InputSettings`]) from its next message,
    /// the scheduler's ([`PlaybackSettings`]) from its next wake-up. Everything else in `cfg` is
    /// ignored. Non-blocking; false when a queue refused (the engine is stopping, or reloads
    /// come faster than a few a millisecond).
    pub fn reconfigure(&self, cfg: &Config) -> bool {
        let input = self
            .settings
            .try_send(InputSettings::from_config(cfg))
            .is_ok();
        let playback = self
            .control
            .try_send(SchedulerMsg::Playback(PlaybackSettings::from_config(cfg)))
            .is_ok();
        input && playback
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
                tracing::error!(target: "aria_bridge::engine::live", "the scheduler thread panicked; its notes may not have been closed");
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

/// Logs the outcome of a real-time promotion (on the starting thread, never a real-time one).
/// The first refusal in a process is a warning with the fix; later ones (the same cause, for the
/// next thread) are debug lines.
pub fn promote_logged(
    thread: &str,
    priority: u8,
    result: Result<(), crate::engine::realtime::RealtimeError>,
) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    match result {
        Ok(()) => {
            tracing::info!(target: "aria_bridge::engine::live", thread, priority, "real-time priority (SCHED_FIFO)")
        }
        Err(e) if !WARNED.swap(true, Ordering::Relaxed) => {
            tracing::warn!(target: "aria_bridge::engine::live", thread, "staying time-shared: {e}")
        }
        Err(e) => {
            tracing::debug!(target: "aria_bridge::engine::live", thread, "staying time-shared: {e}")
        }
    }
}

/// What the input thread hands its actions to.
struct InputContext {
    control: Sender<SchedulerMsg>,
    queue: JobQueue,
    epoch: Arc<AtomicU32>,
    carry: Arc<SharedCarry>,
    log: Sender<LiveRecord>,
    counters: Arc<Counters>,
    /// Pass [`InputAction::ClearOutput`] on to the scheduler ([`LiveHooks::sweep`]).
    sweep: bool,
}

/// What the input thread reads.
struct InputQueues {
    input: Receiver<RawMidi>,
    echo: Receiver<RawMidi>,
    settings: Receiver<InputSettings>,
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

    fn log(&self, rec: LiveRecord) {
        if self.log.try_send(rec).is_err() {
            self.counters.log_lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Carries out one action of the input processor. Runs on `aria-input`: only `try_send`s.
    fn act(&self, action: InputAction, thru: &mut Option<Box<dyn MidiOut>>) {
        match action {
            InputAction::Timeline(tl) => {
                // The worker reads the epoch to skip jobs whose windows will never come (the
                // carry first: a reader that sees the new epoch sees its carry too).
                self.carry.store(tl.carry);
                self.epoch.store(tl.epoch, Ordering::Release);
                self.control(SchedulerMsg::Timeline(tl));
                self.log(LiveRecord::Timeline(tl));
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
                        self.log(LiveRecord::Evicted { bar: old.bar });
                    }
                }
                self.log(LiveRecord::Enqueued {
                    bar,
                    window_bar: window.bar,
                    depth: self.queue.len(),
                    seed,
                    enqueued_ns,
                    deadline_ns,
                });
            }
            InputAction::AllNotesOff(_) => self.control(SchedulerMsg::AllNotesOff),
            InputAction::ClearOutput => {
                if self.sweep {
                    self.control(SchedulerMsg::ClearOutput);
                }
            }
            InputAction::Thru { bytes, len } => {
                if let Some(t) = thru.as_mut() {
                    t.send(clock::timebase::now(), &bytes[..len as usize]);
                }
            }
            InputAction::Event(ev) => self.log(LiveRecord::Input(ev)),
        }
    }
}

/// The `aria-input` loop: waits for a message or the next tick, takes new settings, teaches the
/// echo filter what we sent, and runs the processor.
fn input_loop(
    processor: &mut InputProcessor,
    q: &InputQueues,
    stop: &AtomicBool,
    ctx: &mut InputContext,
    thru: &mut Option<Box<dyn MidiOut>>,
) {
    let mut last_tick = clock::timebase::now();
    while !stop.load(Ordering::Relaxed) {
        let msg = select! {
            recv(q.input) -> m => match m { Ok(m) => Some(m), Err(_) => break },
            default(TICK) => None,
        };
        for s in q.settings.try_iter() {
            processor.reconfigure(&s, clock::timebase::now(), &mut |a| ctx.act(a, thru));
        }
        for sent in q.echo.try_iter() {
            processor.record_sent(sent.at, sent.as_slice());
        }
        if let Some(m) = msg {
            processor.on_midi(&m, &mut |a| ctx.act(a, thru));
        }
        let now = clock::timebase::now();
        if now.saturating_sub(last_tick) >= TICK.as_nanos() as u64 {
            last_tick = now;
            processor.on_tick(now, &mut |a| ctx.act(a, thru));
        }
    }
}

/// The `aria-log` loop: the only place live records become text. Runs until both the input
/// side and the scheduler have closed their channels.
fn log_loop(
    records: Receiver<LiveRecord>,
    events: Receiver<SchedulerEvent>,
    state: &mut LiveLog,
    counters: &Counters,
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
                    let n = match ev {
                        SchedulerEvent::Played { .. } => Some(&counters.played),
                        SchedulerEvent::Missed { .. } => Some(&counters.missed),
                        SchedulerEvent::Dropped { .. } => Some(&counters.dropped),
                        _ => None,
                    };
                    if let Some(n) = n {
                        n.fetch_add(1, Ordering::Relaxed);
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
