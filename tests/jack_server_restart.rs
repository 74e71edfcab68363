//! The ports survive the JACK server going away and coming back: the watcher notices, forgets
//! the dead clients (closing them again would crash libjack) and recreates the virtual ports.
//!
//! Run: `scripts/with-jack.sh cargo test --features jack --test jack_server_restart -- --nocapture`
//! (needs `WITH_JACK_PID` from the script: the test stops that server and starts its own).
#![cfg(feature = "jack")]

mod support_jack;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aria_bridge::config::MidiConfig;
use aria_bridge::midi::ports::Ports;
use support_jack::*;

fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_server() -> Child {
    let name = std::env::var("JACK_DEFAULT_SERVER").expect("JACK_DEFAULT_SERVER");
    let child = Command::new("jackd")
        .args(["--no-realtime", "-S", "-n", &name, "-c", "s"])
        .args(["-d", "dummy", "-r", "48000", "-p", "64"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start jackd");
    let ok = Command::new("jack_wait")
        .args(["-s", &name, "-w", "-t", "10"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "restarted jackd did not come up");
    child
}

#[test]
fn virtual_ports_return_after_a_server_restart() {
    let pid = std::env::var("WITH_JACK_PID").expect("run under scripts/with-jack.sh");
    let (tx, rx) = crossbeam_channel::bounded(64);
    let ports = Ports::open(&MidiConfig::default(), tx).expect("open virtual ports");
    let old_peer = JackPeer::open("before");

    // The server dies (the script's server, by its pid).
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let end = Instant::now() + Duration::from_secs(5);
    while alive(&pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&pid), "jackd {pid} did not stop");
    // libjack freed the peer's clients when the watcher's probe next failed; never drop them.
    std::mem::forget(old_peer);
    std::thread::sleep(Duration::from_millis(2500));

    let mut server = start_server();
    let end = Instant::now() + Duration::from_secs(5);
    let want = [
        "aria-bridge-in:aria-bridge in",
        "aria-bridge-out:aria-bridge out",
    ];
    while !want.iter().all(|w| jack_ports().iter().any(|p| p == w)) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let listed = jack_ports();
    assert!(
        want.iter().all(|w| listed.iter().any(|p| p == w)),
        "{listed:?}"
    );

    let mut peer = JackPeer::open("after");
    jack_connect(&peer.out_port(), want[0]);
    jack_connect(want[1], &peer.in_port());
    peer.send_now(&[0x90, 60, 64]);
    let got = rx
        .recv_timeout(Duration::from_secs(2))
        .expect("note after restart");
    assert_eq!(got.as_slice(), [0x90, 60, 64]);
    let mut out = ports.output();
    out.send(0, &[0x80, 60, 0]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(peer.drain().len(), 1, "output works after restart");

    ports.close();
    peer.close();
    let _ = server.kill();
    let _ = server.wait();
}
