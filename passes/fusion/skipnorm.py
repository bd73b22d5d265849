"""Skip-norm fusion: the residual Add that feeds a norm, kept as the norm's second output.

    1. LayerNormalization(a + b, gamma, beta)  ->  y, s = SkipLayerNorm(a, b, gamma, beta)
    2. RMSNorm(a + b, gamma)                   ->  y, s = SkipRMSNorm(a, b, gamma)

over the last axis. s = a + b replaces the Add's other uses: in a Pre-LN
stream the sum is the next block's residual, so one kernel reads a and b once
and writes both the normalized y and the sum.

This runs after fuse-linear-residual (see linear_epilogue.py for the count of
memory passes): an Add with a Linear operand has become that Linear's residual
by now, and what is left here is the embedding sums (token + position) and
every residual Add when fuse-linear-residual is disabled.
"""
from __future__ import annotations

import numpy as np

from ...ir.op import Op
from ..pattern import Match, Rule, RewriteBuilder
from .common import known_shape
from .fusion_pass import FusionPass


def target_layernorm(op, a, b, gamma):
    return op.LayerNormalization(op.Add(a, b, _name="add"), gamma)


def target_rmsnorm(op, a, b):
    return op.RMSNorm(op.Add(a, b, _name="add"))


def check(m: Match) -> str | None:
    norm, add = m.root, m.nodes["add"]
    s = add.output
    if s.rank is None or not known_shape(s.shape):
        return "the sum's shape is unknown"
    if norm.attrs.axis % s.rank != s.rank - 1:
        return f"normalizes from axis {norm.attrs.axis}, not over the last axis only"
    if any(v.uses or v in norm.graph.outputs for v in norm.outputs[1:]):
        return "the LayerNormalization's mean / inverse std-dev outputs are used"
    if norm.op is Op.LayerNormalization and norm.attrs.stash_type != 1:
        return f"stash_type={norm.attrs.stash_type}: statistics not in float32"
    if norm.op is Op.RMSNorm:
        if norm.input(2) is not None:
            return "the RMSNorm adds a bias, SkipRMSNorm has none"
        if norm.input(1) is None and not isinstance(s.shape[-1], int):
            return "the RMSNorm has no weight and the hidden size is unknown"
    if m["a"].dtype is not m["b"].dtype:
        return "the Add's operands differ in dtype"
    if any(v is not None and v.producer is not None for v in norm.inputs[1:]):
        # the fused node goes where the Add was, before any node that computes them
        return "the norm's scale or bias is computed in the graph, not a constant or input"
    return None


def replacement(op, m: Match):
    norm, add = m.root, m.nodes["add"]
    graph, s = op.graph, add.output
    a, b = m["a"], m["b"]
    if a.shape != s.shape and b.shape == s.shape:
        a, b = b, a  # x is the full-size operand; the skip may broadcast
    # insert where the Add was: its other users may come before the norm
    at = RewriteBuilder(graph, add)
    name = f"{norm.name}/{'SkipLayerNorm' if norm.op is Op.LayerNormalization else 'SkipRMSNorm'}"
    if norm.op is Op.LayerNormalization:
        inputs = [a, b, norm.inputs[1]] + ([norm.input(2)] if norm.input(2) is not None else [])
        y, total = at.SkipLayerNorm(*inputs, epsilon=norm.attrs.epsilon, _outputs=2, _name=name)
    else:
        gamma = norm.input(1)
        if gamma is None:
            gamma = op.const(np.ones(s.shape[-1], s.dtype.numpy), "ones")
        y, total = at.SkipRMSNorm(a, b, gamma, epsilon=norm.attrs.epsilon, _outputs=2, _name=name)
    total.shape = s.shape
    graph.replace_all_uses_with(s, total)  # the residual stream reads the sum output now
    return y


# one_use=False: the Add's other uses are the point; the replacement moves them to s
RULES = [
    Rule("SkipLayerNorm", target_layernorm, replacement, check, one_use=False),
    Rule("SkipRMSNorm", target_rmsnorm, replacement, check, one_use=False),
]


class FuseSkipNorm(FusionPass):
    """Norm(a + b)  ->  SkipLayerNorm / SkipRMSNorm(a, b, ...) with outputs (y, a + b)"""

    name = "fuse-skip-norm"

    def rules(self) -> list[Rule]:
        return RULES
