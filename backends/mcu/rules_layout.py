"""Data movement: views, Transpose, Concat, Split, Slice, Pad, Gather, Expand and shape queries.

Each is a strided region copy (loops.emit_copy) whose strides and offsets are fixed
at compile time. The memory plan may make Reshape-like outputs, Split outputs, Slice
outputs and Concat inputs views of the bytes they copy from or into; emit_copy sees
source and destination coincide and emits nothing for them (alias=COPY).
"""
from __future__ import annotations

import numpy as np

from ...ir.dtype import DType
from ...ir.op import Op
from ...ir.reference.indexing import slice_bounds
from .ctext import c_scalar, ctype
from .lowering import COPY, NONE, Emitter, contiguous_strides, numel, rule
from .loops import broadcast_strides, emit_copy, emit_fill, loop_nest


def _axis(e: Emitter, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise e.unsupported(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _flat_copy(e: Emitter, dst, src) -> None:
    n = numel(e.shape(dst))
    emit_copy(e, dst, 0, (1,), src, 0, (1,), (n,))


@rule(Op.Reshape, Op.Flatten, Op.Squeeze, Op.Unsqueeze, Op.Identity, alias=COPY)
def view(e: Emitter) -> None:
    # the same elements in the same order: nothing to do when the plan made it a view
    _flat_copy(e, e.outputs[0], e.inputs[0])


@rule(Op.Dropout, alias=COPY)
def dropout(e: Emitter) -> None:
    if len(e.outputs) > 1 and e.outputs[1].uses:
        raise e.unsupported("Dropout's mask output")
    _flat_copy(e, e.outputs[0], e.inputs[0])


@rule(Op.Transpose, alias=NONE)
def transpose(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    shape = e.shape(x)
    perm = e.attrs.perm if e.attrs.perm is not None else tuple(reversed(range(len(shape))))
    strides = contiguous_strides(shape)
    emit_copy(e, y, 0, contiguous_strides(e.shape(y)), x, 0, tuple(strides[p] for p in perm),
              e.shape(y))


@rule(Op.Concat, alias=COPY)
def concat(e: Emitter) -> None:
    y = e.outputs[0]
    out = e.shape(y)
    axis = _axis(e, e.attrs.axis, len(out))
    strides = contiguous_strides(out)
    at = 0
    for v in e.inputs:
        shape = e.shape(v)
        emit_copy(e, y, at * strides[axis], strides, v, 0, contiguous_strides(shape), shape)
        at += shape[axis]


@rule(Op.Split, alias=COPY)
def split(e: Emitter) -> None:
    x = e.inputs[0]
    shape = e.shape(x)
    axis = _axis(e, e.attrs.axis, len(shape))
    strides = contiguous_strides(shape)
    at = 0
    for y in e.outputs:
        part = e.shape(y)
        if not e.dropped(y):
            emit_copy(e, y, 0, contiguous_strides(part), x, at * strides[axis], strides, part)
        at += part[axis]
    if at != shape[axis]:
        raise e.unsupported(f"outputs cover {at} of the {shape[axis]} elements along axis {axis}")


@rule(Op.Slice, alias=COPY)
def slice_(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    shape = e.shape(x)
    starts, ends = e.static_ints(1, "starts"), e.static_ints(2, "ends")
    axes = e.static_ints(3, "axes") if e.input(3) is not None else list(range(len(starts)))
    steps = e.static_ints(4, "steps") if e.input(4) is not None else [1] * len(starts)
    own = contiguous_strides(shape)
    base, strides = 0, list(own)
    for s, end, a, st in zip(starts, ends, axes, steps):
        a = _axis(e, a, len(shape))
        if shape[a] == 0:
            continue
        s, _ = slice_bounds(s, end, st, shape[a])
        base += s * own[a]
        strides[a] = own[a] * st
    emit_copy(e, y, 0, contiguous_strides(e.shape(y)), x, base, strides, e.shape(y))


@rule(Op.Pad, alias=NONE)
def pad(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    shape, out = e.shape(x), e.shape(y)
    rank = len(shape)
    pads = e.static_ints(1, "pads")
    axes = [_axis(e, a, rank) for a in e.static_ints(3, "axes")] if e.input(3) is not None \
        else list(range(rank))
    begin, end = [0] * rank, [0] * rank
    for j, a in enumerate(axes):
        begin[a], end[a] = pads[j], pads[j + len(axes)]
    # negative pads crop first; the padding then sees the cropped tensor
    crop = [max(0, -b) for b in begin]
    kept = [d - max(0, -b) - max(0, -f) for d, b, f in zip(shape, begin, end)]
    ox, oy = contiguous_strides(shape), contiguous_strides(out)
    if e.attrs.mode == "constant":
        fill = e.input(2)
        if fill is None:
            value = c_scalar(0, x.dtype)
        elif fill.const is not None:
            value = c_scalar(np.asarray(fill.const.numpy()).reshape(-1)[0].item(), x.dtype)
        else:
            value = f"{e.ptr(fill)}[0]"
        emit_fill(e, y, value)
        src = sum(c * s for c, s in zip(crop, ox))
        dst = sum(max(0, b) * s for b, s in zip(begin, oy))
        emit_copy(e, y, dst, oy, x, src, ox, kept)
        return
    if e.attrs.mode not in ("reflect", "edge", "wrap"):
        raise e.unsupported(f"Pad mode {e.attrs.mode!r}")
    if any(k == 0 and (b > 0 or f > 0) for k, b, f in zip(kept, begin, end)):
        raise e.unsupported(f"{e.attrs.mode}-padding an axis of size 0")
    # each output position along an axis reads one input position: a small table per axis
    tables = []
    for k in range(rank):
        source = np.pad(np.arange(kept[k]), (max(begin[k], 0), max(end[k], 0)), mode=e.attrs.mode) + crop[k]
        name = e.temp("pm")
        e.line(f"static const int32_t {name}[{max(len(source), 1)}] = "
               f"{{{', '.join(str(int(i)) for i in source) or '0'}}};")
        tables.append(name)
    with loop_nest(e, out) as indices:
        dst = " + ".join(f"{s} * {i}" for s, i in zip(oy, indices)) or "0"
        src = " + ".join(f"{s} * {t}[{i}]" for s, t, i in zip(ox, tables, indices)) or "0"
        e.line(f"{e.ptr(y)}[{dst}] = {e.ptr(x)}[{src}];")


@rule(Op.Expand, alias=NONE)
def expand(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    out = e.shape(y)
    emit_copy(e, y, 0, contiguous_strides(out), x, 0, broadcast_strides(e.shape(x), out), out)


@rule(Op.Gather, alias=NONE)
def gather(e: Emitter) -> None:
    data, idx, y = e.inputs[0], e.inputs[1], e.outputs[0]
    shape = e.shape(data)
    axis = _axis(e, e.attrs.axis, len(shape))
    if idx.dtype not in (DType.INT64, DType.INT32):
        raise e.unsupported(f"Gather indices of type {idx.dtype.short}")
    dim = shape[axis]
    outer, inner, n = numel(shape[:axis]), numel(shape[axis + 1:]), numel(e.shape(idx))
    if numel(e.shape(y)) == 0:
        return
    checked = idx.const is not None
    if checked:
        values = np.asarray(idx.const.numpy()).reshape(-1)
        bad = [int(v) for v in values if not -dim <= int(v) < dim]
        if bad:
            raise e.unsupported(f"constant index {bad[0]} is out of range for a dim of size {dim}")
    t = ctype(data.dtype)
    d, s, ix = e.ptr(y), e.ptr(data), e.ptr(idx)
    with e.loop(outer, "o") as o, e.loop(n, "j") as j:
        k = e.temp("k")
        e.line(f"int64_t {k} = {ix}[{j}];")
        e.line(f"if ({k} < 0) {k} += {dim};")
        if not checked:
            e.line(f"if ({k} < 0 || {k} >= {dim}) {e.fail_status('a Gather index is out of range')}")
        dst = f"({o} * {n} + {j}) * {inner}"
        src = f"({o} * {dim} + (int){k}) * {inner}"
        if inner == 1:
            e.line(f"{d}[{dst}] = {s}[{src}];")
        else:
            e.line(f"memcpy({d} + {dst}, {s} + {src}, {inner} * sizeof({t}));")


def _fill_elements(e: Emitter, values) -> None:
    y = e.outputs[0]
    for k, v in enumerate(values):
        e.line(f"{e.ptr(y)}[{k}] = {c_scalar(v, y.dtype)};")


@rule(Op.Shape, alias=NONE)
def shape_(e: Emitter) -> None:
    dims = e.shape(e.inputs[0])
    _fill_elements(e, dims[e.attrs.start:e.attrs.end])


@rule(Op.Size, alias=NONE)
def size(e: Emitter) -> None:
    _fill_elements(e, [numel(e.shape(e.inputs[0]))])


@rule(Op.ConstantOfShape, alias=NONE)
def constant_of_shape(e: Emitter) -> None:
    y = e.outputs[0]
    value = 0 if e.attrs.value is None else np.asarray(e.attrs.value.numpy()).reshape(-1)[0].item()
    emit_fill(e, y, c_scalar(value, y.dtype))
