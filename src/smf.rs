//! Standard MIDI files: the human part read for a headless jam, and the session written out.
