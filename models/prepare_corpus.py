#!/usr/bin/env python3
"""Builds the training corpus of the demo model: real pieces -> piano MIDI -> Aria token ids.

Steps (each is skipped when its output already exists, so a re-run resumes):

1. Render every selected work of the corpus shipped inside the PyPI package ``music21`` to a MIDI file
   in ``OUT/midi/``, every part played by a piano (program changes removed, so the tokenizer reads each
   channel as piano; a part on the drum channel 10 is moved to channel 16).
2. Tokenize them with the bridge's own tokenizer (``cargo run --example tokenize_corpus``), the
   reference's default case: ``("prefix","instrument","piano")``, ``<S>``, notes, ``<D>``, ``<E>``.
   Training and the live bridge therefore agree on every id. ``OUT/vocab.json`` is the vocabulary in
   id order, from the same tokenizer.
3. Split by piece (a stable hash of the file name puts ``--val-percent`` of the pieces in the held-out
   set) and write ``OUT/train.npz`` / ``OUT/val.npz`` (``ids`` int32 concatenated, ``offsets`` int64
   with one entry per piece plus the end) and ``OUT/corpus.json`` (sources, counts, licences).

Needs python3 with ``music21``, ``mido``, ``numpy`` and a Rust toolchain (for step 2)::

    python3 models/prepare_corpus.py --out out/demo-corpus            # all default sources
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

# Composer folders of music21's core corpus that hold polyphonic art music (the folk-song collections
# in ABC are single melodies and left out). Per-composer caps keep one large collection (Palestrina's
# masses, ~1300 movements) from dominating the corpus and the preparation time.
DEFAULT_COMPOSERS = ("bach", "monteverdi", "palestrina", "trecento", "handel", "schubert", "chopin",
                     "joplin", "corelli", "verdi", "weber", "cpebach", "beach", "schumann_robert",
                     "schumann_clara", "lusitano", "josquin", "luca", "ciconia", "webern", "schoenberg",
                     "mozart", "haydn", "beethoven")
# In this order: music21 renders a string quartet movement (Mozart, Haydn, Beethoven) in minutes, a
# chorale in a fraction of a second, so the large scores come last where a time limit cuts them.
DEFAULT_MAX_PER_COMPOSER = 450
# Palestrina's masses (1318 movements) would outnumber everything else together.
MAX_PER_COMPOSER_OVERRIDE = {"palestrina": 250}
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


def pianoize(path_in, path_out):
    """Rewrites a MIDI file so that every note is a piano note (see the module docstring)."""
    import mido

    mid = mido.MidiFile(path_in)
    used = {m.channel for t in mid.tracks for m in t if hasattr(m, "channel")}
    spare = next((c for c in range(15, -1, -1) if c not in used and c != MIDI_DRUM_CHANNEL), 15)
    for track in mid.tracks:
        kept, carry = [], 0
        for m in track:
            if m.type == "program_change":
                carry += m.time  # keep the timing of the events that follow
                continue
            m = m.copy(time=m.time + carry)
            carry = 0
            if hasattr(m, "channel") and m.channel == MIDI_DRUM_CHANNEL:
                m = m.copy(channel=spare)
            kept.append(m)
        track[:] = kept
    mid.save(path_out)


def render_one(job):
    """Worker: music21 score (or opus: every score in it) -> piano MIDI files. Returns (names, error)."""
    composer, path, out_dir = job
    from music21 import stream

    base = midi_name(composer, path)
    done = [f for f in (base + ".mid", base + "_0.mid") if os.path.exists(os.path.join(out_dir, f))]
    if done:
        return done, None
    try:
        from music21 import converter

        parsed = converter.parse(path)
        scores = list(parsed.scores) if isinstance(parsed, stream.Opus) else [parsed]
        names = []
        for i, score in enumerate(scores):
            if not score.flatten().notes:
                continue
            name = base + (f"_{i}" if len(scores) > 1 else "") + ".mid"
            tmp = os.path.join(out_dir, name + ".tmp")
            score.write("midi", fp=tmp)
            pianoize(tmp, os.path.join(out_dir, name))
            os.remove(tmp)
            names.append(name)
        return names, None
    except Exception as e:  # a score music21 cannot parse or write is skipped, not fatal
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
            if time.time() - t0 > time_limit_s:
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
    ap.add_argument("--render-time-limit", type=float, default=1800.0,
                    help="stop rendering new works after this many seconds (default 1800)")
    ap.add_argument("--val-percent", type=float, default=5.0, help="held-out pieces, percent (default 5)")
    ap.add_argument("--tokenizer", default="cargo run --quiet --example tokenize_corpus --",
                    help="command of the tokenize_corpus example (default: built with cargo)")
    a = ap.parse_args(argv)

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
        "rendering": "every part as piano (program changes removed), music21's MIDI writer",
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
