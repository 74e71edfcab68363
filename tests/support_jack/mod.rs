//! A JACK test peer: virtual ports, connections, a clock master with a human part, a recorder.
//!
//! Used by the `jack_*` tests under `scripts/with-jack.sh` (a dummy JACK server whose name is in
//! `JACK_DEFAULT_SERVER`; libjack and `jack_connect` both read it). Received messages are
//! stamped by aria-bridge's own input adapter ([`InputHandler`]), so the timestamps are the ones
//! the engine would see, in the [`clock`] timebase.
#![allow(dead_code)]

pub mod daw;

use std::process::Command;
use std::time::Duration;

use aria_bridge::clock;
use aria_bridge::midi::ports::{InputCounters, InputHandler};
use aria_bridge::midi::source::{PortRole, RawMidi};
use aria_bridge::Nanos;
use crossbeam_channel::Receiver;
use midir::os::unix::{VirtualInput, VirtualOutput};
use midir::{MidiInput, MidiInputConnection, MidiOutput, MidiOutputConnection};
use std::sync::Arc;

/// One message to send at `at` (ns after the session's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timed {
    /// Offset from the session start, ns.
    pub at: Nanos,
    /// The message bytes (first `len` valid).
    pub bytes: [u8; 3],
    /// Number of valid bytes.
    pub len: u8,
}

impl Timed {
    /// A message of up to 3 bytes at `at`.
    pub fn new(at: Nanos, msg: &[u8]) -> Self {
        let mut bytes = [0u8; 3];
        bytes[..msg.len()].copy_from_slice(msg);
        Self {
            at,
            bytes,
            len: msg.len() as u8,
        }
    }

    /// The valid bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// A note of the human part: start and length in beats (quarter notes), key, velocity.
#[derive(Clone, Copy, Debug)]
pub struct HumanNote {
    /// Start, in beats from the session start.
    pub beat: f64,
    /// Length in beats.
    pub len: f64,
    /// MIDI key.
    pub key: u8,
    /// Velocity 1..=127.
    pub vel: u8,
}

/// A test client with a virtual output ("NAME out") and a recording virtual input ("NAME in"),
/// each on its own JACK client ("NAME-out", "NAME-in").
pub struct JackPeer {
    name: String,
    out: MidiOutputConnection,
    input: MidiInputConnection<InputHandler>,
    rx: Receiver<RawMidi>,
    counters: Arc<InputCounters>,
}

impl JackPeer {
    /// Creates both ports; panics with advice when no JACK server runs.
    pub fn open(name: &str) -> JackPeer {
        let mo = MidiOutput::new(&format!("{name}-out"))
            .expect("no JACK server: run this test under scripts/with-jack.sh");
        let out = mo
            .create_virtual(&format!("{name} out"))
            .expect("create virtual output");
        let mi = MidiInput::new(&format!("{name}-in")).expect("JACK input client");
        // Room for minutes of clock: the recorder must never be the one dropping.
        let (tx, rx) = crossbeam_channel::bounded(1 << 16);
        let counters = Arc::new(InputCounters::default());
        let handler = InputHandler::new(tx, PortRole::Notes, counters.clone());
        let input = mi
            .create_virtual(
                &format!("{name} in"),
                |us, bytes, h: &mut InputHandler| {
                    h.on_message(us, bytes, clock::timebase::now());
                },
                handler,
            )
            .expect("create virtual input");
        JackPeer {
            name: name.to_owned(),
            out,
            input,
            rx,
            counters,
        }
    }

    /// Full JACK name of the output port ("NAME-out:NAME out").
    pub fn out_port(&self) -> String {
        format!("{0}-out:{0} out", self.name)
    }

    /// Full JACK name of the input port ("NAME-in:NAME in").
    pub fn in_port(&self) -> String {
        format!("{0}-in:{0} in", self.name)
    }

    /// Sends `msgs` at `start + m.at` each (spin-sleeping to the instant) and returns the instants
    /// at which `send` returned. Blocks the calling thread for the whole schedule.
    pub fn play(&mut self, start: Nanos, msgs: &[Timed]) -> Vec<Nanos> {
        let sleeper = spin_sleep::SpinSleeper::default();
        let mut sent = Vec::with_capacity(msgs.len());
        for m in msgs {
            sleeper.sleep_until(clock::timebase::to_instant(start + m.at));
            self.out.send(m.as_slice()).expect("JACK send");
            sent.push(clock::timebase::now());
        }
        sent
    }

    /// Sends one message now.
    pub fn send_now(&mut self, msg: &[u8]) {
        self.out.send(msg).expect("JACK send");
    }

    /// Everything received so far, in arrival order.
    pub fn drain(&self) -> Vec<RawMidi> {
        self.rx.try_iter().collect()
    }

    /// Messages the recorder had to drop (must stay 0 for a valid measurement).
    pub fn dropped(&self) -> u64 {
        self.counters
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Closes both ports.
    pub fn close(self) {
        let _ = self.input.close();
        let _ = self.out.close();
    }
}

/// Connects two JACK ports by full name with `jack_connect` (the server from the environment).
pub fn jack_connect(src: &str, dst: &str) {
    let st = Command::new("jack_connect")
        .args([src, dst])
        .status()
        .expect("run jack_connect (Debian package jackd2)");
    assert!(st.success(), "jack_connect {src:?} {dst:?} failed");
    // A connection takes effect at the next graph reorder: a few periods.
    std::thread::sleep(Duration::from_millis(50));
}

/// Every port of the running JACK server (`jack_lsp`).
pub fn jack_ports() -> Vec<String> {
    let out = Command::new("jack_lsp").output().expect("run jack_lsp");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Nanoseconds per clock pulse at `bpm` (24 pulses per quarter note).
pub fn pulse_ns(bpm: f64) -> f64 {
    60e9 / (bpm * 24.0)
}

/// A clock master's session: Start at 0, a 0xF8 every pulse from 0 for `bars` bars of
/// `beats_per_bar` quarter notes, the human `part` (channel 1) in sync, Stop after the last
/// pulse. Sorted by time; at equal times the clock goes first.
pub fn clock_session(bpm: f64, bars: u32, beats_per_bar: u32, part: &[HumanNote]) -> Vec<Timed> {
    let pulse = pulse_ns(bpm);
    let pulses = bars * beats_per_bar * 24;
    let mut v = vec![Timed::new(0, &[0xFA])];
    for k in 0..pulses {
        v.push(Timed::new((k as f64 * pulse).round() as Nanos, &[0xF8]));
    }
    let beat = pulse * 24.0;
    for n in part {
        v.push(Timed::new(
            (n.beat * beat).round() as Nanos,
            &[0x90, n.key, n.vel],
        ));
        v.push(Timed::new(
            ((n.beat + n.len) * beat).round() as Nanos,
            &[0x80, n.key, 0],
        ));
    }
    v.push(Timed::new(
        (pulses as f64 * pulse).round() as Nanos,
        &[0xFC],
    ));
    // Stable sort keeps Start before pulse 0 and clock before notes at equal times.
    v.sort_by_key(|m| (m.at, (m.bytes[0] & 0xF0) != 0xF0));
    v
}

/// A plain human part: one note per beat, an arpeggio of C major, each half a beat long.
pub fn arpeggio(bars: u32, beats_per_bar: u32) -> Vec<HumanNote> {
    let keys = [60u8, 64, 67, 72];
    (0..bars * beats_per_bar)
        .map(|b| HumanNote {
            beat: b as f64,
            len: 0.5,
            key: keys[b as usize % keys.len()],
            vel: 90,
        })
        .collect()
}

/// p50, p99 and max of `v` (sorted copy; nearest-rank).
pub fn percentiles(v: &[i64]) -> (i64, i64, i64) {
    assert!(!v.is_empty(), "no samples");
    let mut s = v.to_vec();
    s.sort_unstable();
    let at = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    (at(0.50), at(0.99), *s.last().unwrap())
}

/// `jack_midi_clock` (Debian package jack-midi-clock) as an external clock master.
///
/// It follows JACK transport: Start (0xFA) when `jack_transport play`, 0xF8 at `bpm` while
/// rolling (placed at sub-period frame offsets), Stop (0xFC) on `stop`. `-B` ignores a timecode
/// master, so the BPM given here is the tempo; `-J` adds up to `jitter_percent` % of a pulse
/// period of random jitter (0..20). Its port is `jack_midi_clock:mclk_out`.
pub struct ClockMaster {
    child: std::process::Child,
}

/// The output port of `jack_midi_clock`.
pub const MCLK_PORT: &str = "jack_midi_clock:mclk_out";

impl ClockMaster {
    /// Starts `jack_midi_clock -b BPM -B [-J jitter]` and waits for its port.
    pub fn start(bpm: f64, jitter_percent: u32) -> ClockMaster {
        let mut cmd = Command::new("jack_midi_clock");
        cmd.args(["-b", &bpm.to_string(), "-B"]);
        if jitter_percent > 0 {
            cmd.args(["-J", &jitter_percent.to_string()]);
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run jack_midi_clock (Debian package jack-midi-clock)");
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while !jack_ports().iter().any(|p| p == MCLK_PORT) {
            assert!(
                std::time::Instant::now() < end,
                "{MCLK_PORT} did not appear"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        ClockMaster { child }
    }

    /// Stops the process (by its own pid).
    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs one `jack_transport` command ("play", "stop", "locate 0", "tempo 100"). A loaded machine
/// can make the client miss the server's reply; it is tried up to 3 times.
pub fn jack_transport(command: &str) {
    use std::io::Write;
    for attempt in 1..=3 {
        let mut child = Command::new("jack_transport")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run jack_transport (Debian package jackd2)");
        let mut stdin = child.stdin.take().expect("stdin");
        let _ = writeln!(stdin, "{command}\nquit");
        drop(stdin);
        if child.wait().expect("jack_transport").success() {
            return;
        }
        assert!(attempt < 3, "jack_transport {command:?} failed 3 times");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// A child process killed when dropped, so a failing test never leaves a daemon running (it
/// would hold its JACK ports and break the next test).
pub struct KillOnDrop(pub std::process::Child);

impl KillOnDrop {
    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    /// Waits for the child to exit.
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.0.wait()
    }

    /// Polls the child.
    pub fn try_wait(&mut self) -> std::io::Result<Option<std::process::ExitStatus>> {
        self.0.try_wait()
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
