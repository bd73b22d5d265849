"""Check a MemoryPlan by running it on a tagged arena, the way a backend would.

Every byte of the arena carries the id of the write that last stored it and its position
in that write. Nodes run in schedule order; a copy-like node whose output already sits
where its input's bytes would go does nothing (as in the backend); every other node
writes its outputs (a Concat writes only the inputs that are not already in place).
Before a node runs, each input must still hold exactly the bytes it was given; at the
end, each graph output must. Independently of the alias analysis that made the plan, this
catches any overlap that destroys a value still needed, a view that is not byte-exact, and
an output that overlaps an input it may not overwrite.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value
from .inplace import VIEW_OPS, _slice_offset, contiguous_prefix, inplace_slots
from .plan import MemoryPlan, value_bytes

# (lo, hi) in value bytes, write id, position of byte lo inside that write
Segments = list[tuple[int, int, int, int]]


def _noop_sources(node: Node, plan: MemoryPlan) -> list[tuple[Value, int]] | None:
    """For a copy-like node the backend skips: (source, byte offset of the output in it)."""
    place = plan.placement
    if not node.inputs or node.inputs[0] is None or node.inputs[0].is_const:
        return None
    src = node.inputs[0]
    if node.op in VIEW_OPS:
        return [(src, 0)] if place[node.output].offset == place[src].offset else None
    if node.op is Op.Split and contiguous_prefix(src.shape, node.attrs.axis % len(src.shape)):
        lo, res = 0, []
        for o in node.outputs:
            if place[o].offset != place[src].offset + lo:
                return None
            res.append((src, lo))
            lo += value_bytes(o)
        return res
    if node.op is Op.Slice:
        lo = _slice_offset(node)
        if lo is not None and place[node.output].offset == place[src].offset + lo:
            return [(src, lo)]
    return None


def check_plan(plan: MemoryPlan) -> list[str]:
    """Every hazard in ``plan``, each naming the node and value; empty when the plan is sound."""
    graph, place = plan.graph, plan.placement
    problems: list[str] = []
    # one tag per `unit` bytes: every offset and size is a multiple of it
    unit = math.gcd(plan.arena_bytes, *(p.offset for p in place.values()), *(p.size for p in place.values()))
    unit = max(unit, 1)
    ids = np.full(plan.arena_bytes // unit, -1, np.int32)
    pos = np.zeros(plan.arena_bytes // unit, np.int32)
    expect: dict[Value, Segments] = {}
    counter = iter(range(1, 1 << 31))

    def write(v: Value, lo: int, hi: int) -> Segments:
        wid, off = next(counter), place[v].offset
        ids[(off + lo) // unit:(off + hi) // unit] = wid
        pos[(off + lo) // unit:(off + hi) // unit] = np.arange((hi - lo) // unit)
        return [(lo, hi, wid, 0)]

    def intact(v: Value) -> bool:
        off = place[v].offset
        return all(np.array_equal(ids[(off + a) // unit:(off + b) // unit], np.full((b - a) // unit, wid))
                   and np.array_equal(pos[(off + a) // unit:(off + b) // unit],
                                      np.arange(p // unit, (p + b - a) // unit))
                   for a, b, wid, p in expect[v])

    for v in list(graph.inputs) + [o for n in plan.schedule for o in n.outputs]:
        p = place.get(v)
        if p is None or p.offset < 0 or p.offset + value_bytes(v) > plan.arena_bytes:
            problems.append(f"%{v.name} is not placed inside the {plan.arena_bytes}-byte arena")
    if problems:
        return problems
    for v in graph.inputs:
        expect[v] = write(v, 0, value_bytes(v))
    for step, node in enumerate(plan.schedule):
        for v in node.inputs:
            if v is not None and not v.is_const and not intact(v):
                problems.append(f"step {step} {node.describe()}: input %{v.name} was overwritten")
        noop = _noop_sources(node, plan)
        if noop is not None:
            for o, (src, lo) in zip(node.outputs, noop):
                expect[o] = _shift(expect[src], lo, lo + value_bytes(o))
            continue
        if node.op is Op.Concat:
            _concat(node, plan, expect, write, problems, step)
            continue
        _check_overlap(node, plan, problems, step)
        for o in node.outputs:
            expect[o] = write(o, 0, value_bytes(o))
    for v in graph.outputs:
        if not v.is_const and not intact(v):
            problems.append(f"graph output %{v.name} was overwritten before the end")
    return problems


def _concat(node: Node, plan: MemoryPlan, expect: dict[Value, Segments], write, problems: list[str],
            step: int) -> None:
    out, place = node.output, plan.placement
    segs: Segments = []
    lo = 0
    axis_ok = contiguous_prefix(out.shape, node.attrs.axis % len(out.shape))
    o0, o1 = place[out].offset, place[out].offset + value_bytes(out)
    for v in node.inputs:
        size = value_bytes(v)
        if axis_ok and not v.is_const and place[v].offset == o0 + lo:
            segs += [(a + lo, b + lo, w, p) for a, b, w, p in expect[v]]
        else:
            if not v.is_const and place[v].offset < o1 and o0 < place[v].offset + size:
                problems.append(f"step {step} {node.describe()}: copied input %{v.name} overlaps "
                                f"the output %{out.name}")
            if axis_ok:
                segs += write(out, lo, lo + size)
        lo += size
    expect[out] = segs if axis_ok else write(out, 0, value_bytes(out))


def _check_overlap(node: Node, plan: MemoryPlan, problems: list[str], step: int) -> None:
    place = plan.placement
    safe = set(inplace_slots(node)) if node.outputs else set()
    for o in node.outputs:
        a0, a1 = place[o].offset, place[o].offset + value_bytes(o)
        for slot, v in enumerate(node.inputs):
            if v is None or v.is_const:
                continue
            b0, b1 = place[v].offset, place[v].offset + value_bytes(v)
            if a0 < b1 and b0 < a1 and not (slot in safe and (a0, a1) == (b0, b1)):
                problems.append(f"step {step} {node.describe()}: output %{o.name} overlaps input "
                                f"%{v.name}, which it cannot overwrite")
        for o2 in node.outputs:
            if o2 is not o and a0 < place[o2].offset + value_bytes(o2) and place[o2].offset < a1:
                problems.append(f"step {step} {node.describe()}: outputs %{o.name} and %{o2.name} overlap")


def _shift(segs: Segments, lo: int, hi: int) -> Segments:
    out = []
    for a, b, w, p in segs:
        a2, b2 = max(a, lo), min(b, hi)
        if a2 < b2:
            out.append((a2 - lo, b2 - lo, w, p + a2 - a))
    return out
