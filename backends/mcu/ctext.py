"""Text that enters C99 source: element types, literals, and model-derived names made safe.

Model names (tensor and node names) may hold anything: quotes, newlines, ``*/``,
backslashes, trigraphs (``??/`` is a backslash under ``-std=c99``), unicode. They
reach generated source only through the three functions here: ``c_identifier``
(for accessor names in model.h), ``c_string`` (for the name tables) and
``comment_text`` (for ``//`` comments, shared with the CPU backend).

Float literals are C99 hexadecimal floats: a hex literal names its binary value
exactly, while the rounding of a decimal literal is implementation-defined (C99
6.4.4.2), so weights survive any compiler bit for bit.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ...ir.dtype import DType
from ..cpu.source import comment_text  # noqa: F401  (re-exported: the one comment escaper)
from .errors import UnsupportedOpError

CTYPES = {
    DType.FLOAT: "float", DType.DOUBLE: "double", DType.INT64: "int64_t", DType.INT32: "int32_t",
    DType.INT16: "int16_t", DType.INT8: "int8_t", DType.UINT8: "uint8_t", DType.UINT16: "uint16_t",
    DType.UINT32: "uint32_t", DType.UINT64: "uint64_t",
    # numpy's bool is one byte holding 0 or 1; _Bool's size is the ABI's choice, uint8_t is not
    DType.BOOL: "uint8_t",
}

# C99 keywords, and names that <math.h>/<string.h>/<stdint.h> may define as macros
_RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline
int long register restrict return short signed sizeof static struct switch typedef union unsigned
void volatile while _Bool _Complex _Imaginary
""".split())
_IDENT_BAD = re.compile(r"[^A-Za-z0-9_]+")
_STRING_SAFE = re.compile(r"[A-Za-z0-9 _.,:;=+\-#@()\[\]<>/*!&|^~{}$]")


def ctype(dtype: DType) -> str:
    try:
        return CTYPES[dtype]
    except KeyError:
        raise UnsupportedOpError(f"element type {dtype.short} has no C99 kernels") from None


def c_identifier(name: str, taken: set[str], prefix: str = "") -> str:
    """A C identifier made from ``name``, unique among ``taken`` (which it joins).

    Runs of other characters become one ``_``; a leading digit, a keyword or an
    empty result get a ``t_`` in front; ``__`` and ``_X`` (reserved to the
    implementation) never appear; clashes get ``_2``, ``_3``, ... Uniqueness ignores
    case, because model.h also spells each name in capitals (MODEL_INPUT_INDEX_X).
    """
    base = _IDENT_BAD.sub("_", name).strip("_")
    base = re.sub(r"_+", "_", base)
    if not base or base[0].isdigit() or base in _RESERVED:
        base = "t_" + base if base else "t"
    base = prefix + base
    ident, k = base, 2
    while ident.lower() in taken:
        ident = f"{base}_{k}"
        k += 1
    taken.add(ident.lower())
    return ident


def c_string(text: str) -> str:
    """A C string literal holding ``text`` as UTF-8; everything but safe ASCII is an octal escape.

    Octal escapes take at most three digits, so a following digit cannot extend one
    (hex escapes would swallow it); ``?`` is escaped so no trigraph forms.
    """
    out = []
    for ch in text:
        if _STRING_SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8"))
    return '"' + "".join(out) + '"'


def c_float(x: float) -> str:
    """A float32 literal naming ``x`` exactly (hexadecimal), or the <math.h> macro for inf/nan."""
    x = float(np.float32(x))
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    if x == 0.0:
        return "-0.0f" if math.copysign(1.0, x) < 0 else "0.0f"
    return _hex(x)


def _hex(x: float) -> str:
    # every float32 is a normal double, so float.hex gives 0x1.<13 digits>p<exp>; the
    # last 7 digits are zero, and we drop every trailing zero
    mantissa, _, exponent = x.hex().partition("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}f"


def c_double(x: float) -> str:
    x = float(x)
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    mantissa, _, exponent = x.hex().partition("p")
    return f"{mantissa.rstrip('0').rstrip('.')}p{exponent}"


def c_int(value: int, dtype: DType = DType.INT64) -> str:
    """An integer literal of the C type of ``dtype``, well-formed at the type's minimum too."""
    value = int(value)
    if dtype in (DType.INT64, DType.UINT64):
        macro = "INT64_C" if dtype is DType.INT64 else "UINT64_C"
        if value == -(2**63):
            return "(-INT64_C(9223372036854775807) - 1)"
        return f"{macro}({value})" if value >= 0 else f"(-{macro}({-value}))"
    if dtype is DType.INT32 and value == -(2**31):
        return "(-2147483647 - 1)"
    return str(value) if value >= 0 else f"({value})"


def c_scalar(value, dtype: DType) -> str:
    """A literal of ``dtype`` (for fills and attribute constants)."""
    if dtype is DType.FLOAT:
        return c_float(value)
    if dtype is DType.DOUBLE:
        return c_double(value)
    if dtype is DType.BOOL:
        return "1" if value else "0"
    if dtype.is_float:
        raise UnsupportedOpError(f"element type {dtype.short} has no C99 kernels")
    return c_int(value, dtype)


def array_items(array: np.ndarray) -> list[str]:
    """The literals of a constant's elements, in C order, for an array initializer."""
    flat = np.ascontiguousarray(array).reshape(-1)
    dtype = DType.from_numpy(flat.dtype)
    if dtype is DType.FLOAT:
        return [_float_item(x) for x in flat.astype(np.float64).tolist()]
    if dtype is DType.BOOL:
        return ["1" if b else "0" for b in flat.tolist()]
    return [c_scalar(v, dtype) for v in flat.tolist()]


def _float_item(x: float) -> str:
    if x == 0.0:
        return "0" if math.copysign(1.0, x) > 0 else "-0.0f"
    if x != x or x in (math.inf, -math.inf):
        return c_float(x)
    return _hex(x)
