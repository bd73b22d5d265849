"""Reductions along axes: Reduce*, ArgMax/ArgMin, Softmax/LogSoftmax, CumSum, TopK, Trilu.

Reduce* take their axes as the optional second input. Absent or empty axes
reduce every axis, unless ``noop_with_empty_axes``: then each element is
reduced on its own, which is what onnxruntime does (ReduceSumSquare squares,
ReduceL1 takes the absolute value); numpy's ``axis=()`` gives exactly that.
"""
from __future__ import annotations

import numpy as np

from ..op import Op
from .elementwise import trunc_div
from .registry import reference


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _scalar_input(arr: np.ndarray) -> int:
    """An int from an input ONNX allows as a scalar or a one-element 1-D tensor."""
    flat = np.asarray(arr).reshape(-1)
    if flat.size != 1:
        raise ValueError(f"expected a single value, got shape {list(np.shape(arr))}")
    return int(flat[0])


def _axes(attrs, x: np.ndarray, axes: np.ndarray | None) -> tuple[int, ...]:
    if axes is None or axes.size == 0:
        return () if attrs.noop_with_empty_axes else tuple(range(x.ndim))
    return tuple(sorted({_axis(int(a), x.ndim) for a in axes.reshape(-1)}))


def _lowest(dtype: np.dtype):
    """The identity of max, which ONNX gives as the max over an empty set."""
    if dtype == np.bool_:
        return False
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


def _highest(dtype: np.dtype):
    if dtype == np.bool_:
        return True
    if dtype.kind in "iu":
        return np.iinfo(dtype).max
    return np.inf


def _float_math(x: np.ndarray) -> np.ndarray:
    # log/sqrt of integer data: compute in double, cast back (truncating) as onnxruntime does
    return x if x.dtype.kind == "f" else x.astype(np.float64)


# ---- Reduce* -----------------------------------------------------------------
@reference(Op.ReduceSum)
def reduce_sum(attrs, x, axes=None):
    return np.sum(x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims), dtype=x.dtype)


@reference(Op.ReduceMean)
def reduce_mean(attrs, x, axes=None):
    ax = _axes(attrs, x, axes)
    keep = bool(attrs.keepdims)
    if x.dtype.kind in "iu":
        # the integer mean truncates toward zero (onnxruntime divides the integer sum)
        count = int(np.prod([x.shape[a] for a in ax], dtype=np.int64))
        total = np.sum(x, axis=ax, keepdims=keep, dtype=x.dtype)
        return trunc_div(total, np.asarray(count, x.dtype))
    return np.mean(x, axis=ax, keepdims=keep).astype(x.dtype, copy=False)


@reference(Op.ReduceMax)
def reduce_max(attrs, x, axes=None):
    return np.max(x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims),
                  initial=_lowest(x.dtype))


@reference(Op.ReduceMin)
def reduce_min(attrs, x, axes=None):
    return np.min(x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims),
                  initial=_highest(x.dtype))


@reference(Op.ReduceProd)
def reduce_prod(attrs, x, axes=None):
    return np.prod(x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims), dtype=x.dtype)


@reference(Op.ReduceL1)
def reduce_l1(attrs, x, axes=None):
    return np.sum(np.abs(x), axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims),
                  dtype=x.dtype)


@reference(Op.ReduceSumSquare)
def reduce_sum_square(attrs, x, axes=None):
    return np.sum(x * x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims), dtype=x.dtype)


@reference(Op.ReduceL2)
def reduce_l2(attrs, x, axes=None):
    squares = np.sum(x * x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims),
                     dtype=x.dtype)
    return np.sqrt(_float_math(squares)).astype(x.dtype, copy=False)


@reference(Op.ReduceLogSum)
def reduce_log_sum(attrs, x, axes=None):
    total = np.sum(x, axis=_axes(attrs, x, axes), keepdims=bool(attrs.keepdims), dtype=x.dtype)
    return np.log(_float_math(total)).astype(x.dtype, copy=False)


@reference(Op.ReduceLogSumExp)
def reduce_log_sum_exp(attrs, x, axes=None):
    ax = _axes(attrs, x, axes)
    xf = _float_math(x)
    m = np.max(xf, axis=ax, keepdims=True, initial=-np.inf)
    # shifting by an infinite max would give inf - inf; such slices need no shift
    m = np.where(np.isfinite(m), m, np.zeros((), xf.dtype))
    with np.errstate(divide="ignore"):  # an empty or all -inf slice gives log(0) = -inf
        out = np.log(np.sum(np.exp(xf - m), axis=ax, keepdims=True)) + m
    if not attrs.keepdims:
        out = np.squeeze(out, axis=ax)
    return out.astype(x.dtype, copy=False)


# ---- index reductions ----------------------------------------------------------
def _arg_reduce(fn, attrs, x):
    axis = _axis(attrs.axis, x.ndim)
    keep = bool(attrs.keepdims)
    if attrs.select_last_index:
        # numpy picks the first extremum; on the reversed axis the first is the last
        idx = x.shape[axis] - 1 - fn(np.flip(x, axis), axis=axis, keepdims=keep)
    else:
        idx = fn(x, axis=axis, keepdims=keep)
    return np.asarray(idx, dtype=np.int64)


@reference(Op.ArgMax)
def argmax(attrs, x):
    return _arg_reduce(np.argmax, attrs, x)


@reference(Op.ArgMin)
def argmin(attrs, x):
    return _arg_reduce(np.argmin, attrs, x)


# ---- softmax -------------------------------------------------------------------
# Opset 13+: normalize along the one axis. Subtracting the max keeps exp <= 1.
@reference(Op.Softmax)
def softmax(attrs, x):
    axis = _axis(attrs.axis, x.ndim)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@reference(Op.LogSoftmax)
def log_softmax(attrs, x):
    axis = _axis(attrs.axis, x.ndim)
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


# ---- scans and selections ------------------------------------------------------
@reference(Op.CumSum)
def cumsum(attrs, x, axis):
    ax = _axis(_scalar_input(axis), x.ndim)
    y = np.flip(x, ax) if attrs.reverse else x
    if attrs.exclusive and x.shape[ax] > 0:
        # shift one step along the axis so element i sums only those before it
        zero_shape = list(x.shape)
        zero_shape[ax] = 1
        head = tuple(slice(0, -1) if i == ax else slice(None) for i in range(x.ndim))
        y = np.concatenate([np.zeros(zero_shape, x.dtype), y[head]], axis=ax)
    out = np.cumsum(y, axis=ax, dtype=x.dtype)
    return np.flip(out, ax) if attrs.reverse else out


@reference(Op.TopK)
def topk(attrs, x, k):
    k = _scalar_input(k)
    axis = _axis(attrs.axis, x.ndim)
    n = x.shape[axis]
    if not 0 <= k <= n:
        raise ValueError(f"TopK k={k} is out of range for an axis of size {n}")
    if attrs.largest:
        # A stable ascending sort of the reversed axis, read backwards, is descending
        # with tied values in ascending index order, the order onnxruntime gives.
        order = n - 1 - np.flip(np.argsort(np.flip(x, axis), axis=axis, kind="stable"), axis)
    else:
        order = np.argsort(x, axis=axis, kind="stable")
    # unsorted output may come in any order; the sorted one is a valid choice
    idx = np.take(order, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)


@reference(Op.Trilu)
def trilu(attrs, x, k=None):
    if x.ndim < 2:
        raise ValueError(f"Trilu needs rank >= 2, got shape {list(x.shape)}")
    k = 0 if k is None else _scalar_input(k)
    # np.triu/np.tril apply to the last two axes of a stack
    return np.triu(x, k) if attrs.upper else np.tril(x, k)
