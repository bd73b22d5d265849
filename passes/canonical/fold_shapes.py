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
from ...ir.shape import Dim, Sym
from ...ir.value import Value
from ..base import Pass, PassResult

SymVec = tuple[Dim, ...]
_MAX_LEN = 16


def symbolic_value(v: Value | None, memo: dict[int, SymVec | None]) -> SymVec | None:
    """The elements of a small int64 vector (or scalar, as a 1-tuple) when known, else None."""
    if v is None:
        return None
    if id(v) in memo:
        return memo[id(v)]
    memo[id(v)] = None
    result = _evaluate(v, memo)
    if result is not None and len(result) > _MAX_LEN:
        result = None
    memo[id(v)] = result
    return result


def _evaluate(v: Value, memo) -> SymVec | None:
    if v.const is not None:
        if v.dtype.numpy.kind not in "iu" or v.const.size > _MAX_LEN or len(v.const.shape) > 1:
            return None
        return tuple(int(x) for x in np.asarray(v.const.numpy()).reshape(-1))
    node = v.producer
    if node is None:
        return None
    op, ins = node.op, node.inputs
    if op is Op.Shape:
        shape = ins[0].shape
        if shape is None:
            return None
        return tuple(shape[slice(node.attrs.start, node.attrs.end)])
    if op in (Op.Unsqueeze, Op.Squeeze, Op.Identity, Op.Reshape) or \
            (op is Op.Cast and v.dtype.numpy.kind in "iu"):
        # rank changes of a scalar or vector do not change its elements
        if op is Op.Reshape and (v.shape is None or len(v.shape) > 1):
            return None
        return symbolic_value(ins[0], memo)
    if op is Op.Concat:
        parts = [symbolic_value(x, memo) for x in ins]
        if any(p is None for p in parts):
            return None
        return tuple(d for p in parts for d in p)
    if op is Op.Gather:
        data, idx = symbolic_value(ins[0], memo), symbolic_value(ins[1], memo)
        if data is None or idx is None or node.attrs.axis != 0:
            return None
        try:
            return tuple(data[i] for i in idx)
        except (IndexError, TypeError):
            return None
    if op is Op.Slice:
        data = symbolic_value(ins[0], memo)
        args = [symbolic_value(x, memo) if x is not None else None for x in ins[1:5]]
        starts, ends, axes, steps = (args + [None] * 4)[:4]
        if data is None or starts is None or ends is None or not all(isinstance(x, int) for x in starts + ends):
            return None
        if axes is not None and tuple(axes) not in ((0,), (-1,)):
            return None
        step = steps[0] if steps else 1
        if not isinstance(step, int):
            return None
        return tuple(data[slice(starts[0], ends[0], step)])
    if op in (Op.Add, Op.Sub, Op.Mul, Op.Div):
        a, b = symbolic_value(ins[0], memo), symbolic_value(ins[1], memo)
        if a is None or b is None:
            return None
        if len(a) == 1 and len(b) > 1:
            a = a * len(b)
        if len(b) == 1 and len(a) > 1:
            b = b * len(a)
        if len(a) != len(b):
            return None
        out = []
        for x, y in zip(a, b):
            if not (isinstance(x, int) and isinstance(y, int)):
                if op is Op.Mul and (x == 1 or y == 1):
                    out.append(y if x == 1 else x)
                    continue
                if op is Op.Div and y == 1:
                    out.append(x)
                    continue
                return None
            out.append({Op.Add: x + y, Op.Sub: x - y, Op.Mul: x * y,
                        Op.Div: int(x / y) if y else None}[op])
        return None if None in out else tuple(out)
    return None


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
            elif i < len(in_shape) and in_shape[i] == d:
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
