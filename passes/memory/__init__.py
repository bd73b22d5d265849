"""Memory planning for static-arena targets: schedules, liveness, arena offsets, chunking.

Example:
    >>> from fuseformer.ir.specialize import specialize
    >>> from fuseformer.passes.memory import plan_memory, format_report
    >>> plan = plan_memory(specialize(graph, {"batch": 1}), budget=320 * 1024)
    >>> print(format_report(plan))
"""
from .arena import ArenaResult, Request, check_arena, live_lower_bound, plan_arena, tflm_greedy
from .chunking import chunk_graph, choose_chunks
from .inplace import Aliasing, analyze_aliasing
from .liveness import Buffer, Liveness, analyze, lower_bound_any_schedule, value_intervals
from .plan import MemoryPlan, Placement, naive_plan, value_bytes
from .planner import MemoryBudgetError, build_plan, plan_memory
from .report import Rect, Timeline, format_report, timeline
from .schedule import ScheduleResult, minimize_peak, model_peak
from .verify import check_plan

__all__ = ["Aliasing", "ArenaResult", "Buffer", "Liveness", "MemoryBudgetError", "MemoryPlan", "Placement",
           "Rect", "Request", "ScheduleResult", "Timeline", "analyze", "analyze_aliasing", "build_plan",
           "check_arena", "check_plan", "choose_chunks", "chunk_graph", "format_report", "live_lower_bound",
           "lower_bound_any_schedule", "minimize_peak", "model_peak", "naive_plan", "plan_arena", "plan_memory",
           "tflm_greedy", "timeline", "value_bytes", "value_intervals"]
