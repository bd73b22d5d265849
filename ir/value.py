"""SSA values: each is defined once (by a node output, a graph input or a constant)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .dtype import DType
from .shape import Shape, format_shape
from .tensor import Tensor

if TYPE_CHECKING:
    from .node import Node


class Value:
    """A typed SSA value. Compares by identity; knows its producer and its uses.

    ``uses`` lists ``(node, input_index)`` pairs and is kept up to date by every
    Node and Graph edit, so ``graph.replace_all_uses_with`` is one call.
    """

    __slots__ = ("name", "dtype", "shape", "producer", "index", "const", "uses")

    def __init__(self, name: str, dtype: DType | None = None, shape: Shape = None,
                 const: Tensor | None = None):
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.producer: Node | None = None
        self.index = 0
        self.const = const
        self.uses: list[tuple[Node, int]] = []

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def users(self) -> list[Node]:
        """Distinct consumer nodes, in first-use order."""
        seen: dict[int, Node] = {}
        for node, _ in self.uses:
            seen.setdefault(id(node), node)
        return list(seen.values())

    def type_str(self) -> str:
        dtype = self.dtype.short if self.dtype else "?"
        return f"{dtype}{format_shape(self.shape)}"

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type_str()}"
