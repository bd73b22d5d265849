"""Reductions (Reduce*, global pooling) and Softmax / LogSoftmax.

The kernels see the input as [outer, n, inner] with the reduced axes in the
middle; axes that are not adjacent once size-1 dims are dropped are refused.
"""
from __future__ import annotations

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import REDUCTIONS, Op
from .lowering import ONE, Ctx, Info, Lowered, axis_index, no_code, rule
from .renderer import ctype
from .symexpr import Expr, numel

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
    if x.dtype is DType.BOOL:
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
