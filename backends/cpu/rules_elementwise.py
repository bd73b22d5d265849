"""Elementwise ops: unary math, broadcasting binary and variadic ops and comparisons, Where,
Trilu, Clip, Cast.

Each also evaluates at compile time on small integer tensors with known elements
(the shape arithmetic exporters emit), so ``Concat(Shape(x)[0], -1)`` reaches
Reshape as ``[batch, -1]`` without running.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import Op
from .errors import ShapeError
from .lowering import MAX_ELEMS, Ctx, Info, Lowered, broadcast_strides, coalesce, no_code, rule
from .renderer import BINARY, INTEGER_UNARY, UNARY, c_float, ctype
from .symexpr import Bounds, Expr, numel


def lambda_src(params: Sequence[tuple[str, str]], out_type: str, body: str) -> str:
    args = ", ".join(f"{t} {n}" for n, t in params)
    return f"[]({args}) -> {out_type} {{ return {body}; }}"


def emit_broadcast(e, out: str, out_shape: tuple[Expr, ...], operands: Sequence[tuple[str, tuple[Expr, ...]]],
                   fn: str) -> None:
    """out = fn(operands...) elementwise, each operand read as broadcast to ``out_shape``."""
    strides = [broadcast_strides(shape, out_shape) for _, shape in operands]
    dims, strides = coalesce(out_shape, strides)
    if len(operands) == 1 and len(dims) == 1 and strides[0][0] == 1:
        e.line(f"ff::map({e.dim(dims[0])}, {operands[0][0]}, {out}, {fn});")
        return
    d = e.array(dims)
    args = []
    for (ptr, _), st in zip(operands, strides):
        args += [ptr, e.array(st)]
    kernel = {2: "ff::binary", 3: "ff::ternary"}[len(operands)]
    e.line(f"{kernel}({len(dims)}, {d}, {', '.join(args)}, {out}, {fn});")


def template(src: str, t: str, **attrs) -> str:
    # T( marks a cast to the element type; attribute values are float literals
    return src.replace("T(", f"{t}(").format(**{k: c_float(v) for k, v in attrs.items()})


# ---- compile-time evaluation on known elements ----------------------------------------
def _static_shape(info: Info) -> tuple[int, ...] | None:
    if info.elems is None or not all(d.is_const for d in info.shape):
        return None
    return tuple(d.value for d in info.shape)


def fold_elems(ins: Sequence[Info | None], out_shape: tuple[Expr, ...],
               fn: Callable[..., Expr | None]) -> tuple[Expr, ...] | None:
    """fn applied elementwise to inputs with known elements (broadcast), or None."""
    arrays = []
    for info in ins:
        shape = None if info is None else _static_shape(info)
        if shape is None:
            return None
        arr = np.empty(len(info.elems), dtype=object)
        arr[:] = list(info.elems)
        arrays.append(arr.reshape(shape))
    if not all(d.is_const for d in out_shape):
        return None
    if int(np.prod([d.value for d in out_shape], dtype=np.int64)) > MAX_ELEMS:
        return None
    out = []
    for items in zip(*(a.reshape(-1) for a in np.broadcast_arrays(*arrays))):
        r = fn(*items)
        if r is None:
            return None
        out.append(Expr.of(r))
    return tuple(out)


def _truth(b: Bounds, a: Expr, op: Op) -> Expr | None:
    sign = b.sign(a)
    if sign is None:
        return None
    return Expr.const(int({Op.Equal: sign == 0, Op.Less: sign < 0, Op.LessOrEqual: sign <= 0,
                           Op.Greater: sign > 0, Op.GreaterOrEqual: sign >= 0}[op]))


def _fold_binary(b: Bounds, op: Op, dtype: DType) -> Callable[[Expr, Expr], Expr | None] | None:
    if dtype.is_float:
        return None
    if op in (Op.Add, Op.Sum):
        return lambda x, y: x + y
    if op is Op.Sub:
        return lambda x, y: x - y
    if op is Op.Mul:
        return lambda x, y: x * y
    if op is Op.Div:
        def div(x, y):
            # C truncation equals floor division when both sides are non-negative
            if y.is_const and y.value > 0 and b.ge(x, 0):
                return b.floordiv(x, y)
            if x.is_const and y.is_const and y.value != 0:
                return Expr.const(int(x.value / y.value))
            return None
        return div
    if op is Op.Max:
        return b.max
    if op is Op.Min:
        return b.min
    if op in (Op.Equal, Op.Less, Op.LessOrEqual, Op.Greater, Op.GreaterOrEqual):
        return lambda x, y: _truth(b, x - y, op)
    if op in (Op.And, Op.Or):
        def logic(x, y):
            if not (x.is_const and y.is_const):
                return None
            return Expr.const(int(bool(x.value) and bool(y.value) if op is Op.And
                                  else bool(x.value) or bool(y.value)))
        return logic
    return None


# ---- rules -------------------------------------------------------------------------------
@rule(*UNARY)
def unary(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if not x.dtype.is_float and node.op not in INTEGER_UNARY:
        raise ctx.unsupported(node, f"{node.op.value} on {x.dtype.short}")
    t = ctype(x.dtype)
    attrs = {k: v for k, v in node.attrs.items() if isinstance(v, float)}
    body = template(UNARY[node.op], t, **attrs)
    elems = None
    if x.elems is not None and node.op in (Op.Neg, Op.Identity):
        elems = fold_elems([x], x.shape, (lambda a: -a) if node.op is Op.Neg else (lambda a: a))
    out = node.outputs[0]

    def emit(e):
        e.line(f"ff::map({e.dim(x.numel)}, {e.ptr(node.inputs[0])}, {e.ptr(out)}, "
               f"{lambda_src([('x', t)], t, body)});")
    if node.op is Op.Identity:
        return Lowered([Info(x.dtype, x.shape, elems)], no_code, view=True)
    return Lowered([Info(x.dtype, x.shape, elems)], emit)


@rule(Op.Gelu)
def gelu(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if not x.dtype.is_float:
        raise ctx.unsupported(node, f"Gelu on {x.dtype.short}")
    if node.attrs.approximate not in ("none", "tanh"):
        raise ctx.unsupported(node, f"Gelu approximate={node.attrs.approximate!r}")
    t = ctype(x.dtype)
    # float32 takes the vectorizable erf / exp of vmath.h; double keeps libm's
    fast = t == "float"
    if node.attrs.approximate == "tanh":
        fn = "ff::gelu_tanh_fast" if fast else "ff::gelu_tanh"
    else:
        fn = "ff::gelu_fast" if fast else "ff::gelu"

    def emit(e):
        e.line(f"ff::map({e.dim(x.numel)}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])}, "
               f"{lambda_src([('x', t)], t, fn + '(x)')});")
    return Lowered([Info(x.dtype, x.shape)], emit)


@rule(Op.Not, Op.IsNaN, Op.IsInf)
def predicate(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    t = ctype(x.dtype)
    if node.op is Op.Not:
        body = "!x"
    elif not x.dtype.is_float:
        body = "false"
    elif node.op is Op.IsNaN:
        body = "std::isnan(x)"
    else:
        pos, neg = node.attrs.detect_positive, node.attrs.detect_negative
        body = " || ".join(c for c, on in (("x == INFINITY", pos), ("x == -INFINITY", neg)) if on) or "false"
    elems = None
    if node.op is Op.Not:
        elems = fold_elems([x], x.shape, lambda a: Expr.const(int(not a.value)) if a.is_const else None)

    def emit(e):
        e.line(f"ff::map({e.dim(x.numel)}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])}, "
               f"{lambda_src([('x', t)], 'bool', body)});")
    return Lowered([Info(DType.BOOL, x.shape, elems)], emit)


@rule(*BINARY, Op.Mod)
def binary(ctx: Ctx, node: Node) -> Lowered:
    present = [v for v in node.inputs if v is not None]
    if len(present) == 1 and node.op in (Op.Sum, Op.Max, Op.Min, Op.Mean):
        x = ctx.info(present[0])
        return Lowered([Info(x.dtype, x.shape, x.elems)], no_code, view=True)
    if len(present) > 2 and node.op in (Op.Sum, Op.Max, Op.Min, Op.Mean):
        return _variadic(ctx, node, present)
    if len(present) != 2:
        raise ctx.unsupported(node, f"{node.op.value} of {len(present)} inputs")
    a, b = ctx.info(node.inputs[0]), ctx.info(node.inputs[1])
    shape = ctx.broadcast(node, [a.shape, b.shape])
    comparison = node.op in (Op.Equal, Op.Less, Op.LessOrEqual, Op.Greater, Op.GreaterOrEqual)
    out_dtype = DType.BOOL if comparison or node.op in (Op.And, Op.Or, Op.Xor) else a.dtype
    ta, tb, to = ctype(a.dtype), ctype(b.dtype), ctype(out_dtype)
    if node.op is Op.Mod:
        fn = "ff::cmod(a, b)" if node.attrs.fmod else "ff::pymod(a, b)"
    else:
        fn = template(BINARY[node.op], ta)
    folder = _fold_binary(ctx.bounds, node.op, a.dtype)
    elems = fold_elems([a, b], shape, folder) if folder is not None else None

    def emit(e):
        emit_broadcast(e, e.ptr(node.outputs[0]), shape,
                       [(e.ptr(node.inputs[0]), a.shape), (e.ptr(node.inputs[1]), b.shape)],
                       lambda_src([("a", ta), ("b", tb)], to, fn))
    return Lowered([Info(out_dtype, shape, elems)], emit)


def _variadic(ctx: Ctx, node: Node, present) -> Lowered:
    """Sum / Max / Min / Mean of three or more inputs: folded left to right into the output
    (each step reads the output where it writes it), Mean divided by the count at the end."""
    infos = [ctx.info(v) for v in present]
    shape = ctx.broadcast(node, [i.shape for i in infos])
    dtype = infos[0].dtype
    t = ctype(dtype)
    step = lambda_src([("a", t), ("b", t)], t,
                      template(BINARY[Op.Add if node.op in (Op.Sum, Op.Mean) else node.op], t))

    def emit(e):
        out = e.ptr(node.outputs[0])
        emit_broadcast(e, out, shape, [(e.ptr(present[0]), infos[0].shape),
                                       (e.ptr(present[1]), infos[1].shape)], step)
        for v, info in zip(present[2:], infos[2:]):
            emit_broadcast(e, out, shape, [(out, shape), (e.ptr(v), info.shape)], step)
        if node.op is Op.Mean:
            e.line(f"ff::map({e.dim(numel(shape))}, {out}, {out}, "
                   f"{lambda_src([('x', t)], t, f'x / {t}({len(present)})')});")
    return Lowered([Info(dtype, shape)], emit)


@rule(Op.Where)
def where(ctx: Ctx, node: Node) -> Lowered:
    c, x, y = (ctx.info(v) for v in node.inputs)
    shape = ctx.broadcast(node, [c.shape, x.shape, y.shape])
    t = ctype(x.dtype)

    def pick(cond, a, b):
        return (a if cond.value else b) if cond.is_const else None
    elems = fold_elems([c, x, y], shape, pick)

    def emit(e):
        emit_broadcast(e, e.ptr(node.outputs[0]), shape,
                       [(e.ptr(v), ctx.info(v).shape) for v in node.inputs],
                       lambda_src([("c", "bool"), ("a", t), ("b", t)], t, "c ? a : b"))
    return Lowered([Info(x.dtype, shape, elems)], emit)


@rule(Op.Trilu)
def trilu(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if x.rank < 2:
        raise ShapeError(f"node {node.describe()}: Trilu needs rank >= 2, got {x.rank}")
    k = 0
    if node.input(1) is not None:
        values = ctx.static_ints(node, 1, "diagonal k")
        if len(values) != 1:
            raise ShapeError(f"node {node.describe()}: its diagonal k must be one value, got {values}")
        k = values[0]
    upper = "true" if node.attrs.upper else "false"

    def emit(e):
        e.line(f"ff::trilu({upper}, {k}LL, {e.dim(numel(x.shape[:-2]))}, {e.dim(x.shape[-2])}, "
               f"{e.dim(x.shape[-1])}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(x.dtype, x.shape)], emit, static=frozenset({1}))


@rule(Op.Clip)
def clip(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    t = ctype(x.dtype)
    lo, hi = node.input(1), node.input(2)
    for bound in (lo, hi):
        if bound is not None and ctx.info(bound).numel != 1:
            raise ctx.unsupported(node, "Clip bounds that are not scalars")

    def emit(e):
        body = "x"
        if lo is not None:
            body = f"ff::maximum({body}, {e.ptr(lo)}[0])"
        if hi is not None:
            body = f"ff::minimum({body}, {e.ptr(hi)}[0])"
        # min before max is what the reference does: min > max gives max everywhere
        e.line(f"ff::map({e.dim(x.numel)}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])}, "
               f"[=]({t} x) -> {t} {{ return {body}; }});")
    return Lowered([Info(x.dtype, x.shape)], emit)


@rule(Op.Cast, Op.CastLike)
def cast(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    to = DType.from_onnx(node.attrs.to) if node.op is Op.Cast else ctx.info(node.inputs[1]).dtype
    ti, tt = ctype(x.dtype), ctype(to)
    elems = None
    if x.elems is not None and not to.is_float and not x.dtype.is_float:
        def convert(a):
            if to is DType.BOOL:
                s = ctx.bounds.sign(a)
                return None if s is None else Expr.const(int(s != 0))
            return a
        elems = fold_elems([x], x.shape, convert)
    if x.dtype == to:
        return Lowered([Info(to, x.shape, x.elems)], no_code, view=True,
                       static=frozenset({1}) if node.op is Op.CastLike else frozenset())

    def emit(e):
        e.line(f"ff::map({e.dim(x.numel)}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])}, "
               f"{lambda_src([('x', ti)], tt, f'static_cast<{tt}>(x)')});")
    static = frozenset({1}) if node.op is Op.CastLike else frozenset()
    return Lowered([Info(to, x.shape, elems)], emit, static=static)
