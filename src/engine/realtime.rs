//! Real-time scheduling for the threads that keep time: `aria-scheduler` (decides each send's
//! instant), `aria-input` (turns clock pulses into boundaries) and the MIDI sender.
//!
//! Under the default time-sharing policy a thread that wakes for a send queues behind whatever
//! else is runnable; on a 2-core machine that is the generation worker (and ORT's threads when
//! `model.spin` is on). `SCHED_FIFO` lets the waking thread preempt them. The threads spend
//! almost all their time asleep, and Linux caps real-time threads at 95% of each second by
//! default (`kernel.sched_rt_runtime_us`), so a runaway loop cannot lock the machine up.
//!
//! The spawning thread promotes its child through the child's `pthread_t`, so the real-time
//! thread itself never formats or logs the outcome.

use std::thread::JoinHandle;

/// Why a thread could not be given real-time priority.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The process may not use real-time scheduling (`EPERM`).
    #[error(
        "not permitted to use SCHED_FIFO priority {priority} (raise the RLIMIT_RTPRIO limit, e.g. \
         `@audio - rtprio 95` in /etc/security/limits.d/ and join the audio group, or set \
         playback.realtime_priority = 0)"
    )]
    NotPermitted {
        /// The priority asked for.
        priority: u8,
    },
    /// The priority is outside what the system allows (`EINVAL`).
    #[error("SCHED_FIFO priority {priority} is outside {min}..={max} on this system (set playback.realtime_priority inside it)")]
    OutOfRange {
        /// The priority asked for.
        priority: u8,
        /// Lowest allowed.
        min: i32,
        /// Highest allowed.
        max: i32,
    },
    /// Any other failure of `pthread_setschedparam`.
    #[error("pthread_setschedparam failed: {0}")]
    Os(std::io::Error),
    /// The platform has no way to do it here.
    #[error("real-time thread priority is not implemented on this platform")]
    Unsupported,
}

/// Puts the thread behind `handle` under `SCHED_FIFO` at `priority` (1..=99 on Linux).
pub fn promote<T>(handle: &JoinHandle<T>, priority: u8) -> Result<(), RealtimeError> {
    imp::promote(handle, priority)
}

/// The scheduling policy and priority of the thread behind `handle`: `(is_fifo, priority)`.
pub fn policy_of<T>(handle: &JoinHandle<T>) -> Result<(bool, i32), RealtimeError> {
    imp::policy_of(handle)
}

#[cfg(unix)]
mod imp {
    use super::RealtimeError;
    use std::os::unix::thread::JoinHandleExt;
    use std::thread::JoinHandle;

    pub fn promote<T>(handle: &JoinHandle<T>, priority: u8) -> Result<(), RealtimeError> {
        let param = libc::sched_param {
            sched_priority: i32::from(priority),
        };
        // SAFETY: the pthread_t is alive while `handle` exists (it is only released by join or
        // detach, which need the handle by value), and `param` outlives the call.
        let rc =
            unsafe { libc::pthread_setschedparam(handle.as_pthread_t(), libc::SCHED_FIFO, &param) };
        match rc {
            0 => Ok(()),
            libc::EPERM => Err(RealtimeError::NotPermitted { priority }),
            libc::EINVAL => {
                // SAFETY: plain queries of constants.
                let (min, max) = unsafe {
                    (
                        libc::sched_get_priority_min(libc::SCHED_FIFO),
                        libc::sched_get_priority_max(libc::SCHED_FIFO),
                    )
                };
                Err(RealtimeError::OutOfRange { priority, min, max })
            }
            e => Err(RealtimeError::Os(std::io::Error::from_raw_os_error(e))),
        }
    }

    pub fn policy_of<T>(handle: &JoinHandle<T>) -> Result<(bool, i32), RealtimeError> {
        let mut policy = 0;
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: as in `promote`; both out-pointers are valid for writes.
        let rc =
            unsafe { libc::pthread_getschedparam(handle.as_pthread_t(), &mut policy, &mut param) };
        if rc != 0 {
            return Err(RealtimeError::Os(std::io::Error::from_raw_os_error(rc)));
        }
        Ok((policy == libc::SCHED_FIFO, param.sched_priority))
    }
}

#[cfg(not(unix))]
mod imp {
    use super::RealtimeError;
    use std::thread::JoinHandle;

    pub fn promote<T>(_: &JoinHandle<T>, _: u8) -> Result<(), RealtimeError> {
        Err(RealtimeError::Unsupported)
    }

    pub fn policy_of<T>(_: &JoinHandle<T>) -> Result<(bool, i32), RealtimeError> {
        Err(RealtimeError::Unsupported)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A thread that waits until told to end, so its pthread_t stays valid.
    fn parked() -> (JoinHandle<()>, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let _ = rx.recv();
        });
        (h, tx)
    }

    #[test]
    fn promoted_thread_reports_fifo_or_a_permission_error_naming_the_fix() {
        let (h, tx) = parked();
        assert_eq!(
            policy_of(&h).unwrap(),
            (false, 0),
            "threads start time-shared"
        );
        match promote(&h, 10) {
            Ok(()) => assert_eq!(policy_of(&h).unwrap(), (true, 10)),
            Err(e @ RealtimeError::NotPermitted { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("rtprio") && msg.contains("playback.realtime_priority"));
                assert_eq!(
                    policy_of(&h).unwrap(),
                    (false, 0),
                    "a refusal changes nothing"
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        drop(tx);
        h.join().unwrap();
    }

    #[test]
    fn priority_outside_the_system_range_is_refused_with_the_range() {
        let (h, tx) = parked();
        match promote(&h, 200) {
            Err(RealtimeError::OutOfRange { min, max, .. }) => assert!(min >= 1 && max < 200),
            // Without the right to use SCHED_FIFO at all, Linux checks permission first.
            Err(RealtimeError::NotPermitted { .. }) => {}
            other => panic!("priority 200 accepted or odd error: {other:?}"),
        }
        drop(tx);
        h.join().unwrap();
    }
}
