#!/usr/bin/env python3
"""Builds the training corpus of the demo model: real pieces -> piano MIDI -> Aria token ids.

Steps (each is skipped when its output already exists, so a re-run resumes):

1. Render every selected work of the corpus shipped inside the PyPI package ``music21`` to a MIDI file
   in ``OUT/midi/``, every part played by a piano (no program changes, so the tokenizer reads each
   channel as piano; the drum channel 10 is never used). The MIDI is written here from music21's
   parsed score, not by music21's MIDI writer (minutes per string-quartet movement), and at one
   tempo: the notated beat (a quarter note, or a half note under an x/2 or x/1 time signature) lasts
   500 ms (120 BPM), whatever the score's tempo mark, so the model learns one metre and the bridge
   warps the player's tempo to it (``aria_bridge.train_bpm`` in the exported model). Velocities
   follow the score's dynamics marks per part (ppp 30 .. fff 118; mf 80 where a part has none);
   ties are joined, grace notes and chord symbols left out, staccato notes played at half length.
2. Tokenize them with the bridge's own tokenizer (``cargo run --example tokenize_corpus``), the
   reference's default case: ``("prefix","instrument","piano")``, ``<S>``, notes, ``<D>``, ``<E>``.
   Training and the live bridge therefore agree on every id. ``OUT/vocab.json`` is the vocabulary in
   id order, from the same tokenizer.
3. Split by piece (a stable hash of the file name puts ``--val-percent`` of the pieces in the held-out
   set) and write ``OUT/train.npz`` / ``OUT/val.npz`` (``ids`` int32 concatenated, ``offsets`` int64
   with one entry per piece plus the end) and ``OUT/corpus.json`` (sources, counts, licences).

Needs python3 with ``music21``, ``mido``, ``numpy`` and a Rust toolchain (for step 2)::

    python3 models/prepare_corpus.py --out out/demo-corpus            # all default sources
    python3 models/prepare_corpus.py --list-sources                   # what is used, what is not, why
    python3 models/prepare_corpus.py --out out/demo-corpus --composers bach --max-per-composer 50
"""

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import subprocess
import sys
import time

import numpy as np

# Every folder of music21's core corpus, with the licence notice its files carry and whether the
# demo model uses it. The shipped model takes no non-commercial and no copyleft encoding; folders of
# single melodies, exercises or atonal works are left out for what they would teach an accompanist.
# (composer, used, licence / reason)
SOURCES = (
    ("bach", True, "no licence notice in the MusicXML files (music21 corpus licence); the 3 Humdrum "
                   "files: (c) 1994 CCARH, derivative electronic formats reserved"),
    ("palestrina", True, "Humdrum encodings (c) 2000 John Miller, derivative electronic formats reserved, "
                         "distributed in music21 with permission; the licence agreement they cite is not "
                         "in the package"),
    ("monteverdi", True, "no licence notice (music21 corpus licence); 2 files name Ut Orpheus Edizioni 2003"),
    ("trecento", True, "no licence notice (music21 corpus licence; 10 files carry a bare copyright sign)"),
    ("beethoven", True, "no licence notice (music21 corpus licence)"),
    ("mozart", True, "no licence notice (music21 corpus licence)"),
    ("haydn", True, "no licence notice (music21 corpus licence)"),
    ("schumann_robert", True, "no licence notice (music21 corpus licence)"),
    ("schumann_clara", True, "no licence notice (music21 corpus licence)"),
    ("joplin", True, "no licence notice (music21 corpus licence)"),
    ("schubert", True, "no licence notice (music21 corpus licence; a bare copyright sign)"),
    ("chopin", True, "no licence notice (music21 corpus licence)"),
    ("handel", True, "no licence notice (music21 corpus licence)"),
    ("cpebach", True, "no licence notice (music21 corpus licence)"),
    ("verdi", True, "no licence notice (music21 corpus licence)"),
    ("corelli", True, "CC-BY (2014)"),
    ("weber", True, "encoding released to the public domain (1998, Oliver Seely)"),
    ("lusitano", True, "CC0 / public domain (M. S. A. Cuthbert)"),
    ("johnson_j_r", True, "public domain, encoding CC0"),
    ("liliuokalani", True, "public domain, encoding CC0"),
    ("essenFolksong", False, "non-commercial use only (its license.txt); also single melodies"),
    ("josquin", False, "encodings under the GNU GPL (copyleft)"),
    ("beach", False, "encoding CC-BY-SA (share-alike)"),
    ("luca", False, "encoding CC-BY-SA 3.0 (share-alike)"),
    ("ciconia", False, "encoding CC-BY-SA 3.0 (share-alike)"),
    ("webern", False, "encoding CC-BY-SA; atonal (against the in-key goal)"),
    ("schoenberg", False, "atonal (against the in-key goal)"),
    ("ryansMammoth", False, "single-line fiddle tunes (ABC): not polyphonic"),
    ("oneills1850", False, "single-line Irish tunes (ABC): not polyphonic"),
    ("airdsAirs", False, "single-line airs (ABC): not polyphonic"),
    ("miscFolk", False, "single-line tunes (ABC): not polyphonic"),
    ("nottingham-dataset", False, "an empty placeholder in the package"),
    ("demos", False, "demonstration files, not a repertory (some marked copyright)"),
    ("leadSheet", False, "lead sheets (melody and chord symbols; one marked All Rights Reserved)"),
    ("theoryExercises", False, "exercises, not pieces"),
)
DEFAULT_COMPOSERS = tuple(c for c, used, _ in SOURCES if used)
# music21 parses a chorale in a fraction of a second and a quartet movement in ~15 s; 1318 Palestrina
# movements take ~1.7 s each. No cap: the whole of every used folder.
DEFAULT_MAX_PER_COMPOSER = 100000
MAX_PER_COMPOSER_OVERRIDE = {}
# Roman-numeral analyses (.rntxt) are harmonic sketches, not the pieces themselves.
SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".mid", ".midi", ".abc")
MIDI_DRUM_CHANNEL = 9  # 0-based channel 10


def log(msg):
    print(f"[prepare_corpus] {msg}", file=sys.stderr, flush=True)


def list_works(composers, max_per_composer):
    """(composer, path) of each score file in music21's core corpus, in a stable order."""
    from music21 import corpus

    works = []
    for name in composers:
        paths = sorted(str(p) for p in corpus.getComposer(name) if str(p).lower().endswith(SCORE_SUFFIXES))
        if not paths:
            log(f"music21 corpus has no works by `{name}` (skipped)")
        works.extend((name, p) for p in paths[:min(max_per_composer, MAX_PER_COMPOSER_OVERRIDE.get(name, max_per_composer))])
    return works


def midi_name(composer, path):
    """A file name unique within the corpus: composer + the path below the corpus root."""
    from music21 import common

    root = str(common.getCorpusFilePath())
    rel = os.path.relpath(path, root) if path.startswith(root) else os.path.basename(path)
    stem = rel.replace(os.sep, "_").rsplit(".", 1)[0]
    return f"{composer}__{stem}"[:180]


BEAT_MS = 500  # the rendering tempo: one notated beat = 500 ms (120 BPM), `aria_bridge.train_bpm`
TICKS_PER_BEAT = 480
DYNAMIC_VELOCITY = {"pppp": 22, "ppp": 30, "pp": 42, "p": 55, "mp": 68, "mf": 80, "f": 95, "ff": 108,
                    "fff": 118, "ffff": 124, "fp": 95, "sf": 100, "sfz": 105, "sffz": 110, "fz": 100,
                    "rfz": 100, "rf": 100}
DEFAULT_VELOCITY = 80  # mf where a part has no dynamics mark (chorales, masses)


def quarter_ms(score):
    """ms per quarter note: the beat is a quarter (500 ms) or, under x/2 and x/1, a half (250 ms)."""
    ts = score.flatten().getElementsByClass("TimeSignature")
    den = ts[0].denominator if len(ts) else 4
    return BEAT_MS / 2 if den <= 2 else BEAT_MS


def part_notes(part, q_ms):
    """(start_ms, end_ms, pitch, velocity) of one part: ties joined, grace notes and chord symbols
    left out, staccato at half length, velocity from the latest dynamics mark."""
    from music21 import articulations, harmony

    flat = part.flatten()
    dyn = sorted((float(d.offset), DYNAMIC_VELOCITY.get(d.value, DEFAULT_VELOCITY))
                 for d in flat.getElementsByClass("Dynamic"))
    notes, open_tie, k, vel = [], {}, 0, DEFAULT_VELOCITY
    for el in flat.notes:
        if isinstance(el, harmony.Harmony) or el.duration.isGrace or el.duration.quarterLength <= 0:
            continue
        off = float(el.offset)
        while k < len(dyn) and dyn[k][0] <= off + 1e-6:
            vel = dyn[k][1]
            k += 1
        ql = float(el.duration.quarterLength)
        if any(isinstance(a, (articulations.Staccato, articulations.Staccatissimo)) for a in el.articulations):
            ql *= 0.5
        subs = el.notes if el.isChord else [el]
        for n in subs:
            if n.pitch.midi is None or not 0 <= n.pitch.midi <= 127:
                continue
            tie = n.tie if n.tie is not None else el.tie
            midi = int(n.pitch.midi)
            start, end = off * q_ms, (off + ql) * q_ms
            j = open_tie.get(midi)
            if tie is not None and tie.type in ("stop", "continue") and j is not None \
                    and abs(notes[j][1] - start) < 1.0:
                notes[j][1] = end
            else:
                notes.append([start, end, midi, vel])
                j = len(notes) - 1
            if tie is not None and tie.type in ("start", "continue"):
                open_tie[midi] = j
            else:
                open_tie.pop(midi, None)
    return notes


def write_midi(parts, path):
    """One track and channel per part (the drum channel 10 skipped), 120 BPM, no program change."""
    import mido

    ms_to_tick = TICKS_PER_BEAT / BEAT_MS
    mid = mido.MidiFile(ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=BEAT_MS * 1000, time=0)])
    mid.tracks.append(meta)
    channels = [c for c in range(16) if c != MIDI_DRUM_CHANNEL]
    for i, notes in enumerate(parts):
        ch = channels[i % len(channels)]
        events = []
        last_by_pitch = {}
        for start, end, pitch, vel in sorted(notes):
            s, e = round(start * ms_to_tick), round(end * ms_to_tick)
            if e <= s:
                continue
            prev = last_by_pitch.get(pitch)
            if prev is not None and prev[1] > s:  # a re-struck pitch ends the earlier note
                prev[1] = s
            ev = [s, e, pitch, vel]
            last_by_pitch[pitch] = ev
            events.append(ev)
        msgs = []
        for s, e, pitch, vel in events:
            if e > s:
                msgs.append((s, 1, pitch, vel))
                msgs.append((e, 0, pitch, 0))
        msgs.sort()  # at one tick, note-offs (0) before note-ons (1)
        track, now = mido.MidiTrack(), 0
        for t, on, pitch, vel in msgs:
            kind = "note_on" if on else "note_off"
            track.append(mido.Message(kind, channel=ch, note=pitch, velocity=vel if on else 0, time=t - now))
            now = t
        mid.tracks.append(track)
    mid.save(path)


KERN_STEP = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


class KernUnsupported(Exception):
    """A Humdrum file this small reader leaves to music21 (spine splits, grace notes, tuplets...)."""


def kern_parts(path):
    """(quarter_ms, parts) of a plain **kern file, the notes as ``part_notes`` gives them: a reader
    for the simple files of the Palestrina masses (no spine splits; each note with its own
    accidentals, as **kern writes them), in a fraction of the 0.7-1.7 s per movement music21's
    Humdrum parser takes (tens of CPU-minutes for the 1318 movements). It gave the same notes as
    music21 on the 5 movements compared. Anything else raises ``KernUnsupported``."""
    import re

    tok_re = re.compile(r"^(\[?)(\d+)(\.*)([a-gA-G]+|r)([#n-]*)([\]_]?)$")
    n, t, next_t, parts, open_tie, q_ms = 0, 0.0, [], [], [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("!"):
                continue
            cols = line.split("\t")
            if cols[0].startswith("**"):
                if n or any(c != "**kern" for c in cols):
                    raise KernUnsupported("several or non-kern spines")
                n = len(cols)
                next_t, parts, open_tie = [0.0] * n, [[] for _ in cols], [{} for _ in cols]
                continue
            if len(cols) != n:
                raise KernUnsupported("a line with another number of spines")
            if cols[0].startswith("*"):
                for c in cols:
                    if c in ("*^", "*v", "*+", "*x") or c.startswith("*tuplet"):
                        raise KernUnsupported(f"interpretation {c}")
                    m = re.match(r"^\*M\d+/(\d+)$", c)
                    if m and q_ms is None:
                        q_ms = BEAT_MS / 2 if int(m.group(1)) <= 2 else BEAT_MS
                continue
            if cols[0].startswith("="):
                continue
            t = min(x for x, c in zip(next_t, cols) if c != ".") if any(c != "." for c in cols) else t
            for i, c in enumerate(cols):
                if c == ".":
                    continue
                for sub in c.split(" "):
                    m = tok_re.match(sub.replace("[r", "r").replace("r]", "r"))
                    if not m:
                        raise KernUnsupported(f"token {sub!r}")
                    tie_start, recip, dots, letters, acc, tie_end = m.groups()
                    base = 8.0 if recip == "0" else 4.0 / int(recip)
                    ql = base * (2 - 0.5 ** len(dots))
                    next_t[i] = t + ql
                    if letters == "r":
                        continue
                    if len(set(letters.lower())) != 1:
                        raise KernUnsupported(f"token {sub!r}")
                    octave = 3 + len(letters) if letters.islower() else 4 - len(letters)
                    midi = 12 * (octave + 1) + KERN_STEP[letters[0].lower()] + acc.count("#") - acc.count("-")
                    j = open_tie[i].get(midi)
                    if (tie_end in ("]", "_")) and j is not None:
                        parts[i][j][1] = t + ql
                    else:
                        parts[i].append([t, t + ql, midi, DEFAULT_VELOCITY])
                        j = len(parts[i]) - 1
                    if tie_start or tie_end == "_":
                        open_tie[i][midi] = j
                    else:
                        open_tie[i].pop(midi, None)
    q_ms = q_ms or BEAT_MS
    return q_ms, [[[s * q_ms, e * q_ms, p, v] for s, e, p, v in notes] for notes in parts if notes]


def render_one(job):
    """Worker: music21 score (or opus: every score in it) -> piano MIDI files. Returns (names, error)."""
    composer, path, out_dir = job
    from music21 import stream

    base = midi_name(composer, path)
    done = [f for f in (base + ".mid", base + "_0.mid") if os.path.exists(os.path.join(out_dir, f))]
    if done:
        return done, None
    if path.endswith(".krn"):
        try:
            _, parts = kern_parts(path)
            if parts:
                write_midi(parts, os.path.join(out_dir, base + ".mid.tmp"))
                os.replace(os.path.join(out_dir, base + ".mid.tmp"), os.path.join(out_dir, base + ".mid"))
                return [base + ".mid"], None
        except KernUnsupported:
            pass  # music21 reads it below
    try:
        from music21 import converter

        parsed = converter.parse(path, forceSource=True)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        names = []
        for i, score in enumerate(scores):
            q_ms = quarter_ms(score)
            parts = list(score.parts) or [score]
            notes = [n for n in (part_notes(p, q_ms) for p in parts) if n]
            if not notes:
                continue
            name = base + (f"_{i}" if len(scores) > 1 else "") + ".mid"
            tmp = os.path.join(out_dir, name + ".tmp")
            write_midi(notes, tmp)
            os.replace(tmp, os.path.join(out_dir, name))
            names.append(name)
        return names, None
    except Exception as e:  # a score music21 cannot parse is skipped, not fatal
        return [], f"{path}: {type(e).__name__}: {e}"


def render(works, out_dir, jobs, time_limit_s):
    os.makedirs(out_dir, exist_ok=True)
    t0, files, errors = time.time(), [], []
    with mp.Pool(jobs, maxtasksperchild=20) as pool:
        pending = [(c, p, out_dir) for c, p in works]
        for k, (names, err) in enumerate(pool.imap_unordered(render_one, pending, chunksize=1)):
            files.extend(names)
            if err:
                errors.append(err)
            if k % 50 == 0:
                log(f"rendered {k + 1}/{len(works)} works, {len(files)} MIDI files, {time.time() - t0:.0f} s")
            if time_limit_s and time.time() - t0 > time_limit_s:
                log(f"render time limit {time_limit_s} s reached after {k + 1} works: stopping")
                pool.terminate()
                break
    for e in errors[:20]:
        log(f"skipped {e}")
    log(f"{len(files)} MIDI files, {len(errors)} works skipped")
    return sorted(set(files))


def tokenize(midi_dir, files, out_dir, tokenizer_cmd):
    list_in = "\n".join(os.path.join(midi_dir, f) for f in files) + "\n"
    vocab_path = os.path.join(out_dir, "vocab.json")
    cmd = tokenizer_cmd + ["--vocab", vocab_path]
    log(f"tokenizing {len(files)} files: {' '.join(cmd)}")
    res = subprocess.run(cmd, input=list_in.encode(), stdout=subprocess.PIPE, check=True)
    records = [json.loads(line) for line in res.stdout.decode().splitlines() if line.strip()]
    bad = [r for r in records if "error" in r]
    for r in bad[:20]:
        log(f"tokenizer skipped {r['file']}: {r['error']}")
    return [r for r in records if "ids" in r], vocab_path


def is_val(name, val_percent):
    h = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return (h % 1000) < val_percent * 10


def write_split(path, records):
    ids = np.concatenate([np.asarray(r["ids"], dtype=np.int32) for r in records]) if records else \
        np.zeros(0, np.int32)
    offsets = np.cumsum([0] + [len(r["ids"]) for r in records]).astype(np.int64)
    names = np.array([os.path.basename(r["file"]) for r in records])
    np.savez_compressed(path, ids=ids, offsets=offsets, names=names)
    return int(ids.size)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/demo-corpus", help="output folder (default out/demo-corpus)")
    ap.add_argument("--composers", default=",".join(DEFAULT_COMPOSERS),
                    help="comma-separated music21 corpus composers")
    ap.add_argument("--max-per-composer", type=int, default=DEFAULT_MAX_PER_COMPOSER)
    ap.add_argument("--jobs", type=int, default=2, help="parallel music21 renderers (default 2)")
    ap.add_argument("--render-time-limit", type=float, default=0.0,
                    help="stop rendering new works after this many seconds (default 0: no limit, so the "
                         "corpus does not depend on the machine's speed; ~30 min on 2 busy cores)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="held-out pieces, percent (default 5)")
    ap.add_argument("--tokenizer", default="cargo run --quiet --example tokenize_corpus --",
                    help="command of the tokenize_corpus example (default: built with cargo)")
    ap.add_argument("--list-sources", action="store_true",
                    help="print every music21 corpus folder, whether it is used and why, and exit")
    a = ap.parse_args(argv)
    if a.list_sources:
        for c, used, why in SOURCES:
            print(f"{'used' if used else 'left out':9} {c:20} {why}")
        return

    midi_dir = os.path.join(a.out, "midi")
    works = list_works([c for c in a.composers.split(",") if c], a.max_per_composer)
    log(f"{len(works)} works selected from the music21 corpus")
    files = render(works, midi_dir, a.jobs, a.render_time_limit)
    records, vocab_path = tokenize(midi_dir, files, a.out, a.tokenizer.split())

    train = [r for r in records if not is_val(os.path.basename(r["file"]), a.val_percent)]
    val = [r for r in records if is_val(os.path.basename(r["file"]), a.val_percent)]
    n_train = write_split(os.path.join(a.out, "train.npz"), train)
    n_val = write_split(os.path.join(a.out, "val.npz"), val)

    import music21

    per_composer = {}
    for r in records:
        c = os.path.basename(r["file"]).split("__", 1)[0]
        d = per_composer.setdefault(c, {"pieces": 0, "tokens": 0})
        d["pieces"] += 1
        d["tokens"] += len(r["ids"])
    summary = {
        "source": f"music21 {music21.__version__} core corpus (PyPI package `music21`)",
        "rendering": "every part as piano (no program change), one notated beat = 500 ms, velocities "
                     "from the dynamics marks (mf 80 where there are none)",
        "train_bpm": 60000 // BEAT_MS,
        "sources": [{"composer": c, "used": used, "licence": why} for c, used, why in SOURCES],
        "tokenizer": "aria-bridge AbsTokenizer port, default case (prefix, <S>, notes, <D>, <E>)",
        "vocab_size": len(json.load(open(vocab_path))),
        "pieces": {"train": len(train), "val": len(val)},
        "tokens": {"train": n_train, "val": n_val},
        "per_composer": per_composer,
    }
    with open(os.path.join(a.out, "corpus.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(json.dumps(summary["pieces"]) + " pieces, " + json.dumps(summary["tokens"]) + " tokens")


if __name__ == "__main__":
    main()
