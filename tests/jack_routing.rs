//! `aria-bridge run` in the patch bays and accidents of a real studio, through JACK with the
//! scripted DAW peer (tests/support_jack/daw.rs): a player doubling the answers, the output
//! patched back into the input (with thru, with our own clock), a player holding notes through
//! thru at exit, a crash and restart mid-note, and SIGHUP.
//!
//! `scripts/with-jack.sh cargo test --features jack --test jack_routing -- --nocapture`
#![cfg(feature = "jack")]

mod support_jack;

use std::time::Duration;

use support_jack::daw::{Cue, Daemon, Daw};
use support_jack::*;

const MS: u64 = 1_000_000;

/// Note-ons of the take on `channel` (0-based).
fn ons_on(take: &daw::Take, channel: u8) -> usize {
    take.note_ons().iter().filter(|n| n.1 == channel).count()
}

#[test]
fn a_player_doubling_our_answers_is_never_taken_for_an_echo() {
    // Default channels (input any, output 1), no loop: the DAW answers every note the daemon
    // plays with the same key on channel 1, 3 to 15 ms later; every other one has the
    // daemon's exact bytes.
    let mut daw = Daw::new(120.0);
    daw.start().bars(6, &[]);
    daw.stop().wait_ms(300.0);
    let mut d = Daemon::start("unison", "");
    let (mut doubled, mut answered) = (0u32, 0u32);
    let mut held = [false; 128];
    let delays = [3, 9, 15, 6, 12];
    let take = d.perform_live(&daw.script(), 300, |_, b| {
        if b.len() != 3 || b[0] & 0x0F != 0 {
            return vec![];
        }
        let k = b[1] as usize & 0x7F;
        let on = b[0] & 0xF0 == 0x90 && b[2] > 0;
        let off = b[0] & 0xF0 == 0x80 || b[0] & 0xF0 == 0x90 && b[2] == 0;
        // The player doubles our notes (not the sweep's note-offs for keys nobody held).
        if !(on || off && held[k]) {
            return vec![];
        }
        held[k] = on;
        doubled += on as u32;
        answered += 1;
        let exact = answered % 2 == 0;
        let after = delays[answered as usize % delays.len()] * MS;
        let bytes = match (on, b[2]) {
            (true, v) if !exact => [0x90, b[1], if v > 64 { v - 9 } else { v + 9 }],
            (false, _) if !exact => [0x80, b[1], 64],
            _ => [b[0], b[1], b[2]],
        };
        vec![(after, Cue::Midi(Timed::new(0, &bytes)))]
    });
    let (status, _) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    assert!(
        doubled >= 20,
        "only {doubled} notes to double:\n{}\nlog:\n{}",
        take.dump(),
        d.log()
    );
    assert_eq!(
        d.summary_counter("echoes_dropped"),
        Some(0),
        "the player's notes were taken for echoes; log:\n{}",
        d.log()
    );
    assert!(!d.log().contains("routing loop"), "{}", d.log());
    println!("unison: {doubled} notes doubled, none dropped");
}

#[test]
fn thru_into_a_routing_loop_is_found_warned_once_and_stopped() {
    // The player on channel 2 (so thru's output is told apart from our answers on channel 1),
    // thru on, and our output patched back into our input.
    let part: Vec<HumanNote> = arpeggio(4, 4);
    let mut daw = Daw::new(120.0);
    daw.start().bars(1, &[]);
    let from = daw.now();
    daw.bars(4, &part);
    daw.stop().wait_ms(500.0);
    let mut script = daw.script();
    for (t, c) in script.cues.iter_mut() {
        if let Cue::Midi(m) = c {
            if *t >= from && m.bytes[0] & 0xF0 <= 0x90 && m.bytes[0] >= 0x80 {
                m.bytes[0] |= 1;
            }
        }
    }
    let mut d = Daemon::start_with(
        "thruloop",
        &Daemon::config_midi("thruloop", "thru = true\n", ""),
        &[],
    );
    d.loop_back();
    let take = d.perform(&script);
    let (status, after) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let take = take.then(after);
    let n = take.received.len();
    // Without a loop: the sweep (130), the answers (a few hundred), a panic at Stop.
    assert!(n < 3_000, "{n} messages in 9 s: the loop fed back");
    let log = d.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("MIDI routing loop"))
        .collect();
    assert_eq!(warnings.len(), 1, "log:\n{log}");
    assert!(
        warnings[0].contains("aria-bridge out") && warnings[0].contains("aria-bridge in"),
        "the warning names the ports: {}",
        warnings[0]
    );
    assert!(warnings[0].contains("thru stopped"), "{}", warnings[0]);
    // The loop is found by the sweep at Start, before the first note: thru never forwards.
    assert_eq!(ons_on(&take, 1), 0, "thru forwarded:\n{}", take.dump());
    assert_eq!(take.hanging(), vec![], "{}", take.dump());
    println!("thru loop: {n} messages back; {}", warnings[0]);
}

#[test]
fn our_own_clock_patched_back_into_the_input_does_not_double_the_tempo() {
    let mut d = Daemon::start_with(
        "ownclock",
        &Daemon::config("ownclock", ""),
        &["--bpm", "100"],
    );
    d.loop_back();
    // Nothing to play: the daemon is its own master; record 4 s of it.
    let take = d.perform_with_tail(&daw::Script::default(), 4_000);
    let (status, _) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let bpm: Vec<f64> = d
        .events()
        .iter()
        .filter(|e| e["event"] == "tempo")
        .filter_map(|e| e["bpm"].as_f64())
        .collect();
    assert!(bpm.len() >= 5, "tempo records: {bpm:?}");
    for b in &bpm[bpm.len() - 3..] {
        assert!((b - 100.0).abs() < 5.0, "tempo read {b:.1} BPM: {bpm:?}");
    }
    let said = d
        .log()
        .lines()
        .filter(|l| l.contains("runs its own clock"))
        .count();
    assert_eq!(said, 1, "log:\n{}", d.log());
    // Our clock still goes out at 100 BPM (25 ms a pulse) for followers.
    let clocks: Vec<i64> = take
        .received
        .iter()
        .filter(|(_, b)| b == &[0xF8])
        .map(|(t, _)| *t)
        .collect();
    let period = (clocks[clocks.len() - 1] - clocks[0]) as f64 / (clocks.len() - 1) as f64;
    assert!(
        (period / 1e6 - 25.0).abs() < 0.5,
        "clock period {period} ns"
    );
}

#[test]
fn a_restart_after_a_crash_clears_what_was_left_sounding() {
    let mut daw = Daw::new(120.0);
    daw.start().bars(4, &arpeggio(4, 4));
    let mut d = Daemon::start("crash", "");
    // SIGKILL at the first note-on of the daemon's third answered bar: it dies mid-note.
    let mut killed = false;
    let take = d.perform_live(&daw.script(), 300, |t, b| {
        let on = b.len() == 3 && b[0] & 0xF0 == 0x90 && b[2] > 0;
        if !killed && on && t > 4_500 * MS as i64 {
            killed = true;
            return vec![(MS / 2, Cue::Signal(libc::SIGKILL))];
        }
        vec![]
    });
    assert!(killed, "the daemon never played:\n{}", take.dump());
    let left = take.hanging();
    assert!(
        !left.is_empty(),
        "nothing was left sounding:\n{}",
        take.dump()
    );
    d.reap();
    let after = d.restart();
    let closed: Vec<(u8, u8)> = after
        .received
        .iter()
        .filter(|(_, b)| b.len() == 3 && b[0] & 0xF0 == 0x80)
        .map(|(_, b)| (b[0] & 0x0F, b[1]))
        .collect();
    for n in &left {
        assert!(
            closed.contains(n),
            "{n:?} left sounding by the crash is still hanging; the new instance sent:\n{}\nlog:\n{}",
            after.dump(),
            d.log()
        );
    }
    let all = take.then(after);
    assert_eq!(all.hanging(), vec![]);
    let (status, _) = d.interrupt(all.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    println!(
        "crash: {} note(s) left by the crash closed at the restart",
        left.len()
    );
}

#[test]
fn sighup_reloads_the_config_and_never_quits() {
    let name = "reload";
    let mut d = Daemon::start(name, "");
    let echo_back = |d: &mut Daemon, key: u8| -> bool {
        d.peer.send_now(&[0x91, key, 70]);
        std::thread::sleep(Duration::from_millis(200));
        d.peer.send_now(&[0x81, key, 0]);
        std::thread::sleep(Duration::from_millis(200));
        d.peer
            .drain()
            .iter()
            .any(|m| m.as_slice() == [0x91, key, 70])
    };
    assert!(!echo_back(&mut d, 50), "thru is off to begin with");

    // Thru on and the temperature (live), another output port and model threads (restart).
    d.write_config(&format!(
        "[midi]\ninput_port = \"{name} out\"\noutput_port = \"elsewhere\"\nthru = true\n\n\
         [model]\npath = \"{}\"\ndevice = \"cpu\"\nthreads = 2\n\n[generation]\ntemperature = 0.5\n",
        daw::e2e_model()
    ));
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.running(), "SIGHUP stopped the daemon; log:\n{}", d.log());
    let log = d.log();
    let restart: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("need a restart"))
        .collect();
    assert_eq!(restart.len(), 1, "one warning; log:\n{log}");
    assert!(
        restart[0].contains("midi.output_port") && restart[0].contains("model.threads"),
        "{}",
        restart[0]
    );
    assert!(
        log.lines().any(|l| l.contains("applied")
            && l.contains("midi.thru")
            && l.contains("generation.temperature")),
        "log:\n{log}"
    );
    assert!(echo_back(&mut d, 52), "thru was not turned on; log:\n{log}");

    // A config that does not validate changes nothing.
    d.write_config(&format!(
        "{}\n[generation]\ntop_p = 0\n",
        Daemon::config_midi(name, "", "")
    ));
    d.signal(libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.running(), "log:\n{}", d.log());
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("config reload rejected") && l.contains("generation.top_p")),
        "log:\n{}",
        d.log()
    );
    assert!(echo_back(&mut d, 54), "the running settings changed");
    let (status, _) = d.interrupt(0);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
}

#[test]
fn notes_the_player_holds_through_thru_are_closed_at_exit_on_their_channels() {
    let mut daw = Daw::new(120.0);
    daw.start().bars(1, &[]);
    // The player holds one note on every channel, and the pedal on channel 9.
    for ch in 0..16u8 {
        daw.send(&[0x90 | ch, 40 + ch, 80]);
    }
    daw.send(&[0xB8, 64, 127]);
    daw.bars(1, &[]).wait_ms(100.0);
    let mut d = Daemon::start_with(
        "held",
        &Daemon::config_midi("held", "thru = true\n", ""),
        &[],
    );
    let take = d.perform_with_tail(&daw.script(), 200);
    assert_eq!(take.hanging().len(), 16, "thru forwarded the held notes");
    let (status, after) = d.interrupt(take.start);
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let all = take.then(after);
    assert_eq!(all.hanging(), vec![], "{}", all.dump());
    assert!(
        all.received.iter().any(|(_, b)| b == &[0xB8, 64, 0]),
        "the pedal is released on channel 9"
    );
}
