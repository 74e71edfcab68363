//! The body of the MIDI input callback: copy, timestamp, hand off without blocking.
//!
//! Runs on the backend's input thread: ALSA's "midir ALSA input handler" thread, JACK's
//! real-time process callback, CoreMIDI's MIDI thread or WinMM's callback. So it does no parsing,
//! no allocation, no locking and no logging: it builds a fixed-size [`RawMidi`], `try_send`s it
//! on the engine's bounded channel and counts what it had to drop. Warnings about drops are
//! logged later by the watcher thread from the counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use super::timestamp::{micros_to_nanos, OffsetEstimator};
use crate::midi::source::{PortRole, RawMidi};
use crate::Nanos;

/// Message counts of one input role, shared between the callback and the port owner.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Messages handed to the engine.
    pub received: AtomicU64,
    /// Messages dropped because the engine's channel was full (or closed).
    pub dropped: AtomicU64,
}

/// State owned by one input connection's callback.
#[derive(Debug)]
pub struct InputHandler {
    tx: Sender<RawMidi>,
    role: PortRole,
    clock: OffsetEstimator,
    counters: Arc<InputCounters>,
}

impl InputHandler {
    /// A handler feeding `tx` with messages tagged `role`; a fresh timestamp estimate (each
    /// connection has its own driver clock origin).
    pub fn new(tx: Sender<RawMidi>, role: PortRole, counters: Arc<InputCounters>) -> Self {
        Self {
            tx,
            role,
            clock: OffsetEstimator::default(),
            counters,
        }
    }

    /// Handles one message stamped `driver_us` by midir and seen at `now`
    /// ([`crate::clock::timebase::now`]). Never blocks; returns whether the engine got it.
    pub fn on_message(&mut self, driver_us: u64, bytes: &[u8], now: Nanos) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let at = self.clock.observe(micros_to_nanos(driver_us), now);
        match self.tx.try_send(RawMidi::new(at, self.role, bytes)) {
            Ok(()) => {
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                true
            }
            // The RawMidi is Copy and handed back inside the error; dropping it is the point.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_channel_drops_and_counts_without_blocking() {
        let (tx, rx) = crossbeam_channel::bounded(2);
        let c = Arc::new(InputCounters::default());
        let mut h = InputHandler::new(tx, PortRole::Notes, c.clone());
        // If try_send blocked, this loop would hang the test instead of returning.
        let sent: Vec<bool> = (0..5)
            .map(|i| h.on_message(i * 1000, &[0xF8], 10_000_000))
            .collect();
        assert_eq!(sent, [true, true, false, false, false]);
        assert_eq!(c.received.load(Ordering::Relaxed), 2);
        assert_eq!(c.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(rx.len(), 2);
    }

    #[test]
    fn closed_channel_counts_drops() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        drop(rx);
        let c = Arc::new(InputCounters::default());
        let mut h = InputHandler::new(tx, PortRole::Clock, c.clone());
        assert!(!h.on_message(0, &[0xFA], 0));
        assert_eq!(c.dropped.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn messages_keep_role_bytes_and_driver_intervals() {
        let (tx, rx) = crossbeam_channel::bounded(8);
        let c = Arc::new(InputCounters::default());
        let mut h = InputHandler::new(tx, PortRole::Clock, c);
        // Driver: 0 and 20.833 ms (one pulse at 120 BPM); the second arrives 2 ms late.
        h.on_message(1_000, &[0xF8], 50_000_000);
        h.on_message(21_833, &[0x90, 60, 100, 0x80], 72_833_000);
        let a = rx.try_recv().unwrap();
        let b = rx.try_recv().unwrap();
        assert_eq!((a.port, a.as_slice()), (PortRole::Clock, &[0xF8][..]));
        assert_eq!(b.as_slice(), &[0x90, 60, 100]);
        assert!(b.truncated);
        assert_eq!(b.at - a.at, 20_833_000);
    }

    #[test]
    fn empty_messages_are_ignored() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let c = Arc::new(InputCounters::default());
        let mut h = InputHandler::new(tx, PortRole::Notes, c.clone());
        assert!(!h.on_message(0, &[], 0));
        assert!(rx.is_empty());
        assert_eq!(c.dropped.load(Ordering::Relaxed), 0);
    }
}
