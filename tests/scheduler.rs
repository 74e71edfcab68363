//! Scheduler behaviour: placement, cuts, re-timing, fallbacks, epochs and note hygiene.

use aria_bridge::clock::timeline::{Carry, Timeline};
use aria_bridge::config::{Config, Fallback};
use aria_bridge::engine::generator::{Generated, GenerationStats};
use aria_bridge::engine::job::{GenerationResult, Window};
use aria_bridge::engine::scheduler::{
    DiscardReason, DropReason, PlaySource, Scheduler, SchedulerEvent,
};
use aria_bridge::midi::sink::Recorder;
use aria_bridge::music::note::MsNote;
use aria_bridge::Nanos;

/// 20 ms per pulse (125 BPM) keeps every expected instant an exact integer.
const NSPP: f64 = 20_000_000.0;
/// The timeline's anchor: pulse 0 at 1 s, so negative offsets never saturate at 0.
const T0: Nanos = 1_000_000_000;

fn cfg(fallback: Fallback, ring_out_pulses: u32, offset_ms: f64) -> Config {
    let mut c = Config::default();
    c.playback.fallback = fallback;
    c.playback.ring_out_pulses = ring_out_pulses;
    c.playback.output_offset_ms = offset_ms;
    c
}

fn tl(epoch: u32, ns_per_pulse: f64) -> Timeline {
    Timeline {
        epoch,
        running: true,
        anchor_pulse: 0.0,
        anchor_ns: T0,
        ns_per_pulse,
        carry: None,
    }
}

/// Instant of pulse `p` at 20 ms per pulse.
fn t(p: f64) -> Nanos {
    T0 + (p * NSPP) as Nanos
}

fn window(bar: u64) -> Window {
    Window {
        bar,
        start_pulse: bar * 96,
        len_pulses: 96,
    }
}

fn note(pitch: u8, start_ms: u32, end_ms: u32) -> MsNote {
    MsNote {
        pitch,
        velocity: 80,
        start_ms,
        end_ms,
    }
}

fn result(bar: u64, epoch: u32, notes: Vec<MsNote>) -> GenerationResult {
    GenerationResult {
        bar: bar - 2,
        epoch,
        window: window(bar),
        ms_per_pulse: NSPP / 1e6,
        outcome: Ok(Generated {
            notes,
            stats: GenerationStats::default(),
        }),
        started_ns: 0,
        finished_ns: 0,
    }
}

fn failed(bar: u64, epoch: u32) -> GenerationResult {
    GenerationResult {
        outcome: Err("boom".into()),
        ..result(bar, epoch, vec![])
    }
}

/// A scheduler running at 20 ms/pulse in epoch 1.
fn running(c: &Config) -> (Scheduler, Recorder) {
    let mut s = Scheduler::new(c);
    let mut rec = Recorder::default();
    s.on_timeline(tl(1, NSPP), T0, &mut rec);
    rec.events.clear();
    (s, rec)
}

fn events(s: &mut Scheduler) -> Vec<SchedulerEvent> {
    let mut v = Vec::new();
    s.drain_events(|e| v.push(e));
    v
}

/// (instant, status, key, value) of every recorded message.
fn msgs(rec: &Recorder) -> Vec<(Nanos, u8, u8, u8)> {
    rec.events
        .iter()
        .map(|&(at, b, _)| (at, b[0], b[1], b[2]))
        .collect()
}

fn note_ons(rec: &Recorder) -> Vec<(Nanos, u8)> {
    msgs(rec)
        .into_iter()
        .filter(|m| m.1 & 0xF0 == 0x90)
        .map(|m| (m.0, m.2))
        .collect()
}

fn note_offs(rec: &Recorder) -> Vec<(Nanos, u8)> {
    msgs(rec)
        .into_iter()
        .filter(|m| m.1 & 0xF0 == 0x80)
        .map(|m| (m.0, m.2))
        .collect()
}

#[test]
fn notes_land_at_their_sub_pulse_instants() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    // 30 ms = 1.5 pulses: between two clock pulses.
    s.on_result(
        result(2, 1, vec![note(60, 30, 130), note(64, 500, 600)]),
        t(100.0),
    );
    s.poll(t(400.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(193.5), 60), (t(217.0), 64)]);
    assert_eq!(note_offs(&rec), vec![(t(198.5), 60), (t(222.0), 64)]);
    assert_eq!(s.sounding_notes(), 0);
}

#[test]
fn nothing_is_sent_before_it_is_due_and_poll_names_the_next_instant() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
    // The window start is the first thing the scheduler must wake for.
    assert_eq!(s.poll(t(150.0), &mut rec), Some(t(192.0)));
    assert_eq!(s.poll(t(192.0), &mut rec), Some(t(197.0)));
    assert!(rec.events.is_empty());
    assert_eq!(s.poll(t(197.0), &mut rec), Some(t(202.0)));
    assert_eq!(note_ons(&rec), vec![(t(197.0), 60)]);
    assert_eq!(s.sounding_notes(), 1);
}

#[test]
fn notes_are_cut_at_the_window_end_and_later_onsets_never_play() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    // Window = 96 pulses = 1920 ms; the second note starts after it.
    s.on_result(
        result(2, 1, vec![note(60, 1800, 2500), note(62, 1950, 2000)]),
        t(100.0),
    );
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(282.0), 60)]);
    assert_eq!(note_offs(&rec), vec![(t(288.0), 60)]);
    let played = events(&mut s)
        .into_iter()
        .find(|e| matches!(e, SchedulerEvent::Played { .. }));
    assert_eq!(
        played,
        Some(SchedulerEvent::Played {
            bar: 2,
            source: PlaySource::Result,
            notes_on: 1,
            notes_cut: 1
        })
    );
}

#[test]
fn ring_out_lets_notes_sound_past_the_window_end_up_to_the_limit() {
    let (mut s, mut rec) = running(&cfg(Fallback::Silence, 12, 0.0));
    s.expect(window(2), 1);
    // Ends at pulse 192 + 2100/20 = 297 (< 288 + 12) and at 192 + 3000/20 = 342 (cut at 300).
    s.on_result(
        result(2, 1, vec![note(60, 1800, 2100), note(62, 1800, 3000)]),
        t(100.0),
    );
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_offs(&rec), vec![(t(297.0), 60), (t(300.0), 62)]);
}

#[test]
fn a_new_tempo_retimes_notes_not_yet_played() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
    // Twice as fast from pulse 150 on: same epoch, new anchor.
    let fast = Timeline {
        epoch: 1,
        running: true,
        anchor_pulse: 150.0,
        anchor_ns: t(150.0),
        ns_per_pulse: NSPP / 2.0,
        carry: None,
    };
    s.on_timeline(fast, t(150.0), &mut rec);
    s.poll(t(1000.0), &mut rec);
    // 100 ms at 10 ms/pulse = 10 pulses after 192 -> pulse 202 -> t(150) + 52 * 10 ms.
    let at = |p: f64| fast.time_of(p);
    assert_eq!(note_ons(&rec), vec![(at(202.0), 60)]);
    assert_eq!(note_offs(&rec), vec![(at(212.0), 60)]);
    assert!(
        !msgs(&rec).iter().any(|m| m.1 == 0xB0),
        "no panic on a tempo change"
    );
}

#[test]
fn a_missing_result_leaves_the_bar_silent_and_is_logged_as_a_miss() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.poll(t(200.0), &mut rec);
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Missed {
            bar: 2,
            fallback: Fallback::Silence
        }]
    );
    // 8 pulses (160 ms) late: reported, not played.
    s.on_result(result(2, 1, vec![note(60, 1000, 1100)]), t(200.0));
    s.poll(t(1000.0), &mut rec);
    assert!(rec.events.is_empty());
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Late {
            bar: 2,
            late_by_ms: 160.0,
            joined: false
        }]
    );
}

#[test]
fn a_result_arriving_after_its_window_start_is_late_even_without_a_poll_between() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(result(2, 1, vec![note(60, 1000, 1100)]), t(193.0));
    s.poll(t(1000.0), &mut rec);
    assert!(rec.events.is_empty());
    let ev = events(&mut s);
    assert!(
        matches!(ev[0], SchedulerEvent::Missed { bar: 2, .. }),
        "{ev:?}"
    );
    assert!(
        matches!(
            ev[1],
            SchedulerEvent::Late {
                bar: 2,
                joined: false,
                ..
            }
        ),
        "{ev:?}"
    );
}

#[test]
fn repeat_last_replays_the_last_played_bar_in_a_missed_window() {
    let (mut s, mut rec) = running(&cfg(Fallback::RepeatLast, 0, 0.0));
    s.expect(window(2), 1);
    s.expect(window(3), 1);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
    s.poll(t(500.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(197.0), 60), (t(293.0), 60)]);
    assert_eq!(note_offs(&rec), vec![(t(202.0), 60), (t(298.0), 60)]);
    let ev = events(&mut s);
    assert!(ev.contains(&SchedulerEvent::Missed {
        bar: 3,
        fallback: Fallback::RepeatLast
    }));
    assert!(ev.contains(&SchedulerEvent::Played {
        bar: 3,
        source: PlaySource::RepeatLast,
        notes_on: 1,
        notes_cut: 0
    }));
}

#[test]
fn a_repeat_started_late_skips_the_notes_already_passed() {
    let (mut s, mut rec) = running(&cfg(Fallback::RepeatLast, 0, 0.0));
    s.expect(window(2), 1);
    s.expect(window(3), 1);
    s.on_result(
        result(2, 1, vec![note(60, 100, 200), note(62, 1000, 1100)]),
        t(100.0),
    );
    s.poll(t(287.0), &mut rec);
    // Bar 3's result comes 12 pulses into its window with no poll since bar 2: the miss is
    // applied then, and the repeat starts there, not at the window start.
    s.on_result(result(3, 1, vec![note(70, 0, 100)]), t(300.0));
    s.poll(t(1000.0), &mut rec);
    assert_eq!(
        note_ons(&rec),
        vec![(t(197.0), 60), (t(242.0), 62), (t(338.0), 62)]
    );
}

#[test]
fn late_join_plays_only_the_part_of_the_window_not_yet_passed() {
    let (mut s, mut rec) = running(&cfg(Fallback::LateJoin, 0, 0.0));
    s.expect(window(2), 1);
    s.poll(t(192.0), &mut rec);
    // Arrives at pulse 210 (360 ms late): the note at pulse 197 is gone, the one at 242 plays.
    s.on_result(
        result(2, 1, vec![note(60, 100, 200), note(62, 1000, 1100)]),
        t(210.0),
    );
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(242.0), 62)]);
    assert_eq!(note_offs(&rec), vec![(t(247.0), 62)]);
    let ev = events(&mut s);
    assert!(ev.contains(&SchedulerEvent::Late {
        bar: 2,
        late_by_ms: 360.0,
        joined: true
    }));
}

#[test]
fn late_join_gives_the_same_result_whether_or_not_a_poll_saw_the_window_start() {
    for poll_at_start in [false, true] {
        let (mut s, mut rec) = running(&cfg(Fallback::LateJoin, 0, 0.0));
        s.expect(window(2), 1);
        if poll_at_start {
            s.poll(t(192.0), &mut rec);
        }
        s.on_result(
            result(2, 1, vec![note(60, 100, 200), note(62, 1000, 1100)]),
            t(210.0),
        );
        s.poll(t(1000.0), &mut rec);
        assert_eq!(note_ons(&rec), vec![(t(242.0), 62)], "{poll_at_start}");
        let ev = events(&mut s);
        assert!(
            ev.contains(&SchedulerEvent::Missed {
                bar: 2,
                fallback: Fallback::LateJoin
            }),
            "{ev:?}"
        );
        assert!(
            ev.contains(&SchedulerEvent::Late {
                bar: 2,
                late_by_ms: 360.0,
                joined: true
            }),
            "{ev:?}"
        );
    }
}

#[test]
fn results_of_an_old_epoch_are_discarded() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_timeline(tl(2, NSPP), t(50.0), &mut rec);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
    s.poll(t(1000.0), &mut rec);
    assert!(note_ons(&rec).is_empty());
    let ev = events(&mut s);
    assert_eq!(
        ev,
        vec![
            SchedulerEvent::Discarded {
                bar: 2,
                why: DiscardReason::StaleEpoch
            },
            SchedulerEvent::Discarded {
                bar: 2,
                why: DiscardReason::StaleEpoch
            }
        ]
    );
}

#[test]
fn an_epoch_change_ends_sounding_notes_with_sustain_off_and_all_notes_off() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(
        result(2, 1, vec![note(60, 100, 1500), note(64, 100, 1500)]),
        t(100.0),
    );
    s.poll(t(200.0), &mut rec);
    assert_eq!(s.sounding_notes(), 2);
    rec.events.clear();
    s.on_timeline(tl(2, NSPP), t(210.0), &mut rec);
    assert_eq!(s.sounding_notes(), 0);
    assert_eq!(
        msgs(&rec),
        vec![
            (t(210.0), 0x80, 60, 0),
            (t(210.0), 0x80, 64, 0),
            (t(210.0), 0xB0, 64, 0),
            (t(210.0), 0xB0, 123, 0)
        ]
    );
    // The old window is gone: nothing more plays.
    rec.events.clear();
    s.poll(t(1000.0), &mut rec);
    assert!(rec.events.is_empty());
}

#[test]
fn all_notes_off_gives_every_note_on_its_note_off_on_the_output_channel() {
    let mut c = Config::default();
    c.playback.output_channel = 10;
    let (mut s, mut rec) = running(&c);
    s.expect(window(2), 1);
    s.on_result(
        result(2, 1, vec![note(60, 0, 1500), note(67, 20, 1500)]),
        t(100.0),
    );
    s.poll(t(200.0), &mut rec);
    s.all_notes_off(t(200.0), &mut rec);
    assert_eq!(s.sounding_notes(), 0);
    assert!(rec.events.iter().all(|e| e.1[0] & 0x0F == 9));
    let m = msgs(&rec);
    assert_eq!(note_ons(&rec).len(), note_offs(&rec).len());
    assert!(m.contains(&(t(200.0), 0xB9, 64, 0)));
    assert!(m.contains(&(t(200.0), 0xB9, 123, 0)));
    // The stopped window plays nothing more.
    rec.events.clear();
    s.poll(t(1000.0), &mut rec);
    assert!(rec.events.is_empty());
}

#[test]
fn a_stop_silences_everything_and_schedules_nothing() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(result(2, 1, vec![note(60, 0, 1500)]), t(100.0));
    s.poll(t(200.0), &mut rec);
    let stopped = Timeline {
        running: false,
        ..tl(2, NSPP)
    };
    s.on_timeline(stopped, t(201.0), &mut rec);
    assert_eq!(s.sounding_notes(), 0);
    assert_eq!(s.poll(t(1000.0), &mut rec), None);
    assert_eq!(note_ons(&rec).len(), note_offs(&rec).len());
}

#[test]
fn the_output_offset_shifts_every_send() {
    for offset_ms in [-15.0, 25.0] {
        let (mut s, mut rec) = running(&cfg(Fallback::Silence, 0, offset_ms));
        s.expect(window(2), 1);
        s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
        s.poll(t(1000.0), &mut rec);
        let d = (offset_ms * 1e6) as i64;
        let shift = |p: f64| (t(p) as i64 + d) as Nanos;
        assert_eq!(note_ons(&rec), vec![(shift(197.0), 60)], "{offset_ms}");
        assert_eq!(note_offs(&rec), vec![(shift(202.0), 60)], "{offset_ms}");
    }
}

#[test]
fn a_restrike_ends_the_sounding_note_first_and_its_old_note_off_does_not_cut_the_new_one() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    // Same pitch: 0-400 ms, re-struck at 200 ms until 1000 ms.
    s.on_result(
        result(2, 1, vec![note(60, 0, 400), note(60, 200, 1000)]),
        t(100.0),
    );
    s.poll(t(1000.0), &mut rec);
    assert_eq!(
        msgs(&rec),
        vec![
            (t(192.0), 0x90, 60, 80),
            (t(202.0), 0x80, 60, 0),
            (t(202.0), 0x90, 60, 80),
            (t(242.0), 0x80, 60, 0)
        ]
    );
}

#[test]
fn a_note_ringing_out_is_ended_before_the_next_window_strikes_its_pitch() {
    let (mut s, mut rec) = running(&cfg(Fallback::Silence, 24, 0.0));
    s.expect(window(2), 1);
    s.expect(window(3), 1);
    s.on_result(result(2, 1, vec![note(60, 1800, 2400)]), t(100.0));
    s.on_result(result(3, 1, vec![note(60, 0, 100)]), t(100.0));
    s.poll(t(1000.0), &mut rec);
    assert_eq!(
        msgs(&rec),
        vec![
            (t(282.0), 0x90, 60, 80),
            (t(288.0), 0x80, 60, 0),
            (t(288.0), 0x90, 60, 80),
            (t(293.0), 0x80, 60, 0)
        ]
    );
}

#[test]
fn a_dropped_job_is_a_drop_not_a_miss() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.dropped(window(2), 1, DropReason::QueueFull);
    s.poll(t(1000.0), &mut rec);
    assert!(rec.events.is_empty());
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Dropped {
            bar: 2,
            reason: DropReason::QueueFull
        }]
    );
}

#[test]
fn a_failed_generation_is_a_miss_with_the_fallback() {
    let (mut s, mut rec) = running(&cfg(Fallback::RepeatLast, 0, 0.0));
    s.expect(window(2), 1);
    s.expect(window(3), 1);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(100.0));
    s.on_result(failed(3, 1), t(150.0));
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_ons(&rec).len(), 2, "bar 3 repeats bar 2");
    let ev = events(&mut s);
    assert!(ev.contains(&SchedulerEvent::Discarded {
        bar: 3,
        why: DiscardReason::Failed
    }));
    assert!(ev.contains(&SchedulerEvent::Missed {
        bar: 3,
        fallback: Fallback::RepeatLast
    }));
}

#[test]
fn an_early_result_is_scheduled_with_its_slack() {
    let (mut s, _rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(result(2, 1, vec![note(60, 100, 200)]), t(142.0));
    assert_eq!(
        events(&mut s),
        vec![SchedulerEvent::Scheduled {
            bar: 2,
            notes: 1,
            slack_ms: 1000.0
        }]
    );
}

#[test]
fn unsorted_results_play_in_time_order() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(2), 1);
    s.on_result(
        result(2, 1, vec![note(67, 400, 500), note(60, 0, 100)]),
        t(100.0),
    );
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(192.0), 60), (t(212.0), 67)]);
}

/// A 4-bar loop wrapping from the end of bar 3 (pulse 384) back to bar 0 at pulse 384's
/// instant: the new epoch's pulse 0 happens when old pulse 384 would have.
fn wrapped(epoch: u32) -> Timeline {
    Timeline {
        anchor_pulse: 0.0,
        anchor_ns: t(384.0),
        carry: Some(Carry {
            from_epoch: epoch - 1,
            from_pulse: 384,
            to_pulse: 0,
            to_bar: 0,
            to_len_pulses: 96,
        }),
        ..tl(epoch, NSPP)
    }
}

#[test]
fn a_loop_wrap_carries_the_ready_answer_into_the_loops_first_bar() {
    let (mut s, mut rec) = running(&Config::default());
    // Built at the end of bar 2 for bar 4; the loop wraps before bar 4 begins.
    s.expect(window(4), 1);
    s.on_result(result(4, 1, vec![note(60, 100, 300)]), t(300.0));
    s.expect(window(3), 1);
    s.on_timeline(wrapped(2), t(383.5), &mut rec);
    s.poll(t(1000.0), &mut rec);
    // Bar 0 of the new pass starts at old pulse 384's instant: the note lands 100 ms (5 pulses)
    // into it.
    assert_eq!(note_ons(&rec), vec![(t(389.0), 60)]);
    assert_eq!(note_offs(&rec).last().unwrap(), &(t(399.0), 60));
    let ev = events(&mut s);
    assert!(ev.contains(&SchedulerEvent::Carried {
        from_bar: 4,
        bar: 0
    }));
    // Bar 3's window had started; it is not carried.
    assert!(ev.contains(&SchedulerEvent::Discarded {
        bar: 3,
        why: DiscardReason::StaleEpoch
    }));
    assert!(ev.iter().any(|e| matches!(
        e,
        SchedulerEvent::Played {
            bar: 0,
            source: PlaySource::Result,
            notes_on: 1,
            ..
        }
    )));
}

#[test]
fn a_result_still_generating_at_the_wrap_is_carried_when_it_arrives() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(4), 1);
    s.on_timeline(wrapped(2), t(383.5), &mut rec);
    // The worker reports in the old epoch and coordinates, before the new bar 0 starts.
    s.on_result(result(4, 1, vec![note(62, 0, 200)]), t(383.8));
    s.poll(t(1000.0), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(384.0), 62)]);
}

#[test]
fn a_window_that_began_just_before_the_wrap_starts_over_where_it_landed() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(4), 1);
    s.on_result(
        result(4, 1, vec![note(60, 0, 300), note(64, 100, 300)]),
        t(300.0),
    );
    // The scheduler's own estimate reached pulse 384 a moment before the Song Position arrived.
    s.poll(t(384.2), &mut rec);
    assert_eq!(note_ons(&rec), vec![(t(384.0), 60)]);
    s.on_timeline(
        Timeline {
            anchor_ns: t(384.5),
            ..wrapped(2)
        },
        t(384.3),
        &mut rec,
    );
    rec.events.clear();
    s.poll(t(1000.0), &mut rec);
    // Both notes again, from the new bar 0: none skipped, none doubled.
    assert_eq!(note_ons(&rec), vec![(t(384.5), 60), (t(389.5), 64)]);
}

#[test]
fn a_jump_off_the_bar_line_carries_nothing() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(4), 1);
    s.on_result(result(4, 1, vec![note(60, 100, 300)]), t(300.0));
    let mut tl2 = wrapped(2);
    tl2.carry = None;
    s.on_timeline(tl2, t(383.5), &mut rec);
    s.poll(t(1000.0), &mut rec);
    assert!(note_ons(&rec).is_empty());
    assert!(events(&mut s).contains(&SchedulerEvent::Discarded {
        bar: 4,
        why: DiscardReason::StaleEpoch
    }));
}

#[test]
fn only_the_window_due_where_the_jump_left_is_carried() {
    let (mut s, mut rec) = running(&Config::default());
    s.expect(window(5), 1);
    s.on_result(result(5, 1, vec![note(60, 100, 300)]), t(300.0));
    s.on_timeline(wrapped(2), t(383.5), &mut rec);
    s.on_result(result(5, 1, vec![note(61, 100, 300)]), t(383.6));
    s.poll(t(1000.0), &mut rec);
    assert!(note_ons(&rec).is_empty());
}
