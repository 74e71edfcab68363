//! The input thread's hot path does not allocate: clocks and notes between boundaries, Start,
//! Stop, Song Position and clock loss are handled without touching the heap; only a bar
//! boundary allocates (the job's prompt).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use aria_bridge::config::Config;
use aria_bridge::engine::input::{InputAction, InputProcessor};
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

const P: f64 = 20_833_333.333;

fn at(pulse: f64) -> Nanos {
    (1e9 + pulse * P) as Nanos
}

#[test]
fn only_bar_boundaries_allocate() {
    let mut cfg = Config::default();
    cfg.midi.thru = true;
    let mut p = InputProcessor::new(&cfg);
    let mut jobs = 0u64;
    let mut keep = |a: InputAction| {
        if matches!(a, InputAction::Job(_)) {
            jobs += 1;
        }
        drop(a);
    };
    let msg = |p: &mut InputProcessor, t: Nanos, bytes: &[u8], out: &mut dyn FnMut(InputAction)| {
        let before = allocations();
        p.on_midi(&RawMidi::new(t, PortRole::Notes, bytes), &mut |a| out(a));
        allocations() - before
    };
    assert_eq!(msg(&mut p, at(-1.0), &[0xFA], &mut keep), 0, "Start");
    let mut boundary_allocs = 0;
    for pulse in 0..(8 * 96 + 1) as u64 {
        let n = msg(&mut p, at(pulse as f64), &[0xF8], &mut keep);
        if pulse % 96 == 0 && pulse > 0 {
            boundary_allocs += n;
        } else {
            assert_eq!(n, 0, "clock at pulse {pulse}");
        }
        if pulse % 8 == 0 {
            let key = 50 + (pulse / 8 % 30) as u8;
            let t = at(pulse as f64 + 0.5);
            assert_eq!(msg(&mut p, t, &[0x90, key, 80], &mut keep), 0, "note-on");
            assert_eq!(
                msg(&mut p, t + 1_000, &[0xB0, 64, 127], &mut keep),
                0,
                "pedal"
            );
            let t = at(pulse as f64 + 4.5);
            assert_eq!(msg(&mut p, t, &[0x80, key, 0], &mut keep), 0, "note-off");
        }
    }
    assert!(boundary_allocs > 0, "the prompt is a fresh Vec");
    let t = at(8.0 * 96.0 + 0.5);
    assert_eq!(msg(&mut p, t, &[0xF2, 0, 0], &mut keep), 0, "Song Position");
    assert_eq!(msg(&mut p, t, &[0xF0, 1, 2], &mut keep), 0, "SysEx");
    assert_eq!(msg(&mut p, t, &[0x90, 0xFF], &mut keep), 0, "malformed");
    let before = allocations();
    p.on_tick(t + 2_000_000_000, &mut keep);
    assert_eq!(allocations() - before, 0, "clock loss");
    assert_eq!(msg(&mut p, t, &[0xFC], &mut keep), 0, "Stop");
    assert_eq!(jobs, 8);
}
