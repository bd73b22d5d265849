"""Reductions (Reduce*, global pooling), Softmax / LogSoftmax, the scans and selections
along one axis (CumSum, ArgMax / ArgMin, TopK) and Einsum.

The kernels see the input as [outer, n, inner] with the reduced axes in the
middle; axes that are not adjacent once size-1 dims are dropped are refused.
"""
from __future__ import annotations

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import REDUCTIONS, Op
from .errors import ShapeError
from .lowering import ONE, ZERO, Ctx, Info, Lowered, axis_index, no_code, rule
from .renderer import ctype
from .symexpr import Expr, contiguous_strides, numel

_KIND = {Op.ReduceSum: "ff::kSum", Op.ReduceMean: "ff::kMean", Op.ReduceMax: "ff::kMax",
         Op.ReduceMin: "ff::kMin", Op.ReduceProd: "ff::kProd", Op.ReduceL1: "ff::kL1",
         Op.ReduceL2: "ff::kL2", Op.ReduceSumSquare: "ff::kSumSquare",
         Op.ReduceLogSumExp: "ff::kLogSumExp", Op.ReduceLogSum: "ff::kLogSum"}


def _split(ctx: Ctx, node: Node, shape: tuple[Expr, ...], axes: set[int]) -> tuple[Expr, Expr, Expr]:
    """(outer, n, inner) of ``shape`` with ``axes`` reduced."""
    real = [i for i, d in enumerate(shape) if d != ONE]
    reduced = [i for i in real if i in axes]
    if not reduced:
        return numel(shape), ONE, ONE
    block = real[real.index(reduced[0]): real.index(reduced[-1]) + 1]
    if block != reduced:
        raise ctx.unsupported(node, f"a reduction over non-adjacent axes {sorted(axes)}")
    return (numel(shape[:reduced[0]]), numel([shape[i] for i in reduced]), numel(shape[reduced[-1] + 1:]))


def _emit_reduce(kind: str, x: Info, node: Node, outer, n, inner):
    def emit(e):
        e.line(f"ff::reduce<{ctype(x.dtype)}>({kind}, {e.dim(outer)}, {e.dim(n)}, {e.dim(inner)}, "
               f"{e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])});")
    return emit


@rule(*REDUCTIONS)
def reduce(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if x.dtype is DType.BOOL and node.op not in (Op.ReduceMax, Op.ReduceMin):
        raise ctx.unsupported(node, f"{node.op.value} on bool")
    axes_in = ctx.static_ints(node, 1, "axes") if node.input(1) is not None else []
    if not axes_in and node.attrs.noop_with_empty_axes:
        return Lowered([Info(x.dtype, x.shape, x.elems)], no_code, static=frozenset({1}), view=True)
    axes = {axis_index(node, a, x.rank) for a in axes_in} if axes_in else set(range(x.rank))
    if node.attrs.keepdims:
        shape = tuple(ONE if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    outer, n, inner = _split(ctx, node, x.shape, axes)
    return Lowered([Info(x.dtype, shape)], _emit_reduce(_KIND[node.op], x, node, outer, n, inner),
                   static=frozenset({1}))


@rule(Op.GlobalAveragePool, Op.GlobalMaxPool)
def global_pool(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if not x.dtype.is_float or x.rank < 3:
        raise ctx.unsupported(node, f"{node.op.value} on {x.dtype.short} rank {x.rank}")
    shape = x.shape[:2] + (ONE,) * (x.rank - 2)
    kind = "ff::kMean" if node.op is Op.GlobalAveragePool else "ff::kMax"
    return Lowered([Info(x.dtype, shape)],
                   _emit_reduce(kind, x, node, numel(x.shape[:2]), numel(x.shape[2:]), ONE))


@rule(Op.Softmax, Op.LogSoftmax)
def softmax(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if not x.dtype.is_float:
        raise ctx.unsupported(node, f"{node.op.value} on {x.dtype.short}")
    axis = axis_index(node, node.attrs.axis, x.rank)
    outer, n, inner = numel(x.shape[:axis]), x.shape[axis], numel(x.shape[axis + 1:])
    log = "true" if node.op is Op.LogSoftmax else "false"

    def emit(e):
        e.line(f"ff::softmax<{ctype(x.dtype)}>({log}, {e.dim(outer)}, {e.dim(n)}, {e.dim(inner)}, "
               f"{e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(x.dtype, x.shape)], emit)


def _scalar(ctx: Ctx, node: Node, i: int, what: str) -> int:
    values = ctx.static_ints(node, i, what)
    if len(values) != 1:
        raise ShapeError(f"node {node.describe()}: its {what} must be one value, got {values}")
    return values[0]


def _around(shape: tuple[Expr, ...], axis: int) -> tuple[Expr, Expr, Expr]:
    return numel(shape[:axis]), shape[axis], numel(shape[axis + 1:])


@rule(Op.CumSum)
def cumsum(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    if x.dtype is DType.BOOL:
        raise ctx.unsupported(node, "CumSum on bool")
    outer, n, inner = _around(x.shape, axis_index(node, _scalar(ctx, node, 1, "axis"), x.rank))
    flags = f"{'true' if node.attrs.exclusive else 'false'}, {'true' if node.attrs.reverse else 'false'}"

    def emit(e):
        e.line(f"ff::cumsum<{ctype(x.dtype)}>({flags}, {e.dim(outer)}, {e.dim(n)}, {e.dim(inner)}, "
               f"{e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(x.dtype, x.shape)], emit, static=frozenset({1}))


@rule(Op.ArgMax, Op.ArgMin)
def arg_reduce(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    axis = axis_index(node, node.attrs.axis, x.rank)
    outer, n, inner = _around(x.shape, axis)
    if node.attrs.keepdims:
        shape = x.shape[:axis] + (ONE,) + x.shape[axis + 1:]
    else:
        shape = x.shape[:axis] + x.shape[axis + 1:]
    largest = "true" if node.op is Op.ArgMax else "false"
    last = "true" if node.attrs.select_last_index else "false"

    def emit(e):
        e.line(f"ff::arg_reduce<{ctype(x.dtype)}>({largest}, {last}, {e.dim(outer)}, {e.dim(n)}, "
               f"{e.dim(inner)}, {e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(DType.INT64, shape)], emit)


@rule(Op.TopK)
def topk(ctx: Ctx, node: Node) -> Lowered:
    x = ctx.info(node.inputs[0])
    axis = axis_index(node, node.attrs.axis, x.rank)
    k = _scalar(ctx, node, 1, "K")
    outer, n, inner = _around(x.shape, axis)
    if k < 0 or ctx.bounds.sign(n - k) == -1:
        raise ShapeError(f"node {node.describe()}: k={k} exceeds the axis's size {n}")
    shape = x.shape[:axis] + (Expr.const(k),) + x.shape[axis + 1:]
    largest = "true" if node.attrs.largest else "false"

    def emit(e):
        # sorted=0 lets the order be any: the sorted one is a valid choice
        e.check(f"ff::topk<{ctype(x.dtype)}>({largest}, {k}, {e.dim(outer)}, {e.dim(n)}, {e.dim(inner)}, "
                f"{e.ptr(node.inputs[0])}, {e.ptr(node.outputs[0])}, {e.ptr(node.outputs[1])})")
    # a symbolic axis may be shorter than k at run time: the kernel refuses then, as the reference
    return Lowered([Info(x.dtype, shape), Info(DType.INT64, shape)], emit, static=frozenset({1}),
                   status=f"k={k} exceeds the size of the axis")


# ---- Einsum ------------------------------------------------------------------------------
EINSUM_MAX_OPERANDS = 8  # kEinsumMaxOperands in reduce.h


def _einsum_terms(ctx: Ctx, node: Node, ranks: list[int]) -> tuple[list[str], str]:
    """The operand terms and the output term, '...' spelled out as digits (right-aligned)."""
    eq = node.attrs.equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ShapeError(f"node {node.describe()}: equation {eq!r} has {len(terms)} operands, "
                         f"the node {len(ranks)}")
    for term in terms + [rhs]:
        letters = term.replace("...", "")
        if not all(ch.isascii() and ch.isalpha() for ch in letters) or term.count("...") > 1:
            raise ShapeError(f"node {node.describe()}: einsum term {term!r}: only letters and one '...'")
    extra = [rank - len(t.replace("...", "")) for t, rank in zip(terms, ranks)]
    if any(n < 0 or (n and "..." not in t) for n, t in zip(extra, terms)):
        raise ShapeError(f"node {node.describe()}: einsum {eq!r} does not fit operand ranks {ranks}")
    width = max((n for n, t in zip(extra, terms) if "..." in t), default=0)
    ell = "".join(str(i) for i in range(width))
    terms = [t.replace("...", ell[width - n:]) for t, n in zip(terms, extra)]
    if arrow:
        out = rhs.replace("...", ell)
    else:
        # implicit output: the broadcast dims, then the letters used once, alphabetically
        once = sorted(ch for ch in set("".join(terms)) if ch.isalpha() and "".join(terms).count(ch) == 1)
        out = ell + "".join(once)
    if len(set(out)) != len(out) or not set(out) <= set("".join(terms)):
        raise ShapeError(f"node {node.describe()}: einsum output {out!r} repeats or invents a letter")
    return terms, out


@rule(Op.Einsum)
def einsum(ctx: Ctx, node: Node) -> Lowered:
    """One loop nest over every letter: the output's letters outside, the summed ones inside."""
    ins = [ctx.info(v) for v in node.inputs]
    if not 1 <= len(ins) <= EINSUM_MAX_OPERANDS:
        raise ctx.unsupported(node, f"Einsum of {len(ins)} operands")
    if any(i.dtype != ins[0].dtype for i in ins) or ins[0].dtype is DType.BOOL:
        raise ctx.unsupported(node, f"Einsum on {[i.dtype.short for i in ins]}")
    terms, out = _einsum_terms(ctx, node, [i.rank for i in ins])
    sizes: dict[str, Expr] = {}
    for term, info in zip(terms, ins):
        for ch, d in zip(term, info.shape):
            known = sizes.get(ch)
            if known is None or known == ONE:
                sizes[ch] = d
            elif d != ONE and d != known:
                raise ShapeError(f"node {node.describe()}: einsum letter {ch!r} is both {known} and {d}")
    summed = [ch for ch in dict.fromkeys("".join(terms)) if ch not in out]
    order = list(out) + summed
    strides: list[Expr] = []
    for term, info in zip(terms, ins):
        per = dict.fromkeys(order, ZERO)
        for ch, d, st in zip(term, info.shape, contiguous_strides(info.shape)):
            if not (d == ONE and sizes[ch] != ONE):  # a broadcast dim stays put
                per[ch] = per[ch] + st
        strides += [per[ch] for ch in order]
    t = ctype(ins[0].dtype)

    def emit(e):
        ops = e.array([e.ptr(v) for v in node.inputs], f"{t}*")
        e.line(f"ff::einsum<{t}>({len(ins)}, {ops}, {e.array(strides)}, {len(out)}, "
               f"{e.array([sizes[ch] for ch in out])}, {len(summed)}, "
               f"{e.array([sizes[ch] for ch in summed])}, {e.ptr(node.outputs[0])});")
    return Lowered([Info(ins[0].dtype, tuple(sizes[ch] for ch in out))], emit)
