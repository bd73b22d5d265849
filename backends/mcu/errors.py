"""Errors of the microcontroller backend; each names the node, op, value or budget concerned."""
from __future__ import annotations

from ...ir.errors import FuseformerError


class McuCompileError(FuseformerError):
    """The graph cannot be compiled for the MCU target; nothing was written."""


class UnsupportedOpError(McuCompileError):
    """A node whose op (or attribute combination) has no C99 kernel."""


class ShapeError(McuCompileError):
    """A shape the static-arena code needs is not static, or not supported."""


class BudgetError(McuCompileError):
    """The model does not fit the memory budget: names the peak step, its live tensors and
    the smallest budget the planner can reach."""


class ToolchainError(FuseformerError):
    """No C compiler on this host to build the generated code (for --verify and tests)."""


class PlanError(RuntimeError):
    """The memory plan breaks its contract (a placement missing, or two values overlapping
    in a way no kernel can run with). A bug in the planner, not in the user's model, so it
    is not a FuseformerError: the CLI reports it as an internal error."""


class GeneratedCodeError(RuntimeError):
    """gcc rejected the generated C, or the built model failed: a bug in fuseformer."""
