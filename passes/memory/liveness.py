"""Liveness of activation buffers under a schedule, and lower bounds on peak memory.

A *buffer* is one alias group (``inplace.Aliasing``): the values that share its bytes
through views and in-place results. It is live from the first step that writes any of
its bytes to the last step that reads any of them; a graph input is live from step 0,
a graph output to the end. Steps index the schedule.

    live_bytes[s] = sum(size(b) for b live at step s)
    peak          = max_s live_bytes[s]       # no arena for this schedule is smaller

Over all schedules, every node needs its inputs and the outputs it cannot write in
place at once, and all graph inputs (outputs) are live at the first (last) step:

    bound_any = max(sum(inputs), sum(outputs), max_node sum(groups node touches))
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.value import Value
from .inplace import Aliasing, analyze_aliasing, inplace_slots
from .plan import value_bytes


@dataclass
class Buffer:
    """One arena allocation: ``size`` bytes live over steps ``start..end`` (inclusive)."""

    id: int
    size: int
    start: int
    end: int
    values: list[Value]

    def overlaps(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class Liveness:
    schedule: list[Node]
    aliasing: Aliasing
    buffers: list[Buffer]
    live_bytes: list[int]  # per step
    peak: int
    peak_step: int

    def live_at(self, step: int) -> list[Buffer]:
        return [b for b in self.buffers if b.start <= step <= b.end]

    def buffer_of(self, v: Value) -> Buffer:
        return self.buffers[self.aliasing.group(v)]


def analyze(graph: Graph, schedule: list[Node] | None = None, aliasing: Aliasing | None = None) -> Liveness:
    """Buffers, bytes live per step and the peak of ``schedule`` (default: graph order).

    Example:
        >>> lv = analyze(graph)
        >>> lv.peak, lv.schedule[lv.peak_step].describe()
    """
    schedule = list(schedule or graph.nodes)
    aliasing = aliasing or analyze_aliasing(graph, schedule)
    n = len(schedule)
    members: list[list[Value]] = [[] for _ in aliasing.sizes]
    for v, (gid, _) in aliasing.position.items():
        members[gid].append(v)
    buffers = []
    for gid, size in enumerate(aliasing.sizes):
        pieces = aliasing.pieces[gid]
        start = max(0, min((p.step for p in pieces), default=0))
        end = max([start] + [r[2] for p in pieces for r in p.reads])
        buffers.append(Buffer(gid, size, start, end, members[gid]))  # end == n: a graph output
    diff = [0] * (n + 2)
    for b in buffers:
        diff[b.start] += b.size
        diff[min(b.end, n - 1) + 1] -= b.size
    live, acc = [], 0
    for s in range(n):
        acc += diff[s]
        live.append(acc)
    peak = max(live, default=0)
    return Liveness(schedule, aliasing, buffers, live, peak, live.index(peak) if live else 0)


def value_intervals(graph: Graph, schedule: list[Node]) -> dict[Value, tuple[int, int]]:
    """Each activation's own [definition step, last read step]; graph outputs last to the end."""
    step = {n: i for i, n in enumerate(schedule)}
    last_step = max(len(schedule) - 1, 0)
    out: dict[Value, tuple[int, int]] = {}
    for v in graph.inputs:
        out[v] = (0, 0)
    for node in schedule:
        for o in node.outputs:
            out[o] = (step[node], step[node])
    for node in schedule:
        for v in node.inputs:
            if v is not None and v in out:
                a, b = out[v]
                out[v] = (a, max(b, step[node]))
    for v in graph.outputs:
        if v in out:
            out[v] = (out[v][0], last_step)
    return out


def lower_bound_any_schedule(graph: Graph) -> int:
    """A bound no schedule beats: views are free, and an output that may overwrite an
    input costs nothing (both schedule-independent facts, so the bound holds for all).
    """
    al = analyze_aliasing(graph, inplace=False, pieces=False)
    size = al.sizes

    def groups(values) -> set[int]:
        return {al.group(v) for v in values if v is not None and not v.is_const and v in al.position}

    bound = max(sum(size[g] for g in groups(graph.inputs)), sum(size[g] for g in groups(graph.outputs)))
    for node in graph.nodes:
        gs = groups(node.inputs)
        reusable = {value_bytes(node.inputs[i]) for i in inplace_slots(node)
                    if not node.inputs[i].is_const} if node.outputs else set()
        for o in node.outputs:
            if o in al.views:
                continue
            if value_bytes(o) in reusable:
                reusable.discard(value_bytes(o))
                continue
            gs.add(al.group(o))
        bound = max(bound, sum(size[g] for g in gs))
    return bound
