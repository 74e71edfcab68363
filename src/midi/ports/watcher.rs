//! Port loss and reconnection: a thread that looks at the port list once a second.
//!
//! midir reports neither unplugged devices nor a vanished JACK server, so the watcher polls by
//! name: a link whose peer port left the list is closed and logged; a closed link is reopened
//! when its port (or the backend) returns. It also turns the input/output drop counters into
//! warnings, since the real-time paths cannot log. Runs on its own non-real-time thread.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use midir::MidiInputConnection;

use super::backend::{self, Endpoint, PortList};
use super::input::{InputCounters, InputHandler};
use super::output::{OutCmd, OutputCounters};
use super::PortError;
use crate::midi::source::{PortRole, RawMidi};

/// Poll period: a returning device is back in use within 1 s; the probe costs two client opens
/// (about 0.2 ms each, measured against a JACK dummy server).
pub const POLL: Duration = Duration::from_secs(1);

/// What a link carries.
pub(crate) enum Kind {
    /// Messages into the engine with this role.
    Input {
        /// Notes or clock.
        role: PortRole,
        /// Where the engine wants them.
        tx: Sender<RawMidi>,
        /// Shared with [`super::Ports::stats`].
        counters: Arc<InputCounters>,
        /// The live connection, when up.
        conn: Option<MidiInputConnection<InputHandler>>,
    },
    /// Messages from the sender thread, which owns the connection.
    Output {
        /// The sender thread's queue.
        tx: Sender<OutCmd>,
    },
}

/// One of our ports and its state.
pub(crate) struct Link {
    /// For logs: "notes in", "clock in", "out".
    pub(crate) label: &'static str,
    /// Backend client name (a JACK client per link).
    pub(crate) client: &'static str,
    /// Our port's name ("aria-bridge in"); the virtual port's name too.
    pub(crate) port_name: &'static str,
    /// Virtual or connected to a named port.
    pub(crate) endpoint: Endpoint,
    /// The name of the port we read or write, while up.
    pub(crate) peer: Option<String>,
    /// Direction and connection.
    pub(crate) kind: Kind,
}

impl Link {
    /// Opens the link's port; on success the link is up.
    pub(crate) fn open(&mut self) -> Result<(), PortError> {
        match &mut self.kind {
            Kind::Input {
                role,
                tx,
                counters,
                conn,
            } => {
                let h = InputHandler::new(tx.clone(), *role, counters.clone());
                let (c, peer) =
                    backend::open_input(&self.endpoint, self.client, self.port_name, h)?;
                *conn = Some(c);
                self.peer = Some(peer);
            }
            Kind::Output { tx } => {
                let (c, peer) = backend::open_output(&self.endpoint, self.client, self.port_name)?;
                // Blocking send: this is a non-real-time thread and the sender drains quickly.
                let _ = tx.send(OutCmd::Attach(c, peer.clone()));
                self.peer = Some(peer);
            }
        }
        Ok(())
    }

    /// Closes the link. `leak` forgets the connection instead: after the JACK server died,
    /// libjack has already freed the client, and closing it again crashes the process.
    pub(crate) fn close(&mut self, leak: bool) {
        self.peer = None;
        match &mut self.kind {
            Kind::Input { conn, .. } => {
                if let Some(c) = conn.take() {
                    if leak {
                        std::mem::forget(c);
                    } else {
                        c.close();
                    }
                }
            }
            Kind::Output { tx } => {
                let _ = tx.send(OutCmd::Detach { leak });
            }
        }
    }

    /// Whether the port list still shows what this link uses.
    fn health(&self, list: &PortList) -> Health {
        let Some(peer) = &self.peer else {
            return Health::Down;
        };
        let (peers, own) = match self.kind {
            Kind::Input { .. } => (&list.inputs, &list.outputs),
            Kind::Output { .. } => (&list.outputs, &list.inputs),
        };
        // Under JACK our own port is listed ("client:aria-bridge in"); if it vanished, the server
        // restarted between two polls and our clients are dead.
        if cfg!(feature = "jack") {
            let suffix = format!(":{}", self.port_name);
            if !own.iter().any(|n| n.ends_with(&suffix)) {
                return Health::BackendRestarted;
            }
        }
        match self.endpoint {
            Endpoint::Named { .. } if !peers.contains(peer) => Health::PeerGone,
            _ => Health::Up,
        }
    }
}

/// A link's state as seen in one poll.
#[derive(Debug, PartialEq, Eq)]
enum Health {
    /// Open, and what it uses is listed.
    Up,
    /// Closed (lost earlier, or never reopened).
    Down,
    /// Open, but the named port it connects to left the list (device unplugged).
    PeerGone,
    /// Open, but our own port left the list: the JACK server restarted under us.
    BackendRestarted,
}

/// Whether connections must be forgotten rather than closed once the backend failed: libjack
/// frees a dead server's clients itself on the next client open (which the probe just did), and
/// closing them again crashes. ALSA and the others close cleanly, and leaking there would leave
/// duplicate ports visible to the DAW.
const LEAK_DEAD_CLIENTS: bool = cfg!(feature = "jack");

/// Runs the watcher until `stop` receives or disconnects; returns the links (to close them).
pub(crate) fn run(
    mut links: Vec<Link>,
    stop: Receiver<()>,
    out_counters: Arc<OutputCounters>,
) -> Vec<Link> {
    let mut backend_up = true;
    let mut seen_drops = DropMarks::default();
    loop {
        match stop.recv_timeout(POLL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return links,
        }
        poll(&mut links, &mut backend_up);
        seen_drops.report(&links, &out_counters);
    }
}

/// One look at the ports.
fn poll(links: &mut [Link], backend_up: &mut bool) {
    let list = match backend::list_ports() {
        Ok(l) => l,
        Err(e) => {
            if *backend_up {
                tracing::warn!(error = %e, "MIDI backend gone: ports closed, reopening when it returns");
                *backend_up = false;
            }
            for l in links.iter_mut().filter(|l| l.peer.is_some()) {
                l.close(LEAK_DEAD_CLIENTS);
            }
            return;
        }
    };
    if !*backend_up {
        tracing::info!("MIDI backend back: reopening ports");
        *backend_up = true;
    }
    for l in links.iter_mut() {
        match l.health(&list) {
            Health::Up => {}
            Health::PeerGone => {
                tracing::warn!(
                    link = l.label,
                    port = l.peer.as_deref().unwrap_or(""),
                    "MIDI port lost: reconnecting when it returns"
                );
                l.close(false);
            }
            Health::BackendRestarted => {
                tracing::warn!(link = l.label, "MIDI backend restarted: reopening port");
                l.close(true);
            }
            Health::Down => {}
        }
        if l.peer.is_none() {
            match l.open() {
                Ok(()) => {
                    tracing::info!(
                        link = l.label,
                        port = l.peer.as_deref().unwrap_or(""),
                        "MIDI port reconnected"
                    )
                }
                Err(e) => tracing::debug!(link = l.label, error = %e, "MIDI port still missing"),
            }
        }
    }
}

/// Drop counts already reported, so each poll warns only about new drops.
#[derive(Default)]
struct DropMarks {
    input: [u64; 2],
    output: u64,
}

impl DropMarks {
    fn report(&mut self, links: &[Link], out: &OutputCounters) {
        for l in links {
            if let Kind::Input { role, counters, .. } = &l.kind {
                let i = (*role == PortRole::Clock) as usize;
                let d = counters.dropped.load(Ordering::Relaxed);
                if d > self.input[i] {
                    tracing::warn!(
                        link = l.label,
                        dropped = d - self.input[i],
                        total = d,
                        "MIDI input dropped messages: the engine's input queue was full"
                    );
                    self.input[i] = d;
                }
            }
        }
        let d = out.dropped.load(Ordering::Relaxed);
        if d > self.output {
            tracing::warn!(
                dropped = d - self.output,
                total = d,
                "MIDI output dropped messages: the sender queue was full"
            );
            self.output = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_link(endpoint: Endpoint, peer: Option<&str>) -> Link {
        let (tx, _rx) = crossbeam_channel::bounded(1);
        Link {
            label: "out",
            client: "aria-bridge-out",
            port_name: "aria-bridge out",
            endpoint,
            peer: peer.map(Into::into),
            kind: Kind::Output { tx },
        }
    }

    fn named() -> Endpoint {
        Endpoint::Named {
            key: "midi.output_port",
            query: "synth".into(),
        }
    }

    /// A healthy list: our own port among the sources (as JACK lists it) and the synth.
    fn list(with_synth: bool, with_own: bool) -> PortList {
        PortList {
            inputs: if with_own {
                vec!["aria-bridge-out:aria-bridge out".into()]
            } else {
                vec![]
            },
            outputs: if with_synth {
                vec!["synth:in".into()]
            } else {
                vec![]
            },
        }
    }

    #[test]
    fn named_link_is_up_while_its_peer_is_listed() {
        let l = out_link(named(), Some("synth:in"));
        assert_eq!(l.health(&list(true, true)), Health::Up);
    }

    #[test]
    fn named_link_whose_peer_left_the_list_is_lost() {
        let l = out_link(named(), Some("synth:in"));
        assert_eq!(l.health(&list(false, true)), Health::PeerGone);
    }

    #[test]
    fn closed_link_is_down() {
        let l = out_link(named(), None);
        assert_eq!(l.health(&list(true, true)), Health::Down);
    }

    #[test]
    fn virtual_link_does_not_depend_on_other_ports() {
        let l = out_link(
            Endpoint::Virtual {
                key: "midi.output_port",
            },
            Some("aria-bridge out"),
        );
        assert_eq!(l.health(&list(false, true)), Health::Up);
    }

    #[cfg(feature = "jack")]
    #[test]
    fn own_port_missing_under_jack_means_the_server_restarted() {
        let l = out_link(named(), Some("synth:in"));
        assert_eq!(l.health(&list(true, false)), Health::BackendRestarted);
    }

    #[test]
    fn closing_an_output_link_detaches_the_sender_and_clears_the_peer() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut l = out_link(named(), Some("synth:in"));
        l.kind = Kind::Output { tx };
        l.close(true);
        assert!(l.peer.is_none());
        assert!(matches!(rx.try_recv(), Ok(OutCmd::Detach { leak: true })));
    }
}
