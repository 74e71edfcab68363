//! Input-thread cost per message: a clock mid-bar, a note, and the boundary clock that builds a
//! job, plus p50/p99 over a realistic stream (hdrhistogram, printed after criterion's figures).
//!
//! Run: `cargo bench --bench input`. Target: <= 20 µs p99 per message.

use std::hint::black_box;
use std::time::Instant;

use aria_bridge::config::Config;
use aria_bridge::engine::input::{InputAction, InputProcessor};
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;
use criterion::{criterion_group, BatchSize, Criterion};

/// 120 BPM.
const P: f64 = 20_833_333.333;
const T0: f64 = 1e9;

fn at(pulse: f64) -> Nanos {
    (T0 + pulse * P) as Nanos
}

fn clock(pulse: u64) -> RawMidi {
    RawMidi::new(at(pulse as f64), PortRole::Notes, &[0xF8])
}

fn sink(a: InputAction) {
    black_box(a);
}

/// A processor that has played `bars` bars with a busy right hand (a note every 8th, held a
/// 16th) and is `into_bar` pulses into the next one.
fn playing(bars: u64, into_bar: u64) -> (InputProcessor, u64) {
    let mut cfg = Config::default();
    cfg.generation.prompt_bars = 2;
    let mut p = InputProcessor::new(&cfg);
    let mut out = sink;
    p.on_midi(&RawMidi::new(at(-1.0), PortRole::Notes, &[0xFA]), &mut out);
    let total = bars * 96 + into_bar;
    for pulse in 0..total {
        p.on_midi(&clock(pulse), &mut out);
        if pulse % 12 == 0 {
            let key = 48 + (pulse / 12 % 24) as u8;
            let t = at(pulse as f64 + 0.3);
            p.on_midi(
                &RawMidi::new(t, PortRole::Notes, &[0x90, key, 90]),
                &mut out,
            );
            let t = at(pulse as f64 + 6.2);
            p.on_midi(&RawMidi::new(t, PortRole::Notes, &[0x80, key, 0]), &mut out);
        }
    }
    (p, total)
}

fn benches_input(c: &mut Criterion) {
    let (mid, next) = playing(3, 40);
    c.bench_function("clock mid-bar", |b| {
        b.iter_batched_ref(
            || mid.clone(),
            |p| p.on_midi(black_box(&clock(next)), &mut sink),
            BatchSize::SmallInput,
        )
    });
    let note = RawMidi::new(at(next as f64 - 0.5), PortRole::Notes, &[0x90, 70, 80]);
    c.bench_function("note-on", |b| {
        b.iter_batched_ref(
            || mid.clone(),
            |p| p.on_midi(black_box(&note), &mut sink),
            BatchSize::SmallInput,
        )
    });
    let (edge, next) = playing(3, 96);
    let boundary = clock(next);
    c.bench_function("boundary clock -> job (2-bar prompt, 16 notes)", |b| {
        b.iter_batched_ref(
            || edge.clone(),
            |p| p.on_midi(black_box(&boundary), &mut sink),
            BatchSize::SmallInput,
        )
    });
}

/// Per-message latency over 200 bars of clock + notes, by message class.
fn percentiles() {
    let (mut p, mut pulse) = playing(1, 0);
    let mut h_clock = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
    let mut h_boundary = h_clock.clone();
    let mut h_note = h_clock.clone();
    let timed = |p: &mut InputProcessor, m: &RawMidi, h: &mut hdrhistogram::Histogram<u64>| {
        let t = Instant::now();
        p.on_midi(m, &mut sink);
        h.saturating_record(t.elapsed().as_nanos() as u64);
    };
    for _ in 0..200 * 96 {
        let h = if pulse % 96 == 0 {
            &mut h_boundary
        } else {
            &mut h_clock
        };
        timed(&mut p, &clock(pulse), h);
        if pulse % 6 == 0 {
            let key = 40 + (pulse / 6 % 40) as u8;
            let on = RawMidi::new(at(pulse as f64 + 0.4), PortRole::Notes, &[0x90, key, 90]);
            timed(&mut p, &on, &mut h_note);
            let off = RawMidi::new(at(pulse as f64 + 0.6), PortRole::Notes, &[0x80, key, 0]);
            timed(&mut p, &off, &mut h_note);
        }
        pulse += 1;
    }
    for (name, h) in [
        ("clock", &h_clock),
        ("note on/off", &h_note),
        ("boundary clock", &h_boundary),
    ] {
        println!(
            "input latency {name:>15}: n={:>6} p50={:>7.2} µs p99={:>7.2} µs max={:>8.2} µs",
            h.len(),
            h.value_at_quantile(0.5) as f64 / 1e3,
            h.value_at_quantile(0.99) as f64 / 1e3,
            h.max() as f64 / 1e3,
        );
    }
}

criterion_group!(benches, benches_input);

fn main() {
    benches();
    percentiles();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
