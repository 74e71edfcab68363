//! A scripted DAW for end-to-end tests: a timed script of MIDI bytes (clock with tempo changes
//! and ramps, Start/Stop/Continue, Song Position at loop wraps, the human's notes) and signals,
//! played into an `aria-bridge run` daemon through JACK, with everything the daemon sends back
//! recorded on the same monotonic clock.
//!
//! A live test is then a short script and an assertion:
//! ```ignore
//! let mut daw = Daw::new(120.0);
//! daw.start();
//! daw.bars(4, &arpeggio(4, 4));
//! daw.stop();
//! let mut d = Daemon::start("wrap", "");
//! let take = d.perform(&daw.script());
//! assert_eq!(take.hanging(), 0);
//! ```
//! Script times are offsets from the take's start; [`Take`] times are offsets from the same
//! start, so "the daemon sent X 3 ms after the script's Stop" is a subtraction.
//!
//! Beyond a fixed script: [`Daemon::perform_live`] lets the DAW answer what the daemon sends
//! (a player doubling its notes, a SIGKILL at the first note of bar 2); [`Daemon::loop_back`]
//! patches the daemon's output into its own input (a routing loop); [`Daemon::kill`] and
//! [`Daemon::restart`] crash it and start a new instance on the same peer and config;
//! [`Daemon::write_config`] and [`Daemon::signal`] drive a reload.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aria_bridge::clock::timebase;
use aria_bridge::Nanos;

use super::{jack_connect, jack_ports, HumanNote, JackPeer, KillOnDrop, Timed};

/// The daemon's own JACK ports (one client each).
pub const DAEMON_OUT: &str = "aria-bridge-out:aria-bridge out";
/// See [`DAEMON_OUT`].
pub const DAEMON_IN: &str = "aria-bridge-in:aria-bridge in";

/// One thing the DAW does at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cue {
    /// Send these bytes to the daemon's input.
    Midi(Timed),
    /// Send this signal (`libc::SIGINT`, `SIGTERM`, `SIGHUP`, `SIGKILL`) to the daemon.
    Signal(i32),
}

/// What the DAW plays: cues sorted by time (ns from the take's start).
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// `(offset ns, cue)`, sorted by offset; equal offsets keep their order of writing.
    pub cues: Vec<(Nanos, Cue)>,
}

impl Script {
    /// Offset of the first cue whose bytes start with `status`, if any.
    pub fn first(&self, status: u8) -> Option<Nanos> {
        self.cues.iter().find_map(|(t, c)| match c {
            Cue::Midi(m) if m.bytes[0] == status => Some(*t),
            _ => None,
        })
    }

    /// Offset of the last cue whose bytes start with `status`, if any.
    pub fn last(&self, status: u8) -> Option<Nanos> {
        self.cues.iter().rev().find_map(|(t, c)| match c {
            Cue::Midi(m) if m.bytes[0] == status => Some(*t),
            _ => None,
        })
    }

    /// End of the script.
    pub fn end(&self) -> Nanos {
        self.cues.last().map_or(0, |c| c.0)
    }
}

/// Writes a [`Script`] the way a DAW's transport moves: a song position in pulses (24 per
/// quarter note), a tempo that can step or ramp, and a time cursor that clocks advance.
///
/// Each clock is sent at the cursor, then the cursor moves one period at the tempo in force
/// (a ramp changes the period pulse by pulse, as Ableton's tempo automation does).
#[derive(Clone, Debug)]
pub struct Daw {
    /// Time cursor, ns from the take's start (fractional so long runs do not drift).
    at: f64,
    /// Song position, pulses.
    pulse: u64,
    /// Tempo in force, BPM.
    bpm: f64,
    /// A ramp in progress: (target BPM, pulses left).
    ramp: Option<(f64, u64)>,
    /// Pulses per bar (4/4: 96).
    ppb: u64,
    cues: Vec<(f64, Cue)>,
    /// Time of every clock sent, by song pulse of the current pass (for placing notes).
    pulse_times: Vec<(u64, f64)>,
}

impl Daw {
    /// A stopped DAW at song position 0, `bpm`, 4/4, its cursor 0.
    pub fn new(bpm: f64) -> Daw {
        Daw {
            at: 0.0,
            pulse: 0,
            bpm,
            ramp: None,
            ppb: 96,
            cues: Vec::new(),
            pulse_times: Vec::new(),
        }
    }

    /// Sets the meter's length in pulses per bar (3/4: 72).
    pub fn pulses_per_bar(&mut self, ppb: u64) -> &mut Self {
        self.ppb = ppb;
        self
    }

    /// The period of one pulse at the tempo in force, ns.
    pub fn period_ns(&self) -> f64 {
        60e9 / (self.bpm * 24.0)
    }

    /// The time cursor, ns.
    pub fn now(&self) -> Nanos {
        self.at.round() as Nanos
    }

    /// The song position, pulses.
    pub fn position(&self) -> u64 {
        self.pulse
    }

    /// The tempo in force, BPM.
    pub fn bpm(&self) -> f64 {
        self.bpm
    }

    fn push(&mut self, at: f64, cue: Cue) {
        self.cues.push((at.max(0.0), cue));
    }

    /// Sends `bytes` at the cursor moved by `offset_ns` (negative: earlier, as a message that
    /// shares a JACK period with the clock before it).
    pub fn send_at(&mut self, offset_ns: f64, bytes: &[u8]) -> &mut Self {
        let at = self.at + offset_ns;
        self.push(at, Cue::Midi(Timed::new(0, bytes)));
        self
    }

    /// Sends `bytes` at the cursor.
    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.send_at(0.0, bytes)
    }

    /// Start (0xFA): song position 0.
    pub fn start(&mut self) -> &mut Self {
        self.pulse = 0;
        self.send(&[0xFA])
    }

    /// Continue (0xFB) from the current song position.
    pub fn continue_(&mut self) -> &mut Self {
        self.send(&[0xFB])
    }

    /// Stop (0xFC) at the cursor: right where the next clock would have been, so a Stop after
    /// `bars(n)` lands exactly on a bar line.
    pub fn stop(&mut self) -> &mut Self {
        self.send(&[0xFC])
    }

    /// Song Position Pointer to `sixteenths` (6 pulses each), `offset_ns` from the cursor.
    pub fn spp_at(&mut self, sixteenths: u16, offset_ns: f64) -> &mut Self {
        self.pulse = u64::from(sixteenths) * 6;
        let (lsb, msb) = ((sixteenths & 0x7F) as u8, (sixteenths >> 7) as u8);
        self.send_at(offset_ns, &[0xF2, lsb, msb])
    }

    /// Song Position Pointer to `sixteenths` at the cursor.
    pub fn spp(&mut self, sixteenths: u16) -> &mut Self {
        self.spp_at(sixteenths, 0.0)
    }

    /// Changes the tempo now (a step).
    pub fn tempo(&mut self, bpm: f64) -> &mut Self {
        self.bpm = bpm;
        self.ramp = None;
        self
    }

    /// Ramps the tempo linearly to `bpm` over the next `pulses` clocks.
    pub fn ramp_to(&mut self, bpm: f64, pulses: u64) -> &mut Self {
        self.ramp = (pulses > 0).then_some((bpm, pulses));
        if pulses == 0 {
            self.bpm = bpm;
        }
        self
    }

    /// Lets `ms` pass without clocks (a stopped transport, or a master that went silent).
    pub fn wait_ms(&mut self, ms: f64) -> &mut Self {
        self.at += ms * 1e6;
        self
    }

    /// Sends `n` clocks from the cursor, advancing the song position and the cursor.
    pub fn clocks(&mut self, n: u64) -> &mut Self {
        for _ in 0..n {
            let at = self.at;
            self.pulse_times.push((self.pulse, at));
            self.push(at, Cue::Midi(Timed::new(0, &[0xF8])));
            if let Some((target, left)) = self.ramp {
                self.bpm += (target - self.bpm) / left as f64;
                self.ramp = (left > 1).then_some((target, left - 1));
            }
            self.at += self.period_ns();
            self.pulse += 1;
        }
        self
    }

    /// Plays `n` bars of clock with the human `part` (beats from the first of these bars,
    /// channel 1) placed on the clocks as they are sent, so a note follows tempo changes like a
    /// DAW's MIDI clip does.
    pub fn bars(&mut self, n: u64, part: &[HumanNote]) -> &mut Self {
        let from = self.pulse_times.len();
        let pulses = n * self.ppb;
        self.clocks(pulses);
        let times: Vec<(u64, f64)> = self.pulse_times[from..].to_vec();
        let end = self.at;
        let time_of = |beat: f64| -> f64 {
            let p = beat * 24.0;
            let i = p.floor() as usize;
            let frac = p - p.floor();
            match (times.get(i), times.get(i + 1)) {
                (Some(&(_, a)), Some(&(_, b))) => a + (b - a) * frac,
                (Some(&(_, a)), None) => a + (end - a) * frac,
                _ => end,
            }
        };
        for note in part {
            if note.beat * 24.0 >= pulses as f64 {
                continue;
            }
            let on = time_of(note.beat);
            let off = time_of((note.beat + note.len).min(pulses as f64 / 24.0));
            self.push(on, Cue::Midi(Timed::new(0, &[0x90, note.key, note.vel])));
            // A note-off at the very end of the segment would follow a Stop written at the
            // cursor: end it just before.
            self.push(
                off.min(end - 1_000.0),
                Cue::Midi(Timed::new(0, &[0x80, note.key, 0])),
            );
        }
        self
    }

    /// A loop wrap as Ableton sends it: the Song Position of the loop start `offset_ns` from
    /// the wrap clock (0 = the same instant, i.e. the same JACK period; negative = just before),
    /// then the clocks of the next pass go on from there.
    pub fn wrap_to(&mut self, sixteenths: u16, offset_ns: f64) -> &mut Self {
        self.spp_at(sixteenths, offset_ns)
    }

    /// Sends `signal` to the daemon at the cursor.
    pub fn signal(&mut self, signal: i32) -> &mut Self {
        let at = self.at;
        self.push(at, Cue::Signal(signal));
        self
    }

    /// The script so far, sorted by time (stable: equal instants keep their order).
    pub fn script(&self) -> Script {
        let mut cues: Vec<(f64, Cue)> = self.cues.clone();
        cues.sort_by(|a, b| a.0.total_cmp(&b.0));
        Script {
            cues: cues
                .into_iter()
                .map(|(t, c)| (t.round() as Nanos, c))
                .collect(),
        }
    }
}

/// What the daemon sent during a take: `(ns from the take's start, bytes)`, in arrival order.
#[derive(Clone, Debug, Default)]
pub struct Take {
    /// Messages received from the daemon.
    pub received: Vec<(i64, Vec<u8>)>,
    /// The instant the take started (script offset 0), in the monotonic timebase.
    pub start: Nanos,
}

impl Take {
    /// This take followed by `later` (times stay on the same clock when both share `start`).
    pub fn then(mut self, later: Take) -> Take {
        let shift = later.start as i64 - self.start as i64;
        self.received
            .extend(later.received.into_iter().map(|(t, b)| (t + shift, b)));
        self
    }

    /// Note-ons (velocity > 0): `(time, channel, key, velocity)`.
    pub fn note_ons(&self) -> Vec<(i64, u8, u8, u8)> {
        self.received
            .iter()
            .filter(|(_, b)| b.len() == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0)
            .map(|(t, b)| (*t, b[0] & 0x0F, b[1], b[2]))
            .collect()
    }

    /// Messages whose status byte is `status` (e.g. `0xB0` for controllers on channel 1).
    pub fn with_status(&self, status: u8) -> Vec<(i64, Vec<u8>)> {
        self.received
            .iter()
            .filter(|(_, b)| b.first() == Some(&status))
            .cloned()
            .collect()
    }

    /// Controller messages `cc` on any channel: `(time, channel, value)`.
    pub fn controllers(&self, cc: u8) -> Vec<(i64, u8, u8)> {
        self.received
            .iter()
            .filter(|(_, b)| b.len() == 3 && b[0] & 0xF0 == 0xB0 && b[1] == cc)
            .map(|(t, b)| (*t, b[0] & 0x0F, b[2]))
            .collect()
    }

    /// Notes left sounding at the end of the take, `(channel, key)`. Strict: CC123 does not
    /// close a note (some hardware ignores it).
    pub fn hanging(&self) -> Vec<(u8, u8)> {
        let mut on = [[0i32; 128]; 16];
        for (_, b) in &self.received {
            if b.len() != 3 {
                continue;
            }
            let (ch, k) = ((b[0] & 0x0F) as usize, (b[1] & 0x7F) as usize);
            match b[0] & 0xF0 {
                0x90 if b[2] > 0 => on[ch][k] += 1,
                0x80 | 0x90 => on[ch][k] = (on[ch][k] - 1).max(0),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (ch, keys) in on.iter().enumerate() {
            for (k, &n) in keys.iter().enumerate() {
                if n > 0 {
                    out.push((ch as u8, k as u8));
                }
            }
        }
        out
    }

    /// Every message as hex with its time in ms, one per line (for failure messages).
    pub fn dump(&self) -> String {
        self.received
            .iter()
            .map(|(t, b)| {
                let hex: Vec<String> = b.iter().map(|x| format!("{x:02X}")).collect();
                format!("{:10.3} ms  {}", *t as f64 / 1e6, hex.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Where a daemon's model comes from: `ARIA_E2E_MODEL`, else the tiny reference model (it
/// plays dense random notes fast: good for timing and hygiene, not for music).
pub fn e2e_model() -> String {
    std::env::var("ARIA_E2E_MODEL")
        .unwrap_or_else(|_| format!("{}/models/aria-tiny-dev.onnx", env!("CARGO_MANIFEST_DIR")))
}

/// A running `aria-bridge run` wired to a [`JackPeer`] of the same name: the peer's output
/// feeds the daemon's input, the daemon's output feeds the peer's recorder.
pub struct Daemon {
    /// The test peer (DAW side).
    pub peer: JackPeer,
    child: Option<KillOnDrop>,
    dir: tempfile::TempDir,
    /// Extra `run` flags, kept for a restart.
    args: Vec<String>,
    /// Instances started so far (each writes its own stderr file).
    instances: u32,
    /// One daemon at a time per test binary: they all name their JACK clients "aria-bridge-in"
    /// and "aria-bridge-out".
    _serial: std::sync::MutexGuard<'static, ()>,
}

/// Waits (up to 10 s) until no daemon port ([`DAEMON_OUT`], [`DAEMON_IN`]) is listed.
fn wait_ports_gone() {
    let end = Instant::now() + Duration::from_secs(10);
    while jack_ports()
        .iter()
        .any(|p| p == DAEMON_OUT || p == DAEMON_IN)
    {
        assert!(
            Instant::now() < end,
            "an earlier daemon's JACK ports are still listed after 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Serialises daemons within one test binary (a failed test poisons nothing: the guard is
/// taken back from a poisoned lock).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl Daemon {
    /// Starts the daemon with a config made of the wiring (`midi.input_port`, `output_port`),
    /// the model, and `extra` TOML appended (whole sections, e.g. "[playback]\nfallback =
    /// \"repeat_last\"\n"; sections the wiring already opens may not appear twice: use
    /// [`Daemon::start_with`] for full control). Waits for the daemon's ports (up to 60 s).
    pub fn start(name: &str, extra: &str) -> Daemon {
        Daemon::start_with(name, &Daemon::config(name, extra), &[])
    }

    /// The config [`Daemon::start`] writes.
    pub fn config(name: &str, extra: &str) -> String {
        Daemon::config_midi(name, "", extra)
    }

    /// The config [`Daemon::start`] writes, with `midi` lines added to its `[midi]` section
    /// (e.g. "thru = true\n").
    pub fn config_midi(name: &str, midi: &str, extra: &str) -> String {
        format!(
            "[midi]\ninput_port = \"{name} out\"\noutput_port = \"{name} in\"\n{midi}\n[model]\npath = \"{}\"\ndevice = \"cpu\"\n\n{extra}",
            e2e_model()
        )
    }

    /// Starts the daemon with the whole config text `config` and extra `run` flags.
    pub fn start_with(name: &str, config: &str, args: &[&str]) -> Daemon {
        let guard = serial();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("daemon.toml"), config).expect("write config");
        let peer = JackPeer::open(name);
        let mut d = Daemon {
            peer,
            child: None,
            dir,
            args: args.iter().map(|a| a.to_string()).collect(),
            instances: 0,
            _serial: guard,
        };
        // Another process's "aria-bridge-*" clients (a test binary that just exited) may still
        // be listed: the new daemon's clients would get other names and its ports be mistaken
        // for the old ones.
        wait_ports_gone();
        d.spawn();
        d.wait_ready();
        let _ = d.peer.drain();
        d
    }

    /// Starts one instance of the daemon on the config file, its stderr in a file of its own.
    fn spawn(&mut self) {
        self.instances += 1;
        let stderr = std::fs::File::create(self.log_path()).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_aria-bridge"))
            .arg("run")
            .arg("--config")
            .arg(self.config_path())
            .arg("--log")
            .arg(self.events_path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start aria-bridge run");
        self.child = Some(KillOnDrop(child));
    }

    /// The config file the daemon reads (and rereads on SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("daemon.toml")
    }

    /// Replaces the config file (for a reload: then [`Daemon::signal`] `libc::SIGHUP`).
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// Stderr of the current instance.
    fn log_path(&self) -> PathBuf {
        let n = self.instances;
        let name = if n <= 1 {
            "daemon.log".to_string()
        } else {
            format!("daemon.{n}.log")
        };
        self.dir.path().join(name)
    }

    /// Sends `sig` to the daemon now (nothing when no instance runs: pid 0 would signal our
    /// own process group).
    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        if pid > 0 {
            // SAFETY: kill(2) with our own child's pid and a valid signal number.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Patches the daemon's output into its own input (`jack_connect`): a routing loop.
    pub fn loop_back(&self) {
        jack_connect(DAEMON_OUT, DAEMON_IN);
        // Let a few periods pass so the loop is in place before the script begins.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Kills the daemon with SIGKILL (a crash: no shutdown, nothing closed), waits for the
    /// process and for the JACK server to drop its ports.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.reap();
    }

    /// Waits until the daemon is gone: its process (killed from a script) and its ports.
    pub fn reap(&mut self) {
        let end = Instant::now() + Duration::from_secs(10);
        if let Some(mut child) = self.child.take() {
            while child.try_wait().ok().flatten().is_none() {
                assert!(Instant::now() < end, "the daemon did not exit");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        wait_ports_gone();
    }

    /// Starts a new instance (same config, flags and peer) after [`Daemon::kill`] or
    /// [`Daemon::reap`]; returns what it sent from its launch until it was ready, stamped from
    /// the launch.
    pub fn restart(&mut self) -> Take {
        assert!(
            self.child.is_none(),
            "kill or reap the running instance first"
        );
        let start = timebase::now();
        self.spawn();
        let got = self.wait_ready();
        Take {
            received: got
                .into_iter()
                .map(|m| (m.at as i64 - start as i64, m.as_slice().to_vec()))
                .collect(),
            start,
        }
    }

    /// A counter of the closing "engine summary" line (e.g. `echoes_dropped`), once the daemon
    /// has exited.
    pub fn summary_counter(&self, name: &str) -> Option<u64> {
        let log = self.log();
        let line = log.lines().rev().find(|l| l.contains("engine summary"))?;
        let at = line.find(&format!("{name}: "))? + name.len() + 2;
        line[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    }

    /// Waits for the daemon's ports and its "ready" line (up to 60 s), lets the connections
    /// settle, and returns what it sent meanwhile.
    fn wait_ready(&mut self) -> Vec<aria_bridge::midi::source::RawMidi> {
        let end = Instant::now() + Duration::from_secs(60);
        let ours = [
            "aria-bridge-in:aria-bridge in",
            "aria-bridge-out:aria-bridge out",
        ];
        loop {
            let ports = jack_ports();
            let inputs_wired = ours.iter().all(|p| ports.iter().any(|q| q == p));
            let log = self.log();
            let ready = log.contains("waiting for a MIDI clock master")
                || log.contains("internal clock at");
            if inputs_wired && ready {
                break;
            }
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("aria-bridge run exited early ({st}); log:\n{}", self.log());
            }
            assert!(
                Instant::now() < end,
                "aria-bridge did not become ready in 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Connections take effect at the next graph reorder; let a few periods pass.
        std::thread::sleep(Duration::from_millis(300));
        self.peer.drain()
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Plays `script` (starting 200 ms from now), then keeps recording for `tail_ms` after its
    /// last cue. Signals go to the daemon's pid. Blocks for the length of the script.
    pub fn perform_with_tail(&mut self, script: &Script, tail_ms: u64) -> Take {
        let start = timebase::now() + 200_000_000;
        let sleeper = spin_sleep::SpinSleeper::default();
        let pid = self.pid() as i32;
        for (at, cue) in &script.cues {
            sleeper.sleep_until(timebase::to_instant(start + at));
            match cue {
                Cue::Midi(m) => self.peer.send_now(m.as_slice()),
                Cue::Signal(sig) => {
                    // SAFETY: kill(2) with our own child's pid and a valid signal number.
                    unsafe { libc::kill(pid, *sig) };
                }
            }
        }
        std::thread::sleep(Duration::from_millis(tail_ms));
        Take {
            received: self
                .peer
                .drain()
                .into_iter()
                .map(|m| (m.at as i64 - start as i64, m.as_slice().to_vec()))
                .collect(),
            start,
        }
    }

    /// Plays `script` like [`Daemon::perform_with_tail`] while answering the daemon:
    /// `respond(t, bytes)` sees each message the daemon sends as it arrives (`t` from the take's
    /// start) and returns cues to play that many ns after its arrival (the DAW's own notes,
    /// or a signal). Polls every 0.2 ms; answers are played within about that of their instant.
    pub fn perform_live(
        &mut self,
        script: &Script,
        tail_ms: u64,
        mut respond: impl FnMut(i64, &[u8]) -> Vec<(Nanos, Cue)>,
    ) -> Take {
        let start = timebase::now() + 200_000_000;
        let end = start + script.end() + tail_ms * 1_000_000;
        let sleeper = spin_sleep::SpinSleeper::default();
        let pid = self.pid() as i32;
        let mut next_cue = 0;
        // Answers waiting for their instant (absolute), in no particular order.
        let mut answers: Vec<(Nanos, Cue)> = Vec::new();
        let mut received = Vec::new();
        loop {
            for m in self.peer.drain() {
                let t = m.at as i64 - start as i64;
                for (after, cue) in respond(t, m.as_slice()) {
                    answers.push((m.at + after, cue));
                }
                received.push((t, m.as_slice().to_vec()));
            }
            let scripted = script.cues.get(next_cue).map(|(t, c)| (start + t, *c));
            let answer = (0..answers.len()).min_by_key(|&i| answers[i].0);
            let due = match (scripted, answer) {
                (Some((ts, _)), Some(i)) if answers[i].0 < ts => Some((answers[i].0, Some(i))),
                (Some((ts, _)), _) => Some((ts, None)),
                (None, Some(i)) => Some((answers[i].0, Some(i))),
                (None, None) => None,
            };
            let now = timebase::now();
            match due {
                Some((at, which)) if at <= now => {
                    let cue = match which {
                        Some(i) => answers.swap_remove(i).1,
                        None => {
                            next_cue += 1;
                            scripted.map(|s| s.1).unwrap_or(Cue::Signal(0))
                        }
                    };
                    match cue {
                        Cue::Midi(m) => self.peer.send_now(m.as_slice()),
                        Cue::Signal(0) => {}
                        Cue::Signal(_) if pid <= 0 => {}
                        Cue::Signal(sig) => {
                            // SAFETY: kill(2) with our own child's pid and a valid signal.
                            unsafe { libc::kill(pid, sig) };
                        }
                    }
                }
                Some((at, _)) if at < now + 1_000_000 => {
                    sleeper.sleep_until(timebase::to_instant(at.min(now + 200_000)))
                }
                _ if due.is_none() && now >= end => break,
                _ => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        Take { received, start }
    }

    /// [`Daemon::perform_with_tail`] with 500 ms of tail.
    pub fn perform(&mut self, script: &Script) -> Take {
        self.perform_with_tail(script, 500)
    }

    /// What the current instance printed on stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The session event log (`--log`), one JSON value per line (damaged lines skipped).
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.events_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Path of the event log.
    pub fn events_path(&self) -> PathBuf {
        self.dir.path().join("events.jsonl")
    }

    /// The scratch directory (config, logs).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Whether the daemon process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Sends SIGINT (Ctrl-C), waits up to 10 s for the exit, and records what arrived
    /// meanwhile (the shutdown's note-offs). Returns the exit status and those messages.
    pub fn interrupt(&mut self, start: Nanos) -> (std::process::ExitStatus, Take) {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: kill(2) with our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let end = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            assert!(
                Instant::now() < end,
                "aria-bridge did not exit 10 s after SIGINT; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(100));
        let take = Take {
            received: self
                .peer
                .drain()
                .into_iter()
                .map(|m| (m.at as i64 - start as i64, m.as_slice().to_vec()))
                .collect(),
            start,
        };
        (status, take)
    }
}
