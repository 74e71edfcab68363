//! The headless shell: an internal clock drives the engine from a MIDI file to a MIDI file.
