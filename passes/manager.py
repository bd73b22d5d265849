"""Runs passes in sequence (optionally to a fixpoint) under a PassContext, with instruments."""
from __future__ import annotations

from collections.abc import Sequence

from ..ir.errors import FuseformerError
from ..ir.graph import Graph
from .base import Pass, PassResult
from .context import PassContext


class PassError(FuseformerError):
    """A pass raised; names it and the passes that ran before it."""


class PassManager:
    """Example:
        >>> pm = PassManager([EliminateDeadCode(), FoldConstants()], fixpoint=True)
        >>> result = pm(graph, PassContext(opt_level=2))
    """

    def __init__(self, passes: Sequence[Pass], fixpoint: bool = False, max_iterations: int = 8):
        names = [p.name for p in passes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"passes listed twice: {sorted(dup)}")
        self.passes = list(passes)
        self.fixpoint = fixpoint
        self.max_iterations = max_iterations

    def __call__(self, graph: Graph, ctx: PassContext | None = None) -> PassResult:
        ctx = ctx or PassContext()
        for inst in ctx.instruments:
            inst.enter(graph, ctx)
        try:
            modified_any = False
            ran: list[str] = []
            for _ in range(self.max_iterations if self.fixpoint else 1):
                modified = False
                for p in self.passes:
                    if not ctx.enabled(p):
                        continue
                    result = self._run_one(p, graph, ctx, ran)
                    graph = result.graph
                    modified |= result.modified
                modified_any |= modified
                if not modified:
                    break
            return PassResult(graph, modified_any)
        finally:
            for inst in ctx.instruments:
                inst.exit(graph, ctx)

    def _run_one(self, p: Pass, graph: Graph, ctx: PassContext, ran: list[str]) -> PassResult:
        for inst in ctx.instruments:
            inst.before(p, graph, ctx)
        try:
            result = p.run(graph, ctx)
        except FuseformerError:
            raise
        except Exception as e:
            before = ", ".join(ran[-5:]) or "none"
            raise PassError(f"pass {p.name!r} failed: {type(e).__name__}: {e} "
                            f"(passes run before it: {before})") from e
        ran.append(p.name)
        for inst in ctx.instruments:
            inst.after(p, result, ctx)
        return result
