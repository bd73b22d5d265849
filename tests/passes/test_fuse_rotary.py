"""RotaryEmbedding: the reference, its ONNX lowering, the fusion (printed before/after), LLaMA.

Tolerances: fp32 atol 1e-4, rtol 1e-4.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from fuseformer.backends.onnx import save_onnx
from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import ConcatAttrs, RotaryEmbeddingAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext
from fuseformer.passes.fusion.rotary import FuseRotaryEmbedding
from fuseformer.passes.pipeline import default_pipeline

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import FP32, apply, assert_same_numbers, body

B, S = Sym("batch"), Sym("seq")
F32 = DType.FLOAT
RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _cos_sin(seq, dim):
    # LLaMA's tables: angle(p, i) = p * 10000^(-2i/D), the D/2 frequencies repeated twice
    inv = 10000.0 ** (-np.arange(0, dim, 2) / dim)
    ang = np.arange(seq)[:, None] * inv[None, :]
    ang = np.concatenate([ang, ang], axis=-1)[None, None]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_reference_and_lowering(interleaved, tmp_path):
    x = randn(2, 3, 5, 8)
    cos, sin = _cos_sin(5, 8)
    if interleaved:
        pairs = x.reshape(2, 3, 5, 4, 2)
        rotated = np.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(x.shape)
    else:
        rotated = np.concatenate([-x[..., 4:], x[..., :4]], -1)
    want = x * cos + rotated * sin
    g = Graph("g")
    xv = g.add_input("x", F32, (B, 3, S, 8))
    cv, sv = (g.add_input(n, F32, (1, 1, S, 8)) for n in ("cos", "sin"))
    g.outputs.append(g.make_node(Op.RotaryEmbedding, [xv, cv, sv],
                                 RotaryEmbeddingAttrs(interleaved=interleaved), name="rope").output)
    feeds = {"x": x, "cos": cos, "sin": sin}
    got = run(g, feeds)["rope_out"]
    np.testing.assert_allclose(got, want, **FP32)
    sess = ort.InferenceSession(str(save_onnx(g, tmp_path / "rope.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, feeds)[0], want, **FP32)


def _rotate_half_graph(lower=(0, 4), upper=(4, 2 ** 62)):
    """x * cos + Concat(-x[..., upper], x[..., lower]) * sin, sliced as torch exports it."""
    g = Graph("g")
    x = g.add_input("x", F32, (B, 2, S, 8))
    cos, sin = (g.add_input(n, F32, (1, 1, S, 8)) for n in ("cos", "sin"))
    last = g.add_constant(np.array([-1], np.int64), "last")
    one = g.add_constant(np.array([1], np.int64), "one")

    def half(bounds, name):
        start, end = (g.add_constant(np.array([b], np.int64), f"{name}_{i}") for i, b in enumerate(bounds))
        return g.make_node(Op.Slice, [x, start, end, last, one], name=name).output

    neg = g.make_node(Op.Neg, [half(upper, "upper")], name="neg").output
    rotated = g.make_node(Op.Concat, [neg, half(lower, "lower")], ConcatAttrs(axis=-1), name="rot").output
    a = g.make_node(Op.Mul, [x, cos], name="x_cos").output
    b = g.make_node(Op.Mul, [sin, rotated], name="rot_sin").output  # operands swapped: commutative
    g.outputs.append(g.make_node(Op.Add, [b, a], name="rope").output)
    return g


def test_fuses_rotate_half(tmp_path):
    g = _rotate_half_graph()
    cos, sin = _cos_sin(6, 8)
    feeds = {"x": randn(2, 2, 6, 8), "cos": cos, "sin": sin}
    before = run(g, feeds)
    g2, modified, ctx = apply(FuseRotaryEmbedding(), g)
    assert modified
    assert body(g2) == (
        "graph g(%x: f32[batch,2,seq,8], %cos: f32[1,1,seq,8], %sin: f32[1,1,seq,8]) {\n"
        "  %rope_out: f32[batch,2,seq,8] = fuseformer::RotaryEmbedding(%x, %cos, %sin)  "
        "# rope/RotaryEmbedding\n"
        "  return %rope_out\n}")
    assert ctx.report.fired["RotaryEmbedding"] == 1
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_near_miss_halves_swapped():
    # Concat(-x1, x2) rotates the other way: not RotaryEmbedding's rotate_half
    g = _rotate_half_graph(lower=(4, 8), upper=(0, 4))
    ctx = PassContext()
    _, modified, _ = apply(FuseRotaryEmbedding(), g, ctx=ctx)
    assert not modified
    assert ("RotaryEmbedding at node rope: lower (Slice) keeps [4:8:1] of the last axis, not [0:4] "
            "(rotate_half of D=8)") in ctx.report.format()


LLAMA = [c for c in ZOO if c[0] == "llama"]


@pytest.mark.parametrize("combo", LLAMA, ids=["-".join(map(str, c)) for c in LLAMA])
def test_llama_two_per_layer(combo):
    graph = load_onnx(zoo_model(*combo))
    feeds = zoo_inputs("llama", seed=0)
    before = run(graph, feeds)
    ctx = PassContext()
    for pm in default_pipeline():
        graph = pm(graph, ctx).graph
    assert graph.op_counts().get("RotaryEmbedding", 0) == 2 * 2, ctx.report.format()
    assert not ctx.report.missed.get("RotaryEmbedding"), ctx.report.format()
    assert "Neg" not in graph.op_counts()
    after = run(graph, feeds)
    for key, want in before.items():
        np.testing.assert_allclose(after[key], want, **FP32, err_msg=key)
