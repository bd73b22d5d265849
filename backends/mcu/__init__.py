"""The microcontroller target: plain C99 with one static arena (see compile.py)."""
from .budget import parse_size
from .compile import compile_mcu
from .errors import BudgetError, McuCompileError, PlanError, ShapeError, UnsupportedOpError

__all__ = ["BudgetError", "McuCompileError", "PlanError", "ShapeError", "UnsupportedOpError",
           "compile_mcu", "parse_size"]
