"""Dead-code elimination."""
from __future__ import annotations

from ...ir.graph import Graph
from ..base import Pass, PassResult


class EliminateDeadCode(Pass):
    """Remove every node none of whose outputs reaches a graph output, and unused constants.

    node n is dead  <=>  no output of n is a graph output or read by a live node
    """

    name = "dce"
    opt_level = 0

    def run(self, graph: Graph, ctx) -> PassResult:
        live = {id(v) for v in graph.outputs}
        keep = []
        for node in reversed(graph.nodes):
            if any(id(v) in live for v in node.outputs):
                keep.append(node)
                live.update(id(v) for v in node.inputs if v is not None)
        kept = {id(n) for n in keep}
        dead = [n for n in graph.nodes if id(n) not in kept]
        for node in reversed(dead):
            for v in node.outputs:
                for user, i in list(v.uses):
                    user.set_input(i, None)  # users are dead too and erased in this loop
            graph.erase(node)
        removed_consts = graph.remove_unused_constants()
        return PassResult(graph, bool(dead) or removed_consts > 0)
