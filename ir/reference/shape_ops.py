"""Shape ops: reshaping, transposing, joining, splitting, broadcasting, padding, shape queries.

The data-movement ops never compute on elements, so they keep the input dtype and
must match onnxruntime bit for bit; Shape and Size give int64, Range the dtype of start.
"""
from __future__ import annotations

import numpy as np

from ..op import Op
from .registry import reference


def _axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def _ints(arr: np.ndarray | None) -> list[int]:
    # python ints: the INT64_MIN/MAX sentinels must not overflow when offset
    return [] if arr is None else [int(v) for v in np.asarray(arr).reshape(-1)]


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


@reference(Op.Reshape)
def reshape(attrs, data, shape):
    target = _ints(shape)
    if not attrs.allowzero:
        if any(t == 0 for t in target[data.ndim:]):
            raise ValueError(f"0 at position >= input rank {data.ndim} in target {target}")
        target = [data.shape[i] if t == 0 else t for i, t in enumerate(target)]
    if target.count(-1) > 1:
        raise ValueError(f"target {target} has more than one -1")
    if -1 in target:
        # numpy refuses -1 next to a 0 dim; the spec only needs the rest to be non-empty
        rest = _numel(t for t in target if t != -1)
        if rest == 0 or data.size % rest:
            raise ValueError(f"cannot infer -1 reshaping {list(data.shape)} to {target}")
        target[target.index(-1)] = data.size // rest
    return data.reshape(target)


@reference(Op.Flatten)
def flatten(attrs, x):
    axis = attrs.axis + x.ndim if attrs.axis < 0 else attrs.axis
    if not 0 <= axis <= x.ndim:
        raise ValueError(f"axis {attrs.axis} is out of range for rank {x.ndim}")
    return x.reshape(_numel(x.shape[:axis]), _numel(x.shape[axis:]))


@reference(Op.Transpose)
def transpose(attrs, x):
    return np.transpose(x, attrs.perm).copy()


@reference(Op.Squeeze)
def squeeze(attrs, x, axes=None):
    # An empty axes tensor squeezes nothing (the ONNX spec and its shape inference);
    # onnxruntime instead treats it like an absent input and squeezes every 1.
    if axes is None:
        return x.reshape([d for d in x.shape if d != 1])
    drop = {_axis(a, x.ndim) for a in _ints(axes)}
    for a in drop:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in drop])


@reference(Op.Unsqueeze)
def unsqueeze(attrs, x, axes):
    rank = x.ndim + len(_ints(axes))
    new = sorted(_axis(a, rank) for a in _ints(axes))
    if len(set(new)) != len(new):
        raise ValueError(f"axes {_ints(axes)} repeat an axis")
    shape = list(x.shape)
    for a in new:
        shape.insert(a, 1)
    return x.reshape(shape)


@reference(Op.Concat)
def concat(attrs, *inputs):
    return np.concatenate(inputs, axis=_axis(attrs.axis, inputs[0].ndim))


@reference(Op.Split, needs_outputs=True)
def split(attrs, x, split=None, *, n_outputs):
    axis = _axis(attrs.axis, x.ndim)
    dim = x.shape[axis]
    if split is not None:
        sizes = _ints(split)
        if sum(sizes) != dim or any(s < 0 for s in sizes):
            raise ValueError(f"split sizes {sizes} do not partition dim {dim}")
    else:
        # opset 18: chunks of ceil(dim / n), the last one takes what is left
        n = attrs.num_outputs or n_outputs
        chunk = -(-dim // n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        if sizes[-1] < 0:
            raise ValueError(f"cannot split dim {dim} into {n} chunks of {chunk}")
    if len(sizes) != n_outputs:
        raise ValueError(f"{len(sizes)} split sizes for {n_outputs} outputs")
    return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))


@reference(Op.Expand)
def expand(attrs, x, shape):
    # bidirectional: a 1 in the target keeps the input's dim
    out = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
    return np.broadcast_to(x, out).copy()


@reference(Op.Tile)
def tile(attrs, x, repeats):
    reps = _ints(repeats)
    if len(reps) != x.ndim or any(r < 0 for r in reps):
        raise ValueError(f"repeats {reps} do not fit rank {x.ndim}")
    return np.tile(x, reps) if reps else x.copy()


@reference(Op.Pad)
def pad(attrs, data, pads, constant_value=None, axes=None):
    rank = data.ndim
    axes_ = [_axis(a, rank) for a in _ints(axes)] if axes is not None else list(range(rank))
    p = _ints(pads)
    n = len(axes_)
    if len(p) != 2 * n:
        raise ValueError(f"{len(p)} pads for {n} axes")
    begin, end = [0] * rank, [0] * rank
    for j, a in enumerate(axes_):
        begin[a], end[a] = p[j], p[j + n]
    # negative pads crop first; the padding (reflect, wrap) then sees the cropped tensor
    crop = tuple(slice(-min(b, 0), data.shape[i] + min(e, 0)) for i, (b, e) in enumerate(zip(begin, end)))
    cropped = data[crop]
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if attrs.mode == "constant":
        value = np.zeros((), data.dtype) if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
        return np.pad(cropped, width, mode="constant", constant_values=value)
    if attrs.mode not in ("reflect", "edge", "wrap"):
        raise ValueError(f"unknown Pad mode {attrs.mode!r}")
    for i, (b, e) in enumerate(width):
        if (b or e) and cropped.shape[i] == 0:
            raise ValueError(f"cannot {attrs.mode}-pad axis {i} of size 0")
    return np.pad(cropped, width, mode=attrs.mode)


@reference(Op.Shape)
def shape(attrs, x):
    # python slicing clamps start and end to [0, rank] after adding rank, as the spec says
    return np.array(x.shape[attrs.start:attrs.end], dtype=np.int64)


@reference(Op.Size)
def size(attrs, x):
    return np.array(x.size, dtype=np.int64)


@reference(Op.ConstantOfShape)
def constant_of_shape(attrs, shape):
    if attrs.value is None:
        fill = np.zeros((), np.float32)
    else:
        fill = np.asarray(attrs.value.numpy()).reshape(-1)[0]
    dims = _ints(shape)
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dim in shape {dims}")
    return np.full(dims, fill, dtype=fill.dtype)


@reference(Op.Range)
def range_(attrs, start, limit, delta):
    start, limit, delta = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    dtype = start.dtype
    if delta == 0:
        raise ValueError("Range delta is 0")
    if dtype.kind in "iu":
        span, step = int(limit) - int(start), int(delta)
        n = -(-span // step)
    else:
        # the difference is taken in the element type, the division in double
        n = int(np.ceil(float(limit - start) / float(delta)))
    # the spec's formula start + i * delta, not a running sum (onnxruntime accumulates,
    # which differs in the last float bits when delta is inexact)
    return (start + np.arange(max(n, 0), dtype=dtype) * delta).astype(dtype)
