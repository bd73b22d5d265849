"""Views and in-place results: which activations share bytes under a given schedule.

Two values may occupy the same arena bytes in three ways:

1. A view: the output of a copy-like op is the bytes of its input (Reshape, Flatten,
   Squeeze, Unsqueeze), or a contiguous byte range of it (Split and Slice along the
   outermost non-unit axis), or a Concat input is written straight into its byte range of
   the Concat output (along the outermost non-unit axis). The backend runs nothing for it.
2. In place: an elementwise output overwrites an input of the same shape that nobody
   reads afterwards; a Linear's output overwrites its residual ("token overwriting").
3. Reuse in time: the arena planner's business (``arena.py``), not this file's.

Values sharing bytes form a *group* (one arena allocation) found with a union-find
that carries byte offsets: ``pos(a) = pos(b) + delta``. Views never conflict. Every
other overlap inside a group is between two *pieces* (bytes a kernel writes), and is
legal only when the earlier piece's data is never read after the later piece is written,
except that the writer of the later piece may read the earlier at the very same position
through an input it may overwrite (``inplace_slots``). Every union is checked against that
rule, so a group never holds a hazard; ``verify.check_plan`` re-checks it by simulation.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import BINARY_ELEMENTWISE, UNARY_ELEMENTWISE, Op
from ...ir.value import Value
from .plan import value_bytes

VIEW_OPS = frozenset({Op.Reshape, Op.Flatten, Op.Squeeze, Op.Unsqueeze})


def inplace_slots(node: Node) -> tuple[int, ...]:
    """Input slots whose bytes the node's output may overwrite element by element.

    Elementwise kernels read element i before writing element i; the Linear epilogue reads
    residual[t, j] only to write out[t, j]. The input must have the output's exact type.
    """
    out = node.outputs[0]
    if node.op is Op.Linear:
        slots: tuple[int, ...] = (3,)
    elif node.op in UNARY_ELEMENTWISE and node.op is not Op.Identity or node.op is Op.Clip:
        slots = (0,)
    elif node.op in BINARY_ELEMENTWISE:
        slots = tuple(range(len(node.inputs)))
    else:
        return ()
    return tuple(i for i in slots if i < len(node.inputs) and node.inputs[i] is not None
                 and node.inputs[i].shape == out.shape and node.inputs[i].dtype == out.dtype)


def contiguous_prefix(shape: tuple[int, ...], axis: int) -> bool:
    """A cut along ``axis`` gives contiguous byte ranges iff every outer dim is 1."""
    return math.prod(shape[:axis]) == 1


@dataclass(eq=False)
class Piece:
    """Bytes ``[lo, lo + size)`` of ``value``, written by one kernel at ``step``."""

    value: Value
    lo: int
    size: int
    step: int  # -1: a graph input, written before the run
    writer: Node | None
    # (lo, hi) in piece coordinates, the step, the value read through, the node and its slot
    reads: list[tuple[int, int, int, Value, Node | None, int]] = field(default_factory=list)


@dataclass
class Aliasing:
    """The result: every activation's group and offset, and what is a view or in place."""

    position: dict[Value, tuple[int, int]]  # value -> (group id, byte offset in the group)
    sizes: list[int]  # group id -> bytes the group spans
    pieces: list[list[Piece]]  # group id -> the pieces written into it
    views: set[Value]  # values no kernel writes: their bytes are their sources'
    inplace: dict[Value, Value]  # output -> the input whose bytes it overwrote

    def group(self, v: Value) -> int:
        return self.position[v][0]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Value, Value] = {}
        self.off: dict[Value, int] = {}
        self.members: dict[Value, list[Value]] = {}
        self.pieces: dict[Value, list[tuple[Piece, int]]] = {}  # root -> (piece, its offset in the group)

    def add(self, v: Value) -> None:
        self.parent[v], self.off[v] = v, 0
        self.members[v], self.pieces[v] = [v], []

    def find(self, v: Value) -> tuple[Value, int]:
        path, pos = [], 0
        while self.parent[v] is not v:
            path.append(v)
            pos += self.off[v]
            v = self.parent[v]
        acc = pos
        for p in path:  # compress: every node on the path points at the root
            step = self.off[p]
            self.parent[p], self.off[p] = v, acc
            acc -= step
        return v, pos

    def pos(self, v: Value) -> int:
        return self.find(v)[1]


class _Analysis:
    def __init__(self, graph: Graph, schedule: list[Node], *, inplace: bool, views: bool, pieces: bool = True):
        self.graph, self.schedule = graph, schedule
        self.step = {n: i for i, n in enumerate(schedule)}
        self.n = len(schedule)
        self.uf = _UnionFind()
        self.inputs = set(graph.inputs)
        self.outputs = set(graph.outputs)
        self.views: dict[Value, Value] = {}
        self.copied: dict[Value, list[tuple[int, int]]] = {}  # Concat output -> copied slots
        self.prov: dict[Value, list[tuple[int, int, Piece, int]]] = {}
        for v in graph.inputs:
            self.uf.add(v)
        for node in schedule:
            for o in node.outputs:
                self.uf.add(o)
        if views:
            for node in graph.nodes:
                self._view(node)
        if not pieces:
            return  # groups of views only: enough for schedule-independent bounds
        self._provenance()
        if inplace:
            for node in schedule:
                self._inplace(node)

    # ---- phase 1: views (independent of the schedule) -------------------------------
    def _view(self, node: Node) -> None:
        src = node.inputs[0] if node.inputs else None
        if src is None or src.is_const:
            return
        if node.op in VIEW_OPS:
            self._join_view(node.output, src, 0)
        elif node.op is Op.Split and contiguous_prefix(src.shape, node.attrs.axis % len(src.shape)):
            lo = 0
            for o in node.outputs:
                self._join_view(o, src, lo)
                lo += value_bytes(o)
        elif node.op is Op.Slice:
            lo = _slice_offset(node)
            if lo is not None:
                self._join_view(node.output, src, lo)
        elif node.op is Op.Concat:
            self._concat(node)

    def _join_view(self, view: Value, src: Value, lo: int) -> None:
        # ``view`` is fresh (its node runs after ``src`` exists): joining it adds no piece
        root, pos = self.uf.find(src)
        self.uf.parent[view], self.uf.off[view] = root, pos + lo
        self.uf.members[root].append(view)
        del self.uf.members[view], self.uf.pieces[view]
        self.views[view] = src

    def _concat(self, node: Node) -> None:
        out = node.output
        axis = node.attrs.axis % len(out.shape)
        if not contiguous_prefix(out.shape, axis):
            return
        seen: set[Value] = set()
        lo, copied = 0, []
        for v in node.inputs:
            size = value_bytes(v)
            root, pos = (None, 0) if v.is_const else self.uf.find(v)
            # only a value spanning its whole group moves in: nothing else is dragged along
            whole = (root is not None and v not in self.inputs and v not in seen
                     and _extent(self.uf, root) == (pos, pos + size) and root is not self.uf.find(out)[0])
            if whole:
                self._merge(v, out, lo, check=False)  # pos(v) = pos(out) + lo
            else:
                copied.append((lo, lo + size))
            seen.add(v)
            lo += size
        if not copied:
            self.views[out] = out  # a pure view of its inputs: the Concat kernel does nothing
        self.copied[out] = copied

    # ---- provenance: which piece each byte of each value holds ----------------------
    def _provenance(self) -> None:
        def add_piece(p: Piece) -> None:
            root, pos = self.uf.find(p.value)
            self.uf.pieces[root].append((p, pos + p.lo))

        def real(v: Value, step: int, writer: Node | None) -> None:
            p = Piece(v, 0, value_bytes(v), step, writer)
            add_piece(p)
            self.prov[v] = [(0, p.size, p, 0)]

        for v in self.graph.inputs:
            real(v, -1, None)
        for node in self.schedule:
            s = self.step[node]
            for o in node.outputs:
                if o in self.copied:
                    segs, lo = [], 0
                    cop = dict(self.copied[o])
                    for v in node.inputs:
                        size = value_bytes(v)
                        if lo in cop:
                            p = Piece(o, lo, size, s, node)
                            add_piece(p)
                            segs.append((lo, lo + size, p, 0))
                        else:
                            segs += [(a + lo, b + lo, p, plo) for a, b, p, plo in self.prov[v]]
                        lo += size
                    self.prov[o] = segs
                elif o in self.views:
                    src = self.views[o]
                    lo = self.uf.pos(o) - self.uf.pos(src)
                    self.prov[o] = _restrict(self.prov[src], lo, lo + value_bytes(o))
                else:
                    real(o, s, node)
            if node.op is Op.Concat and node.output in self.views:
                continue  # a pure-view Concat reads nothing
            if node.op in VIEW_OPS | {Op.Split, Op.Slice} and node.outputs[0] in self.views:
                continue
            for slot, v in enumerate(node.inputs):
                if v is not None and not v.is_const:
                    self._read(v, s, node, slot)
        for v in self.graph.outputs:
            if not v.is_const:
                self._read(v, self.n, None, -1)

    def _read(self, v: Value, step: int, node: Node | None, slot: int) -> None:
        for a, b, p, plo in self.prov[v]:
            p.reads.append((plo, plo + b - a, step, v, node, slot))

    # ---- phase 2: in place, in schedule order ---------------------------------------
    def _inplace(self, node: Node) -> None:
        slots = inplace_slots(node) if node.outputs else ()
        out = node.outputs[0] if node.outputs else None
        if not slots or out in self.views or out in self.inputs:
            return
        for slot in slots:
            v = node.inputs[slot]
            if v.is_const or any(p.writer is None for _, _, p, _ in self.prov[v]):
                continue  # never write over the caller's input, even through a view
            ro, po = self.uf.find(out)
            rv, pv = self.uf.find(v)
            if ro is rv:
                if po == pv:
                    return
                continue
            if self._merge(out, v, 0, check=True):
                return

    def _merge(self, a: Value, b: Value, delta: int, *, check: bool) -> bool:
        """Make pos(a) = pos(b) + delta, if no hazard follows; returns whether it did."""
        uf = self.uf
        ra, pa = uf.find(a)
        rb, pb = uf.find(b)
        shift = pb + delta - pa  # frame of a's group -> frame of b's group
        if check and not self._compatible(rb, ra, shift):
            return False
        # attach the smaller group under the larger
        if len(uf.members[ra]) > len(uf.members[rb]):
            ra, rb, shift = rb, ra, -shift
        uf.parent[ra], uf.off[ra] = rb, shift
        uf.members[rb] += uf.members.pop(ra)
        uf.pieces[rb] += [(p, pos + shift) for p, pos in uf.pieces.pop(ra)]
        return True

    def _compatible(self, rb: Value, ra: Value, shift: int) -> bool:
        uf = self.uf
        pa = [(p, pos + shift) for p, pos in uf.pieces[ra]]
        pb = sorted(uf.pieces[rb], key=lambda t: t[1])
        starts = [pos for _, pos in pb]
        reach = max((q.size for q, _ in pb), default=0)
        for p, p0 in pa:
            # only pieces starting within the longest piece's reach before p can overlap it
            for i in range(bisect.bisect_left(starts, p0 - reach), bisect.bisect_left(starts, p0 + p.size)):
                q, q0 = pb[i]
                lo, hi = max(p0, q0), min(p0 + p.size, q0 + q.size)
                if lo >= hi:
                    continue
                if p.step == q.step:
                    return False
                (e, e0, es), (l, l0, ls) = sorted([(p, p0, shift), (q, q0, 0)], key=lambda t: t[0].step)
                if not self._ordered(e, e0, es, l, l0, ls, lo, hi):
                    return False
        return True

    def _ordered(self, e: Piece, e0: int, es: int, late: Piece, l0: int, ls: int, lo: int, hi: int) -> bool:
        """Is every read of ``e`` inside [lo, hi) done by the time ``late`` is written?"""
        uf = self.uf
        for rlo, rhi, step, via, node, slot in e.reads:
            if e0 + rhi <= lo or e0 + rlo >= hi or step < late.step:
                continue
            if (step == late.step and node is late.writer and slot in inplace_slots(node)
                    and uf.pos(via) + es == uf.pos(late.value) + ls
                    and value_bytes(via) == value_bytes(late.value)):
                continue  # the writer itself reads it at the same place: elementwise in place
            return False
        return True

    # ---- result --------------------------------------------------------------------
    def result(self) -> Aliasing:
        uf = self.uf
        roots = [r for r in uf.members]
        position: dict[Value, tuple[int, int]] = {}
        sizes, pieces = [], []
        for gid, r in enumerate(roots):
            lo, hi = _extent(uf, r)
            sizes.append(hi - lo)
            pieces.append([p for p, _ in uf.pieces[r]])
            for v in uf.members[r]:
                position[v] = (gid, uf.pos(v) - lo)
        inplace: dict[Value, Value] = {}
        for node in self.schedule:
            if not node.outputs or node.outputs[0] in self.views:
                continue
            out = node.outputs[0]
            for slot in inplace_slots(node):
                v = node.inputs[slot]
                if not v.is_const and position.get(v) == position[out]:
                    inplace[out] = v
                    break
        return Aliasing(position, sizes, pieces, set(self.views), inplace)


def _extent(uf: _UnionFind, root: Value) -> tuple[int, int]:
    lo = min(uf.pos(v) for v in uf.members[root])
    hi = max(uf.pos(v) + value_bytes(v) for v in uf.members[root])
    return lo, hi


def _restrict(segs, lo: int, hi: int):
    out = []
    for a, b, p, plo in segs:
        a2, b2 = max(a, lo), min(b, hi)
        if a2 < b2:
            out.append((a2 - lo, b2 - lo, p, plo + a2 - a))
    return out


def _slice_offset(node: Node) -> int | None:
    """Byte offset of a Slice output inside its input when it is one contiguous range."""
    data = node.inputs[0]
    consts = [node.input(i) for i in range(1, 5)]
    if any(c is not None and not c.is_const for c in consts) or consts[0] is None:
        return None
    starts, ends = (list(map(int, c.const.numpy().reshape(-1))) for c in consts[:2])
    rank = len(data.shape)
    axes = list(map(int, consts[2].const.numpy().reshape(-1))) if consts[2] is not None else list(range(len(starts)))
    steps = list(map(int, consts[3].const.numpy().reshape(-1))) if consts[3] is not None else [1] * len(starts)
    if any(s != 1 for s in steps):
        return None
    begin = [0] * rank
    for s, a in zip(starts, axes):
        a %= rank
        begin[a] = min(max(s + data.shape[a] if s < 0 else s, 0), data.shape[a])
    out = node.output.shape
    # contiguous iff after the first axis of extent > 1, every axis is taken whole
    first = next((i for i, d in enumerate(out) if d > 1), rank)
    if any(out[i] != data.shape[i] for i in range(first + 1, rank)):
        return None
    stride, offset = data.dtype.numpy.itemsize, 0
    for i in reversed(range(rank)):
        offset += begin[i] * stride
        stride *= data.shape[i]
    return offset


def analyze_aliasing(graph: Graph, schedule: list[Node] | None = None, *, inplace: bool = True,
                     views: bool = True, pieces: bool = True) -> Aliasing:
    """Groups of values sharing bytes under ``schedule`` (default: graph order).

    Example:
        >>> al = analyze_aliasing(graph)
        >>> al.position[graph.nodes[0].output]   # (group id, byte offset in the group)
    """
    return _Analysis(graph, list(schedule or graph.nodes), inplace=inplace and pieces, views=views,
                     pieces=pieces).result()
