"""BatchNorm and per-channel affine folding into Conv / Gemm / MatMul: exact rewrites."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import BatchNormalizationAttrs, ConvAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext, PassManager, VerifyEachPass
from fuseformer.passes.pipeline import canonicalize_passes
from fuseformer.passes.reparam.batchnorm import BatchNormToAffine
from fuseformer.passes.reparam.fold_affine import CombineAffine, FoldAffineIntoLinear

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import assert_same_numbers, body

RNG = np.random.default_rng(0)


def fold(graph):
    ctx = PassContext(instruments=[VerifyEachPass()])
    PassManager([BatchNormToAffine(), CombineAffine(), FoldAffineIntoLinear()] + canonicalize_passes(),
                fixpoint=True)(graph, ctx)
    return ctx


def bn_params(c, g):
    vals = [RNG.uniform(0.5, 1.5, c), RNG.standard_normal(c), RNG.standard_normal(c), RNG.uniform(0.5, 2, c)]
    return [g.add_constant(v.astype(np.float32), n) for v, n in zip(vals, ("gamma", "beta", "mean", "var"))]


def conv_graph(bn_first: bool, pads=(1, 1, 1, 1), groups=1):
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 4, 6, 6))
    w = g.add_constant(RNG.standard_normal((8, 4 // groups, 3, 3)).astype(np.float32), "w")
    b = g.add_constant(RNG.standard_normal(8).astype(np.float32), "b")
    conv_attrs = ConvAttrs(pads=pads, group=groups)
    if bn_first:
        h = g.make_node(Op.BatchNormalization, [x, *bn_params(4, g)], BatchNormalizationAttrs(), name="bn").output
        y = g.make_node(Op.Conv, [h, w, b], conv_attrs, name="conv").output
    else:
        h = g.make_node(Op.Conv, [x, w, b], conv_attrs, name="conv").output
        y = g.make_node(Op.BatchNormalization, [h, *bn_params(8, g)], BatchNormalizationAttrs(), name="bn").output
    g.outputs.append(g.make_node(Op.Relu, [y], name="relu").output)
    return g


X = RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_conv_then_bn_folds(tmp_path, groups):
    g = conv_graph(bn_first=False, groups=groups)
    before = run(g, {"x": X})
    ctx = fold(g)
    attrs = "{pads=[1,1,1,1]}" if groups == 1 else f"{{group={groups}, pads=[1,1,1,1]}}"
    # the weights were rewritten twice (scale, then shift): the second constants carry a suffix
    assert body(g) == ("graph g(%x: f32[batch,4,6,6]) {\n"
                       f"  %conv_out: f32[batch,8,6,6] = Conv(%x, %conv/weight_0, %conv/bias_1) {attrs}  # conv\n"
                       "  %relu_out: f32[batch,8,6,6] = Relu(%conv_out)  # relu\n"
                       "  return %relu_out\n}")
    assert [n.op for n in g.nodes] == [Op.Conv, Op.Relu]
    assert ctx.report.fired["BatchNorm -> affine"] == 1
    assert_same_numbers(before, g, {"x": X}, tmp_path)


def test_bn_then_unpadded_conv_folds(tmp_path):
    g = conv_graph(bn_first=True, pads=(0, 0, 0, 0))
    before = run(g, {"x": X})
    fold(g)
    assert [n.op for n in g.nodes] == [Op.Conv, Op.Relu]
    assert_same_numbers(before, g, {"x": X}, tmp_path)


def test_bn_then_padded_conv_keeps_the_shift():
    """Zero padding would turn into -c/a padding: only the scale may move into the weights."""
    g = conv_graph(bn_first=True, pads=(1, 1, 1, 1))
    before = run(g, {"x": X})
    fold(g)
    assert [n.op for n in g.nodes] == [Op.Add, Op.Conv, Op.Relu]
    assert_same_numbers(before, g, {"x": X})


def test_matmul_affine_both_sides(tmp_path):
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 5, 8))
    s_in = g.add_constant(RNG.uniform(0.5, 2, 8).astype(np.float32), "s_in")
    c_in = g.add_constant(RNG.standard_normal(8).astype(np.float32), "c_in")
    w = g.add_constant(RNG.standard_normal((8, 6)).astype(np.float32), "w")
    s_out = g.add_constant(RNG.uniform(0.5, 2, 6).astype(np.float32), "s_out")
    h = g.make_node(Op.Add, [g.make_node(Op.Mul, [x, s_in]).output, c_in]).output
    y = g.make_node(Op.MatMul, [h, w], name="mm").output
    g.outputs.append(g.make_node(Op.Mul, [y, s_out]).output)
    feeds = {"x": RNG.standard_normal((2, 5, 8)).astype(np.float32)}
    before = run(g, feeds)
    fold(g)
    assert [n.op for n in g.nodes] == [Op.MatMul, Op.Add]  # the shift became a bias
    assert_same_numbers(before, g, feeds, tmp_path)


def test_repbn_combines_into_one_scale(tmp_path):
    """SLAB RepBN at inference: BN(x) + alpha x = (a + alpha) x + c, then into the next layer."""
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 8, 5))  # BatchNorm1d layout [B, C, N]
    bn = g.make_node(Op.BatchNormalization, [x, *bn_params(8, g)], BatchNormalizationAttrs(), name="bn").output
    alpha = g.add_constant(np.full((8, 1), 0.3, np.float32), "alpha")
    rep = g.make_node(Op.Add, [bn, g.make_node(Op.Mul, [x, alpha], name="alpha_x").output], name="repbn").output
    w = g.add_constant(RNG.standard_normal((6, 8, 1)).astype(np.float32), "w")
    g.outputs.append(g.make_node(Op.Conv, [rep, w], ConvAttrs(), name="proj").output)
    feeds = {"x": RNG.standard_normal((2, 8, 5)).astype(np.float32)}
    before = run(g, feeds)
    fold(g)
    assert [n.op for n in g.nodes] == [Op.Conv]
    assert_same_numbers(before, g, feeds, tmp_path)


BN_MODELS = [c for c in ZOO if c[0] in ("cnn", "efficientnet_lite0")]


@pytest.mark.parametrize("combo", BN_MODELS, ids=[f"{n}-{e}-{o}" for n, e, o in BN_MODELS])
def test_real_models_lose_every_batchnorm(combo):
    g = load_onnx(zoo_model(*combo))
    n_bn = g.op_counts()["BatchNormalization"]
    assert n_bn == (49 if combo[0] == "efficientnet_lite0" else 3)
    feeds = zoo_inputs(combo[0])
    before = run(g, feeds)
    ctx = fold(g)
    counts = g.op_counts()
    assert "BatchNormalization" not in counts
    assert counts.get("Mul", 0) == 0  # every scale went into a conv
    assert ctx.report.fired["BatchNorm -> affine"] == n_bn
    assert_same_numbers(before, g, feeds)


def test_unified_normalization_folds(tmp_path):
    """UN at inference: y = gamma x / sqrt(running_var + eps) + beta, then a Linear."""
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 5, 8))
    std = g.add_constant(np.sqrt(RNG.uniform(0.5, 2, 8) + 1e-5).astype(np.float32), "std")
    gamma = g.add_constant(RNG.uniform(0.5, 1.5, 8).astype(np.float32), "gamma")
    beta = g.add_constant(RNG.standard_normal(8).astype(np.float32), "beta")
    h = g.make_node(Op.Div, [x, std], name="un_div").output
    h = g.make_node(Op.Add, [g.make_node(Op.Mul, [h, gamma], name="un_scale").output, beta], name="un_shift").output
    w = g.add_constant(RNG.standard_normal((8, 6)).astype(np.float32), "w")
    b = g.add_constant(RNG.standard_normal(6).astype(np.float32), "b")
    g.outputs.append(g.make_node(Op.Linear, [h, w, b], name="fc").output)
    feeds = {"x": RNG.standard_normal((2, 5, 8)).astype(np.float32)}
    before = run(g, feeds)
    fold(g)
    assert [n.op for n in g.nodes] == [Op.Linear]
    assert_same_numbers(before, g, feeds, tmp_path)


def test_slab_patch_embed_bias_times_alpha(tmp_path):
    """PatchEmbed: RepBN(conv(x) + c_b) = a (W x + c_b) + c with a = gamma/sqrt(var+eps) + alpha.

    The folded bias must be a*c_b + c, alpha*c_b included (SLAB's own merge drops that term).
    """
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 3, 8, 8))
    w = g.add_constant(RNG.standard_normal((8, 3, 4, 4)).astype(np.float32), "w")
    cb = g.add_constant(RNG.standard_normal(8).astype(np.float32) * 3, "conv_bias")
    y = g.make_node(Op.Conv, [x, w, cb], ConvAttrs(strides=(4, 4)), name="patch").output
    bn = g.make_node(Op.BatchNormalization, [y, *bn_params(8, g)], BatchNormalizationAttrs(), name="bn").output
    alpha = g.add_constant(np.full((8, 1, 1), 0.7, np.float32), "alpha")
    rep = g.make_node(Op.Add, [bn, g.make_node(Op.Mul, [y, alpha], name="alpha_y").output], name="repbn").output
    g.outputs.append(g.make_node(Op.Relu, [rep], name="relu").output)
    feeds = {"x": RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)}
    before = run(g, feeds)
    fold(g)
    assert [n.op for n in g.nodes] == [Op.Conv, Op.Relu]
    assert_same_numbers(before, g, feeds, tmp_path)
