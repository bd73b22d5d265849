"""Shape-computation folding over symbolic dims.

Exporters compute reshape targets at run time: Shape(x) -> Gather(i) ->
Unsqueeze -> Concat -> Reshape. Here every small int64 vector is evaluated
symbolically (each element an int or a Sym), and a Reshape whose target is
thereby known becomes a Reshape by a constant (0 = keep this dim, -1 = the
single remaining unknown), so the chain dies and fusion patterns see a plain
Reshape. Fully known vectors become constants wherever they are read.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.op import Op
from ...ir.symbolic import SymVec, symbolic_value
from ..base import Pass, PassResult

class FoldShapeComputations(Pass):
    """Turn runtime shape arithmetic into constants.

    1. v = f(Shape(x), consts) with every element known  ->  v = constant
    2. Reshape(x, t) with t = [d0, ..., dn] known up to symbols:
         ti = 0 where ti is x's dim i (same symbol), -1 for one remaining unknown
         ->  Reshape(x, constant)
    3. Expand(x, t) with t known and equal to x's shape  ->  x
    """

    name = "fold-shapes"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        memo: dict[int, SymVec | None] = {}
        modified = False
        for node in list(graph.nodes):
            if node.graph is not graph:
                continue
            if node.op is Op.Reshape and node.inputs[1].const is None:
                modified |= self._reshape(graph, node, memo)
            elif node.op is Op.Expand:
                modified |= self._expand(graph, node, memo)
            elif node.outputs[0].dtype is not None and node.outputs[0].dtype.numpy.kind in "iu" \
                    and node.op not in (Op.Reshape, Op.Gather) or node.op is Op.Shape:
                modified |= self._constant(graph, node, memo)
        return PassResult(graph, modified)

    @staticmethod
    def _constant(graph: Graph, node, memo) -> bool:
        v = node.outputs[0]
        if len(node.outputs) != 1 or v.shape is None or len(v.shape) > 1:
            return False
        vals = symbolic_value(v, memo)
        if vals is None or not all(isinstance(d, int) for d in vals) or not v.uses:
            return False
        arr = np.array(vals, dtype=v.dtype.numpy).reshape([len(vals)] if len(v.shape) == 1 else [])
        graph.replace_all_uses_with(v, graph.add_constant(arr, f"{v.name}_folded"))
        return True

    @staticmethod
    def _reshape(graph: Graph, node, memo) -> bool:
        x, target = node.inputs[0], symbolic_value(node.inputs[1], memo)
        if target is None or node.attrs.allowzero:
            return False
        in_shape = x.shape or ()
        out: list[int] = []
        unknown = 0
        for i, d in enumerate(target):
            if isinstance(d, int):
                out.append(d)
                unknown += d == -1
            elif d is not None and i < len(in_shape) and in_shape[i] == d:
                out.append(0)
            else:
                out.append(-1)
                unknown += 1
        if unknown > 1:
            return False
        const = graph.add_constant(np.array(out, np.int64), f"{node.name}_shape")
        node.set_input(1, const)
        return True

    @staticmethod
    def _expand(graph: Graph, node, memo) -> bool:
        x, target = node.inputs[0], symbolic_value(node.inputs[1], memo)
        if target is None or x.shape is None or x.dtype is not node.outputs[0].dtype:
            return False
        if len(target) > len(x.shape):
            return False
        tail = x.shape[len(x.shape) - len(target):]
        if all(t == 1 or t == d for t, d in zip(target, tail)) and None not in x.shape:
            graph.replace_all_uses_with(node.outputs[0], x)
            return True
        return False
