//! The bounded queue between the input thread and the worker. Enqueueing never blocks: when the
//! worker is behind and the queue is full, the oldest waiting job (the stalest) is taken out and
//! handed back to the caller, so it can be counted and its window marked dropped.

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

use crate::engine::job::GenerationJob;

/// The input side of the job queue (held by the input thread).
#[derive(Debug, Clone)]
pub struct JobQueue {
    tx: Sender<GenerationJob>,
    // A receiver clone lets the producer evict the oldest job itself (crossbeam channels are MPMC),
    // so a full queue never makes the input thread wait for the worker.
    evict: Receiver<GenerationJob>,
}

/// What happened to an enqueued job.
#[derive(Debug)]
pub enum Enqueued {
    /// The job is waiting for the worker.
    Queued,
    /// The job is waiting, and this older job was evicted to make room.
    Evicted(Box<GenerationJob>),
    /// The queue could not take the job (it stayed full); the job is handed back.
    Refused(Box<GenerationJob>),
}

impl JobQueue {
    /// A queue for `capacity` waiting jobs; returns the producer side and the worker's receiver.
    pub fn new(capacity: usize) -> (Self, Receiver<GenerationJob>) {
        let (tx, rx) = bounded(capacity.max(1));
        (
            Self {
                tx,
                evict: rx.clone(),
            },
            rx,
        )
    }

    /// Enqueues without blocking. Runs on the input thread; a bounded crossbeam channel is a
    /// preallocated array, so this does not allocate.
    pub fn push(&self, job: GenerationJob) -> Enqueued {
        let mut evicted = None;
        let mut job = job;
        // Two rounds suffice: after one eviction there is room unless the worker raced us and the
        // queue refilled, which cannot happen with a single producer.
        for _ in 0..2 {
            match self.tx.try_send(job) {
                Ok(()) => {
                    return evicted.map_or(Enqueued::Queued, |e| Enqueued::Evicted(Box::new(e)))
                }
                Err(TrySendError::Disconnected(j)) => return Enqueued::Refused(Box::new(j)),
                Err(TrySendError::Full(j)) => {
                    job = j;
                    match self.evict.try_recv() {
                        Ok(old) => evicted = Some(old),
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => return Enqueued::Refused(Box::new(job)),
                    }
                }
            }
        }
        // Still full: only possible if another producer refilled the queue between our eviction and
        // our retry. Hand the job back rather than wait.
        Enqueued::Refused(Box::new(job))
    }

    /// Jobs waiting now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    /// True when no job waits.
    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::generator::SamplingParams;
    use crate::engine::job::Window;
    use crate::music::note::Prompt;

    fn job(bar: u64) -> GenerationJob {
        GenerationJob {
            bar,
            epoch: 1,
            prompt: Prompt::default(),
            params: SamplingParams::default(),
            window: Window {
                bar: bar + 2,
                start_pulse: (bar + 2) * 96,
                len_pulses: 96,
            },
            ms_per_pulse: 20.8,
            deadline_ns: 0,
            enqueued_ns: 0,
        }
    }

    #[test]
    fn full_queue_evicts_the_oldest_job_and_keeps_the_newest() {
        let (q, rx) = JobQueue::new(2);
        assert!(matches!(q.push(job(0)), Enqueued::Queued));
        assert!(matches!(q.push(job(1)), Enqueued::Queued));
        match q.push(job(2)) {
            Enqueued::Evicted(old) => assert_eq!(old.bar, 0),
            other => panic!("expected an eviction, got {other:?}"),
        }
        let waiting: Vec<u64> = rx.try_iter().map(|j| j.bar).collect();
        assert_eq!(waiting, vec![1, 2]);
    }

    #[test]
    fn a_gone_worker_turns_every_extra_job_into_an_eviction() {
        let (q, rx) = JobQueue::new(1);
        drop(rx);
        // The evict receiver keeps the channel open, so jobs are never lost silently: each one that
        // cannot wait is handed back for counting.
        assert!(matches!(q.push(job(0)), Enqueued::Queued));
        assert!(matches!(q.push(job(1)), Enqueued::Evicted(_)));
    }
}
