//! aria-bridge's port adapters against a real JACK server: virtual ports, ports found by name,
//! a separate clock port, errors that list the ports, reconnection after a port disappears, and
//! `aria-bridge ports`.
//!
//! Run: `scripts/with-jack.sh cargo test --features jack --test jack_ports -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use aria_bridge::config::MidiConfig;
use aria_bridge::midi::ports::{PortError, Ports};
use aria_bridge::midi::source::{PortRole, RawMidi};
use crossbeam_channel::Receiver;
use support_jack::*;

/// Our client and port names are fixed, so tests that open [`Ports`] take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits up to `timeout` for `n` messages.
fn collect(rx: &Receiver<RawMidi>, n: usize, timeout: Duration) -> Vec<RawMidi> {
    let end = Instant::now() + timeout;
    let mut v = Vec::new();
    while v.len() < n {
        match rx.recv_deadline(end) {
            Ok(m) => v.push(m),
            Err(_) => break,
        }
    }
    v
}

fn named(input: &str, output: &str) -> MidiConfig {
    MidiConfig {
        input_port: Some(input.into()),
        output_port: Some(output.into()),
        ..MidiConfig::default()
    }
}

#[test]
fn virtual_ports_opened_in_two_phases_carry_notes_in_and_out() {
    let _g = serial();
    // The engine's order: output first (it starts with it), inputs once it hands out its channel.
    let mut ports = Ports::open_output(&MidiConfig::default()).expect("open virtual output");
    let (tx, rx) = crossbeam_channel::bounded(256);
    ports.open_inputs(tx).expect("open virtual input");
    let mut peer = JackPeer::open("virt");
    jack_connect(&peer.out_port(), "aria-bridge-in:aria-bridge in");
    jack_connect("aria-bridge-out:aria-bridge out", &peer.in_port());

    peer.send_now(&[0x90, 60, 100]);
    peer.send_now(&[0xF8]);
    let got = collect(&rx, 2, Duration::from_secs(2));
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].as_slice(), [0x90, 60, 100]);
    assert_eq!(got[1].as_slice(), [0xF8]);
    assert!(got.iter().all(|m| m.port == PortRole::Notes));

    let mut out = ports.output();
    out.send(0, &[0x91, 64, 80]);
    out.send(0, &[0xB1, 123, 0]);
    std::thread::sleep(Duration::from_millis(200));
    let back: Vec<Vec<u8>> = peer.drain().iter().map(|m| m.as_slice().to_vec()).collect();
    assert_eq!(back, [vec![0x91, 64, 80], vec![0xB1, 123, 0]]);

    let stats = ports.close();
    assert_eq!((stats.notes_received, stats.sent), (2, 2));
    peer.close();
}

#[test]
fn named_ports_and_a_separate_clock_port_are_found_by_substring() {
    let _g = serial();
    let mut keys = JackPeer::open("keys");
    let mut master = JackPeer::open("master");
    let cfg = MidiConfig {
        clock_port: Some("MASTER OUT".into()),
        ..named("Keys Out", "keys in")
    };
    let (tx, rx) = crossbeam_channel::bounded(256);
    let ports = Ports::open(&cfg, tx).expect("open named ports");
    let names: Vec<_> = ports
        .connected()
        .iter()
        .map(|(l, p)| (*l, p.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("out", "keys-in:keys in"),
            ("notes in", "keys-out:keys out"),
            ("clock in", "master-out:master out")
        ]
    );
    std::thread::sleep(Duration::from_millis(100));

    keys.send_now(&[0x90, 48, 70]);
    master.send_now(&[0xFA]);
    let got = collect(&rx, 2, Duration::from_secs(2));
    let mut roles: Vec<_> = got
        .iter()
        .map(|m| (m.port, m.as_slice().to_vec()))
        .collect();
    roles.sort_by_key(|(r, _)| *r == PortRole::Clock);
    assert_eq!(
        roles,
        [
            (PortRole::Notes, vec![0x90, 48, 70]),
            (PortRole::Clock, vec![0xFA])
        ]
    );

    let mut out = ports.output();
    out.send(0, &[0x80, 48, 0]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(keys.drain().len(), 1);
    ports.close();
    keys.close();
    master.close();
}

#[test]
fn unknown_or_ambiguous_names_fail_listing_the_ports() {
    let _g = serial();
    let a = JackPeer::open("synth-a");
    let b = JackPeer::open("synth-b");
    let (tx, _rx) = crossbeam_channel::bounded(8);

    let e = Ports::open(&named("nowhere", "synth-a in"), tx.clone())
        .err()
        .expect("no port is called nowhere");
    let msg = e.to_string();
    assert!(matches!(e, PortError::NoMatch { .. }), "{msg}");
    assert!(msg.contains("`midi.input_port` = \"nowhere\""), "{msg}");
    assert!(msg.contains("\"synth-a-out:synth-a out\""), "{msg}");
    assert!(msg.contains("\"synth-b-out:synth-b out\""), "{msg}");

    let e = Ports::open(&named("synth-a out", "synth"), tx)
        .err()
        .expect("two ports contain synth");
    let msg = e.to_string();
    assert!(matches!(e, PortError::Ambiguous { .. }), "{msg}");
    assert!(
        msg.contains("`midi.output_port` = \"synth\" matches 2"),
        "{msg}"
    );
    a.close();
    b.close();
}

#[test]
fn a_lost_input_port_is_reconnected_when_it_returns() {
    let _g = serial();
    // Shows the watcher's "MIDI port lost" / "reconnected" lines under --nocapture.
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let peer = JackPeer::open("plug");
    let (tx, rx) = crossbeam_channel::bounded(256);
    let ports = Ports::open(&named("plug out", "plug in"), tx).expect("open named ports");
    // The device is unplugged ...
    peer.close();
    std::thread::sleep(Duration::from_millis(2500));
    // ... and comes back under the same name; the watcher polls once a second.
    let mut peer = JackPeer::open("plug");
    let end = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.is_empty() && Instant::now() < end {
        peer.send_now(&[0x90, 72, 1]);
        got = collect(&rx, 1, Duration::from_millis(250));
    }
    assert_eq!(
        got.first().map(|m| m.as_slice().to_vec()),
        Some(vec![0x90, 72, 1])
    );
    let mut out = ports.output();
    out.send(0, &[0x80, 72, 0]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(peer.drain().len(), 1, "output reconnected too");
    ports.close();
    peer.close();
}

#[test]
fn ports_command_lists_jack_ports_as_json() {
    let _g = serial();
    let peer = JackPeer::open("lister");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
        .args(["ports", "--json"])
        .output()
        .expect("run aria-bridge ports");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["backend"], "JACK");
    let has = |k: &str, n: &str| v[k].as_array().unwrap().iter().any(|x| x == n);
    assert!(has("inputs", "lister-out:lister out"), "{v}");
    assert!(has("outputs", "lister-in:lister in"), "{v}");
    peer.close();
}
