"""Static arena planning: one offset per buffer so that buffers live at once never overlap.

Given requests (size, first step, last step), choose offsets minimizing the arena:

    arena = max_b offset(b) + size(b)   s.t.  live(a) & live(b) != {} => bytes disjoint
    arena >= max_s sum(size(b) for b live at s)   (the live-bytes lower bound)

``tflm_greedy`` is TensorFlow Lite Micro's GreedyMemoryPlanner, the baseline: buffers by
size descending, each at the lowest offset that fits between the buffers already placed
that overlap it in time. ``plan_arena`` is ours: best-fit placement (the tightest gap that
holds the buffer) over several orderings, then hill climbing on the order as microTVM's
USMP does (move a buffer that ends at the top of the arena earlier, keep the order if the
arena does not grow). It returns the smallest of all, TFLM's included, so it is never
worse than the baseline.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Request:
    id: int
    size: int  # bytes
    start: int  # first step live
    end: int  # last step live (inclusive)


@dataclass
class ArenaResult:
    offsets: dict[int, int]  # request id -> byte offset
    size: int  # arena bytes
    method: str
    baseline: int = 0  # plan_arena: the size TFLM's greedy planner reached on the same requests


def align_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def conflicts(requests: Sequence[Request]) -> dict[int, list[int]]:
    """Request id -> ids of the requests live at some common step (a sweep over starts)."""
    order = sorted(requests, key=lambda r: (r.start, r.id))
    out: dict[int, list[int]] = {r.id: [] for r in requests}
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if b.start > a.end:
                break
            out[a.id].append(b.id)
            out[b.id].append(a.id)
    return out


def live_lower_bound(requests: Sequence[Request]) -> int:
    """max over steps of the bytes live at once: no placement can do better."""
    events: dict[int, int] = {}
    for r in requests:
        events[r.start] = events.get(r.start, 0) + r.size
        events[r.end + 1] = events.get(r.end + 1, 0) - r.size
    best = acc = 0
    for t in sorted(events):
        acc += events[t]
        best = max(best, acc)
    return best


def _place(requests: dict[int, Request], order: Sequence[int], conf: dict[int, list[int]],
           best_fit: bool) -> tuple[dict[int, int], int]:
    offsets: dict[int, int] = {}
    top = 0
    for rid in order:
        size = requests[rid].size
        placed = sorted((offsets[o], offsets[o] + requests[o].size) for o in conf[rid] if o in offsets)
        cand, chosen, waste = 0, None, None
        for lo, hi in placed:
            gap = lo - cand
            if gap >= size:
                if not best_fit:
                    chosen = cand
                    break
                if waste is None or gap - size < waste:
                    chosen, waste = cand, gap - size
            cand = max(cand, hi)
        if chosen is None:
            chosen = cand  # above everything live with it
        offsets[rid] = chosen
        top = max(top, chosen + size)
    return offsets, top


def tflm_greedy(requests: Sequence[Request], alignment: int = 16) -> ArenaResult:
    """TensorFlow Lite Micro's GreedyMemoryPlanner (sizes aligned up as its allocator does).

    Example:
        >>> tflm_greedy([Request(0, 64, 0, 1), Request(1, 32, 1, 2), Request(2, 64, 2, 3)]).size
        96
    """
    reqs = {r.id: Request(r.id, align_up(r.size, alignment), r.start, r.end) for r in requests}
    # a stable sort, as TFLM's ReverseSortInPlace keeps equal sizes in tensor order
    order = sorted(reqs, key=lambda i: -reqs[i].size)
    offsets, size = _place(reqs, order, conflicts(list(reqs.values())), best_fit=False)
    return ArenaResult(offsets, size, "tflm-greedy")


_ORDERINGS: dict[str, Callable[[Request, int], tuple]] = {
    "size": lambda r, deg: (-r.size, r.start, r.id),
    "area": lambda r, deg: (-r.size * (r.end - r.start + 1), r.id),
    "conflicts": lambda r, deg: (-deg, -r.size, r.id),
    "start": lambda r, deg: (r.start, -r.size, r.id),
    "lifetime": lambda r, deg: (-(r.end - r.start), -r.size, r.id),
}


def plan_arena(requests: Sequence[Request], alignment: int = 16, *, time_budget: float = 0.5,
               iterations: int | None = None, seed: int = 0) -> ArenaResult:
    """Best-fit over several orderings, hill climbing on the best, never worse than TFLM.

    Hill climbing runs for ``time_budget`` seconds, or exactly ``iterations`` steps when
    given (reproducible), and stops early at the live-bytes lower bound.

    Example:
        >>> res = plan_arena(requests)
        >>> res.size <= tflm_greedy(requests).size
        True
    """
    baseline = tflm_greedy(requests, alignment)
    baseline.baseline = baseline.size
    reqs = {r.id: Request(r.id, align_up(r.size, alignment), r.start, r.end) for r in requests}
    if not reqs:
        return baseline
    conf = conflicts(list(reqs.values()))
    bound = live_lower_bound(list(reqs.values()))
    best = baseline
    best_order: list[int] = sorted(reqs, key=lambda i: -reqs[i].size)
    for name, key in _ORDERINGS.items():
        order = sorted(reqs, key=lambda i: key(reqs[i], len(conf[i])))
        offsets, size = _place(reqs, order, conf, best_fit=True)
        if size < best.size:
            best, best_order = ArenaResult(offsets, size, f"best-fit/{name}", baseline.size), order
    # hill climbing: pull a buffer that touches the top of the arena to an earlier slot
    rng = random.Random(seed)
    deadline = time.monotonic() + time_budget
    order, current = list(best_order), best.size
    offsets = best.offsets
    steps = 0
    while current > bound and (time.monotonic() < deadline if iterations is None else steps < iterations):
        steps += 1
        top = [i for i in order if offsets[i] + reqs[i].size == current]
        victim = rng.choice(top)
        trial = list(order)
        trial.remove(victim)
        trial.insert(rng.randrange(0, max(1, order.index(victim))), victim)
        if rng.random() < 0.3:  # and sometimes a random swap, to leave plateaus
            a, b = rng.randrange(len(trial)), rng.randrange(len(trial))
            trial[a], trial[b] = trial[b], trial[a]
        t_offsets, t_size = _place(reqs, trial, conf, best_fit=True)
        if t_size <= current:
            order, current, offsets = trial, t_size, t_offsets
            if t_size < best.size:
                best = ArenaResult(t_offsets, t_size, "best-fit/hill-climb", baseline.size)
    return best


def check_arena(requests: Sequence[Request], offsets: dict[int, int], arena: int) -> list[str]:
    """Every problem with a placement: buffers live at once that overlap, or out of the arena."""
    problems = []
    by_id = {r.id: r for r in requests}
    for r in requests:
        if r.id not in offsets:
            problems.append(f"buffer {r.id} has no offset")
        elif offsets[r.id] < 0 or offsets[r.id] + r.size > arena:
            problems.append(f"buffer {r.id} [{offsets[r.id]}, +{r.size}) is outside the {arena}-byte arena")
    conf = conflicts(requests)
    for a, others in conf.items():
        for b in others:
            if a < b and a in offsets and b in offsets:
                ra, rb = by_id[a], by_id[b]
                if offsets[a] < offsets[b] + rb.size and offsets[b] < offsets[a] + ra.size:
                    problems.append(f"buffers {a} (steps {ra.start}-{ra.end}) and {b} "
                                    f"(steps {rb.start}-{rb.end}) overlap in bytes")
    return problems
