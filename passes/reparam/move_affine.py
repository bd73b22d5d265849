"""Move a per-channel affine map across layout ops until it meets the linear layer that absorbs it.

A per-channel Mul/Add by a constant commutes with any op that moves whole
channels: Transpose, a Reshape or Flatten that keeps the channel axis whole,
and a ReduceMean over other axes (mean(x a + c) = mean(x) a + c). Exporters
put such ops between a BatchNorm and its linear layer (LeViT's flatten(0, 1)
BatchNorm1d, SLAB's transpose-BN-transpose), so the affine is moved, one op
at a time, toward the layer: backward to the layer that writes it, else
forward to the layer that reads it. A move is made only when the channel axis
arrives on that layer's channel axis, so nothing moves without being folded.
"""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value

_LINEAR = (Op.Conv, Op.MatMul, Op.Gemm, Op.Linear)
_LAYOUT = (Op.Transpose, Op.Reshape, Op.Flatten, Op.ReduceMean)
_MAX_CHAIN = 6


def affine_axis(node: Node) -> tuple[Value, Value, int | None] | None:
    """(variable, constant, channel axis or None for a scalar) of a per-channel Mul/Add."""
    if node.op not in (Op.Mul, Op.Add) or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    x, k = (a, b) if b.const is not None and a.const is None else (b, a)
    if k.const is None or x.const is not None or x.shape is None or x.shape != node.outputs[0].shape:
        return None
    if not node.outputs[0].dtype.is_float:
        return None
    rank = x.rank
    shape = k.const.shape
    if len(shape) > rank:
        return None
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    axes = [i for i, d in enumerate(padded) if d != 1]
    if not axes:
        return x, k, None
    if len(axes) > 1:
        return None
    return x, k, axes[0]


def _single_user(v: Value, graph: Graph) -> Node | None:
    """The one node reading v's values (Shape and Size read only its shape, which stays)."""
    users = [u for u in v.users() if u.op not in (Op.Shape, Op.Size)]
    if len(users) != 1 or v in graph.outputs:
        return None
    return users[0]


def _reshape_axis(src, dst, axis: int) -> int | None:
    """The axis of ``dst`` that is ``src``'s ``axis`` kept whole, if any."""
    if src is None or dst is None:
        return None
    d = src[axis]
    if not isinstance(d, int):
        return None
    after = _numel(src[axis + 1:])
    for j, e in enumerate(dst):
        if e == d and after is not None and _numel(dst[j + 1:]) == after:
            return j
    return None


def _numel(dims) -> int | None:
    n = 1
    for d in dims:
        if not isinstance(d, int):
            return None
        n *= d
    return n


def map_through(node: Node, axis: int | None, forward: bool) -> tuple[bool, int | None]:
    """(ok, new axis) for a channel axis crossing ``node`` (forward: input -> output)."""
    x, y = node.inputs[0], node.outputs[0]
    if node.op is Op.Transpose:
        perm = node.attrs.perm or tuple(reversed(range(x.rank)))
        if axis is None:
            return True, None
        return True, (perm.index(axis) if forward else perm[axis])
    if node.op in (Op.Reshape, Op.Flatten):
        if axis is None:
            return True, None
        src, dst = (x.shape, y.shape) if forward else (y.shape, x.shape)
        new = _reshape_axis(src, dst, axis)
        return new is not None, new
    if node.op is Op.ReduceMean and forward:
        axes_v = node.input(1)
        if axes_v is None or axes_v.const is None or x.rank is None:
            return False, None
        reduced = sorted(int(a) % x.rank for a in np.asarray(axes_v.const.numpy()).reshape(-1))
        if not reduced or axis in reduced:
            return False, None
        if axis is None:
            return True, None
        return True, axis if node.attrs.keepdims else axis - sum(r < axis for r in reduced)
    return False, None


def _layer_axis(node: Node, rank: int) -> int:
    return 1 if node.op is Op.Conv else rank - 1


def _foldable_layer(node: Node, graph: Graph) -> bool:
    w = node.input(1)
    return node.op in _LINEAR and w is not None and w.const is not None and len(w.users()) == 1 \
        and not (node.op is Op.Linear and (node.input(3) is not None or node.attrs.activation != "none"))


def _reaches_reader(v: Value, axis: int | None, graph: Graph) -> bool:
    """Following single uses through layout and affine ops, v reaches a linear layer's input channel."""
    for _ in range(_MAX_CHAIN):
        user = _single_user(v, graph)
        if user is None:
            return False
        if user.op in _LINEAR:
            return user.inputs[0] is v and _foldable_layer(user, graph) and \
                (axis is None or axis == _layer_axis(user, v.rank))
        if user.op in _LAYOUT:
            ok, axis = map_through(user, axis, forward=True)
            if not ok:
                return False
        elif affine_axis(user) is None:
            return False
        v = user.outputs[0]
    return False


def _reaches_writer(v: Value, axis: int | None, graph: Graph) -> bool:
    """Walking producers through layout and affine ops, v comes from a linear layer's output channel."""
    for _ in range(_MAX_CHAIN):
        p = v.producer
        if p is None or _single_user(v, graph) is None:
            return False
        if p.op in _LINEAR:
            return _foldable_layer(p, graph) and (axis is None or axis == _layer_axis(p, v.rank))
        if p.op in _LAYOUT and p.op is not Op.ReduceMean:
            ok, axis = map_through(p, axis, forward=False)
            if not ok:
                return False
            v = p.inputs[0]
        elif affine_axis(p) is not None:
            v = affine_axis(p)[0]
        else:
            return False
    return False


def _reshaped_const(k: Value, axis: int | None, rank: int, graph: Graph, hint: str) -> Value:
    if axis is None:
        return k
    vec = np.asarray(k.const.numpy()).reshape(-1)
    shape = [1] * rank
    shape[axis] = vec.size
    return graph.add_constant(vec.reshape(shape), hint)


def move_one(graph: Graph, node: Node) -> bool:
    """Move the affine ``node`` one op toward a linear layer that will absorb it."""
    info = affine_axis(node)
    if info is None:
        return False
    x, k, axis = info
    out = node.outputs[0]
    # backward: y = L(w) feeds the affine, and w comes from a linear layer
    p = x.producer
    if p is not None and p.op in _LAYOUT and p.op is not Op.ReduceMean and _single_user(x, graph) is node:
        ok, new_axis = map_through(p, axis, forward=False)
        w = p.inputs[0]
        if ok and _reaches_writer(w, new_axis, graph):
            with graph.inserting_before(p):
                kk = _reshaped_const(k, new_axis, w.rank, graph, f"{node.name}/moved")
                moved = graph.make_node(node.op, [w, kk], name=f"{node.name}/moved").output
            p.set_input(0, moved)
            graph.replace_all_uses_with(out, x)
            graph.erase(node)
            return True
    # forward: the affine feeds L, and L's output reaches a linear layer
    user = _single_user(out, graph)
    if user is not None and user.op in _LAYOUT and user.inputs[0] is out:
        ok, new_axis = map_through(user, axis, forward=True)
        y = user.outputs[0]
        if ok and _reaches_reader(y, new_axis, graph):
            user.set_input(0, x)
            uses = list(y.uses)
            with graph.inserting_after(user):
                kk = _reshaped_const(k, new_axis, y.rank, graph, f"{node.name}/moved")
                moved = graph.make_node(node.op, [y, kk], name=f"{node.name}/moved").output
            for u, i in uses:
                u.set_input(i, moved)
            graph.erase(node)
            return True
    return False
