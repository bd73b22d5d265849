"""Indexing ops: gathers, scatters, slicing, NonZero and OneHot.

Index inputs may be negative (counted from the end of their axis); an index
outside [-dim, dim) is an error, never silently wrapped a second time.
"""
from __future__ import annotations

import numpy as np

from ..op import Op
from .registry import reference

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _ints(arr: np.ndarray) -> list[int]:
    # python ints: adding dim to the INT64_MIN sentinel must not overflow
    return [int(v) for v in np.asarray(arr).reshape(-1)]


def _wrap(indices: np.ndarray, dim: int) -> np.ndarray:
    idx = np.asarray(indices).astype(np.int64)
    bad = (idx < -dim) | (idx >= dim)
    if bad.any():
        raise IndexError(f"index {int(idx[bad].reshape(-1)[0])} is out of bounds for a dim of size {dim}")
    return np.where(idx < 0, idx + dim, idx)


def _along_axis(indices: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """Index arrays that address data[i0, .., indices[i], .., in] for every position i of indices."""
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = indices
    return tuple(np.broadcast_to(g, indices.shape) for g in grid)


_REDUCE = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter(out: np.ndarray, where: tuple[np.ndarray, ...], updates: np.ndarray, reduction: str) -> np.ndarray:
    if reduction == "none":
        out[where] = updates
    elif reduction in _REDUCE:
        # ufunc.at applies duplicate indices one after another instead of keeping the last
        _REDUCE[reduction].at(out, where, updates)
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    return out


@reference(Op.Gather)
def gather(attrs, data, indices):
    axis = _axis(attrs.axis, data.ndim)
    return np.take(data, _wrap(indices, data.shape[axis]), axis=axis)


@reference(Op.GatherElements)
def gather_elements(attrs, data, indices):
    axis = _axis(attrs.axis, data.ndim)
    if indices.ndim != data.ndim:
        raise ValueError(f"indices rank {indices.ndim} differs from data rank {data.ndim}")
    return data[_along_axis(_wrap(indices, data.shape[axis]), axis)]


def _nd_index(data: np.ndarray, indices: np.ndarray, batch_dims: int) -> tuple[tuple[np.ndarray, ...], tuple]:
    """Flatten the batch dims of data to one and index it with [batch, m] arrays.

    Returns the index tuple into ``data`` reshaped to [nb, *data.shape[b:]] and the
    index shape [*batch, *indices.shape[b:-1]].
    """
    b, k = batch_dims, indices.shape[-1]
    if indices.shape[:b] != data.shape[:b]:
        raise ValueError(f"batch dims differ: data {list(data.shape)}, indices {list(indices.shape)}")
    if b + k > data.ndim:
        raise ValueError(f"index tuples of length {k} address rank {data.ndim - b} slices")
    nb = int(np.prod(data.shape[:b], dtype=np.int64))
    m = int(np.prod(indices.shape[b:-1], dtype=np.int64))
    idx = indices.reshape(nb, m, k)
    where = (np.broadcast_to(np.arange(nb)[:, None], (nb, m)),)
    where += tuple(_wrap(idx[..., t], data.shape[b + t]) for t in range(k))
    return where, tuple(indices.shape[:-1])


@reference(Op.GatherND)
def gather_nd(attrs, data, indices):
    b = attrs.batch_dims
    where, lead = _nd_index(data, indices, b)
    flat = data.reshape((-1,) + data.shape[b:]) if b else data[None]
    k = indices.shape[-1]
    return flat[where].reshape(lead + data.shape[b + k:])


@reference(Op.ScatterND)
def scatter_nd(attrs, data, indices, updates):
    k = indices.shape[-1]
    expect = indices.shape[:-1] + data.shape[k:]
    if updates.shape != expect:
        raise ValueError(f"updates shape {list(updates.shape)} must be {list(expect)}")
    where, lead = _nd_index(data, indices, 0)
    out = data.copy()
    m = int(np.prod(lead, dtype=np.int64))
    # out[None] is a view, so the writes land in out
    _scatter(out[None], where, updates.reshape((1, m) + data.shape[k:]), attrs.reduction)
    return out


@reference(Op.ScatterElements)
def scatter_elements(attrs, data, indices, updates):
    axis = _axis(attrs.axis, data.ndim)
    if indices.shape != updates.shape or indices.ndim != data.ndim:
        raise ValueError(f"indices {list(indices.shape)} and updates {list(updates.shape)} "
                         f"must have one shape of rank {data.ndim}")
    where = _along_axis(_wrap(indices, data.shape[axis]), axis)
    return _scatter(data.copy(), where, updates, attrs.reduction)


def slice_bounds(start: int, end: int, step: int, dim: int) -> tuple[int, int]:
    """Clamp one axis's start and end as the ONNX spec says (not as Python does).

    Negative values count from the end; then for step > 0 both are clamped to
    [0, dim], for step < 0 start to [0, dim-1] and end to [-1, dim-1], where an
    end of -1 means "past the first element".
    """
    if step == 0:
        raise ValueError("Slice step is 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return min(max(start, 0), dim), min(max(end, 0), dim)
    return min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)


@reference(Op.Slice)
def slice_(attrs, data, starts, ends, axes=None, steps=None):
    starts, ends = _ints(starts), _ints(ends)
    axes_ = _ints(axes) if axes is not None else list(range(len(starts)))
    steps_ = _ints(steps) if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes_) == len(steps_):
        raise ValueError("starts, ends, axes and steps differ in length")
    index = [slice(None)] * data.ndim
    seen = set()
    for s, e, a, st in zip(starts, ends, axes_, steps_):
        a = _axis(a, data.ndim)
        if a in seen:
            raise ValueError(f"axis {a} is sliced twice")
        seen.add(a)
        s, e = slice_bounds(s, e, st, data.shape[a])
        # a negative python stop would count from the end; -1 here means "before 0"
        index[a] = slice(s, e if e >= 0 else None, st) if data.shape[a] else slice(0, 0)
    return data[tuple(index)].copy()


@reference(Op.NonZero)
def nonzero(attrs, x):
    # a scalar counts as a one-element vector (onnxruntime and the ONNX reference)
    return np.array(np.nonzero(np.atleast_1d(x)), dtype=np.int64)


@reference(Op.OneHot)
def one_hot(attrs, indices, depth, values):
    depth = int(np.asarray(depth).reshape(-1)[0])
    if depth < 1:
        raise ValueError(f"OneHot depth {depth} must be positive")
    axis = _axis(attrs.axis, indices.ndim + 1)
    # float indices are truncated; out-of-range ones give an all-off row
    idx = np.asarray(indices).astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    classes = np.arange(depth).reshape((depth,) + (1,) * (indices.ndim - axis))
    hot = np.expand_dims(idx, axis) == classes
    off, on = np.asarray(values).reshape(-1)[:2]
    return np.where(hot, on, off).astype(values.dtype)
