"""Symbolic evaluation of small int64 vectors: the shape arithmetic exporters emit.

``symbolic_value(v)`` gives the elements of v when its length is known: each
an int, a Sym, or None where that element is unknown. They follow from shapes
and constants through Shape, Gather, Slice, Concat, Unsqueeze, Squeeze, Cast
and integer arithmetic.
"""
from __future__ import annotations

import numpy as np

from .op import Op
from .shape import Dim
from .value import Value

SymVec = tuple[Dim, ...]
_MAX_LEN = 16


def symbolic_value(v: Value | None, memo: dict[int, SymVec | None] | None = None) -> SymVec | None:
    """The elements of a small int64 vector (or scalar, as a 1-tuple) when known, else None.

    ``memo`` caches results across calls on one graph state (pass a dict).
    """
    if v is None:
        return None
    if memo is None:
        memo = {}
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
    if node is None or v.shape is None or len(v.shape) > 1:
        return None  # only scalars and vectors: a 2-D tensor is no list of dims
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
        if not all(isinstance(i, int) and -len(data) <= i < len(data) for i in idx):
            return None
        return tuple(data[i] for i in idx)
    if op is Op.Slice:
        data = symbolic_value(ins[0], memo)
        args = [symbolic_value(x, memo) if x is not None else None for x in ins[1:5]]
        starts, ends, axes, steps = (args + [None] * 4)[:4]
        if data is None or starts is None or ends is None or not all(isinstance(x, int) for x in starts + ends):
            return None
        if axes is not None and tuple(axes) not in ((0,), (-1,)):
            return None
        step = steps[0] if steps else 1
        if step != 1:
            return None  # Python's clamping for negative steps is not ONNX's
        return tuple(data[slice(starts[0], ends[0], 1)])
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
            if x is None or y is None:
                out.append(None)
                continue
            if not (isinstance(x, int) and isinstance(y, int)):
                if op is Op.Mul and (x == 1 or y == 1):
                    out.append(y if x == 1 else x)
                    continue
                if op is Op.Div and y == 1:
                    out.append(x)
                    continue
                out.append(None)
                continue
            out.append({Op.Add: x + y, Op.Sub: x - y, Op.Mul: x * y,
                        Op.Div: int(x / y) if y else None}[op])
        return tuple(out)
    return None
