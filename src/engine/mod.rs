//! The bar pipeline: human notes and clock events in, jobs to the model, timed answers out.
//!
//! Pure parts (time passed in, no threads):
//! - [`input`]: the clock side ([`input::InputProcessor`]): parses messages, follows the
//!   transport, buffers the human's notes per bar ([`bars`]), drops our own echoes and finds
//!   routing loops ([`echo`]) and
//!   builds a [`job::GenerationJob`] at each boundary.
//! - [`generator`]: the seam to the model ([`generator::Generator`]); [`worker::run_job`] runs one
//!   job and survives its failures.
//! - [`scheduler`]: places each result in its bar window and emits it pulse-accurately, with note
//!   hygiene and fallbacks.
//!
//! Shells that drive them:
//! - [`live`]: the daemon's threads ([`live::Live`]) joined by bounded queues ([`job_queue`]),
//!   the worker thread ([`worker::Worker`]) and the scheduler thread
//!   ([`scheduler::thread::SchedulerThread`]); [`realtime`] asks the OS for SCHED_FIFO.
//! - [`jam`]: the headless jam, the same pure parts in virtual time.
//! - [`reload`]: which keys of a reloaded configuration the running engine takes.

pub mod bars;
pub mod echo;
pub mod generator;
pub mod input;
pub mod jam;
pub mod job;
pub mod job_queue;
pub mod live;
pub mod realtime;
pub mod reload;
pub mod scheduler;
pub mod worker;
