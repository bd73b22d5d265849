"""A pass that applies one family of pattern rules (one fusion kind)."""
from __future__ import annotations

from ...ir.graph import Graph
from ..base import Pass, PassResult
from ..pattern import Rule, apply_rules
from ..report import Report


class FusionPass(Pass):
    """Base for passes that are a list of rules; subclasses set name, opt_level, rules()."""

    opt_level = 2

    def rules(self) -> list[Rule]:
        raise NotImplementedError

    def run(self, graph: Graph, ctx) -> PassResult:
        report = ctx.report if ctx is not None else None
        count = apply_rules(graph, self.rules(), report)
        return PassResult(graph, count > 0)


class StagedFusionPass(FusionPass):
    """Rules applied in stages, each stage swept to a fixpoint, for rewrites that build on each other.

    A later stage sees what an earlier one made (MatMul -> Linear, then
    Add(Linear, b) -> Linear(bias)). A near miss is reported only for a node
    still in the graph at the end: one that a later stage fused has no reason to give.
    """

    max_sweeps = 8  # a rewrite never re-enables itself at the same node: a few sweeps suffice

    def stages(self) -> list[list[Rule]]:
        raise NotImplementedError

    def rules(self) -> list[Rule]:
        return [r for stage in self.stages() for r in stage]

    def run(self, graph: Graph, ctx) -> PassResult:
        scratch = Report()
        count = 0
        for stage in self.stages():
            for _ in range(self.max_sweeps):
                fired = apply_rules(graph, stage, scratch)
                count += fired
                if not fired:
                    break
        report = ctx.report if ctx is not None else None
        if report is not None:
            for kind, n in scratch.fired.items():
                report.record_fired(kind, n)
            alive = {n.name for n in graph.nodes}
            for misses in scratch.missed.values():
                for miss in misses:
                    if miss.node in alive:
                        report.record_miss(miss.kind, miss.node, miss.reason)
        return PassResult(graph, count > 0)
