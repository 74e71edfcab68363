//! Engine records to log [`Event`]s, shared by the live log thread and the headless jam so both
//! write the same lines. Pure; runs off the real-time threads (it formats and allocates).

use crate::clock::transport::TransportEvent;
use crate::config::{Config, Fallback};
use crate::engine::generator::GenerationStats;
use crate::engine::input::InputEvent;
use crate::engine::scheduler::{DiscardReason, DropReason, PlaySource, SchedulerEvent};
use crate::midi::source::PortRole;

use super::event::Event;

/// The [`Event::Session`] header of a run.
pub fn session(cfg: &Config, mode: &str, bpm: f64) -> Event {
    let ppb = crate::engine::input::meter_of(cfg).pulses_per_bar(0);
    Event::Session {
        mode: mode.into(),
        bpm,
        time_signature: cfg.clock.time_signature.clone(),
        pulses_per_bar: ppb,
        prompt_bars: cfg.generation.prompt_bars,
        max_new_tokens: cfg.generation.max_new_tokens,
        queue_capacity: cfg.generation.queue_capacity,
        deadline_margin_ms: cfg.generation.deadline_margin_ms,
        fallback: fallback_name(cfg.playback.fallback).into(),
    }
}

/// The event of an input record; `None` for records the report does not use.
pub fn input_event(ev: &InputEvent) -> Option<Event> {
    let what = |w: String| Some(Event::Transport { what: w });
    match *ev {
        InputEvent::Transport(t) => transport_event(&t),
        InputEvent::BoundaryDetected { bar, .. } => Some(Event::Boundary { bar }),
        InputEvent::BarSkipped { bar, .. } => what(format!("bar {bar} not played through")),
        InputEvent::Malformed {
            kind,
            first_byte,
            len,
            ..
        } => what(format!(
            "malformed MIDI ({kind:?}, first byte {first_byte:#04x}, {len} bytes)"
        )),
        InputEvent::NoteOverflow { .. } => what("note buffer full: a human note dropped".into()),
        InputEvent::RoutingLoop {
            port,
            round_trip_ms,
            thru_stopped,
            ..
        } => Some(Event::RoutingLoop {
            port: port_name(port).into(),
            round_trip_ms,
            thru_stopped,
        }),
        InputEvent::ForeignClockIgnored { status, port, .. } => what(format!(
            "transport ({status:#04x}) on the {} port ignored: we run our own clock",
            port_name(port)
        )),
        InputEvent::SysEx { .. } => None,
    }
}

/// The event of a transport change; `None` for the ones that only drive the engine (timelines,
/// bar edges, a Song Position that moves nothing).
fn transport_event(t: &TransportEvent) -> Option<Event> {
    let what = |w: String| Some(Event::Transport { what: w });
    match *t {
        TransportEvent::TempoSample { bpm, jitter_ns, .. } => Some(Event::Tempo {
            bpm,
            jitter_ms: jitter_ns / 1e6,
        }),
        TransportEvent::TempoJump { bpm, gap, .. } => Some(Event::TempoJump { bpm, gap }),
        TransportEvent::Started { restart, .. } => {
            what(if restart { "restart" } else { "start" }.into())
        }
        TransportEvent::Continued { pulse, .. } => what(format!("continue at pulse {pulse}")),
        TransportEvent::Stopped { pulse, .. } => what(format!("stop at pulse {pulse}")),
        TransportEvent::PositionSet { pulse, .. } => what(format!("position set to pulse {pulse}")),
        TransportEvent::Relocated { from, to, .. } => {
            what(format!("relocated from pulse {from} to {to}"))
        }
        TransportEvent::ClockLost { silent_ns, .. } => what(format!(
            "clock lost after {:.0} ms of silence",
            silent_ns as f64 / 1e6
        )),
        TransportEvent::ClockResumed { pulse, .. } => {
            what(format!("clock resumed at pulse {pulse}"))
        }
        TransportEvent::Anomaly { kind, .. } => what(format!("transport anomaly: {kind:?}")),
        TransportEvent::Timeline(_)
        | TransportEvent::BarBegan { .. }
        | TransportEvent::BarEnded { .. }
        | TransportEvent::SppInPlace { .. } => None,
    }
}

/// Name of an input port role in the log: "notes", "clock" or "internal".
pub fn port_name(p: PortRole) -> &'static str {
    match p {
        PortRole::Notes => "notes",
        PortRole::Clock => "clock",
        PortRole::Internal => "internal",
    }
}

/// `snake_case` name of a drop reason.
pub fn drop_name(r: DropReason) -> &'static str {
    match r {
        DropReason::QueueFull => "queue_full",
        DropReason::StaleEpoch => "stale_epoch",
        DropReason::DeadlinePassed => "deadline_passed",
    }
}

/// `snake_case` name of a fallback.
pub fn fallback_name(f: Fallback) -> &'static str {
    match f {
        Fallback::Silence => "silence",
        Fallback::RepeatLast => "repeat_last",
        Fallback::LateJoin => "late_join",
    }
}

fn source_name(s: PlaySource) -> &'static str {
    match s {
        PlaySource::Result => "result",
        PlaySource::RepeatLast => "repeat_last",
        PlaySource::LateJoin => "late_join",
    }
}

fn discard_name(d: DiscardReason) -> &'static str {
    match d {
        DiscardReason::StaleEpoch => "stale_epoch",
        DiscardReason::Failed => "failed",
        DiscardReason::Duplicate => "duplicate",
        DiscardReason::Overflow => "overflow",
    }
}

/// The event of a scheduler lifecycle record.
pub fn scheduler_event(ev: &SchedulerEvent) -> Event {
    match *ev {
        SchedulerEvent::Scheduled {
            bar,
            notes,
            slack_ms,
        } => Event::Scheduled {
            window_bar: bar,
            notes,
            slack_ms,
        },
        SchedulerEvent::Played {
            bar,
            source,
            notes_on,
            notes_cut,
        } => Event::Played {
            window_bar: bar,
            source: source_name(source).into(),
            notes_on,
            notes_cut,
        },
        SchedulerEvent::Missed { bar, fallback } => Event::Missed {
            window_bar: bar,
            fallback: fallback_name(fallback).into(),
        },
        SchedulerEvent::Late {
            bar,
            late_by_ms,
            joined,
        } => Event::Late {
            window_bar: bar,
            late_by_ms,
            joined,
        },
        SchedulerEvent::Dropped { bar, reason } => Event::Dropped {
            window_bar: bar,
            reason: drop_name(reason).into(),
        },
        SchedulerEvent::Carried { from_bar, bar } => Event::Carried {
            from_window_bar: from_bar,
            window_bar: bar,
        },
        SchedulerEvent::Discarded { bar, why } => Event::Discarded {
            window_bar: bar,
            why: discard_name(why).into(),
        },
    }
}

/// The [`Event::Generated`] of a finished generation: its stats, or its error.
pub fn generated(
    bar: u64,
    window_bar: u64,
    gen_ms: f64,
    outcome: Result<&GenerationStats, &str>,
) -> Event {
    let (s, error) = match outcome {
        Ok(s) => (s.clone(), None),
        Err(e) => (GenerationStats::default(), Some(e.to_string())),
    };
    let tokens_per_s = if s.decode_ms > 0.0 {
        s.new_tokens as f64 / (s.decode_ms / 1e3)
    } else {
        0.0
    };
    Event::Generated {
        bar,
        window_bar,
        gen_ms,
        prompt_tokens: s.prompt_tokens,
        new_tokens: s.new_tokens,
        tokenize_ms: s.tokenize_ms,
        prefill_ms: s.prefill_ms,
        decode_ms: s.decode_ms,
        detokenize_ms: s.detokenize_ms,
        tokens_per_s,
        provider: s.provider,
        stop: s
            .stop
            .and_then(|r| serde_json::to_value(r).ok())
            .and_then(|v| v.as_str().map(str::to_owned)),
        error,
    }
}
