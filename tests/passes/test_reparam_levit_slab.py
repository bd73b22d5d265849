"""BatchNorm inside transformers, through the default pipeline: LeViT and a SLAB (RepBN) ViT.

LeViT follows every Linear (no bias) with BatchNorm1d over x.flatten(0, 1), so the export
puts a Flatten (or Reshape) between the Linear and the BatchNormalization, and a Reshape
back after it. SLAB replaces every LayerNorm by RepBN(x) = BN(x) + alpha x, computed on
x.transpose(1, 2): the per-channel affine sits in [B, C, N] layout, a Transpose away from
the next Linear (and a Reshape away from the patch-embedding Conv).

Both are exact at inference: BN is a per-channel affine, and a per-channel affine next to a
linear layer (across layout-only ops that keep the channel axis) is absorbed by its
weights. The first test checks what the pipeline must never get wrong (no BN left, same
numbers); the second counts the affine Mul/Adds the folding left behind.
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir.interpreter import run
from fuseformer.ir.op import Op
from fuseformer.passes import PassContext, VerifyEachPass, optimize_graph

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import FP32, assert_same_numbers

COMBOS = [c for c in ZOO if c[0] in ("levit", "slab_vit")]
IDS = [f"{n}-{e}-{o}" for n, e, o in COMBOS]

# levit: 4 stem Conv+BatchNorm2d and 22 Linear+BatchNorm1d; slab_vit: 6 RepBN.
N_BN = {"levit": 26, "slab_vit": 6}

_LINEAR = (Op.Conv, Op.Linear, Op.Gemm, Op.MatMul)
# Ops that move elements without mixing channels: a per-channel affine can cross them as
# long as the channel axis is kept (what a fold through them has to check).
_LAYOUT = (Op.Reshape, Op.Flatten, Op.Transpose, Op.Squeeze, Op.Unsqueeze)


def _affine_constant(node):
    """The constant operand of a float Mul/Add with one variable operand, else None."""
    if node.op not in (Op.Mul, Op.Add) or not node.outputs[0].dtype.is_float:
        return None
    consts = [v for v in node.inputs if v.const is not None]
    return consts[0] if len(consts) == 1 else None


def affine_leftovers(graph):
    """Float Mul/Add by a constant (BN scale and shift, RepBN's alpha) still in the graph."""
    return [n for n in graph.nodes if _affine_constant(n) is not None]


def _path(node) -> str:
    """Where an affine node sits, in dataflow order from the nearest producer that is neither a
    layout op nor another affine node to such consumers, e.g.
    'Linear(fc) -> Flatten -> [Mul fc/bn/mul] -> Add -> Reshape -> Add(residual)'."""
    up, v = [], next(v for v in node.inputs if v.const is None)
    while v.producer is not None and (v.producer.op in _LAYOUT or _affine_constant(v.producer) is not None):
        up.append(v.producer.op.name)
        v = next(i for i in v.producer.inputs if i.const is None)
    head = f"{v.producer.op.name}({v.producer.name})" if v.producer is not None else "input"
    down, out = [], node.outputs[0]
    while len(out.users()) == 1 and (out.users()[0].op in _LAYOUT or _affine_constant(out.users()[0])):
        down.append(out.users()[0].op.name)
        out = out.users()[0].outputs[0]
    tail = ", ".join(f"{u.op.name}({u.name})" for u in out.users()) or "output"
    return " -> ".join([head, *up[::-1], f"[{node.op.name} {node.name}]", *down, tail])


def _optimize(combo):
    graph = load_onnx(zoo_model(*combo))
    ctx = PassContext(instruments=[VerifyEachPass()])
    return graph, optimize_graph(graph.clone(), ctx), ctx


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_batchnorm_gone_and_numbers_equal(combo, tmp_path):
    original, g, ctx = _optimize(combo)
    assert original.op_counts()["BatchNormalization"] == N_BN[combo[0]]
    assert "BatchNormalization" not in g.op_counts()
    assert ctx.report.fired["BatchNorm -> affine"] == N_BN[combo[0]]
    # Whatever stays unfolded is at least not directly next to a layer that could take it:
    # the folding does fire on every affine that touches a linear layer (LeViT's 4 stem
    # Conv+BN are folded).
    for n in affine_leftovers(g):
        x, users = next(v for v in n.inputs if v.const is None), n.outputs[0].users()
        assert x.producer is None or x.producer.op not in _LINEAR or len(x.users()) > 1, _path(n)
        assert not (len(users) == 1 and users[0].op in _LINEAR and users[0].inputs[0] is n.outputs[0]), _path(n)
    feeds = zoo_inputs(combo[0])
    assert_same_numbers(run(original, feeds), g, feeds, tmp_path)
    # and at another batch size (the folded constants must not pin the batch axis)
    other = zoo_inputs(combo[0], seed=1, batch=3)
    want, got = run(original, other), run(g, other)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], **FP32, err_msg=k)


# What may remain once every foldable affine is folded:
#   levit: nothing; each of the 22 BatchNorm1d follows a bias-free Linear whose output
#          only goes through Flatten(axis=2)/Reshape (last axis = channels kept) to the BN;
#          it becomes the Linear's scaled weight and a bias.
#   slab_vit: 0. The final RepBN reads the residual stream (written by a Linear with a
#          residual input, which cannot absorb a scale), so it moves forward instead:
#          across the Transpose back to [B, N, C] and the ReduceMean over tokens into the
#          head. The patch-embedding RepBN folds into the Conv (across the Reshape that
#          flattens H, W), each block's RepBN into the next qkv / fc1 Linear's input side
#          (across the Transpose back to [B, N, C]).
EXPECTED_LEFTOVERS = {"levit": 0, "slab_vit": 0}


@pytest.mark.parametrize("combo", COMBOS, ids=IDS)
def test_every_foldable_affine_is_folded(combo):
    _, g, _ = _optimize(combo)
    left = affine_leftovers(g)
    assert len(left) == EXPECTED_LEFTOVERS[combo[0]], "\n".join(_path(n) for n in left)
