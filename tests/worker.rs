//! The worker: survives failures, skips stale and hopeless jobs, passes deadlines live only.

mod support;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use aria_bridge::clock;
use aria_bridge::engine::worker::{run_job, SkipReason, Worker, WorkerOptions, WorkerReport};
use crossbeam_channel::{bounded, Receiver};
use support::{job, note, ScriptedGenerator, Step};

/// Far enough ahead that no live test job is late.
fn far() -> u64 {
    clock::timebase::now() + 60_000_000_000
}

fn recv(rx: &Receiver<WorkerReport>) -> WorkerReport {
    rx.recv_timeout(Duration::from_secs(10))
        .expect("worker report within 10 s")
}

fn finished(r: WorkerReport) -> aria_bridge::engine::job::GenerationResult {
    match r {
        WorkerReport::Finished(r) => r,
        other => panic!("expected a finished job, got {other:?}"),
    }
}

#[test]
fn the_worker_survives_an_error_and_a_panic_and_runs_the_next_jobs() {
    let generator = ScriptedGenerator::new().with_script([
        Step::Fail,
        Step::Panic("decoder exploded"),
        Step::Notes(vec![note(62, 0, 50)]),
    ]);
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let epoch = Arc::new(AtomicU32::new(1));
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        epoch,
        WorkerOptions::live(15.0),
    )
    .unwrap();
    for bar in 0..3 {
        job_tx.send(job(bar, 1, far())).unwrap();
    }
    let a = finished(recv(&res_rx));
    assert_eq!(a.bar, 0);
    assert!(a.outcome.unwrap_err().contains("scripted failure"));
    let b = finished(recv(&res_rx));
    assert_eq!(b.bar, 1);
    assert!(b.outcome.unwrap_err().contains("decoder exploded"));
    let c = finished(recv(&res_rx));
    assert_eq!(c.bar, 2);
    assert_eq!(c.outcome.unwrap().notes, vec![note(62, 0, 50)]);
    w.shutdown();
}

#[test]
fn jobs_of_a_stale_epoch_are_skipped_and_reported() {
    let generator = ScriptedGenerator::new();
    let seen = generator.seen();
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let epoch = Arc::new(AtomicU32::new(2));
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        epoch,
        WorkerOptions::live(15.0),
    )
    .unwrap();
    job_tx.send(job(5, 1, far())).unwrap();
    job_tx.send(job(6, 2, far())).unwrap();
    match recv(&res_rx) {
        WorkerReport::Skipped {
            job_bar,
            window,
            epoch,
            reason,
        } => {
            assert_eq!((job_bar, window.bar, epoch), (5, 7, 1));
            assert_eq!(reason, SkipReason::StaleEpoch);
        }
        other => panic!("expected a skip, got {other:?}"),
    }
    assert_eq!(finished(recv(&res_rx)).bar, 6);
    w.shutdown();
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the stale job never reached the model"
    );
}

#[test]
fn a_job_whose_deadline_has_passed_is_skipped_live() {
    let generator = ScriptedGenerator::new();
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::live(15.0),
    )
    .unwrap();
    job_tx.send(job(3, 1, clock::timebase::now())).unwrap();
    assert!(matches!(
        recv(&res_rx),
        WorkerReport::Skipped {
            reason: SkipReason::DeadlinePassed,
            ..
        }
    ));
    w.shutdown();
}

#[test]
fn a_job_queued_behind_a_slow_one_past_its_deadline_is_skipped() {
    // The first job takes 300 ms; the second's deadline is 100 ms away when queued.
    let generator = ScriptedGenerator::new().with_delay(Duration::from_millis(300));
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::live(0.0),
    )
    .unwrap();
    job_tx.send(job(0, 1, far())).unwrap();
    job_tx
        .send(job(1, 1, clock::timebase::now() + 100_000_000))
        .unwrap();
    assert_eq!(finished(recv(&res_rx)).bar, 0);
    assert!(matches!(
        recv(&res_rx),
        WorkerReport::Skipped {
            job_bar: 1,
            reason: SkipReason::DeadlinePassed,
            ..
        }
    ));
    w.shutdown();
}

#[test]
fn live_jobs_get_the_deadline_minus_the_margin() {
    let generator = ScriptedGenerator::new();
    let seen = generator.seen();
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::live(15.0),
    )
    .unwrap();
    let deadline_ns = far();
    job_tx.send(job(0, 1, deadline_ns)).unwrap();
    let r = finished(recv(&res_rx));
    assert!(r.started_ns <= r.finished_ns);
    w.shutdown();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0].deadline,
        Some(clock::timebase::to_instant(deadline_ns) - Duration::from_millis(15))
    );
}

#[test]
fn virtual_time_passes_no_deadline_and_never_skips_for_lateness() {
    let generator = ScriptedGenerator::new();
    let seen = generator.seen();
    let (job_tx, job_rx) = bounded(4);
    let (res_tx, res_rx) = bounded(4);
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::virtual_time(Arc::new(|| 7)),
    )
    .unwrap();
    // Deadline 0 is long past in any clock; virtual time leaves that to the caller.
    job_tx.send(job(0, 1, 0)).unwrap();
    let r = finished(recv(&res_rx));
    assert_eq!((r.started_ns, r.finished_ns), (7, 7));
    w.shutdown();
    assert_eq!(seen.lock().unwrap()[0].deadline, None);
}

#[test]
fn shutdown_returns_while_jobs_are_still_queued() {
    let generator = ScriptedGenerator::new().with_delay(Duration::from_millis(50));
    let (job_tx, job_rx) = bounded(8);
    let (res_tx, _res_rx) = bounded(8);
    let w = Worker::spawn(
        Box::new(generator),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::live(0.0),
    )
    .unwrap();
    for bar in 0..8 {
        job_tx.send(job(bar, 1, far())).unwrap();
    }
    w.shutdown();
    assert!(!job_tx.is_empty(), "queued jobs were left unrun");
}

#[test]
fn the_worker_ends_when_the_job_channel_closes() {
    let (job_tx, job_rx) = bounded(1);
    let (res_tx, res_rx) = bounded(1);
    let w = Worker::spawn(
        Box::new(ScriptedGenerator::new()),
        job_rx,
        res_tx,
        Arc::new(AtomicU32::new(1)),
        WorkerOptions::live(0.0),
    )
    .unwrap();
    drop(job_tx);
    // The thread drops its results sender on exit.
    assert!(res_rx.recv_timeout(Duration::from_secs(10)).is_err());
    w.shutdown();
}

#[test]
fn run_job_asks_for_one_bar_right_after_the_prompt() {
    let mut generator = ScriptedGenerator::new();
    let seen = generator.seen();
    let j = job(4, 3, 0);
    let r = run_job(&mut generator, &j, None, || 42);
    assert_eq!(
        (r.bar, r.epoch, r.window, r.started_ns),
        (4, 3, j.window, 42)
    );
    let s = seen.lock().unwrap();
    // 96 pulses x 20.833 ms = 2000 ms.
    assert_eq!((s[0].window_start_ms, s[0].window_len_ms), (4000, 2000));
    assert_eq!(s[0].seed, 4);
}

#[test]
fn run_job_turns_a_panic_into_a_failed_outcome() {
    let mut generator = ScriptedGenerator::new().with_script([Step::Panic("index out of range")]);
    let r = run_job(&mut generator, &job(0, 1, 0), None, || 0);
    let err = r.outcome.unwrap_err();
    assert!(
        err.contains("panicked") && err.contains("index out of range"),
        "{err}"
    );
}
