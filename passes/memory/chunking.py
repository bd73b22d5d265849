"""Chunking: run row-wise regions, attention heads and the patch embedding in blocks.

MCUFormer's operator integration and patch-embedding decomposition. A computation done
on k row blocks gives the same numbers, but its wide intermediates (the MLP's hidden
tensor, Q/K/V, the attention output) exist one block or one head at a time; Splits and
Concats along the token axis are views, so the blocks cost no copies. The rewrites:
``attention_chunking.py`` (QKV projections and attention, head by head),
``row_chunking.py`` (MLPs, norms, embeddings) and ``patch_chunking.py``.

``choose_chunks`` picks the chunk count: with a budget, the fewest chunks whose plan fits
(each chunk is one more kernel call and one more pass over the weights); without one, it
doubles the count while that still lowers the peak by 2% or more.
"""
from __future__ import annotations

from ...ir.graph import Graph
from .attention_chunking import ChunkAttentionHeads
from .chunk_utils import ChunkReport, token_axis
from .patch_chunking import ChunkPatchEmbedding
from .plan import MemoryPlan
from .planner import build_plan, schedule_graph
from .row_chunking import ChunkRowwiseRegions


def chunk_graph(graph: Graph, chunks: int) -> tuple[Graph, ChunkReport]:
    """A copy of ``graph`` with every chunkable site in ``chunks`` row blocks."""
    g = graph.clone()
    report = ChunkReport()
    original = set(g.nodes)
    ChunkAttentionHeads(chunks, report).run(g)
    ChunkRowwiseRegions(chunks, report, only=original).run(g)
    ChunkPatchEmbedding(chunks, report).run(g)
    g.remove_unused_constants()
    return g, report


def max_rows(graph: Graph) -> int:
    """The most rows any activation has on its token axis (more chunks than this is moot)."""
    best = 1
    for n in graph.nodes:
        for o in n.outputs:
            axis = token_axis(o.shape) if o.shape else None
            if axis is not None:
                best = max(best, o.shape[axis])
    return best


def choose_chunks(graph: Graph, unchunked: MemoryPlan, budget: int | None, *, alignment: int = 16,
                  time_budget: float = 0.5) -> MemoryPlan | None:
    """The chunked plan to use instead of ``unchunked``, or None when chunking does not help
    (then ``unchunked.notes`` says why).

    Candidates are 2, 4, 8, ... blocks, up to the most rows any tensor has. Each is screened
    by its schedule's peak (the arena lands within a few % above it: arena.py); only a
    candidate whose peak fits the budget gets an arena. With a budget that no candidate
    meets, the result is the candidate with the smallest arena, for the error message.
    """
    limit = max_rows(graph)
    candidates = sorted({min(2 ** i, limit) for i in range(1, limit.bit_length() + 1)})
    best: tuple[int, int, Graph, ChunkReport] | None = None  # peak, chunks, graph, report
    built: dict[int, MemoryPlan] = {}
    scheduled = {}

    def build(k: int, g: Graph, report: ChunkReport) -> MemoryPlan:
        if k not in built:
            built[k] = build_plan(g, alignment=alignment, time_budget=time_budget, scheduled=scheduled[k])
            built[k].stats["chunks"] = k
            built[k].notes = report.sites + report.skipped
        return built[k]

    for k in candidates:
        g, report = chunk_graph(graph, k)
        if not report.sites:
            unchunked.notes.append("chunking: no attention, row-wise region or patch embedding to split"
                                   + "".join(f"; {why}" for why in report.skipped))
            return None
        scheduled[k] = schedule_graph(g)
        peak = scheduled[k].liveness.peak
        if budget is None:
            if best is not None and peak >= 0.98 * best[0]:
                break  # past the knee: twice the chunks buy less than 2%
            best = (peak, k, g, report)
            continue
        if best is None or peak < best[0]:
            best = (peak, k, g, report)
        if peak <= budget and build(k, g, report).arena_bytes <= budget:
            return built[k]  # the fewest chunks that fit
    peak, k, g, report = best
    if budget is None:
        plan = build(k, g, report) if peak < unchunked.lower_bound else None
    else:  # nothing fits: the smallest peak, for the error message (its arena is within a few %)
        plan = min([build(k, g, report), *built.values()], key=lambda p: p.arena_bytes)
        plan = plan if plan.arena_bytes < unchunked.arena_bytes else None
    if plan is None:
        unchunked.notes.append(f"chunking: up to {candidates[-1]} blocks did not lower the peak")
    return plan
