//! The configuration file format: documented defaults, unknown keys, range errors.

use std::path::Path;

use aria_bridge::config::{Config, ConfigError, Fallback};

#[test]
fn default_toml_documents_exactly_the_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let cfg = Config::load(&path).expect("config/default.toml loads");
    assert_eq!(cfg, Config::default());
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let err =
        Config::from_toml("[playback]\nfalback = \"silence\"\n", Path::new("x.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ConfigError::Parse { .. }));
    assert!(msg.contains("x.toml") && msg.contains("falback"), "{msg}");
}

#[test]
fn out_of_range_value_names_key_value_and_range() {
    let err = Config::from_toml("[generation]\ntop_p = 1.5\n", Path::new("x.toml")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("generation.top_p") && msg.contains("1.5") && msg.contains("at most 1"),
        "{msg}"
    );
    let err =
        Config::from_toml("[clock]\ntime_signature = \"4/3\"\n", Path::new("x.toml")).unwrap_err();
    assert!(err.to_string().contains("clock.time_signature"), "{err}");
    let err =
        Config::from_toml("[generation]\nprompt_bars = 9\n", Path::new("x.toml")).unwrap_err();
    assert!(err.to_string().contains("1 to 8"), "{err}");
}

#[test]
fn fallback_and_meter_changes_parse() {
    let cfg = Config::from_toml(
        "[playback]\nfallback = \"late_join\"\n[clock]\nmeter_changes = [{ bar = 4, time_signature = \"3/4\" }]\n",
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(cfg.playback.fallback, Fallback::LateJoin);
    assert_eq!(cfg.clock.meter_changes.len(), 1);
    let err = Config::from_toml(
        "[clock]\nmeter_changes = [{ bar = 4, time_signature = \"3/4\" }, { bar = 4, time_signature = \"7/8\" }]\n",
        Path::new("x.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("clock.meter_changes.bar"), "{err}");
}
