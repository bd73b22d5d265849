"""Optimized IR graph -> a C99 directory for a microcontroller: model.c, model.h, manifest.json.

Example:
    >>> from fuseformer.frontends.onnx import load_onnx
    >>> from fuseformer.passes import optimize_graph
    >>> graph = optimize_graph(load_onnx("examples/tiny_vit.onnx"))
    >>> compile_mcu(graph, "tiny_vit.mcu", dims={"batch": 1}, budget=320 * 1024)
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from ... import __version__
from ...ir.graph import Graph
from ...ir.specialize import specialize
from ...passes.memory import MemoryBudgetError, plan_memory
from ...passes.memory.plan import MemoryPlan, value_bytes
from ...runtime.artifact import FORMAT_VERSION, sha256_file, staged_directory, write_manifest
from .budget import check_budget, format_size
from .ctext import ctype
from .errors import BudgetError, McuCompileError
from .lowering import Program
from .renderer import Rendered, lower_program, ports, render_header, write_source

SOURCE, HEADER, REPORT_PNG, REPORT_TXT = "model.c", "model.h", "memory.png", "memory.txt"
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def plan_for(graph: Graph, budget: int | None, chunking: bool | str = "auto") -> MemoryPlan:
    """The memory plan of a specialized graph: the one call site of the planner.

    plan_memory (passes/memory/planner.py) schedules, places views and in-place results
    and, as ``chunking`` allows, runs token-wise chains in chunks to meet the budget.
    """
    try:
        return plan_memory(graph, budget=budget, chunking=chunking)
    except MemoryBudgetError as e:  # it names the peak step, the live tensors, the best budget
        raise BudgetError(f"{e} Nothing was written.") from e


def compile_mcu(graph: Graph, out_dir: str | os.PathLike, dims: Mapping[str, int] | None = None,
                budget: int | None = None, plan: MemoryPlan | None = None,
                progress: Callable[[str], None] | None = None, *, prefix: str = "model",
                chunking: bool | int | str | None = None, report: bool = False,
                on_report: Callable[[str], None] | None = None,
                before_commit: Callable[[Path], None] | None = None) -> Path:
    """Compile ``graph`` (run ``optimize_graph`` first) to C99 sources in ``out_dir``.

    ``dims`` binds every symbolic input dim (the code is for exactly those sizes);
    ``budget`` is the arena's limit in bytes; ``plan`` is a ready MemoryPlan (of a
    specialized graph: dims are then not used), otherwise the planner makes one, chunking
    the graph as ``chunking`` allows (see plan_memory; None: "auto" when there is a
    budget, else no chunking, which trades steps for SRAM) to lower the peak or meet the
    budget. ``prefix`` starts every exported C name (``model_run``); ``report`` also writes
    memory.png and memory.txt (see report.py) and hands ``on_report`` the memory table
    (its first steps, the peak and the last ones). Nothing is written unless every step
    succeeds and ``before_commit`` (given the staging directory) returns; an earlier
    output at ``out_dir`` is replaced.

    Raises:
        BudgetError: the arena exceeds ``budget`` (names the peak step, live tensors,
            and the smallest budget reachable).
        UnsupportedOpError: a node has no C99 kernel (names the node and op).
        ShapeError: a shape is not static (names the value).
    """
    progress = progress or (lambda _: None)
    if not _PREFIX.fullmatch(prefix):
        raise McuCompileError(f"prefix {prefix!r} is not a C identifier made of letters, digits and _")
    if plan is None:
        g = specialize(graph, dict(dims or {}))
        progress(f"planning memory for {len(g.nodes)} nodes"
                 + (f" within {format_size(budget)}" if budget else ""))
        if chunking is None:
            chunking = "auto" if budget is not None else False
        plan = plan_for(g, budget, chunking)
    else:
        if dims:
            raise McuCompileError("give dims or a ready plan, not both: a plan is for a specialized graph "
                                  "whose sizes are fixed")
    check_budget(plan, budget)
    progress(f"arena {format_size(plan.arena_bytes)}, weights {format_size(plan.flash_bytes)}; "
             f"lowering {len(plan.schedule)} steps to C99")
    program = Program(plan)
    steps = lower_program(program)
    inputs, outputs = ports(program, prefix)
    rendered = Rendered(program, steps, inputs, outputs, prefix)

    out_dir = Path(out_dir)
    with staged_directory(out_dir, before_commit) as tmp:
        (tmp / HEADER).write_text(render_header(rendered))
        progress(f"writing {len(program.constants)} weight arrays to {SOURCE}")
        with open(tmp / SOURCE, "w") as f:
            write_source(rendered, f.write, HEADER)
        if report:
            from .report import write_report

            table = write_report(plan, tmp / REPORT_PNG, tmp / REPORT_TXT, budget)
            if on_report is not None:
                on_report(table)
        write_manifest(tmp, _manifest(rendered, tmp, budget, report))
    progress(f"wrote {out_dir}")
    return out_dir


def _spec(port) -> dict:
    p = port.value
    return {"name": p.name, "dtype": p.dtype.numpy.name, "ctype": ctype(p.dtype),
            "shape": list(port.shape), "accessor": port.ident,
            "offset": port.offset}


def _manifest(r: Rendered, tmp: Path, budget: int | None, report: bool) -> dict:
    plan = r.program.plan
    files = {"source": {"path": SOURCE, "sha256": sha256_file(tmp / SOURCE)},
             "header": {"path": HEADER, "sha256": sha256_file(tmp / HEADER)}}
    if report:
        files["report"] = {"path": REPORT_PNG, "sha256": sha256_file(tmp / REPORT_PNG)}
    return {
        "format_version": FORMAT_VERSION,
        "target": "mcu",
        "fuseformer_version": __version__,
        "model": plan.graph.name,
        "prefix": r.prefix,
        "inputs": [_spec(p) for p in r.inputs],
        "outputs": [_spec(p) for p in r.outputs],
        "arena_bytes": plan.arena_bytes,
        "flash_bytes": sum(value_bytes(v) for v in r.program.constants),
        "budget_bytes": budget,
        "steps": len(plan.schedule),
        "kernels": sorted(r.program.kernels),
        "status": {str(k): v for k, v in r.program.status.items()},
        "files": files,
    }
