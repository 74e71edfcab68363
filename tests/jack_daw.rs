//! The scripted DAW peer (tests/support_jack/daw.rs) against `aria-bridge run` through JACK:
//! what it plays arrives where the script says, and the take it records lines up with the
//! script's clock, so live tests can be a script and an assertion.
//!
//! `scripts/with-jack.sh cargo test --features jack --test jack_daw -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use support_jack::daw::{Daemon, Daw};
use support_jack::*;

#[test]
fn a_scripted_session_is_answered_inside_bar_windows_and_closed_at_stop() {
    let mut daw = Daw::new(120.0);
    daw.start().bars(6, &arpeggio(6, 4));
    let stop_at = daw.now() as i64;
    daw.stop().wait_ms(300.0);
    let script = daw.script();
    assert_eq!(script.last(0xFC), Some(stop_at as u64));

    let mut d = Daemon::start("daw", "");
    let take = d.perform(&script);
    let bar_ns = 2_000_000_000i64;
    let ons = take.note_ons();
    assert!(!ons.is_empty(), "nothing played; log:\n{}", d.log());
    for &(t, _, k, _) in &ons {
        // Answers begin in bar 2 (the answer to bar 0); one pulse (20.8 ms) of tolerance.
        assert!(
            t >= 2 * bar_ns - 21_000_000 && t <= stop_at + 21_000_000,
            "note {k} at {:.1} ms is outside the answered bars\n{}",
            t as f64 / 1e6,
            take.dump()
        );
    }
    assert_eq!(
        take.hanging(),
        vec![],
        "notes left sounding:\n{}",
        take.dump()
    );
    let (status, _) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    // The event log is complete once the daemon has exited (its writer flushes at the end).
    let events = d.events();
    assert!(
        events.iter().any(|e| e["event"] == "played"),
        "no window played; events: {events:?}"
    );
    println!(
        "daw: {} note-ons in {} messages back",
        ons.len(),
        take.received.len()
    );
}

#[test]
fn a_tempo_ramp_in_the_script_reaches_the_daemon_as_a_changing_clock() {
    let mut daw = Daw::new(90.0);
    daw.start().bars(1, &[]);
    daw.ramp_to(150.0, 2 * 96).bars(2, &[]).bars(1, &[]);
    assert!((daw.bpm() - 150.0).abs() < 1e-9);
    daw.stop().wait_ms(200.0);
    let script = daw.script();
    let mut d = Daemon::start("ramp", "");
    let take = d.perform(&script);
    let (status, _) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    // The daemon's tempo estimate follows the master: tempo records climb from ~90 to ~150.
    let bpms: Vec<f64> = d
        .events()
        .iter()
        .filter(|e| e["event"] == "tempo")
        .filter_map(|e| e["bpm"].as_f64())
        .collect();
    assert!(bpms.len() > 10, "too few tempo records: {bpms:?}");
    let first = bpms[..3].iter().sum::<f64>() / 3.0;
    let last = bpms[bpms.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(
        (first - 90.0).abs() < 5.0 && (last - 150.0).abs() < 5.0,
        "tempo went {first:.1} → {last:.1}; all: {bpms:?}"
    );
}
