//! A configuration reloaded while running (`aria-bridge run` on SIGHUP): which changed keys the
//! engine takes live, and which keep their running value until a restart.
//!
//! The reload path is one table and one function: [`LIVE_KEYS`] names the keys that are safe to
//! change live, [`plan`] compares the running and the reloaded configuration key by key (every
//! key of [`Config`], found through its serde form, so a key added later is covered without
//! touching this file) and builds the configuration to run from now on: the reloaded values of
//! live keys, the running values of everything else. The daemon hands that to
//! [`crate::engine::live::Live::reconfigure`] and logs the rest in one warning. Making another
//! key live is adding it to [`LIVE_KEYS`] and carrying it to the thread that uses it (for the
//! input side [`crate::engine::input::InputSettings`], for the scheduler
//! [`crate::engine::scheduler::PlaybackSettings`]).
//!
//! Live, and why it is safe:
//! - `generation.prompt_bars`, `temperature`, `top_p`, `min_p`, `seed`, `max_new_tokens`: read
//!   when the next job is built (a job already queued keeps what it was built with).
//! - `playback.fallback`, `ring_out_pulses`, `output_offset_ms`: apply to what is still to be
//!   sent; `playback.output_channel`: the notes sounding on the old channel are closed first.
//! - `midi.input_channel`: the next note is filtered with it; `midi.thru`: turned off, it closes
//!   the notes it had opened.
//!
//! Everything else needs a restart: the ports (`midi.input_port`, `output_port`, `clock_port`),
//! the model and its runtime (`[model]`), the clock source, tempo and meter (the bars already
//! counted depend on them), the clock-loss limits, the queue capacity and deadline margin (sized
//! into the worker's queues), the real-time priority (asked for once per thread) and the status
//! line settings (`[log]`).

use crate::config::Config;

/// Dotted keys a running engine takes from a reloaded configuration.
pub const LIVE_KEYS: &[&str] = &[
    "generation.prompt_bars",
    "generation.temperature",
    "generation.top_p",
    "generation.min_p",
    "generation.seed",
    "generation.max_new_tokens",
    "playback.fallback",
    "playback.ring_out_pulses",
    "playback.output_offset_ms",
    "playback.output_channel",
    "midi.input_channel",
    "midi.thru",
];

/// Whether a running engine takes `key` (dotted, e.g. `midi.thru`) live.
pub fn is_live(key: &str) -> bool {
    LIVE_KEYS.contains(&key)
}

/// One key whose value differs between the running and the reloaded configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Dotted key, e.g. `midi.output_port`.
    pub key: String,
    /// The running value, as TOML writes it (`unset` for an absent optional key).
    pub running: String,
    /// The reloaded value.
    pub reloaded: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} = {} (was {})", self.key, self.reloaded, self.running)
    }
}

/// What a reload does.
#[derive(Clone, Debug, PartialEq)]
pub struct ReloadPlan {
    /// Changed keys the engine takes now.
    pub live: Vec<Change>,
    /// Changed keys that keep their running value until a restart.
    pub restart: Vec<Change>,
    /// The configuration to run with from now on: `live` keys reloaded, the rest as running.
    pub next: Config,
}

impl ReloadPlan {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty() && self.restart.is_empty()
    }
}

/// Compares `running` with `reloaded` (both validated) key by key; see the module docs.
pub fn plan(running: &Config, reloaded: &Config) -> ReloadPlan {
    let (Ok(old), Ok(new)) = (
        serde_json::to_value(running),
        serde_json::to_value(reloaded),
    ) else {
        // A Config always serializes; were it ever not to, keep what runs.
        return ReloadPlan {
            live: Vec::new(),
            restart: Vec::new(),
            next: running.clone(),
        };
    };
    let mut next = new.clone();
    let mut live = Vec::new();
    let mut restart = Vec::new();
    let empty = serde_json::Map::new();
    for (section, new_keys) in new.as_object().unwrap_or(&empty) {
        let old_keys = old.get(section).and_then(|s| s.as_object());
        for (key, value) in new_keys.as_object().unwrap_or(&empty) {
            let was = old_keys
                .and_then(|o| o.get(key))
                .unwrap_or(&serde_json::Value::Null);
            if was == value {
                continue;
            }
            let dotted = format!("{section}.{key}");
            let change = Change {
                key: dotted.clone(),
                running: show(was),
                reloaded: show(value),
            };
            if is_live(&dotted) {
                live.push(change);
            } else {
                restart.push(change);
                next[section.as_str()][key.as_str()] = was.clone();
            }
        }
    }
    let next = serde_json::from_value(next).unwrap_or_else(|_| running.clone());
    ReloadPlan {
        live,
        restart,
        next,
    }
}

/// A value as a person would write it in the config file.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unset".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_config_plans_nothing() {
        let c = Config::default();
        let p = plan(&c, &c.clone());
        assert!(p.is_empty());
        assert_eq!(p.next, c);
    }

    #[test]
    fn live_keys_are_taken_and_restart_keys_keep_their_running_value() {
        let running = Config::default();
        let mut reloaded = running.clone();
        reloaded.midi.thru = true;
        reloaded.generation.temperature = 0.5;
        reloaded.playback.output_offset_ms = -40.0;
        reloaded.midi.output_port = Some("synth".into());
        reloaded.model.path = "other.onnx".into();
        reloaded.clock.bpm = 90.0;
        let p = plan(&running, &reloaded);
        let keys = |v: &[Change]| v.iter().map(|c| c.key.clone()).collect::<Vec<_>>();
        let mut live = keys(&p.live);
        live.sort();
        assert_eq!(
            live,
            [
                "generation.temperature",
                "midi.thru",
                "playback.output_offset_ms"
            ]
        );
        let mut restart = keys(&p.restart);
        restart.sort();
        assert_eq!(restart, ["clock.bpm", "midi.output_port", "model.path"]);
        assert!(p.next.midi.thru);
        assert_eq!(p.next.generation.temperature, 0.5);
        assert_eq!(p.next.playback.output_offset_ms, -40.0);
        assert_eq!(p.next.midi.output_port, None);
        assert_eq!(p.next.model.path, running.model.path);
        assert_eq!(p.next.clock.bpm, 120.0);
        let port = p.restart.iter().find(|c| c.key == "midi.output_port");
        assert_eq!(
            port.map(ToString::to_string).as_deref(),
            Some("midi.output_port = \"synth\" (was unset)")
        );
    }

    #[test]
    fn every_live_key_exists_in_the_config() {
        let v = serde_json::to_value(Config::default()).unwrap();
        for key in LIVE_KEYS {
            let (section, name) = key.split_once('.').unwrap();
            assert!(v[section].get(name).is_some(), "{key} is not a config key");
        }
    }
}
