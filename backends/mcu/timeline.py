"""The memory timeline of a plan: when each value lives, and how many arena bytes are live per step.

    interval(v) = [step that writes v (0 for a graph input), last step that reads it]
                  (a graph output lives to the last step)
    live[s]     = bytes of the union of the byte ranges of the values live at step s

Values sharing bytes (views, in-place results) count once. A plan from plan_memory
carries both (``intervals``, ``live_bytes``: it counts a shared buffer as live while
any of its values is), and they are used as given, so the report agrees with the
planner's; any other plan (naive_plan, one made by hand) gets them derived from its
schedule and placements. The budget error, the ``--report`` table and memory.png all
read it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.node import Node
from ...ir.value import Value
from ...passes.memory.plan import MemoryPlan, value_bytes


@dataclass(frozen=True)
class Interval:
    value: Value
    start: int  # first step it is live
    end: int  # last step it is live (inclusive)
    offset: int  # bytes into the arena
    size: int


@dataclass
class Timeline:
    schedule: list[Node]
    intervals: list[Interval]
    live: list[int]  # bytes live per step
    arena_bytes: int

    @property
    def peak_step(self) -> int:
        return self.live.index(max(self.live)) if self.live else 0

    @property
    def peak_bytes(self) -> int:
        return max(self.live, default=0)

    def live_at(self, step: int) -> list[Interval]:
        """The values live at ``step``, largest first."""
        hits = [iv for iv in self.intervals if iv.start <= step <= iv.end]
        return sorted(hits, key=lambda iv: (-iv.size, iv.offset))

    def table(self, limit: int | None = None) -> str:
        """One line per step: live bytes, op and node, the peak marked with *.

        With ``limit`` and more steps than that, only the first steps, those around the
        peak and the last ones are shown.
        """
        head = f"{'step':>5}  {'live bytes':>12}  {'op':<20} node"
        peak = self.peak_step
        steps = list(range(len(self.schedule)))
        if limit is not None and len(steps) > limit:
            third = max(limit // 3, 1)
            keep = set(steps[:third]) | set(steps[-third:])
            keep |= set(range(max(peak - third // 2, 0), min(peak + third // 2 + 1, len(steps))))
            steps = sorted(keep)
        lines = [head, "-" * len(head)]
        for k, s in enumerate(steps):
            if k and s != steps[k - 1] + 1:
                lines.append(f"{'...':>5}")
            node = self.schedule[s]
            mark = "*" if s == peak else " "
            lines.append(f"{s:>5}{mark} {self.live[s]:>12,}  {node.op.value:<20} {node.name}")
        lines.append(f"peak {self.peak_bytes:,} bytes live at step {peak} (*) of {len(self.schedule)}; "
                     f"arena {self.arena_bytes:,} bytes")
        return "\n".join(lines)


def timeline(plan: MemoryPlan) -> Timeline:
    schedule = list(plan.schedule)
    given = getattr(plan, "intervals", None) or {}
    spans = {id(v): [v, a, b] for v, (a, b) in given.items()} if given else _intervals(plan, schedule)
    intervals = []
    for v, start, end in spans.values():
        p = plan.placement.get(v)
        if p is None:
            continue
        intervals.append(Interval(v, start, end, p.offset, value_bytes(v)))
    live = list(getattr(plan, "live_bytes", None) or [])
    if len(live) != len(schedule):
        live = [_union_bytes([iv for iv in intervals if iv.start <= s <= iv.end]) for s in range(len(schedule))]
    return Timeline(schedule, intervals, live, plan.arena_bytes)


def _intervals(plan: MemoryPlan, schedule: list[Node]) -> dict[int, list]:
    step = {id(n): i for i, n in enumerate(schedule)}
    last = max(len(schedule) - 1, 0)
    span: dict[int, list] = {}
    for v in plan.graph.inputs:
        span[id(v)] = [v, 0, 0]
    for node in schedule:
        for o in node.outputs:
            span[id(o)] = [o, step[id(node)], step[id(node)]]
    for node in schedule:
        for v in node.inputs:
            if v is not None and id(v) in span:
                span[id(v)][2] = max(span[id(v)][2], step[id(node)])
    for v in plan.graph.outputs:
        if id(v) in span:
            span[id(v)][2] = last
    return span


def _union_bytes(intervals: list[Interval]) -> int:
    total, reach = 0, -1
    for a, b in sorted((iv.offset, iv.offset + iv.size) for iv in intervals):
        if b <= reach:
            continue
        total += b - max(a, reach)
        reach = b
    return total
