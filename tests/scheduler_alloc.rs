//! The scheduler tick allocates and frees nothing: a counting global allocator watches
//! `poll` and `all_notes_off` over whole bars with cuts, ring-out, re-strikes and a repeat.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use aria_bridge::clock::timeline::Timeline;
use aria_bridge::config::{Config, Fallback};
use aria_bridge::engine::generator::{Generated, GenerationStats};
use aria_bridge::engine::job::{GenerationResult, Window};
use aria_bridge::engine::scheduler::Scheduler;
use aria_bridge::midi::sink::MidiOut;
use aria_bridge::music::note::MsNote;
use aria_bridge::Nanos;

struct Counting;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note_call() {
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = CALLS.try_with(|c| c.set(c.get() + 1));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note_call();
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        note_call();
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note_call();
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Counts messages without storing them (a Vec would allocate).
struct Count(u32);

impl MidiOut for Count {
    fn send(&mut self, _at: Nanos, _bytes: &[u8]) {
        self.0 += 1;
    }
}

fn result(bar: u64, notes: Vec<MsNote>) -> GenerationResult {
    GenerationResult {
        bar: bar - 2,
        epoch: 1,
        window: Window {
            bar,
            start_pulse: bar * 96,
            len_pulses: 96,
        },
        ms_per_pulse: 20.0,
        outcome: Ok(Generated {
            notes,
            stats: GenerationStats::default(),
        }),
        started_ns: 0,
        finished_ns: 0,
    }
}

#[test]
fn poll_and_all_notes_off_neither_allocate_nor_free() {
    let mut c = Config::default();
    c.playback.fallback = Fallback::RepeatLast;
    c.playback.ring_out_pulses = 12;
    let mut s = Scheduler::new(&c);
    let mut out = Count(0);
    let t0 = 1_000_000_000;
    s.on_timeline(
        Timeline {
            epoch: 1,
            running: true,
            anchor_pulse: 0.0,
            anchor_ns: t0,
            ns_per_pulse: 20e6,
            carry: None,
        },
        t0,
        &mut out,
    );
    let notes: Vec<MsNote> = (0..40)
        .map(|i| MsNote {
            pitch: 60 + (i % 5) as u8,
            velocity: 70,
            start_ms: i * 45,
            end_ms: i * 45 + 300,
        })
        .collect();
    for bar in 2..6 {
        s.expect(
            Window {
                bar,
                start_pulse: bar * 96,
                len_pulses: 96,
            },
            1,
        );
    }
    s.on_result(result(2, notes.clone()), t0);
    s.on_result(result(3, notes), t0);
    // Bars 4 and 5 miss and repeat bar 3.

    WATCH.with(|w| w.set(true));
    let mut now = t0;
    while now < t0 + 7 * 96 * 20_000_000 {
        s.poll(now, &mut out);
        now += 1_000_000;
    }
    s.all_notes_off(now, &mut out);
    WATCH.with(|w| w.set(false));

    assert!(
        out.0 > 4 * 40 * 2,
        "all four bars played: {} messages",
        out.0
    );
    assert_eq!(
        CALLS.with(|c| c.get()),
        0,
        "allocator calls inside the tick"
    );
}
