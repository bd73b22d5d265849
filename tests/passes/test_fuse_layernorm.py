"""LayerNorm fusion: every decomposition the exporters emit, the exact result, and near misses."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import Graph, Op
from fuseformer.ir.attrs import ReduceMeanAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext
from fuseformer.passes.fusion.layernorm import FuseLayerNorm

from .checks import B, F32, S, apply, assert_same_numbers, body, const, node, randn

X = randn(2, 3, 8)


def ln_graph(square="pow", divide="div", affine="both", axes=(-1,), keepdims=1):
    """(x - mean(x)) / sqrt(mean((x - mean)^2) + eps) [* gamma] [+ beta], spelled variously."""
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    ax = const(g, list(axes), "axes", np.int64)
    mean = node(g, Op.ReduceMean, [x, ax], "mean", ReduceMeanAttrs(keepdims=keepdims))
    d = node(g, Op.Sub, [x, mean], "sub")
    sq = node(g, Op.Pow, [d, const(g, 2.0, "two")], "sq") if square == "pow" else node(g, Op.Mul, [d, d], "sq")
    var = node(g, Op.ReduceMean, [sq, ax], "var", ReduceMeanAttrs(keepdims=keepdims))
    std = node(g, Op.Sqrt, [node(g, Op.Add, [var, const(g, 1e-5, "eps")], "add_eps")], "std")
    if divide == "div":
        y = node(g, Op.Div, [d, std], "norm")
    else:
        y = node(g, Op.Mul, [node(g, Op.Reciprocal, [std], "inv"), d], "norm")
    if affine in ("scale", "both"):
        y = node(g, Op.Mul, [const(g, np.linspace(0.5, 1.5, 8), "gamma"), y], "scale")
    if affine == "both":
        y = node(g, Op.Add, [y, const(g, np.linspace(-1, 1, 8), "beta")], "shift")
    g.outputs.append(y)
    return g


@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("divide", ["div", "reciprocal"])
@pytest.mark.parametrize("affine", ["both", "scale", "none"])
def test_every_spelling_fuses(square, divide, affine, tmp_path):
    g = ln_graph(square, divide, affine)
    before = run(g, {"x": X})
    g2, modified, ctx = apply(FuseLayerNorm(), g)
    assert modified and [n.op for n in g2.nodes] == [Op.LayerNormalization]
    assert ctx.report.fired["LayerNorm"] == 1
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


def test_structure():
    g2, _, _ = apply(FuseLayerNorm(), ln_graph())
    # epsilon is the float32 constant's exact value
    assert body(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                        "  %shift_out: f32[batch,seq,8] = LayerNormalization(%x, %shift/gamma, %shift/beta) "
                        "{epsilon=9.9999997e-06}  # shift/LayerNormalization\n"
                        "  return %shift_out\n}")


def test_near_miss_reduces_over_axis_1():
    g = ln_graph(axes=(1,))
    ctx = PassContext()
    _, modified, _ = apply(FuseLayerNorm(), g, ctx=ctx)
    assert not modified
    assert "LayerNorm at node shift: reduces over axes [1], not the last axis only" in ctx.report.format()


def test_near_miss_keepdims_0():
    ctx = PassContext()
    g = Graph("g")
    x = g.add_input("x", F32, (B, 8))
    ax = const(g, [-1], "axes", np.int64)
    # keepdims=0 makes a [batch] mean that broadcasts against [batch, 8] the wrong way round
    mean = node(g, Op.ReduceMean, [x, ax], "mean", ReduceMeanAttrs(keepdims=1))
    d = node(g, Op.Sub, [x, mean], "sub")
    var = node(g, Op.ReduceMean, [node(g, Op.Mul, [d, d], "sq"), ax], "var", ReduceMeanAttrs(keepdims=0))
    std = node(g, Op.Sqrt, [node(g, Op.Add, [var, const(g, 1e-5, "eps")], "add_eps")], "std")
    y = node(g, Op.Div, [d, std], "norm")
    g.outputs.append(y)
    _, modified, _ = apply(FuseLayerNorm(), g, ctx=ctx)
    assert not modified
    assert "keepdims=0" in ctx.report.format()


def test_intermediate_used_elsewhere_is_not_fused():
    g = ln_graph()
    g.outputs.append(g.find_node("var").output)
    ctx = PassContext()
    _, modified, _ = apply(FuseLayerNorm(), g, ctx=ctx)
    assert not modified
    assert "fusing would compute it twice" in ctx.report.format() or "graph output" in ctx.report.format()
