#!/usr/bin/env python3
"""Held-out loss of exported models, and a quantised model's fidelity to its float self.

Runs the ONNX files themselves under ONNX Runtime (the Python wheel of the version in ``.ort/``),
token by token through the KV cache, exactly as the bridge does: teacher-forced over the held-out
windows of ``prepare_corpus.py``'s ``val.npz`` (cut as ``train_demo.py`` cuts them: the same
pieces, ``--seq-len`` tokens, in their rendered key and dynamics or, with ``--all-keys``, in every
key in turn with varied dynamics), the loss per token over the full vocabulary. With
``--reference R.onnx`` (the fp32 export of the same checkpoint) it also measures, position by
position on the same windows:

* greedy agreement: the share of positions where both models' most likely next token is the same;
* logit error: mean and 99th-percentile absolute difference over the tokens the reference gives
  more than e^-20 of probability mass each (the rest are -40 constants), and the mean KL divergence
  of the model's next-token distribution from the reference's;
* free-running greedy agreement: from ``--free-prompts`` held-out prompts of 128 tokens, both models
  continue greedily for 64 tokens; the share of continuations identical to the reference's, and
  the mean length of the common prefix.

Needs numpy, onnxruntime, torch (only to reuse train_demo.py's corpus code)::

    python3 models/eval_onnx.py --data out/demo-corpus --model models/aria-demo.onnx
    python3 models/eval_onnx.py --data out/demo-corpus --model /tmp/int8.onnx --reference /tmp/fp32.onnx
"""

import argparse
import json
import math
import os
import sys
import time
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_demo  # noqa: E402  (the corpus windows, identical to training's held-out set)


class Decoder:
    """One gqa or plain export, stepped one token at a time with its KV cache."""

    def __init__(self, path, threads, context):
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        ins = {i.name: i for i in self.sess.get_inputs()}
        self.meta = self.sess.get_modelmeta().custom_metadata_map
        self.vocab = int(self.meta["aria.vocab_size"])
        self.gqa = "seqlens_k" in ins
        self.has_range = "logits_start" in ins
        self.n_layers = sum(1 for n in ins if n.startswith("past_key_"))
        shape = ins["past_key_0"].shape
        self.h, self.dh = int(shape[1]), int(shape[3])
        self.kv_type = np.float16 if "float16" in ins["past_key_0"].type else np.float32
        self.context = context
        self.reset()

    def reset(self):
        self.pos = 0
        if self.gqa:
            self.kv = [ort.OrtValue.ortvalue_from_numpy(np.zeros((1, self.h, self.context, self.dh), self.kv_type))
                       for _ in range(2 * self.n_layers)]
            self.io = self.sess.io_binding()
            self.io.bind_output("logits")  # first, so it is output 0 below
            for i in range(self.n_layers):
                for j, kind in enumerate(("key", "value")):
                    v = self.kv[2 * i + j]
                    self.io.bind_ortvalue_input(f"past_{kind}_{i}", v)
                    self.io.bind_ortvalue_output(f"present_{kind}_{i}", v)
        else:
            self.past = {f"past_{k}_{i}": np.zeros((1, self.h, 0, self.dh), self.kv_type)
                         for i in range(self.n_layers) for k in ("key", "value")}

    def step(self, ids):
        """Feeds ``ids`` (a list), returns the full-vocabulary logits after the last one."""
        ids = np.asarray([ids], np.int64)
        n = ids.shape[1]
        if self.gqa:
            feeds = {"input_ids": ids, "seqlens_k": np.array([self.pos + n - 1], np.int32),
                     "total_sequence_length": np.array(self.pos + n, np.int32)}
            if self.has_range:
                feeds["logits_start"] = np.array([0], np.int64)
                feeds["logits_end"] = np.array([self.vocab], np.int64)
            for k, v in feeds.items():
                self.io.bind_cpu_input(k, v)
            self.sess.run_with_iobinding(self.io)
            out = self.io.copy_outputs_to_cpu()[0]
            assert out.shape == (1, self.vocab), out.shape
        else:
            feeds = dict(self.past, input_ids=ids,
                         positions=np.arange(self.pos, self.pos + n, dtype=np.int64)[None])
            res = self.sess.run(None, feeds)
            names = [o.name for o in self.sess.get_outputs()]
            out = res[0]
            for name, val in zip(names[1:], res[1:]):
                self.past[name.replace("present_", "past_")] = val
        self.pos += n
        return out[0].astype(np.float64)


def log_softmax(x):
    m = x.max()
    return x - m - math.log(np.exp(x - m).sum())


def windows(data, seq_len, all_keys, limit):
    vocab = train_demo.Vocab(os.path.join(data, "vocab.json"))
    val = train_demo.load_pieces(os.path.join(data, "val.npz"), vocab, 8)
    aug = None
    if all_keys:  # train_demo.py's defaults
        aug = SimpleNamespace(velocity_level=35.0, velocity_swell=15.0, velocity_accent=8.0, velocity_jitter=4.0)
    wins = train_demo.val_windows(val, vocab, seq_len, augment=aug)
    if limit and len(wins) > limit:
        wins = wins[:: len(wins) // limit][:limit]
    return wins, len(val[0].prefix)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="out/demo-corpus")
    ap.add_argument("--model", required=True)
    ap.add_argument("--reference", help="the fp32 export of the same checkpoint (fidelity figures)")
    ap.add_argument("--seq-len", type=int, default=384)
    ap.add_argument("--all-keys", action="store_true", help="held-out windows in every key, varied dynamics")
    ap.add_argument("--windows", type=int, default=0, help="evaluate this many windows, spread out (0: all)")
    ap.add_argument("--free-prompts", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)

    wins, n_prefix = windows(a.data, a.seq_len, a.all_keys, a.windows)
    model = Decoder(a.model, a.threads, a.seq_len + 80)
    ref = Decoder(a.reference, a.threads, a.seq_len + 80) if a.reference else None
    t0 = time.time()
    nll, nll_ref, n = 0.0, 0.0, 0
    agree, kl, errs = 0, 0.0, []
    for w in wins:
        model.reset()
        if ref:
            ref.reset()
        # The prefix and <S> are given, as in training (their targets carry no loss).
        lm = model.step(w[:n_prefix])
        lr = ref.step(w[:n_prefix]) if ref else None
        for k in range(n_prefix, len(w)):
            tgt = w[k]
            pm = log_softmax(lm)
            nll -= pm[tgt]
            n += 1
            if ref:
                pr = log_softmax(lr)
                nll_ref -= pr[tgt]
                agree += int(np.argmax(lm) == np.argmax(lr))
                live = pr > -20
                errs.append(np.abs(lm[live] - lr[live]))
                kl += float((np.exp(pr) * (pr - pm)).sum())
            if k + 1 < len(w):
                lm = model.step([tgt])
                if ref:
                    lr = ref.step([tgt])
    out = {"model": a.model, "windows": len(wins), "seq_len": a.seq_len, "all_keys": a.all_keys,
           "tokens": n, "loss": nll / n, "perplexity": math.exp(nll / n), "seconds": round(time.time() - t0, 1)}
    if ref:
        e = np.concatenate(errs)
        out.update({"reference": a.reference, "reference_loss": nll_ref / n,
                    "greedy_agreement_teacher_forced": agree / n,
                    "logit_abs_error_mean": float(e.mean()), "logit_abs_error_p99": float(np.quantile(e, 0.99)),
                    "logit_abs_error_max": float(e.max()), "kl_mean": kl / n})
        # Free-running greedy continuations.
        same, prefix = 0, 0
        prompts = [w[:128] for w in wins if len(w) > 128][: a.free_prompts]
        for p in prompts:
            conts = []
            for d in (model, ref):
                d.reset()
                lg = d.step(p)
                c = []
                for _ in range(64):
                    t = int(np.argmax(lg))
                    c.append(t)
                    lg = d.step([t])
                conts.append(c)
            same += int(conts[0] == conts[1])
            prefix += next((i for i, (x, y) in enumerate(zip(*conts)) if x != y), 64)
        out.update({"free_prompts": len(prompts), "free_greedy_identical": same / max(1, len(prompts)),
                    "free_greedy_common_prefix_mean": prefix / max(1, len(prompts))})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
