"""Lowering one node to C99: the rule registry and the emitter a rule writes through.

A rule ``fn(e: Emitter) -> None`` is registered for one or more ops. Every shape is
static (the graph was specialized), so a rule decides everything at compile time:
loop bounds, strides, and whether a copy is needed at all (a view whose planned
bytes already hold the data emits nothing).

Aliasing. The memory plan may place an output over an input (see
passes/memory/plan.py). Before a rule runs, ``check_aliasing`` compares the byte
ranges of the node's outputs and inputs and accepts an overlap only where the rule's
``alias`` policy says its kernel is correct with it:

- ``ELEMENTWISE``: an output exactly over an input of the same shape (each element is
  read before the same element is written);
- ``COPY``: the rule checks overlaps itself (copies that are views do nothing, the
  rest use memmove or refuse);
- a set of ``(output, input)`` slot pairs that may coincide exactly (a norm over its
  input, Linear over its residual);
- ``NONE``: no overlap at all.

Anything else is a broken plan: ``PlanError`` names the node and both values.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.value import Value
from ...passes.memory.plan import MemoryPlan, value_bytes
from ..cpu.source import Source
from .ctext import ctype
from .errors import PlanError, ShapeError, UnsupportedOpError

ELEMENTWISE = "elementwise"
COPY = "copy"
NONE = "none"

Rule = Callable[["Emitter"], None]


@dataclass(frozen=True)
class RuleEntry:
    fn: Rule
    alias: str | frozenset[tuple[int, int]]


RULES: dict = {}


def rule(*ops, alias: str | set[tuple[int, int]] = NONE) -> Callable[[Rule], Rule]:
    frozen = alias if isinstance(alias, str) else frozenset(alias)

    def register(fn: Rule) -> Rule:
        for op in dict.fromkeys(ops):  # tables may share ops (float and integer forms)
            if op in RULES:
                raise ValueError(f"{op} has two MCU rules")
            RULES[op] = RuleEntry(fn, frozen)
        return fn
    return register


def static_shape(v: Value) -> tuple[int, ...]:
    if v.shape is None or not all(isinstance(d, int) for d in v.shape):
        where = f" (made by {v.producer.describe()})" if v.producer is not None else ""
        raise ShapeError(f"value {v.name!r}{where} has shape {v.type_str()}: the MCU "
                         f"target needs every shape static; pass dims to specialize the graph")
    return tuple(int(d) for d in v.shape)


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for d in reversed(shape):
        strides.append(acc)
        acc *= d
    return tuple(reversed(strides))


class Program:
    """What the renderer needs from lowering: C names of values, used constants and kernels."""

    def __init__(self, plan: MemoryPlan):
        self.plan = plan
        self.names: dict[Value, str] = {}
        self.constants: list[Value] = []  # in first-use order: each becomes a const array
        self.kernels: list[str] = []  # kernel library entries the code calls
        self.status: dict[int, str] = {}  # run() return code -> which node found what
        for i, v in enumerate(plan.placement):
            self.names[v] = f"v{i}"

    def use_constant(self, v: Value) -> str:
        """The const array of ``v``; weights are numbered in the order the code first reads them."""
        if v not in self.constants:
            self.constants.append(v)
            self.names[v] = f"w{len(self.constants) - 1}"
        return self.names[v]

    def use_kernel(self, name: str) -> None:
        if name not in self.kernels:
            self.kernels.append(name)


class Emitter:
    """What a rule reads (its node, shapes, static inputs) and writes (C lines) through."""

    def __init__(self, program: Program, node: Node, step: int):
        self.program = program
        self.node = node
        self.step = step
        self.src = Source()
        self.notes: list[str] = []  # comments for the step's heading (what it did not need to do)
        self._decls: dict[Value, str] = {}
        self._counter = 0

    # ---- reading the node ------------------------------------------------
    @property
    def inputs(self) -> list[Value | None]:
        return self.node.inputs

    @property
    def outputs(self) -> list[Value]:
        return self.node.outputs

    @property
    def attrs(self):
        return self.node.attrs

    def input(self, i: int) -> Value | None:
        return self.node.input(i)

    def shape(self, v: Value) -> tuple[int, ...]:
        return static_shape(v)

    def static(self, i: int, what: str) -> np.ndarray:
        """The elements of input i, which must be a constant (shape, axes, pads, ...)."""
        v = self.node.input(i)
        if v is None or v.const is None:
            raise ShapeError(f"node {self.node.describe()}: its {what} (input {i}) is computed at run "
                             f"time; the MCU target needs it at compile time")
        return np.asarray(v.const.numpy())

    def static_ints(self, i: int, what: str) -> list[int]:
        return [int(x) for x in self.static(i, what).reshape(-1)]

    def unsupported(self, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"node {self.node.describe()}: {why} (no C99 kernel)")

    def require_float(self, *values: Value | None) -> None:
        for v in values:
            if v is not None and v.dtype is not DType.FLOAT:
                raise self.unsupported(f"{self.node.op.value} on {v.dtype.short} (float32 only)")

    # ---- where values live -----------------------------------------------
    def dropped(self, v: Value) -> bool:
        """An output nobody reads that the plan gave no bytes: the kernel skips writing it."""
        plan = self.program.plan
        return (v.const is None and v not in plan.placement and not v.uses
                and not any(o is v for o in plan.graph.outputs))

    def span(self, v: Value) -> tuple[int, int] | None:
        """(first byte, end byte) of an arena value; None for a constant or a dropped output."""
        if v.const is not None or self.dropped(v):
            return None
        p = self.program.plan.placement.get(v)
        if p is None:
            raise PlanError(f"node {self.node.describe()}: the memory plan places no bytes for "
                            f"value {v.name!r}")
        return p.offset, p.offset + value_bytes(v)

    def ptr(self, v: Value | None) -> str:
        """A C expression of ``v``'s data: a typed pointer into the arena, or its const array."""
        if v is None or self.dropped(v):
            return "0"  # kernels take a null pointer for an absent operand or an unwritten output
        if v.const is not None:
            return self.program.use_constant(v)
        if v not in self._decls:
            self.span(v)
            self._decls[v] = self.program.names[v]
        return self._decls[v]

    # ---- writing ---------------------------------------------------------
    def line(self, text: str) -> None:
        self.src.line(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def block(self, head: str = "") -> contextlib.AbstractContextManager:
        return self.src.block(head)

    def temp(self, hint: str = "t") -> str:
        self._counter += 1
        return f"{hint}{self._counter}"

    @contextlib.contextmanager
    def loop(self, extent: int, hint: str = "i") -> Iterator[str]:
        """``for (int i = 0; i < extent; ++i) { ... }``; yields the index name."""
        i = self.temp(hint)
        with self.block(f"for (int {i} = 0; {i} < {extent}; ++{i})"):
            yield i

    def kernel(self, name: str) -> None:
        self.program.use_kernel(name)

    def fail_status(self, why: str) -> str:
        """``return K;`` for this node: run() returns K when the data is bad (an index out of range)."""
        code = self.step + 1
        self.program.status[code] = f"step {self.step}, node {self.node.describe()}: {why}"
        return f"return {code};"

    def declarations(self) -> list[str]:
        """The pointer locals this node's code uses, for the top of its block."""
        written = {id(v) for v in self.node.outputs}
        lines = []
        order = {id(v): k for k, v in enumerate(list(self.node.inputs) + self.node.outputs) if v is not None}
        for v, name in sorted(self._decls.items(), key=lambda kv: order.get(id(kv[0]), len(order))):
            offset = self.program.plan.placement[v].offset
            t = ctype(v.dtype)
            const = "" if id(v) in written else "const "
            lines.append(f"{const}{t}* const {name} = ({const}{t}*)(ARENA + {offset});")
        return lines


def check_aliasing(e: Emitter, alias) -> None:
    """Refuse a plan whose overlaps this node's kernel cannot run with (see the module doc)."""
    if alias == COPY:
        return
    node = e.node
    spans = [(j, v, e.span(v)) for j, v in enumerate(node.outputs)]
    for a in range(len(spans)):
        for b in range(a + 1, len(spans)):
            if _overlap(spans[a][2], spans[b][2]):
                raise PlanError(f"node {node.describe()}: outputs {spans[a][1].name!r} and "
                                f"{spans[b][1].name!r} share bytes in the memory plan")
    for j, out, so in spans:
        for i, v in enumerate(node.inputs):
            if v is None or v.const is not None:
                continue
            si = e.span(v)
            if not _overlap(so, si):
                continue
            exact = so == si and static_shape(v) == static_shape(out)
            if exact and (alias == ELEMENTWISE or (isinstance(alias, frozenset) and (j, i) in alias)):
                continue
            raise PlanError(f"node {node.describe()}: the memory plan places output "
                            f"{out.name!r} (bytes {so[0]}..{so[1]}) over input "
                            f"{v.name!r} (bytes {si[0]}..{si[1]}); its kernel cannot run "
                            f"in place that way")


def _overlap(a: tuple[int, int] | None, b: tuple[int, int] | None) -> bool:
    if a is None or b is None:
        return False
    return a[0] < b[1] and b[0] < a[1] and a[0] != a[1] and b[0] != b[1]


def lower_node(program: Program, node: Node, step: int) -> Emitter:
    """Run the node's rule; the emitter holds its code, declarations and kernel needs."""
    entry = RULES.get(node.op)
    if entry is None:
        raise UnsupportedOpError(f"node {node.describe()}: the MCU target has no C99 kernel for "
                                 f"{node.op.value}")
    e = Emitter(program, node, step)
    for v in list(node.inputs) + list(node.outputs):
        if v is not None:
            static_shape(v)
            ctype(v.dtype)
    check_aliasing(e, entry.alias)
    entry.fn(e)
    return e
