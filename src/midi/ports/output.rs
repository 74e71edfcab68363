//! The output seam's live implementation: [`MidirOut`] and its sender thread.
//!
//! midir's `send` is not real-time safe in most backends (ALSA: a syscall; JACK: a ringbuffer
//! write but with a debug-asserting size check; CoreMIDI: a packet list and an IPC), so the
//! scheduler thread only `try_send`s a fixed-size command on a bounded channel and a dedicated
//! thread calls midir immediately: the scheduler already waited until each message's instant.
//! The same channel carries connection changes from the watcher, so messages and reconnects
//! stay in order.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use midir::MidiOutputConnection;

use super::PortError;
use crate::midi::sink::MidiOut;
use crate::Nanos;

/// Commands that fit in 2048 slots cover a dense bar of AI notes plus All Notes Off on 16
/// channels many times over; beyond that the sender thread is stuck and dropping is right.
pub const OUTPUT_QUEUE: usize = 2048;

/// How long the sender waits before closing the port at shutdown: JACK emits what `send` wrote
/// at the start of the next period (up to 2048 frames = 43 ms at 48 kHz), so the final
/// note-offs need that long to leave.
const FLUSH_BEFORE_CLOSE: Duration = Duration::from_millis(100);

/// Message counts of the output, shared with its owner.
#[derive(Debug)]
pub struct OutputCounters {
    /// Messages the backend accepted.
    pub sent: AtomicU64,
    /// Messages dropped because the sender's queue was full.
    pub dropped: AtomicU64,
    /// Messages lost because no port was connected or the backend refused them.
    pub failed: AtomicU64,
    /// How late each message left the sender thread after its intended instant, µs (recorded by
    /// the sender thread only; read at the end for the port summary).
    pub lateness_us: parking_lot::Mutex<hdrhistogram::Histogram<u64>>,
}

impl Default for OutputCounters {
    fn default() -> Self {
        Self {
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            // 1 µs to 60 s at 3 significant digits: preallocated, so recording never allocates.
            lateness_us: parking_lot::Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                    .expect("valid histogram bounds"),
            ),
        }
    }
}

/// A file that receives one line per sent message: intended instant, actual send instant (both
/// `clock::timebase::now()` nanoseconds, CLOCK_MONOTONIC on Unix) and the bytes in hex.
pub type SendLog = std::io::BufWriter<std::fs::File>;

/// What the sender thread is told.
pub(crate) enum OutCmd {
    /// Send these bytes now; the last field is the instant the scheduler meant them for.
    Midi([u8; 3], u8, Nanos),
    /// Write a line per sent message here from now on.
    Log(SendLog),
    /// Use this connection from now on (to the named port).
    Attach(MidiOutputConnection, String),
    /// The port is gone; `leak` when the backend freed the client already (JACK server death),
    /// where closing it again would crash libjack.
    Detach {
        /// Forget the connection instead of closing it.
        leak: bool,
    },
    /// Drain, wait for the last messages to leave, close and exit.
    Stop,
}

/// A [`MidiOut`] that hands messages to the sender thread. Cheap to clone.
#[derive(Clone)]
pub struct MidirOut {
    tx: Sender<OutCmd>,
    counters: Arc<OutputCounters>,
}

impl MidirOut {
    pub(crate) fn new(tx: Sender<OutCmd>, counters: Arc<OutputCounters>) -> Self {
        Self { tx, counters }
    }
}

impl MidiOut for MidirOut {
    /// Runs on the scheduler thread: no allocation, never blocks; a full queue drops and counts.
    fn send(&mut self, at: Nanos, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut b = [0u8; 3];
        let n = bytes.len().min(3);
        b[..n].copy_from_slice(&bytes[..n]);
        if self.tx.try_send(OutCmd::Midi(b, n as u8, at)).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the sender thread; it runs until [`OutCmd::Stop`] or until every sender is gone.
pub(crate) fn spawn_sender(
    rx: Receiver<OutCmd>,
    counters: Arc<OutputCounters>,
) -> Result<JoinHandle<()>, PortError> {
    std::thread::Builder::new()
        .name("aria-bridge midi out".into())
        .spawn(move || run_sender(rx, counters))
        .map_err(|source| PortError::Thread {
            what: "output",
            source,
        })
}

/// The sender thread's loop (non-real-time; logging allowed).
fn run_sender(rx: Receiver<OutCmd>, counters: Arc<OutputCounters>) {
    let mut conn: Option<MidiOutputConnection> = None;
    let mut port = String::new();
    // One warning per outage, not one per message (a bar can hold hundreds).
    let mut warned = false;
    let mut log: Option<SendLog> = None;
    for cmd in rx.iter() {
        match cmd {
            OutCmd::Log(l) => log = Some(l),
            OutCmd::Midi(b, n, at) => {
                let Some(c) = conn.as_mut() else {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                // midir's JACK `send` debug-asserts that its 16 KiB ringbuffer had room, which
                // fails when the server died and nothing drains it; keep the thread alive and
                // drop the connection (the watcher reopens the port when the server returns).
                let sent = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    c.send(&b[..n as usize])
                }));
                match sent {
                    Ok(Ok(())) => {
                        let sent_at = crate::clock::timebase::now();
                        counters.sent.fetch_add(1, Ordering::Relaxed);
                        counters
                            .lateness_us
                            .lock()
                            .saturating_record(sent_at.saturating_sub(at) / 1_000);
                        if let Some(l) = log.as_mut() {
                            use std::io::Write;
                            let bytes: String =
                                b[..n as usize].iter().map(|x| format!("{x:02x}")).collect();
                            if writeln!(l, "{at},{sent_at},{bytes}").is_err() {
                                tracing::warn!("send log write failed; logging stops");
                                log = None;
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        if !warned {
                            tracing::warn!(port = %port, error = %e, "MIDI output refused a message");
                            warned = true;
                        }
                    }
                    Err(_) => {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(port = %port, "MIDI output failed inside the backend; port dropped");
                        std::mem::forget(conn.take());
                    }
                }
            }
            OutCmd::Attach(c, name) => {
                conn = Some(c);
                port = name;
                warned = false;
            }
            OutCmd::Detach { leak } => {
                if let Some(c) = conn.take() {
                    if leak {
                        std::mem::forget(c);
                    }
                }
            }
            OutCmd::Stop => break,
        }
    }
    if let Some(mut l) = log.take() {
        use std::io::Write;
        let _ = l.flush();
    }
    if let Some(c) = conn.take() {
        std::thread::sleep(FLUSH_BEFORE_CLOSE);
        c.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_output_queue_drops_and_counts_without_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = Arc::new(OutputCounters::default());
        let mut out = MidirOut::new(tx, c.clone());
        out.send(0, &[0x90, 60, 100]);
        out.send(1, &[0x80, 60, 0]);
        out.send(2, &[0x80, 61, 0]);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 2);
        match rx.try_recv() {
            Ok(OutCmd::Midi(b, 3, _)) => assert_eq!(b, [0x90, 60, 100]),
            _ => panic!("expected the first note-on"),
        }
    }

    #[test]
    fn sender_without_a_port_counts_failures_and_stops() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let c = Arc::new(OutputCounters::default());
        let h = spawn_sender(rx, c.clone()).unwrap();
        let mut out = MidirOut::new(tx.clone(), c.clone());
        out.send(0, &[0xB0, 123, 0]);
        out.send(0, &[]);
        tx.send(OutCmd::Stop).unwrap();
        h.join().unwrap();
        assert_eq!(c.failed.load(Ordering::Relaxed), 1);
        assert_eq!(c.sent.load(Ordering::Relaxed), 0);
    }
}
