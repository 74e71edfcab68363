//! The MIDI clock transport: Start/Stop/Continue/Song Position, pulses and bar boundaries.
