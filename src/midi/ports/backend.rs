//! The thin shell over midir: clients, port lists, virtual ports and connections.
//!
//! The backend is chosen at compile time by midir: ALSA sequencer (Linux), JACK (`--features
//! jack`), CoreMIDI (macOS), WinMM (Windows). Everything here runs on non-real-time threads
//! (startup, the watcher); only the closure passed to midir runs on the driver's input thread.

use midir::{Ignore, MidiInput, MidiInputConnection, MidiOutput, MidiOutputConnection};

use super::input::InputHandler;
use super::matching::{find_port, Direction};
use super::PortError;

/// The MIDI backend compiled in, for `aria-bridge ports` and logs.
pub const BACKEND: &str = if cfg!(feature = "jack") {
    "JACK"
} else if cfg!(target_os = "linux") {
    "ALSA sequencer"
} else if cfg!(target_os = "macos") {
    "CoreMIDI"
} else if cfg!(windows) {
    "WinMM"
} else {
    "midir default"
};

/// Client name of the port listing probe (a JACK client / ALSA client of its own).
const PROBE_CLIENT: &str = "aria-bridge-probe";

/// The MIDI ports present right now, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortList {
    /// Ports we can read from (sources: keyboards, DAW outputs, clock masters).
    pub inputs: Vec<String>,
    /// Ports we can write to (destinations: synths, DAW inputs).
    pub outputs: Vec<String>,
}

/// What one of our ports is: a virtual port others connect to, or a connection to a named port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// Create a virtual port others connect to (not on Windows: `key` must then be set).
    Virtual {
        /// The config key that would name an existing port instead.
        key: &'static str,
    },
    /// Connect to the one existing port whose name contains `query`.
    Named {
        /// The config key the query came from.
        key: &'static str,
        /// The case-insensitive substring.
        query: String,
    },
}

/// Lists every input and output port of the compiled-in backend.
///
/// Opens two short-lived clients: a fresh client is the only reliable liveness test under JACK,
/// where an existing client keeps listing stale ports after the server died.
pub fn list_ports() -> Result<PortList, PortError> {
    let mi = input_client(PROBE_CLIENT)?;
    let mo = output_client(PROBE_CLIENT)?;
    let inputs = mi
        .ports()
        .iter()
        .filter_map(|p| mi.port_name(p).ok())
        .collect();
    let outputs = mo
        .ports()
        .iter()
        .filter_map(|p| mo.port_name(p).ok())
        .collect();
    Ok(PortList { inputs, outputs })
}

/// Opens an input port named `port_name` on client `client`, feeding `handler` from the
/// driver's input thread. Returns the connection and the name of the port it reads.
pub(crate) fn open_input(
    ep: &Endpoint,
    client: &str,
    port_name: &str,
    handler: InputHandler,
) -> Result<(MidiInputConnection<InputHandler>, String), PortError> {
    let mut mi = input_client(client)?;
    // SysEx is never parsed (RawMidi keeps 3 bytes) and active sensing (every 300 ms) carries
    // nothing for us; clock (0xF8) must pass.
    mi.ignore(Ignore::SysexAndActiveSense);
    match ep {
        Endpoint::Virtual { key } => virtual_input(mi, key, port_name, handler),
        Endpoint::Named { key, query } => {
            let ports = mi.ports();
            let names: Vec<String> = ports
                .iter()
                .map(|p| mi.port_name(p).unwrap_or_default())
                .collect();
            let i = find_port(key, query, Direction::Input, &names)?;
            let target = names[i].clone();
            let conn = mi
                .connect(&ports[i], port_name, on_input, handler)
                .map_err(|e| PortError::Open {
                    port: target.clone(),
                    reason: e.to_string(),
                })?;
            Ok((conn, target))
        }
    }
}

/// Opens an output port named `port_name` on client `client`. Returns the connection and the
/// name of the port it writes to.
pub(crate) fn open_output(
    ep: &Endpoint,
    client: &str,
    port_name: &str,
) -> Result<(MidiOutputConnection, String), PortError> {
    let mo = output_client(client)?;
    match ep {
        Endpoint::Virtual { key } => virtual_output(mo, key, port_name),
        Endpoint::Named { key, query } => {
            let ports = mo.ports();
            let names: Vec<String> = ports
                .iter()
                .map(|p| mo.port_name(p).unwrap_or_default())
                .collect();
            let i = find_port(key, query, Direction::Output, &names)?;
            let target = names[i].clone();
            let conn = mo
                .connect(&ports[i], port_name)
                .map_err(|e| PortError::Open {
                    port: target.clone(),
                    reason: e.to_string(),
                })?;
            Ok((conn, target))
        }
    }
}

/// midir's input callback. Runs on the driver's input thread (JACK: the real-time process
/// callback), so it only stamps and hands off; see [`InputHandler::on_message`].
fn on_input(driver_us: u64, bytes: &[u8], handler: &mut InputHandler) {
    handler.on_message(driver_us, bytes, crate::clock::timebase::now());
}

#[cfg(not(windows))]
fn virtual_input(
    mi: MidiInput,
    _key: &'static str,
    port_name: &str,
    handler: InputHandler,
) -> Result<(MidiInputConnection<InputHandler>, String), PortError> {
    use midir::os::unix::VirtualInput;
    let conn = mi
        .create_virtual(port_name, on_input, handler)
        .map_err(|e| PortError::Open {
            port: port_name.to_owned(),
            reason: e.to_string(),
        })?;
    Ok((conn, port_name.to_owned()))
}

#[cfg(windows)]
fn virtual_input(
    _mi: MidiInput,
    key: &'static str,
    _port_name: &str,
    _handler: InputHandler,
) -> Result<(MidiInputConnection<InputHandler>, String), PortError> {
    // WinMM cannot create ports; loopMIDI provides them system-wide.
    Err(PortError::NoVirtualPorts { key })
}

#[cfg(not(windows))]
fn virtual_output(
    mo: MidiOutput,
    _key: &'static str,
    port_name: &str,
) -> Result<(MidiOutputConnection, String), PortError> {
    use midir::os::unix::VirtualOutput;
    let conn = mo.create_virtual(port_name).map_err(|e| PortError::Open {
        port: port_name.to_owned(),
        reason: e.to_string(),
    })?;
    Ok((conn, port_name.to_owned()))
}

#[cfg(windows)]
fn virtual_output(
    _mo: MidiOutput,
    key: &'static str,
    _port_name: &str,
) -> Result<(MidiOutputConnection, String), PortError> {
    Err(PortError::NoVirtualPorts { key })
}

fn input_client(name: &str) -> Result<MidiInput, PortError> {
    MidiInput::new(name).map_err(|_| unavailable())
}

fn output_client(name: &str) -> Result<MidiOutput, PortError> {
    MidiOutput::new(name).map_err(|_| unavailable())
}

/// Why the backend did not initialise, with the fix for this build and machine.
fn unavailable() -> PortError {
    let (backend, hint) = unavailable_reason();
    PortError::BackendUnavailable { backend, hint }
}

#[cfg(feature = "jack")]
fn unavailable_reason() -> (&'static str, &'static str) {
    (
        "JACK server not running",
        "this build uses JACK (--features jack) and never starts a server itself: start jackd or \
         qjackctl first (scripts/with-jack.sh runs a dummy one), and set JACK_DEFAULT_SERVER if \
         the server has a name",
    )
}

#[cfg(all(target_os = "linux", not(feature = "jack")))]
fn unavailable_reason() -> (&'static str, &'static str) {
    if std::path::Path::new("/dev/snd/seq").exists() {
        (
            "ALSA sequencer /dev/snd/seq cannot be opened",
            "add your user to the `audio` group (or check the device's permissions)",
        )
    } else {
        (
            "ALSA sequencer not available (/dev/snd/seq missing)",
            "build with --features jack and run a JACK server, or load the sequencer with \
             `modprobe snd-seq` (containers: pass --device /dev/snd)",
        )
    }
}

#[cfg(all(target_os = "macos", not(feature = "jack")))]
fn unavailable_reason() -> (&'static str, &'static str) {
    (
        "CoreMIDI could not be initialised",
        "the MIDI server did not answer: open Audio MIDI Setup once, or restart the machine",
    )
}

#[cfg(all(windows, not(feature = "jack")))]
fn unavailable_reason() -> (&'static str, &'static str) {
    (
        "Windows MIDI (WinMM) could not be initialised",
        "check that a MIDI driver is installed; create ports with loopMIDI",
    )
}

#[cfg(not(any(feature = "jack", target_os = "linux", target_os = "macos", windows)))]
fn unavailable_reason() -> (&'static str, &'static str) {
    (
        "MIDI backend could not be initialised",
        "this platform's midir backend failed to start",
    )
}
