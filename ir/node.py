"""Nodes: an op applied to values, producing values."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .attrs import Attrs
from .op import Op
from .value import Value

if TYPE_CHECKING:
    from .graph import Graph


class Node:
    """One operation. Inputs may be ``None`` for omitted optional ONNX inputs.

    Creating a node registers it as a user of its inputs; ``set_input`` and
    ``drop_uses`` keep the use lists right.
    """

    __slots__ = ("op", "name", "attrs", "inputs", "outputs", "graph")

    def __init__(self, op: Op, inputs: Sequence[Value | None], outputs: Sequence[Value],
                 attrs: Attrs | None = None, name: str = ""):
        if attrs is None:
            attrs = op.attrs_type()
        if type(attrs) is not op.attrs_type:
            raise TypeError(f"node {name!r} ({op.value}) takes {op.attrs_type.__name__}, "
                            f"got {type(attrs).__name__}")
        self.op = op
        self.name = name
        self.attrs = attrs
        self.inputs: list[Value | None] = list(inputs)
        self.outputs: list[Value] = list(outputs)
        self.graph: Graph | None = None
        for i, v in enumerate(self.inputs):
            if v is not None:
                v.uses.append((self, i))
        for i, v in enumerate(self.outputs):
            if v.producer is not None:
                raise ValueError(f"value %{v.name} already has a producer ({v.producer.name})")
            v.producer = self
            v.index = i

    @property
    def output(self) -> Value:
        """The single output of a one-output node."""
        if len(self.outputs) != 1:
            raise ValueError(f"node {self.describe()} has {len(self.outputs)} outputs")
        return self.outputs[0]

    def input(self, i: int) -> Value | None:
        """Input i, or None when it is absent or omitted."""
        return self.inputs[i] if i < len(self.inputs) else None

    def set_input(self, i: int, value: Value | None) -> None:
        old = self.inputs[i]
        if old is value:
            return
        if old is not None:
            old.uses.remove((self, i))
        self.inputs[i] = value
        if value is not None:
            value.uses.append((self, i))

    def drop_uses(self) -> None:
        """Unregister this node from its inputs' use lists (before erasing it)."""
        for i, v in enumerate(self.inputs):
            if v is not None:
                v.uses.remove((self, i))

    def describe(self) -> str:
        """How errors name a node: its name and op (and domain for non-ONNX ops)."""
        domain = f"{self.op.domain}::" if self.op.domain else ""
        return f"{self.name or '<unnamed>'} ({domain}{self.op.value})"

    def __repr__(self) -> str:
        return f"<Node {self.describe()}>"
