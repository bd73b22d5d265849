"""Per-kernel timing of a ``profile=True`` build: which kernel kind the time goes to.

A profiled build wraps every kernel call of ``ff_run`` in a clock read before and
after, and adds the difference to its kind's total (``KINDS``). The library
exports ``ff_profile_names()`` (the kinds, comma-separated),
``ff_profile(double* out, int n)`` (milliseconds per kind since the last reset;
returns the number of kinds) and ``ff_profile_reset()``. ``Session.profile()``
reads them. The clock reads cost about 40 ns a call, so a profiled build runs a
little slower than a plain one: use it to rank kernels, not to quote latency.
"""
from __future__ import annotations

import re

KINDS = ("gemm", "attention", "norm", "elementwise", "layout", "conv", "reduce", "other")

# kernel (the C++ function a generated line calls) -> kind
_KERNEL_KIND = {
    "gemm": "gemm", "batched_gemm": "gemm", "packed_linear": "gemm",  # with its fused epilogue
    "packed_linear_rows": "gemm", "attention": "attention", "attention_span": "attention",
    "layer_norm": "norm", "rms_norm": "norm", "crms_norm": "norm", "rotary": "norm",
    "layer_norm_rows": "norm", "rms_norm_rows": "norm", "crms_norm_rows": "norm",
    "map": "elementwise", "binary": "elementwise", "ternary": "elementwise",
    "linear_epilogue": "elementwise", "fill": "elementwise", "range": "elementwise",
    "strided_copy": "layout", "copy_columns": "layout", "take_columns": "layout", "gather": "layout",
    "gather_nd": "layout", "pad": "layout", "memcpy": "layout",
    "conv2d": "conv", "pool2d": "conv",
    "reduce": "reduce", "softmax": "reduce",
}
# a statement that calls a kernel: `ff::name(...)`, `ff::name<T>(...)`, `std::memcpy(...)`,
# or the checked form `if (!(ff::name(...))) return k;`
_CALL = re.compile(r"^(?:if \(!\()?(?:ff|std)::(\w+)[(<]")


def kernel_kind(line: str) -> str | None:
    """The kind of the kernel ``line`` calls, or None when the line calls none (a declaration)."""
    m = _CALL.match(line)
    if m is None:
        return None
    return _KERNEL_KIND.get(m.group(1), "other")


def timed(line: str, kind: str, region: bool = False) -> str:
    """``line`` wrapped in clock reads that add its time to ``kind``'s total (one source line).

    Inside a row region (regions.py) each thread runs the kernel on its own rows at the same
    time: only the thread holding the first rows adds its time (the totals are not atomic).
    """
    k = KINDS.index(kind)
    add = f"if (r0_ == 0) g_profile[{k}] += ff::now_ms() - t_;" if region else f"g_profile[{k}] += ff::now_ms() - t_;"
    return f"{{ const double t_ = ff::now_ms(); {line} {add} }}"


def prelude() -> list[str]:
    """Source lines (inside the file's anonymous namespace) holding the per-kind totals."""
    return [f"double g_profile[{len(KINDS)}] = {{}};  // ms per kernel kind since the last reset"]


def exports(enabled: bool) -> list[tuple[str, list[str]]]:
    """(function head, body lines) of the profile functions; a plain build reports no kinds."""
    names = ",".join(KINDS) if enabled else ""
    n = len(KINDS) if enabled else 0
    return [
        ('FF_EXPORT const char* ff_profile_names(void)', [f'return "{names}";']),
        ("FF_EXPORT int ff_profile(double* out, int n)",
         [f"for (int k = 0; k < n && k < {n}; ++k) out[k] = g_profile[k];", f"return {n};"]),
        ("FF_EXPORT void ff_profile_reset(void)",
         [f"for (int k = 0; k < {len(KINDS)}; ++k) g_profile[k] = 0.0;"]),
    ]
