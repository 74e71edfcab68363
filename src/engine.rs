//! Wires the pure parts together: input processing, jobs, results, scheduling.
