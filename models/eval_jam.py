#!/usr/bin/env python3
"""Musical-fit figures of demo jams, for comparing models: key, grid, density and dynamics.

``--make-inputs DIR`` writes the bundled human part (``examples/human.mid``, C major) transposed to
other keys (``human+3.mid`` = E-flat major, ...) and, optionally, louder or softer. Then, for each
session written by ``aria-bridge jam`` (tracks: conductor, human, generated):

* key: estimated from the human track (Krumhansl-Kessler profiles, duration-weighted);
* in-key: share of the generated notes whose pitch class is in that key's scale (minor keys: the
  natural minor plus the raised 6th and 7th), and the human's own share for reference;
* on-grid: share of generated onsets within 30 ms of the 16th-note grid of the session's tempo;
* density: generated notes per human note; velocity: mean of each track.

Needs ``mido``::

    python3 models/eval_jam.py --make-inputs out/keys
    target/release/aria-bridge jam --input out/keys/human+3.mid --bpm 120 --out s.mid --seed 1
    python3 models/eval_jam.py s.mid [more.mid ...] [--json]
"""

import argparse
import json
import os
import sys

import mido

MAJOR = [6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88]
MINOR = [6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17]
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MAJOR_SCALE = {0, 2, 4, 5, 7, 9, 11}
MINOR_SCALE = {0, 2, 3, 5, 7, 8, 10, 9, 11}  # natural minor + raised 6th and 7th


def notes_of(track, tempo_us, tpb):
    """(start_ms, end_ms, pitch, velocity) of a track, one tempo for the whole file."""
    out, on, t = [], {}, 0
    for m in track:
        t += m.time
        ms = t * tempo_us / tpb / 1000.0
        if m.type == "note_on" and m.velocity > 0:
            on.setdefault((m.channel, m.note), []).append((ms, m.velocity))
        elif m.type in ("note_off", "note_on"):
            stack = on.get((m.channel, m.note))
            if stack:
                s, v = stack.pop(0)
                out.append((s, ms, m.note, v))
    return sorted(out)


def corr(a, b):
    ma, mb = sum(a) / 12, sum(b) / 12
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    den = (sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b)) ** 0.5
    return num / den if den else 0.0


def estimate_key(notes):
    hist = [0.0] * 12
    for s, e, p, _ in notes:
        hist[p % 12] += max(e - s, 1.0)
    best = max(((corr(hist, prof[-k:] + prof[:-k]), k, mode) for k in range(12)
                for mode, prof in (("major", MAJOR), ("minor", MINOR))))
    return best[1], best[2]


def evaluate(path):
    mid = mido.MidiFile(path)
    tempo = next((m.tempo for t in mid.tracks for m in t if m.type == "set_tempo"), 500000)
    tracks = [notes_of(t, tempo, mid.ticks_per_beat) for t in mid.tracks]
    named = {t.name: n for t, n in zip(mid.tracks, tracks)}
    human = named.get("human") or tracks[1]
    gen = named.get("aria") or named.get("generated") or tracks[-1]
    tonic, mode = estimate_key(human)
    scale = MAJOR_SCALE if mode == "major" else MINOR_SCALE

    def in_key(ns):
        return sum(((p - tonic) % 12) in scale for _, _, p, _ in ns) / max(1, len(ns))

    sixteenth = tempo / 4000.0
    on_grid = sum(min(s % sixteenth, sixteenth - s % sixteenth) <= 30.0 for s, _, _, _ in gen) / max(1, len(gen))
    mean = lambda xs: sum(xs) / max(1, len(xs))  # noqa: E731
    return {"session": path, "bpm": round(60e6 / tempo, 2), "key": f"{NAMES[tonic]} {mode}",
            "human_notes": len(human), "generated_notes": len(gen),
            "in_key": round(in_key(gen), 3), "human_in_key": round(in_key(human), 3),
            "on_grid": round(on_grid, 3), "density": round(len(gen) / max(1, len(human)), 2),
            "velocity_human": round(mean([v for *_, v in human]), 1),
            "velocity_generated": round(mean([v for *_, v in gen]), 1)}


def make_inputs(out_dir, src, shifts, velocity_scales):
    os.makedirs(out_dir, exist_ok=True)
    for shift in shifts:
        for vs in velocity_scales:
            mid = mido.MidiFile(src)
            for t in mid.tracks:
                for i, m in enumerate(t):
                    if m.type in ("note_on", "note_off"):
                        v = m.velocity if m.velocity == 0 else max(1, min(127, round(m.velocity * vs)))
                        t[i] = m.copy(note=m.note + shift, velocity=v)
            name = f"human{shift:+d}" + ("" if vs == 1.0 else f"-vel{vs:g}") + ".mid"
            mid.save(os.path.join(out_dir, name))
            print(os.path.join(out_dir, name))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sessions", nargs="*")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--make-inputs", metavar="DIR")
    ap.add_argument("--source", default="examples/human.mid")
    ap.add_argument("--shifts", default="0,3,-4,6,-1", help="semitones (default: C, Eb, Ab, F#, B major)")
    ap.add_argument("--velocity-scales", default="1", help="e.g. 0.6,1,1.8 for soft/as is/loud parts")
    a = ap.parse_args(argv)
    if a.make_inputs:
        make_inputs(a.make_inputs, a.source, [int(x) for x in a.shifts.split(",")],
                    [float(x) for x in a.velocity_scales.split(",")])
        return 0
    rows = [evaluate(p) for p in a.sessions]
    for r in rows:
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{r['session']}: {r['key']} at {r['bpm']} BPM: in-key {r['in_key']:.2f} "
                  f"(human {r['human_in_key']:.2f}), on-grid {r['on_grid']:.2f}, density {r['density']:.2f}, "
                  f"velocity {r['velocity_generated']:.0f} (human {r['velocity_human']:.0f}), "
                  f"{r['generated_notes']} notes")
    if len(rows) > 1 and not a.json:
        n = len(rows)
        print(f"mean of {n}: in-key {sum(r['in_key'] for r in rows) / n:.3f}, "
              f"on-grid {sum(r['on_grid'] for r in rows) / n:.3f}, density {sum(r['density'] for r in rows) / n:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
