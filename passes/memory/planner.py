"""plan_memory: schedule, views and in place, arena offsets, chunking to meet a budget.

For one specialized graph:

1. schedule: ``schedule.minimize_peak``; the original order is kept if it is no worse;
2. aliasing under that schedule (``inplace.py``), buffers and their lifetimes
   (``liveness.py``), the peak step and the live-bytes lower bound;
3. offsets: ``arena.plan_arena`` (never larger than TFLM's greedy planner);
4. chunking (``chunking.py``): row-wise regions (MLPs, norms, embeddings), attention
   heads and the patch embedding run in blocks, the fewest blocks that meet the budget.

When even the most chunked graph needs more than the budget, ``MemoryBudgetError``
names the peak step, the tensors live there and the smallest budget that would do.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.errors import FuseformerError, ModelError
from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import REDUCTIONS, Op
from ...ir.shape import is_static
from .arena import Request, plan_arena
from .liveness import Liveness, analyze, lower_bound_any_schedule, value_intervals
from .plan import MemoryPlan, Placement, value_bytes
from .schedule import minimize_peak


class MemoryBudgetError(FuseformerError):
    """The graph cannot run inside the memory budget; the message says where and by how much."""

    def __init__(self, message: str, plan: MemoryPlan):
        super().__init__(message)
        self.plan = plan


@dataclass
class Scheduled:
    """A chosen order with its liveness; ``exact``: the DP proved its peak optimal (schedule.py)."""

    schedule: list[Node]
    liveness: Liveness
    original_peak: int
    exact: bool


def _check_static(graph: Graph) -> None:
    for v in graph.values():
        if v.shape is None or not is_static(v.shape) or v.dtype is None:
            where = f"produced by {v.producer.describe()}" if v.producer else "a graph input"
            raise ModelError(f"memory planning needs static shapes: %{v.name} ({where}) has shape "
                             f"{v.shape}; specialize the graph first (ir.specialize)")


def schedule_graph(graph: Graph, *, time_limit: float = 10.0) -> Scheduled:
    """The better of the graph order and the peak-minimizing schedule, with its liveness."""
    original = analyze(graph, graph.nodes)
    result = minimize_peak(graph, original.aliasing, time_limit=time_limit)
    best = original
    if result.order != graph.nodes:
        candidate = analyze(graph, result.order)
        if candidate.peak < original.peak:
            best = candidate
    return Scheduled(best.schedule, best, original.peak, result.exact)


def build_plan(graph: Graph, *, alignment: int = 16, time_budget: float = 0.5,
               scheduled: Scheduled | None = None) -> MemoryPlan:
    """Schedule (unless given), alias and place one (already chunked or not) specialized graph."""
    _check_static(graph)
    sched = scheduled or schedule_graph(graph)
    lv = sched.liveness
    requests = [Request(b.id, b.size, b.start, b.end) for b in lv.buffers]
    arena = plan_arena(requests, alignment, time_budget=time_budget)
    placement = {v: Placement(arena.offsets[gid] + off, value_bytes(v))
                 for v, (gid, off) in lv.aliasing.position.items()}
    intervals = value_intervals(graph, lv.schedule)
    step = lv.peak_step

    def holder(v):
        # name a live buffer by the tensor it holds at the peak: one read around that step if
        # any, else the biggest one already written (a stream read before and after it)
        start, end = intervals[v]
        return (v not in lv.aliasing.views, start <= step <= end, start <= step, value_bytes(v), start)

    peak_live = sorted((max(b.values, key=holder) for b in lv.live_at(step)), key=value_bytes, reverse=True)
    return MemoryPlan(
        graph, lv.schedule, placement, arena.size, flash_bytes=flash_bytes(graph), peak_step=lv.peak_step,
        peak_live=peak_live, lower_bound=lv.peak, inplace=dict(lv.aliasing.inplace),
        lower_bound_any=lower_bound_any_schedule(graph), schedule_exact=sched.exact,
        live_bytes=list(lv.live_bytes), intervals=intervals, arena_method=arena.method,
        stats={"original_order_peak": sched.original_peak, "schedule_peak": lv.peak,
               "tflm_arena": arena.baseline, "arena": arena.size},
        views=set(lv.aliasing.views))


# (op, input slot) that only say how to index or reshape: a backend folds them into its code
_SHAPE_SLOTS = {(Op.Reshape, 1), (Op.Split, 1), (Op.Squeeze, 1), (Op.Unsqueeze, 1), (Op.Expand, 1),
                (Op.Tile, 1), (Op.Pad, 1), (Op.Slice, 1), (Op.Slice, 2), (Op.Slice, 3), (Op.Slice, 4)}


def flash_bytes(graph: Graph) -> int:
    """Bytes of the constants a backend must store: weights and tables, not shape arguments."""
    total = 0
    for c in graph.constants.values():
        if any((u.op, i) not in _SHAPE_SLOTS and not (u.op in REDUCTIONS and i == 1) for u, i in c.uses):
            total += value_bytes(c)
    return total


def plan_memory(graph: Graph, budget: int | None = None, chunking: bool | str | int = "auto", *,
                alignment: int = 16, time_budget: float = 0.5) -> MemoryPlan:
    """A static-arena memory plan for a specialized graph, within ``budget`` bytes if given.

    ``chunking``: False never rewrites the graph; True and "auto" chunk row-wise regions,
    attention heads and the patch embedding when that lowers the peak (with a budget: the
    fewest chunks that meet it); an int k chunks into k blocks. The plan's ``graph`` is
    then the rewritten graph and ``stats["chunks"]`` the count.

    Example:
        >>> from fuseformer.ir.specialize import specialize
        >>> plan = plan_memory(specialize(graph, {"batch": 1}), budget=320 * 1024)
        >>> print(format_report(plan))
    """
    from .chunking import chunk_graph, choose_chunks

    _check_static(graph)
    plan = build_plan(graph, alignment=alignment, time_budget=time_budget)
    plan.stats["unchunked_peak"] = plan.lower_bound
    plan.stats["chunks"] = 1
    fits = budget is None or plan.arena_bytes <= budget
    chunked = None
    if isinstance(chunking, int) and not isinstance(chunking, bool):
        if chunking > 1:
            g, report = chunk_graph(graph, chunking)
            chunked = build_plan(g, alignment=alignment, time_budget=time_budget)
            chunked.stats["chunks"] = chunking
            chunked.notes = report.sites + report.skipped
    elif chunking and not (budget is not None and fits):
        chunked = choose_chunks(graph, plan, budget, alignment=alignment, time_budget=time_budget)
    if chunked is not None:
        chunked.stats["unchunked_peak"] = plan.stats["unchunked_peak"]
        plan = chunked
    if budget is not None and plan.arena_bytes > budget:
        searched = chunking is True or chunking == "auto"
        raise MemoryBudgetError(budget_message(plan, budget, searched), plan)
    return plan


def budget_message(plan: MemoryPlan, budget: int, searched: bool = True) -> str:
    node = plan.schedule[plan.peak_step]
    live = ", ".join(f"%{v.name} {_kb(value_bytes(v))}" for v in plan.peak_live[:8])
    more = f" and {len(plan.peak_live) - 8} more" if len(plan.peak_live) > 8 else ""
    chunks = plan.stats.get("chunks", 1)
    how = f" with {chunks} chunks" if chunks > 1 else ""
    why = "".join(f" {n[0].upper()}{n[1:]}." for n in plan.notes if n.startswith("chunking:"))
    return (f"the model needs {_kb(plan.arena_bytes)} of SRAM{how}, over the {_kb(budget)} budget: "
            f"the peak ({_kb(plan.lower_bound)} live at once) is at step {plan.peak_step}, "
            f"node {node.describe()}, where {live}{more} are live. "
            f"The smallest budget reachable{'' if searched else ' with these chunking settings'} is "
            f"{_kb(plan.arena_bytes)} ({plan.arena_bytes} bytes; no schedule of this graph needs "
            f"less than {_kb(plan.lower_bound_any)}).{why}")


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"
