"""Memory planning for static-arena targets: schedules, liveness, arena offsets, chunking."""
from .plan import MemoryPlan, Placement, naive_plan, value_bytes

__all__ = ["MemoryPlan", "Placement", "naive_plan", "value_bytes"]
