"""Graph invariants: single definition, topological order, exact use lists, types and shapes."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .graph import Graph


class VerificationError(ValueError):
    """The graph breaks an IR invariant; the message names the node."""


def verify(graph: Graph) -> None:
    """Check the invariants every pass must keep. Raises VerificationError on the first break."""
    from .infer import infer_types

    defined: dict[int, str] = {}
    names: set[str] = set()

    def define(v, where: str) -> None:
        if v.name in names:
            raise VerificationError(f"value %{v.name} is defined twice (again by {where})")
        names.add(v.name)
        defined[id(v)] = where

    for v in graph.inputs:
        if v.const is not None or v.producer is not None:
            raise VerificationError(f"graph input %{v.name} has a producer or constant data")
        if v.dtype is None:
            raise VerificationError(f"graph input %{v.name} has no dtype")
        define(v, "a graph input")
    for name, v in graph.constants.items():
        if v.const is None or v.name != name:
            raise VerificationError(f"constant %{name} is not registered under its name or has no data")
        if v.dtype is not v.const.dtype or tuple(v.shape) != v.const.shape:
            raise VerificationError(f"constant %{name} is typed {v.type_str()} but holds {v.const!r}")
        define(v, "a constant")

    expected_uses: dict[int, list] = {}
    for node in graph.nodes:
        if node.graph is not graph:
            raise VerificationError(f"node {node.describe()} does not belong to this graph")
        for i, v in enumerate(node.inputs):
            if v is None:
                continue
            if id(v) not in defined:
                raise VerificationError(f"node {node.describe()} input {i} (%{v.name}) is used before "
                                        f"it is defined or is not in the graph")
            expected_uses.setdefault(id(v), []).append((node, i))
        for i, v in enumerate(node.outputs):
            if v.producer is not node or v.index != i:
                raise VerificationError(f"node {node.describe()} output {i} (%{v.name}) does not "
                                        f"point back at its producer")
            if v.dtype is None:
                raise VerificationError(f"node {node.describe()} output %{v.name} has no dtype")
            define(v, node.describe())
        try:
            inferred = infer_types(node)
        except Exception as e:  # the infer rules raise on malformed inputs
            raise VerificationError(f"node {node.describe()}: {e}") from e
        for v, (dtype, shape) in zip(node.outputs, inferred):
            if dtype is not None and v.dtype is not dtype:
                raise VerificationError(f"node {node.describe()} output %{v.name} is typed "
                                        f"{v.dtype.short} but the op gives {dtype.short}")
            if shape is not None and v.shape is not None and not _compatible(shape, v.shape):
                raise VerificationError(f"node {node.describe()} output %{v.name} has shape "
                                        f"{v.type_str()} but the op gives {list(map(str, shape))}")

    for v in graph.values():
        actual = sorted((id(n), i) for n, i in v.uses)
        want = sorted((id(n), i) for n, i in expected_uses.get(id(v), []))
        if actual != want:
            raise VerificationError(f"use list of %{v.name} is stale: records {len(actual)} uses, "
                                    f"the graph has {len(want)}")
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerificationError(f"graph output %{v.name} is not defined in the graph")


def _compatible(a, b) -> bool:
    """Two shapes agree where both dims are known."""
    if len(a) != len(b):
        return False
    return all(x is None or y is None or x == y or not isinstance(x, int) or not isinstance(y, int)
               for x, y in zip(a, b))
