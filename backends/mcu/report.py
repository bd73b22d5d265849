"""memory.png: the memory timeline of a plan, for people who would rather look than read.

Top panel: bytes live per step, with the arena size and the budget as lines, the peak
marked. Bottom panel: the arena layout over time, one box per value spanning its
steps (x) and its bytes (y), so reuse shows as boxes stacked in time on the same
rows, and the peak step as the column where the boxes reach highest.
"""
from __future__ import annotations

from pathlib import Path

from ...passes.memory.plan import MemoryPlan
from ...passes.memory.report import format_report
from .timeline import timeline

SHORT_TABLE = 60  # rows printed by --report; memory.txt has every step


def write_report(plan: MemoryPlan, png: Path, txt: Path | None = None, budget: int | None = None) -> str:
    """Draw ``png``, write the summary and the full table to ``txt`` (if given); returns the
    summary (peak SRAM, flash, the peak step and its live tensors) and a short table."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Rectangle

    tl = timeline(plan)
    summary = format_report(plan)
    if txt is not None:
        txt.write_text(summary + "\n\n" + tl.table() + "\n")
    steps = len(tl.schedule)
    kb = 1024.0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True,
                                      gridspec_kw={"height_ratios": [1, 2]})
    xs = list(range(steps))
    top.step(xs, [b / kb for b in tl.live], where="mid", color="#1f77b4", label="bytes live")
    top.fill_between(xs, [b / kb for b in tl.live], step="mid", alpha=0.25, color="#1f77b4")
    top.axhline(plan.arena_bytes / kb, color="#444444", linestyle="--", linewidth=1,
                label=f"arena {plan.arena_bytes / kb:,.1f} KB")
    if budget is not None:
        top.axhline(budget / kb, color="#d62728", linewidth=1.2, label=f"budget {budget / kb:,.1f} KB")
    if steps:
        peak = tl.peak_step
        top.plot([peak], [tl.peak_bytes / kb], "o", color="#d62728")
        node = tl.schedule[peak]
        top.annotate(f"peak {tl.peak_bytes / kb:,.1f} KB\nstep {peak}: {node.op.value}", (peak, tl.peak_bytes / kb),
                     textcoords="offset points", xytext=(8, -4), fontsize=8, va="top")
    top.set_ylabel("live (KB)")
    # a "$" in a model name would start matplotlib mathtext
    name = plan.graph.name.replace("$", r"\$")
    top.set_title(f"memory timeline of {name}: {steps} steps, {len(tl.intervals)} values")
    top.legend(loc="upper right", fontsize=8)
    top.grid(alpha=0.3)

    boxes, colors = [], []
    cmap = plt.get_cmap("tab20")
    for k, iv in enumerate(sorted(tl.intervals, key=lambda iv: (iv.start, iv.offset))):
        boxes.append(Rectangle((iv.start - 0.45, iv.offset / kb), iv.end - iv.start + 0.9, max(iv.size / kb, 1e-3)))
        colors.append(cmap(k % 20))
    bottom.add_collection(PatchCollection(boxes, facecolors=colors, edgecolors="#333333", linewidths=0.3,
                                          alpha=0.85))
    bottom.axhline(plan.arena_bytes / kb, color="#444444", linestyle="--", linewidth=1)
    if steps:
        bottom.axvline(tl.peak_step, color="#d62728", linestyle=":", linewidth=1)
    if budget is not None:
        bottom.axhline(budget / kb, color="#d62728", linewidth=1.2)
    bottom.set_xlim(-1, max(steps, 1))
    bottom.set_ylim(0, max(plan.arena_bytes, budget or 0, 1) / kb * 1.05)
    bottom.set_xlabel("step (schedule order)")
    bottom.set_ylabel("arena offset (KB)")
    bottom.set_title("arena layout: one box per value (steps it lives x bytes it holds)", fontsize=10)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return summary + "\n\n" + tl.table(limit=SHORT_TABLE)
