//! An external clock master (`jack_midi_clock`) into the recorder: what a real master sends and
//! how its pulses look once stamped by aria-bridge's input adapter.
//!
//! Run: `scripts/with-jack.sh cargo test --features jack --test jack_midi_clock -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use std::time::Duration;

use support_jack::*;

/// One master at a time: its port name is fixed.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records 2 s of rolling transport from `jack_midi_clock` and prints the pulse intervals.
fn record_master(bpm: f64, jitter_percent: u32, peer_name: &str) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let master = ClockMaster::start(bpm, jitter_percent);
    let peer = JackPeer::open(peer_name);
    jack_connect(MCLK_PORT, &peer.in_port());
    jack_transport("locate 0");
    jack_transport("play");
    std::thread::sleep(Duration::from_secs(2));
    jack_transport("stop");
    std::thread::sleep(Duration::from_millis(200));
    let got = peer.drain();
    master.stop();
    peer.close();

    assert_eq!(got.first().map(|m| m.as_slice().to_vec()), Some(vec![0xFA]));
    assert_eq!(got.last().map(|m| m.as_slice().to_vec()), Some(vec![0xFC]));
    let pulses: Vec<_> = got.iter().filter(|m| m.as_slice() == [0xF8]).collect();
    assert!(pulses.len() > 24, "{} pulses in 2 s", pulses.len());
    assert!(
        got.iter()
            .all(|m| matches!(m.as_slice(), [0xFA] | [0xF8] | [0xFC] | [0xF2, ..])),
        "only realtime messages: {:?}",
        got.iter()
            .map(|m| m.as_slice().to_vec())
            .collect::<Vec<_>>()
    );

    let p = pulse_ns(bpm);
    let err: Vec<i64> = pulses
        .windows(2)
        .map(|w| ((w[1].at - w[0].at) as f64 - p).abs().round() as i64)
        .collect();
    let span = (pulses.last().unwrap().at - pulses[0].at) as f64;
    let measured_bpm = 60e9 / (span / (pulses.len() - 1) as f64 * 24.0);
    let (a, b, c) = percentiles(&err);
    println!(
        "jack_midi_clock -b {bpm} -B -J {jitter_percent}: {} pulses, mean tempo {measured_bpm:.2} \
         BPM, |interval - {:.0} µs| p50/p99/max = {}/{}/{} µs",
        pulses.len(),
        p / 1e3,
        a / 1000,
        b / 1000,
        c / 1000
    );
}

#[test]
fn jack_midi_clock_sends_start_pulses_and_stop() {
    record_master(120.0, 0, "mclk");
}

#[test]
fn jack_midi_clock_with_jitter_still_sends_only_clock() {
    record_master(97.0, 10, "mclk-jitter");
}
