#!/usr/bin/env python3
"""Trains `aria-demo`: a small model with Aria's exact architecture, key names and tokenizer.

Input: the folder written by ``models/prepare_corpus.py`` (``train.npz``, ``val.npz``, ``vocab.json``).
Output (``--out``, default ``out/demo-train``): ``aria-demo.safetensors`` with the reference's key
names (``models/export_onnx.py --checkpoint ... --config ...`` takes it unchanged),
``aria-demo.config.json``, ``best.safetensors`` (lowest held-out loss so far), ``metrics.json`` and
a log line per evaluation on stderr.

Architecture: EleutherAI aria ``TransformerLM`` (pre-norm LayerNorm eps 1e-5 with bias, fused
``mixed_qkv``, rotary base 500000 in half-split form, SwiGLU with hidden ``ff_mult * d_model``,
final ``out_layer_norm``, untied ``lm_head``), full 17727-entry vocabulary.

Training examples look like the bridge's live prompts: the piano prefix, ``<S>``, then the notes of
a piece from a random note on, re-based so that note sits at onset 0 (the reference's inference
re-bases its prompts the same way), ``<D>``/``<E>`` where the piece ends. Augmentation follows the
reference's ideas, applied to the token stream, with times re-quantised by the reference's own
quantiser (binary search, ties resolved as the reference does):

* pitch: a shift drawn uniformly from ``-p .. p-1`` semitones (``--pitch-aug``, default 6: each of the
  12 keys equally often, so the model meets every key, not only the corpus's flat-side ones);
* dynamics: each window gets its own level (+-``--velocity-level``), contrast (the score's marks
  spread x0.6..1.4 around mf), a phrase swell (a sine of up to +-``--velocity-swell`` over 4-16 s),
  accents on the beat and on the top voice (up to ``--velocity-accent`` each) and a per-note jitter
  (sd ``--velocity-jitter``), so velocities vary across pieces and phrases and stay consistent
  within a window (the model learns to continue at the prompt's level);
* tempo: x ``1/(1+a)`` .. ``1+a`` (``--tempo-aug``, default 0.1). The corpus is rendered at one beat =
  500 ms (120 BPM, ``train_bpm`` in the config) and the bridge warps the player's tempo to it, so
  the augmentation only covers timing drift around that tempo, not 60-200 BPM.

Why the head trains on a subset of the vocabulary: the corpus is piano only, so ~85% of the
vocabulary (notes of 9 other instruments, drums, composer/genre prefixes) never occurs. The model
computes its softmax over the 2672 tokens piano music can use (a head of 2672 rows instead of
17727: 6.6x fewer head FLOPs, about half of a step's work at this size), and at export the other rows are made certain to lose: ``out_layer_norm`` channel 0 is held
at weight 0 / bias 1 (a constant 1 that ``lm_head`` column 0 turns into a learned per-token bias), and
every unused row of ``lm_head`` is ``-40`` in that column and 0 elsewhere, a logit of exactly -40.
The exported model is an ordinary Aria checkpoint; all losses reported are over the full vocabulary.

CPU training (2 threads) of the default size takes ``--minutes`` (default 35) of wall time: the
learning-rate schedule runs on whichever of steps or time is further along, so a slow machine still
anneals and finishes in time. Every ``--save-every-min`` minutes it writes ``aria-demo.safetensors``
and ``resume.pt`` (weights, optimizer, step, elapsed time, sampler state): ``--resume`` goes on from
there after an interruption. ``--init`` starts from the weights of an exported model of the same size
(the demo model v2 started from v1's). The commands of the shipped model are in models/README.md::

    python3 models/prepare_corpus.py --out out/demo-corpus
    python3 models/train_demo.py --data out/demo-corpus --out out/demo-train --minutes 40
    python3 models/export_onnx.py --checkpoint out/demo-train/best.safetensors \\
        --config out/demo-train/aria-demo.config.json --dtype fp32 --quantize int8 --variant gqa \\
        --out models/aria-demo.onnx
"""

import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LN_EPS = 1e-5
UNUSED_LOGIT = -40.0  # e^-40 per unused token: the 15000 of them together hold < 1e-13 of the mass
ONSET_GRID = np.arange(0, 5000, 10)  # ("onset", ms) within a 5000 ms segment
DUR_GRID = np.arange(0, 5001, 10)
VEL_GRID = np.arange(0, 121, 10)
SEGMENT_MS = 5000
TRAIN_BPM = 120  # prepare_corpus.py renders one notated beat as 500 ms
BEAT_MS = 60000 // TRAIN_BPM


def log(msg):
    print(f"[train_demo {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Tokens


def closest(n, grid):
    """The reference tokenizer's quantiser: a binary search that keeps a candidate only when it is
    strictly closer than the best so far and moves right while the midpoint is below ``n``. Ties
    therefore depend on the search path (onset 15 -> 20, 25 -> 20), which plain rounding misses."""
    left, right, best = 0, len(grid) - 1, None
    while left <= right:
        mid = (left + right) // 2
        if best is None or abs(int(grid[mid]) - n) < abs(best - n):
            best = int(grid[mid])
        if grid[mid] < n:
            left = mid + 1
        else:
            right = mid - 1
    return best


def table(grid, upto):
    return np.array([closest(n, grid) for n in range(upto + 1)], dtype=np.int64)


Q_ONSET = table(ONSET_GRID, SEGMENT_MS - 1)
Q_DUR = np.maximum(table(DUR_GRID, 5000), 10)  # a zero duration becomes 10 ms, as in the reference
Q_VEL = table(VEL_GRID, 127)
Q_VEL[1:] = np.maximum(Q_VEL[1:], 10)  # a sounding note never quantises to velocity 0


class Vocab:
    """Ids of the tokens the augmentation writes, from the tokenizer's own vocab.json."""

    def __init__(self, path):
        with open(path) as f:
            tokens = json.load(f)
        self.size = len(tokens)
        self.special = {t: i for i, t in enumerate(tokens) if isinstance(t, str)}
        self.onset, self.dur, self.note, self.note_of = {}, {}, {}, {}
        self.prefix = []
        for i, t in enumerate(tokens):
            if not isinstance(t, list):
                continue
            if t[0] == "prefix":
                self.prefix.append(i)
            elif t[0] == "onset":
                self.onset[t[1]] = i
            elif t[0] == "dur":
                self.dur[t[1]] = i
            elif len(t) == 3:
                self.note[(t[0], t[1], t[2])] = i
                self.note_of[i] = (t[0], t[1], t[2])
        self.S, self.E, self.P, self.D, self.T = (self.special[k] for k in ("<S>", "<E>", "<P>", "<D>", "<T>"))
        self.piano_prefix = tokens.index(["prefix", "instrument", "piano"])
        self.onset_of = {i: ms for ms, i in self.onset.items()}
        self.dur_of = {i: ms for ms, i in self.dur.items()}

    def used_ids(self):
        """What piano music can use: specials, the piano prefix, piano notes, onsets, durations."""
        ids = set(self.special.values()) | {self.piano_prefix}
        ids |= {i for (inst, _, _), i in self.note.items() if inst == "piano"}
        ids |= set(self.onset.values()) | set(self.dur.values())
        return sorted(ids)


class Piece:
    """One tokenized piece as note arrays in absolute ms (what augmentation re-encodes)."""

    def __init__(self, ids, vocab):
        ids = [int(i) for i in ids]
        s = ids.index(vocab.S)
        self.prefix = ids[: s + 1]
        notes, seg, self.d_before, self.ends = [], 0, -1, False
        k = s + 1
        while k < len(ids):
            t = ids[k]
            if t == vocab.T:
                seg += 1
            elif t == vocab.D:
                self.d_before = len(notes)
            elif t == vocab.E:
                self.ends = True
                break
            elif t in vocab.note_of and k + 2 < len(ids) and ids[k + 1] in vocab.onset_of \
                    and ids[k + 2] in vocab.dur_of:
                inst, pitch, vel = vocab.note_of[t]
                notes.append((inst, pitch, vel, seg * SEGMENT_MS + vocab.onset_of[ids[k + 1]],
                              vocab.dur_of[ids[k + 2]]))
                k += 2
            k += 1
        self.inst = [n[0] for n in notes]
        self.pitch = np.array([n[1] for n in notes], np.int64)
        self.vel = np.array([n[2] for n in notes], np.int64)
        self.onset = np.array([n[3] for n in notes], np.int64)
        self.dur = np.array([n[4] for n in notes], np.int64)
        # On a beat of the rendering (where accents go) and the highest note of its onset (the top
        # voice, which players bring out).
        self.on_beat = (self.onset % BEAT_MS) == 0
        top = {}
        for o, p in zip(self.onset.tolist(), self.pitch.tolist()):
            top[o] = max(p, top.get(o, -1))
        self.top = np.array([p == top[o] for o, p in zip(self.onset.tolist(), self.pitch.tolist())], bool)

    def __len__(self):
        return len(self.pitch)

    def encode(self, vocab, start, max_len, shift=0, dynamics=None, tempo=1.0):
        """Prefix, ``<S>``, notes from ``start`` re-based at its onset, augmented (``dynamics``: a
        ``Dynamics`` or None for the rendered velocities); at most ``max_len`` ids. Returns (ids,
        index of the first note not included)."""
        out = list(self.prefix)
        base, seg, j = self.onset[start], 0, start
        while j < len(self) and len(out) < max_len:
            ms = int(round((self.onset[j] - base) * tempo))
            while seg < ms // SEGMENT_MS:
                out.append(vocab.T)
                seg += 1
            if j == self.d_before:  # the reference puts <D> right before a note token
                out.append(vocab.D)
            pitch = int(self.pitch[j]) + shift
            vel = int(self.vel[j])
            if vel > 0 and dynamics is not None:
                vel = int(Q_VEL[dynamics.velocity(vel, ms, bool(self.on_beat[j]), bool(self.top[j]))])
            dur = int(Q_DUR[min(5000, max(0, int(round(self.dur[j] * tempo))))])
            note = vocab.note.get((self.inst[j], pitch, vel))
            if note is not None:
                out += [note, vocab.onset[int(Q_ONSET[ms % SEGMENT_MS])], vocab.dur[dur]]
            j += 1
        if j == len(self) and len(out) < max_len:
            if self.d_before == len(self):
                out.append(vocab.D)
            if self.ends:
                out.append(vocab.E)
        return out[:max_len], j


class Dynamics:
    """How one training window plays its velocities (see the module doc): level, contrast, a phrase
    swell, beat and top-voice accents and jitter, drawn once per window."""

    def __init__(self, r, a):
        self.level = r.uniform(-a.velocity_level, a.velocity_level)
        self.contrast = r.uniform(0.6, 1.4)
        self.swell = r.uniform(0.0, a.velocity_swell)
        self.period_ms = r.uniform(4000.0, 16000.0)
        self.phase = r.uniform(0.0, 2 * math.pi)
        self.accent = r.uniform(0.0, a.velocity_accent)
        self.top = r.uniform(0.0, a.velocity_accent)
        self.jitter = a.velocity_jitter
        self.rng = random.Random(r.random())

    def velocity(self, vel, t_ms, on_beat, top):
        v = 80 + self.contrast * (vel - 80) + self.level
        v += self.swell * math.sin(2 * math.pi * t_ms / self.period_ms + self.phase)
        v += self.accent * on_beat + self.top * top + self.rng.gauss(0.0, self.jitter)
        return min(127, max(1, int(round(v))))


# ---------------------------------------------------------------------------------------------
# Model (EleutherAI aria TransformerLM, key names of its state dict)


def rope_tables(d_head, n, base):
    exps = torch.arange(0, d_head, 2, dtype=torch.float32)[: d_head // 2] / d_head
    freqs = 1.0 / (torch.tensor(float(base)) ** exps)
    ang = torch.outer(torch.arange(n, dtype=torch.float32), freqs)
    return torch.cos(ang), torch.sin(ang)


def rotate_half_split(x, cos, sin):
    """Rotary in half-split form: pairs are (i, i + Dh/2), not interleaved."""
    a, b = x.chunk(2, dim=-1)
    return torch.cat([a * cos - b * sin, b * cos + a * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, d, h, ff):
        super().__init__()
        self.h = h
        self.norm1 = nn.LayerNorm(d, eps=LN_EPS)
        self.mixed_qkv = nn.Linear(d, 3 * d, bias=False)
        self.att_proj_linear = nn.Linear(d, d, bias=False)
        self.norm2 = nn.LayerNorm(d, eps=LN_EPS)
        self.ff_gate_proj = nn.Linear(d, ff, bias=False)
        self.ff_up_proj = nn.Linear(d, ff, bias=False)
        self.ff_down_proj = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        q, k, v = self.mixed_qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.h, d // self.h).transpose(1, 2) for z in (q, k, v))
        q, k = rotate_half_split(q, cos, sin), rotate_half_split(k, cos, sin)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.att_proj_linear(att.transpose(1, 2).reshape(b, t, d))
        y = self.norm2(x)
        return x + self.ff_down_proj(F.silu(self.ff_gate_proj(y)) * self.ff_up_proj(y))


class DemoLM(nn.Module):
    """Aria's decoder with embedding and head over the ``used`` token subset (see the module doc)."""

    def __init__(self, cfg, n_used):
        super().__init__()
        d = cfg["d_model"]
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(n_used, d)
        self.encode_layers = nn.ModuleList(
            Block(d, cfg["n_heads"], cfg["ff_mult"] * d) for _ in range(cfg["n_layers"]))
        self.out_layer_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.lm_head = nn.Linear(d, n_used, bias=False)
        cos, sin = rope_tables(d // cfg["n_heads"], cfg["max_seq_len"], cfg["rope_base"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
        for blk in self.encode_layers:  # scaled residual projections (GPT-2 style init)
            for lin in (blk.att_proj_linear, blk.ff_down_proj):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * cfg["n_layers"]))
        with torch.no_grad():
            self.out_layer_norm.weight[0] = 0.0
            self.out_layer_norm.bias[0] = 1.0
        # Channel 0 of the final norm stays a constant 1 (its gradient is always zeroed).
        mask = torch.ones(d)
        mask[0] = 0.0
        self.out_layer_norm.weight.register_hook(lambda g: g * mask)
        self.out_layer_norm.bias.register_hook(lambda g: g * mask)

    def hidden(self, x):
        t = x.shape[1]
        h = self.tok_embeddings(x)
        cos, sin = self.cos[:t], self.sin[:t]
        for blk in self.encode_layers:
            h = blk(h, cos, sin)
        return self.out_layer_norm(h)

    def forward(self, x):
        return self.lm_head(self.hidden(x))

    def full_weights(self, used, vocab_size, seed=0):
        """State dict of the full-vocabulary Aria model, reference key names, float32 tensors."""
        d = self.cfg["d_model"]
        g = torch.Generator().manual_seed(seed)
        emb = torch.randn(vocab_size, d, generator=g) * 0.02  # rows no input ever reaches
        emb[used] = self.tok_embeddings.weight.detach()
        head = torch.zeros(vocab_size, d)
        head[:, 0] = UNUSED_LOGIT
        head[used] = self.lm_head.weight.detach()
        sd = {"model.tok_embeddings.weight": emb, "lm_head.weight": head,
              "model.out_layer_norm.weight": self.out_layer_norm.weight.detach().clone(),
              "model.out_layer_norm.bias": self.out_layer_norm.bias.detach().clone()}
        for i, blk in enumerate(self.encode_layers):
            for name, p in blk.named_parameters():
                sd[f"model.encode_layers.{i}.{name}"] = p.detach().clone()
        return {k: v.contiguous().float() for k, v in sd.items()}


def load_onnx_weights(path):
    """Reference-named float32 weights of a model written by export_onnx.py (any variant, fp32 or
    fp16 weights, not --quantize): its initializers carry the reference key names, the linear
    weights transposed and gate|up concatenated, which this undoes."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(path)
    raw = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in m.graph.initializer}
    if any(k.endswith("_q") for k in raw):
        raise SystemExit(f"{path} is a --quantize export; start from a float one")
    sd = {}
    for k, v in raw.items():
        if not (k.startswith("model.") or k == "lm_head.weight"):
            continue
        if k.endswith("ff_gate_up.weight"):
            gate, up = np.split(v.T, 2, axis=0)
            sd[k.replace("ff_gate_up", "ff_gate_proj")] = gate
            sd[k.replace("ff_gate_up", "ff_up_proj")] = up
        elif k.endswith(("mixed_qkv.weight", "att_proj_linear.weight", "ff_down_proj.weight")):
            sd[k] = v.T
        else:
            sd[k] = v
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}


def init_from(model, sd, used):
    """Copies a reference-named full-vocabulary state dict into the used-token model."""
    used = torch.tensor(used)
    with torch.no_grad():
        model.tok_embeddings.weight.copy_(sd["model.tok_embeddings.weight"][used])
        model.lm_head.weight.copy_(sd["lm_head.weight"][used])
        model.out_layer_norm.weight.copy_(sd["model.out_layer_norm.weight"])
        model.out_layer_norm.bias.copy_(sd["model.out_layer_norm.bias"])
        for i, blk in enumerate(model.encode_layers):
            for name, p in blk.named_parameters():
                p.copy_(sd[f"model.encode_layers.{i}.{name}"])


def full_forward(sd, cfg, x):
    """Logits over the whole vocabulary from a reference-named state dict (what ONNX computes)."""
    d, h = cfg["d_model"], cfg["n_heads"]
    t = x.shape[1]
    cos, sin = rope_tables(d // h, cfg["max_seq_len"], cfg["rope_base"])
    z = F.embedding(x, sd["model.tok_embeddings.weight"])
    for i in range(cfg["n_layers"]):
        p = lambda n: sd[f"model.encode_layers.{i}.{n}"]  # noqa: E731
        y = F.layer_norm(z, (d,), p("norm1.weight"), p("norm1.bias"), LN_EPS)
        q, k, v = F.linear(y, p("mixed_qkv.weight")).split(d, dim=-1)
        q, k, v = (u.view(x.shape[0], t, h, d // h).transpose(1, 2) for u in (q, k, v))
        q, k = rotate_half_split(q, cos[:t], sin[:t]), rotate_half_split(k, cos[:t], sin[:t])
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(x.shape[0], t, d)
        z = z + F.linear(att, p("att_proj_linear.weight"))
        y = F.layer_norm(z, (d,), p("norm2.weight"), p("norm2.bias"), LN_EPS)
        z = z + F.linear(F.silu(F.linear(y, p("ff_gate_proj.weight"))) * F.linear(y, p("ff_up_proj.weight")),
                         p("ff_down_proj.weight"))
    z = F.layer_norm(z, (d,), sd["model.out_layer_norm.weight"], sd["model.out_layer_norm.bias"], LN_EPS)
    return F.linear(z, sd["lm_head.weight"])


# ---------------------------------------------------------------------------------------------
# Data


def load_pieces(path, vocab, min_notes):
    z = np.load(path)
    ids, off = z["ids"], z["offsets"]
    names = z["names"] if "names" in z else [""] * (len(off) - 1)
    pieces = []
    for i in range(len(off) - 1):
        p = Piece(ids[off[i]:off[i + 1]], vocab)
        p.source = str(names[i]).split("__", 1)[0]  # prepare_corpus.py names files composer__...
        pieces.append(p)
    return [p for p in pieces if len(p) >= min_notes]


def val_windows(pieces, vocab, seq_len, augment=None):
    """Held-out windows: each piece cut into consecutive re-based windows, as rendered, or with
    ``augment`` (the training args) in every key in turn (window k shifted by k mod 12 - 6) with
    seeded dynamics: the same windows for every model."""
    wins = []
    r = random.Random(12345)
    for p in pieces:
        start = 0
        while start < len(p):
            shift, dyn = 0, None
            if augment is not None:
                lo, hi = int(p.pitch.min()), int(p.pitch.max())
                shift = min(max(len(wins) % 12 - 6, -lo), 127 - hi)
                dyn = Dynamics(r, augment)
            ids, nxt = p.encode(vocab, start, seq_len + 1, shift, dyn)
            if len(ids) > len(p.prefix) + 3:
                wins.append(ids)
            if nxt <= start:
                break
            start = nxt
    return wins


def batchify(wins, pad, n_prefix):
    """Input/target tensors; targets that are padding or the fixed prefix/<S> are -100 (no loss)."""
    n = max(len(w) for w in wins)
    arr = np.full((len(wins), n), pad, np.int64)
    for i, w in enumerate(wins):
        arr[i, : len(w)] = w
    x = torch.from_numpy(arr[:, :-1].copy())
    y = torch.from_numpy(arr[:, 1:].copy())
    for i, w in enumerate(wins):
        y[i, len(w) - 1:] = -100
    y[:, : n_prefix - 1] = -100
    return x, y


class Sampler:
    """Random augmented training windows (see the module doc)."""

    def __init__(self, pieces, vocab, seq_len, a, seed):
        self.pieces, self.vocab, self.seq_len, self.a = pieces, vocab, seq_len, a
        self.rng = random.Random(seed)
        weights = dict(w.split("=") for w in a.source_weights.split(",") if w)
        lens = np.array([len(p) * float(weights.get(p.source, 1.0)) for p in pieces], np.float64)
        self.cum = np.cumsum(lens / lens.sum())

    def window(self):
        r, a = self.rng, self.a
        p = self.pieces[min(int(np.searchsorted(self.cum, r.random())), len(self.pieces) - 1)]
        start = 0 if r.random() < a.start_at_zero else r.randrange(max(1, len(p) - 8))
        lo, hi = int(p.pitch.min()), int(p.pitch.max())
        shift = min(max(r.randint(-a.pitch_aug, a.pitch_aug - 1), -lo), 127 - hi)
        dyn = Dynamics(r, a)
        tempo = math.exp(r.uniform(-math.log1p(a.tempo_aug), math.log1p(a.tempo_aug)))
        ids, _ = p.encode(self.vocab, start, self.seq_len + 1, shift, dyn, tempo)
        return ids

    def batch(self, n):
        return [self.window() for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# Training


def evaluate_sub(model, batches, remap):
    """Mean per-token loss over the used-token softmax (cheap, for progress lines)."""
    model.eval()
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            logits = model(remap[x])
            yy = torch.where(y >= 0, remap[y.clamp(min=0)], torch.full_like(y, -100))
            loss = F.cross_entropy(logits.flatten(0, 1), yy.flatten(), ignore_index=-100, reduction="sum")
            tot += loss.item()
            cnt += int((y >= 0).sum())
    model.train()
    return tot / max(1, cnt)


def evaluate_full(sd, cfg, batches):
    """Mean per-token loss over the full 17727-entry softmax of a reference-named state dict."""
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            logits = full_forward(sd, cfg, x)
            tot += F.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100, reduction="sum").item()
            cnt += int((y >= 0).sum())
    return tot / max(1, cnt)


def unigram_loss(train_pieces, vocab, seq_len, batches):
    """Cross-entropy of the training windows' token frequencies (add-0.5 smoothing, full vocab)."""
    counts = np.full(vocab.size, 0.5)
    for w in val_windows(train_pieces, vocab, seq_len):
        np.add.at(counts, np.asarray(w[len(train_pieces[0].prefix):]), 1)
    logp = np.log(counts / counts.sum())
    tot, cnt = 0.0, 0
    for _, y in batches:
        yy = y[y >= 0].numpy()
        tot -= logp[yy].sum()
        cnt += yy.size
    return tot / max(1, cnt)


def save_checkpoint(model, used, vocab, cfg, out_dir, name, metrics):
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    sd = model.full_weights(torch.tensor(used), vocab.size)
    tmp = os.path.join(out_dir, name + ".tmp")
    save_file(sd, tmp, metadata={"format": "pt", "aria.demo": json.dumps(metrics)})
    os.replace(tmp, os.path.join(out_dir, name))
    return sd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="out/demo-corpus", help="prepare_corpus.py output folder")
    ap.add_argument("--out", default="out/demo-train", help="checkpoints, config and metrics go here")
    ap.add_argument("--d-model", type=int, default=224)
    ap.add_argument("--n-heads", type=int, default=7,
                    help="head size d_model/n_heads must be a multiple of 16 for ORT's GroupQueryAttention")
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--ff-mult", type=int, default=4, help="SwiGLU hidden = ff_mult x d_model (Aria: 4)")
    ap.add_argument("--max-seq-len", type=int, default=2048, help="rotary table length of the export")
    ap.add_argument("--seq-len", type=int, default=512,
                    help="training window in tokens (the export's aria_bridge.max_prompt_tokens)")
    ap.add_argument("--val-seq-len", type=int, default=384,
                    help="held-out window in tokens (384: the figures compare with the first demo model's)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20000, help="step budget of the schedule")
    ap.add_argument("--minutes", type=float, default=35.0, help="wall-time budget of the schedule")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=60)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--pitch-aug", type=int, default=6,
                    help="pitch shift drawn from -p .. p-1 semitones (6: all 12 keys equally)")
    ap.add_argument("--velocity-level", type=float, default=35.0, help="max shift of a window's level")
    ap.add_argument("--velocity-swell", type=float, default=15.0, help="max phrase swell (velocity units)")
    ap.add_argument("--velocity-accent", type=float, default=8.0, help="max beat / top-voice accent")
    ap.add_argument("--velocity-jitter", type=float, default=4.0, help="per-note velocity sd")
    ap.add_argument("--tempo-aug", type=float, default=0.1, help="tempo scale in 1/(1+a) .. 1+a")
    ap.add_argument("--source-weights", default="palestrina=0.5",
                    help="sampling weight per corpus source (pieces are drawn by length x weight); "
                         "0.5 takes Palestrina's masses from 62%% of the windows to 45%%, for more of "
                         "the tonal repertoire")
    ap.add_argument("--start-at-zero", type=float, default=0.2, help="share of windows from a piece start")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--eval-windows", type=int, default=256,
                    help="held-out windows of the progress evaluations (all of them at the end)")
    ap.add_argument("--init", metavar="MODEL",
                    help="start from these weights (a float export_onnx.py model of the same size, e.g. "
                         "the previous demo model, or a reference-named .safetensors) instead of random")
    ap.add_argument("--resume", action="store_true",
                    help="continue from OUT/resume.pt (weights, optimizer, step, elapsed time, sampler)")
    ap.add_argument("--save-every-min", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--train-bpm", type=float, default=None,
                    help="tempo the corpus was rendered at (default: corpus.json's, else 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=True,
                    help="bfloat16 autocast for the matrix products (weights and optimizer stay float32; "
                         "measured 2x faster on a 2-core AMX Xeon)")
    ap.add_argument("--bench", type=int, default=0, help="only time this many steps and exit")
    ap.add_argument("--eval-only", metavar="CKPT", help="only print the held-out figures of a checkpoint "
                    "(reference key names, e.g. best.safetensors, or a float .onnx export of the "
                    "--n-heads given) with the baselines, as JSON")
    a = ap.parse_args(argv)

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    vocab = Vocab(os.path.join(a.data, "vocab.json"))
    used = vocab.used_ids()
    remap = torch.full((vocab.size,), 0, dtype=torch.long)
    remap[torch.tensor(used)] = torch.arange(len(used))
    train_bpm = a.train_bpm
    if train_bpm is None:
        try:
            with open(os.path.join(a.data, "corpus.json")) as f:
                train_bpm = json.load(f).get("train_bpm", TRAIN_BPM)
        except OSError:
            train_bpm = TRAIN_BPM
    # train_bpm and max_prompt_tokens are what the bridge needs to know of the model: the tempo to
    # warp prompts to and the longest prompt it was trained on. export_onnx.py writes both into the
    # model's metadata (aria_bridge.train_bpm, aria_bridge.max_prompt_tokens).
    cfg = {"d_model": a.d_model, "n_heads": a.n_heads, "n_layers": a.n_layers, "ff_mult": a.ff_mult,
           "max_seq_len": a.max_seq_len, "vocab_size": vocab.size, "rope_base": 500000,
           "train_bpm": train_bpm, "max_prompt_tokens": a.seq_len}
    train = load_pieces(os.path.join(a.data, "train.npz"), vocab, 8)
    val = load_pieces(os.path.join(a.data, "val.npz"), vocab, 8)
    n_prefix = len(train[0].prefix)
    wins = val_windows(val, vocab, a.val_seq_len)
    val_batches = [batchify(wins[i:i + 16], vocab.P, n_prefix) for i in range(0, len(wins), 16)]
    aug_wins = val_windows(val, vocab, a.val_seq_len, augment=a)
    aug_batches = [batchify(aug_wins[i:i + 16], vocab.P, n_prefix) for i in range(0, len(aug_wins), 16)]
    # Progress evaluations use a spread-out subset (the whole set costs ~15 training steps).
    stride = max(1, len(wins) // max(1, a.eval_windows))
    sub = wins[::stride]
    sub_batches = [batchify(sub[i:i + 16], vocab.P, n_prefix) for i in range(0, len(sub), 16)]
    n_val_tokens = sum(int((y >= 0).sum()) for _, y in val_batches)
    log(f"{len(train)} train pieces ({sum(len(p) for p in train)} notes), {len(val)} held-out pieces, "
        f"{len(wins)} held-out windows, {n_val_tokens} held-out target tokens; {len(used)} used token ids")

    if a.eval_only:
        from safetensors.torch import load_file

        beside = os.path.join(os.path.dirname(os.path.abspath(a.eval_only)), "aria-demo.config.json")
        if os.path.exists(beside):  # the size the checkpoint was trained with, not the flags
            with open(beside) as f:
                cfg = json.load(f)

        if a.eval_only.endswith(".onnx"):  # an exported model (e.g. the previous demo model)
            sd = load_onnx_weights(a.eval_only)
            cfg = dict(cfg, d_model=sd["model.tok_embeddings.weight"].shape[1],
                       n_layers=sum(1 for k in sd if k.endswith("norm1.weight")))
        else:
            sd = {k: v.float() for k, v in load_file(a.eval_only).items()}
        loss = evaluate_full(sd, cfg, val_batches)
        aug_loss = evaluate_full(sd, cfg, aug_batches)
        print(json.dumps({"checkpoint": a.eval_only, "val_loss_full_vocab": loss, "val_perplexity": math.exp(loss),
                          "val_loss_all_keys": aug_loss, "val_perplexity_all_keys": math.exp(aug_loss),
                          "unigram_loss": unigram_loss(train, vocab, a.val_seq_len, val_batches),
                          "uniform_loss": math.log(vocab.size), "val_tokens": n_val_tokens,
                          "val_windows": len(wins), "val_seq_len": a.val_seq_len}))
        return 0
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "aria-demo.config.json"), "w") as f:
        json.dump(cfg, f)  # written first, so every checkpoint on the way can be exported
    model = DemoLM(cfg, len(used))
    if a.init:
        if a.init.endswith(".onnx"):
            init_sd = load_onnx_weights(a.init)
        else:
            from safetensors.torch import load_file

            init_sd = {k: v.float() for k, v in load_file(a.init).items()}
        init_from(model, init_sd, used)
        log(f"weights from {a.init}")
    n_params = sum(p.numel() for p in model.full_weights(torch.tensor(used), vocab.size).values())
    log(f"config {cfg}: {n_params / 1e6:.2f} M parameters in the exported model")
    decay = [p for n, p in model.named_parameters() if p.dim() == 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr, betas=(0.9, 0.95))
    sampler = Sampler(train, vocab, a.seq_len, a, a.seed)

    metrics = {"config": cfg, "params": n_params, "val_pieces": len(val), "val_tokens": n_val_tokens,
               "train_pieces": len(train), "args": vars(a), "history": []}
    resume_path = os.path.join(a.out, "resume.pt")
    resuming = a.resume and os.path.exists(resume_path)
    if not a.bench and not resuming:  # a resumed run keeps the baselines it computed first
        g = torch.Generator().manual_seed(a.seed + 1)
        rand_sd = {k: (torch.randn(v.shape, generator=g) * 0.02 if v.dim() == 2 else v)
                   for k, v in model.full_weights(torch.tensor(used), vocab.size).items()}
        rand_sd["model.out_layer_norm.weight"] = torch.ones(a.d_model)
        rand_sd["model.out_layer_norm.bias"] = torch.zeros(a.d_model)
        metrics["random_init_loss"] = evaluate_full(rand_sd, cfg, sub_batches)
        metrics["unigram_loss"] = unigram_loss(train, vocab, a.val_seq_len, val_batches)
        metrics["uniform_loss"] = math.log(vocab.size)
        log(f"baselines on held-out: uniform {metrics['uniform_loss']:.3f}, random init "
            f"{metrics['random_init_loss']:.3f}, unigram {metrics['unigram_loss']:.3f}")

    t0 = last_save = time.time()
    best = float("inf")
    step, seen = 0, 0
    if resuming:
        st = torch.load(resume_path, weights_only=False)
        metrics.update(st.get("baselines", {}))
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step, seen, best = st["step"], st["seen"], st["best"]
        metrics["history"] = st["history"]
        sampler.rng.setstate(st["sampler_rng"])
        torch.set_rng_state(st["torch_rng"])
        t0 = time.time() - st["elapsed"]  # the schedule goes on where it stopped
        log(f"resumed at step {step} ({st['elapsed'] / 60:.1f} min, {seen} tokens, best held-out {best:.3f})")

    def save_resume():
        tmp = resume_path + ".tmp"
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "seen": seen,
                    "best": best, "history": metrics["history"], "sampler_rng": sampler.rng.getstate(),
                    "torch_rng": torch.get_rng_state(), "elapsed": time.time() - t0,
                    "baselines": {k: metrics[k] for k in ("random_init_loss", "unigram_loss", "uniform_loss")
                                  if k in metrics}}, tmp)
        os.replace(tmp, resume_path)

    while True:
        elapsed = time.time() - t0
        progress = max(step / a.steps, elapsed / (a.minutes * 60))
        if progress >= 1.0 or (a.bench and step >= a.bench):
            break
        lr = a.lr * min(1.0, (step + 1) / a.warmup)
        lr *= a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        for grp in opt.param_groups:
            grp["lr"] = lr
        x, y = batchify(sampler.batch(a.batch), vocab.P, n_prefix)
        yy = torch.where(y >= 0, remap[y.clamp(min=0)], torch.full_like(y, -100))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(remap[x])
        loss = F.cross_entropy(logits.float().flatten(0, 1), yy.flatten(), ignore_index=-100)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += int((y >= 0).sum())
        if a.bench and step % 5 == 0:
            log(f"bench step {step}: {step / (time.time() - t0):.2f} steps/s, {seen / (time.time() - t0):.0f} tok/s")
        if not a.bench and (step % a.eval_every == 0):
            vl = evaluate_sub(model, sub_batches, remap)
            metrics["history"].append({"step": step, "minutes": (time.time() - t0) / 60, "train_loss": loss.item(),
                                       "val_loss": vl, "lr": lr, "tokens_seen": seen})
            log(f"step {step} ({(time.time() - t0) / 60:.1f} min, {seen} tokens): train {loss.item():.3f} "
                f"held-out {vl:.3f} lr {lr:.2e}")
            if vl < best:
                best = vl
                save_checkpoint(model, used, vocab, cfg, a.out, "best.safetensors", {"step": step, "val_loss": vl})
        if not a.bench and time.time() - last_save > a.save_every_min * 60:
            save_checkpoint(model, used, vocab, cfg, a.out, "aria-demo.safetensors", {"step": step})
            save_resume()
            last_save = time.time()
    if a.bench:
        return 0

    sd = save_checkpoint(model, used, vocab, cfg, a.out, "aria-demo.safetensors", {"step": step})
    metrics["steps"], metrics["tokens_seen"], metrics["minutes"] = step, seen, (time.time() - t0) / 60
    save_resume()
    metrics["val_loss_full_vocab"] = evaluate_full(sd, cfg, val_batches)
    metrics["val_perplexity"] = math.exp(metrics["val_loss_full_vocab"])
    metrics["val_loss_all_keys"] = evaluate_full(sd, cfg, aug_batches)
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    log(f"done: {step} steps, {seen} tokens, held-out loss {metrics['val_loss_full_vocab']:.3f} "
        f"(perplexity {metrics['val_perplexity']:.2f}), in every key {metrics['val_loss_all_keys']:.3f}; "
        f"unigram {metrics.get('unigram_loss', float('nan')):.3f}, "
        f"random init {metrics.get('random_init_loss', float('nan')):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
