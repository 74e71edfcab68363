//! The live engine's threads under a flood: 10,000 human messages per second (plus SysEx and
//! malformed bytes) on top of a running clock. The engine must survive, keep answering, count
//! what it could not take, and close every note at Stop and shutdown.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aria_bridge::clock;
use aria_bridge::config::Config;
use aria_bridge::engine::live::{Live, LiveHooks};
use aria_bridge::midi::sink::{MidiOut, Recorder};
use aria_bridge::midi::source::{PortRole, RawMidi};
use support::{note, ScriptedGenerator, Step};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Recorder>>);

impl MidiOut for Shared {
    fn send(&mut self, at: u64, bytes: &[u8]) {
        self.0.lock().unwrap().send(at, bytes);
    }
}

#[test]
fn a_flood_of_ten_thousand_messages_per_second_is_survived_without_stuck_notes() {
    let cfg = Config::default();
    let mut g = ScriptedGenerator::new();
    g.fallback = Step::Notes(
        (0..8)
            .map(|i| note(70 + i, i as u32 * 100, i as u32 * 100 + 80))
            .collect(),
    );
    let rec = Shared::default();
    let live = Live::start(
        &cfg,
        Box::new(g),
        Box::new(rec.clone()),
        LiveHooks::default(),
    )
    .unwrap();
    let input = live.input();

    // 300 BPM: a pulse every 8.33 ms, a 4/4 bar every 800 ms; 3 s = 3.75 bars.
    let pulse = Duration::from_nanos(8_333_333);
    let send = |bytes: &[u8]| {
        let _ = input.try_send(RawMidi::new(clock::timebase::now(), PortRole::Notes, bytes));
    };
    send(&[0xFA]);
    let start = std::time::Instant::now();
    let mut next_clock = start;
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(3) {
        if std::time::Instant::now() >= next_clock {
            send(&[0xF8]);
            next_clock += pulse;
        }
        // 12 messages per loop of ~1.1 ms (the sleep overshoots): note on/off, SysEx, and garbage.
        for i in 0..12u64 {
            let k = 40 + ((sent + i) % 40) as u8;
            match (sent + i) % 12 {
                0..=7 => send(&[0x90, k, 64]),
                8 | 9 => send(&[0x80, k, 0]),
                10 => {
                    let _ = input.try_send(RawMidi::new(
                        clock::timebase::now(),
                        PortRole::Notes,
                        &[0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],
                    ));
                }
                _ => send(&[0x93, 0xFF, 0x80]),
            }
        }
        sent += 12;
        std::thread::sleep(Duration::from_millis(1));
    }
    send(&[0xFC]);
    std::thread::sleep(Duration::from_millis(100));
    let summary = live.shutdown();
    let rec = rec.0.lock().unwrap();
    let ons = rec
        .events
        .iter()
        .filter(|(_, b, n)| *n == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
        .count();
    println!(
        "flood: {sent} messages offered in 3 s; engine took {}, malformed {}, sysex {}; jobs {}; {ons} AI note-ons",
        summary.input.messages, summary.input.malformed, summary.input.sysex, summary.jobs
    );
    assert!(
        summary.input.malformed > 0 && summary.input.sysex > 0,
        "{summary:?}"
    );
    assert!(
        summary.jobs >= 2,
        "the engine stopped building jobs under the flood: {summary:?}"
    );
    assert!(ons > 0, "nothing was played under the flood: {summary:?}");
    assert_eq!(rec.hanging_notes(), 0);
}
