//! The worker thread around a [`Generator`]: takes jobs, survives failures and panics, returns
//! results.
//!
//! # Principal types
//! - [`run_job`] runs one job synchronously (the headless jam calls it directly, the thread
//!   below calls it per job); a generator error or panic becomes a failed
//!   [`GenerationResult`], never an unwinding worker.
//! - [`Worker`] owns the thread `aria-worker`: it receives [`GenerationJob`]s from a bounded
//!   channel, skips jobs that are stale (epoch moved on) or hopeless (deadline already passed),
//!   and reports every job's fate as a [`WorkerReport`].
//!
//! Everything here runs on the worker thread except [`Worker::spawn`] and
//! [`Worker::shutdown`], which run on the thread that owns the worker.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};

use crate::clock::timeline::SharedCarry;
use crate::engine::generator::{GenerationRequest, Generator};
use crate::engine::job::{GenerationJob, GenerationResult, Window};
use crate::Nanos;

/// Why the worker did not run a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// The job's epoch is no longer the transport's current one (Stop, Song Position jump, ...).
    StaleEpoch,
    /// The job's window had already started when the worker got to it.
    DeadlinePassed,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::StaleEpoch => "stale epoch",
            SkipReason::DeadlinePassed => "deadline passed",
        })
    }
}

/// What the worker sends back for each job it took off the queue.
#[derive(Debug)]
pub enum WorkerReport {
    /// The generator ran; `outcome` holds the notes or why there are none (error or panic).
    Finished(GenerationResult),
    /// The job was not run.
    Skipped {
        /// The human bar the job answered.
        job_bar: u64,
        /// Where its result would have played.
        window: Window,
        /// The job's epoch.
        epoch: u32,
        /// Why it was skipped.
        reason: SkipReason,
    },
}

/// A source of [`Nanos`] timestamps for the worker (live: [`crate::clock::timebase::now`]; headless: the
/// jam's virtual clock).
pub type NowFn = Arc<dyn Fn() -> Nanos + Send + Sync>;

/// How the worker treats time.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Virtual time: no deadline is passed to the generator and no job is skipped for lateness
    /// (the caller judges staleness); epochs are still checked.
    pub virtual_time: bool,
    /// Decoding stops this long before the window starts, to leave time to schedule
    /// (`generation.deadline_margin_ms`, 15 ms by default).
    pub deadline_margin: Duration,
    /// Where `started_ns`/`finished_ns` and the lateness check read the time.
    pub now: NowFn,
    /// The current epoch's carry: a job of the previous epoch for the carried window is not
    /// stale (the scheduler moves its result to where the jump landed).
    pub carry: Arc<SharedCarry>,
}

impl WorkerOptions {
    /// Live options: process clock, deadlines passed with `margin_ms` of margin.
    pub fn live(margin_ms: f64) -> Self {
        Self {
            virtual_time: false,
            deadline_margin: Duration::from_secs_f64(margin_ms.max(0.0) / 1e3),
            now: Arc::new(crate::clock::timebase::now),
            carry: Arc::default(),
        }
    }

    /// Virtual-time options: no deadlines; timestamps from `now`.
    pub fn virtual_time(now: NowFn) -> Self {
        Self {
            virtual_time: true,
            deadline_margin: Duration::ZERO,
            now,
            carry: Arc::default(),
        }
    }
}

impl std::fmt::Debug for WorkerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerOptions")
            .field("virtual_time", &self.virtual_time)
            .field("deadline_margin", &self.deadline_margin)
            .finish_non_exhaustive()
    }
}

/// The `aria-worker` thread. Dropping it (or [`Worker::shutdown`]) stops it after the job in
/// progress and joins it.
#[derive(Debug)]
pub struct Worker {
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Spawns the worker thread ("aria-worker") with a generator.
    ///
    /// The thread ends when [`Worker::shutdown`] is called, when the job channel is closed and
    /// empty, or when `results` has no receiver left.
    pub fn spawn(
        generator: Box<dyn Generator>,
        jobs: Receiver<GenerationJob>,
        results: Sender<WorkerReport>,
        current_epoch: Arc<AtomicU32>,
        opts: WorkerOptions,
    ) -> std::io::Result<Self> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let handle = std::thread::Builder::new()
            .name("aria-worker".into())
            .spawn(move || worker_loop(generator, jobs, results, current_epoch, opts, stop_rx))?;
        Ok(Self {
            stop: Some(stop_tx),
            handle: Some(handle),
        })
    }

    /// Stops the thread after the job in progress (queued jobs are left unrun) and joins it.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        // Dropping the only sender disconnects the stop channel, which the loop selects on.
        self.stop.take();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!(target: "aria_bridge::engine::worker", "worker thread panicked outside a generation");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Why a job should not run now, if it should not.
fn skip_reason(
    job: &GenerationJob,
    current_epoch: u32,
    carry: &SharedCarry,
    virtual_time: bool,
    now: Nanos,
) -> Option<SkipReason> {
    if job.epoch != current_epoch && !carry.carries(job.epoch, job.window.start_pulse) {
        Some(SkipReason::StaleEpoch)
    } else if !virtual_time && now >= job.deadline_ns {
        Some(SkipReason::DeadlinePassed)
    } else {
        None
    }
}

fn worker_loop(
    mut generator: Box<dyn Generator>,
    jobs: Receiver<GenerationJob>,
    results: Sender<WorkerReport>,
    current_epoch: Arc<AtomicU32>,
    opts: WorkerOptions,
    stop: Receiver<()>,
) {
    tracing::info!(target: "aria_bridge::engine::worker", generator = %generator.describe(), "worker started");
    loop {
        let job = select! {
            recv(stop) -> _ => break,
            recv(jobs) -> j => match j {
                Ok(j) => j,
                Err(_) => break,
            },
        };
        // A shutdown that raced with a queued job wins: check before starting a long generation.
        if stop.try_recv() == Err(crossbeam_channel::TryRecvError::Disconnected) {
            break;
        }
        let now = (opts.now)();
        let epoch = current_epoch.load(Ordering::Acquire);
        let report = match skip_reason(&job, epoch, &opts.carry, opts.virtual_time, now) {
            Some(reason) => WorkerReport::Skipped {
                job_bar: job.bar,
                window: job.window,
                epoch: job.epoch,
                reason,
            },
            None => {
                let deadline = (!opts.virtual_time).then(|| {
                    let at = crate::clock::timebase::to_instant(job.deadline_ns);
                    at.checked_sub(opts.deadline_margin).unwrap_or(at)
                });
                let now_fn = &opts.now;
                WorkerReport::Finished(run_job(&mut *generator, &job, deadline, || now_fn()))
            }
        };
        if results.send(report).is_err() {
            break;
        }
    }
    tracing::info!(target: "aria_bridge::engine::worker", "worker stopped");
}

/// Runs one job synchronously: builds the request (window right after the prompt, one bar long
/// at the job's tempo), calls the generator, and turns an error or a panic into a failed
/// outcome. `now` stamps `started_ns` and `finished_ns`.
pub fn run_job(
    generator: &mut dyn Generator,
    job: &GenerationJob,
    deadline: Option<Instant>,
    now: impl Fn() -> Nanos,
) -> GenerationResult {
    let window_len_ms = (job.window.len_pulses as f64 * job.ms_per_pulse)
        .round()
        .clamp(0.0, u32::MAX as f64) as u32;
    let request = GenerationRequest {
        prompt: &job.prompt,
        window_start_ms: job.prompt.length_ms,
        window_len_ms,
        params: job.params,
        deadline,
    };
    let started_ns = now();
    let outcome = match catch_unwind(AssertUnwindSafe(|| generator.generate(&request))) {
        Ok(Ok(generated)) => Ok(generated),
        Ok(Err(e)) => {
            tracing::warn!(target: "aria_bridge::engine::worker", bar = job.bar, error = %e, "generation failed; bar stays silent");
            Err(e.to_string())
        }
        Err(payload) => {
            let msg = panic_message(&*payload);
            tracing::error!(target: "aria_bridge::engine::worker", bar = job.bar, panic = %msg, "generator panicked; bar stays silent");
            Err(format!("generator panicked: {msg}"))
        }
    };
    GenerationResult {
        bar: job.bar,
        epoch: job.epoch,
        window: job.window,
        ms_per_pulse: job.ms_per_pulse,
        outcome,
        started_ns,
        finished_ns: now(),
    }
}

/// The text of a panic payload (`&str` or `String`; anything else is named as such).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::timeline::Carry;
    use crate::engine::generator::SamplingParams;
    use crate::music::note::Prompt;

    fn job(epoch: u32, deadline_ns: Nanos) -> GenerationJob {
        GenerationJob {
            bar: 3,
            epoch,
            prompt: Prompt::default(),
            params: SamplingParams::default(),
            window: Window {
                bar: 5,
                start_pulse: 480,
                len_pulses: 96,
            },
            ms_per_pulse: 20.833,
            deadline_ns,
            enqueued_ns: 0,
        }
    }

    #[test]
    fn stale_epoch_is_skipped_even_in_virtual_time() {
        let none = SharedCarry::default();
        assert_eq!(
            skip_reason(&job(1, 100), 2, &none, true, 0),
            Some(SkipReason::StaleEpoch)
        );
    }

    #[test]
    fn a_queued_job_for_the_window_a_jump_carries_still_runs() {
        let carry = SharedCarry::default();
        carry.store(Some(Carry {
            from_epoch: 1,
            from_pulse: 480,
            to_pulse: 0,
            to_bar: 0,
            to_len_pulses: 96,
        }));
        // job() plays at pulse 480 in epoch 1: carried into epoch 2.
        assert_eq!(skip_reason(&job(1, 100), 2, &carry, false, 50), None);
        let mut other = job(1, 100);
        other.window.start_pulse = 576;
        assert_eq!(
            skip_reason(&other, 2, &carry, false, 50),
            Some(SkipReason::StaleEpoch)
        );
        carry.store(None);
        assert_eq!(
            skip_reason(&job(1, 100), 2, &carry, false, 50),
            Some(SkipReason::StaleEpoch)
        );
    }

    #[test]
    fn passed_deadline_is_skipped_live_only() {
        let none = SharedCarry::default();
        assert_eq!(
            skip_reason(&job(1, 100), 1, &none, false, 100),
            Some(SkipReason::DeadlinePassed)
        );
        assert_eq!(skip_reason(&job(1, 100), 1, &none, false, 99), None);
        assert_eq!(skip_reason(&job(1, 100), 1, &none, true, 1_000), None);
    }
}
