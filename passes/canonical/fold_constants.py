"""Constant folding, with a size cap so weights are not duplicated."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.op import Op
from ...ir.reference import lookup
from ..base import Pass, PassResult

# a folded result larger than this is only kept when the constants it came from die with it
FOLD_LIMIT_BYTES = 1 << 20
_NEVER = frozenset({Op.Dropout})


class FoldConstants(Pass):
    """Evaluate nodes whose inputs are all constant with the reference interpreter.

    op(c1, ..., cn) -> constant(op(c1, ..., cn))
    Skipped when the result exceeds 1 MiB and an input constant has other users
    (folding would then keep two copies of a weight), or when the op is Dropout.
    Shape of a statically shaped value folds too: Shape(x: [2,3]) -> [2,3].
    """

    name = "fold-constants"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = False
        for node in list(graph.nodes):
            if node.op in _NEVER or node.graph is not graph:
                continue
            values = self._fold(node)
            if values is None:
                continue
            for out, arr in zip(node.outputs, values):
                arr = np.asarray(arr).astype(out.dtype.numpy, copy=False)
                const = graph.add_constant(np.require(arr, requirements="C"), f"{out.name}_folded")
                graph.replace_all_uses_with(out, const)
            graph.erase(node)
            modified = True
        if modified:
            graph.remove_unused_constants()
        return PassResult(graph, modified)

    @staticmethod
    def _fold(node):
        if node.op is Op.Shape:
            shape = node.inputs[0].shape
            if shape is not None and all(isinstance(d, int) for d in shape):
                a = node.attrs
                return [np.array(shape[slice(a.start, a.end)], np.int64)]
            return None
        inputs = [v for v in node.inputs if v is not None]
        if not inputs or any(v.const is None for v in inputs):
            return None
        impl = lookup(node.op)
        if impl is None:
            return None
        args = [None if v is None else np.asarray(v.const.numpy()) for v in node.inputs]
        try:
            result = impl(node.attrs, args, len(node.outputs))
        except Exception:
            return None  # the interpreter reports it, with the node's name, when it runs
        results = list(result) if isinstance(result, tuple) else [result]
        if sum(np.asarray(r).nbytes for r in results) > FOLD_LIMIT_BYTES:
            big_inputs = [v for v in inputs if v.const.nbytes > FOLD_LIMIT_BYTES // 16]
            if any(len(v.users()) > 1 for v in big_inputs):
                return None
        return results

