"""Graph analyses over a networkx view: orders, dominators, liveness."""
from __future__ import annotations

from typing import TYPE_CHECKING

import networkx as nx

if TYPE_CHECKING:
    from .graph import Graph
    from .node import Node
    from .value import Value


def to_networkx(graph: Graph) -> nx.MultiDiGraph:
    """Nodes are IR nodes (by identity); one edge per value flowing producer -> user.

    Edge data: ``value`` (the Value) and ``index`` (the user's input slot).
    """
    g = nx.MultiDiGraph()
    for node in graph.nodes:
        g.add_node(node)
    for node in graph.nodes:
        for v in node.outputs:
            for user, i in v.uses:
                g.add_edge(node, user, value=v, index=i)
    return g


def dominators(graph: Graph) -> dict[Node, Node]:
    """Immediate dominator of every node reachable from the graph inputs (a virtual root)."""
    g = to_networkx(graph)
    root = object()
    g.add_node(root)
    for node in graph.nodes:
        if not any(v is not None and v.producer is not None for v in node.inputs):
            g.add_edge(root, node)
    idom = nx.immediate_dominators(g, root)
    return {n: d for n, d in idom.items() if n is not root and d is not root}


def liveness(graph: Graph) -> dict[Value, tuple[int, int]]:
    """For each activation (node output), the step that defines it and the last step that reads it.

    Steps index ``graph.nodes``; a graph output lives to ``len(graph.nodes)``.
    """
    step = {id(n): i for i, n in enumerate(graph.nodes)}
    outputs = {id(v) for v in graph.outputs}
    live: dict[Value, tuple[int, int]] = {}
    for i, node in enumerate(graph.nodes):
        for v in node.outputs:
            last = max((step[id(u)] for u, _ in v.uses), default=i)
            if id(v) in outputs:
                last = len(graph.nodes)
            live[v] = (i, last)
    return live


def last_uses(graph: Graph) -> dict[int, list[Value]]:
    """Step -> the values whose last read is that step (for freeing buffers early)."""
    out: dict[int, list[Value]] = {}
    for v, (_, last) in liveness(graph).items():
        out.setdefault(last, []).append(v)
    for v in graph.inputs:
        last = max((graph.nodes.index(u) for u, _ in v.uses), default=-1)
        if v not in graph.outputs and last >= 0:
            out.setdefault(last, []).append(v)
    return out
