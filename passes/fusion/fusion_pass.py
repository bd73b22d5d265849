"""A pass that applies one family of pattern rules (one fusion kind)."""
from __future__ import annotations

from ...ir.graph import Graph
from ..base import Pass, PassResult
from ..pattern import Rule, apply_rules


class FusionPass(Pass):
    """Base for passes that are a list of rules; subclasses set name, opt_level, rules()."""

    opt_level = 2

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def run(self, graph: Graph, ctx) -> PassResult:
        report = ctx.report if ctx is not None else None
        count = apply_rules(graph, self.rules(), report)
        return PassResult(graph, count > 0)
