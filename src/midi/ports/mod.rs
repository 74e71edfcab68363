//! Live MIDI ports through midir: the engine's input and output seams on real ports.
//!
//! [`Ports::open`] creates the virtual ports "aria-bridge in" / "aria-bridge out" (macOS,
//! Linux) or connects to existing ports named in `[midi]` (a case-insensitive substring; on
//! Windows, where WinMM has no virtual ports, names of loopMIDI ports are required). Incoming
//! messages become [`crate::midi::source::RawMidi`] in the driver callback and go to the engine's
//! channel without blocking; outgoing ones leave through [`MidirOut`] and a sender thread. A
//! watcher thread reconnects ports that disappear (device unplugged, JACK server restarted).
//!
//! Threads: the driver's input thread (callback only), "aria-bridge midi out" (sends),
//! "aria-bridge port watch" (polls, logs, reconnects).

mod backend;
mod error;
mod input;
mod matching;
mod output;
mod timestamp;
mod watcher;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;

pub use backend::{list_ports, PortList, BACKEND};
pub use error::PortError;
pub use input::{InputCounters, InputHandler};
pub use matching::{find_port, Direction};
pub use output::{MidirOut, OutputCounters, OUTPUT_QUEUE};
pub use timestamp::{micros_to_nanos, OffsetEstimator};

use crate::config::MidiConfig;
use crate::midi::sink::MidiOut;
use crate::midi::source::{PortRole, RawMidi};
use backend::Endpoint;
use output::OutCmd;
use watcher::{Kind, Link};

/// Name of our virtual input port (and of our port when connecting to a named input).
pub const IN_PORT: &str = "aria-bridge in";
/// Name of our virtual output port (and of our port when connecting to a named output).
pub const OUT_PORT: &str = "aria-bridge out";
/// Name of our port that reads a separate clock source.
pub const CLOCK_PORT: &str = "aria-bridge clock";

/// Message counts since the ports opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Note-port messages handed to the engine.
    pub notes_received: u64,
    /// Note-port messages dropped (engine queue full).
    pub notes_dropped: u64,
    /// Clock-port messages handed to the engine (0 without a separate clock port).
    pub clock_received: u64,
    /// Clock-port messages dropped.
    pub clock_dropped: u64,
    /// Messages the output backend accepted.
    pub sent: u64,
    /// Outgoing messages dropped (sender queue full).
    pub send_dropped: u64,
    /// Outgoing messages lost (no port connected, or the backend refused them).
    pub send_failed: u64,
    /// How late messages left for the port after their intended instant, µs: p50, p99, max.
    pub send_late_us: (u64, u64, u64),
}

/// The open ports: input connections, the output sender thread and the watcher.
///
/// Two phases, because the engine needs its output before it hands out its input channel:
/// ```ignore
/// let mut ports = Ports::open_output(&cfg.midi)?;
/// let live = Live::start(&cfg, generator, ports.output())?;
/// ports.open_inputs(live.input())?;
/// // ... until shutdown:
/// let summary = live.shutdown(); // note-offs, All Notes Off
/// let stats = ports.close();     // sends them, then closes the ports
/// ```
/// [`Ports::open`] does both at once. Dropping it closes everything, like [`Ports::close`].
pub struct Ports {
    cfg: MidiConfig,
    out_tx: Sender<OutCmd>,
    out_counters: Arc<OutputCounters>,
    notes: Arc<InputCounters>,
    clock: Arc<InputCounters>,
    sender: Option<JoinHandle<()>>,
    /// Opened links not yet handed to the watcher (the output, between the two phases).
    links: Vec<Link>,
    watcher: Option<JoinHandle<Vec<Link>>>,
    stop: Option<Sender<()>>,
    connected: Vec<(&'static str, String)>,
}

impl Ports {
    /// Opens every port `cfg` asks for, feeding incoming messages into `input` (the engine's
    /// bounded channel): [`Ports::open_output`] then [`Ports::open_inputs`].
    pub fn open(cfg: &MidiConfig, input: Sender<RawMidi>) -> Result<Ports, PortError> {
        let mut ports = Self::open_output(cfg)?;
        ports.open_inputs(input)?;
        Ok(ports)
    }

    /// Opens the output port (virtual "aria-bridge out", or `midi.output_port`) and its sender
    /// thread. Fails when the backend is missing or the name matches no port or several.
    pub fn open_output(cfg: &MidiConfig) -> Result<Ports, PortError> {
        let out_counters = Arc::new(OutputCounters::default());
        let (out_tx, out_rx) = crossbeam_channel::bounded(OUTPUT_QUEUE);
        let sender = output::spawn_sender(out_rx, out_counters.clone())?;
        let mut ports = Ports {
            cfg: cfg.clone(),
            out_tx: out_tx.clone(),
            out_counters,
            notes: Arc::new(InputCounters::default()),
            clock: Arc::new(InputCounters::default()),
            sender: Some(sender),
            links: Vec::new(),
            watcher: None,
            stop: None,
            connected: Vec::new(),
        };
        let link = Link {
            label: "out",
            client: "aria-bridge-out",
            port_name: OUT_PORT,
            endpoint: endpoint("midi.output_port", &cfg.output_port),
            peer: None,
            kind: Kind::Output { tx: out_tx },
        };
        ports.add(link)?;
        Ok(ports)
    }

    /// Opens the note input (virtual "aria-bridge in", or `midi.input_port`) and, when set and
    /// different, `midi.clock_port`, then starts the watcher that reconnects lost ports.
    ///
    /// A `clock_port` equal to `input_port` (ignoring case) is the same port: it is opened once
    /// and its messages carry [`PortRole::Notes`]. Call once.
    pub fn open_inputs(&mut self, input: Sender<RawMidi>) -> Result<(), PortError> {
        assert!(self.watcher.is_none(), "Ports::open_inputs called twice");
        let notes = Link {
            label: "notes in",
            client: "aria-bridge-in",
            port_name: IN_PORT,
            endpoint: endpoint("midi.input_port", &self.cfg.input_port),
            peer: None,
            kind: Kind::Input {
                role: PortRole::Notes,
                tx: input.clone(),
                counters: self.notes.clone(),
                conn: None,
            },
        };
        self.add(notes)?;
        if let Some(q) = separate_clock(&self.cfg) {
            let clock = Link {
                label: "clock in",
                client: "aria-bridge-clock",
                port_name: CLOCK_PORT,
                endpoint: Endpoint::Named {
                    key: "midi.clock_port",
                    query: q.to_owned(),
                },
                peer: None,
                kind: Kind::Input {
                    role: PortRole::Clock,
                    tx: input,
                    counters: self.clock.clone(),
                    conn: None,
                },
            };
            self.add(clock)?;
        }
        let links = std::mem::take(&mut self.links);
        let out_counters = self.out_counters.clone();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(1);
        let watcher = std::thread::Builder::new()
            .name("aria-bridge port watch".into())
            .spawn(move || watcher::run(links, stop_rx, out_counters))
            .map_err(|source| PortError::Thread {
                what: "port watcher",
                source,
            })?;
        self.watcher = Some(watcher);
        self.stop = Some(stop_tx);
        Ok(())
    }

    /// Opens `link` and keeps it; on an error the links opened so far stay owned (closed by
    /// drop).
    fn add(&mut self, mut link: Link) -> Result<(), PortError> {
        link.open()?;
        let peer = link.peer.clone().unwrap_or_default();
        tracing::info!(link = link.label, port = %peer, backend = BACKEND, "MIDI port open");
        self.connected.push((link.label, peer));
        self.links.push(link);
        Ok(())
    }

    /// A handle for the engine's scheduler; every handle feeds the same sender thread.
    pub fn output(&self) -> Box<dyn MidiOut> {
        Box::new(MidirOut::new(
            self.out_tx.clone(),
            self.out_counters.clone(),
        ))
    }

    /// Puts the MIDI sender thread under `SCHED_FIFO` at `priority` (see [`crate::engine::realtime`]).
    pub fn promote_sender(
        &self,
        priority: u8,
    ) -> Result<(), crate::engine::realtime::RealtimeError> {
        match &self.sender {
            Some(h) => crate::engine::realtime::promote(h, priority),
            None => Ok(()),
        }
    }

    /// The ports as opened, in order: (link, port name), e.g. ("out", "aria-bridge out"),
    /// ("notes in", "KeyStep 37:KeyStep 37 MIDI 1 24:0"), ("clock in", ...).
    pub fn connected(&self) -> &[(&'static str, String)] {
        &self.connected
    }

    /// Message counts so far.
    pub fn stats(&self) -> PortStats {
        let r = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        PortStats {
            notes_received: r(&self.notes.received),
            notes_dropped: r(&self.notes.dropped),
            clock_received: r(&self.clock.received),
            clock_dropped: r(&self.clock.dropped),
            sent: r(&self.out_counters.sent),
            send_dropped: r(&self.out_counters.dropped),
            send_failed: r(&self.out_counters.failed),
            send_late_us: {
                let h = self.out_counters.lateness_us.lock();
                (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max())
            },
        }
    }

    /// Writes a line per sent message to `path` (intended instant, send instant, bytes), for
    /// measuring output timing against a peer on the same machine.
    pub fn log_sends(&self, path: &std::path::Path) -> std::io::Result<()> {
        let f = std::fs::File::create(path)?;
        self.out_tx
            .send(OutCmd::Log(std::io::BufWriter::new(f)))
            .map_err(|_| std::io::Error::other("the MIDI output thread has stopped"))
    }

    /// Stops the watcher, closes the inputs, sends what the output still holds (call it after
    /// the engine's note-offs), closes the output and returns the final counts.
    pub fn close(mut self) -> PortStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        drop(self.stop.take());
        let mut links = std::mem::take(&mut self.links);
        if let Some(w) = self.watcher.take() {
            if let Ok(l) = w.join() {
                links.extend(l);
            }
        }
        for mut l in links {
            // The output connection belongs to the sender thread, which closes it after draining.
            if matches!(l.kind, Kind::Input { .. }) {
                l.close(false);
            }
        }
        if let Some(s) = self.sender.take() {
            let _ = self.out_tx.send(OutCmd::Stop);
            let _ = s.join();
        }
    }
}

impl Drop for Ports {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn endpoint(key: &'static str, name: &Option<String>) -> Endpoint {
    match name {
        Some(q) => Endpoint::Named {
            key,
            query: q.clone(),
        },
        None => Endpoint::Virtual { key },
    }
}

/// The clock port's query when it differs from the note input's.
fn separate_clock(cfg: &MidiConfig) -> Option<&str> {
    let c = cfg.clock_port.as_deref()?;
    let same = cfg
        .input_port
        .as_deref()
        .is_some_and(|i| i.trim().eq_ignore_ascii_case(c.trim()));
    (!same).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn midi(input: Option<&str>, clock: Option<&str>) -> MidiConfig {
        MidiConfig {
            input_port: input.map(Into::into),
            clock_port: clock.map(Into::into),
            ..MidiConfig::default()
        }
    }

    #[test]
    fn clock_port_naming_the_note_port_is_not_opened_twice() {
        assert_eq!(
            separate_clock(&midi(Some("KeyStep"), Some("keystep "))),
            None
        );
        assert_eq!(separate_clock(&midi(None, None)), None);
        assert_eq!(
            separate_clock(&midi(Some("KeyStep"), Some("Live"))),
            Some("Live")
        );
        assert_eq!(separate_clock(&midi(None, Some("Live"))), Some("Live"));
    }

    #[test]
    fn unset_port_names_mean_virtual_ports() {
        assert_eq!(
            endpoint("midi.input_port", &None),
            Endpoint::Virtual {
                key: "midi.input_port"
            }
        );
    }
}
