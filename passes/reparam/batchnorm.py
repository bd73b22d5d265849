"""Inference BatchNormalization is a per-channel affine map."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.op import Op
from ..base import Pass, PassResult
from .affine import shaped_for_axis


class BatchNormToAffine(Pass):
    """BatchNormalization at inference as its affine map, for the folding passes to absorb.

    BN(x) = gamma (x - mean) / sqrt(var + eps) + beta = a x + c over channel axis 1, with
        a = gamma / sqrt(var + eps),  c = beta - a * mean
    rewritten as Add(Mul(x, a), c) with a, c shaped [C, 1, ..., 1].
    Skipped (reported) when the statistics are not constants or training_mode is set.
    """

    name = "batchnorm-to-affine"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = False
        for node in list(graph.nodes):
            if node.op is not Op.BatchNormalization or node.graph is not graph:
                continue
            reason = self._reason(node)
            if reason:
                if ctx is not None:
                    ctx.report.record_miss("BatchNorm -> affine", node.name, reason)
                continue
            x = node.inputs[0]
            gamma, beta, mean, var = (np.asarray(v.const.numpy(), np.float64) for v in node.inputs[1:5])
            a = gamma / np.sqrt(var + node.attrs.epsilon)
            c = beta - a * mean
            dtype = x.dtype.numpy
            rank = x.rank
            with graph.inserting_before(node):
                av = graph.add_constant(shaped_for_axis(a.astype(dtype), rank, 1), f"{node.name}/scale")
                cv = graph.add_constant(shaped_for_axis(c.astype(dtype), rank, 1), f"{node.name}/shift")
                mul = graph.make_node(Op.Mul, [x, av], name=f"{node.name}/mul").output
                add = graph.make_node(Op.Add, [mul, cv], name=f"{node.name}/add").output
            graph.replace_all_uses_with(node.outputs[0], add)
            graph.erase(node)
            modified = True
            if ctx is not None:
                ctx.report.record_fired("BatchNorm -> affine")
        return PassResult(graph, modified)

    @staticmethod
    def _reason(node) -> str | None:
        if node.attrs.training_mode or len(node.outputs) > 1 and any(v.uses for v in node.outputs[1:]):
            return "training mode (running statistics are outputs)"
        if any(v is None or v.const is None for v in node.inputs[1:5]):
            return "scale, bias, mean or variance is not a constant"
        if node.inputs[0].rank is None or node.inputs[0].rank < 2:
            return "input rank unknown"
        return None
