"""Operator scheduling that minimizes peak memory (SERENITY's dynamic programming).

The memory model: buffers are the alias groups of an ``Aliasing`` (views share one
buffer); a buffer is allocated when a node first writes it and freed after the last node
that reads or writes it; a node may write its output over an input buffer that dies at
that node (in place). For a set S of executed nodes the live bytes mem(S) do not depend
on the order S was run in, so the best peak to reach S is

    f(S | {u}) = min over S, u of max(f(S), mem(S) + born(S, u) - inplace(S, u))

a dynamic program over the downsets of the graph. Two reductions keep it small:

1. Cuts: a node that every other node precedes or follows splits every schedule into
   independent halves, so each segment between cuts is solved on its own (the bytes live
   across a cut do not depend on either side's order).
2. Only segments that reach the overall peak matter. Every segment first takes the
   better of its graph order and a greedy list schedule; a segment at the peak then gets
   the exact DP (states above its current peak pruned) when it has at most
   ``dp_max_nodes`` nodes and the DP stays under ``max_transitions``, unless its peak
   already meets a per-node lower bound. The result is never worse than the graph order.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass

from ...ir.graph import Graph
from ...ir.node import Node
from .inplace import Aliasing, analyze_aliasing, inplace_slots


class MemoryModel:
    """What each node writes and reads, in buffers (alias groups), and its in-place options."""

    def __init__(self, graph: Graph, aliasing: Aliasing | None = None):
        self.nodes = list(graph.nodes)
        self.index = {n: i for i, n in enumerate(self.nodes)}
        al = aliasing or analyze_aliasing(graph)
        self.size = list(al.sizes)
        n, g = len(self.nodes), len(al.sizes)
        self.writes: list[set[int]] = [set() for _ in range(n)]
        self.reads: list[set[int]] = [set() for _ in range(n)]
        self.users: list[set[int]] = [set() for _ in range(g)]  # nodes that read or write it
        self.start_pinned = [False] * g  # holds a graph input
        self.end_pinned = [False] * g  # holds a graph output
        for gid, pieces in enumerate(al.pieces):
            for p in pieces:
                if p.writer is None:
                    self.start_pinned[gid] = True
                else:
                    self.writes[self.index[p.writer]].add(gid)
                    self.users[gid].add(self.index[p.writer])
                for r in p.reads:
                    if r[4] is None:
                        self.end_pinned[gid] = True
                    else:
                        self.reads[self.index[r[4]]].add(gid)
                        self.users[gid].add(self.index[r[4]])
        inputs = set(graph.inputs)
        self.credit: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        self.preds: list[set[int]] = [set() for _ in range(n)]
        for i, node in enumerate(self.nodes):
            for v in node.inputs:
                if v is not None and v.producer is not None and v.producer in self.index:
                    self.preds[i].add(self.index[v.producer])
            for slot in inplace_slots(node) if node.outputs else ():
                v, out = node.inputs[slot], node.outputs[0]
                if not v.is_const and v not in inputs and out in al.position:
                    og, ig = al.group(out), al.group(v)
                    if og != ig:
                        self.credit[i].append((og, ig))


class _Segment:
    """The DP's view of one segment: per buffer, bit masks of the segment's nodes using it."""

    def __init__(self, model: MemoryModel, nodes: list[int], seg_of: list[int], sid: int):
        self.m, self.nodes = model, nodes
        local = {u: k for k, u in enumerate(nodes)}
        self.pred = [sum(1 << local[p] for p in model.preds[u] if p in local) for u in nodes]
        self.succ: list[list[int]] = [[] for _ in nodes]
        for k, u in enumerate(nodes):
            for p in model.preds[u]:
                if p in local:
                    self.succ[local[p]].append(k)
        self.touch: list[list[int]] = []
        self.use: dict[int, int] = {}
        self.wmask: dict[int, int] = {}
        self.started: dict[int, bool] = {}
        self.pending: dict[int, bool] = {}
        for k, u in enumerate(nodes):
            gs = sorted(model.writes[u] | model.reads[u])
            self.touch.append(gs)
            for g in gs:
                self.use[g] = self.use.get(g, 0) | (1 << k)
                if g in model.writes[u]:
                    self.wmask[g] = self.wmask.get(g, 0) | (1 << k)
        for g in self.use:
            self.wmask.setdefault(g, 0)
            writers = [w for w in model.users[g] if g in model.writes[w]]
            self.started[g] = model.start_pinned[g] or any(seg_of[w] < sid for w in writers)
            self.pending[g] = model.end_pinned[g] or any(seg_of[w] > sid for w in model.users[g])
        self.table = [[(g, model.size[g], g in model.writes[u], self.started[g], self.pending[g], self.use[g],
                        self.wmask[g]) for g in self.touch[k]] for k, u in enumerate(nodes)]

    def step(self, mask: int, k: int, mem: int) -> tuple[int, int]:
        """(bytes live while node k runs, bytes live after it) from state ``mask``."""
        after_mask = mask | (1 << k)
        born = delta = 0
        dying: set[int] = set()
        fresh: set[int] = set()
        for g, size, writes, started, pending, use, wmask in self.table[k]:
            # live: some writer ran (or it is an input), and a reader or writer is still to come
            b = (started or wmask & mask) and (pending or use & ~mask)
            a = pending or use & ~after_mask
            if b and not a:
                delta -= size
                dying.add(g)
            elif not b and writes:  # (a node only reads a buffer once something wrote it)
                born += size
                fresh.add(g)
                if a:
                    delta += size
        credit = 0
        for og, ig in self.m.credit[self.nodes[k]]:
            if og in fresh and ig in dying:
                credit = max(credit, min(self.m.size[og], self.m.size[ig]))
        return mem + born - credit, mem + delta

    def lower_bound(self, mem0: int) -> int:
        """No order of the segment peaks lower: each node needs every buffer it touches,
        besides those live all through the segment (less what it could write in place)."""
        m = self.m
        touched_live = sum(m.size[g] for g in self.use if self.started[g])  # live at the start
        throughout = {g for g in self.use if self.started[g] and self.pending[g]}
        base = mem0 - touched_live + sum(m.size[g] for g in throughout)
        best = 0
        for k, u in enumerate(self.nodes):
            credit = max((min(m.size[og], m.size[ig]) for og, ig in m.credit[u]), default=0)
            need = sum(m.size[g] for g in self.touch[k] if g not in throughout) - credit
            best = max(best, base + need)
        return best

    def run(self, order: list[int], mem: int) -> tuple[int, int]:
        """(peak, bytes live after) of running the segment's nodes in ``order`` (local ids)."""
        mask, peak = 0, 0
        for k in order:
            during, mem = self.step(mask, k, mem)
            peak = max(peak, during)
            mask |= 1 << k
        return peak, mem

    def greedy(self, mem: int) -> list[int]:
        """Run next the ready node with the lowest peak, then the lowest bytes after it.

        A ready node's step depends on the state only through the buffers it touches, so
        its (peak, after) deltas are cached and recomputed only when a node run touched
        one of its buffers; a heap with version stamps gives the minimum.
        """
        n, mask, order = len(self.nodes), 0, []
        users: dict[int, list[int]] = {}
        for k in range(n):
            for g in self.touch[k]:
                users.setdefault(g, []).append(k)
        version = [0] * n
        ready = [False] * n
        heap: list[tuple[int, int, int, int]] = []

        def push(k: int) -> None:
            during, after = self.step(mask, k, 0)
            heapq.heappush(heap, (during, after, k, version[k]))

        for k in range(n):
            if not self.pred[k]:
                ready[k] = True
                push(k)
        while heap:
            _, after, best, ver = heapq.heappop(heap)
            if ver != version[best] or not ready[best]:
                continue
            order.append(best)
            ready[best] = False
            mask |= 1 << best
            stale = {k for g in self.touch[best] for k in users[g] if ready[k]}
            for s in self.succ[best]:
                if not self.pred[s] & ~mask:
                    ready[s] = True
                    stale.add(s)
            for k in stale:
                version[k] += 1
                push(k)
        return order

    def dp(self, mem0: int, bound: int, max_transitions: int) -> tuple[list[int], int] | None:
        """Exact minimum-peak order of the segment, or None when over budget / bound."""
        n = len(self.nodes)
        level = {0: (0, mem0)}
        back: list[dict[int, tuple[int, int]]] = []
        work = 0
        for _ in range(n):
            nxt: dict[int, tuple[int, int]] = {}
            bp: dict[int, tuple[int, int]] = {}
            for mask, (f, mem) in level.items():
                for k in range(n):
                    bit = 1 << k
                    if mask & bit or self.pred[k] & ~mask:
                        continue
                    work += 1
                    if work > max_transitions:
                        return None
                    during, after = self.step(mask, k, mem)
                    nf = max(f, during)
                    if nf > bound:
                        continue
                    m2 = mask | bit
                    cur = nxt.get(m2)
                    if cur is None or nf < cur[0]:
                        nxt[m2] = (nf, after)
                        bp[m2] = (mask, k)
            if not nxt:
                return None
            back.append(bp)
            level = nxt
        full = (1 << n) - 1
        peak = level[full][0]
        order, mask = [], full
        for bp in reversed(back):
            mask, k = bp[mask]
            order.append(k)
        return order[::-1], peak


@dataclass
class ScheduleResult:
    order: list[Node]
    peak: int  # in the model's bytes
    exact: bool  # every segment was solved by the exact DP
    segments: int


def _segments(model: MemoryModel) -> list[list[int]]:
    n = len(model.nodes)
    succ: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(model.preds):
        for p in ps:
            succ[p].append(i)
    anc, desc = [0] * n, [0] * n
    for i in range(n):
        for p in model.preds[i]:
            anc[i] |= anc[p] | (1 << p)
    for i in reversed(range(n)):
        for s in succ[i]:
            desc[i] |= desc[s] | (1 << s)
    cuts = [i for i in range(n) if anc[i].bit_count() + desc[i].bit_count() == n - 1]
    # every other node precedes or follows each cut, and the node list is topological,
    # so the nodes between two cuts are exactly the slice of the list between them
    segments, prev = [], 0
    for c in cuts:
        if c > prev:
            segments.append(list(range(prev, c)))
        segments.append([c])
        prev = c + 1
    if prev < n:
        segments.append(list(range(prev, n)))
    return segments


def model_peak(graph: Graph, order: list[Node], aliasing: Aliasing | None = None) -> int:
    """The peak of ``order`` in the scheduler's memory model (what ``minimize_peak`` minimizes)."""
    model = MemoryModel(graph, aliasing)
    seg = _Segment(model, [model.index[n] for n in order], [0] * len(model.nodes), 0)
    return seg.run(list(range(len(order))), _base(model))[0]


def _base(model: MemoryModel) -> int:
    return sum(model.size[g] for g in range(len(model.size))
               if model.start_pinned[g] and (model.end_pinned[g] or model.users[g]))


def minimize_peak(graph: Graph, aliasing: Aliasing | None = None, *, dp_max_nodes: int = 64,
                  max_transitions: int = 20_000, time_limit: float = 5.0) -> ScheduleResult:
    """A topological order of ``graph`` with the least peak memory found.

    Every segment first gets the better of its graph order and the greedy order. Only the
    segments that reach the overall peak matter for it; those get the exact DP (bounded by
    their current peak), unless their peak already equals their lower bound, until the
    overall peak stops falling. ``exact`` means every segment at the final peak is optimal,
    so no order of the graph peaks lower (in this model).

    Example:
        >>> res = minimize_peak(graph)
        >>> res.peak <= model_peak(graph, graph.nodes)
        True
    """
    model = MemoryModel(graph, aliasing)
    segments = _segments(model)
    seg_of = [0] * len(model.nodes)
    for sid, nodes in enumerate(segments):
        for u in nodes:
            seg_of[u] = sid
    deadline = time.monotonic() + time_limit
    mem = _base(model)
    state = []  # per segment: [segment, bytes live at its start, peak, order, optimal]
    for sid, nodes in enumerate(segments):
        seg = _Segment(model, nodes, seg_of, sid)
        best = (seg.run(list(range(len(nodes))), mem)[0], list(range(len(nodes))))  # graph order
        if len(nodes) > 1:
            greedy = seg.greedy(mem)
            best = min(best, (seg.run(greedy, mem)[0], greedy), key=lambda t: t[0])
        optimal = len(nodes) == 1 or best[0] <= seg.lower_bound(mem)
        state.append([seg, mem, best[0], best[1], optimal])
        mem = seg.run(best[1], mem)[1]  # the same for every order of the segment
    tried: set[int] = set()
    while True:
        peak = max((s[2] for s in state), default=0)
        todo = [i for i, s in enumerate(state) if s[2] == peak and not s[4] and i not in tried]
        if not todo or time.monotonic() > deadline:
            break
        for i in todo:
            tried.add(i)
            seg, mem0, seg_peak, _, _ = state[i]
            if len(seg.nodes) > dp_max_nodes:
                continue
            solved = seg.dp(mem0, seg_peak, max_transitions)
            if solved is not None:
                state[i][2:] = [solved[1], solved[0], True]
    peak = max((s[2] for s in state), default=0)
    exact = all(s[4] for s in state if s[2] == peak)
    order = [model.nodes[s[0].nodes[k]] for s in state for k in s[3]]
    return ScheduleResult(order, peak, exact, len(segments))
