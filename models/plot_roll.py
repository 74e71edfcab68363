#!/usr/bin/env python3
"""Draws a piano roll of a jam session file (``aria-bridge jam --out session.mid``) into a PNG.

Each track with notes gets its own colour (the session's human and generated tracks), bar lines
come from the file's first tempo and time signature. Needs ``mido`` and ``matplotlib``::

    python3 models/plot_roll.py session.mid docs/demo-roll.png --bars 0:12
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mido  # noqa: E402

COLOURS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"]


def notes_by_track(mid):
    """{track name: [(start s, end s, pitch, velocity)]} with times through the tempo map."""
    tempo_map = [(0, 500000)]
    for tr in mid.tracks:
        t = 0
        for m in tr:
            t += m.time
            if m.type == "set_tempo":
                tempo_map.append((t, m.tempo))
    tempo_map.sort()

    def seconds(tick):
        s, prev_tick, prev_tempo = 0.0, 0, 500000
        for tk, tempo in tempo_map:
            if tk > tick:
                break
            s += (tk - prev_tick) * prev_tempo / 1e6 / mid.ticks_per_beat
            prev_tick, prev_tempo = tk, tempo
        return s + (tick - prev_tick) * prev_tempo / 1e6 / mid.ticks_per_beat

    out = {}
    for i, tr in enumerate(mid.tracks):
        name, t, held, notes = tr.name or f"track {i}", 0, {}, []
        for m in tr:
            t += m.time
            if m.type == "note_on" and m.velocity > 0:
                held.setdefault((m.channel, m.note), []).append((t, m.velocity))
            elif m.type in ("note_off", "note_on"):
                starts = held.get((m.channel, m.note))
                if starts:
                    t0, vel = starts.pop(0)
                    notes.append((seconds(t0), seconds(t), m.note, vel))
        if notes:
            out[name] = notes
    return out, tempo_map[-1][1] if len(tempo_map) == 1 else tempo_map[1][1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("midi")
    ap.add_argument("png")
    ap.add_argument("--bars", default=None, help="FIRST:END bar range to draw (default: all)")
    ap.add_argument("--beats-per-bar", type=int, default=4)
    a = ap.parse_args()
    mid = mido.MidiFile(a.midi)
    tracks, tempo = notes_by_track(mid)
    bar_s = a.beats_per_bar * tempo / 1e6
    end_s = max(n[1] for ns in tracks.values() for n in ns)
    lo_bar, hi_bar = 0, int(end_s / bar_s) + 1
    if a.bars:
        lo_bar, hi_bar = (int(x) for x in a.bars.split(":"))
    fig, ax = plt.subplots(figsize=(16, 6), dpi=110)
    for k, (name, notes) in enumerate(tracks.items()):
        c = COLOURS[k % len(COLOURS)]
        for s, e, p, v in notes:
            if s >= hi_bar * bar_s or e <= lo_bar * bar_s:
                continue
            ax.add_patch(plt.Rectangle((s, p - 0.4), max(e - s, 0.02), 0.8, color=c,
                                       alpha=0.35 + 0.65 * v / 127, lw=0))
        ax.plot([], [], color=c, lw=6, label=f"{name} ({len(notes)} notes)")
    for b in range(lo_bar, hi_bar + 1):
        ax.axvline(b * bar_s, color="#999", lw=0.6)
        if b < hi_bar:
            ax.text((b + 0.03) * bar_s, 1.0, str(b), transform=ax.get_xaxis_transform(), va="bottom", fontsize=8)
    pitches = [n[2] for ns in tracks.values() for n in ns]
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlim(lo_bar * bar_s, hi_bar * bar_s)
    ax.set_xlabel("seconds")
    ax.set_ylabel("MIDI pitch")
    ax.legend(loc="upper right")
    ax.set_title(f"{a.midi}: bars {lo_bar}..{hi_bar - 1}")
    fig.tight_layout()
    fig.savefig(a.png)


if __name__ == "__main__":
    main()
