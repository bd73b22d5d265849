"""Lowering rules: per op, the output shapes as expressions of the symbols and the code to emit.

A rule ``fn(ctx, node) -> Lowered`` is registered for one or more ops. It reads
its inputs' ``Info`` (dtype, symbolic shape and, for small integer tensors such
as shapes, their elements known at compile time), checks what the kernels
support, and returns the outputs' ``Info`` with a closure that emits the C++
for the node. A rule whose outputs' elements are all known needs no code: the
node is folded away, and its outputs are written as constants where a kernel
reads them.

``lower_graph`` runs the rules in graph order and fails on the first node
without a rule, before anything is written.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ...ir.dtype import DType
from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.shape import Sym
from ...ir.value import Value
from .errors import ShapeError, UnsupportedOpError
from .symexpr import Bounds, Expr, contiguous_strides, numel

# Integer tensors up to this many elements carry their elements at compile time (shape math).
MAX_ELEMS = 64
ONE = Expr.const(1)
ZERO = Expr.const(0)


@dataclass
class Info:
    """What the compiler knows about a value: dtype, symbolic shape, maybe its elements."""

    dtype: DType
    shape: tuple[Expr, ...]
    elems: tuple[Expr, ...] | None = None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Expr:
        return numel(self.shape)


@dataclass(frozen=True)
class RowForm:
    """A node that can compute any range of its rows on the calling thread (regions.py).

    Every output is read as ``count`` rows of ``numel / count`` elements in its buffer. Row r
    of the outputs needs only row r of the ``matched`` input slots (read the same way) and
    any part of the other inputs. ``emit(e, lo, hi)`` writes the call that computes rows
    [lo, hi) (``lo`` and ``hi`` are C++ expressions); ``work`` is about its multiply-adds.
    """

    count: Expr
    emit: Callable
    matched: frozenset[int]
    work: Expr


@dataclass
class Lowered:
    """A rule's answer for one node.

    ``emit`` writes the node's code (None when every output's elements are known);
    ``static`` lists input slots read at compile time only (shape, axes and pads
    inputs), which need no buffer; ``view`` makes output 0 share input 0's buffer;
    ``scratch`` is the bytes of temporary arena space the kernel uses; ``status``
    says what a failing kernel call means, for the runtime's error message; ``rows``
    is the node's row form, when its kernel has one.
    """

    outputs: list[Info]
    emit: Callable | None = None
    static: frozenset[int] = frozenset()
    view: bool = False
    scratch: Expr = field(default_factory=lambda: ZERO)
    status: str | None = None
    rows: RowForm | None = None


def no_code(e) -> None:
    """The emit of a view: its output shares its input's buffer, so nothing runs."""


Rule = Callable[["Ctx", Node], Lowered]
RULES: dict = {}


def rule(*ops) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op in ops:
            if op in RULES:
                raise ValueError(f"{op} has two CPU lowering rules")
            RULES[op] = fn
        return fn
    return register


class Ctx:
    """The state rules read: value infos and the symbols' bounds."""

    def __init__(self, bounds: Bounds, graph: Graph | None = None, pack_weights: bool = False):
        self.bounds = bounds
        # Linear weights may be stored packed for packed_gemm.h (packing.py); ``packed``
        # holds the ids of the constants that are, which every reader then takes packed
        self.pack_weights = pack_weights
        self.packed: set[int] = set()
        self.infos: dict[int, Info] = {}
        self.graph_outputs = {id(v) for v in graph.outputs} if graph is not None else set()
        # values whose buffer is not laid out contiguously in their own shape: id -> element
        # strides. Only made for a value whose every reader takes strides (see heads.py).
        self.strided: dict[int, tuple[Expr, ...]] = {}
        # nodes a later rule must lower as views, as an earlier rule decided (see heads.py)
        self.fused_views: set[int] = set()

    def info(self, v: Value | None) -> Info:
        if v is None:
            raise ValueError("a required input is missing")
        return self.infos[id(v)]

    def input(self, node: Node, i: int) -> Info | None:
        v = node.input(i)
        return None if v is None else self.infos[id(v)]

    def static(self, node: Node, i: int, what: str) -> tuple[Expr, ...]:
        """The elements of input i, which must be known at compile time."""
        v = node.input(i)
        info = None if v is None else self.infos[id(v)]
        if info is None or info.elems is None:
            raise ShapeError(f"node {node.describe()}: its {what} (input {i}) is computed from data at "
                             f"run time; the CPU backend needs it at compile time")
        return info.elems

    def static_ints(self, node: Node, i: int, what: str) -> list[int]:
        out = []
        for e in self.static(node, i, what):
            if not e.is_const:
                raise ShapeError(f"node {node.describe()}: its {what} must be constants, got {e}")
            out.append(e.value)
        return out

    def unsupported(self, node: Node, why: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"node {node.describe()}: {why} (no CPU kernel)")

    def broadcast(self, node: Node, shapes: Sequence[tuple[Expr, ...]]) -> tuple[Expr, ...]:
        rank = max((len(s) for s in shapes), default=0)
        out = []
        for axis in range(rank):
            dims = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0}
            dims.discard(ONE)
            if len(dims) > 1:
                raise ShapeError(f"node {node.describe()}: cannot show that dims "
                                 f"{sorted(map(str, dims))} broadcast (axis {axis})")
            out.append(dims.pop() if dims else ONE)
        return tuple(out)


def axis_index(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ShapeError(f"node {node.describe()}: axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def broadcast_strides(shape: tuple[Expr, ...], out: tuple[Expr, ...]) -> tuple[Expr, ...]:
    """Element strides reading ``shape`` as if broadcast to ``out`` (0 along repeated dims)."""
    pad = len(out) - len(shape)
    full = (ONE,) * pad + tuple(shape)
    strides = contiguous_strides(full)
    return tuple(ZERO if d == ONE and o != ONE else s for d, s, o in zip(full, strides, out))


def coalesce(dims: Sequence[Expr], strides: Sequence[Sequence[Expr]]):
    """Merge adjacent dims that every operand walks contiguously (fewer, longer loops).

    Returns (dims, [strides per operand]); size-1 dims are dropped; rank is at least 1.
    """
    keep = [i for i, d in enumerate(dims) if d != ONE]
    out_dims: list[Expr] = []
    out_strides: list[list[Expr]] = [[] for _ in strides]
    for i in keep:
        if out_dims and all(st[-1] == s[i] * dims[i] for st, s in zip(out_strides, strides)):
            out_dims[-1] = out_dims[-1] * dims[i]
            for st, s in zip(out_strides, strides):
                st[-1] = s[i]
            continue
        out_dims.append(dims[i])
        for st, s in zip(out_strides, strides):
            st.append(s[i])
    if not out_dims:
        return [ONE], [[ONE] for _ in strides]
    return out_dims, out_strides


def const_info(v: Value) -> Info:
    shape = tuple(Expr.const(d) for d in v.const.shape)
    elems = None
    if v.dtype.numpy.kind in "iub" and v.const.size <= MAX_ELEMS:
        elems = tuple(Expr.const(int(x)) for x in np.asarray(v.const.numpy()).reshape(-1))
    return Info(v.dtype, shape, elems)


def input_info(v: Value) -> Info:
    if v.shape is None:
        raise ShapeError(f"graph input {v.name!r} has an unknown rank; the CPU backend needs its shape")
    dims = []
    for axis, d in enumerate(v.shape):
        if isinstance(d, Sym):
            dims.append(Expr.sym(d.name))
        elif isinstance(d, int):
            dims.append(Expr.const(d))
        else:
            raise ShapeError(f"graph input {v.name!r} dim {axis} is unknown and unnamed; name it "
                             f"(a symbolic dim) or fix it before compiling for the CPU")
    return Info(v.dtype, tuple(dims))


@dataclass
class Step:
    node: Node
    lowered: Lowered


def lower_graph(graph: Graph, bounds: Bounds, pack_weights: bool = False) -> tuple[Ctx, list[Step]]:
    """Run every node's rule in order. Raises UnsupportedOpError / ShapeError naming the node."""
    from . import rules_elementwise, rules_layout, rules_nn, rules_reduce  # noqa: F401  (register)

    ctx = Ctx(bounds, graph, pack_weights)
    for v in graph.inputs:
        ctx.infos[id(v)] = input_info(v)
    for v in graph.constants.values():
        ctx.infos[id(v)] = const_info(v)
    steps = []
    for node in graph.nodes:
        fn = RULES.get(node.op)
        if fn is None:
            raise UnsupportedOpError(f"node {node.describe()}: the CPU backend has no kernel for "
                                     f"{node.op.value}")
        lowered = fn(ctx, node)
        if len(lowered.outputs) != len(node.outputs):
            raise ShapeError(f"node {node.describe()}: the CPU rule gave {len(lowered.outputs)} "
                             f"outputs, the node has {len(node.outputs)}")
        for v, info in zip(node.outputs, lowered.outputs):
            _check_against_ir(node, v, info)
            ctx.infos[id(v)] = info
        steps.append(Step(node, lowered))
    return ctx, steps


def _check_against_ir(node: Node, v: Value, info: Info) -> None:
    # the IR's inference and ours must agree wherever the IR knows a dim
    if v.dtype is not None and v.dtype != info.dtype:
        raise ShapeError(f"node {node.describe()} output {v.name!r}: the CPU rule says "
                         f"{info.dtype.short}, the graph {v.dtype.short}")
    if v.shape is None:
        return
    if len(v.shape) != len(info.shape):
        raise ShapeError(f"node {node.describe()} output {v.name!r}: the CPU rule gives rank "
                         f"{len(info.shape)}, the graph {len(v.shape)}")
    for want, got in zip(v.shape, info.shape):
        if isinstance(want, int) and got.is_const and got.value != want:
            raise ShapeError(f"node {node.describe()} output {v.name!r}: the CPU rule gives shape "
                             f"{[str(d) for d in info.shape]}, the graph {v.type_str()}")
