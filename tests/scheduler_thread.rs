//! The live shells end to end: worker -> scheduler thread -> output, and shutdown hygiene.
//! Timing is not asserted here (see the benches); only what is sent and in which order.

mod support;

use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aria_bridge::clock;
use aria_bridge::clock::timeline::Timeline;
use aria_bridge::config::Config;
use aria_bridge::engine::scheduler::thread::{SchedulerMsg, SchedulerThread};
use aria_bridge::engine::scheduler::{PlaySource, Scheduler, SchedulerEvent};
use aria_bridge::engine::worker::{Worker, WorkerOptions};
use aria_bridge::midi::sink::{MidiOut, Recorder};
use crossbeam_channel::bounded;
use support::{job, note, ScriptedGenerator, Step};

/// A recorder the test can read while the thread owns the sink.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Recorder>>);

impl MidiOut for Shared {
    fn send(&mut self, at: u64, bytes: &[u8]) {
        self.0.lock().unwrap().send(at, bytes);
    }
}

impl Shared {
    fn statuses(&self) -> Vec<(u8, u8, u8)> {
        self.0
            .lock()
            .unwrap()
            .events
            .iter()
            .map(|e| (e.1[0], e.1[1], e.1[2]))
            .collect()
    }
}

/// 2 ms per pulse: a 4/4 bar lasts 192 ms, so the test finishes quickly.
fn fast_timeline(epoch: u32, start: u64) -> Timeline {
    Timeline {
        epoch,
        running: true,
        anchor_pulse: 0.0,
        anchor_ns: start,
        ns_per_pulse: 2e6,
        carry: None,
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_worker_result_is_played_by_the_scheduler_thread_in_its_window() {
    let out = Shared::default();
    let (ctl_tx, ctl_rx) = bounded(16);
    let (job_tx, job_rx) = bounded(4);
    let (rep_tx, rep_rx) = bounded(4);
    let epoch = Arc::new(AtomicU32::new(1));
    // Notes in ms from the window start: 10-60 ms and 100-150 ms (the window lasts 192 ms).
    let generator = ScriptedGenerator::new()
        .with_script([Step::Notes(vec![note(60, 10, 60), note(64, 100, 150)])]);
    let worker = Worker::spawn(
        Box::new(generator),
        job_rx,
        rep_tx,
        epoch,
        WorkerOptions::live(1.0),
    )
    .unwrap();
    let sched = SchedulerThread::spawn(
        Scheduler::new(&Config::default()),
        ctl_rx,
        rep_rx,
        Box::new(out.clone()),
    )
    .unwrap();
    let events = sched.events();

    // Pulse 0 is 300 ms from now; human bar 1's answer plays in bar 3 (pulses 288..384).
    let start = clock::timebase::now() + 300_000_000;
    let tl = fast_timeline(1, start);
    ctl_tx.send(SchedulerMsg::Timeline(tl)).unwrap();
    let mut j = job(1, 1, tl.time_of(288.0));
    j.ms_per_pulse = 2.0;
    ctl_tx
        .send(SchedulerMsg::Expect {
            window: j.window,
            epoch: 1,
        })
        .unwrap();
    job_tx.send(j).unwrap();

    let mut seen = Vec::new();
    wait_for("the window to be played", || {
        while let Ok(e) = events.try_recv() {
            seen.push(e);
        }
        seen.iter()
            .any(|e| matches!(e, SchedulerEvent::Played { .. }))
    });
    assert!(
        matches!(
            seen[0],
            SchedulerEvent::Scheduled {
                bar: 3,
                notes: 2,
                ..
            }
        ),
        "{seen:?}"
    );
    assert!(seen.contains(&SchedulerEvent::Played {
        bar: 3,
        source: PlaySource::Result,
        notes_on: 2,
        notes_cut: 0
    }));
    worker.shutdown();
    drop(sched.join().unwrap());
    assert_eq!(
        out.statuses(),
        vec![
            (0x90, 60, 80),
            (0x80, 60, 0),
            (0x90, 64, 80),
            (0x80, 64, 0),
            (0xB0, 64, 0),
            (0xB0, 123, 0)
        ]
    );
    // Each message carries its ideal instant, computed from the timeline.
    let rec = out.0.lock().unwrap();
    assert_eq!(rec.events[0].0, tl.time_of(288.0 + 10.0 / 2.0));
}

#[test]
fn shutdown_ends_a_sounding_note_before_the_thread_exits() {
    let out = Shared::default();
    let (ctl_tx, ctl_rx) = bounded(16);
    let (rep_tx, rep_rx) = bounded(4);
    let sched = SchedulerThread::spawn(
        Scheduler::new(&Config::default()),
        ctl_rx,
        rep_rx,
        Box::new(out.clone()),
    )
    .unwrap();
    let start = clock::timebase::now();
    let tl = fast_timeline(1, start);
    ctl_tx.send(SchedulerMsg::Timeline(tl)).unwrap();
    // A bar-long note in the window of bar 1 (pulses 96..192), result sent straight in.
    let mut j = job(0, 1, 0);
    j.window = support::window(1);
    let mut generator =
        ScriptedGenerator::new().with_script([Step::Notes(vec![note(62, 0, 5_000)])]);
    let r = aria_bridge::engine::worker::run_job(&mut generator, &j, None, clock::timebase::now);
    rep_tx
        .send(aria_bridge::engine::worker::WorkerReport::Finished(r))
        .unwrap();
    wait_for("the note-on", || !out.statuses().is_empty());
    ctl_tx.send(SchedulerMsg::Shutdown).unwrap();
    drop(sched.join().unwrap());
    let s = out.statuses();
    assert_eq!(s[0], (0x90, 62, 80));
    assert!(s.contains(&(0x80, 62, 0)), "{s:?}");
    assert_eq!(&s[s.len() - 2..], &[(0xB0, 64, 0), (0xB0, 123, 0)]);
}

#[test]
fn a_job_the_worker_skips_reaches_the_scheduler_as_a_drop() {
    let (ctl_tx, ctl_rx) = bounded(16);
    let (job_tx, job_rx) = bounded(4);
    let (rep_tx, rep_rx) = bounded(4);
    // The transport is already in epoch 2 when the epoch-1 job reaches the worker.
    let worker = Worker::spawn(
        Box::new(ScriptedGenerator::new()),
        job_rx,
        rep_tx,
        Arc::new(AtomicU32::new(2)),
        WorkerOptions::live(1.0),
    )
    .unwrap();
    let sched = SchedulerThread::spawn(
        Scheduler::new(&Config::default()),
        ctl_rx,
        rep_rx,
        Box::new(Shared::default()),
    )
    .unwrap();
    let events = sched.events();
    ctl_tx
        .send(SchedulerMsg::Timeline(fast_timeline(
            1,
            clock::timebase::now() + 1_000_000_000,
        )))
        .unwrap();
    job_tx
        .send(job(4, 1, clock::timebase::now() + 60_000_000_000))
        .unwrap();
    let e = events
        .recv_timeout(Duration::from_secs(10))
        .expect("a record within 10 s");
    assert_eq!(
        e,
        SchedulerEvent::Dropped {
            bar: 6,
            reason: aria_bridge::engine::scheduler::DropReason::StaleEpoch
        }
    );
    worker.shutdown();
    drop(sched.join().unwrap());
}
