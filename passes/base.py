"""What a pass is: a named, levelled rewrite of a graph, run in place."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ..ir.graph import Graph

if TYPE_CHECKING:
    from .context import PassContext


@dataclass
class PassResult:
    graph: Graph
    modified: bool


class Pass:
    """A graph rewrite. Subclasses set ``name`` (stable: users disable passes by it),
    ``opt_level`` (runs when the context's level is at least this) and a docstring
    stating the rewrite as a formula, and implement ``run``.
    """

    name: ClassVar[str] = ""
    opt_level: ClassVar[int] = 1

    def run(self, graph: Graph, ctx: PassContext) -> PassResult:
        raise NotImplementedError

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip().splitlines()
        return doc[0] if doc else ""

    def __repr__(self) -> str:
        return f"<Pass {self.name} O{self.opt_level}>"
