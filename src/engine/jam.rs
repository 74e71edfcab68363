//! The headless jam: no DAW, an internal clock plays a human MIDI part through the engine and the
//! session (human + generated parts, tempo, meter, a marker per missed or dropped bar) is kept.
//!
//! Two ways to run it:
//! - [`run_virtual`] (the default): a discrete-event loop in virtual time drives the very same
//!   [`InputProcessor`], [`run_job`] and [`Scheduler`] as the live engine. It runs as fast as the
//!   generator allows. Each generation costs, in virtual time, what it cost on the wall clock
//!   (or a fixed assumed latency), so a model too slow for the tempo misses bars here exactly as
//!   it would live; with a fixed latency and a seed, a jam is reproducible bit for bit.
//! - [`run_realtime`]: the live engine ([`crate::engine::live::Live`]) on its threads, fed by the
//!   internal clock on the wall clock.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::internal::{self, Script};
use crate::clock::meter::TimeSignature;
use crate::config::Config;
use crate::engine::generator::{GenerationStats, Generator};
use crate::engine::input::{InputAction, InputProcessor};
use crate::engine::job::GenerationJob;
use crate::engine::live::{EngineError, EngineSummary, Live, LiveHooks};
use crate::engine::scheduler::{DropReason, Scheduler, SchedulerEvent};
use crate::engine::worker::run_job;
use crate::log::{convert, Event, Record, RecordSink};
use crate::midi::sink::{MidiOut, Recorder};
use crate::midi::smf::{BarMark, TimedMessage};
use crate::Nanos;

/// Virtual instant of pulse 0: one second in, so the Start before it is not at a negative time.
const ORIGIN: Nanos = 1_000_000_000;

/// How a jam runs.
#[derive(Clone, Debug)]
pub struct JamOptions {
    /// Tempo of the internal clock, BPM.
    pub bpm: f64,
    /// Bars of clock after the human part ends, so the answers to its last bars play
    /// (2: the answer to bar k plays in bar k+2).
    pub tail_bars: u64,
    /// Count every generation as taking exactly this long (virtual time only); `None` = the
    /// wall-clock time it really took.
    pub assume_latency: Option<Duration>,
}

/// One generation as the jam saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct BarReport {
    /// The human bar answered.
    pub bar: u64,
    /// The window bar it was meant for.
    pub window_bar: u64,
    /// Virtual (or live) latency from the worker taking the job to its result, ms.
    pub latency_ms: f64,
    /// Time from the result to the window start, ms (negative: late).
    pub slack_ms: f64,
    /// The generator's measurements; `None` when it failed.
    pub stats: Option<GenerationStats>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What a jam produced.
#[derive(Clone, Debug, Default)]
pub struct JamOutcome {
    /// Instant of pulse 0 in the recording's timebase.
    pub origin: Nanos,
    /// The human part as fed to the engine.
    pub human: Vec<(Nanos, [u8; 3], u8)>,
    /// What the engine played.
    pub ai: Vec<(Nanos, [u8; 3], u8)>,
    /// Missed and dropped bars, in order.
    pub marks: Vec<BarMark>,
    /// Every generation that ran (virtual jams only).
    pub generations: Vec<BarReport>,
    /// Windows that played their own result (or late-joined).
    pub played: u64,
    /// Bars of clock the jam ran.
    pub bars: u64,
    /// Note-ons sent without their note-off at the end (must be 0).
    pub hanging_notes: usize,
    /// The session event log, in order (the lines `--log` writes; see [`crate::log`]).
    pub events: Vec<Record>,
}

/// Stamps the virtual jam's records: session time from pulse 0, wall time from the jam's start.
struct Stamper {
    wall: Instant,
}

impl Stamper {
    fn record(&self, now: Nanos, pulse: f64, event: Event) -> Record {
        Record::new(
            (now as f64 - ORIGIN as f64) / 1e6,
            self.wall.elapsed().as_secs_f64() * 1e3,
            (pulse >= 0.0 && pulse.is_finite()).then_some(pulse),
            event,
        )
    }
}

/// Pulses to play: the human part plus `tail_bars`, rounded up to whole bars. The Stop that
/// follows the last clock falls on the instant the last bar ends.
fn pulses_for(cfg: &Config, human: &[TimedMessage], bpm: f64, tail_bars: u64) -> (u64, u64) {
    let meter = crate::engine::input::meter_of(cfg);
    let ms_per_pulse = 60_000.0 / (bpm * crate::PPQN as f64);
    let last_ms = human.iter().map(|m| m.at_ms).fold(0.0, f64::max);
    let last_pulse = (last_ms / ms_per_pulse).floor() as u64;
    let (last_bar, _) = meter.bar_at(last_pulse);
    let bars = last_bar + 1 + tail_bars;
    (meter.bar_start(bars), bars)
}

/// Is this a channel message of the human part (kept in the session file)?
fn is_channel_message(bytes: &[u8]) -> bool {
    matches!(bytes.first(), Some(&s) if (0x80..0xF0).contains(&s))
}

/// Turns scheduler records into session markers and counts.
fn note_event(ev: SchedulerEvent, out: &mut JamOutcome, late: &mut Vec<(u64, f64)>) {
    match ev {
        SchedulerEvent::Missed { bar, .. } => out.marks.push(BarMark::Missed {
            bar,
            late_by_ms: None,
        }),
        SchedulerEvent::Late {
            bar, late_by_ms, ..
        } => late.push((bar, late_by_ms)),
        SchedulerEvent::Dropped { bar, reason } => out.marks.push(BarMark::Dropped { bar, reason }),
        SchedulerEvent::Played { source, .. }
            if source != crate::engine::scheduler::PlaySource::RepeatLast =>
        {
            out.played += 1
        }
        _ => {}
    }
}

/// Fills in how late each missed bar's result came, once known.
fn settle_marks(out: &mut JamOutcome, late: &[(u64, f64)]) {
    for m in &mut out.marks {
        if let BarMark::Missed { bar, late_by_ms } = m {
            if let Some(&(_, ms)) = late.iter().find(|(b, _)| b == bar) {
                *late_by_ms = Some(ms);
            }
        }
    }
}

/// Runs a jam in virtual time. `progress(done, total)` is called once per bar.
pub fn run_virtual(
    cfg: &Config,
    human: &[TimedMessage],
    generator: &mut dyn Generator,
    opts: &JamOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> JamOutcome {
    let (pulses, bars) = pulses_for(cfg, human, opts.bpm, opts.tail_bars);
    let script = Script::new(opts.bpm, ORIGIN, pulses, human);
    let mut processor = InputProcessor::new(cfg);
    let mut scheduler = Scheduler::new(cfg);
    let mut rec = Recorder::default();
    let mut out = JamOutcome {
        origin: ORIGIN,
        bars,
        ..JamOutcome::default()
    };
    let mut late = Vec::new();
    let capacity = cfg.generation.queue_capacity;
    let mut queue: VecDeque<GenerationJob> = VecDeque::with_capacity(capacity);
    // The job in progress: (virtual finish instant, its result).
    let mut busy: Option<(Nanos, crate::engine::job::GenerationResult)> = None;
    let mut epoch = 0u32;
    let mut wake: Option<Nanos> = None;
    let mut next_msg = 0usize;
    let mut actions: Vec<InputAction> = Vec::new();
    let mut last_bar_reported = u64::MAX;
    let meter = crate::engine::input::meter_of(cfg);
    let stamp = Stamper {
        wall: Instant::now(),
    };
    // The header goes first in time too: the Start message comes before pulse 0.
    let first_at = script.messages.first().map_or(ORIGIN, |m| m.at.min(ORIGIN));
    out.events
        .push(stamp.record(first_at, -1.0, convert::session(cfg, "virtual", opts.bpm)));

    loop {
        let t_msg = script.messages.get(next_msg).map(|m| m.at);
        let t_fin = busy.as_ref().map(|b| b.0);
        let Some(now) = [t_msg, t_fin, wake].into_iter().flatten().min() else {
            break;
        };

        // At equal instants a result lands first, then due sends, then the input message.
        if t_fin == Some(now) {
            let (_, result) = busy.take().expect("a job is in progress");
            let window_at = scheduler
                .timeline()
                .time_of(result.window.start_pulse as f64);
            let slack_ms = (window_at as f64 - now as f64) / 1e6;
            let latency_ms = (result.finished_ns - result.started_ns) as f64 / 1e6;
            let pulse = scheduler.timeline().pulse_at(now);
            let (bar, window_bar) = (result.bar, result.window.bar);
            let stats = result
                .outcome
                .as_ref()
                .map(|g| &g.stats)
                .map_err(|e| e.as_str());
            out.events.push(stamp.record(
                now,
                pulse,
                convert::generated(bar, window_bar, latency_ms, stats),
            ));
            out.events.push(stamp.record(
                now,
                pulse,
                Event::ResultReady {
                    bar,
                    window_bar,
                    slack_ms,
                },
            ));
            out.generations.push(BarReport {
                bar: result.bar,
                window_bar: result.window.bar,
                latency_ms: (result.finished_ns - result.started_ns) as f64 / 1e6,
                slack_ms,
                stats: result.outcome.as_ref().ok().map(|g| g.stats.clone()),
                error: result.outcome.as_ref().err().cloned(),
            });
            scheduler.on_result(result, now);
        } else if t_msg == Some(now) {
            let msg = script.messages[next_msg];
            next_msg += 1;
            if is_channel_message(msg.as_slice()) {
                out.human.push((msg.at, msg.bytes, msg.len));
            }
            processor.on_midi(&msg, &mut |a| actions.push(a));
            processor.on_tick(now, &mut |a| actions.push(a));
            let pulse = processor.timeline().pulse_at(now);
            for action in actions.drain(..) {
                match action {
                    InputAction::Timeline(tl) => {
                        epoch = tl.epoch;
                        scheduler.on_timeline(tl, now, &mut rec);
                    }
                    InputAction::Job(job) => {
                        scheduler.expect(job.window, job.epoch);
                        if queue.len() >= capacity {
                            if let Some(old) = queue.pop_front() {
                                scheduler.dropped(old.window, old.epoch, DropReason::QueueFull);
                            }
                        }
                        let (bar, window_bar) = (job.bar, job.window.bar);
                        queue.push_back(job);
                        out.events.push(stamp.record(
                            now,
                            pulse,
                            Event::Enqueued {
                                bar,
                                window_bar,
                                queue_depth: queue.len() as u32,
                            },
                        ));
                    }
                    InputAction::AllNotesOff(_) => scheduler.all_notes_off(now, &mut rec),
                    // A session file has no predecessor that could have left a note hanging.
                    InputAction::ClearOutput => {}
                    InputAction::Event(ev) => {
                        if let Some(e) = convert::input_event(&ev) {
                            out.events.push(stamp.record(now, pulse, e));
                        }
                    }
                    InputAction::Thru { .. } => {}
                }
            }
            let bar = meter
                .bar_at(processor.timeline().pulse_at(now).max(0.0) as u64)
                .0;
            if bar != last_bar_reported {
                last_bar_reported = bar;
                progress(bar.min(bars), bars);
            }
        }

        // The worker takes the next job the moment it is free, like the live worker thread.
        while busy.is_none() {
            let Some(job) = queue.pop_front() else { break };
            if job.epoch != epoch {
                scheduler.dropped(job.window, job.epoch, DropReason::StaleEpoch);
                continue;
            }
            if now >= job.deadline_ns {
                scheduler.dropped(job.window, job.epoch, DropReason::DeadlinePassed);
                continue;
            }
            out.events.push(stamp.record(
                now,
                scheduler.timeline().pulse_at(now),
                Event::GenerationStarted {
                    bar: job.bar,
                    window_bar: job.window.bar,
                    queue_wait_ms: now.saturating_sub(job.enqueued_ns) as f64 / 1e6,
                },
            ));
            let wall = Instant::now();
            let mut result = run_job(generator, &job, None, || now);
            let cost = opts.assume_latency.unwrap_or_else(|| wall.elapsed());
            // A generation always costs at least 1 ns, so its result lands after its job.
            let finish = now + (cost.as_nanos() as Nanos).max(1);
            result.started_ns = now;
            result.finished_ns = finish;
            busy = Some((finish, result));
        }

        // What we play is not recorded as sent: no port carries it back to the input here, so
        // nothing the human plays can be an echo of it.
        wake = scheduler.poll(now, &mut rec);
        let pulse = scheduler.timeline().pulse_at(now);
        scheduler.drain_events(|ev| {
            out.events
                .push(stamp.record(now, pulse, convert::scheduler_event(&ev)));
            note_event(ev, &mut out, &mut late)
        });
        // A stopped transport schedules nothing more; leave once the script is over.
        if next_msg >= script.messages.len() && busy.is_none() && wake.is_none() {
            break;
        }
    }
    let end = script.end();
    scheduler.all_notes_off(end, &mut rec);
    let pulse = scheduler.timeline().pulse_at(end);
    scheduler.drain_events(|ev| {
        out.events
            .push(stamp.record(end, pulse, convert::scheduler_event(&ev)));
        note_event(ev, &mut out, &mut late)
    });
    settle_marks(&mut out, &late);
    out.hanging_notes = scheduler.sounding_notes().max(rec.hanging_notes());
    out.ai = rec.events;
    progress(bars, bars);
    out
}

/// A sink that keeps what the live scheduler sends, for the session file. The lock is taken by
/// the scheduler thread and, only after the jam, by the caller: the worker never touches it.
#[derive(Clone, Default)]
struct SharedRecorder(Arc<Mutex<Recorder>>);

impl MidiOut for SharedRecorder {
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        if let Ok(mut r) = self.0.lock() {
            r.send(at, bytes);
        }
    }
}

/// Runs a jam on the wall clock with the live engine's threads. Blocks for the length of the
/// performance.
pub fn run_realtime(
    cfg: &Config,
    human: &[TimedMessage],
    generator: Box<dyn Generator>,
    opts: &JamOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(JamOutcome, EngineSummary), EngineError> {
    run_realtime_logged(cfg, human, generator, opts, progress, None)
}

/// [`run_realtime`], also handing every event record to `log` (on the engine's log thread).
/// The records are kept in [`JamOutcome::events`] either way.
pub fn run_realtime_logged(
    cfg: &Config,
    human: &[TimedMessage],
    generator: Box<dyn Generator>,
    opts: &JamOptions,
    progress: &mut dyn FnMut(u64, u64),
    mut log: Option<RecordSink>,
) -> Result<(JamOutcome, EngineSummary), EngineError> {
    // The log thread pushes here; the lock is free again once the engine has shut down.
    let records: Arc<Mutex<Vec<Record>>> = Arc::default();
    let keep = records.clone();
    let sink: RecordSink = Box::new(move |r: &Record| {
        if let Some(l) = log.as_mut() {
            l(r);
        }
        if let Ok(mut v) = keep.lock() {
            v.push(r.clone());
        }
    });
    let (pulses, bars) = pulses_for(cfg, human, opts.bpm, opts.tail_bars);
    let script = Script::new(opts.bpm, ORIGIN, pulses, human);
    let recorder = SharedRecorder::default();
    let (tap_tx, tap_rx) = crossbeam_channel::bounded(4096);
    let hooks = LiveHooks {
        thru: None,
        events: Some(tap_tx),
        log: Some(sink),
        ..LiveHooks::default()
    };
    let live = Live::start(cfg, generator, Box::new(recorder.clone()), hooks)?;
    let input = live.input();
    let stop = AtomicBool::new(false);
    let mut human_rec = Vec::new();
    let mut clocks = 0u64;
    let ppb =
        TimeSignature::parse(&cfg.clock.time_signature).map_or(96, |s| s.pulses_per_bar()) as u64;
    let (shift, _refused) = internal::play(
        &script,
        &input,
        &mut |m| {
            if is_channel_message(m.as_slice()) {
                human_rec.push((m.at, m.bytes, m.len));
            } else if m.bytes[0] == 0xF8 {
                clocks += 1;
                if clocks.is_multiple_of(ppb) {
                    progress((clocks / ppb).min(bars), bars);
                }
            }
        },
        &stop,
    );
    // The Stop at the script's end has closed every note; give the threads a moment to say so.
    std::thread::sleep(Duration::from_millis(50));
    let summary = live.shutdown();
    let rec = recorder.0.lock().map(|r| r.clone()).unwrap_or_default();
    let mut outcome = JamOutcome {
        origin: ORIGIN + shift,
        human: human_rec,
        hanging_notes: rec.hanging_notes(),
        ai: rec.events,
        bars,
        ..JamOutcome::default()
    };
    let mut late = Vec::new();
    for ev in tap_rx.try_iter() {
        note_event(ev, &mut outcome, &mut late);
    }
    settle_marks(&mut outcome, &late);
    outcome.events = std::mem::take(&mut *records.lock().unwrap_or_else(|e| e.into_inner()));
    progress(bars, bars);
    Ok((outcome, summary))
}
