"""Errors of the CPU backend; each names the node, op or file concerned."""
from __future__ import annotations

from ...ir.errors import FuseformerError


class CpuCompileError(FuseformerError):
    """The graph cannot be compiled for the CPU target; nothing was written."""


class UnsupportedOpError(CpuCompileError):
    """A node whose op (or attribute combination) has no CPU kernel."""


class ShapeError(CpuCompileError):
    """A dim the generated code needs cannot be expressed in the model's symbols."""


class CompilerError(CpuCompileError):
    """The C++ compiler rejected the generated source; the message names the kept file."""
