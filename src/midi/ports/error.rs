//! Why a MIDI port could not be listed, opened or found.

/// A port failure; every message names the config key or backend involved and the fix.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The platform MIDI backend could not be initialised at all.
    #[error("{backend}: {hint}")]
    BackendUnavailable {
        /// What failed, e.g. "ALSA sequencer not available (/dev/snd/seq missing)".
        backend: &'static str,
        /// What to do about it.
        hint: &'static str,
    },
    /// A configured name matches no port.
    #[error(
        "`{key}` = \"{query}\" matches no MIDI {direction} port (case-insensitive substring); \
         {direction} ports: {}{hint}",
        list(available)
    )]
    NoMatch {
        /// The config key, e.g. `midi.input_port`.
        key: &'static str,
        /// The name that was looked for.
        query: String,
        /// "input" (ports we read) or "output" (ports we write).
        direction: &'static str,
        /// Every port of that direction, to pick from.
        available: Vec<String>,
        /// Platform advice appended to the message (empty or starting with "; ").
        hint: &'static str,
    },
    /// A configured name matches several ports and none of them exactly.
    #[error(
        "`{key}` = \"{query}\" matches {} MIDI {direction} ports: {}; give a longer part of one name",
        matches.len(),
        list(matches)
    )]
    Ambiguous {
        /// The config key.
        key: &'static str,
        /// The name that was looked for.
        query: String,
        /// "input" or "output".
        direction: &'static str,
        /// The ports it matches.
        matches: Vec<String>,
    },
    /// The platform has no virtual ports (Windows/WinMM) and no port name was configured.
    #[error(
        "`{key}` is not set and this platform cannot create virtual MIDI ports: create a port in \
         loopMIDI (https://www.tobias-erichsen.de/software/loopmidi.html) and set `{key}` to its name"
    )]
    NoVirtualPorts {
        /// The config key that must be set.
        key: &'static str,
    },
    /// The backend refused to create or connect a port.
    #[error("cannot open MIDI port \"{port}\": {reason}")]
    Open {
        /// Our port name or the port we tried to connect to.
        port: String,
        /// The backend's reason.
        reason: String,
    },
    /// A thread of the port layer could not be started.
    #[error("cannot start the MIDI {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// `"a", "b"` or `(none)`.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}
