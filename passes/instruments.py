"""Instruments: hooks around every pass (timing, IR dumps, verification, numerical checks)."""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np

from ..ir.errors import FuseformerError
from ..ir.graph import Graph
from ..ir.interpreter import run
from ..ir.verify import VerificationError
from .base import Pass, PassResult
from .context import PassContext


class Instrument:
    def enter(self, graph: Graph, ctx: PassContext) -> None: ...
    def before(self, p: Pass, graph: Graph, ctx: PassContext) -> None: ...
    def after(self, p: Pass, result: PassResult, ctx: PassContext) -> None: ...
    def exit(self, graph: Graph, ctx: PassContext) -> None: ...


class Timing(Instrument):
    """Wall time per pass, accumulated into ``ctx.report.timings``."""

    def before(self, p, graph, ctx):
        self._t = time.perf_counter()

    def after(self, p, result, ctx):
        ctx.report.timings[p.name] = ctx.report.timings.get(p.name, 0.0) + time.perf_counter() - self._t


class DumpIR(Instrument):
    """Writes the IR text to ``folder/NN_<pass>.txt`` after each pass (and ``00_input.txt``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.step = 0

    def enter(self, graph, ctx):
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "00_input.txt").write_text(str(graph) + "\n")

    def after(self, p, result, ctx):
        self.step += 1
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", p.name)
        (self.folder / f"{self.step:02d}_{safe}.txt").write_text(str(result.graph) + "\n")


class PassBrokeGraph(FuseformerError):
    """A pass left the IR invalid or changed the model's numbers; names the pass."""


class VerifyEachPass(Instrument):
    """``graph.verify()`` after every pass that modified the graph."""

    def after(self, p, result, ctx):
        if result.modified:
            try:
                result.graph.verify()
            except VerificationError as e:
                raise PassBrokeGraph(f"after pass {p.name!r}: {e}") from e


class NumericalCheck(Instrument):
    """Compares outputs with the input graph's on fixed feeds; names the first pass that drifted.

    mode "each" runs the interpreter after every modifying pass. mode "bisect"
    keeps a copy of the graph after each modifying pass and checks only the final
    one; when that has drifted it bisects the copies to the first bad pass (the
    cheaper choice for long pipelines).
    """

    def __init__(self, feeds: dict[str, np.ndarray], atol: float = 1e-4, rtol: float = 1e-4,
                 mode: str = "each"):
        if mode not in ("each", "bisect"):
            raise ValueError(f"mode must be 'each' or 'bisect', got {mode!r}")
        self.feeds, self.atol, self.rtol, self.mode = feeds, atol, rtol, mode
        self.reference: list[np.ndarray] = []
        self.snapshots: list[tuple[str, Graph]] = []

    def enter(self, graph, ctx):
        self.reference = list(run(graph, self.feeds).values())
        self.snapshots = []

    def _drift(self, graph: Graph) -> str | None:
        outs = list(run(graph, self.feeds).values())
        for i, (a, b) in enumerate(zip(outs, self.reference)):
            if a.shape != b.shape:
                return f"output {i} has shape {list(a.shape)}, was {list(b.shape)}"
            if not np.allclose(a, b, atol=self.atol, rtol=self.rtol):
                return f"output {i} max abs error {float(np.max(np.abs(a - b))):.3e}"
        return None

    def after(self, p, result, ctx):
        if not result.modified:
            return
        if self.mode == "each":
            drift = self._drift(result.graph)
            if drift:
                raise PassBrokeGraph(f"pass {p.name!r} changed the model's numbers: {drift}")
        else:
            self.snapshots.append((p.name, result.graph.clone()))

    def exit(self, graph, ctx):
        if self.mode != "bisect" or not self.snapshots or self._drift(self.snapshots[-1][1]) is None:
            return
        lo, hi = 0, len(self.snapshots) - 1  # invariant: snapshot hi drifted
        while lo < hi:
            mid = (lo + hi) // 2
            if self._drift(self.snapshots[mid][1]) is None:
                lo = mid + 1
            else:
                hi = mid
        name, g = self.snapshots[hi]
        raise PassBrokeGraph(f"pass {name!r} is the first that changed the model's numbers: {self._drift(g)}")
