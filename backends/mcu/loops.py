"""Loop nests with static bounds: strided region copies and broadcasting elementwise maps.

Every shape is known, so both emitters first simplify the iteration space: dims of
extent 1 disappear, and neighbouring dims merge when every operand walks them as one
(stride of the outer = stride of the inner * inner extent). A same-shape Add becomes
one flat loop, a Transpose [0, 2, 1, 3] three loops around a memcpy.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from ...ir.value import Value
from .ctext import ctype
from .errors import PlanError
from .lowering import Emitter, contiguous_strides, numel

Strides = tuple[int, ...]


def simplify(shape: Sequence[int], strides: Sequence[Strides]) -> tuple[list[int], list[list[int]]]:
    """Drop unit dims and merge mergeable neighbours; ``strides[k]`` are operand k's strides."""
    dims = [i for i, d in enumerate(shape) if d != 1]
    out_shape: list[int] = []
    out_strides: list[list[int]] = [[] for _ in strides]
    for i in dims:
        if out_shape and all(s[-1] == st[i] * shape[i] for s, st in zip(out_strides, strides)):
            out_shape[-1] *= shape[i]
            for s, st in zip(out_strides, strides):
                s[-1] = st[i]
            continue
        out_shape.append(shape[i])
        for s, st in zip(out_strides, strides):
            s.append(st[i])
    return out_shape, out_strides


def index_expr(base: int, strides: Sequence[int], indices: Sequence[str]) -> str:
    terms = [str(base)] if base else []
    for s, i in zip(strides, indices):
        if s == 1:
            terms.append(i)
        elif s:
            terms.append(f"{s} * {i}")
    return " + ".join(terms) or "0"


def broadcast_strides(shape: Sequence[int], out: Sequence[int]) -> Strides:
    """Element strides that read ``shape`` (right-aligned, numpy broadcasting) over ``out``."""
    own = contiguous_strides(tuple(shape))
    lead = len(out) - len(shape)
    strides = []
    for axis, d in enumerate(out):
        k = axis - lead
        strides.append(0 if k < 0 or shape[k] == 1 else own[k])
    return tuple(strides)


def _touched(base: int, shape: Sequence[int], strides: Sequence[int]) -> tuple[int, int]:
    lo = hi = base
    for d, s in zip(shape, strides):
        lo += min(0, s * (d - 1))
        hi += max(0, s * (d - 1))
    return lo, hi + 1


def emit_copy(e: Emitter, dst: Value, dst_base: int, dst_strides: Sequence[int],
              src: Value, src_base: int, src_strides: Sequence[int], shape: Sequence[int]) -> None:
    """dst[dst_base + sum(i_k * dst_strides[k])] = src[src_base + sum(i_k * src_strides[k])].

    Offsets and strides count elements of the (common) element type. A copy whose source
    and destination are the same bytes (the plan made a view) emits nothing; overlapping
    contiguous runs use memmove; any other overlap is a broken plan.
    """
    if numel(tuple(shape)) == 0:
        return
    dims, (ds, ss) = simplify(shape, [tuple(dst_strides), tuple(src_strides)])
    size = dst.dtype.itemsize
    dspan, sspan = e.span(dst), e.span(src)
    overlap = False
    if sspan is not None:
        d0, d1 = _touched(dst_base, dims, ds)
        s0, s1 = _touched(src_base, dims, ss)
        da, sa = dspan[0] + d0 * size, sspan[0] + s0 * size
        overlap = da < sspan[0] + s1 * size and sa < dspan[0] + d1 * size
        if overlap and dspan[0] + dst_base * size == sspan[0] + src_base * size and ds == ss:
            e.note(f"{dst.name}: the memory plan made this a view, nothing to copy")
            return
        contiguous = len(dims) <= 1 and ds in ([], [1]) and ss in ([], [1])
        if overlap and not contiguous:
            raise PlanError(f"node {e.node.describe()}: the memory plan overlaps {dst.name!r} with "
                            f"{src.name!r} in a way no copy can handle (not a view, not one run)")
    d, s = e.ptr(dst), e.ptr(src)
    t = ctype(dst.dtype)
    inner_run = bool(dims) and ds[-1] == 1 and ss[-1] == 1
    outer = dims[:-1] if inner_run else dims
    with loop_nest(e, outer) as indices:
        if inner_run:
            fn = "memmove" if overlap else "memcpy"
            di = index_expr(dst_base, ds[:-1], indices)
            si = index_expr(src_base, ss[:-1], indices)
            e.line(f"{fn}({_at(d, di)}, {_at(s, si)}, {dims[-1]} * sizeof({t}));")
        else:
            e.line(f"{d}[{index_expr(dst_base, ds, indices)}] = {s}[{index_expr(src_base, ss, indices)}];")


def _at(pointer: str, index: str) -> str:
    return pointer if index == "0" else f"{pointer} + {index}"


def emit_fill(e: Emitter, dst: Value, value: str) -> None:
    """Every element of ``dst`` set to the C expression ``value``."""
    n = numel(e.shape(dst))
    if n == 0:
        return
    with e.loop(n) as i:
        e.line(f"{e.ptr(dst)}[{i}] = {value};")


@contextlib.contextmanager
def loop_nest(e: Emitter, dims: Sequence[int]) -> Iterator[list[str]]:
    """Nested for-loops over ``dims`` (outermost first); yields their index names."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(e.loop(d)) for d in dims]


def emit_map(e: Emitter, out: Value, operands: Sequence[tuple[str, Value]], expr: str,
             scalars: dict[str, tuple[str, str]] | None = None) -> None:
    """out[i] = expr, where each operand's variable holds its (broadcast) element at i.

    ``operands`` are (variable, value) pairs; ``scalars`` maps variables bound once before
    the loops to (C type, C expression): constant attributes, or a bound read at run time.
    An operand whose element is the same for every i is also read once, before the loops.
    """
    shape = e.shape(out)
    strides = [contiguous_strides(shape)]
    for _, v in operands:
        strides.append(broadcast_strides(e.shape(v), shape))
    dims, simple = simplify(shape, strides)
    if numel(shape) == 0:
        return
    for var, (t, value) in (scalars or {}).items():
        e.line(f"const {t} {var} = {value};")
    hoisted = set()
    for k, (var, v) in enumerate(operands):
        if all(s == 0 for s in simple[k + 1]):
            e.line(f"const {ctype(v.dtype)} {var} = {e.ptr(v)}[0];")
            hoisted.add(var)
    y = e.ptr(out)
    with loop_nest(e, dims) as indices:
        for k, (var, v) in enumerate(operands):
            if var not in hoisted:
                e.line(f"const {ctype(v.dtype)} {var} = {e.ptr(v)}[{index_expr(0, simple[k + 1], indices)}];")
        e.line(f"{y}[{index_expr(0, simple[0], indices)}] = {expr};")
