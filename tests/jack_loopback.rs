//! Proves the JACK harness: a peer's output connected to its own input through a dummy JACK
//! server delivers every message in order, and prints the timing error.
//!
//! Run: `scripts/with-jack.sh cargo test --features jack --test jack_loopback -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use aria_bridge::clock;
use support_jack::*;

#[test]
fn loopback_delivers_clock_and_notes_in_order_unaltered() {
    let mut peer = JackPeer::open("loop");
    jack_connect(&peer.out_port(), &peer.in_port());
    let _ = peer.drain();

    let bpm = 120.0;
    let session = clock_session(bpm, 4, 4, &arpeggio(4, 4));
    let start = clock::timebase::now() + 100_000_000;
    let sent = peer.play(start, &session);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let got = peer.drain();

    assert_eq!(peer.dropped(), 0, "recorder dropped messages");
    // Match arrivals to sent messages in order. JACK may drop a period's MIDI when a client
    // misses a cycle (xruns of the non-real-time dummy driver on a loaded machine), so the
    // arrivals must be an in-order subsequence with at most 1% missing, never altered or extra.
    let mut pairs = Vec::with_capacity(got.len());
    let mut j = 0;
    for g in &got {
        while j < session.len() && session[j].as_slice() != g.as_slice() {
            j += 1;
        }
        assert!(
            j < session.len(),
            "arrival {:?} matches no sent message in order",
            g.as_slice()
        );
        pairs.push((*g, session[j], sent[j]));
        j += 1;
    }
    let lost = session.len() - got.len();
    println!(
        "loopback: {} of {} messages arrived ({lost} lost)",
        got.len(),
        session.len()
    );
    assert!(
        lost * 100 <= session.len(),
        "{lost} of {} messages lost",
        session.len()
    );

    // Arrival stamp minus the ideal instant, and minus the instant `send` returned.
    let vs_ideal: Vec<i64> = pairs
        .iter()
        .map(|(g, s, _)| g.at as i64 - (start + s.at) as i64)
        .collect();
    let vs_sent: Vec<i64> = pairs
        .iter()
        .map(|(g, _, t)| g.at as i64 - *t as i64)
        .collect();
    let us = |(a, b, c): (i64, i64, i64)| (a / 1000, b / 1000, c / 1000);
    println!(
        "loopback: {} messages at {bpm} BPM; arrival - ideal (µs) p50/p99/max = {:?}; \
         arrival - send (µs) p50/p99/max = {:?}",
        got.len(),
        us(percentiles(&vs_ideal)),
        us(percentiles(&vs_sent))
    );
    // Clock interval jitter as the engine would see it.
    let pulses: Vec<_> = got.iter().filter(|m| m.as_slice() == [0xF8]).collect();
    let p = pulse_ns(bpm);
    let jitter: Vec<i64> = pulses
        .windows(2)
        .map(|w| ((w[1].at - w[0].at) as f64 - p).round() as i64)
        .collect();
    println!(
        "loopback: pulse interval error (µs) p50/p99/max = {:?} over {} intervals",
        us(percentiles(
            &jitter.iter().map(|j| j.abs()).collect::<Vec<_>>()
        )),
        jitter.len()
    );
    peer.close();
}
