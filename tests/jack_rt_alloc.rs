//! The code aria-bridge runs inside JACK's real-time process callback (and on the scheduler
//! thread for output) never allocates: stamping and handing off input, queueing output.
//!
//! Run: `scripts/with-jack.sh cargo test --features jack --test jack_rt_alloc`
//!
//! A counting global allocator counts allocations made by this thread only, so the harness and
//! other tests do not interfere. (midir's own JACK input handler still allocates one small Vec
//! per callback; that is outside our code.)
#![cfg(feature = "jack")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use aria_bridge::midi::ports::{InputCounters, InputHandler, Ports};
use aria_bridge::midi::source::PortRole;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

#[test]
fn the_counter_sees_allocations_of_this_thread() {
    let before = allocs();
    let v = std::hint::black_box(vec![1u8; 16]);
    assert!(allocs() > before);
    drop(v);
}

#[test]
fn input_hand_off_allocates_nothing_even_when_dropping() {
    let (tx, rx) = crossbeam_channel::bounded(64);
    let counters = Arc::new(InputCounters::default());
    let mut h = InputHandler::new(tx, PortRole::Clock, counters.clone());
    aria_bridge::clock::timebase::now();
    let before = allocs();
    // 64 fit, the other 936 are dropped: both paths are covered.
    for i in 0..1000u64 {
        h.on_message(i * 20_833, &[0xF8], aria_bridge::clock::timebase::now());
        h.on_message(
            i * 20_833,
            &[0x90, 60, 100, 0xF7],
            aria_bridge::clock::timebase::now(),
        );
    }
    assert_eq!(allocs() - before, 0);
    assert_eq!(rx.len(), 64);
    assert_eq!(
        counters.dropped.load(std::sync::atomic::Ordering::Relaxed),
        1936
    );
}

#[test]
fn output_queueing_allocates_nothing() {
    let ports = Ports::open_output(&Default::default())
        .expect("no JACK server: run under scripts/with-jack.sh");
    let mut out = ports.output();
    let before = allocs();
    for i in 0..1000u32 {
        out.send(0, &[0x90, (i % 128) as u8, 64]);
    }
    assert_eq!(allocs() - before, 0);
    drop(out);
    ports.close();
}
