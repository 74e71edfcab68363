#!/usr/bin/env python3
"""Writes examples/human.mid: the bundled human part for the demo jam.

16 bars of 4/4 at 120 BPM on channel 1: a I-vi-IV-V progression in C (left hand, half-note chords with the
sustain pedal changed each bar) under a simple right-hand melody of quarter and eighth notes. Needs `mido`.
"""
import mido

TPB = 480
PROG = [[48, 52, 55], [45, 48, 52], [41, 45, 48], [43, 47, 50]]  # C, Am, F, G
MELODY = [  # (beat offset in the bar, length in beats, pitch) for each chord, then varied per pass
    [(0, 1, 72), (1, 1, 74), (2, 1.5, 76), (3.5, 0.5, 74)],
    [(0, 1, 72), (1, 0.5, 71), (1.5, 0.5, 72), (2, 2, 69)],
    [(0, 1, 69), (1, 1, 72), (2, 1, 77), (3, 1, 76)],
    [(0, 1.5, 74), (1.5, 0.5, 72), (2, 1, 71), (3, 1, 67)],
]

events = []  # (tick, order, message)
for bar in range(16):
    chord, mel = PROG[bar % 4], MELODY[bar % 4]
    t0 = bar * 4 * TPB
    shift = 12 if bar >= 8 and bar % 2 else 0
    events.append((t0, 0, mido.Message("control_change", control=64, value=0)))
    events.append((t0 + 10, 1, mido.Message("control_change", control=64, value=127)))
    for half in (0, 2):
        for p in chord:
            events.append((t0 + half * TPB, 2, mido.Message("note_on", note=p, velocity=58)))
            events.append((t0 + (half + 2) * TPB - 20, 0, mido.Message("note_off", note=p, velocity=0)))
    for beat, length, pitch in mel:
        on = t0 + int(beat * TPB)
        off = on + int(length * TPB) - 15
        vel = 84 if beat == 0 else 72
        events.append((on, 2, mido.Message("note_on", note=pitch + shift, velocity=vel)))
        events.append((off, 0, mido.Message("note_off", note=pitch + shift, velocity=0)))
end = 16 * 4 * TPB
events.append((end - 10, 0, mido.Message("control_change", control=64, value=0)))
events.sort(key=lambda e: (e[0], e[1]))

mid = mido.MidiFile(ticks_per_beat=TPB)
track = mido.MidiTrack()
mid.tracks.append(track)
track.append(mido.MetaMessage("track_name", name="human", time=0))
track.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
track.append(mido.Message("program_change", program=0, time=0))
last = 0
for tick, _, msg in events:
    track.append(msg.copy(time=tick - last))
    last = tick
track.append(mido.MetaMessage("end_of_track", time=0))
mid.save(__file__.replace("make_human.py", "human.mid"))
