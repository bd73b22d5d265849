"""Canonicalization passes: structural before/after and numerical checks for each."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import CastAttrs, ConcatAttrs, GatherAttrs, TransposeAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes.canonical.cse import EliminateCommonSubexpressions
from fuseformer.passes.canonical.dce import EliminateDeadCode
from fuseformer.passes.canonical import fold_constants
from fuseformer.passes.canonical.fold_constants import FoldConstants
from fuseformer.passes.canonical.fold_shapes import FoldShapeComputations
from fuseformer.passes.canonical.simplify import RemoveNoOps, SimplifyLayoutChains

from .checks import apply, assert_same_numbers, body

B, S = Sym("batch"), Sym("seq")
RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 8)).astype(np.float32)


def new_graph():
    g = Graph("g")
    return g, g.add_input("x", DType.FLOAT, (B, S, 8))


def test_dce_removes_dead_chain_and_constants():
    g, x = new_graph()
    w = g.add_constant(np.ones(8, np.float32), "w")
    dead = g.make_node(Op.Mul, [x, w], name="dead").output
    g.make_node(Op.Neg, [dead], name="dead2")
    g.outputs.append(g.make_node(Op.Relu, [x], name="relu").output)
    g2, modified, _ = apply(EliminateDeadCode(), g, dce=False)
    assert modified
    assert str(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                       "  %relu_out: f32[batch,seq,8] = Relu(%x)  # relu\n"
                       "  return %relu_out\n}")


def test_cse_merges_equal_nodes_and_constants(tmp_path):
    g, x = new_graph()
    a = g.add_constant(np.float32(2.0), "a")
    b = g.add_constant(np.float32(2.0), "b")
    m1 = g.make_node(Op.Mul, [x, a], name="m1").output
    m2 = g.make_node(Op.Mul, [x, b], name="m2").output
    g.outputs.append(g.make_node(Op.Add, [m1, m2], name="add").output)
    before = run(g, {"x": X})
    g2, modified, _ = apply(EliminateCommonSubexpressions(), g)
    assert modified
    assert body(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                        "  %m1_out: f32[batch,seq,8] = Mul(%x, %a)  # m1\n"
                        "  %add_out: f32[batch,seq,8] = Add(%m1_out, %m1_out)  # add\n"
                        "  return %add_out\n}")
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


def test_fold_constants(tmp_path):
    g, x = new_graph()
    w = g.add_constant(RNG.standard_normal((8, 4)).astype(np.float32), "w")
    wt = g.make_node(Op.Transpose, [w], TransposeAttrs(perm=(1, 0)), name="wt").output
    wtt = g.make_node(Op.Transpose, [wt], TransposeAttrs(perm=(1, 0)), name="wtt").output
    g.outputs.append(g.make_node(Op.MatMul, [x, wtt], name="mm").output)
    before = run(g, {"x": X})
    g2, modified, _ = apply(FoldConstants(), g)
    assert modified
    assert [n.op for n in g2.nodes] == [Op.MatMul]
    assert g2.nodes[0].inputs[1].is_const
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


def test_fold_constants_keeps_shared_large_weights(monkeypatch):
    monkeypatch.setattr(fold_constants, "FOLD_LIMIT_BYTES", 64)
    g, x = new_graph()
    w = g.add_constant(RNG.standard_normal((8, 8)).astype(np.float32), "w")
    wt = g.make_node(Op.Transpose, [w], TransposeAttrs(perm=(1, 0)), name="wt").output
    y1 = g.make_node(Op.MatMul, [x, wt], name="mm1").output
    y2 = g.make_node(Op.MatMul, [x, w], name="mm2").output
    g.outputs.append(g.make_node(Op.Add, [y1, y2], name="add").output)
    g2, modified, _ = apply(FoldConstants(), g)
    assert not modified  # folding wt would keep two copies of w
    assert any(n.op is Op.Transpose for n in g2.nodes)


def _shape_chain(g, x, tail):
    """Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(Shape(x), 1)), tail))."""
    shape = g.make_node(Op.Shape, [x], name="shape").output
    parts = []
    for i in range(2):
        idx = g.add_constant(np.array(i, np.int64), f"i{i}")
        d = g.make_node(Op.Gather, [shape, idx], GatherAttrs(axis=0), name=f"gather{i}").output
        ax = g.add_constant(np.array([0], np.int64), f"ax{i}")
        parts.append(g.make_node(Op.Unsqueeze, [d, ax], name=f"unsq{i}").output)
    parts.append(g.add_constant(np.array(tail, np.int64), "tail"))
    target = g.make_node(Op.Concat, parts, ConcatAttrs(axis=0), name="concat").output
    return g.make_node(Op.Reshape, [x, target], name="reshape").output


def test_fold_shapes_symbolic_reshape(tmp_path):
    g, x = new_graph()
    y = _shape_chain(g, x, [2, 4])
    g.outputs.append(y)
    assert y.shape == (B, S, 2, 4)  # inference traced the chain
    before = run(g, {"x": X})
    g2, modified, _ = apply(FoldShapeComputations(), g)
    assert modified
    assert body(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                        "  %reshape_out: f32[batch,seq,2,4] = Reshape(%x, %reshape_shape)  # reshape\n"
                        "  return %reshape_out\n}")
    assert np.asarray(g2.constants["reshape_shape"].const.numpy()).tolist() == [0, 0, 2, 4]
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


def test_fold_shapes_static():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (2, 3, 8))
    g.outputs.append(_shape_chain(g, x, [-1]))
    g2, modified, _ = apply(FoldShapeComputations(), g)
    assert modified and [n.op for n in g2.nodes] == [Op.Reshape]
    assert np.asarray(g2.nodes[0].inputs[1].const.numpy()).tolist() in ([0, 0, -1], [2, 3, -1])


def test_remove_noops(tmp_path):
    g, x = new_graph()
    a = g.make_node(Op.Identity, [x], name="id").output
    b = g.make_node(Op.Cast, [a], CastAttrs(to=DType.FLOAT.value), name="cast").output
    c = g.make_node(Op.Dropout, [b], name="drop").output
    d = g.make_node(Op.Transpose, [c], TransposeAttrs(perm=(0, 1, 2)), name="tr").output
    g.outputs.append(g.make_node(Op.Relu, [d], name="relu").output)
    before = run(g, {"x": X})
    g2, modified, _ = apply(RemoveNoOps(), g)
    assert modified
    assert body(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                        "  %relu_out: f32[batch,seq,8] = Relu(%x)  # relu\n"
                        "  return %relu_out\n}")
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


def test_remove_noops_keeps_output_names():
    g, x = new_graph()
    r = g.make_node(Op.Relu, [x], name="relu").output
    g.outputs.append(g.make_node(Op.Identity, [r], name="out", output_names=["logits"]).output)
    g2, modified, _ = apply(RemoveNoOps(), g)
    assert [v.name for v in g2.outputs] == ["logits"]
    assert [n.op for n in g2.nodes] == [Op.Relu]


def test_remove_noops_keeps_identity_of_input():
    g, x = new_graph()
    g.outputs.append(g.make_node(Op.Identity, [x], name="out", output_names=["y"]).output)
    g2, modified, _ = apply(RemoveNoOps(), g)
    assert not modified and [v.name for v in g2.outputs] == ["y"]


def test_simplify_layout(tmp_path):
    g, x = new_graph()
    t1 = g.make_node(Op.Transpose, [x], TransposeAttrs(perm=(0, 2, 1)), name="t1").output
    t2 = g.make_node(Op.Transpose, [t1], TransposeAttrs(perm=(1, 0, 2)), name="t2").output
    ax = g.add_constant(np.array([1], np.int64), "ax")
    u = g.make_node(Op.Unsqueeze, [t2, ax], name="unsq").output
    sq = g.make_node(Op.Squeeze, [u, ax], name="sq").output
    g.outputs.append(g.make_node(Op.Relu, [sq], name="relu").output)
    before = run(g, {"x": X})
    g2, modified, _ = apply(SimplifyLayoutChains(), g)
    assert modified
    assert body(g2) == ("graph g(%x: f32[batch,seq,8]) {\n"
                        "  %t2_out: f32[8,batch,seq] = Transpose(%x) {perm=[2,0,1]}  # t2\n"
                        "  %relu_out: f32[8,batch,seq] = Relu(%t2_out)  # relu\n"
                        "  return %relu_out\n}")
    assert_same_numbers(before, g2, {"x": X}, tmp_path)


@pytest.mark.parametrize("perm", [(0, 2, 1)])
def test_transpose_pair_cancels(perm):
    g, x = new_graph()
    t1 = g.make_node(Op.Transpose, [x], TransposeAttrs(perm=perm), name="t1").output
    t2 = g.make_node(Op.Transpose, [t1], TransposeAttrs(perm=perm), name="t2").output
    g.outputs.append(g.make_node(Op.Relu, [t2], name="relu").output)
    g2, modified, _ = apply(SimplifyLayoutChains(), g)
    assert [n.op for n in g2.nodes] == [Op.Relu] and g2.nodes[0].inputs[0] is g2.inputs[0]
