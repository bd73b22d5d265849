"""Row regions: runs of row kernels that the threads run without meeting in between.

A narrow model (a small ViT: 65 tokens, 64 wide) spends as long handing each kernel
to the threads (~0.8 us) and waiting at its end for the slower one as in the kernel
itself. But most of a transformer layer is row-wise: a norm, a Linear with its
epilogue, the residual add all compute row r from row r. When every kernel of a run
reads the rows its predecessors wrote only through such row-wise inputs, the threads
can split the rows once and each run the whole chain on its own rows:

    parallel_rows(count, [&](lo, hi) { norm_rows(lo, hi); linear_rows(lo, hi); ... });

one hand-off for the run instead of one per kernel, and every thread's rows stay in
its own cache. Attention reads every key, so it can only begin a region (its K and V
come from before it); it then writes its query rows, which the rest of the region reads.

The regions are chosen here, from the steps' row forms (``lowering.RowForm``); the
renderer writes them and the arena planner keeps every buffer a region touches alive
over the whole region, since its kernels run at the same time on different threads.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .lowering import no_code
from .symexpr import Expr


@dataclass
class Region:
    """Steps [first, last] of the program; ``members`` are the ones that run code (all of
    them row kernels over ``count`` rows); the others in between are views."""

    first: int
    last: int
    count: Expr
    members: list[int] = field(default_factory=list)
    work: Expr = field(default_factory=lambda: Expr.const(0))


def find_regions(prog) -> list[Region]:
    """The regions of at least two row kernels, in program order (see the module docstring)."""
    regions: list[Region] = []
    current: Region | None = None
    written: set[int] = set()  # buffers (roots) a kernel of the current region writes

    def close() -> None:
        nonlocal current
        if current is not None and len(current.members) >= 2:
            regions.append(current)
        current = None
        written.clear()

    for i, step in enumerate(prog.steps):
        lowered = step.lowered
        if not prog.run[i]:
            if prog.fills.get(i):
                close()  # constants are written in program order, outside any region
            continue
        if lowered.emit is no_code:
            continue  # a view: nothing runs
        form = lowered.rows
        if form is None or not lowered.scratch.is_value(0) or lowered.status is not None:
            close()
            continue
        if current is None or not _joins(prog, current, written, step, form):
            close()
            current = Region(i, i, form.count)
        current.members.append(i)
        current.last = i
        current.work = current.work + form.work
        for v in step.node.outputs:
            if id(v) in prog.storage:
                written.add(id(prog.root(v)))
    close()
    return regions


def _joins(prog, region: Region, written: set[int], step, form) -> bool:
    """Whether ``step`` can run in ``region`` on the same rows: every buffer the region
    writes that it reads, it reads row by row, laid out as the writer wrote it."""
    if form.count != region.count:
        return False
    for slot, v in enumerate(step.node.inputs):
        if v is None or slot in step.lowered.static or id(v) not in prog.storage:
            continue
        root = prog.root(v)
        if id(root) not in written:
            continue  # complete before the region starts
        if slot not in form.matched or id(v) in prog.ctx.strided:
            return False
        # a view of the whole buffer (same element count), so its rows are the writer's rows
        if prog.info(v).numel != prog.info(root).numel:
            return False
    return True
