//! Session files round-trip through midly; human parts are read with their tempo map; bad files
//! give clear errors.

use std::path::Path;

use aria_bridge::clock::meter::TimeSignature;
use aria_bridge::config::Fallback;
use aria_bridge::engine::scheduler::{DropReason, SchedulerEvent};
use aria_bridge::midi::smf::{
    marks_from_events, parse_human, read_human, session_bytes, write_session, BarMark, Session,
    SmfError,
};
use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const ORIGIN: u64 = 5_000 * MS;

fn ev(t_ms: u64, b: [u8; 3]) -> (u64, [u8; 3], u8) {
    (ORIGIN + t_ms * MS, b, 3)
}

fn sig(s: &str) -> TimeSignature {
    TimeSignature::parse(s).unwrap()
}

fn marks() -> Vec<BarMark> {
    vec![
        BarMark::Missed {
            bar: 7,
            late_by_ms: Some(120.4),
        },
        BarMark::Dropped {
            bar: 9,
            reason: DropReason::QueueFull,
        },
    ]
}

fn abs_events<'a>(track: &'a [TrackEvent<'a>]) -> Vec<(u64, TrackEventKind<'a>)> {
    let mut t = 0;
    track
        .iter()
        .map(|e| {
            t += e.delta.as_int() as u64;
            (t, e.kind)
        })
        .collect()
}

#[test]
fn a_written_session_has_conductor_human_and_aria_tracks_with_tempo_meter_and_markers() {
    let human = vec![
        ev(500, [0x90, 60, 100]),
        (ORIGIN + 600 * MS, [0xF8, 0, 0], 1), // a clock byte: not a channel message, left out
        ev(1000, [0x80, 60, 0]),
        ev(1000, [0xB0, 64, 127]),
    ];
    let ai = vec![ev(4000, [0x90, 67, 80]), ev(4250, [0x80, 67, 0])];
    let meter = [(0, sig("4/4")), (2, sig("3/4"))];
    let marks = marks();
    let session = Session {
        bpm: 120.0,
        meter: &meter,
        origin: ORIGIN,
        human: &human,
        ai: &ai,
        marks: &marks,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.mid");
    write_session(&path, &session).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let smf = Smf::parse(&bytes).unwrap();

    assert_eq!(smf.header.format, Format::Parallel);
    assert_eq!(smf.header.timing, Timing::Metrical(u15::new(480)));
    assert_eq!(smf.tracks.len(), 3);

    let conductor = abs_events(&smf.tracks[0]);
    assert!(conductor.contains(&(
        0,
        TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000)))
    )));
    assert!(conductor.contains(&(
        0,
        TrackEventKind::Meta(MetaMessage::TimeSignature(4, 2, 24, 8))
    )));
    // Bar 2 starts at 2 x 96 pulses x 20 ticks.
    assert!(conductor.contains(&(
        3840,
        TrackEventKind::Meta(MetaMessage::TimeSignature(3, 2, 24, 8))
    )));
    // Bar 7 = 3840 + 5 x 72 pulses x 20 ticks; bar 9 = two 3/4 bars later.
    assert!(conductor.contains(&(
        3840 + 5 * 72 * 20,
        TrackEventKind::Meta(MetaMessage::Marker(b"missed bar 7 (late by 120 ms)"))
    )));
    assert!(conductor.contains(&(
        3840 + 7 * 72 * 20,
        TrackEventKind::Meta(MetaMessage::Marker(b"dropped bar 9 (queue full)"))
    )));

    let names: Vec<_> = smf
        .tracks
        .iter()
        .map(|t| {
            t.iter().find_map(|e| match e.kind {
                TrackEventKind::Meta(MetaMessage::TrackName(n)) => Some(n.to_vec()),
                _ => None,
            })
        })
        .collect();
    assert_eq!(
        names,
        vec![
            Some(b"conductor".to_vec()),
            Some(b"human".to_vec()),
            Some(b"aria".to_vec())
        ]
    );

    let midi = |i: usize| -> Vec<(u64, MidiMessage)> {
        abs_events(&smf.tracks[i])
            .into_iter()
            .filter_map(|(t, k)| match k {
                TrackEventKind::Midi { message, .. } => Some((t, message)),
                _ => None,
            })
            .collect()
    };
    // 500 ms at 120 BPM = one quarter = 480 ticks.
    assert_eq!(
        midi(1),
        vec![
            (
                480,
                MidiMessage::NoteOn {
                    key: u7::new(60),
                    vel: u7::new(100)
                }
            ),
            (
                960,
                MidiMessage::NoteOff {
                    key: u7::new(60),
                    vel: u7::new(0)
                }
            ),
            (
                960,
                MidiMessage::Controller {
                    controller: u7::new(64),
                    value: u7::new(127)
                }
            ),
        ]
    );
    assert_eq!(
        midi(2),
        vec![
            (
                3840,
                MidiMessage::NoteOn {
                    key: u7::new(67),
                    vel: u7::new(80)
                }
            ),
            (
                4080,
                MidiMessage::NoteOff {
                    key: u7::new(67),
                    vel: u7::new(0)
                }
            ),
        ]
    );
}

#[test]
fn a_session_read_back_as_a_human_part_keeps_every_message_at_its_time() {
    let human = vec![ev(500, [0x90, 60, 100]), ev(1000, [0x80, 60, 0])];
    let ai = vec![ev(750, [0x91, 67, 80]), ev(1250, [0x81, 67, 0])];
    let meter = [(0, sig("4/4"))];
    let bytes = session_bytes(&Session {
        bpm: 100.0,
        meter: &meter,
        origin: ORIGIN,
        human: &human,
        ai: &ai,
        marks: &[],
    });
    let msgs = parse_human(&bytes, Path::new("session.mid")).unwrap();
    let got: Vec<(i64, Vec<u8>)> = msgs
        .iter()
        .map(|m| (m.at_ms.round() as i64, m.as_slice().to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            (500, vec![0x90, 60, 100]),
            (750, vec![0x91, 67, 80]),
            (1000, vec![0x80, 60, 0]),
            (1250, vec![0x81, 67, 0]),
        ]
    );
}

/// A two-track file: tempo 120 then 240 BPM from tick 960; notes in track 1, pedal in track 2.
fn tempo_map_file() -> Vec<u8> {
    let d = |n: u32| u28::new(n);
    let ch = u4::new(0);
    let tracks = vec![
        vec![
            TrackEvent {
                delta: d(0),
                kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(500_000))),
            },
            TrackEvent {
                delta: d(960),
                kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(250_000))),
            },
            TrackEvent {
                delta: d(0),
                kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
            },
        ],
        vec![
            TrackEvent {
                delta: d(480),
                kind: TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::NoteOn {
                        key: u7::new(60),
                        vel: u7::new(90),
                    },
                },
            },
            TrackEvent {
                delta: d(960),
                kind: TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::NoteOn {
                        key: u7::new(60),
                        vel: u7::new(0),
                    },
                },
            },
            TrackEvent {
                delta: d(0),
                kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
            },
        ],
        vec![
            TrackEvent {
                delta: d(720),
                kind: TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::Controller {
                        controller: u7::new(64),
                        value: u7::new(127),
                    },
                },
            },
            TrackEvent {
                delta: d(0),
                kind: TrackEventKind::Midi {
                    channel: ch,
                    message: MidiMessage::ProgramChange {
                        program: u7::new(5),
                    },
                },
            },
            TrackEvent {
                delta: d(0),
                kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
            },
        ],
    ];
    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(480))),
        tracks,
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    bytes
}

#[test]
fn the_human_part_honours_the_tempo_map_and_merges_all_tracks() {
    let msgs = parse_human(&tempo_map_file(), Path::new("two-tempi.mid")).unwrap();
    let got: Vec<(f64, Vec<u8>)> = msgs
        .iter()
        .map(|m| (m.at_ms, m.as_slice().to_vec()))
        .collect();
    // Tick 480 = 500 ms; tick 720 = 750 ms; tick 1440 = 1000 ms + 480 ticks at 250 ms/quarter.
    assert_eq!(
        got,
        vec![
            (500.0, vec![0x90, 60, 90]),
            (750.0, vec![0xB0, 64, 127]),
            (750.0, vec![0xC0, 5]),
            (1250.0, vec![0x90, 60, 0]),
        ]
    );
}

#[test]
fn a_truncated_file_is_reported_as_truncated_with_its_path() {
    let bytes = tempo_map_file();
    for cut in [0, 10, bytes.len() - 5, bytes.len() - 40] {
        let err = parse_human(&bytes[..cut], Path::new("cut.mid")).unwrap_err();
        assert!(
            matches!(err, SmfError::Truncated { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("cut.mid"), "{err}");
    }
}

#[test]
fn bytes_that_are_not_a_midi_file_are_reported_as_corrupt() {
    let err = parse_human(b"RIFF\0\0\0\0this is a wave file", Path::new("x.wav")).unwrap_err();
    assert!(matches!(err, SmfError::Corrupt { .. }), "{err}");
}

#[test]
fn a_file_without_notes_is_rejected() {
    let meter = [(0, sig("4/4"))];
    let bytes = session_bytes(&Session {
        bpm: 120.0,
        meter: &meter,
        origin: 0,
        human: &[(0, [0xB0, 64, 127], 3)],
        ai: &[],
        marks: &[],
    });
    let err = parse_human(&bytes, Path::new("pedal-only.mid")).unwrap_err();
    assert!(matches!(err, SmfError::NoNotes { .. }), "{err}");
}

#[test]
fn a_missing_file_names_its_path() {
    let err = read_human(Path::new("/nonexistent/take-1.mid")).unwrap_err();
    assert!(matches!(err, SmfError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/take-1.mid"));
}

#[test]
fn markers_say_what_happened_to_the_bar() {
    let m = marks();
    assert_eq!(m[0].to_string(), "missed bar 7 (late by 120 ms)");
    assert_eq!(m[1].to_string(), "dropped bar 9 (queue full)");
    let never = BarMark::Missed {
        bar: 3,
        late_by_ms: None,
    };
    assert_eq!(never.to_string(), "missed bar 3 (no result)");
}

#[test]
fn scheduler_records_become_one_mark_per_missed_or_dropped_bar() {
    let events = [
        SchedulerEvent::Dropped {
            bar: 9,
            reason: DropReason::QueueFull,
        },
        SchedulerEvent::Missed {
            bar: 7,
            fallback: Fallback::Silence,
        },
        SchedulerEvent::Late {
            bar: 7,
            late_by_ms: 120.0,
            joined: false,
        },
        SchedulerEvent::Missed {
            bar: 8,
            fallback: Fallback::Silence,
        },
        SchedulerEvent::Played {
            bar: 10,
            source: aria_bridge::engine::scheduler::PlaySource::Result,
            notes_on: 3,
            notes_cut: 0,
        },
    ];
    let text: Vec<String> = marks_from_events(&events)
        .iter()
        .map(|m| m.to_string())
        .collect();
    assert_eq!(
        text,
        vec![
            "missed bar 7 (late by 120 ms)",
            "missed bar 8 (no result)",
            "dropped bar 9 (queue full)"
        ]
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_human(&bytes, Path::new("fuzz.mid"));
    }

    #[test]
    fn corrupted_session_files_never_panic_the_reader(flip in 0usize..400, byte in any::<u8>()) {
        let mut bytes = tempo_map_file();
        let i = flip % bytes.len();
        bytes[i] = byte;
        let _ = parse_human(&bytes, Path::new("flipped.mid"));
    }
}

#[test]
fn smpte_division_of_minus_128_fps_is_an_error_for_every_reader() {
    // Byte 12 is the division's high byte: 0x80 with the SMPTE bit is -128 fps, which the MIDI
    // parser underneath negates with an overflow.
    let mut bytes = tempo_map_file();
    bytes[12] = 0x80;
    let err = parse_human(&bytes, Path::new("smpte.mid")).unwrap_err();
    assert!(err.to_string().contains("-128"), "{err}");
    assert!(aria_bridge::aria::midi_dict::MidiDict::from_smf(&bytes).is_err());
    assert!(aria_bridge::report::piano_roll::parse_roll(&bytes, Path::new("smpte.mid")).is_err());
}
