"""The residual stream of a Pre-LN transformer and a proof that it is zero-mean over the hidden axis.

A stream value is read only by LayerNorms (over the last axis) and by the
residual Adds that continue the stream. ``trace_stream`` walks back from the
LayerNorm inputs through those Adds to the *writers*: layers whose outputs
enter the stream and that can be re-centred so the stream's mean over the
hidden axis is zero:

    Linear / MatMul / Gemm (constant W) : y = x W + b   -> centre W's columns and b
                                          (a Linear's residual input continues the stream)
    Conv (constant W)                   : channel axis  -> centre W over output channels and b
    Gather(table, ids)                  : embeddings    -> centre every table row
    a constant (position embedding, cls token)          -> centre it over the hidden axis
The hidden axis is followed through Transpose, Reshape/Flatten that keep it
whole, Concat on other axes, Expand, Identity and scalings by constants.
Anything else writing into the stream (a nonlinear op, a LayerNorm's own
output as in Post-LN BERT) ends the proof with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value

NORMS = (Op.LayerNormalization, Op.RMSNorm)


@dataclass
class Writer:
    """A layer whose output enters the stream; ``axis`` is the hidden axis of its output."""

    node: Node | None  # None for a constant written directly (position embedding)
    value: Value
    axis: int


@dataclass
class Stream:
    norms: list[Node] = field(default_factory=list)
    values: list[Value] = field(default_factory=list)  # every value carrying the stream's hidden axis
    writers: list[Writer] = field(default_factory=list)
    adds: list[Node] = field(default_factory=list)
    reason: str | None = None
    shape_readers: list[Node] = field(default_factory=list)
    # id(value) -> its hidden axis
    axes: dict[int, int] = field(default_factory=dict)


class _NotProven(Exception):
    pass


def trace_stream(graph: Graph) -> Stream:
    """Trace every last-axis norm's input back to its writers (all norms form one stream)."""
    s = Stream()
    norms = [n for n in graph.nodes if n.op in NORMS]
    if not norms:
        s.reason = "no LayerNorm on a residual stream"
        return s
    seen: dict[int, int] = {}
    try:
        _post_ln(norms)
        for n in norms:
            rank = n.inputs[0].rank
            if rank is None or n.attrs.axis % rank != rank - 1:
                raise _NotProven(f"{n.describe()} does not normalize over the last axis only")
            if any(o.uses or o in graph.outputs for o in n.outputs[1:]):
                raise _NotProven(f"{n.describe()}: its mean / inverse-std outputs are used")
            s.norms.append(n)
            _prove(n.inputs[0], rank - 1, s, seen, graph)
        _check_readers(s, graph)
    except _NotProven as e:
        s.reason = str(e)
    s.axes = seen
    return s


def _post_ln(norms: list[Node]) -> None:
    """Name the usual reason first: a norm's output is added straight back into the stream."""
    for n in norms:
        p = n.inputs[0].producer
        if p is None or p.op is not Op.Add:
            continue
        for x in p.inputs:
            q = x.producer
            if q is not None and (q.op in NORMS or q.op in (Op.SkipLayerNorm, Op.SkipRMSNorm) and x.index == 0):
                raise _NotProven(f"{q.describe()} writes its output into the residual stream (Post-LN): "
                                 f"a normalized value is not zero-mean")


def _prove(v: Value, axis: int, s: Stream, seen: dict[int, int], graph: Graph) -> None:
    if id(v) in seen:
        if seen[id(v)] != axis:
            raise _NotProven(f"%{v.name} is read over two different hidden axes")
        return
    seen[id(v)] = axis
    s.values.append(v)
    if v in graph.outputs:
        raise _NotProven(f"%{v.name} on the residual stream is a graph output: re-centring would change it")
    if v.const is not None:
        s.writers.append(Writer(None, v, axis))
        return
    p = v.producer
    if p is None:
        raise _NotProven(f"the stream starts at graph input %{v.name}, which cannot be re-centred")
    op = p.op
    if op is Op.Add:
        s.adds.append(p)
        for x in p.inputs:
            _prove_operand(x, v, axis, s, seen, graph)
    elif op is Op.Linear and p.input(3) is not None and axis == v.rank - 1:
        # y = x W + b + residual: a writer whose output also carries the stream along
        if p.attrs.activation != "none":
            raise _NotProven(f"{p.describe()} writes act(x W + b): not a linear map")
        _writer_weights(p, v, axis, s)
        _prove_operand(p.inputs[3], v, axis, s, seen, graph)
    elif op in (Op.Linear, Op.MatMul, Op.Gemm) and axis == v.rank - 1:
        _writer_linear(p, v, axis, s)
    elif op is Op.Conv and axis == 1:
        _writer_weights(p, v, axis, s)
    elif op is Op.Gather and p.inputs[0].const is not None and p.inputs[0].rank == 2 \
            and p.attrs.axis == 0 and axis == v.rank - 1:
        s.writers.append(Writer(p, v, axis))
    elif op in (Op.Identity, Op.Dropout):
        _prove(p.inputs[0], axis, s, seen, graph)
    elif op is Op.Transpose:
        perm = p.attrs.perm or tuple(reversed(range(v.rank)))
        _prove(p.inputs[0], perm[axis], s, seen, graph)
    elif op in (Op.Reshape, Op.Flatten):
        _prove(p.inputs[0], _reshaped_axis(p, axis), s, seen, graph)
    elif op is Op.Concat:
        if p.attrs.axis % v.rank == axis:
            raise _NotProven(f"{p.describe()} concatenates along the hidden axis")
        for x in p.inputs:
            _prove(x, axis, s, seen, graph)
    elif op is Op.Expand:
        x = p.inputs[0]
        if x.rank != v.rank or x.shape[axis] != v.shape[axis]:
            raise _NotProven(f"{p.describe()} broadcasts along the hidden axis")
        _prove(x, axis, s, seen, graph)
    elif op is Op.Mul and any(x.const is not None and x.const.size == 1 and len(x.const.shape) <= v.rank
                              for x in p.inputs) and all(x.rank == v.rank or x.const is not None for x in p.inputs):
        _prove(next(x for x in p.inputs if x.const is None or x.const.size != 1), axis, s, seen, graph)
    elif op in NORMS or (op in (Op.SkipLayerNorm, Op.SkipRMSNorm) and v.index == 0):
        raise _NotProven(f"{p.describe()} writes its output into the residual stream (Post-LN): "
                         f"a normalized value is not zero-mean")
    else:
        raise _NotProven(f"{p.describe()} writes into the residual stream and is not a linear map "
                         f"that can be re-centred")


def _prove_operand(x: Value, out: Value, axis: int, s: Stream, seen, graph: Graph) -> None:
    """An Add operand may broadcast over other axes (position embeddings), not the hidden one."""
    if x.rank is None or out.rank is None:
        raise _NotProven(f"unknown rank at %{x.name}")
    shift = out.rank - x.rank
    if axis - shift < 0 or x.shape[axis - shift] != out.shape[axis]:
        raise _NotProven(f"%{x.name} broadcasts along the hidden axis into %{out.name}")
    _prove(x, axis - shift, s, seen, graph)


def _writer_linear(p: Node, v: Value, axis: int, s: Stream) -> None:
    w = p.inputs[1]
    if w.const is None or w.rank != 2:
        raise _NotProven(f"{p.describe()} writes into the stream with a non-constant weight")
    if p.op is Op.Gemm and p.attrs.transA:
        raise _NotProven(f"{p.describe()} has transA=1")
    if p.op is Op.Linear and (p.attrs.activation != "none" or p.input(3) is not None):
        raise _NotProven(f"{p.describe()} has an activation or residual epilogue")
    _writer_weights(p, v, axis, s)


def _writer_weights(p: Node, v: Value, axis: int, s: Stream) -> None:
    for x in p.inputs[1:3]:
        if x is not None and (x.const is None or len(x.users()) != 1):
            raise _NotProven(f"{p.describe()}: weight %{x.name} is not a constant used only here")
    s.writers.append(Writer(p, v, axis))


def _reshaped_axis(p: Node, axis: int) -> int:
    """The input axis that becomes output ``axis`` whole, else not provable."""
    src, dst = p.inputs[0].shape, p.outputs[0].shape
    if src is None or dst is None:
        raise _NotProven(f"{p.describe()}: unknown shapes around the hidden axis")
    d = dst[axis]
    for j, e in enumerate(src):
        if e == d and _suffix(src[j + 1:]) == _suffix(dst[axis + 1:]):
            return j
    raise _NotProven(f"{p.describe()} splits or merges the hidden axis")


def _suffix(dims) -> tuple:
    ints = [d for d in dims if isinstance(d, int)]
    syms = sorted(str(d) for d in dims if not isinstance(d, int))
    if any(d is None for d in dims):
        return ("?",)
    return (int(np.prod(ints, dtype=np.int64)) if ints else 1, *syms)


def _check_readers(s: Stream, graph: Graph) -> None:
    """Every stream value is read only by the norms and the stream's own ops."""
    inside = {id(n) for n in s.norms} | {id(n) for n in s.adds}
    inside |= {id(v.producer) for v in s.values if v.producer is not None}
    for v in s.values:
        for user, _ in v.uses:
            if user.op in (Op.Shape, Op.Size):
                s.shape_readers.append(user)  # sees the shape only, never the values
                continue
            if id(user) not in inside:
                raise _NotProven(f"stream value %{v.name} is also read by {user.describe()}, "
                                 f"which would see the re-centred values")
