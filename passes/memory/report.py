"""What a memory plan says to people: a text report and the data of a timeline picture.

``format_report(plan)`` is what ``optimize --target mcu`` prints: peak SRAM, flash, the
peak step and the tensors live there, arena against the lower bounds. ``timeline(plan)``
gives what a PNG timeline draws: bytes live per step, and for each tensor the rectangle
[start step, end step] x [offset, offset + size) it holds in the arena.
"""
from __future__ import annotations

from dataclasses import dataclass

from .plan import MemoryPlan, value_bytes


def kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def format_report(plan: MemoryPlan, *, top: int = 10) -> str:
    """A few lines for the command line.

    Example:
        >>> print(format_report(plan_memory(specialized_graph)))
    """
    g, n = plan.graph, len(plan.schedule)
    stats = plan.stats
    how = "optimal in the planner's model" if plan.schedule_exact else "heuristic (graph too large for the exact DP)"
    lines = [f"memory plan for {g.name}: {n} steps, schedule {how}"]
    over = plan.arena_bytes / plan.lower_bound - 1 if plan.lower_bound else 0.0
    lines.append(f"  peak SRAM (arena)   {kb(plan.arena_bytes):>10}  ({plan.arena_bytes} bytes, "
                 f"{plan.arena_method or 'unknown'}; {over:+.1%} over the bound below)")
    if "tflm_arena" in stats:
        lines.append(f"  TFLM greedy arena   {kb(stats['tflm_arena']):>10}")
    lines.append(f"  live-bytes bound    {kb(plan.lower_bound):>10}  (this schedule; any schedule: "
                 f">= {kb(plan.lower_bound_any)})")
    if "original_order_peak" in stats:
        lines.append(f"  graph-order peak    {kb(stats['original_order_peak']):>10}")
    chunks = stats.get("chunks", 1)
    if chunks > 1:
        lines.append(f"  chunking            {chunks:>7} blocks  (peak without: {kb(stats['unchunked_peak'])})")
    lines.append(f"  flash (weights)     {kb(plan.flash_bytes):>10}  ({plan.flash_bytes} bytes)")
    if plan.schedule:
        node = plan.schedule[plan.peak_step]
        lines.append(f"  peak at step {plan.peak_step}: {node.describe()}; live there:")
        for v in plan.peak_live[:top]:
            lines.append(f"    %{v.name} {v.type_str()} {kb(value_bytes(v))}")
        if len(plan.peak_live) > top:
            rest = sum(value_bytes(v) for v in plan.peak_live[top:])
            lines.append(f"    ... {len(plan.peak_live) - top} more, {kb(rest)}")
    if plan.inplace or plan.views:
        lines.append(f"  {len(plan.inplace)} outputs written in place, {len(plan.views)} views (no copy)")
    for note in plan.notes:
        lines.append(f"  - {note}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Rect:
    name: str
    start: int  # first step
    end: int  # last step (inclusive)
    offset: int  # bytes into the arena
    size: int
    kind: str  # "tensor", "view" or "inplace"


@dataclass
class Timeline:
    live_bytes: list[int]  # per step
    rects: list[Rect]
    arena_bytes: int
    lower_bound: int
    peak_step: int
    steps: list[str]  # node names, per step


def timeline(plan: MemoryPlan) -> Timeline:
    """Per-step live bytes and per-tensor arena rectangles (views and in-place marked)."""
    rects = []
    for v, (start, end) in plan.intervals.items():
        p = plan.placement.get(v)
        if p is None:
            continue
        kind = "view" if v in plan.views else "inplace" if v in plan.inplace else "tensor"
        rects.append(Rect(v.name, start, end, p.offset, p.size, kind))
    rects.sort(key=lambda r: (r.start, r.offset))
    return Timeline(list(plan.live_bytes), rects, plan.arena_bytes, plan.lower_bound, plan.peak_step,
                    [n.name for n in plan.schedule])
