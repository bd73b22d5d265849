"""The memory plan: the contract between memory planning and the static-arena backends.

A ``MemoryPlan`` is made for one specialized graph (every shape static, see
``ir/specialize.py``). It fixes:

- ``schedule``: the order the nodes run in (a topological order of ``graph``);
- ``placement``: for every activation value (graph inputs and outputs included, constants
  excluded), its byte range in one arena. Two values may share bytes only when they are
  never live at once, or when one is a view of the other (a Reshape output, a Split output
  along the outermost non-unit axis, a Concat input written straight into its output) or
  an in-place result (an elementwise output over an input that dies there);
- ``arena_bytes``: the arena's size; every placement fits inside it.

A backend emits ``arena + placement[v].offset`` for every value. A copy-like kernel
(Reshape, Split, Concat, Squeeze, ...) whose source and destination coincide does nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.value import Value


@dataclass(frozen=True)
class Placement:
    offset: int  # bytes into the arena
    size: int  # bytes


@dataclass
class MemoryPlan:
    graph: Graph
    schedule: list[Node]
    placement: dict[Value, Placement]
    arena_bytes: int
    flash_bytes: int = 0  # bytes of constants (weights)
    peak_step: int = 0  # index into schedule where the most bytes are live
    peak_live: list[Value] = field(default_factory=list)
    lower_bound: int = 0  # bytes: no arena for this schedule can be smaller
    inplace: dict[Value, Value] = field(default_factory=dict)  # output -> input whose bytes it reuses
    # Added by plan_memory (passes/memory/planner.py); defaults keep naive_plan valid.
    lower_bound_any: int = 0  # bytes: no schedule of this graph can peak lower
    schedule_exact: bool = False  # the schedule is optimal in the planner's memory model
    live_bytes: list[int] = field(default_factory=list)  # per schedule step
    intervals: dict[Value, tuple[int, int]] = field(default_factory=dict)  # value -> [def, last read] steps
    views: set[Value] = field(default_factory=set)  # values no kernel writes (their bytes are their sources')
    arena_method: str = ""  # which planner produced the offsets
    stats: dict[str, int] = field(default_factory=dict)  # original_order_peak, tflm_arena, chunks, ...
    notes: list[str] = field(default_factory=list)  # what chunking did, and where it did not and why

    def offset(self, v: Value) -> int:
        return self.placement[v].offset


def value_bytes(v: Value) -> int:
    """Bytes of a statically shaped value."""
    n = 1
    for d in v.shape:
        n *= int(d)
    return n * v.dtype.numpy.itemsize


def naive_plan(graph: Graph, alignment: int = 16) -> MemoryPlan:
    """Every activation its own bytes, nodes in graph order: the plan to beat, and a fallback."""
    placement: dict[Value, Placement] = {}
    offset = 0
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    for v in values:
        size = value_bytes(v)
        placement[v] = Placement(offset, size)
        offset += -(-size // alignment) * alignment
    flash = sum(value_bytes(c) for c in graph.constants.values())
    return MemoryPlan(graph, list(graph.nodes), placement, offset, flash_bytes=flash,
                      lower_bound=0)
