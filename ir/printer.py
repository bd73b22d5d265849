"""Deterministic text form of a graph: one node per line, readable in a test diff."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .tensor import Tensor

if TYPE_CHECKING:
    from .graph import Graph
    from .node import Node

# constants up to this many elements print their values, so structural tests see them
_INLINE_LIMIT = 8


def format_graph(graph: Graph) -> str:
    lines = [f"graph {graph.name}(" + ", ".join(repr(v) for v in graph.inputs) + ") {"]
    for v in graph.constants.values():
        lines.append(f"  const {v!r}{_inline(v.const)}")
    for node in graph.nodes:
        lines.append("  " + format_node(node))
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)


def format_node(node: Node) -> str:
    outs = ", ".join(repr(v) for v in node.outputs)
    args = ", ".join("_" if v is None else f"%{v.name}" for v in node.inputs)
    attrs = node.attrs.non_default()
    attr_text = (" {" + ", ".join(f"{k}={_fmt(v)}" for k, v in attrs) + "}") if attrs else ""
    domain = f"{node.op.domain}::" if node.op.domain else ""
    return f"{outs} = {domain}{node.op.value}({args}){attr_text}  # {node.name}"


def _inline(t: Tensor) -> str:
    if t.size > _INLINE_LIMIT or t.external is not None:
        return ""
    return " = " + np.array2string(np.asarray(t.numpy()).reshape(-1), separator=",", precision=6,
                                   max_line_width=1 << 20)


def _fmt(v: Any) -> str:
    if isinstance(v, Tensor):
        return repr(v) + _inline(v)
    if isinstance(v, float):
        return f"{v:.8g}"
    if isinstance(v, tuple):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return repr(v) if isinstance(v, str) else str(v)
