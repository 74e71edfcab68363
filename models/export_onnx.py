#!/usr/bin/env python3
"""Export an Aria checkpoint (or a random model of an Aria size) to an ONNX decoder with a KV cache.

Needs only numpy and onnx (safetensors files are parsed here directly so that bf16 checkpoints load
without torch). Two graph variants share one interface idea:

* ``plain`` (default): standard ONNX ops only, runs on every execution provider and is the parity
  reference. Inputs ``input_ids`` [1, S] int64, ``positions`` [1, S] int64 (absolute positions of
  the new tokens), ``past_key_{i}`` / ``past_value_{i}`` [1, H, P, Dh]; outputs ``logits`` [1, V]
  float32 (last position only) and ``present_key_{i}`` / ``present_value_{i}`` [1, H, P+S, Dh].
* ``gqa``: ORT's contrib ``GroupQueryAttention`` (rotary fused, half-split) with a shared KV buffer
  of fixed length ``max_seq_len``: ``past_*`` and ``present_*`` are [1, H, max_seq_len, Dh] and the
  caller binds the same buffer to both, so every decode step has identical shapes and addresses
  (what CUDA graphs need). Extra inputs ``seqlens_k`` [1] int32 (tokens in cache after this step
  minus one), ``total_sequence_length`` [] int32, and ``logits_start`` / ``logits_end`` [1] int64:
  ``logits`` [1, end - start] holds only those head rows (the ids a masked step can sample).
  With ``--full-head`` the head-range inputs (and the ``If`` that picks whole or part of the head)
  are left out and ``logits`` is always [1, V]: every node has fixed shapes and no control flow,
  which is what ORT's CUDA graph capture requires (it refuses graphs with ``If``).

Architecture (EleutherAI aria ``TransformerLM``): pre-norm LayerNorm (eps 1e-5, weight+bias), fused
``mixed_qkv`` split q|k|v, rotary base 500000 in half-split form, causal softmax attention,
SwiGLU ``ff_down(silu(ff_gate(x)) * ff_up(x))``, final ``out_layer_norm``, untied ``lm_head``.

Examples::

    python3 models/export_onnx.py --checkpoint aria-medium.safetensors --config medium.json \\
        --dtype fp16 --variant gqa --out models/aria-medium-gqa-fp16.onnx
    python3 models/export_onnx.py --random medium --dtype fp16 --variant gqa --full-head \
        --out /tmp/medium-graph.onnx
    python3 models/export_onnx.py --random tiny --seed 1 --out /tmp/tiny.onnx
    python3 models/export_onnx.py --random custom --d-model 96 --n-heads 6 --n-layers 3 --out /tmp/d96.onnx
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

OPSET = 17
MS_DOMAIN = "com.microsoft"
LN_EPS = 1e-5

# Released "medium" size and the tiny development size (aria-tiny-dev.config.json).
PRESETS = {
    "medium": dict(d_model=1536, n_heads=24, n_layers=16, ff_mult=4, max_seq_len=8192,
                   vocab_size=17727, rope_base=500000),
    "tiny": dict(d_model=64, n_heads=4, n_layers=2, ff_mult=4, max_seq_len=1024,
                 vocab_size=17727, rope_base=500000),
}

DTYPES = {
    "fp32": (np.float32, TensorProto.FLOAT),
    "fp16": (np.float16, TensorProto.FLOAT16),
    "bf16": (None, TensorProto.BFLOAT16),
}


class ExportError(Exception):
    """A checkpoint or configuration the exporter cannot use."""


# ---------------------------------------------------------------------------------------------
# Reading checkpoints


def read_safetensors(path):
    """Returns {name: float32 ndarray} from a .safetensors file (F32, F16 or BF16 tensors)."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise ExportError(f"cannot read checkpoint {path}: {e}")
    if len(blob) < 8:
        raise ExportError(f"{path} is not a safetensors file (shorter than its 8-byte header)")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if hlen > len(blob) - 8:
        raise ExportError(f"{path} is not a safetensors file (header length {hlen} past the end)")
    try:
        header = json.loads(blob[8:8 + hlen])
    except ValueError as e:
        raise ExportError(f"{path}: safetensors header is not JSON: {e}")
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = np.frombuffer(blob, dtype=np.uint8, count=end - start, offset=base + start)
        dt = info["dtype"]
        if dt == "F32":
            arr = raw.view("<f4").astype(np.float32)
        elif dt == "F16":
            arr = raw.view("<f2").astype(np.float32)
        elif dt == "BF16":
            arr = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            raise ExportError(f"{path}: tensor {name} has dtype {dt}; only F32, F16, BF16 are supported")
        out[name] = arr.reshape(info["shape"])
    return out


def read_onnx_weights(path):
    """Reference-named float32 weights read back from a float (fp32/fp16/bf16, not --quantize) model
    this script wrote: its initializers keep the reference key names; the linear weights were stored
    transposed and gate|up concatenated, which this undoes. Re-exports a model whose checkpoint is
    gone (the first demo model is kept only as its fp16 export) in another variant or form."""
    from onnx import numpy_helper

    try:
        m = onnx.load(path)
    except Exception as e:  # noqa: BLE001  (onnx raises several types for a bad file)
        raise ExportError(f"cannot read ONNX model {path}: {e}")
    raw = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in m.graph.initializer}
    if any(k.endswith("_q") for k in raw):
        raise ExportError(f"{path} is a --quantize export; re-export from a float one")
    w = {}
    for k, v in raw.items():
        if not (k.startswith("model.") or k == "lm_head.weight"):
            continue
        if k.endswith("ff_gate_up.weight"):
            gate, up = np.split(v.T, 2, axis=0)
            w[k.replace("ff_gate_up", "ff_gate_proj")] = np.ascontiguousarray(gate)
            w[k.replace("ff_gate_up", "ff_up_proj")] = np.ascontiguousarray(up)
        elif k.endswith(("mixed_qkv.weight", "att_proj_linear.weight", "ff_down_proj.weight")):
            w[k] = np.ascontiguousarray(v.T)
        else:
            w[k] = v
    if "model.tok_embeddings.weight" not in w:
        raise ExportError(f"{path} has no `model.tok_embeddings.weight`: not a model export_onnx.py wrote")
    return w


def random_weights(cfg, seed):
    """A randomly initialised model of the given size (normal(0, 0.02), unit LayerNorms)."""
    rng = np.random.default_rng(seed)
    d, v, f = cfg["d_model"], cfg["vocab_size"], cfg["d_model"] * cfg["ff_mult"]

    def lin(o, i):
        return (rng.standard_normal((o, i), dtype=np.float32) * 0.02).astype(np.float32)

    w = {"model.tok_embeddings.weight": lin(v, d), "lm_head.weight": lin(v, d),
         "model.out_layer_norm.weight": np.ones(d, np.float32),
         "model.out_layer_norm.bias": np.zeros(d, np.float32)}
    for i in range(cfg["n_layers"]):
        p = f"model.encode_layers.{i}."
        w[p + "mixed_qkv.weight"] = lin(3 * d, d)
        w[p + "att_proj_linear.weight"] = lin(d, d)
        w[p + "ff_gate_proj.weight"] = lin(f, d)
        w[p + "ff_up_proj.weight"] = lin(f, d)
        w[p + "ff_down_proj.weight"] = lin(d, f)
        for n in ("norm1", "norm2"):
            w[p + n + ".weight"] = np.ones(d, np.float32)
            w[p + n + ".bias"] = np.zeros(d, np.float32)
    return w


def check_weights(w, cfg):
    """Checks every key and shape the architecture needs; names the first one that is wrong."""
    d, f = cfg["d_model"], cfg["d_model"] * cfg["ff_mult"]
    v = cfg["vocab_size"]
    want = {"model.tok_embeddings.weight": (v, d), "lm_head.weight": (v, d),
            "model.out_layer_norm.weight": (d,), "model.out_layer_norm.bias": (d,)}
    for i in range(cfg["n_layers"]):
        p = f"model.encode_layers.{i}."
        want.update({p + "mixed_qkv.weight": (3 * d, d), p + "att_proj_linear.weight": (d, d),
                     p + "ff_gate_proj.weight": (f, d), p + "ff_up_proj.weight": (f, d),
                     p + "ff_down_proj.weight": (d, f), p + "norm1.weight": (d,),
                     p + "norm1.bias": (d,), p + "norm2.weight": (d,), p + "norm2.bias": (d,)})
    for k, shape in want.items():
        if k not in w:
            raise ExportError(f"checkpoint has no tensor `{k}` (is the config's n_layers right?)")
        if tuple(w[k].shape) != shape:
            raise ExportError(f"tensor `{k}` has shape {tuple(w[k].shape)}, the config implies {shape}")


# ---------------------------------------------------------------------------------------------
# Building the graph


class Graph:
    """Collects nodes and initializers; every helper returns the name of its output.

    With ``quantize`` (``int8`` / ``int4``, fp32 graphs only) the layers' matrix products are
    ``MatMulNBits`` with block-wise symmetric weights, and every other float weight is stored as
    fp16 and cast to fp32 by a ``Cast`` node whose input is constant, which ONNX Runtime folds once
    when it loads the model: the file holds fp16, the session computes in fp32 (faster on CPU)."""

    def __init__(self, np_dtype, onnx_dtype, quantize=None, block_size=32, accuracy_level=4):
        self.nodes, self.inits = [], []
        self.np_dtype, self.onnx_dtype = np_dtype, onnx_dtype
        self.quantize, self.block_size, self.accuracy_level = quantize, block_size, accuracy_level
        self.n = 0

    def name(self, hint):
        self.n += 1
        return f"{hint}_{self.n}"

    def op(self, op_type, inputs, hint=None, n_out=1, domain=None, **attrs):
        outs = [self.name(hint or op_type) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, domain=domain, **attrs))
        return outs[0] if n_out == 1 else outs

    def const_i64(self, name, values):
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name

    def weight(self, name, arr):
        """Stores a float array in the model's weight dtype (fp16 cast at load when quantizing)."""
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        # Only the big tables (embedding, head) go to fp16; norms and rotary tables stay exact.
        if self.quantize and arr.size >= 65536:
            stored = name + "_fp16"
            self.inits.append(onnx.numpy_helper.from_array(arr.astype(np.float16), stored))
            self.nodes.append(helper.make_node("Cast", [stored], [name], to=TensorProto.FLOAT))
            return name
        if self.onnx_dtype == TensorProto.BFLOAT16:
            bits = arr.view(np.uint32)
            # Round to nearest even, as torch's .to(bfloat16) does.
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            t = helper.make_tensor(name, TensorProto.BFLOAT16, arr.shape, rounded.tobytes(), raw=True)
        else:
            t = onnx.numpy_helper.from_array(arr.astype(self.np_dtype), name)
        self.inits.append(t)
        return name


def rope_tables(cfg):
    """cos/sin [max_seq_len, Dh/2] computed in float32 the way the reference does."""
    dh = cfg["d_model"] // cfg["n_heads"]
    exps = np.arange(0, dh, 2, dtype=np.float32)[: dh // 2] / np.float32(dh)
    freqs = (np.float32(1.0) / (np.float32(cfg["rope_base"]) ** exps)).astype(np.float32)
    t = np.arange(cfg["max_seq_len"], dtype=np.float32)
    ang = np.outer(t, freqs).astype(np.float32)
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


def layer_norm(g, x, w, prefix):
    return g.op("LayerNormalization", [x, g.weight(prefix + ".weight", w[prefix + ".weight"]),
                                       g.weight(prefix + ".bias", w[prefix + ".bias"])],
                hint=prefix.split(".")[-1], axis=-1, epsilon=LN_EPS)


def quantize_blocks(w_out_in, bits, block_size):
    """Block-wise symmetric quantization of a torch [out, in] weight in MatMulNBits' layout: B
    [N, blocks, block_size * bits / 8] uint8 (4-bit pairs low nibble first), scales [N * blocks]
    float32, zero point 2^(bits-1) (the op's default, so none is stored). Returns (B, scales, deq),
    deq being the weight the op computes with."""
    n, k = w_out_in.shape
    blocks = -(-k // block_size)
    padded = np.zeros((n, blocks * block_size), np.float32)
    padded[:, :k] = w_out_in
    wb = padded.reshape(n, blocks, block_size)
    qmax = 2 ** (bits - 1) - 1
    scale = np.abs(wb).max(axis=2) / qmax
    scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
    q = np.clip(np.rint(wb / scale[:, :, None]), -qmax - 1, qmax).astype(np.int32)
    deq = (q * scale[:, :, None]).reshape(n, -1)[:, :k]
    u = (q + 2 ** (bits - 1)).astype(np.uint8)
    if bits == 4:
        u = (u[:, :, 0::2] | (u[:, :, 1::2] << 4)).astype(np.uint8)
    return u, scale.reshape(-1), deq


def matmul(g, x, w_out_in, name, hint):
    """x @ W^T for a torch [out, in] weight: MatMul on the weight stored as [in, out], or
    MatMulNBits on its block-quantized rows."""
    if not g.quantize:
        return g.op("MatMul", [x, g.weight(name, w_out_in.T)], hint=hint)
    bits = {"int8": 8, "int4": 4}[g.quantize]
    b, scales, _ = quantize_blocks(w_out_in, bits, g.block_size)
    g.inits.append(onnx.numpy_helper.from_array(b, name + "_q"))
    g.inits.append(onnx.numpy_helper.from_array(scales, name + "_scales"))
    n, k = w_out_in.shape
    return g.op("MatMulNBits", [x, name + "_q", name + "_scales"], hint=hint, domain=MS_DOMAIN,
                K=k, N=n, bits=bits, block_size=g.block_size, accuracy_level=g.accuracy_level)


def linear(g, x, w, key, transpose=True):
    """x @ W^T for a torch [out, in] weight (stored pre-transposed as [in, out])."""
    if transpose:
        return matmul(g, x, w[key], key, key.split(".")[-2])
    return g.op("MatMul", [x, g.weight(key, w[key])], hint=key.split(".")[-2])


def feed_forward(g, x, w, p):
    # Gate and up share one MatMul: [d, 2f], then split (halves the kernel launches).
    gu_w = np.concatenate([w[p + "ff_gate_proj.weight"], w[p + "ff_up_proj.weight"]], axis=0)
    gu = matmul(g, x, gu_w, p + "ff_gate_up.weight", "ff_gate_up")
    gate, up = g.op("Split", [gu, "split_ff"], hint="ff_split", n_out=2, axis=-1)
    act = g.op("Mul", [gate, g.op("Sigmoid", [gate])], hint="silu")
    return linear(g, g.op("Mul", [act, up]), w, p + "ff_down_proj.weight")


def build(w, cfg, dtype, variant, full_head=False, quantize=None, block_size=32, accuracy_level=4):
    """Returns an onnx.ModelProto of the decoder."""
    d, h, nl = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    dh, f, v = d // h, d * cfg["ff_mult"], cfg["vocab_size"]
    if d % h or dh % 2:
        raise ExportError(f"d_model {d} must split into {h} heads of an even size")
    if quantize and dtype != "fp32":
        raise ExportError(f"--quantize {quantize} computes in fp32 (weights stored int8/int4 and fp16): "
                          f"use --dtype fp32, not {dtype}")
    if quantize and (block_size < 16 or block_size & (block_size - 1)):
        raise ExportError(f"--block-size {block_size}: MatMulNBits needs a power of two >= 16")
    np_dtype, onnx_dtype = DTYPES[dtype]
    g = Graph(np_dtype, onnx_dtype, quantize, block_size, accuracy_level)
    g.const_i64("split_ff", [f, f])
    if variant == "plain":
        g.const_i64("split_qkv", [d, d, d])
        g.const_i64("split_half", [dh // 2, dh // 2])
        g.const_i64("shape_bshd", [0, 0, h, dh])
        g.const_i64("shape_bsd", [0, 0, d])
    g.const_i64("last_start", [-1])
    g.const_i64("last_end", [2**62])
    g.const_i64("axis1", [1])
    cos, sin = rope_tables(cfg)

    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "seq"])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, v])]
    x = g.op("Gather", [g.weight("model.tok_embeddings.weight", w["model.tok_embeddings.weight"]),
                        "input_ids"], hint="embed", axis=0)

    if variant == "plain":
        inputs.append(helper.make_tensor_value_info("positions", TensorProto.INT64, [1, "seq"]))
        g.weight("rope_cos", cos)
        g.weight("rope_sin", sin)
        # [1, 1, S, Dh/2] so it broadcasts over [1, H, S, Dh/2].
        c = g.op("Unsqueeze", [g.op("Gather", ["rope_cos", "positions"], axis=0), "axis1"], hint="cos")
        s = g.op("Unsqueeze", [g.op("Gather", ["rope_sin", "positions"], axis=0), "axis1"], hint="sin")
        # Causal mask from absolute positions: key slot k is visible to query q when k <= pos(q).
        # The cache holds positions 0..P-1 in order, so a key's slot index is its position.
        g.const_i64("axes_23", [2, 3])
        pos_q = g.op("Unsqueeze", ["positions", "axes_23"], hint="pos_q")  # [1, S, 1, 1]
        pos_q = g.op("Transpose", [pos_q], perm=[0, 2, 1, 3])  # [1, 1, S, 1]
        for i in range(nl):
            for kv in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(
                    f"past_{kv}_{i}", onnx_dtype, [1, h, "past", dh]))
                outputs.append(helper.make_tensor_value_info(
                    f"present_{kv}_{i}", onnx_dtype, [1, h, "total", dh]))
        total = g.op("Gather", [g.op("Shape", ["past_key_0"]), g.const_i64("idx2", [2])], axis=0)
        s_len = g.op("Gather", [g.op("Shape", ["input_ids"]), "axis1"], axis=0)
        t_len = g.op("Add", [total, s_len], hint="t_len")
        zero = g.const_i64("zero", [0])
        one = g.const_i64("one", [1])
        k_pos = g.op("Range", [g.op("Squeeze", [zero]), g.op("Squeeze", [t_len]),
                                g.op("Squeeze", [one])], hint="k_pos")  # [T]
        visible = g.op("LessOrEqual", [k_pos, pos_q], hint="visible")  # [1, 1, S, T]
        g.inits.append(onnx.numpy_helper.from_array(np.zeros((), np_dtype or np.float32), "f_zero")
                       if dtype != "bf16" else
                       helper.make_tensor("f_zero", TensorProto.BFLOAT16, [], b"\x00\x00", raw=True))
        neg = np.array(-np.inf, np.float32)
        if dtype == "bf16":
            g.inits.append(helper.make_tensor("f_neg_inf", TensorProto.BFLOAT16, [], b"\x80\xff", raw=True))
        else:
            g.inits.append(onnx.numpy_helper.from_array(neg.astype(np_dtype), "f_neg_inf"))
        mask = g.op("Where", [visible, "f_zero", "f_neg_inf"], hint="mask")
        scale = 1.0 / np.sqrt(dh)

        def rotate(t):
            a, b = g.op("Split", [t, "split_half"], hint="rope_split", n_out=2, axis=-1)
            ra = g.op("Sub", [g.op("Mul", [a, c]), g.op("Mul", [b, s])])
            rb = g.op("Add", [g.op("Mul", [b, c]), g.op("Mul", [a, s])])
            return g.op("Concat", [ra, rb], hint="rope", axis=-1)

        for i in range(nl):
            p = f"model.encode_layers.{i}."
            xn = layer_norm(g, x, w, p + "norm1")
            qkv = linear(g, xn, w, p + "mixed_qkv.weight")
            q, k, vv = g.op("Split", [qkv, "split_qkv"], hint="qkv", n_out=3, axis=-1)
            heads = [g.op("Transpose", [g.op("Reshape", [t, "shape_bshd"])], perm=[0, 2, 1, 3])
                     for t in (q, k, vv)]  # [1, H, S, Dh]
            q, k, vv = rotate(heads[0]), rotate(heads[1]), heads[2]
            pk = g.op("Concat", [f"past_key_{i}", k], axis=2)
            pv = g.op("Concat", [f"past_value_{i}", vv], axis=2)
            g.nodes.append(helper.make_node("Identity", [pk], [f"present_key_{i}"]))
            g.nodes.append(helper.make_node("Identity", [pv], [f"present_value_{i}"]))
            kt = g.op("Transpose", [pk], perm=[0, 1, 3, 2])
            sc = g.weight(f"att_scale_{i}", np.array(scale, np.float32))
            scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, kt]), sc]), mask], hint="scores")
            att = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), pv])
            att = g.op("Reshape", [g.op("Transpose", [att], perm=[0, 2, 1, 3]), "shape_bsd"])
            x = g.op("Add", [x, linear(g, att, w, p + "att_proj_linear.weight")], hint="resid")
            x = g.op("Add", [x, feed_forward(g, layer_norm(g, x, w, p + "norm2"), w, p)], hint="resid")
    elif variant == "gqa":
        inputs.append(helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, [1]))
        inputs.append(helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []))
        g.weight("rope_cos", cos)
        g.weight("rope_sin", sin)
        for i in range(nl):
            for kv in ("key", "value"):
                inputs.append(helper.make_tensor_value_info(
                    f"past_{kv}_{i}", onnx_dtype, [1, h, "max_seq", dh]))
                outputs.append(helper.make_tensor_value_info(
                    f"present_{kv}_{i}", onnx_dtype, [1, h, "max_seq", dh]))
        for i in range(nl):
            p = f"model.encode_layers.{i}."
            xn = layer_norm(g, x, w, p + "norm1")
            qkv = linear(g, xn, w, p + "mixed_qkv.weight")
            # Packed q|k|v goes straight in (key and value inputs left empty).
            g.nodes.append(helper.make_node(
                "GroupQueryAttention",
                [qkv, "", "", f"past_key_{i}", f"past_value_{i}", "seqlens_k",
                 "total_sequence_length", "rope_cos", "rope_sin"],
                [f"att_{i}", f"present_key_{i}", f"present_value_{i}"],
                domain=MS_DOMAIN, num_heads=h, kv_num_heads=h, do_rotary=1,
                rotary_interleaved=0, scale=float(1.0 / np.sqrt(dh))))
            x = g.op("Add", [x, linear(g, f"att_{i}", w, p + "att_proj_linear.weight")], hint="resid")
            x = g.op("Add", [x, feed_forward(g, layer_norm(g, x, w, p + "norm2"), w, p)], hint="resid")
    else:
        raise ExportError(f"unknown variant {variant!r}: use plain or gqa")

    # Only the last position reaches the head: prefill of 178 tokens then costs one row of the
    # 17727-wide lm_head instead of 178.
    last = g.op("Slice", [x, "last_start", "last_end", "axis1"], hint="last")  # [1, 1, d]
    last = layer_norm(g, last, w, "model.out_layer_norm")
    if variant == "gqa" and not full_head:
        # Only head rows [logits_start, logits_end) are computed: a grammar-masked decode step
        # needs ~1.7k of the 17727 (notes + <T>, or the 500 onsets, or the 501 durations), and
        # the head is 60% of a small model's per-token weight traffic.
        inputs.append(helper.make_tensor_value_info("logits_start", TensorProto.INT64, [1]))
        inputs.append(helper.make_tensor_value_info("logits_end", TensorProto.INT64, [1]))
        outputs[0] = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, "head"])
        g.const_i64("axis0", [0])
        head_w = g.weight("lm_head.weight", w["lm_head.weight"])  # [V, d]
        last2d = g.op("Squeeze", [last, "axis1"], hint="last2d")  # [1, d]
        # The whole head (prefill, unmasked sampling) multiplies the constant weight, which ORT
        # prepacks; a part slices its rows first (a copy of K x d, cheap for K ~ 1.7k but 3x
        # slower than the prepacked product when K is all 17727).
        g.const_i64("vocab", [v])
        width = g.op("Sub", ["logits_end", "logits_start"], hint="head_width")
        whole = g.op("Squeeze", [g.op("Equal", [width, "vocab"])], hint="whole_head")
        then_g = helper.make_graph(
            [helper.make_node("Gemm", [last2d, head_w], ["full_logits"], transB=1)],
            "full_head", [], [helper.make_tensor_value_info("full_logits", onnx_dtype, [1, v])])
        else_g = helper.make_graph(
            [helper.make_node("Slice", [head_w, "logits_start", "logits_end", "axis0"],
                              ["head_rows"]),
             helper.make_node("Gemm", [last2d, "head_rows"], ["part_logits"], transB=1)],
            "part_head", [], [helper.make_tensor_value_info("part_logits", onnx_dtype, [1, "head"])])
        logits = g.op("If", [whole], hint="logits", then_branch=then_g, else_branch=else_g)
    else:
        logits = linear(g, last, w, "lm_head.weight")
        logits = g.op("Squeeze", [logits, "axis1"], hint="logits_sq")
    if onnx_dtype != TensorProto.FLOAT:
        logits = g.op("Cast", [logits], to=TensorProto.FLOAT)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"]))

    graph = helper.make_graph(g.nodes, "aria_decoder", inputs, outputs, g.inits)
    opsets = [helper.make_opsetid("", OPSET)]
    if variant == "gqa" or quantize:
        opsets.append(helper.make_opsetid(MS_DOMAIN, 1))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="aria-bridge export_onnx.py")
    model.ir_version = 8
    meta = {"aria.variant": variant, "aria.dtype": dtype, "aria.d_model": d, "aria.n_heads": h,
            "aria.n_layers": nl, "aria.vocab_size": v, "aria.max_seq_len": cfg["max_seq_len"]}
    if quantize:
        meta["aria.quantize"] = f"{quantize} MatMulNBits block {block_size} accuracy_level {accuracy_level}"
    # What the bridge needs to know of a trained model (train_demo.py writes both into its config):
    # the tempo its corpus was rendered at, which prompts are warped to, and its training window,
    # which caps the prompt.
    for key in ("train_bpm", "max_prompt_tokens"):
        if cfg.get(key) is not None:
            v = cfg[key]
            meta["aria_bridge." + key] = int(v) if float(v).is_integer() else v
    for k, val in meta.items():
        e = model.metadata_props.add()
        e.key, e.value = k, str(val)
    return model


def save(model, out):
    """Writes the model; weights over 1.5 GB go to `<out>.data` (protobuf's 2 GB limit)."""
    size = sum(len(t.raw_data) for t in model.graph.initializer)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    if size > 1_500_000_000:
        onnx.save_model(model, out, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(out) + ".data", size_threshold=1024)
    else:
        onnx.save_model(model, out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="Aria .safetensors checkpoint (reference key names), or a float "
                                           ".onnx this script wrote (re-export in another variant or form)")
    src.add_argument("--random", choices=["medium", "tiny", "custom"],
                     help="random weights of this size (custom: give --d-model/--n-heads/--n-layers)")
    ap.add_argument("--config", help="model config JSON (d_model, n_heads, n_layers, ff_mult, "
                                     "max_seq_len, vocab_size, rope_base; optional train_bpm and "
                                     "max_prompt_tokens go into the metadata as aria_bridge.*); "
                                     "default: the medium size")
    ap.add_argument("--train-bpm", type=float,
                    help="metadata aria_bridge.train_bpm: the tempo the training corpus was rendered at")
    ap.add_argument("--max-prompt-tokens", type=int,
                    help="metadata aria_bridge.max_prompt_tokens: the training window in tokens")
    ap.add_argument("--seed", type=int, default=0, help="seed of --random")
    ap.add_argument("--d-model", type=int)
    ap.add_argument("--n-heads", type=int)
    ap.add_argument("--n-layers", type=int)
    ap.add_argument("--max-seq-len", type=int)
    ap.add_argument("--vocab-size", type=int)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="weights and compute dtype")
    ap.add_argument("--variant", choices=["plain", "gqa"], default="plain",
                    help="plain ONNX ops (any provider, parity) or contrib GroupQueryAttention (CUDA)")
    ap.add_argument("--full-head", action="store_true",
                    help="gqa without the head-range inputs: fixed shapes, no If (CUDA graph capture)")
    ap.add_argument("--quantize", choices=["int8", "int4"],
                    help="layers' matrix products as MatMulNBits with block-quantized weights, other "
                         "weights stored fp16 and cast to fp32 at load (needs --dtype fp32)")
    ap.add_argument("--block-size", type=int, default=32, help="--quantize block along the input (default 32)")
    ap.add_argument("--accuracy-level", type=int, default=4, choices=[0, 1, 2, 3, 4],
                    help="MatMulNBits accuracy_level: 4 = int8 activations (fastest on CPU), 1 = fp32")
    ap.add_argument("--out", required=True, help="output .onnx path")
    a = ap.parse_args(argv)

    try:
        if a.config:
            try:
                with open(a.config) as f:
                    cfg = dict(PRESETS["medium"], **json.load(f))
            except (OSError, ValueError) as e:
                raise ExportError(f"cannot read config {a.config}: {e}")
        else:
            cfg = dict(PRESETS["tiny" if a.random == "tiny" else "medium"])
        for key in ("d_model", "n_heads", "n_layers", "max_seq_len", "vocab_size"):
            if getattr(a, key) is not None:
                cfg[key] = getattr(a, key)
        if a.train_bpm is not None:
            cfg["train_bpm"] = a.train_bpm
        if a.max_prompt_tokens is not None:
            cfg["max_prompt_tokens"] = a.max_prompt_tokens
        if a.random == "custom" and not (a.d_model and a.n_heads and a.n_layers):
            raise ExportError("--random custom needs --d-model, --n-heads and --n-layers")
        if a.checkpoint:
            w = read_onnx_weights(a.checkpoint) if a.checkpoint.endswith(".onnx") else read_safetensors(a.checkpoint)
            emb = w.get("model.tok_embeddings.weight")
            if emb is not None and not a.vocab_size and emb.shape[0] != cfg["vocab_size"]:
                # 17729 rows = the pedal ("demo") vocabulary: follow the checkpoint.
                cfg["vocab_size"] = int(emb.shape[0])
        else:
            w = random_weights(cfg, a.seed)
        check_weights(w, cfg)
        if a.full_head and a.variant != "gqa":
            raise ExportError("--full-head applies to --variant gqa (plain always computes the whole head)")
        model = build(w, cfg, a.dtype, a.variant, a.full_head, a.quantize, a.block_size, a.accuracy_level)
        save(model, a.out)
    except ExportError as e:
        print(f"export_onnx: {e}", file=sys.stderr)
        return 2
    print(f"wrote {a.out} ({a.variant}, {a.dtype}{', ' + a.quantize if a.quantize else ''}, d{cfg['d_model']} h{cfg['n_heads']} "
          f"l{cfg['n_layers']} vocab {cfg['vocab_size']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
