"""From lowered steps to a program: what runs, where each value lives, the arena plan.

A value lives in one of: an input or output buffer the caller passes, the
weights file, the arena (at a planned offset), or another value's buffer (a
view: Reshape and friends never copy). Only what the graph outputs need is
computed: a node runs when one of its outputs is read as data; a value whose
elements are known at compile time (shape arithmetic) is written as constants
instead, where something reads it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.analysis import liveness
from ...ir.graph import Graph
from ...ir.value import Value
from .errors import ShapeError
from .lowering import Ctx, Info, Step
from .packing import pack_panels, packed_bytes
from .planner import Buffer, check, plan
from .regions import Region, find_regions
from .symexpr import Bounds, Expr


@dataclass
class Storage:
    kind: str  # "input", "output", "weight", "arena" or "alias"
    index: int = 0  # input, output or weight number
    alias_of: Value | None = None
    offset: int = 0  # bytes into the arena


@dataclass
class Program:
    graph: Graph
    ctx: Ctx
    steps: list[Step]
    symbols: list[str]
    maxima: dict[str, int]
    storage: dict[int, Storage] = field(default_factory=dict)
    weights: list[Value] = field(default_factory=list)
    run: list[bool] = field(default_factory=list)  # per step: does the node's code run
    fills: dict[int, list[Value]] = field(default_factory=dict)  # step -> values written as constants
    copies: list[tuple[int, Value]] = field(default_factory=list)  # (output number, value) at the end
    scratch: dict[int, int] = field(default_factory=dict)  # step -> arena offset of its scratch
    regions: list[Region] = field(default_factory=list)  # row regions (regions.py)
    arena_bytes: int = 0

    def info(self, v: Value) -> Info:
        return self.ctx.infos[id(v)]

    def weight_array(self, v: Value):
        """The bytes of weight ``v`` as the kernels read them (packed for packed_gemm.h or not)."""
        arr = v.const.numpy()
        if id(v) in self.ctx.packed:
            return pack_panels(arr)
        return np.require(arr, requirements="C")

    def weight_nbytes(self, v: Value) -> int:
        if id(v) in self.ctx.packed:
            k, n = v.const.shape
            return packed_bytes(k, n, v.const.dtype.itemsize)
        return v.const.nbytes

    def root(self, v: Value) -> Value:
        s = self.storage[id(v)]
        while s.kind == "alias":
            v = s.alias_of
            s = self.storage[id(v)]
        return v


def symbol_order(graph: Graph) -> list[str]:
    """Symbols in order of first appearance in the inputs: the order of ff_run's dims array."""
    names: list[str] = []
    for v in graph.inputs:
        for d in v.shape or ():
            name = getattr(d, "name", None)
            if name is not None and name not in names:
                names.append(name)
    return names


def build_program(graph: Graph, ctx: Ctx, steps: list[Step], maxima: dict[str, int]) -> Program:
    prog = Program(graph, ctx, steps, symbol_order(graph), dict(maxima))
    needed = _needed(prog)
    _assign_storage(prog, needed)
    prog.regions = find_regions(prog)
    _plan_arena(prog, ctx.bounds)
    return prog


def _needed(prog: Program) -> set[int]:
    """Values read as data (by a running node or as a graph output); sets ``prog.run``."""
    needed = {id(v) for v in prog.graph.outputs}
    run = [False] * len(prog.steps)
    for i in range(len(prog.steps) - 1, -1, -1):
        step = prog.steps[i]
        outs = [(v, info) for v, info in zip(step.node.outputs, step.lowered.outputs)]
        if not any(id(v) in needed and info.elems is None for v, info in outs):
            continue
        if step.lowered.emit is None:
            raise ShapeError(f"node {step.node.describe()}: its outputs are needed at run time but "
                             f"the CPU rule emits no code for it")
        run[i] = True
        for slot, v in enumerate(step.node.inputs):
            if v is not None and slot not in step.lowered.static:
                needed.add(id(v))
    prog.run = run
    return needed


def _assign_storage(prog: Program, needed: set[int]) -> None:
    g = prog.graph
    for k, v in enumerate(g.inputs):
        prog.storage[id(v)] = Storage("input", k)
    for v in g.constants.values():
        if id(v) in needed:
            prog.storage[id(v)] = Storage("weight", len(prog.weights))
            prog.weights.append(v)
    output_slot: dict[int, int] = {}
    for k, v in enumerate(g.outputs):
        output_slot.setdefault(id(v), k)
    for i, step in enumerate(prog.steps):
        for j, v in enumerate(step.node.outputs):
            info = step.lowered.outputs[j]
            if prog.run[i]:
                if j == 0 and step.lowered.view:
                    prog.storage[id(v)] = Storage("alias", alias_of=step.node.inputs[0])
                    continue
            elif id(v) in needed and info.elems is not None:
                prog.fills.setdefault(i, []).append(v)
            else:
                continue
            slot = output_slot.get(id(v))
            prog.storage[id(v)] = Storage("output", slot) if slot is not None else Storage("arena")
    for k, v in enumerate(g.outputs):
        s = prog.storage[id(v)]
        if not (s.kind == "output" and s.index == k):
            prog.copies.append((k, v))


def _plan_arena(prog: Program, bounds: Bounds) -> None:
    g = prog.graph
    end = len(g.nodes)
    live = liveness(g)
    step_of = {id(s.node): i for i, s in enumerate(prog.steps)}
    last: dict[int, int] = {}
    first: dict[int, int] = {}
    # the IR's liveness gives definitions and graph outputs; the last read is tightened to
    # the running nodes' data reads (a Shape node reading a big tensor does not keep it)
    for v, (start, stop) in live.items():
        if id(v) in prog.storage:
            first[id(v)] = start
            last[id(v)] = stop if stop == end else start
    for i, step in enumerate(prog.steps):
        if not prog.run[i]:
            continue
        for slot, v in enumerate(step.node.inputs):
            if v is not None and slot not in step.lowered.static and id(v) in last:
                last[id(v)] = max(last[id(v)], i)
    for _, v in prog.copies:
        if id(v) in last:
            last[id(v)] = end
    # a view keeps its root's buffer alive as long as the view is read
    for i, step in enumerate(prog.steps):
        for v in step.node.outputs:
            s = prog.storage.get(id(v))
            if s is not None and s.kind == "alias":
                root = prog.root(v)
                if id(root) in last:
                    last[id(root)] = max(last[id(root)], last[id(v)])
    # a region's kernels run at the same time on different rows: whatever one of them
    # touches must not share bytes with anything another touches, so it lives throughout
    for r in prog.regions:
        for key in first:
            if first[key] <= r.last and r.first <= last[key]:
                first[key], last[key] = min(first[key], r.first), max(last[key], r.last)
    buffers: list[Buffer] = []
    by_key: dict[int, Storage] = {}
    for i, step in enumerate(prog.steps):
        for v in step.node.outputs:
            s = prog.storage.get(id(v))
            if s is None or s.kind != "arena":
                continue
            info = prog.info(v)
            size = _max_bytes(bounds, info.numel, info.dtype.itemsize, v.name)
            buffers.append(Buffer(id(v), size, first[id(v)], last[id(v)]))
            by_key[id(v)] = s
        scratch = step.lowered.scratch
        if prog.run[i] and not scratch.is_value(0):
            size = _max_bytes(bounds, scratch, 1, f"scratch of {step.node.describe()}")
            buffers.append(Buffer(("scratch", i), size, step_of[id(step.node)], step_of[id(step.node)]))
    prog.arena_bytes = plan(buffers)
    check(buffers)
    for b in buffers:
        if isinstance(b.key, tuple):
            prog.scratch[b.key[1]] = b.offset
        else:
            by_key[b.key].offset = b.offset


def _max_bytes(bounds: Bounds, count: Expr, itemsize: int, what: str) -> int:
    lo, hi = bounds.range(count)
    if hi is None:
        raise ShapeError(f"cannot bound the size of {what} ({count} elements) from the symbols' maxima")
    return max(hi, 0) * itemsize
