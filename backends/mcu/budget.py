"""The SRAM budget: read it from the command line, hold a plan to it, explain a miss.

Sizes are binary, as datasheets and linker maps count SRAM: 1 KB = 1024 bytes,
1 MB = 1024 KB. A miss names the step where the most bytes are live, the tensors live
there (largest first), and the smallest budget that can be reached.
"""
from __future__ import annotations

import re

from ...passes.memory.plan import MemoryPlan
from .errors import BudgetError
from .timeline import timeline

_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
          "mib": 1024**2}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in ``320KB``, ``320K``, ``0.5MB``, ``327680`` (KB = 1024 bytes).

    Example:
        >>> parse_size("320KB"), parse_size("0.5MB"), parse_size("4096")
        (327680, 524288, 4096)
    """
    m = _SIZE.fullmatch(text)
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise ValueError(f"a memory size is a number with an optional unit B, KB (=1024 B) or MB "
                         f"(=1024 KB), e.g. 320KB, 0.5MB or 327680; got {text!r}")
    value = float(m.group(1)) * _UNITS[unit]
    if value != int(value) or value < 1:
        raise ValueError(f"memory size {text!r} is {value} bytes: it must be a positive whole number")
    return int(value)


def format_size(n: int) -> str:
    if n >= 1024**2:
        return f"{n:,} bytes ({n / 1024**2:.2f} MB)"
    if n >= 1024:
        return f"{n:,} bytes ({n / 1024:.1f} KB)"
    return f"{n:,} bytes"


def check_budget(plan: MemoryPlan, budget: int | None, reachable: int | None = None) -> None:
    """Raise BudgetError when ``plan``'s arena exceeds ``budget`` bytes.

    ``reachable`` is the smallest arena the planner can make; without it (a plan made
    without a budget-aware planner) it is this plan's own arena.
    """
    if budget is None or plan.arena_bytes <= budget:
        return
    raise BudgetError(explain_miss(plan, budget, reachable))


def explain_miss(plan: MemoryPlan, budget: int, reachable: int | None = None) -> str:
    tl = timeline(plan)
    peak = tl.peak_step
    node = tl.schedule[peak] if tl.schedule else None
    where = f"step {peak}, node {node.describe()}" if node is not None else "the graph inputs"
    lines = [f"the model needs an arena of {format_size(plan.arena_bytes)}, over the memory budget "
             f"of {format_size(budget)}; nothing was written.",
             f"  peak: {format_size(tl.peak_bytes)} live at {where}; live tensors there:"]
    live = tl.live_at(peak)
    for iv in live[:12]:
        lines.append(f"    {iv.value.name!r} {iv.value.type_str()}: {iv.size:,} bytes "
                     f"(steps {iv.start}..{iv.end})")
    if len(live) > 12:
        lines.append(f"    ... and {len(live) - 12} smaller ones")
    best = reachable if reachable is not None else plan.arena_bytes
    lines.append(f"  the smallest budget we can reach is {format_size(best)}")
    return "\n".join(lines)
