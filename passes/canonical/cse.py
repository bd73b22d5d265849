"""Common-subexpression elimination (and deduplication of equal small constants)."""
from __future__ import annotations

import hashlib

import numpy as np

from ...ir.graph import Graph
from ..base import Pass, PassResult

# constants above this are weights: comparing them costs more than it saves
_DEDUP_LIMIT = 4096


class EliminateCommonSubexpressions(Pass):
    """Two nodes with the same op, attributes and inputs compute the same values: keep the first.

    op(a, b){attrs} ; op(a, b){attrs}  ->  one node, all uses of the second moved to the first
    Equal constants of at most 4096 bytes are merged first, so their users can meet.
    """

    name = "cse"
    opt_level = 1

    def run(self, graph: Graph, ctx) -> PassResult:
        modified = self._dedup_constants(graph)
        seen: dict[tuple, object] = {}
        for node in list(graph.nodes):
            try:
                key = (node.op, node.attrs, tuple(id(v) if v is not None else None for v in node.inputs),
                       len(node.outputs))
                hash(key)
            except TypeError:
                continue
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            for old, new in zip(node.outputs, first.outputs):
                graph.replace_all_uses_with(old, new)
            graph.erase(node)
            modified = True
        return PassResult(graph, modified)

    @staticmethod
    def _dedup_constants(graph: Graph) -> bool:
        by_content: dict[tuple, object] = {}
        modified = False
        for v in list(graph.constants.values()):
            if v.const.nbytes > _DEDUP_LIMIT or v in graph.outputs:
                continue
            # ascontiguousarray would turn a scalar into shape [1]: key on the tensor's own shape
            data = np.ascontiguousarray(v.const.numpy()).tobytes()
            key = (v.dtype, v.const.shape, hashlib.sha1(data).hexdigest())
            first = by_content.setdefault(key, v)
            if first is not v:
                graph.replace_all_uses_with(v, first)
                modified = True
        if modified:
            graph.remove_unused_constants()
        return modified
