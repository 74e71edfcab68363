//! `aria-bridge run` end to end through JACK: a test peer plays Start, 24-PPQN clock and a human
//! part into the daemon's named input and records what the daemon plays.
//!
//! Checks: every AI note starts inside a bar window that exists (bar k+2 for job k, so never in
//! the first `prompt_bars` bars, never after Stop), ends by its window's end, and nothing sounds
//! after Stop; prints where in their windows the notes landed. The window check has a tolerance
//! of one pulse (20.8 ms at 120 BPM): it pins membership, not precision.
//!
//! Run (ARIA_E2E_MODEL overrides the model, models/aria-tiny-dev.onnx by default;
//! ARIA_E2E_RT_PRIORITY the SCHED_FIFO priority of the timing threads, 40 by default, 0 = off):
//! `scripts/with-jack.sh cargo test --features jack --test jack_e2e -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aria_bridge::clock;
use aria_bridge::Nanos;
use support_jack::*;

const BPM: f64 = 120.0;
const BARS: u32 = 8;
const BEATS: u32 = 4;

fn config_text(model: &str) -> String {
    // ARIA_E2E_RT_PRIORITY compares timing with and without SCHED_FIFO (0 = off).
    let priority: u8 = std::env::var("ARIA_E2E_RT_PRIORITY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    format!(
        r#"
[clock]
source = "external"
bpm = {BPM}
time_signature = "4/4"

[generation]
prompt_bars = 2

[playback]
fallback = "silence"
output_channel = 1
realtime_priority = {priority}

[midi]
input_port = "e2e out"
output_port = "e2e in"
thru = false

[model]
path = "{model}"
device = "cpu"
"#
    )
}

#[test]
fn e2e_config_is_a_valid_config_file() {
    let cfg = aria_bridge::config::Config::from_toml(
        &config_text("model.onnx"),
        std::path::Path::new("e2e.toml"),
    )
    .expect("valid config");
    assert_eq!(cfg.midi.input_port.as_deref(), Some("e2e out"));
    assert_eq!(cfg.midi.output_port.as_deref(), Some("e2e in"));
}

#[test]
fn run_plays_ai_notes_only_inside_their_windows_and_nothing_after_stop() {
    let model = std::env::var("ARIA_E2E_MODEL")
        .unwrap_or_else(|_| format!("{}/models/aria-tiny-dev.onnx", env!("CARGO_MANIFEST_DIR")));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("e2e.toml");
    std::fs::write(&cfg, config_text(&model)).unwrap();
    let log = std::fs::File::create(dir.path().join("run.log")).unwrap();

    let mut peer = JackPeer::open("e2e");
    let mut daemon = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--send-log")
            .arg(dir.path().join("sends.csv"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start aria-bridge run"),
    );

    // The daemon is ready when its ports exist (model loading can take a while).
    let end = Instant::now() + Duration::from_secs(60);
    let ours = [
        "aria-bridge-in:aria-bridge in",
        "aria-bridge-out:aria-bridge out",
    ];
    while !ours.iter().all(|p| jack_ports().iter().any(|q| q == p)) {
        assert!(
            daemon.try_wait().unwrap().is_none(),
            "aria-bridge run exited early; log: {}",
            std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default()
        );
        assert!(
            Instant::now() < end,
            "aria-bridge ports did not appear in 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = peer.drain();
    // What the daemon sent before this instant (its sweep as the output opened) was drained.
    let listening = clock::timebase::now() as i64;

    let session = clock_session(BPM, BARS, BEATS, &arpeggio(BARS, BEATS));
    let start: Nanos = clock::timebase::now() + 200_000_000;
    peer.play(start, &session);
    std::thread::sleep(Duration::from_secs(2));
    let got = peer.drain();

    // Phase 2, a start mid-song as some masters do it: Song Position (bar 16 = 64 sixteenths)
    // while stopped, then Continue two seconds later, then clock and the human part from there.
    peer.send_now(&[0xF2, 64, 0]);
    std::thread::sleep(Duration::from_secs(2));
    let mut resume = clock_session(BPM, 6, BEATS, &arpeggio(6, BEATS));
    resume[0] = Timed::new(0, &[0xFB]);
    let start2: Nanos = clock::timebase::now() + 200_000_000;
    peer.play(start2, &resume);
    std::thread::sleep(Duration::from_millis(800));
    let got2 = peer.drain();

    // Stop the daemon by its pid (SIGINT: the same path as Ctrl-C).
    let pid = daemon.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let status = daemon.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap_or_default();
    assert!(
        status.success(),
        "aria-bridge run exited with {status}; log:\n{log}"
    );
    peer.close();

    let bar_ns = pulse_ns(BPM) * 24.0 * BEATS as f64;
    let pulse = pulse_ns(BPM) as i64;
    let stop_at = start as i64 + (BARS as f64 * bar_ns) as i64;
    let rel = |t: Nanos| t as i64 - start as i64;

    let mut sounding: std::collections::HashMap<(u8, u8), (Nanos, i64)> = Default::default();
    let mut in_window_us = Vec::new();
    let mut notes = 0;
    for m in &got {
        let b = m.as_slice();
        match (b[0] & 0xF0, b.get(1), b.get(2)) {
            (0x90, Some(&k), Some(&v)) if v > 0 => {
                notes += 1;
                let bar = (rel(m.at) + pulse).div_euclid(bar_ns as i64);
                assert!(
                    (2..BARS as i64).contains(&bar),
                    "note {k} at {:.1} ms is in bar {bar}: no window there",
                    rel(m.at) as f64 / 1e6
                );
                in_window_us.push((rel(m.at) - (bar as f64 * bar_ns) as i64) / 1_000);
                sounding.insert((b[0] & 0x0F, k), (m.at, bar));
            }
            (0x80, Some(&k), _) | (0x90, Some(&k), Some(0)) => {
                if let Some((_, bar)) = sounding.remove(&(b[0] & 0x0F, k)) {
                    let window_end = ((bar + 1) as f64 * bar_ns) as i64;
                    assert!(
                        rel(m.at) <= window_end + pulse,
                        "note {k} of bar {bar} ends at {:.1} ms, after its window ({:.1} ms)",
                        rel(m.at) as f64 / 1e6,
                        window_end as f64 / 1e6
                    );
                }
            }
            (0xB0, Some(&123), _) if (m.at as i64) >= stop_at - pulse => {
                let ch = b[0] & 0x0F;
                sounding.retain(|(c, _), _| *c != ch);
            }
            _ => {}
        }
    }
    assert!(
        sounding.is_empty(),
        "notes still sounding after Stop: {:?}",
        sounding.keys().collect::<Vec<_>>()
    );
    println!(
        "e2e: {} messages back, {notes} AI notes; onset within window (µs) p50/p99/max = {:?}",
        got.len(),
        if in_window_us.is_empty() {
            (0, 0, 0)
        } else {
            percentiles(&in_window_us)
        }
    );
    assert!(notes > 0, "the daemon played nothing; log:\n{log}");
    assert!(
        log.contains("position set to pulse 384") && log.contains("continue at pulse 384"),
        "no mid-song start in the log:\n{log}"
    );
    let notes2 = got2
        .iter()
        .filter(|m| m.as_slice()[0] & 0xF0 == 0x90 && m.as_slice().get(2) > Some(&0))
        .count();
    let mut open2: std::collections::HashMap<(u8, u8), i32> = Default::default();
    for m in &got2 {
        let b = m.as_slice();
        match (b[0] & 0xF0, b.get(1), b.get(2)) {
            (0x90, Some(&k), Some(&v)) if v > 0 => *open2.entry((b[0] & 0x0F, k)).or_default() += 1,
            (0x80, Some(&k), _) | (0x90, Some(&k), Some(0)) => {
                *open2.entry((b[0] & 0x0F, k)).or_default() -= 1
            }
            _ => {}
        }
    }
    println!("e2e mid-song start: {notes2} AI notes after Song Position + Continue");
    assert!(
        notes2 > 0,
        "nothing played after the mid-song start; log:\n{log}"
    );
    assert!(
        open2.values().all(|&n| n <= 0),
        "notes left sounding after the second Stop: {open2:?}"
    );

    // Timing: the daemon logs each message's intended instant; both processes read the same
    // CLOCK_MONOTONIC, so arrival minus intention is the whole path's error (scheduler wake-up,
    // sender thread, JACK's period quantisation). Printed, not asserted: it depends on load.
    let sends = std::fs::read_to_string(dir.path().join("sends.csv")).unwrap();
    let mut send_late_us = Vec::new();
    let intended: Vec<(i64, String)> = sends
        .lines()
        .filter_map(|l| {
            let mut f = l.split(',');
            let at: i64 = f.next()?.parse().ok()?;
            let sent: i64 = f.next()?.parse().ok()?;
            send_late_us.push((sent - at) / 1_000);
            Some((at, f.next()?.to_string()))
        })
        .filter(|(at, _)| *at >= listening)
        .collect();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let arrived: Vec<(i64, String)> = got
        .iter()
        .filter(|m| (0x80..0xF0).contains(&m.as_slice()[0]))
        .map(|m| (m.at as i64, hex(m.as_slice())))
        .collect();
    // The peer stopped listening before the daemon's shutdown all-notes-off, so what arrived is
    // a prefix of what was sent.
    assert!(arrived.len() <= intended.len());
    assert_eq!(
        intended[..arrived.len()]
            .iter()
            .map(|x| &x.1)
            .collect::<Vec<_>>(),
        arrived.iter().map(|x| &x.1).collect::<Vec<_>>(),
        "the peer received exactly what the daemon sent, in order"
    );
    let errors_us: Vec<i64> = intended
        .iter()
        .zip(&arrived)
        .filter(|(i, _)| i.1.starts_with('9'))
        .map(|(i, a)| (a.0 - i.0) / 1_000)
        .collect();
    let (p50, p99, max) = percentiles(&errors_us);
    let (s50, s99, smax) = percentiles(&send_late_us);
    println!("e2e timing: daemon send - intended instant (µs) p50 {s50} / p99 {s99} / max {smax}");
    println!(
        "e2e timing: {} note-ons, arrival - intended instant (µs) p50 {p50} / p99 {p99} / max {max} (JACK period {} µs)",
        errors_us.len(),
        64 * 1_000_000 / 48_000
    );
}
