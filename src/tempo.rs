//! Tempo estimation from clock timestamps: a delay-locked loop with jump detection.
