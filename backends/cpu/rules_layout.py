"""Shape and data-movement ops: views, Transpose, Concat, Split, Slice, the gathers and
scatters, OneHot, Expand, Tile, DepthToSpace / SpaceToDepth, Pad, and the shape sources
Shape, Size, Range and ConstantOfShape.

Reshape, Flatten, Squeeze and Unsqueeze are views: the arena is always
contiguous, so they only rename a buffer.
"""
from __future__ import annotations

import numpy as np

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import Op
from .errors import ShapeError
from .heads import split_view
from .lowering import (MAX_ELEMS, ONE, ZERO, Ctx, Info, Lowered, axis_index, broadcast_strides,
                       coalesce, no_code, rule)
from .renderer import c_scalar, ctype
from .rules_elementwise import fold_elems
from .symexpr import Expr, contiguous_strides, numel

_INT64_MAX = 2**63 - 1


def _view(info: Info, shape: tuple[Expr, ...], static: frozenset[int] = frozenset({1})) -> Lowered:
    return Lowered([Info(info.dtype, tuple(shape), info.elems)], no_code, static=static, view=True)


@rule(Op.Reshape)
def reshape(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    target = list(ctx.static(node, 1, "target shape"))
    out: list[Expr | None] = []
    for i, t in enumerate(target):
        if t.is_const and t.value == 0 and not node.attrs.allowzero:
            if i >= x.rank:
                raise ShapeError(f"node {node.describe()}: 0 at position {i} >= input rank {x.rank}")
            out.append(x.shape[i])
        elif t.is_const and t.value == -1:
            out.append(None)
        elif t.is_const and t.value < 0 or not t.is_const and ctx.bounds.sign(t) != 1:
            raise ShapeError(f"node {node.describe()}: target dim {t} is not a positive size")
        else:
            out.append(t)
    if out.count(None) > 1:
        raise ShapeError(f"node {node.describe()}: target {[str(t) for t in target]} has two -1")
    if None in out:
        rest = numel([d for d in out if d is not None])
        out[out.index(None)] = ctx.bounds.floordiv(x.numel, rest)
    return _view(x, tuple(out))


@rule(Op.Flatten)
def flatten(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    axis = node.attrs.axis + x.rank if node.attrs.axis < 0 else node.attrs.axis
    if not 0 <= axis <= x.rank:
        raise ShapeError(f"node {node.describe()}: axis {node.attrs.axis} is out of range")
    return _view(x, (numel(x.shape[:axis]), numel(x.shape[axis:])), frozenset())


@rule(Op.Squeeze)
def squeeze(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if node.input(1) is None:
        drop = {i for i, d in enumerate(x.shape) if d == ONE}
    else:
        drop = {axis_index(node, a, x.rank) for a in ctx.static_ints(node, 1, "axes")}
    return _view(x, tuple(d for i, d in enumerate(x.shape) if i not in drop))


@rule(Op.Unsqueeze)
def unsqueeze(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    axes = ctx.static_ints(node, 1, "axes")
    rank = x.rank + len(axes)
    shape = list(x.shape)
    for a in sorted(axis_index(node, a, rank) for a in axes):
        shape.insert(a, ONE)
    return _view(x, tuple(shape))


@rule(Op.Dropout)
def dropout(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if node.input(2) is not None:
        mode = ctx.static_ints(node, 2, "training_mode")
        if any(mode):
            raise ctx.unsupported(node, "Dropout in training mode")
    outs = [Info(x.dtype, x.shape, x.elems)]
    if len(node.outputs) > 1:
        outs.append(Info(DType.BOOL, x.shape))

    def emit(e):
        if len(node.outputs) > 1:
            e.line(f"ff::fill({e.dim(x.numel)}, true, {e.ptr(node.outputs[1])});")
    return Lowered(outs, emit, static=frozenset({1, 2}), view=True)


@rule(Op.Transpose)
def transpose(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    perm = node.attrs.perm if node.attrs.perm is not None else tuple(reversed(range(x.rank)))
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"node {node.describe()}: perm {list(perm)} does not fit rank {x.rank}")
    shape = tuple(x.shape[p] for p in perm)
    strides = contiguous_strides(x.shape)
    elems = None
    if x.elems is not None and all(d.is_const for d in x.shape):
        arr = np.array(x.elems, dtype=object).reshape([d.value for d in x.shape])
        elems = tuple(np.transpose(arr, perm).reshape(-1))

    if id(node) in ctx.fused_views:
        # the Attention before it already wrote this layout (heads.py)
        return Lowered([Info(x.dtype, shape, elems)], no_code, view=True)
    view = split_view(ctx, node, x)
    if view is not None:
        # the Attention after it reads the input through strides (heads.py)
        ctx.strided[id(node.outputs[0])] = view
        return Lowered([Info(x.dtype, shape, elems)], no_code, view=True)

    def emit(e):
        emit_strided_copy(e, x.dtype, e.ptr(node.inputs[0]), shape,
                          [strides[p] for p in perm], e.ptr(node.outputs[0]))
    return Lowered([Info(x.dtype, shape, elems)], emit)


def emit_strided_copy(e, dtype, src: str, shape, strides, dst: str) -> None:
    dims, (st,) = coalesce(shape, [strides])
    if len(dims) == 1 and st[0] == ONE:
        e.line(f"std::memcpy({dst}, {src}, sizeof({ctype(dtype)}) * {e.dim(dims[0])});")
        return
    e.line(f"ff::strided_copy({len(dims)}, {e.array(dims)}, {src}, {e.array(st)}, {dst});")


def _same_dims(ctx: Ctx, node: Node, shapes, axis: int) -> None:
    for s in shapes[1:]:
        if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != axis):
            raise ShapeError(f"node {node.describe()}: input shapes "
                             f"{[[str(d) for d in s] for s in shapes]} differ off axis {axis}")


@rule(Op.Concat)
def concat(ctx: Ctx, node: Node) -> Lowered:
    ins = [ctx.info(v) for v in node.inputs]
    rank = ins[0].rank
    axis = axis_index(node, node.attrs.axis, rank)
    _same_dims(ctx, node, [i.shape for i in ins], axis)
    total = sum((i.shape[axis] for i in ins), ZERO)
    shape = ins[0].shape[:axis] + (total,) + ins[0].shape[axis + 1:]
    elems = None
    if all(i.elems is not None and all(d.is_const for d in i.shape) for i in ins):
        arrs = [np.array(i.elems, dtype=object).reshape([d.value for d in i.shape]) for i in ins]
        joined = np.concatenate(arrs, axis=axis).reshape(-1)
        elems = tuple(joined) if len(joined) <= MAX_ELEMS else None
    out = node.outputs[0]

    def emit(e):
        outer = numel(shape[:axis])
        row = numel(shape[axis:])
        offset = ZERO
        for v, info in zip(node.inputs, ins):
            chunk = numel(info.shape[axis:])
            e.line(f"ff::copy_columns({e.dim(outer)}, {e.dim(chunk)}, {e.ptr(v)}, {e.dim(row)}, "
                   f"{e.dim(offset)}, {e.ptr(out)});")
            offset = offset + chunk
    return Lowered([Info(ins[0].dtype, shape, elems)], emit)


@rule(Op.Split)
def split(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    axis = axis_index(node, node.attrs.axis, x.rank)
    dim = x.shape[axis]
    n = len(node.outputs)
    if node.input(1) is not None:
        sizes = list(ctx.static(node, 1, "split sizes"))
    else:
        chunk = ctx.bounds.ceildiv(dim, node.attrs.num_outputs or n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
    if len(sizes) != n:
        raise ShapeError(f"node {node.describe()}: {len(sizes)} split sizes for {n} outputs")
    shapes = [x.shape[:axis] + (s,) + x.shape[axis + 1:] for s in sizes]

    def emit(e):
        outer, row = numel(x.shape[:axis]), numel(x.shape[axis:])
        offset = ZERO
        for v, shape in zip(node.outputs, shapes):
            chunk = numel(shape[axis:])
            e.line(f"ff::take_columns({e.dim(outer)}, {e.dim(chunk)}, {e.ptr(node.inputs[0])}, "
                   f"{e.dim(row)}, {e.dim(offset)}, {e.ptr(v)});")
            offset = offset + chunk
    return Lowered([Info(x.dtype, s) for s in shapes], emit, static=frozenset({1}))


def _slice_bounds(ctx: Ctx, start: Expr, end: Expr, step: int, dim: Expr) -> tuple[Expr, Expr]:
    """ONNX clamping of one axis (see slice_bounds in ir/reference/indexing.py), symbolically."""
    b = ctx.bounds

    def resolve(v: Expr) -> Expr:
        if v.is_const and v.value >= _INT64_MAX // 2:
            return v  # "to the end": clamps below
        sign = b.sign(v)
        if sign is None and not b.ge(v, 0):
            raise ShapeError(f"cannot tell whether slice bound {v} counts from the end")
        return v + dim if sign == -1 else v
    start, end = resolve(start), resolve(end)
    if step > 0:
        return b.min(b.max(start, 0), dim), b.min(b.max(end, 0), dim)
    return b.min(b.max(start, 0), dim - 1), b.min(b.max(end, -1), dim - 1)


@rule(Op.Slice)
def slice_(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    starts = ctx.static(node, 1, "starts")
    ends = ctx.static(node, 2, "ends")
    axes = ctx.static_ints(node, 3, "axes") if node.input(3) is not None else list(range(len(starts)))
    steps = ctx.static_ints(node, 4, "steps") if node.input(4) is not None else [1] * len(starts)
    begin = [ZERO] * x.rank
    step_of = [1] * x.rank
    shape = list(x.shape)
    for s, t, a, st in zip(starts, ends, axes, steps):
        a = axis_index(node, a, x.rank)
        if st == 0:
            raise ShapeError(f"node {node.describe()}: slice step is 0")
        lo, hi = _slice_bounds(ctx, s, t, st, x.shape[a])
        count = ctx.bounds.ceildiv(hi - lo, st) if st != 1 else hi - lo
        shape[a] = ctx.bounds.max(count, 0)
        begin[a], step_of[a] = lo, st
    shape = tuple(shape)
    strides = contiguous_strides(x.shape)
    elems = None
    static_shapes = all(d.is_const for d in x.shape + shape + tuple(begin))
    if x.elems is not None and static_shapes and all(st > 0 for st in step_of):
        arr = np.array(x.elems, dtype=object).reshape([d.value for d in x.shape])
        index = tuple(slice(b.value, b.value + st * n.value, st) for b, st, n in zip(begin, step_of, shape))
        elems = tuple(arr[index].reshape(-1))
    offset = sum((b * s for b, s in zip(begin, strides)), ZERO)

    def emit(e):
        src = f"{e.ptr(node.inputs[0])} + {e.dim(offset)}"
        emit_strided_copy(e, x.dtype, src, shape, [s * st for s, st in zip(strides, step_of)],
                          e.ptr(node.outputs[0]))
    return Lowered([Info(x.dtype, shape, elems)], emit, static=frozenset({1, 2, 3, 4}))


@rule(Op.Gather)
def gather(ctx: Ctx, node: Node) -> Lowered:
    data, idx = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    axis = axis_index(node, node.attrs.axis, data.rank)
    if idx.dtype not in (DType.INT64, DType.INT32):
        raise ctx.unsupported(node, f"Gather with {idx.dtype.short} indices")
    shape = data.shape[:axis] + idx.shape + data.shape[axis + 1:]
    elems = None
    if data.elems is not None and idx.elems is not None and all(d.is_const for d in data.shape):
        arr = np.array(data.elems, dtype=object).reshape([d.value for d in data.shape])
        size = data.shape[axis].value
        picks = [i.value if i.is_const else None for i in idx.elems]
        if all(p is not None and -size <= p < size for p in picks) and all(d.is_const for d in idx.shape):
            where = np.array(picks, dtype=np.int64).reshape([d.value for d in idx.shape])
            elems = tuple(np.array(np.take(arr, where, axis=axis), dtype=object).reshape(-1))

    def emit(e):
        e.check(f"ff::gather({e.dim(numel(data.shape[:axis]))}, {e.dim(data.shape[axis])}, "
                f"{e.dim(numel(data.shape[axis + 1:]))}, {e.ptr(node.inputs[0])}, {e.dim(idx.numel)}, "
                f"{e.ptr(node.inputs[1])}, {e.ptr(node.outputs[0])})")
    return Lowered([Info(data.dtype, shape, elems)], emit, status="an index is out of range")


def _index_dtype(ctx: Ctx, node: Node, idx: Info) -> None:
    if idx.dtype not in (DType.INT64, DType.INT32):
        raise ctx.unsupported(node, f"{node.op.value} with {idx.dtype.short} indices")


def _along_axis(ctx: Ctx, node: Node, data: Info, idx: Info) -> tuple[int, tuple[Expr, ...], Expr]:
    """GatherElements / ScatterElements: the axis, data's strides without it, its stride."""
    axis = axis_index(node, node.attrs.axis, data.rank)
    _index_dtype(ctx, node, idx)
    if idx.rank != data.rank:
        raise ShapeError(f"node {node.describe()}: indices of rank {idx.rank} for data of rank {data.rank}")
    strides = contiguous_strides(data.shape)
    return axis, tuple(ZERO if d == axis else st for d, st in enumerate(strides)), strides[axis]


@rule(Op.GatherElements)
def gather_elements(ctx: Ctx, node: Node) -> Lowered:
    data, idx = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    axis, strides, axis_stride = _along_axis(ctx, node, data, idx)

    def emit(e):
        e.check(f"ff::gather_elements({idx.rank}, {e.array(idx.shape)}, {e.ptr(node.inputs[0])}, "
                f"{e.array(strides)}, {e.dim(data.shape[axis])}, {e.dim(axis_stride)}, "
                f"{e.ptr(node.inputs[1])}, {e.ptr(node.outputs[0])})")
    return Lowered([Info(data.dtype, idx.shape)], emit, status="an index is out of range")


_SCATTER = {"none": "ff::kScatterNone", "add": "ff::kScatterAdd", "mul": "ff::kScatterMul",
            "max": "ff::kScatterMax", "min": "ff::kScatterMin"}


def _scatter_reduction(ctx: Ctx, node: Node) -> str:
    if node.attrs.reduction not in _SCATTER:
        raise ctx.unsupported(node, f"{node.op.value} reduction {node.attrs.reduction!r}")
    return _SCATTER[node.attrs.reduction]


def _copy_data(e, node: Node, data: Info) -> None:
    e.line(f"std::memcpy({e.ptr(node.outputs[0])}, {e.ptr(node.inputs[0])}, "
           f"sizeof({ctype(data.dtype)}) * {e.dim(data.numel)});")


@rule(Op.ScatterElements)
def scatter_elements(ctx: Ctx, node: Node) -> Lowered:
    data, idx, upd = (ctx.info(v) for v in node.inputs)
    axis, strides, axis_stride = _along_axis(ctx, node, data, idx)
    if upd.shape != idx.shape:
        raise ShapeError(f"node {node.describe()}: updates {[str(d) for d in upd.shape]} differ from "
                         f"indices {[str(d) for d in idx.shape]}")
    reduction = _scatter_reduction(ctx, node)

    def emit(e):
        _copy_data(e, node, data)
        e.check(f"ff::scatter_elements({idx.rank}, {e.array(idx.shape)}, {e.array(strides)}, "
                f"{e.dim(data.shape[axis])}, {e.dim(axis_stride)}, {e.ptr(node.inputs[1])}, "
                f"{e.ptr(node.inputs[2])}, {reduction}, {e.ptr(node.outputs[0])})")
    return Lowered([Info(data.dtype, data.shape)], emit, status="an index is out of range")


@rule(Op.ScatterND)
def scatter_nd(ctx: Ctx, node: Node) -> Lowered:
    data, idx, upd = (ctx.info(v) for v in node.inputs)
    _index_dtype(ctx, node, idx)
    k = idx.shape[-1] if idx.rank else None
    fits = k is not None and k.is_const and k.value <= data.rank
    if not fits or upd.shape != idx.shape[:-1] + data.shape[k.value:]:
        raise ShapeError(f"node {node.describe()}: indices {[str(d) for d in idx.shape]} and updates "
                         f"{[str(d) for d in upd.shape]} do not fit data {[str(d) for d in data.shape]}")
    k = k.value
    reduction = _scatter_reduction(ctx, node)

    def emit(e):
        _copy_data(e, node, data)
        e.check(f"ff::scatter_nd({e.dim(numel(idx.shape[:-1]))}, {k}, {e.array(data.shape[:k])}, "
                f"{e.dim(numel(data.shape[k:]))}, {e.ptr(node.inputs[1])}, {e.ptr(node.inputs[2])}, "
                f"{reduction}, {e.ptr(node.outputs[0])})")
    return Lowered([Info(data.dtype, data.shape)], emit, status="an index is out of range")


@rule(Op.GatherND)
def gather_nd(ctx: Ctx, node: Node) -> Lowered:
    data, idx = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    b = node.attrs.batch_dims
    if idx.dtype not in (DType.INT64, DType.INT32):
        raise ctx.unsupported(node, f"GatherND with {idx.dtype.short} indices")
    k = idx.shape[-1] if idx.rank else None
    if k is None or not k.is_const or b + k.value > data.rank or idx.shape[:b] != data.shape[:b]:
        raise ShapeError(f"node {node.describe()}: indices {[str(d) for d in idx.shape]} do not fit data "
                         f"{[str(d) for d in data.shape]} with batch_dims={b}")
    k = k.value
    shape = idx.shape[:-1] + data.shape[b + k:]

    def emit(e):
        e.check(f"ff::gather_nd({e.dim(numel(data.shape[:b]))}, {e.dim(numel(idx.shape[b:-1]))}, {k}, "
                f"{e.array(data.shape[b:b + k])}, {e.dim(numel(data.shape[b + k:]))}, {e.ptr(node.inputs[0])}, "
                f"{e.ptr(node.inputs[1])}, {e.ptr(node.outputs[0])})")
    return Lowered([Info(data.dtype, shape)], emit, status="an index is out of range")


@rule(Op.Expand)
def expand(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    target = ctx.static(node, 1, "shape")
    shape = ctx.broadcast(node, [x.shape, tuple(target)])
    elems = fold_elems([x], shape, lambda a: a) if x.elems is not None else None

    def emit(e):
        emit_strided_copy(e, x.dtype, e.ptr(node.inputs[0]), shape, broadcast_strides(x.shape, shape),
                          e.ptr(node.outputs[0]))
    return Lowered([Info(x.dtype, shape, elems)], emit, static=frozenset({1}))


@rule(Op.Tile)
def tile(ctx: Ctx, node: Node) -> Lowered:
    """A strided copy: out viewed as [r0, d0, r1, d1, ...] reads x with strides [0, s0, 0, s1, ...]."""
    x = ctx.info(node.inputs[0])
    reps = ctx.static_ints(node, 1, "repeats")
    if len(reps) != x.rank or any(r < 0 for r in reps):
        raise ShapeError(f"node {node.describe()}: repeats {reps} do not fit rank {x.rank}")
    shape = tuple(d * r for d, r in zip(x.shape, reps))
    elems = None
    if x.elems is not None and all(d.is_const for d in shape) and numel(shape).value <= MAX_ELEMS:
        arr = np.array(x.elems, dtype=object).reshape([d.value for d in x.shape])
        elems = tuple(np.tile(arr, reps).reshape(-1))
    pairs = [(Expr.const(r), d) for r, d in zip(reps, x.shape)]
    strides = [(ZERO, st) for st in contiguous_strides(x.shape)]

    def emit(e):
        emit_strided_copy(e, x.dtype, e.ptr(node.inputs[0]), tuple(d for p in pairs for d in p),
                          [st for p in strides for st in p], e.ptr(node.outputs[0]))
    return Lowered([Info(x.dtype, shape, elems)], emit, static=frozenset({1}))


def _static_dim(node: Node, d: Expr, what: str) -> int:
    if not d.is_const:
        raise ShapeError(f"node {node.describe()}: its {what} must be static, got {d}")
    return d.value


@rule(Op.DepthToSpace, Op.SpaceToDepth)
def depth_space(ctx: Ctx, node: Node) -> Lowered:
    """A reshape to rank 6, a transpose and a reshape back (ir/reference/nn.py): one strided copy."""
    x = ctx.info(node.inputs[0])
    if x.rank != 4:
        raise ShapeError(f"node {node.describe()}: {node.op.value} takes rank 4, got {x.rank}")
    b = node.attrs.blocksize
    n, c, h, w = x.shape
    if node.op is Op.DepthToSpace:
        channels = _static_dim(node, c, "channel count")
        if channels % (b * b):
            raise ShapeError(f"node {node.describe()}: {channels} channels do not split into {b}x{b} blocks")
        cb = Expr.const(channels // (b * b))
        if node.attrs.mode == "DCR":
            six, perm = (n, Expr.const(b), Expr.const(b), cb, h, w), (0, 3, 4, 1, 5, 2)
        elif node.attrs.mode == "CRD":
            six, perm = (n, cb, Expr.const(b), Expr.const(b), h, w), (0, 1, 4, 2, 5, 3)
        else:
            raise ctx.unsupported(node, f"DepthToSpace mode {node.attrs.mode!r}")
        shape = (n, cb, h * b, w * b)
    else:
        hb, wb = (_static_dim(node, d, "spatial size") for d in (h, w))
        if hb % b or wb % b:
            raise ShapeError(f"node {node.describe()}: spatial {hb}x{wb} does not split into {b}x{b} blocks")
        six = (n, c, Expr.const(hb // b), Expr.const(b), Expr.const(wb // b), Expr.const(b))
        perm = (0, 3, 5, 1, 2, 4)
        shape = (n, c * (b * b), Expr.const(hb // b), Expr.const(wb // b))
    strides = contiguous_strides(six)

    def emit(e):
        emit_strided_copy(e, x.dtype, e.ptr(node.inputs[0]), tuple(six[p] for p in perm),
                          [strides[p] for p in perm], e.ptr(node.outputs[0]))
    return Lowered([Info(x.dtype, shape)], emit)


@rule(Op.OneHot)
def one_hot(ctx: Ctx, node: Node) -> Lowered:
    idx, values = ctx.info(node.inputs[0]), ctx.info(node.inputs[2])
    depth_in = node.input(1)
    if depth_in is None or depth_in.const is None:
        raise ShapeError(f"node {node.describe()}: its depth must be a constant")
    # ONNX allows any numeric type for depth; the reference truncates it to an int
    depth = [int(d) for d in np.asarray(depth_in.const.numpy()).reshape(-1)]
    if len(depth) != 1 or depth[0] < 1:
        raise ShapeError(f"node {node.describe()}: depth must be one positive value, got {depth}")
    if values.numel != Expr.const(2):
        raise ShapeError(f"node {node.describe()}: values must hold [off, on], got shape "
                         f"{[str(d) for d in values.shape]}")
    axis = axis_index(node, node.attrs.axis, idx.rank + 1)
    d = Expr.const(depth[0])
    shape = idx.shape[:axis] + (d,) + idx.shape[axis:]

    def emit(e):
        e.line(f"ff::one_hot({e.dim(numel(idx.shape[:axis]))}, {e.dim(d)}, {e.dim(numel(idx.shape[axis:]))}, "
               f"{e.ptr(node.inputs[0])}, {e.ptr(node.inputs[2])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(values.dtype, shape)], emit, static=frozenset({1}))


@rule(Op.Pad)
def pad(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    pads = ctx.static_ints(node, 1, "pads")
    axes = ([axis_index(node, a, x.rank) for a in ctx.static_ints(node, 3, "axes")]
            if node.input(3) is not None else list(range(x.rank)))
    if len(pads) != 2 * len(axes):
        raise ShapeError(f"node {node.describe()}: {len(pads)} pads for {len(axes)} axes")
    modes = {"constant": "ff::kPadConstant", "reflect": "ff::kPadReflect", "edge": "ff::kPadEdge",
             "wrap": "ff::kPadWrap"}
    if node.attrs.mode not in modes:
        raise ctx.unsupported(node, f"Pad mode {node.attrs.mode!r}")
    value = 0
    if node.input(2) is not None:
        cv = node.input(2)
        if cv.const is None:
            raise ShapeError(f"node {node.describe()}: the pad value must be a constant")
        value = np.asarray(cv.const.numpy()).reshape(-1)[0].item()
    begin, end = [0] * x.rank, [0] * x.rank
    for j, a in enumerate(axes):
        begin[a], end[a] = pads[j], pads[j + len(axes)]
    strides = contiguous_strides(x.shape)
    # negative pads crop first (the reference pads the cropped tensor)
    crop_offset = sum((Expr.const(max(-b, 0)) * s for b, s in zip(begin, strides)), ZERO)
    in_dims = tuple(d - max(-b, 0) - max(-n, 0) for d, b, n in zip(x.shape, begin, end))
    shape = tuple(d + max(b, 0) + max(n, 0) for d, b, n in zip(in_dims, begin, end))
    out = node.outputs[0]

    def emit(e):
        e.line(f"ff::pad({x.rank}, {e.array(shape)}, {e.ptr(node.inputs[0])} + {e.dim(crop_offset)}, "
               f"{e.array(in_dims)}, {e.array(strides)}, {e.array([max(b, 0) for b in begin])}, "
               f"{modes[node.attrs.mode]}, {c_scalar(value, x.dtype)}, {e.ptr(out)});")
    return Lowered([Info(x.dtype, shape)], emit, static=frozenset({1, 2, 3}))


@rule(Op.Shape)
def shape_(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    dims = x.shape[slice(node.attrs.start, node.attrs.end)]
    return Lowered([Info(DType.INT64, (Expr.const(len(dims)),), tuple(dims))], None,
                   static=frozenset({0}))


@rule(Op.Size)
def size(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    return Lowered([Info(DType.INT64, (), (x.numel,))], None, static=frozenset({0}))


@rule(Op.Range)
def range_(ctx: Ctx, node: Node) -> Lowered:
    start, limit, delta = (ctx.static(node, i, name)[0] for i, name in enumerate(("start", "limit", "delta")))
    dtype = ctx.info(node.inputs[0]).dtype
    if dtype.is_float:
        raise ctx.unsupported(node, "Range of floats (only integer ranges are supported)")
    if not delta.is_const or delta.value == 0:
        raise ShapeError(f"node {node.describe()}: Range delta must be a non-zero constant, got {delta}")
    n = ctx.bounds.max(ctx.bounds.ceildiv(limit - start, delta.value), 0)
    elems = None
    if n.is_const and n.value <= MAX_ELEMS:
        elems = tuple(start + delta.value * i for i in range(n.value))
    t = ctype(dtype)

    def emit(e):
        e.line(f"ff::range<{t}>({e.dim(n)}, {t}({e.dim(start)}), {t}({e.dim(delta)}), {e.ptr(node.outputs[0])});")
    return Lowered([Info(dtype, (n,), elems)], emit, static=frozenset({0, 1, 2}))


@rule(Op.ConstantOfShape)
def constant_of_shape(ctx: Ctx, node: Node) -> Lowered:
    shape = tuple(ctx.static(node, 0, "shape"))
    if node.attrs.value is None:
        dtype, fill = DType.FLOAT, 0.0
    else:
        dtype = node.attrs.value.dtype
        fill = np.asarray(node.attrs.value.numpy()).reshape(-1)[0].item()
    count = numel(shape)
    elems = None
    if not dtype.is_float and count.is_const and count.value <= MAX_ELEMS:
        elems = (Expr.const(int(fill)),) * count.value

    def emit(e):
        e.line(f"ff::fill({e.dim(count)}, {c_scalar(fill, dtype)}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(dtype, shape, elems)], emit, static=frozenset({0}))
