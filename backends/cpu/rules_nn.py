"""Neural-network ops: Linear, MatMul, Gemm, Attention, Conv, pooling, norms, RotaryEmbedding.

GEMMs go to OpenBLAS (ff::gemm); Linear's bias, activation and residual are
applied by one epilogue pass right after its GEMM. Conv and pool geometry
(auto_pad, ceil_mode) comes from the reference's own helpers, so the two
cannot disagree on an output size.
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import Op
from ...ir.reference.nn import _geometry, _pads
from .errors import ShapeError
from .heads import merge_into
from .lowering import ONE, Ctx, Info, Lowered, RowForm, axis_index, broadcast_strides, coalesce, rule
from .packing import ROW_SPLIT_BYTES, packed_bytes
from .renderer import c_float
from .rules_elementwise import emit_broadcast, lambda_src
from .symexpr import Expr, numel

_ACT = {"none": "ff::kNone", "relu": "ff::kRelu", "gelu": "ff::kGelu", "gelu_tanh": "ff::kGeluTanh",
        "silu": "ff::kSilu", "sigmoid": "ff::kSigmoid", "tanh": "ff::kTanh"}
_ADD = lambda_src([("a", "float"), ("b", "float")], "float", "a + b")


def _require_float(ctx: Ctx, node: Node, *infos: Info | None) -> None:
    for info in infos:
        if info is not None and info.dtype is not DType.FLOAT:
            raise ctx.unsupported(node, f"{node.op.value} on {info.dtype.short} (float32 only)")


def _trailing(ctx: Ctx, node: Node, param: Info, dims: tuple[Expr, ...], what: str) -> None:
    """A per-feature parameter must hold exactly the normalized trailing dims."""
    shape = list(param.shape)
    while shape and shape[0] == ONE and len(shape) > len(dims):
        shape.pop(0)
    full = [ONE] * (len(dims) - len(shape)) + shape
    if len(full) != len(dims) or any(a != b for a, b in zip(full, dims)):
        raise ctx.unsupported(node, f"{what} of shape {[str(d) for d in param.shape]} over dims "
                                    f"{[str(d) for d in dims]} (must match the normalized dims)")


def _packable(ctx: Ctx, node: Node) -> bool:
    """Pack W when the build allows it and every reader of W is a Linear taking it as W."""
    w = node.inputs[1]
    if not ctx.pack_weights or w.const is None or w.const.dtype is not DType.FLOAT:
        return False
    return all(user.op is Op.Linear and slot == 1 for user, slot in w.uses)


@rule(Op.Linear)
def linear(ctx: Ctx, node: Node) -> Lowered:
    x, w = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    bias, res = ctx.input(node, 2), ctx.input(node, 3)
    _require_float(ctx, node, x, w, bias, res)
    if w.rank != 2 or x.rank < 1 or x.shape[-1] != w.shape[0]:
        raise ShapeError(f"node {node.describe()}: x {[str(d) for d in x.shape]} @ W "
                         f"{[str(d) for d in w.shape]} (W must be [K, N])")
    k, n = w.shape
    shape = x.shape[:-1] + (n,)
    m = numel(x.shape[:-1])
    if bias is not None:
        _trailing(ctx, node, bias, (n,), "bias")
    fused_res = res is not None and res.shape == shape
    if res is not None and not fused_res:
        ctx.broadcast(node, [shape, res.shape])
    act = _ACT[node.attrs.activation]
    if _packable(ctx, node):
        ctx.packed.add(id(node.inputs[1]))

        def operands(e) -> str:
            r = e.ptr(node.inputs[3]) if fused_res else "nullptr"
            return (f"{e.dim(n)}, {e.dim(k)}, {e.ptr(node.inputs[0])}, {e.ptr(node.inputs[1])}, "
                    f"{e.ptr(node.outputs[0])}, {e.ptr(node.input(2))}, {act}, {r}")

        def emit_packed(e):
            y = e.ptr(node.outputs[0])
            e.line(f"ff::packed_linear({e.dim(m)}, {operands(e)});")
            if res is not None and not fused_res:
                emit_broadcast(e, y, shape, [(y, shape), (e.ptr(node.inputs[3]), res.shape)], _ADD)

        rows = None
        # a weight each thread may read whole (else the threads split its panels, not rows)
        if (res is None or fused_res) and packed_bytes(k.value, n.value) <= ROW_SPLIT_BYTES:
            rows = RowForm(m, lambda e, lo, hi: e.line(f"ff::packed_linear_rows({lo}, {hi}, {operands(e)});"),
                           frozenset({0, 3}), m * n * k)
        return Lowered([Info(DType.FLOAT, shape)], emit_packed, rows=rows)

    def emit(e):
        y = e.ptr(node.outputs[0])
        e.line(f"ff::gemm(false, false, {e.dim(m)}, {e.dim(n)}, {e.dim(k)}, 1.f, {e.ptr(node.inputs[0])}, "
               f"{e.dim(k)}, {e.ptr(node.inputs[1])}, {e.dim(n)}, 0.f, {y}, {e.dim(n)});")
        r = e.ptr(node.inputs[3]) if fused_res else "nullptr"
        e.line(f"ff::linear_epilogue({e.dim(m)}, {e.dim(n)}, {y}, {e.ptr(node.input(2))}, {act}, {r});")
        if res is not None and not fused_res:
            emit_broadcast(e, y, shape, [(y, shape), (e.ptr(node.inputs[3]), res.shape)], _ADD)
    return Lowered([Info(DType.FLOAT, shape)], emit)


@rule(Op.MatMul)
def matmul(ctx: Ctx, node: Node) -> Lowered:
    a, b = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    _require_float(ctx, node, a, b)
    if a.rank == 0 or b.rank == 0:
        raise ShapeError(f"node {node.describe()}: MatMul operands must have rank >= 1")
    ashape = (ONE,) + a.shape if a.rank == 1 else a.shape
    bshape = b.shape + (ONE,) if b.rank == 1 else b.shape
    m, k = ashape[-2:]
    k2, n = bshape[-2:]
    if k != k2:
        raise ShapeError(f"node {node.describe()}: inner dims {k} and {k2} differ")
    batch = ctx.broadcast(node, [ashape[:-2], bshape[:-2]])
    shape = batch + (m, n)
    if a.rank == 1:
        shape = shape[:-2] + shape[-1:]
    if b.rank == 1:
        shape = shape[:-1]
    b_batch = numel(bshape[:-2])

    def emit(e):
        pa, pb, pc = e.ptr(node.inputs[0]), e.ptr(node.inputs[1]), e.ptr(node.outputs[0])
        if b_batch == ONE and numel(ashape[:-2]) == numel(batch):
            # one weight matrix: fold every batch row of A into a single GEMM
            rows = numel(ashape[:-1])
            e.line(f"ff::gemm(false, false, {e.dim(rows)}, {e.dim(n)}, {e.dim(k)}, 1.f, {pa}, {e.dim(k)}, "
                   f"{pb}, {e.dim(n)}, 0.f, {pc}, {e.dim(n)});")
            return
        sa = [s * m * k for s in broadcast_strides(ashape[:-2], batch)]
        sb = [s * k * n for s in broadcast_strides(bshape[:-2], batch)]
        dims, (sa, sb) = coalesce(batch, [sa, sb])
        e.line(f"ff::batched_gemm({len(dims)}, {e.array(dims)}, {e.array(sa)}, {e.array(sb)}, {e.dim(m)}, "
               f"{e.dim(n)}, {e.dim(k)}, {pa}, {pb}, {pc});")
    return Lowered([Info(DType.FLOAT, shape)], emit)


@rule(Op.Gemm)
def gemm(ctx: Ctx, node: Node) -> Lowered:
    a, b, c = ctx.info(node.inputs[0]), ctx.info(node.inputs[1]), ctx.input(node, 2)
    _require_float(ctx, node, a, b, c)
    if a.rank != 2 or b.rank != 2:
        raise ShapeError(f"node {node.describe()}: Gemm takes 2-D A and B")
    ta, tb = bool(node.attrs.transA), bool(node.attrs.transB)
    m, k = (a.shape[1], a.shape[0]) if ta else a.shape
    n = b.shape[0] if tb else b.shape[1]
    shape = (m, n)
    if c is not None:
        ctx.broadcast(node, [shape, c.shape])
    alpha, beta = c_float(node.attrs.alpha), c_float(node.attrs.beta)

    def emit(e):
        y = e.ptr(node.outputs[0])
        if c is not None:
            dims, (st,) = coalesce(shape, [broadcast_strides(c.shape, shape)])
            e.line(f"ff::strided_copy({len(dims)}, {e.array(dims)}, {e.ptr(node.inputs[2])}, {e.array(st)}, {y});")
        e.line(f"ff::gemm({str(ta).lower()}, {str(tb).lower()}, {e.dim(m)}, {e.dim(n)}, {e.dim(k)}, "
               f"float({alpha}), {e.ptr(node.inputs[0])}, {e.dim(a.shape[1])}, {e.ptr(node.inputs[1])}, "
               f"{e.dim(b.shape[1])}, {'float(' + beta + ')' if c is not None else '0.f'}, {y}, {e.dim(n)});")
    return Lowered([Info(DType.FLOAT, shape)], emit)


@rule(Op.Attention)
def attention(ctx: Ctx, node: Node) -> Lowered:
    q, k, v = (ctx.info(x) for x in node.inputs[:3])
    mask = ctx.input(node, 3)
    _require_float(ctx, node, q, k, v)
    if q.rank != 4 or k.rank != 4 or v.rank != 4:
        raise ShapeError(f"node {node.describe()}: q, k, v must be [batch, heads, seq, head_dim]")
    b, h, sq, d = q.shape
    kvh, sk, dv = k.shape[1], k.shape[2], v.shape[3]
    if k.shape[3] != d or v.shape[1] != kvh or v.shape[2] != sk or k.shape[0] != b or v.shape[0] != b:
        raise ShapeError(f"node {node.describe()}: q, k and v shapes do not fit together")
    if not (h.is_const and kvh.is_const and h.value % kvh.value == 0):
        raise ctx.unsupported(node, f"{h} query heads over {kvh} kv heads")
    scale = node.attrs.scale
    if scale is None:
        if not d.is_const:
            raise ShapeError(f"node {node.describe()}: head_dim {d} must be static for the default scale")
        scale = 1 / math.sqrt(d.value)
    scale = float(np.float32(scale))
    kind, mtype = "ff::kNoMask", "float"
    scores = (b, h, sq, sk)
    if mask is not None:
        if mask.dtype is DType.BOOL:
            kind, mtype = "ff::kBoolMask", "bool"
        elif mask.dtype is DType.FLOAT:
            kind = "ff::kAddMask"
        else:
            raise ctx.unsupported(node, f"an attention mask of {mask.dtype.short}")
        want = "bool" if mask.dtype is DType.BOOL else "additive"
        if node.attrs.mask_kind not in ("none", want):
            raise ShapeError(f"node {node.describe()}: mask_kind={node.attrs.mask_kind!r} but the mask is "
                             f"{mask.dtype.short}")
        if ctx.broadcast(node, [mask.shape, scores]) != scores or mask.rank > 4:
            raise ShapeError(f"node {node.describe()}: the mask does not broadcast to the scores")
    elif node.attrs.mask_kind != "none":
        raise ShapeError(f"node {node.describe()}: mask_kind={node.attrs.mask_kind!r} but no mask input")

    out_shape = (b, h, sq, dv)
    # (batch, head, seq) strides of each operand (the last dim is contiguous): a head split
    # or merge Transpose next to it may have become a view (heads.py)
    strides = [ctx.strided[id(x)][:3] if id(x) in ctx.strided else _head_strides(info.shape)
               for x, info in zip(node.inputs[:3], (q, k, v))]
    strides.append(merge_into(ctx, node, out_shape) or _head_strides(out_shape))

    def operands(e) -> str:
        mstrides = broadcast_strides(mask.shape, scores) if mask is not None else (Expr.const(0),) * 4
        ms = e.array(mstrides)
        mptr = f"static_cast<const {mtype}*>({e.ptr(node.input(3))})"
        qs, ks, vs, os_ = (e.array(st) for st in strides)
        return (f"{', '.join(e.dim(x) for x in (b, h, kvh, sq, sk, d, dv))}, "
                f"{e.ptr(node.inputs[0])}, {qs}, {e.ptr(node.inputs[1])}, {ks}, {e.ptr(node.inputs[2])}, {vs}, "
                f"{mptr}, {ms}, {kind}, {str(bool(node.attrs.causal)).lower()}, {c_float(scale)}f, "
                f"{e.ptr(node.outputs[0])}, {os_}")

    def emit(e):
        e.line(f"ff::attention({operands(e)});")

    rows = None
    # by query rows when the output is laid out [batch, seq, heads * dv] (heads merged in
    # place), so row b * sq + i of its buffer is query i of batch b; not causal, where the
    # last rows see the most keys and equal row ranges are unequal work
    if not node.attrs.causal and tuple(strides[3]) == (sq * h * dv, dv, h * dv):
        rows = RowForm(b * sq, lambda e, lo, hi: e.line(f"ff::attention_span({lo}, {hi}, {operands(e)});"),
                       frozenset(), b * h * sq * sk * (d + dv))
    return Lowered([Info(DType.FLOAT, out_shape)], emit, rows=rows)


def _head_strides(shape) -> tuple[Expr, Expr, Expr]:
    """Element strides of (batch, head, seq) of a contiguous [batch, head, seq, dim] tensor."""
    _, h, sq, d = shape
    return (h * sq * d, sq * d, d)


def _static_dims(ctx: Ctx, node: Node, dims, what: str) -> list[int]:
    if not all(d.is_const for d in dims):
        raise ShapeError(f"node {node.describe()}: the {what} dims must be static, got {[str(d) for d in dims]}")
    return [d.value for d in dims]


def _as_2d(values: list[int], fill: int) -> list[int]:
    return [fill] + values if len(values) == 1 else values


@rule(Op.Conv)
def conv(ctx: Ctx, node: Node) -> Lowered:
    x, w, bias = ctx.info(node.inputs[0]), ctx.info(node.inputs[1]), ctx.input(node, 2)
    _require_float(ctx, node, x, w, bias)
    if x.rank not in (3, 4) or w.rank != x.rank:
        raise ctx.unsupported(node, f"Conv over {x.rank - 2} spatial dims (1 or 2 are supported)")
    spatial = _static_dims(ctx, node, x.shape[2:], "spatial")
    channels, = _static_dims(ctx, node, x.shape[1:2], "channel")
    m, cg, *kernel = _static_dims(ctx, node, w.shape, "weight")
    groups = node.attrs.group
    if channels != cg * groups or m % groups:
        raise ShapeError(f"node {node.describe()}: {channels} channels do not fit weight "
                         f"{[m, cg, *kernel]} with group={groups}")
    strides, dil, _, begin, out = _geometry(node.attrs, spatial, kernel)
    g2 = [_as_2d(list(v), f) for v, f in ((spatial, 1), (kernel, 1), (strides, 1), (dil, 1), (begin, 0), (out, 1))]
    (h, wd), (kh, kw), (sh, sw), (dh, dw), (pt, pl), (oh, ow) = g2
    pointwise = kh * kw == 1 and sh == sw == 1 and pt == pl == 0 and (oh, ow) == (h, wd)
    # im2col's matrix, its columns (output positions) padded to whole 32-wide panels for the
    # packed GEMM of conv.h
    scratch = 0 if pointwise or cg == 1 else cg * kh * kw * -(-oh * ow // 32) * 32 * 4
    shape = (x.shape[0], Expr.const(m)) + tuple(Expr.const(o) for o in out)

    def emit(e):
        geom = ", ".join([e.dim(x.shape[0])] + [str(v) for v in (channels, h, wd, m, groups, kh, kw, sh, sw,
                                                                  dh, dw, pt, pl, oh, ow)])
        e.line(f"const ff::ConvGeom g{{{geom}}};")
        cols = e.scratch("float") if scratch else "nullptr"
        e.line(f"ff::conv2d(g, {e.ptr(node.inputs[0])}, {e.ptr(node.inputs[1])}, {e.ptr(node.input(2))}, "
               f"{e.ptr(node.outputs[0])}, {cols});")
    return Lowered([Info(DType.FLOAT, shape)], emit, scratch=Expr.const(scratch))


@rule(Op.MaxPool, Op.AveragePool)
def pool(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    _require_float(ctx, node, x)
    if len(node.outputs) > 1:
        raise ctx.unsupported(node, "MaxPool's Indices output")
    if x.rank not in (3, 4):
        raise ctx.unsupported(node, f"pooling over {x.rank - 2} spatial dims (1 or 2 are supported)")
    spatial = _static_dims(ctx, node, x.shape[2:], "spatial")
    kernel = list(node.attrs.kernel_shape)
    strides, dil, eff, begin, out = _geometry(node.attrs, spatial, kernel, node.attrs.ceil_mode)
    _, end = _pads(node.attrs, spatial, strides, eff)
    g2 = [_as_2d(list(v), f) for v, f in ((spatial, 1), (kernel, 1), (strides, 1), (dil, 1), (begin, 0),
                                          (end, 0), (out, 1))]
    (h, wd), (kh, kw), (sh, sw), (dh, dw), (pt, pl), (pb, pr), (oh, ow) = g2
    is_max = node.op is Op.MaxPool
    include = bool(getattr(node.attrs, "count_include_pad", 0))
    shape = x.shape[:2] + tuple(Expr.const(o) for o in out)

    def emit(e):
        planes = e.dim(numel(x.shape[:2]))
        geom = ", ".join([planes] + [str(v) for v in (h, wd, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow)])
        e.line(f"const ff::PoolGeom g{{{geom}}};")
        e.line(f"ff::pool2d({str(is_max).lower()}, {str(include).lower()}, g, {e.ptr(node.inputs[0])}, "
               f"{e.ptr(node.outputs[0])});")
    return Lowered([Info(DType.FLOAT, shape)], emit)


def _rows_cols(x: Info, axis: int) -> tuple[Expr, Expr]:
    return numel(x.shape[:axis]), numel(x.shape[axis:])


@rule(Op.LayerNormalization)
def layer_norm(ctx: Ctx, node: Node) -> Lowered:
    x, scale, bias = ctx.info(node.inputs[0]), ctx.info(node.inputs[1]), ctx.input(node, 2)
    _require_float(ctx, node, x, scale, bias)
    if node.attrs.stash_type != DType.FLOAT.value:
        raise ctx.unsupported(node, f"stash_type {node.attrs.stash_type}")
    axis = axis_index(node, node.attrs.axis, x.rank)
    for p, what in ((scale, "scale"), (bias, "bias")):
        if p is not None:
            _trailing(ctx, node, p, x.shape[axis:], what)
    rows, cols = _rows_cols(x, axis)
    stat = x.shape[:axis] + (ONE,) * (x.rank - axis)
    outs = [Info(DType.FLOAT, x.shape)] + [Info(DType.FLOAT, stat)] * (len(node.outputs) - 1)

    def operands(e) -> str:
        extra = [e.ptr(v) for v in node.outputs[1:]] + ["nullptr"] * (3 - len(node.outputs))
        return (f"{e.dim(cols)}, {e.ptr(node.inputs[0])}, {e.ptr(node.inputs[1])}, {e.ptr(node.input(2))}, "
                f"{c_float(np.float32(node.attrs.epsilon))}f, {e.ptr(node.outputs[0])}, {extra[0]}, {extra[1]}")

    return Lowered(outs, lambda e: e.line(f"ff::layer_norm({e.dim(rows)}, {operands(e)});"),
                   rows=_norm_rows(rows, cols, "layer_norm", operands))


def _norm_rows(rows: Expr, cols: Expr, kernel: str, operands) -> RowForm:
    return RowForm(rows, lambda e, lo, hi: e.line(f"ff::{kernel}_rows({lo}, {hi}, {operands(e)});"),
                   frozenset({0}), rows * cols)


@rule(Op.RMSNorm)
def rms_norm(ctx: Ctx, node: Node) -> Lowered:
    x, scale, bias = ctx.info(node.inputs[0]), ctx.input(node, 1), ctx.input(node, 2)
    _require_float(ctx, node, x, scale, bias)
    axis = axis_index(node, node.attrs.axis, x.rank)
    for p, what in ((scale, "scale"), (bias, "bias")):
        if p is not None:
            _trailing(ctx, node, p, x.shape[axis:], what)
    rows, cols = _rows_cols(x, axis)

    def operands(e) -> str:
        return (f"{e.dim(cols)}, {e.ptr(node.inputs[0])}, {e.ptr(node.input(1))}, {e.ptr(node.input(2))}, "
                f"{c_float(np.float32(node.attrs.epsilon))}f, {e.ptr(node.outputs[0])}")

    return Lowered([Info(DType.FLOAT, x.shape)], lambda e: e.line(f"ff::rms_norm({e.dim(rows)}, {operands(e)});"),
                   rows=_norm_rows(rows, cols, "rms_norm", operands))


@rule(Op.CRMSNorm)
def crms_norm(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    _require_float(ctx, node, x)
    rows, cols = _rows_cols(x, x.rank - 1)

    def operands(e) -> str:
        return (f"{e.dim(cols)}, {node.attrs.dim}, {e.ptr(node.inputs[0])}, "
                f"{c_float(np.float32(node.attrs.epsilon))}f, {e.ptr(node.outputs[0])}")

    return Lowered([Info(DType.FLOAT, x.shape)], lambda e: e.line(f"ff::crms_norm({e.dim(rows)}, {operands(e)});"),
                   rows=_norm_rows(rows, cols, "crms_norm", operands))


@rule(Op.SkipLayerNorm, Op.SkipRMSNorm)
def skip_norm(ctx: Ctx, node: Node) -> Lowered:
    x, skip, gamma = (ctx.info(v) for v in node.inputs[:3])
    beta = ctx.input(node, 3) if node.op is Op.SkipLayerNorm else None
    bias = ctx.input(node, 4) if node.op is Op.SkipLayerNorm else None
    _require_float(ctx, node, x, skip, gamma, beta, bias)
    if ctx.broadcast(node, [x.shape, skip.shape]) != x.shape:
        raise ShapeError(f"node {node.describe()}: skip does not broadcast to x")
    for p, what in ((gamma, "gamma"), (beta, "beta"), (bias, "bias")):
        if p is not None:
            _trailing(ctx, node, p, x.shape[-1:], what)
    rows, cols = _rows_cols(x, x.rank - 1)
    outs = [Info(DType.FLOAT, x.shape)] * len(node.outputs)
    eps = f"{c_float(np.float32(node.attrs.epsilon))}f"

    def emit(e):
        if len(node.outputs) < 2:
            raise ShapeError(f"node {node.describe()}: expected outputs (y, sum)")
        s = e.ptr(node.outputs[1])
        emit_broadcast(e, s, x.shape, [(e.ptr(node.inputs[0]), x.shape), (e.ptr(node.inputs[1]), skip.shape)], _ADD)
        if bias is not None:
            emit_broadcast(e, s, x.shape, [(s, x.shape), (e.ptr(node.inputs[4]), bias.shape)], _ADD)
        y = e.ptr(node.outputs[0])
        if node.op is Op.SkipLayerNorm:
            e.line(f"ff::layer_norm({e.dim(rows)}, {e.dim(cols)}, {s}, {e.ptr(node.inputs[2])}, "
                   f"{e.ptr(node.input(3))}, {eps}, {y}, nullptr, nullptr);")
        else:
            e.line(f"ff::rms_norm({e.dim(rows)}, {e.dim(cols)}, {s}, {e.ptr(node.inputs[2])}, nullptr, {eps}, {y});")
    return Lowered(outs, emit)


@rule(Op.RotaryEmbedding)
def rotary(ctx: Ctx, node: Node) -> Lowered:
    x, cos, sin = (ctx.info(v) for v in node.inputs)
    _require_float(ctx, node, x, cos, sin)
    if ctx.broadcast(node, [x.shape, cos.shape, sin.shape]) != x.shape:
        raise ShapeError(f"node {node.describe()}: cos / sin do not broadcast to x")
    d = x.shape[-1]
    if not d.is_const or d.value % 2:
        raise ShapeError(f"node {node.describe()}: head_dim {d} must be static and even")

    def emit(e):
        e.line(f"ff::rotary({x.rank}, {e.array(x.shape)}, {e.ptr(node.inputs[0])}, {e.ptr(node.inputs[1])}, "
               f"{e.array(broadcast_strides(cos.shape, x.shape))}, {e.ptr(node.inputs[2])}, "
               f"{e.array(broadcast_strides(sin.shape, x.shape))}, {str(bool(node.attrs.interleaved)).lower()}, "
               f"{e.ptr(node.outputs[0])});")
    return Lowered([Info(DType.FLOAT, x.shape)], emit)
