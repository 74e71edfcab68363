//! MIDI bytes to typed messages and back (pure, never panics on malformed input).
