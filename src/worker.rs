//! The worker thread around a Generator: takes jobs, survives failures and panics, returns results.
