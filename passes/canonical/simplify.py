"""Local simplifications: no-op removal, Transpose/Reshape/Squeeze/Unsqueeze cancellation."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ..base import Pass, PassResult


def _bypass(graph: Graph, node: Node, to) -> bool:
    """Route the users of node's output to ``to``; the node dies in DCE."""
    out = node.outputs[0]
    if not out.uses and out not in graph.outputs:
        return False
    if out in graph.outputs and (to in graph.outputs or to.producer is None):
        return False  # the node is what gives this output its name
    graph.replace_all_uses_with(out, to)
    return True


def _same_shape(a, b) -> bool:
    if a is None or b is None or len(a) != len(b):
        return False
    return all(x is not None and x == y for x, y in zip(a, b))


class RemoveNoOps(Pass):
    """Remove ops that return their input.

    1. Identity(x) -> x
    2. Dropout(x) -> x                        (inference; the mask output must be unused)
    3. Cast(x, to=dtype(x)) -> x
    4. Expand(x, s), Reshape(x, s) -> x        when the output shape equals x's (symbols included)
    5. Transpose(x, perm=identity) -> x
    6. Squeeze / Unsqueeze with no axes to change -> x
    """

    name = "remove-noops"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = False
        for node in list(graph.nodes):
            if node.graph is not graph:
                continue
            x = node.input(0)
            out = node.outputs[0]
            op = node.op
            if op is Op.Identity:
                modified |= _bypass(graph, node, x)
            elif op is Op.Dropout and (len(node.outputs) < 2 or not node.outputs[1].uses) \
                    and node.input(2) is None:
                modified |= _bypass(graph, node, x)
            elif op is Op.Cast and x.dtype is out.dtype:
                modified |= _bypass(graph, node, x)
            elif op in (Op.Expand, Op.Reshape) and _same_shape(x.shape, out.shape):
                # equal dims in the same order: row-major data is untouched
                modified |= _bypass(graph, node, x)
            elif op is Op.Transpose and node.attrs.perm is not None \
                    and tuple(node.attrs.perm) == tuple(range(len(node.attrs.perm))):
                modified |= _bypass(graph, node, x)
            elif op in (Op.Squeeze, Op.Unsqueeze) and node.input(1) is not None \
                    and node.inputs[1].const is not None and node.inputs[1].const.size == 0:
                modified |= _bypass(graph, node, x)
        return PassResult(graph, modified)


class SimplifyLayoutChains(Pass):
    """Merge or cancel adjacent layout ops.

    1. Transpose(Transpose(x, p), q) -> Transpose(x, p o q)   (-> x when p o q is the identity)
    2. Reshape(Reshape(x, s1), s2) -> Reshape(x, s2)           when s2 has no 0 entries
    3. Squeeze(Unsqueeze(x, a), a) -> x ; Unsqueeze(Squeeze(x, a), a) -> x
    """

    name = "simplify-layout"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = False
        for node in list(graph.nodes):
            if node.graph is not graph:
                continue
            prev = node.input(0).producer if node.input(0) is not None else None
            if prev is None or prev.graph is not graph:
                continue
            if node.op is Op.Transpose and prev.op is Op.Transpose:
                modified |= self._transposes(graph, node, prev)
            elif node.op is Op.Reshape and prev.op is Op.Reshape:
                target = node.inputs[1].const
                if target is not None and 0 not in np.asarray(target.numpy()):
                    node.set_input(0, prev.inputs[0])
                    modified = True
            elif {node.op, prev.op} == {Op.Squeeze, Op.Unsqueeze}:
                a, b = node.input(1), prev.input(1)
                if a is not None and b is not None and a.const is not None and b.const is not None \
                        and prev.inputs[0].rank is not None:
                    if self._same_axes(a, b, node, prev):
                        modified |= _bypass(graph, node, prev.inputs[0])
        return PassResult(graph, modified)

    @staticmethod
    def _transposes(graph, node, prev) -> bool:
        rank = node.outputs[0].rank
        if rank is None:
            return False
        p = prev.attrs.perm or tuple(reversed(range(rank)))
        q = node.attrs.perm or tuple(reversed(range(rank)))
        composed = tuple(p[i] for i in q)
        if composed == tuple(range(rank)):
            return _bypass(graph, node, prev.inputs[0])
        node.attrs = node.attrs.replace(perm=composed)
        node.set_input(0, prev.inputs[0])
        return True

    @staticmethod
    def _same_axes(a, b, node, prev) -> bool:
        # normalize negative axes against the rank each op sees
        big_rank = max(node.outputs[0].rank or 0, prev.outputs[0].rank or 0)
        if big_rank == 0:
            return False
        norm = lambda axes: sorted(int(x) % big_rank for x in np.asarray(axes.const.numpy()).reshape(-1))
        return norm(a) == norm(b)
