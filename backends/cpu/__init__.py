"""The CPU target: optimized IR -> generated C++17 (OpenBLAS GEMMs, OpenMP kernels) -> artifact."""
from .compile import compile_cpu
from .errors import CompilerError, CpuCompileError, ShapeError, UnsupportedOpError

__all__ = ["CompilerError", "CpuCompileError", "ShapeError", "UnsupportedOpError", "compile_cpu"]
