"""Linear fusion and its epilogues: hand-built graphs (printed before/after), numbers, near misses, the zoo.

Tolerances: fp32 atol 1e-4, rtol 1e-4 (a 3-D product instead of the flattened
2-D one, and alpha folded into W, may round differently).
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import ConcatAttrs, GeluAttrs, GemmAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext
from fuseformer.passes.fusion.linear import FuseLinear
from fuseformer.passes.fusion.linear_epilogue import FuseLinearActivation, FuseLinearResidual

from .checks import B, F32, RNG, S, apply, assert_same_numbers, body, const, node, randn
from .fused_zoo import ZOO, ZOO_IDS, TRANSFORMERS, optimized



def fuse_all(g, ctx=None):
    ctx = ctx or PassContext()
    for p in (FuseLinear(), FuseLinearActivation(), FuseLinearResidual()):
        g, _, _ = apply(p, g, ctx=ctx)
    return g, ctx


# ---- 1-3. MatMul, Gemm, bias --------------------------------------------------------
def test_matmul_plus_bias(tmp_path):
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    mm = node(g, Op.MatMul, [x, const(g, randn(8, 4), "w")], "mm")
    g.outputs.append(node(g, Op.Add, [const(g, randn(4), "b"), mm], "bias"))
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, modified, ctx = apply(FuseLinear(), g)
    assert modified
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8]) {\n"
        "  %bias_out: f32[batch,seq,4] = fuseformer::Linear(%x, %w, %b)  # bias/Linear\n"
        "  return %bias_out\n}")
    assert ctx.report.fired["Linear"] == 1 and ctx.report.fired["Linear+bias"] == 1
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_gemm_trans_b_alpha_beta_fold_into_constants(tmp_path):
    g = Graph("g")
    a = g.add_input("a", F32, (S, 8))
    w, c = randn(4, 8), randn(4)
    g.outputs.append(node(g, Op.Gemm, [a, const(g, w, "w"), const(g, c, "c")], "gemm",
                          GemmAttrs(alpha=0.5, beta=2.0, transB=1)))
    feeds = {"a": randn(5, 8)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseLinear(), g)
    assert body(g2) == (
        "graph g(%a: f32[seq,8]) {\n"
        "  %gemm_out: f32[seq,4] = fuseformer::Linear(%a, %w_T_x0.5, %c_x2)  # gemm/Linear\n"
        "  return %gemm_out\n}")
    np.testing.assert_array_equal(g2.constants["w_T_x0.5"].const.numpy(), w.T * np.float32(0.5))
    np.testing.assert_array_equal(g2.constants["c_x2"].const.numpy(), c * np.float32(2))
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_shared_transposed_weight_is_made_once():
    g = Graph("g")
    w = const(g, randn(4, 8), "w")
    for name in ("a", "b"):
        x = g.add_input(name, F32, (S, 8))
        g.outputs.append(node(g, Op.Gemm, [x, w], f"gemm_{name}", GemmAttrs(transB=1)))
    g2, _, _ = apply(FuseLinear(), g)
    assert [n.inputs[1].name for n in g2.nodes] == ["w_T", "w_T"]
    assert sorted(g2.constants) == ["w_T"]


def conv1d_graph(x_shape, k, n, dims=(0, 1)):
    """GPT-2's Conv1D: Reshape(x, [-1, K]) -> Gemm -> Reshape to Shape(x)[:2] + [N], via Shape/Gather/Concat."""
    g = Graph("g")
    x = g.add_input("x", F32, x_shape)
    flat = node(g, Op.Reshape, [x, const(g, [-1, k], "rows", np.int64)], "flatten")
    y = node(g, Op.Gemm, [flat, const(g, randn(k, n), "w"), const(g, randn(n), "b")], "gemm")
    shape = node(g, Op.Shape, [x], "shape")
    axis0 = const(g, [0], "axis0", np.int64)
    dims = [node(g, Op.Unsqueeze, [node(g, Op.Gather, [shape, const(g, i, f"i{i}", np.int64)], f"dim{i}"),
                                   axis0], f"u{i}") for i in dims]
    target = node(g, Op.Concat, dims + [const(g, [n], "n", np.int64)], "target", ConcatAttrs(axis=0))
    g.outputs.append(node(g, Op.Reshape, [y, target], "unflatten"))
    return g


def test_gpt2_conv1d_becomes_one_linear(tmp_path):
    g = conv1d_graph((B, S, 8), 8, 4)
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseLinear(), g)
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8]) {\n"
        "  %unflatten_out: f32[batch,seq,4] = fuseformer::Linear(%x, %w, %b)  # unflatten/Linear\n"
        "  return %unflatten_out\n}")
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_gpt2_conv1d_after_head_merge_keeps_a_reshape(tmp_path):
    # x holds [batch, seq, heads, head_dim]: the rows are its first two dims
    g = conv1d_graph((B, S, 2, 4), 8, 4)
    feeds = {"x": randn(2, 5, 2, 4)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseLinear(), g)
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,2,4]) {\n"
        "  %unflatten/Reshape_out: f32[batch,seq,8] = Reshape(%x, %unflatten/rows)  # unflatten/Reshape\n"
        "  %unflatten_out: f32[batch,seq,4] = fuseformer::Linear(%unflatten/Reshape_out, %w, %b)"
        "  # unflatten/Linear\n"
        "  return %unflatten_out\n}")
    np.testing.assert_array_equal(g2.constants["unflatten/rows"].const.numpy(), [0, 0, 8])
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_near_miss_rows_restored_in_another_order():
    # [seq, batch, N]: a valid view of the rows, but no constant Reshape target spells it
    g = conv1d_graph((B, S, 8), 8, 4, dims=(1, 0))
    g2, _, ctx = apply(FuseLinear(), g)
    ops = [n.op for n in g2.nodes]
    assert Op.Linear in ops and ops.count(Op.Reshape) == 2
    assert ("Linear+rows at node unflatten: x %x[batch,seq,8] does not have the result's leading dims "
            "[seq,batch] as its own") in ctx.report.format()


def test_rows_restored_to_other_static_dims(tmp_path):
    # [6, 8] rows viewed as [2, 3, N]: a constant target says so
    g = Graph("g")
    x = g.add_input("x", F32, (3, 2, 8))
    flat = node(g, Op.Reshape, [x, const(g, [-1, 8], "rows", np.int64)], "flatten")
    y = node(g, Op.Gemm, [flat, const(g, randn(8, 4), "w")], "gemm")
    g.outputs.append(node(g, Op.Reshape, [y, const(g, [2, 3, 4], "odd", np.int64)], "unflatten"))
    feeds = {"x": randn(3, 2, 8)}
    before = run(g, feeds)
    g2, _, _ = apply(FuseLinear(), g)
    assert [n.op for n in g2.nodes] == [Op.Reshape, Op.Linear]
    np.testing.assert_array_equal(g2.nodes[0].inputs[1].const.numpy(), [2, 3, 8])
    assert_same_numbers(before, g2, feeds, tmp_path)


# ---- 5-6. epilogues --------------------------------------------------------------------
def mlp_graph(act):
    """r + act(x @ W + b)"""
    g = Graph("g")
    x, r = g.add_input("x", F32, (B, S, 8)), g.add_input("r", F32, (B, S, 4))
    y = node(g, Op.Add, [node(g, Op.MatMul, [x, const(g, randn(8, 4), "w")], "mm"), const(g, randn(4), "b")],
             "bias")
    if act == "silu":
        y = node(g, Op.Mul, [y, node(g, Op.Sigmoid, [y], "sigmoid")], "act")
    elif act is not None:
        op, attrs = {"relu": (Op.Relu, None), "sigmoid": (Op.Sigmoid, None), "tanh": (Op.Tanh, None),
                     "gelu": (Op.Gelu, None), "gelu_tanh": (Op.Gelu, GeluAttrs(approximate="tanh"))}[act]
        y = node(g, op, [y], "act", attrs)
    g.outputs.append(node(g, Op.Add, [r, y], "residual"))
    return g


MLP_FEEDS = {"x": randn(2, 5, 8), "r": randn(2, 5, 4)}


def test_activation_and_residual_epilogues(tmp_path):
    g = mlp_graph("gelu")
    before = run(g, MLP_FEEDS)
    g2, ctx = fuse_all(g)
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8], %r: f32[batch,seq,4]) {\n"
        "  %residual_out: f32[batch,seq,4] = fuseformer::Linear(%x, %w, %b, %r) {activation='gelu'}"
        "  # residual/Linear\n"
        "  return %residual_out\n}")
    assert ctx.report.fired["Linear+activation"] == 1 and ctx.report.fired["Linear+residual"] == 1
    assert_same_numbers(before, g2, MLP_FEEDS, tmp_path)


@pytest.mark.parametrize("act", [None, "relu", "sigmoid", "tanh", "gelu_tanh", "silu"])
def test_every_activation(act, tmp_path):
    g = mlp_graph(act)
    before = run(g, MLP_FEEDS)
    g2, ctx = fuse_all(g)
    assert [n.op for n in g2.nodes] == [Op.Linear]
    assert g2.nodes[0].attrs.activation == (act or "none")
    assert [v.name for v in g2.nodes[0].inputs] == ["x", "w", "b", "r"]
    assert ctx.report.format().count("not fused") == 0
    assert_same_numbers(before, g2, MLP_FEEDS, tmp_path)


def test_residual_without_bias(tmp_path):
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    g.outputs.append(node(g, Op.Add, [x, node(g, Op.MatMul, [x, const(g, randn(8, 8), "w")], "mm")], "add"))
    feeds = {"x": randn(2, 5, 8)}
    before = run(g, feeds)
    g2, ctx = fuse_all(g)
    assert body(g2).splitlines()[1] == (
        "  %add_out: f32[batch,seq,8] = fuseformer::Linear(%x, %w, _, %x)  # add/Linear")
    assert ctx.report.format().count("not fused") == 0  # the Add is no bias: not a near miss
    assert_same_numbers(before, g2, feeds, tmp_path)


def test_near_miss_residual_that_broadcasts_the_output():
    g = Graph("g")
    x, r = g.add_input("x", F32, (1, S, 8)), g.add_input("r", F32, (B, S, 4))
    g.outputs.append(node(g, Op.Add, [node(g, Op.MatMul, [x, const(g, randn(8, 4), "w")], "mm"), r], "add"))
    g2, ctx = fuse_all(g)
    assert [n.op for n in g2.nodes] == [Op.Linear, Op.Add]
    assert ("Linear+residual at node add: the residual %r[batch,seq,4] broadcasts the Linear's "
            "output [1,seq,4] to [batch,seq,4]") in ctx.report.format()


def test_near_miss_activation_of_a_linear_used_twice():
    g = mlp_graph(None)
    g.outputs.append(node(g, Op.Relu, [g.find_node("bias").output], "relu"))
    g2, ctx = fuse_all(g)
    assert "Linear+activation at node relu" in ctx.report.format()
    assert "also used by residual" in ctx.report.format()


# ---- near misses of the product itself ------------------------------------------------
def test_near_miss_gemm_trans_a():
    g = Graph("g")
    a = g.add_input("a", F32, (8, S))
    g.outputs.append(node(g, Op.Gemm, [a, const(g, randn(8, 4), "w")], "gemm", GemmAttrs(transA=1)))
    _, modified, ctx = apply(FuseLinear(), g)
    assert not modified
    assert "Linear at node gemm: transA=1: the rows of the input are its columns" in ctx.report.format()


def test_near_miss_batched_weight():
    g = Graph("g")
    x = g.add_input("x", F32, (2, S, 8))
    g.outputs.append(node(g, Op.MatMul, [x, const(g, randn(2, 8, 4), "w")], "mm"))
    _, modified, ctx = apply(FuseLinear(), g)
    assert not modified
    assert "Linear at node mm: the weight %w is 3-D; Linear takes a 2-D [K, N] weight" in ctx.report.format()


def test_activation_products_are_not_reported():
    # q @ k^T: no constant weight, so not a Linear and no near miss either
    g = Graph("g")
    q, k = g.add_input("q", F32, (B, S, 8)), g.add_input("kt", F32, (B, 8, S))
    g.outputs.append(node(g, Op.MatMul, [q, k], "qk"))
    _, modified, ctx = apply(FuseLinear(), g)
    assert not modified and ctx.report.format() == ""


# ---- the zoo ---------------------------------------------------------------------------
# the constant-weight products of each model: 6 per transformer layer (4 attention + 2 MLP,
# LLaMA 7 with its gate), BERT-family poolers, the CNNs' classifier head
LINEARS = {"bert": 13, "gpt2": 8, "llama": 14, "vit": 13, "minilm": 37, "paraphrase_minilm": 18,
           "cnn": 1, "efficientnet_lite0": 1, "deit": 13, "levit": 22, "slab_vit": 9}


def _constant_products(graph) -> list[str]:
    return [n.name for n in graph.nodes if n.op in (Op.MatMul, Op.Gemm)
            and n.inputs[1].const is not None and len(n.inputs[1].const.shape) == 2]


@pytest.mark.parametrize("name,exporter,opset", ZOO, ids=ZOO_IDS)
def test_zoo_every_constant_weight_product_is_a_linear(name, exporter, opset):
    o = optimized(name, exporter, opset)
    report = o.ctx.report.format()
    assert _constant_products(o.graph) == [], report
    assert o.count(Op.Linear) == LINEARS[name], report
    if name in TRANSFORMERS:
        # each layer's two residual Adds went into the projections before them
        residuals = [n for n in o.nodes(Op.Linear) if n.input(3) is not None]
        assert len(residuals) == 2 * TRANSFORMERS[name], report
    for kind in ("Linear", "Linear+bias", "Linear+rows", "Linear+activation", "Linear+residual"):
        assert not o.ctx.report.missed.get(kind), report
    # the whole default pipeline, checked here once per model for all the fusion tests
    o.assert_same_outputs()
