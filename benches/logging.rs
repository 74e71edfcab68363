//! What the session log adds to the input thread's per-message work: the `try_send` of
//! fixed-size records (input events, timelines, enqueued jobs) to a bounded channel, while a
//! consumer thread (like `aria-log`) turns them into JSON lines written by the `--log` writer.
//!
//! Run: `cargo bench --bench logging`. Target: <= 5 µs added at p99 per message.
//! Prints p50/p99 per message with and without logging, and of the log hand-off alone.

use std::hint::black_box;
use std::time::Instant;

use aria_bridge::config::Config;
use aria_bridge::engine::input::{InputAction, InputProcessor};
use aria_bridge::log::live::{LiveLog, LiveRecord};
use aria_bridge::log::LogFile;
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;
use criterion::{criterion_group, BatchSize, Criterion};
use crossbeam_channel::{bounded, Sender};
use hdrhistogram::Histogram;

/// 120 BPM.
const P: f64 = 20_833_333.333;
const T0: f64 = 1e9;
/// The engine's log queue.
const LOG_QUEUE: usize = 1024;

fn at(pulse: f64) -> Nanos {
    (T0 + pulse * P) as Nanos
}

fn clock(pulse: u64) -> RawMidi {
    RawMidi::new(at(pulse as f64), PortRole::Notes, &[0xF8])
}

/// The engine's hand-off of one action to the log thread (see `engine::live::InputContext::act`).
fn log_action(tx: &Sender<LiveRecord>, a: &InputAction) {
    let rec = match a {
        InputAction::Event(ev) => LiveRecord::Input(*ev),
        InputAction::Timeline(tl) => LiveRecord::Timeline(*tl),
        InputAction::Job(job) => LiveRecord::Enqueued {
            bar: job.bar,
            window_bar: job.window.bar,
            depth: 1,
            seed: job.params.seed,
            enqueued_ns: job.enqueued_ns,
            deadline_ns: job.deadline_ns,
        },
        _ => return,
    };
    let _ = black_box(tx.try_send(rec));
}

/// A log thread writing JSON lines to a temporary file; returns its sender.
fn log_thread(dir: &std::path::Path) -> (Sender<LiveRecord>, std::thread::JoinHandle<()>) {
    let (tx, rx) = bounded::<LiveRecord>(LOG_QUEUE);
    let file = LogFile::create(&dir.join("bench.jsonl")).expect("temp log file");
    let handle = std::thread::spawn(move || {
        let mut cfg = Config::default();
        cfg.log.status_every_bars = 0;
        let mut log = LiveLog::new(&cfg, 0, Some(file.sink()));
        for r in rx {
            log.on_record(r);
        }
        drop(file);
    });
    (tx, handle)
}

/// A processor that has played `bars` bars with a note every 8th and is `into_bar` pulses into
/// the next one.
fn playing(bars: u64, into_bar: u64) -> (InputProcessor, u64) {
    let mut p = InputProcessor::new(&Config::default());
    let mut out = |a: InputAction| {
        black_box(a);
    };
    p.on_midi(&RawMidi::new(at(-1.0), PortRole::Notes, &[0xFA]), &mut out);
    let total = bars * 96 + into_bar;
    for pulse in 0..total {
        p.on_midi(&clock(pulse), &mut out);
        if pulse % 12 == 0 {
            let key = 48 + (pulse / 12 % 24) as u8;
            let on = RawMidi::new(at(pulse as f64 + 0.3), PortRole::Notes, &[0x90, key, 90]);
            p.on_midi(&on, &mut out);
            let off = RawMidi::new(at(pulse as f64 + 6.2), PortRole::Notes, &[0x80, key, 0]);
            p.on_midi(&off, &mut out);
        }
    }
    (p, total)
}

fn benches_logging(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let (tx, handle) = log_thread(dir.path());
    // A beat boundary carries a tempo sample and a timeline; a bar boundary adds a job.
    let (beat, next_beat) = playing(3, 24);
    for (name, logged) in [
        ("beat clock (tempo sample), no log", false),
        ("beat clock (tempo sample), logged", true),
    ] {
        let m = clock(next_beat);
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || beat.clone(),
                |p| {
                    p.on_midi(black_box(&m), &mut |a| {
                        if logged {
                            log_action(&tx, &a);
                        }
                        black_box(a);
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    let (edge, next) = playing(3, 96);
    for (name, logged) in [
        ("boundary clock -> job, no log", false),
        ("boundary clock -> job, logged", true),
    ] {
        let m = clock(next);
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || edge.clone(),
                |p| {
                    p.on_midi(black_box(&m), &mut |a| {
                        if logged {
                            log_action(&tx, &a);
                        }
                        black_box(a);
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    drop(tx);
    let _ = handle.join();
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000_000, 3).unwrap()
}

/// Per-message latency over 200 bars of clock + notes: without logging, with logging, and the
/// log hand-off alone (the time spent in `try_send`s for that message).
fn percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, handle) = log_thread(dir.path());
    let (mut plain, mut pulse) = playing(1, 0);
    let mut logged = plain.clone();
    let (mut h_plain, mut h_logged, mut h_send) = (hist(), hist(), hist());
    for _ in 0..200 * 96 {
        let mut msgs = vec![clock(pulse)];
        if pulse % 6 == 0 {
            let key = 40 + (pulse / 6 % 40) as u8;
            msgs.push(RawMidi::new(
                at(pulse as f64 + 0.4),
                PortRole::Notes,
                &[0x90, key, 90],
            ));
            msgs.push(RawMidi::new(
                at(pulse as f64 + 0.6),
                PortRole::Notes,
                &[0x80, key, 0],
            ));
        }
        for m in &msgs {
            let t = Instant::now();
            plain.on_midi(m, &mut |a| {
                black_box(a);
            });
            h_plain.saturating_record(t.elapsed().as_nanos() as u64);

            let mut send_ns = 0u64;
            let t = Instant::now();
            logged.on_midi(m, &mut |a| {
                let s = Instant::now();
                log_action(&tx, &a);
                send_ns += s.elapsed().as_nanos() as u64;
                black_box(a);
            });
            h_logged.saturating_record(t.elapsed().as_nanos() as u64);
            h_send.saturating_record(send_ns.max(1));
        }
        pulse += 1;
    }
    drop(tx);
    let _ = handle.join();
    for (name, h) in [
        ("no log", &h_plain),
        ("logged", &h_logged),
        ("log hand-off only", &h_send),
    ] {
        println!(
            "per message {name:>18}: n={:>6} p50={:>7.3} µs p99={:>7.3} µs max={:>8.2} µs",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
        );
    }
    println!(
        "p99 added by logging: {:.3} µs (logged - no log)",
        (h_logged.value_at_quantile(0.99) as f64 - h_plain.value_at_quantile(0.99) as f64) / 1e3
    );
}

criterion_group!(benches, benches_logging);

fn main() {
    benches();
    percentiles();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
