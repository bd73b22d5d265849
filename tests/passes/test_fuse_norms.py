"""RMSNorm and skip-norm fusions: hand-built graphs (printed before/after), numbers, near misses, the zoo.

Tolerances: fp32 atol 1e-4, rtol 1e-4 (the fused RMSNorm divides by the root
where the decomposition multiplies by its reciprocal).
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import LayerNormalizationAttrs, RMSNormAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes.fusion.linear import FuseLinear
from fuseformer.passes.fusion.linear_epilogue import FuseLinearResidual
from fuseformer.passes.fusion.rmsnorm import FuseRMSNorm
from fuseformer.passes.fusion.skipnorm import FuseSkipNorm

from .checks import B, F32, RNG, S, apply, assert_same_numbers, body, const, node, randn
from .fused_zoo import TRANSFORMER_IDS, TRANSFORMER_ZOO, TRANSFORMERS, optimized



def rms_graph(square="pow", inverse="div1", weight=True, axis=-1, exponent=-0.5):
    """x / sqrt(mean(x^2) + 1e-6) * w as exporters write it; the variant picks each spelling."""
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    sq = (node(g, Op.Pow, [x, const(g, 2.0, "two")], "pow") if square == "pow"
          else node(g, Op.Mul, [x, x], "square"))
    mean = node(g, Op.ReduceMean, [sq, const(g, [axis], "axes", np.int64)], "mean")
    var = node(g, Op.Add, [mean, const(g, 1e-6, "eps")], "add_eps")
    if inverse == "pow":
        n = node(g, Op.Mul, [x, node(g, Op.Pow, [var, const(g, exponent, "minus_half")], "rsqrt")], "normalize")
    else:
        std = node(g, Op.Sqrt, [var], "sqrt")
        if inverse == "div1":
            n = node(g, Op.Mul, [x, node(g, Op.Div, [const(g, 1.0, "one"), std], "rsqrt")], "normalize")
        elif inverse == "reciprocal":
            n = node(g, Op.Mul, [node(g, Op.Reciprocal, [std], "rsqrt"), x], "normalize")
        else:
            n = node(g, Op.Div, [x, std], "normalize")
    if weight:
        n = node(g, Op.Mul, [const(g, RNG.uniform(0.5, 1.5, 8), "weight"), n], "scale")
    g.outputs.append(n)
    return g


# ---- RMSNorm -------------------------------------------------------------------------
def test_rmsnorm_torchscript_spelling(tmp_path):
    g = rms_graph()
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, modified, ctx = apply(FuseRMSNorm(), g)
    assert modified
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8]) {\n"
        "  %scale_out: f32[batch,seq,8] = fuseformer::RMSNorm(%x, %weight) {epsilon=1e-06}"
        "  # scale/RMSNorm\n"
        "  return %scale_out\n}")
    assert ctx.report.fired["RMSNorm"] == 1
    assert_same_numbers(before, g2, feeds, tmp_path)


@pytest.mark.parametrize("square,inverse,weight", [
    ("mul", "reciprocal", True),   # dynamo: x*x, Reciprocal(Sqrt)
    ("pow", "div", True),          # x / Sqrt
    ("mul", "pow", True),          # Pow(var, -0.5)
    ("pow", "div1", False),        # no weight
])
def test_rmsnorm_spellings(square, inverse, weight, tmp_path):
    g = rms_graph(square, inverse, weight)
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, modified, _ = apply(FuseRMSNorm(), g)
    assert [n.op for n in g2.nodes] == [Op.RMSNorm]
    assert len(g2.nodes[0].inputs) == (2 if weight else 1)
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_rmsnorm_near_miss_reduces_axis_1():
    g = rms_graph(axis=1)
    g2, modified, ctx = apply(FuseRMSNorm(), g)
    assert not modified
    assert "RMSNorm at node scale: reduces over axes [1], not the last axis only" in ctx.report.format()


def test_rmsnorm_near_miss_wrong_exponent():
    g = rms_graph(inverse="pow", exponent=-0.25)
    _, modified, ctx = apply(FuseRMSNorm(), g)
    assert not modified
    assert "not Pow(., -0.5)" in ctx.report.format()


# ---- skip norms ----------------------------------------------------------------------
def pre_ln_graph(norm=Op.LayerNormalization, axis=-1):
    """h = a + b; y = Norm(h); out = h + y: the sum is used again, as in a Pre-LN stream."""
    g = Graph("g")
    a, b = g.add_input("a", F32, (B, S, 8)), g.add_input("b", F32, (B, S, 8))
    h = node(g, Op.Add, [a, b], "residual")
    gamma = const(g, RNG.uniform(0.5, 1.5, 8), "gamma")
    if norm is Op.LayerNormalization:
        y = node(g, norm, [h, gamma, const(g, randn(8), "beta")], "ln",
                 LayerNormalizationAttrs(axis=axis, epsilon=1e-5))
    else:
        y = node(g, norm, [h, gamma], "rms", RMSNormAttrs(axis=axis, epsilon=1e-6))
    g.outputs.append(node(g, Op.Add, [h, y], "next"))
    return g


def test_skip_layernorm_keeps_the_sum_for_the_stream(tmp_path):
    g = pre_ln_graph()
    feeds = {"a": randn(2, 5, 8), "b": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, modified, ctx = apply(FuseSkipNorm(), g)
    assert modified
    assert body(g2) == (
        "graph g(%a: f32[batch,seq,8], %b: f32[batch,seq,8]) {\n"
        "  %ln/SkipLayerNorm_out0: f32[batch,seq,8], %ln/SkipLayerNorm_out1: f32[batch,seq,8] = "
        "fuseformer::SkipLayerNorm(%a, %b, %gamma, %beta)  # ln/SkipLayerNorm\n"
        "  %next_out: f32[batch,seq,8] = Add(%ln/SkipLayerNorm_out1, %ln/SkipLayerNorm_out0)  # next\n"
        "  return %next_out\n}")
    assert ctx.report.fired["SkipLayerNorm"] == 1
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_skip_rmsnorm(tmp_path):
    g = pre_ln_graph(Op.RMSNorm)
    feeds = {"a": randn(2, 5, 8), "b": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, modified, _ = apply(FuseSkipNorm(), g)
    assert [n.op for n in g2.nodes] == [Op.SkipRMSNorm, Op.Add]
    assert g2.nodes[0].attrs.epsilon == pytest.approx(1e-6)
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_skip_norm_sum_as_graph_output_keeps_its_name(tmp_path):
    g = pre_ln_graph()
    g.outputs.insert(0, g.find_node("residual").output)
    feeds = {"a": randn(2, 5, 8), "b": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseSkipNorm(), g)
    assert [v.name for v in g2.outputs] == ["residual_out", "next_out"]
    assert g2.outputs[0].producer.op is Op.SkipLayerNorm
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_skip_norm_near_miss_not_last_axis():
    g = pre_ln_graph(axis=1)
    _, modified, ctx = apply(FuseSkipNorm(), g)
    assert not modified
    assert "SkipLayerNorm at node ln: normalizes from axis 1, not over the last axis only" in ctx.report.format()


@pytest.mark.parametrize("norm,opset", [(Op.LayerNormalization, 17), (Op.RMSNorm, 18)])
def test_skip_norms_export_from_an_opset_14_model(norm, opset, tmp_path):
    # the decompositions need LayerNormalization (17) and ReduceMean with axes as an input (18)
    g = pre_ln_graph(norm)
    g.opset = 14
    feeds = {"a": randn(2, 5, 8), "b": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseSkipNorm(), g)
    assert_same_numbers(before, g2, feeds, tmp_path)
    assert onnx.load(str(tmp_path / "after.onnx")).opset_import[0].version == opset


def block_graph():
    """Pre-LN: h = x + Linear(x); y = LayerNorm(h); out = h + y."""
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    proj = node(g, Op.Add, [node(g, Op.MatMul, [x, const(g, randn(8, 8) * 0.3, "w")], "proj"),
                            const(g, randn(8), "bias")], "proj_bias")
    h = node(g, Op.Add, [x, proj], "residual")
    y = node(g, Op.LayerNormalization, [h, const(g, np.ones(8), "gamma"), const(g, np.zeros(8), "beta")], "ln")
    g.outputs.append(node(g, Op.Add, [h, y], "next"))
    return g


@pytest.mark.parametrize("residual_first", [True, False])
def test_linear_residual_runs_before_skip_norm(residual_first, tmp_path):
    # the default order puts the residual into the Linear (4 memory passes, not 5);
    # with fuse-linear-residual disabled the same Add becomes a SkipLayerNorm instead
    g = block_graph()
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    passes = [FuseLinear()] + ([FuseLinearResidual()] if residual_first else []) + [FuseSkipNorm()]
    for p in passes:
        g, _, _ = apply(p, g)
    ops = [n.op for n in g.nodes]
    if residual_first:
        assert ops == [Op.Linear, Op.LayerNormalization, Op.Add]
        assert g.nodes[0].input(3).name == "x"
    else:
        assert ops == [Op.Linear, Op.SkipLayerNorm, Op.Add]
    assert_same_numbers(before, g, feeds, tmp_path)


# ---- the zoo ---------------------------------------------------------------------------
# every norm in each model: 2 per layer, plus the embeddings' (BERT family) or the final one
NORMS = {name: 2 * layers + 1 for name, layers in TRANSFORMERS.items()}
RMS_MODELS = {"llama"}


@pytest.mark.parametrize("name,exporter,opset", TRANSFORMER_ZOO, ids=TRANSFORMER_IDS)
def test_zoo_every_norm_fuses(name, exporter, opset):
    o = optimized(name, exporter, opset)
    report = o.ctx.report.format()
    if name in RMS_MODELS:
        assert o.count(Op.RMSNorm) + o.count(Op.SkipRMSNorm) == NORMS[name], report
        assert o.count(Op.LayerNormalization) + o.count(Op.SkipLayerNorm) == 0
    else:
        assert o.count(Op.LayerNormalization) + o.count(Op.SkipLayerNorm) == NORMS[name], report
    for op in ("ReduceMean", "Pow", "Sqrt", "Reciprocal"):
        assert op not in o.graph.op_counts(), report
    for kind in ("LayerNorm", "RMSNorm", "SkipLayerNorm", "SkipRMSNorm"):
        assert not o.ctx.report.missed.get(kind), report
    # a residual Add feeding a norm went into the Linear before it, or into a skip norm;
    # the embedding sums (token + position) are the skip norms left
    for n in o.nodes(Op.LayerNormalization) + o.nodes(Op.RMSNorm):
        assert n.inputs[0].producer is None or n.inputs[0].producer.op is not Op.Add, n.name
