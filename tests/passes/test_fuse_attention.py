"""Attention fusion: hand-built graphs (printed before/after), near misses, and every zoo transformer.

Tolerances: fp32 atol 1e-4, rtol 1e-4 (the fused core reorders the scale multiply).
"""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from fuseformer.backends.onnx import save_onnx
from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import ConcatAttrs, GatherAttrs, SoftmaxAttrs, TransposeAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext
from fuseformer.passes.fusion.attention import FuseAttention
from fuseformer.passes.fusion.causal import split_causal
from fuseformer.passes.pipeline import default_pipeline

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import B, F32, FP32, RNG, S, apply, assert_same_numbers, body, const, node, randn



# ---- structural: before / after ----------------------------------------------------
def test_bert_style_div_scale_and_float_mask(tmp_path):
    # softmax(q @ Transpose(k) / sqrt(8) + mask) @ v  ->  Attention(q, k, v, mask)
    g = Graph("g")
    q, k, v = (g.add_input(n, F32, (B, 2, S, 8)) for n in "qkv")
    mask = g.add_input("mask", F32, (B, 1, 1, S))
    kt = node(g, Op.Transpose, [k], "kt", TransposeAttrs(perm=(0, 1, 3, 2)))
    scores = node(g, Op.MatMul, [q, kt], "qk")
    scaled = node(g, Op.Div, [scores, const(g, math.sqrt(8), "sqrt_d")], "scale")
    probs = node(g, Op.Softmax, [node(g, Op.Add, [scaled, mask], "add_mask")], "softmax")
    g.outputs.append(node(g, Op.MatMul, [probs, v], "pv"))
    feeds = {"q": randn(2, 2, 5, 8), "k": randn(2, 2, 5, 8), "v": randn(2, 2, 5, 8),
             "mask": np.where(RNG.random((2, 1, 1, 5)) < 0.3, -1e4, 0).astype(np.float32)}
    before = run(g, feeds)
    g2, modified, ctx = apply(FuseAttention(), g)
    assert modified
    assert body(g2) == (
        "graph g(%q: f32[batch,2,seq,8], %k: f32[batch,2,seq,8], %v: f32[batch,2,seq,8], "
        "%mask: f32[batch,1,1,seq]) {\n"
        "  %pv_out: f32[batch,2,seq,8] = fuseformer::Attention(%q, %k, %v, %mask) "
        "{mask_kind='additive'}  # pv/Attention\n"
        "  return %pv_out\n}")
    assert ctx.report.fired["Attention"] == 1
    assert_same_numbers(before, g2, feeds, tmp_path)


# the decomposition computes softmax(-inf, ...) = NaN before its guard zeroes the row
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_sdpa_style_split_scale_bool_mask_guard_and_bshd_key(tmp_path):
    # torch SDPA export: q and k^T each scaled by sqrt(scale), k^T straight from the [B, S, H, D]
    # head split, mask Where(b, 0, -inf), guard Where(IsNaN(p), 0, p)
    g = Graph("g")
    q, v = (g.add_input(n, F32, (B, 2, S, 8)) for n in "qv")
    k_bshd = g.add_input("k", F32, (B, S, 2, 8))
    keep = g.add_input("keep", DType.BOOL, (B, 1, S, S))
    root = const(g, 0.125 ** 0.5, "sqrt_scale")
    kt = node(g, Op.Transpose, [k_bshd], "kt", TransposeAttrs(perm=(0, 2, 3, 1)))
    scores = node(g, Op.MatMul, [node(g, Op.Mul, [q, root], "q_scale"),
                                 node(g, Op.Mul, [kt, root], "k_scale")], "qk")
    zero = const(g, 0.0, "zero")
    mask = node(g, Op.Where, [keep, zero, const(g, -np.inf, "ninf")], "mask")
    probs = node(g, Op.Softmax, [node(g, Op.Add, [scores, mask], "add_mask")], "softmax")
    guarded = node(g, Op.Where, [node(g, Op.IsNaN, [probs], "isnan"), zero, probs], "guard")
    g.outputs.append(node(g, Op.MatMul, [guarded, v], "pv"))
    keep_np = RNG.random((2, 1, 5, 5)) < 0.7
    keep_np[1, 0, 2, :] = False  # a fully masked row: zeros, from the guard and from Attention
    feeds = {"q": randn(2, 2, 5, 8), "k": randn(2, 5, 2, 8), "v": randn(2, 2, 5, 8), "keep": keep_np}
    before = run(g, feeds)
    g2, modified, _ = apply(FuseAttention(), g)
    assert modified
    assert body(g2) == (
        "graph g(%q: f32[batch,2,seq,8], %v: f32[batch,2,seq,8], %k: f32[batch,seq,2,8], "
        "%keep: bool[batch,1,seq,seq]) {\n"
        "  %pv/k_out: f32[batch,2,seq,8] = Transpose(%k) {perm=[0,2,1,3]}  # pv/k\n"
        "  %pv_out: f32[batch,2,seq,8] = fuseformer::Attention(%q, %pv/k_out, %v, %keep) "
        "{scale=0.125, mask_kind='bool'}  # pv/Attention\n"
        "  return %pv_out\n}")
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_grouped_query_repeat_kv_and_causal_mask(tmp_path):
    # LLaMA: k, v repeated from 2 to 4 heads by Unsqueeze/Expand/Reshape; the bool mask is
    # And(arange(S)[key] <= arange(S)[query], padding), filled with -inf
    g = Graph("g")
    q = g.add_input("q", F32, (2, 4, S, 8))
    k, v = (g.add_input(n, F32, (2, 2, S, 8)) for n in "kv")
    pad = g.add_input("pad", DType.BOOL, (2, 1, 1, S))
    axes2 = const(g, [2], "axes2", np.int64)

    def repeat_kv(x, name):
        # expand [2, 2, 1, S, 8] to [2, 2, 2, S, 8]: the sizes come from Shape(x), as exporters do
        shape = node(g, Op.Shape, [x], f"{name}_shape")
        sd = node(g, Op.Slice, [shape, const(g, [2], f"{name}_s0", np.int64),
                                const(g, [4], f"{name}_s1", np.int64)], f"{name}_sd")
        target = node(g, Op.Concat, [const(g, [2, 2, 2], f"{name}_bhr", np.int64), sd], f"{name}_target",
                      ConcatAttrs(axis=0))
        expanded = node(g, Op.Expand, [node(g, Op.Unsqueeze, [x, axes2], f"{name}_unsq"), target],
                        f"{name}_expand")
        return node(g, Op.Reshape, [expanded, const(g, [2, 4, -1, 8], f"{name}_to", np.int64)],
                    f"{name}_merge")

    seq = node(g, Op.Gather, [node(g, Op.Shape, [q], "q_shape"), const(g, 2, "two", np.int64)],
               "seq_len", GatherAttrs(axis=0))
    pos = node(g, Op.Range, [const(g, 0, "start", np.int64), seq, const(g, 1, "step", np.int64)], "pos")
    kpos = node(g, Op.Unsqueeze, [pos, const(g, [0, 1, 2], "kaxes", np.int64)], "kpos")
    qpos = node(g, Op.Unsqueeze, [pos, const(g, [0, 1, 3], "qaxes", np.int64)], "qpos")
    causal = node(g, Op.LessOrEqual, [kpos, qpos], "causal")
    keep = node(g, Op.And, [causal, pad], "keep")
    zero = const(g, 0.0, "zero")
    mask = node(g, Op.Where, [keep, zero, const(g, -np.inf, "ninf")], "mask")
    kt = node(g, Op.Transpose, [repeat_kv(k, "k")], "kt", TransposeAttrs(perm=(0, 1, 3, 2)))
    scores = node(g, Op.Mul, [node(g, Op.MatMul, [q, kt], "qk"), const(g, 8 ** -0.5, "scale")], "scaled")
    probs = node(g, Op.Softmax, [node(g, Op.Add, [scores, mask], "add_mask")], "softmax")
    guarded = node(g, Op.Where, [node(g, Op.IsNaN, [probs], "isnan"), zero, probs], "guard")
    g.outputs.append(node(g, Op.MatMul, [guarded, repeat_kv(v, "v")], "pv"))
    pad_np = np.ones((2, 1, 1, 6), bool)
    pad_np[1, ..., 4:] = False
    feeds = {"q": randn(2, 4, 6, 8), "k": randn(2, 2, 6, 8), "v": randn(2, 2, 6, 8), "pad": pad_np}
    before = run(g, feeds)
    g2, modified, _ = apply(FuseAttention(), g)
    assert modified
    assert body(g2) == (
        "graph g(%q: f32[2,4,seq,8], %k: f32[2,2,seq,8], %v: f32[2,2,seq,8], %pad: bool[2,1,1,seq]) {\n"
        "  %pv_out: f32[2,4,seq,8] = fuseformer::Attention(%q, %k, %v, %pad) "
        "{causal=1, mask_kind='bool'}  # pv/Attention\n"
        "  return %pv_out\n}")
    assert_same_numbers(before, g2, feeds, tmp_path)


@pytest.mark.parametrize("q_start, causal", [(0, 1), (1, 0)])
def test_causal_needs_aligned_positions(q_start, causal):
    # query positions that start at 1 (one past key) mean j <= i + 1: not Attention's causal band
    g = Graph("g")
    x = g.add_input("x", F32, (2, 4, S, 8))
    pad = g.add_input("pad", DType.BOOL, (2, 1, 1, S))
    seq = node(g, Op.Gather, [node(g, Op.Shape, [x], "shape"), const(g, 2, "two", np.int64)], "seq")
    one = const(g, 1, "one", np.int64)
    kpos = node(g, Op.Range, [const(g, 0, "zero", np.int64), seq, one], "krange")
    qend = node(g, Op.Add, [seq, const(g, q_start, "end", np.int64)], "qend") if q_start else seq
    qpos = node(g, Op.Range, [const(g, q_start, "start", np.int64), qend, one], "qrange")
    kpos = node(g, Op.Unsqueeze, [kpos, const(g, [0, 1, 2], "kaxes", np.int64)], "kpos")
    qpos = node(g, Op.Unsqueeze, [qpos, const(g, [0, 1, 3], "qaxes", np.int64)], "qpos")
    keep = node(g, Op.And, [node(g, Op.LessOrEqual, [kpos, qpos], "band"), pad], "keep")
    terms, got = split_causal(keep, S, S)
    assert got == causal
    assert terms == ([pad] if causal else [keep])


@pytest.mark.parametrize("fill, mask_line", [
    (-np.inf, "  %pv/mask_out: bool[batch,1,1,seq] = Not(%masked)  # pv/mask\n"),
    (-3.4028235e38, "  %pv/mask_out: f32[batch,1,1,seq] = Where(%masked, %pv/mask_fill, %pv/mask_zero)  "
                    "# pv/mask\n"),
])
def test_masked_fill_style_where(fill, mask_line, tmp_path):
    # DistilBERT: softmax(Where(masked, fill, q @ k^T / sqrt(d))) @ v, the condition marking masked keys
    g = Graph("g")
    q, k, v = (g.add_input(n, F32, (B, 2, S, 8)) for n in "qkv")
    masked = g.add_input("masked", DType.BOOL, (B, 1, 1, S))
    kt = node(g, Op.Transpose, [k], "kt", TransposeAttrs(perm=(0, 1, 3, 2)))
    scores = node(g, Op.Div, [node(g, Op.MatMul, [q, kt], "qk"), const(g, math.sqrt(8), "sqrt_d")], "scale")
    filled = node(g, Op.Where, [masked, const(g, fill, "fill"), scores], "masked_fill")
    g.outputs.append(node(g, Op.MatMul, [node(g, Op.Softmax, [filled], "softmax"), v], "pv"))
    masked_np = np.zeros((2, 1, 1, 5), bool)
    masked_np[1, ..., 3:] = True
    feeds = {"q": randn(2, 2, 5, 8), "k": randn(2, 2, 5, 8), "v": randn(2, 2, 5, 8), "masked": masked_np}
    before = run(g, feeds)
    g2, modified, _ = apply(FuseAttention(), g)
    assert modified
    kind = "bool" if fill == -np.inf else "additive"
    assert body(g2) == (
        "graph g(%q: f32[batch,2,seq,8], %k: f32[batch,2,seq,8], %v: f32[batch,2,seq,8], "
        "%masked: bool[batch,1,1,seq]) {\n" + mask_line +
        "  %pv_out: f32[batch,2,seq,8] = fuseformer::Attention(%q, %k, %v, %pv/mask_out) "
        f"{{mask_kind='{kind}'}}  # pv/Attention\n"
        "  return %pv_out\n}")
    assert_same_numbers(before, g2, feeds, tmp_path)


# ---- near misses ---------------------------------------------------------------------
def _core(softmax_axis=-1, mask_shape=None, q_seq=S):
    g = Graph("g")
    q = g.add_input("q", F32, (B, 2, q_seq, 8))
    k, v = (g.add_input(n, F32, (B, 2, S, 8)) for n in "kv")
    kt = node(g, Op.Transpose, [k], "kt", TransposeAttrs(perm=(0, 1, 3, 2)))
    scores = node(g, Op.MatMul, [q, kt], "qk")
    if mask_shape is not None:
        scores = node(g, Op.Add, [scores, g.add_input("mask", F32, mask_shape)], "add_mask")
    probs = node(g, Op.Softmax, [scores], "softmax", SoftmaxAttrs(axis=softmax_axis))
    g.outputs.append(node(g, Op.MatMul, [probs, v], "pv"))
    return g


def _misses(g):
    ctx = PassContext()
    _, modified, _ = apply(FuseAttention(), g, ctx=ctx)
    assert not modified
    assert not ctx.report.fired
    return ctx.report.format()


def test_near_miss_softmax_over_query_axis():
    report = _misses(_core(softmax_axis=2))
    assert "Attention at node softmax: softmax over axis 2, not the last (key) axis" in report


def test_near_miss_mask_that_grows_the_scores():
    # one query row, a mask with 4: fusing would drop the broadcast that makes 4 output rows
    report = _misses(_core(mask_shape=(B, 1, 4, S), q_seq=1))
    assert ("the mask %mask has shape [batch,1,4,seq], which does not broadcast to the scores "
            "[batch,2,1,seq]") in report


def test_near_miss_probabilities_also_returned():
    g = _core()
    g.outputs.append(g.find_node("softmax").output)
    report = _misses(g)
    assert "%softmax_out of softmax (Softmax) is a graph output" in report


def test_plain_softmax_is_not_reported():
    g = Graph("g")
    x = g.add_input("x", F32, (B, 10))
    g.outputs.append(node(g, Op.Softmax, [x], "classifier"))
    ctx = PassContext()
    apply(FuseAttention(), g, ctx=ctx)
    assert ctx.report.format() == ""


# ---- the zoo ---------------------------------------------------------------------------
LAYERS = {"bert": 2, "gpt2": 2, "llama": 2, "vit": 2, "minilm": 6, "paraphrase_minilm": 3, "deit": 2, "slab_vit": 2, "levit": 5}
ATTENTION_ZOO = [c for c in ZOO if c[0] in LAYERS]


def _ort(path, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


@pytest.mark.parametrize("name,exporter,opset", ATTENTION_ZOO,
                         ids=["-".join(map(str, c)) for c in ATTENTION_ZOO])
def test_zoo_every_layer_fuses(name, exporter, opset, tmp_path):
    path = zoo_model(name, exporter, opset)
    graph = load_onnx(path)
    feeds = zoo_inputs(name, seed=0)
    before = run(graph, feeds)
    ctx = PassContext()
    for pm in default_pipeline():
        graph = pm(graph, ctx).graph
    counts = graph.op_counts()
    assert counts.get("Attention", 0) == LAYERS[name], ctx.report.format()
    assert "Softmax" not in counts
    assert not ctx.report.missed.get("Attention"), ctx.report.format()
    after = run(graph, feeds)
    for key, want in before.items():
        np.testing.assert_allclose(after[key], want, **FP32, err_msg=key)
    want = _ort(path, feeds)
    got = _ort(save_onnx(graph, tmp_path / "fused.onnx"), feeds)
    assert list(got) == list(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], **FP32, err_msg=f"onnxruntime {key}")
