"""Shared pieces of the chunking rewrites: token axes, chunk sizes, Split/Concat emission.

Every cut is along the token axis, the outermost non-unit axis of a batch-1 tensor, so
each Split output and each Concat input is a contiguous byte range: the planner makes
them views (``inplace.py``) and the backend runs no copy for them.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...ir.attrs import ConcatAttrs, SplitAttrs
from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value


@dataclass
class ChunkReport:
    sites: list[str] = field(default_factory=list)  # what was chunked
    skipped: list[str] = field(default_factory=list)  # near misses, with the reason


# Norms that act on each row (the last axis) on their own, with constant parameters.
ROW_NORMS = frozenset({Op.CRMSNorm, Op.RMSNorm, Op.LayerNormalization})


def rows(v: Value) -> tuple[int, int] | None:
    """(token axis, rows) of a batch-1 activation: its outermost non-unit axis."""
    for i, d in enumerate(v.shape):
        if d != 1:
            return (i, d) if d > 1 else None
    return None


@contextlib.contextmanager
def emitting_before(g: Graph, anchor: Node):
    """Build nodes at the end of the list, then move them before ``anchor`` in one splice
    (``Graph.inserting_before`` looks the anchor up once per node: quadratic on big graphs)."""
    start = len(g.nodes)
    yield
    block = g.nodes[start:]
    del g.nodes[start:]
    i = g.nodes.index(anchor)
    g.nodes[i:i] = block


def token_axis(shape: tuple[int, ...]) -> int | None:
    """The outermost non-unit axis when it is not the last one (the rows a row-wise op maps)."""
    for i, d in enumerate(shape):
        if d != 1:
            return i if i < len(shape) - 1 else None
    return None


def chunk_sizes(total: int, chunks: int) -> list[int]:
    """``chunks`` near-equal parts of ``total`` (the first ones one larger), none empty."""
    chunks = max(1, min(chunks, total))
    base, extra = divmod(total, chunks)
    return [base + (i < extra) for i in range(chunks)]


def is_row_norm(node: Node) -> bool:
    if node.op not in ROW_NORMS or any(o.uses for o in node.outputs[1:]):
        return False  # (LayerNormalization's mean / inv-std outputs used: not a plain row map)
    rank = len(node.inputs[0].shape)
    axis = getattr(node.attrs, "axis", -1) % rank
    return axis == rank - 1 and all(v is None or v.is_const for v in node.inputs[1:])


def single_user(v: Value) -> Node | None:
    users = v.users()
    return users[0] if len(users) == 1 and len(v.uses) == 1 else None


def split_rows(g: Graph, v: Value, sizes: Sequence[int], name: str) -> list[Value]:
    """Split ``v`` along its token axis into row blocks of ``sizes``."""
    axis = rows(v)[0]
    if len(sizes) == 1:
        return [v]
    node = g.make_node(Op.Split, [v, g.add_constant(np.array(sizes, np.int64), f"{name}/sizes")],
                       SplitAttrs(axis=axis), name=name, num_outputs=len(sizes))
    return list(node.outputs)


def concat_rows(g: Graph, parts: Sequence[Value], like: Value, name: str) -> Value:
    """Concat row blocks back along the token axis of ``like`` (the tensor they make up)."""
    if len(parts) == 1:
        return parts[0]
    axis = rows(like)[0]
    return g.make_node(Op.Concat, list(parts), ConcatAttrs(axis=axis), name=name).output


def reshape(g: Graph, v: Value, shape: Sequence[int], name: str) -> Value:
    return g.make_node(Op.Reshape, [v, g.add_constant(np.array(shape, np.int64), f"{name}/shape")],
                       name=name).output


def copy_node(g: Graph, node: Node, inputs: Sequence[Value | None], name: str) -> Value:
    """The same op and attributes on new inputs; only the first output is made."""
    return g.make_node(node.op, list(inputs), node.attrs, name=name).output


def const_slice(g: Graph, v: Value | None, index: tuple, name: str) -> Value | None:
    if v is None:
        return None
    return g.add_constant(np.ascontiguousarray(v.const.numpy()[index]), name)


def erase_dead(g: Graph, nodes: Sequence[Node]) -> None:
    """Erase ``nodes`` (a matched pattern whose outputs were all replaced), users first."""
    pending = list(nodes)
    while pending:
        for n in list(pending):
            if not any(o.uses or o in g.outputs for o in n.outputs):
                g.erase(n)
                pending.remove(n)
                break
        else:
            names = ", ".join(n.describe() for n in pending)
            raise ValueError(f"chunking left nodes still in use: {names}")


def rows_fit(values: Sequence[Value], count: int) -> bool:
    """Batch-1 tensors whose token axis (not the last) holds ``count`` rows."""
    for v in values:
        axis = token_axis(v.shape) if v.shape else None
        if axis is None or v.shape[axis] != count or math.prod(v.shape[:axis]) != 1:
            return False
    return True
