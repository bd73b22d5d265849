"""Type and shape inference for IR nodes.

``infer_types(node)`` gives each output's (dtype, shape) from the inputs' types
and constant inputs; dims it cannot decide are None, shapes it cannot decide are
None. Passes call ``infer_node`` on nodes they create; the importer uses it to
fill what ONNX shape inference left out.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .dtype import DType
from .node import Node
from .op import BINARY_ELEMENTWISE, COMPARISON, REDUCTIONS, UNARY_ELEMENTWISE, Op
from .shape import Dim, Shape, broadcast

TypeShape = tuple[DType | None, Shape]
_RULES: dict[Op, Callable[[Node], list[TypeShape]]] = {}


def rule(*ops: Op):
    def register(fn):
        for op in ops:
            _RULES[op] = fn
        return fn
    return register


def infer_types(node: Node) -> list[TypeShape]:
    fn = _RULES.get(node.op)
    if fn is None:
        return [(None, None)] * len(node.outputs)
    out = fn(node)
    return (list(out) + [(None, None)] * len(node.outputs))[: len(node.outputs)]


def infer_node(node: Node, overwrite: bool = False) -> None:
    """Set output dtypes/shapes that are unknown (or all, with overwrite) from the rules."""
    for v, (dtype, shape) in zip(node.outputs, infer_types(node)):
        if dtype is not None and (overwrite or v.dtype is None):
            v.dtype = dtype
        if shape is not None and (overwrite or v.shape is None or _less_known(v.shape, shape)):
            v.shape = tuple(shape)


def _less_known(have: tuple, new: tuple) -> bool:
    return len(have) == len(new) and sum(d is None for d in have) > sum(d is None for d in new)


# ---- helpers -------------------------------------------------------------
def _in(node: Node, i: int):
    return node.input(i)


def _dtype(node: Node, i: int = 0) -> DType | None:
    v = node.input(i)
    return None if v is None else v.dtype


def _shape(node: Node, i: int = 0) -> Shape:
    v = node.input(i)
    return None if v is None else v.shape


def _const(node: Node, i: int) -> np.ndarray | None:
    v = node.input(i)
    if v is None or v.const is None:
        return None
    return np.asarray(v.const.numpy())


def _ints(node: Node, i: int) -> list[int] | None:
    c = _const(node, i)
    return None if c is None else [int(x) for x in c.reshape(-1)]


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


# ---- rules ---------------------------------------------------------------
@rule(*UNARY_ELEMENTWISE, Op.Clip, Op.Softmax, Op.LogSoftmax, Op.LpNormalization,
      Op.InstanceNormalization, Op.GroupNormalization, Op.RMSNorm, Op.CRMSNorm, Op.CumSum, Op.Trilu)
def _same(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node))]


@rule(*BINARY_ELEMENTWISE)
def _binary(node: Node) -> list[TypeShape]:
    return [(_dtype(node), broadcast(*[v.shape for v in node.inputs if v is not None]))]


@rule(*COMPARISON)
def _compare(node: Node) -> list[TypeShape]:
    return [(DType.BOOL, broadcast(_shape(node, 0), _shape(node, 1)))]


@rule(Op.IsNaN, Op.IsInf)
def _bool_same(node: Node) -> list[TypeShape]:
    return [(DType.BOOL, _shape(node))]


@rule(Op.Where)
def _where(node: Node) -> list[TypeShape]:
    return [(_dtype(node, 1), broadcast(_shape(node, 0), _shape(node, 1), _shape(node, 2)))]


@rule(Op.Cast)
def _cast(node: Node) -> list[TypeShape]:
    return [(DType.from_onnx(node.attrs.to), _shape(node))]


@rule(Op.CastLike)
def _cast_like(node: Node) -> list[TypeShape]:
    return [(_dtype(node, 1), _shape(node))]


@rule(Op.Dropout)
def _dropout(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node)), (DType.BOOL, _shape(node))]


@rule(Op.BatchNormalization)
def _batchnorm(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node))]


@rule(Op.LayerNormalization)
def _layernorm(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    stat = None
    if shape is not None:
        axis = _norm_axis(node.attrs.axis, len(shape))
        stat = tuple(shape[:axis]) + (1,) * (len(shape) - axis)
    stash = DType.from_onnx(node.attrs.stash_type)
    return [(_dtype(node), shape), (stash, stat), (stash, stat)]


@rule(*REDUCTIONS)
def _reduce(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    axes = _ints(node, 1) if node.input(1) is not None else []
    if axes is None:
        return [(_dtype(node), None)]
    if not axes:
        if node.attrs.noop_with_empty_axes:
            return [(_dtype(node), shape)]
        axes = list(range(len(shape)))
    axes = {_norm_axis(a, len(shape)) for a in axes}
    keep = node.attrs.keepdims
    out = tuple(1 if i in axes else d for i, d in enumerate(shape) if keep or i not in axes)
    return [(_dtype(node), out)]


@rule(Op.ArgMax, Op.ArgMin)
def _argreduce(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(DType.INT64, None)]
    axis = _norm_axis(node.attrs.axis, len(shape))
    out = tuple(1 if i == axis else d for i, d in enumerate(shape) if node.attrs.keepdims or i != axis)
    return [(DType.INT64, out)]


@rule(Op.MatMul)
def _matmul(node: Node) -> list[TypeShape]:
    return [(_dtype(node), matmul_shape(_shape(node, 0), _shape(node, 1)))]


def matmul_shape(a: Shape, b: Shape) -> Shape:
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        raise ValueError("MatMul operands must have rank >= 1")
    a2 = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    b2 = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    k1, k2 = a2[-1], b2[-2]
    if isinstance(k1, int) and isinstance(k2, int) and k1 != k2:
        raise ValueError(f"MatMul inner dims differ: {k1} vs {k2}")
    batch = broadcast(a2[:-2], b2[:-2])
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return out


@rule(Op.Linear)
def _linear(node: Node) -> list[TypeShape]:
    shape = matmul_shape(_shape(node, 0), _shape(node, 1))
    if node.input(3) is not None:
        shape = broadcast(shape, _shape(node, 3))
    return [(_dtype(node), shape)]


@rule(Op.SkipLayerNorm, Op.SkipRMSNorm)
def _skip_norm(node: Node) -> list[TypeShape]:
    shape = broadcast(_shape(node, 0), _shape(node, 1))
    return [(_dtype(node), shape), (_dtype(node), shape)]


@rule(Op.RotaryEmbedding)
def _rotary(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node))]


@rule(Op.Attention)
def _attention(node: Node) -> list[TypeShape]:
    q, v = _shape(node, 0), _shape(node, 2)
    if q is None or v is None:
        return [(_dtype(node), None)]
    return [(_dtype(node), tuple(q[:-1]) + (v[-1],))]


@rule(Op.Gemm)
def _gemm(node: Node) -> list[TypeShape]:
    a, b = _shape(node, 0), _shape(node, 1)
    if a is None or b is None:
        return [(_dtype(node), None)]
    m = a[1] if node.attrs.transA else a[0]
    n = b[0] if node.attrs.transB else b[1]
    return [(_dtype(node), (m, n))]


@rule(Op.Transpose)
def _transpose(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    perm = node.attrs.perm or tuple(reversed(range(len(shape))))
    if sorted(perm) != list(range(len(shape))):
        raise ValueError(f"perm {list(perm)} is not a permutation of rank {len(shape)}")
    return [(_dtype(node), tuple(shape[p] for p in perm))]


@rule(Op.Reshape)
def _reshape(node: Node) -> list[TypeShape]:
    target = _shape_vector(node, 1)
    if target is None:
        s1 = _shape(node, 1)
        rank = s1[0] if s1 is not None and len(s1) == 1 and isinstance(s1[0], int) else None
        return [(_dtype(node), None if rank is None else (None,) * rank)]
    return [(_dtype(node), reshape_shape(_shape(node), list(target), node.attrs.allowzero))]


def _shape_vector(node: Node, i: int) -> tuple[Dim, ...] | None:
    """A shape-like input's elements: constant ints, or symbols traced through shape arithmetic."""
    ints = _ints(node, i)
    if ints is not None:
        return tuple(ints)
    from .symbolic import symbolic_value

    return symbolic_value(node.input(i))


def reshape_shape(shape: Shape, target: list[Dim], allowzero: int = 0) -> tuple[Dim, ...]:
    out: list[Dim] = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            out.append(shape[i] if shape is not None and i < len(shape) else None)
        else:
            out.append(t)
    if -1 in out:
        idx = out.index(-1)
        total = _product(shape)
        rest = _product(tuple(d for j, d in enumerate(out) if j != idx))
        if isinstance(total, int) and isinstance(rest, int) and rest > 0:
            if total % rest:
                raise ValueError(f"cannot reshape {total} elements into {target}")
            out[idx] = total // rest
        else:
            out[idx] = _symbolic_quotient(shape, [d for j, d in enumerate(out) if j != idx])
    return tuple(out)


def _product(shape: Shape) -> int | None:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _symbolic_quotient(shape: Shape, others: list[Dim]) -> Dim:
    """total/others when the symbolic dims cancel: [b,s,768] -> [b,s,12,-1] gives 64."""
    if shape is None or any(d is None for d in others):
        return None
    num = [d for d in shape]
    den = list(others)
    for d in list(den):
        if not isinstance(d, int) and d in num:
            num.remove(d)
            den.remove(d)
    if any(not isinstance(d, int) for d in den):
        return None
    syms = [d for d in num if not isinstance(d, int)]
    if len(syms) == 1:
        # [3, batch] -> [3, -1]: the ints cancel and the one symbol is what remains
        n, m = _product(tuple(d for d in num if isinstance(d, int))), _product(tuple(den))
        return syms[0] if n == m else None
    n = _product(tuple(num))
    m = _product(tuple(den))
    if n is None or m in (None, 0) or n % m:
        return None
    return n // m


@rule(Op.Flatten)
def _flatten(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    axis = node.attrs.axis + len(shape) if node.attrs.axis < 0 else node.attrs.axis
    if not 0 <= axis <= len(shape):
        raise ValueError(f"axis {node.attrs.axis} is out of range for rank {len(shape)}")
    return [(_dtype(node), (_flat_dim(shape[:axis]), _flat_dim(shape[axis:])))]


def _flat_dim(dims: tuple[Dim, ...]) -> Dim:
    # one dim flattens to itself, so a lone symbol (batch) survives
    return dims[0] if len(dims) == 1 else _product(dims)


@rule(Op.Squeeze)
def _squeeze(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    if node.input(1) is None:
        if any(not isinstance(d, int) for d in shape):
            return [(_dtype(node), None)]
        return [(_dtype(node), tuple(d for d in shape if d != 1))]
    axes = _ints(node, 1)
    if axes is None:
        return [(_dtype(node), None)]
    axes = {_norm_axis(a, len(shape)) for a in axes}
    return [(_dtype(node), tuple(d for i, d in enumerate(shape) if i not in axes))]


@rule(Op.Unsqueeze)
def _unsqueeze(node: Node) -> list[TypeShape]:
    shape, axes = _shape(node), _ints(node, 1)
    if shape is None or axes is None:
        return [(_dtype(node), None)]
    rank = len(shape) + len(axes)
    axes = sorted(_norm_axis(a, rank) for a in axes)
    out = list(shape)
    for a in axes:
        out.insert(a, 1)
    return [(_dtype(node), tuple(out))]


@rule(Op.Concat)
def _concat(node: Node) -> list[TypeShape]:
    shapes = [v.shape for v in node.inputs if v is not None]
    if any(s is None for s in shapes) or not shapes:
        return [(_dtype(node), None)]
    rank = len(shapes[0])
    axis = _norm_axis(node.attrs.axis, rank)
    total: Dim = 0
    for s in shapes:
        total = total + s[axis] if isinstance(total, int) and isinstance(s[axis], int) else None
    out = list(shapes[0])
    for i in range(rank):
        if i != axis and out[i] is None:
            out[i] = next((s[i] for s in shapes if s[i] is not None), None)
    out[axis] = total
    return [(_dtype(node), tuple(out))]


@rule(Op.Split)
def _split(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    n = len(node.outputs)
    if shape is None:
        return [(_dtype(node), None)] * n
    axis = _norm_axis(node.attrs.axis, len(shape))
    sizes = _ints(node, 1) if node.input(1) is not None else None
    # runtime sizes are unknown; only a missing input means an even split
    if node.input(1) is None and isinstance(shape[axis], int):
        d = shape[axis]
        chunk = -(-d // n)
        sizes = [min(chunk, d - chunk * i) for i in range(n)]
    outs = []
    for i in range(n):
        s = list(shape)
        s[axis] = sizes[i] if sizes is not None else None
        outs.append((_dtype(node), tuple(s)))
    return outs


@rule(Op.Slice)
def _slice(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    starts, ends = _ints(node, 1), _ints(node, 2)
    if node.input(3) is not None:
        axes = _ints(node, 3)
    else:
        # the default axes are 0..len(starts)-1, known from the starts' shape alone
        s1 = _shape(node, 1)
        n = len(starts) if starts is not None else (
            s1[0] if s1 is not None and len(s1) == 1 and isinstance(s1[0], int) else None)
        axes = None if n is None else list(range(n))
    steps = _ints(node, 4) if node.input(4) is not None else [1] * len(axes or [])
    if axes is None:
        return [(_dtype(node), (None,) * len(shape))]
    axes = [_norm_axis(a, len(shape)) for a in axes]
    if starts is None or ends is None or steps is None:
        return [(_dtype(node), tuple(None if i in axes else d for i, d in enumerate(shape)))]
    out = list(shape)
    for s, e, a, st in zip(starts, ends, axes, steps):
        d = shape[a]
        if isinstance(d, int):
            out[a] = _slice_len(s, e, st, d)
        else:
            out[a] = d if _is_full_slice(s, e, st) else None
    return [(_dtype(node), tuple(out))]


def _slice_len(start: int, end: int, step: int, dim: int) -> int:
    """Elements Slice keeps on one axis, clamping as ONNX does (which is not Python's way:
    for a negative step a start below 0 clamps to 0, so x[-10:-20:-1] keeps x[0])."""
    if step == 0:
        raise ValueError("Slice step is 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return max(-(-(end - start) // step), 0)
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return max(-(-(start - end) // -step), 0)


def _is_full_slice(start: int, end: int, step: int) -> bool:
    """Whether the slice keeps every element of an axis whatever its size (below 2**31)."""
    big = 2**31 - 1
    if step == 1:
        return (start == 0 or start <= -big) and end >= big
    if step == -1:
        return (start == -1 or start >= big) and end <= -big - 1
    return False


@rule(Op.Gather)
def _gather(node: Node) -> list[TypeShape]:
    data, idx = _shape(node, 0), _shape(node, 1)
    if data is None or idx is None:
        return [(_dtype(node), None)]
    axis = _norm_axis(node.attrs.axis, len(data))
    return [(_dtype(node), tuple(data[:axis]) + tuple(idx) + tuple(data[axis + 1:]))]


@rule(Op.GatherElements)
def _gather_elements(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node, 1))]


@rule(Op.GatherND)
def _gather_nd(node: Node) -> list[TypeShape]:
    data, idx = _shape(node, 0), _shape(node, 1)
    if data is None or idx is None or not idx:
        return [(_dtype(node), None)]
    k, b = idx[-1], node.attrs.batch_dims
    if not isinstance(k, int):
        return [(_dtype(node), None)]
    if b + k > len(data):
        raise ValueError(f"index tuples of length {k} address rank {len(data) - b} slices")
    return [(_dtype(node), tuple(idx[:-1]) + tuple(data[b + k:]))]


@rule(Op.ScatterND, Op.ScatterElements)
def _scatter(node: Node) -> list[TypeShape]:
    return [(_dtype(node), _shape(node))]


@rule(Op.Expand)
def _expand(node: Node) -> list[TypeShape]:
    target = _shape_vector(node, 1)
    if target is None:
        return [(_dtype(node), None)]
    return [(_dtype(node), broadcast(_shape(node), tuple(target)))]


@rule(Op.Tile)
def _tile(node: Node) -> list[TypeShape]:
    shape, reps = _shape(node), _ints(node, 1)
    if shape is None or reps is None:
        return [(_dtype(node), None)]
    return [(_dtype(node), tuple(d * r if isinstance(d, int) else (d if r == 1 else None)
                                 for d, r in zip(shape, reps)))]


@rule(Op.Shape)
def _shape_op(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(DType.INT64, (None,))]
    dims = shape[slice(node.attrs.start, node.attrs.end)]
    return [(DType.INT64, (len(dims),))]


@rule(Op.Size)
def _size(node: Node) -> list[TypeShape]:
    return [(DType.INT64, ())]


@rule(Op.ConstantOfShape)
def _constant_of_shape(node: Node) -> list[TypeShape]:
    value = node.attrs.value
    dtype = value.dtype if value is not None else DType.FLOAT
    target = _shape_vector(node, 0)
    if target is not None:
        return [(dtype, tuple(target))]
    s = _shape(node, 0)
    rank = s[0] if s is not None and len(s) == 1 and isinstance(s[0], int) else None
    return [(dtype, None if rank is None else (None,) * rank)]


@rule(Op.Range)
def _range(node: Node) -> list[TypeShape]:
    start, limit, delta = (_const(node, i) for i in range(3))
    if start is None or limit is None or delta is None:
        return [(_dtype(node), (None,))]
    start, limit, delta = (c.reshape(()) for c in (start, limit, delta))
    if delta == 0:
        raise ValueError("Range delta is 0")
    if start.dtype.kind in "iu":
        n = -((int(start) - int(limit)) // int(delta))  # exact: int64 bounds exceed a double
    else:
        # the difference in the element type, the division in double, as the reference does
        n = int(np.ceil(float(limit - start) / float(delta)))
    return [(_dtype(node), (max(n, 0),))]


@rule(Op.NonZero)
def _nonzero(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    # a scalar input counts as a one-element vector (onnxruntime does so)
    return [(DType.INT64, None if shape is None else (max(len(shape), 1), None))]


@rule(Op.TopK)
def _topk(node: Node) -> list[TypeShape]:
    shape, k = _shape(node), _ints(node, 1)
    if shape is None:
        return [(_dtype(node), None), (DType.INT64, None)]
    axis = _norm_axis(node.attrs.axis, len(shape))
    out = list(shape)
    out[axis] = k[0] if k is not None else None
    return [(_dtype(node), tuple(out)), (DType.INT64, tuple(out))]


@rule(Op.OneHot)
def _onehot(node: Node) -> list[TypeShape]:
    idx, depth = _shape(node, 0), _ints(node, 1)
    if idx is None:
        return [(_dtype(node, 2), None)]
    rank = len(idx) + 1
    axis = _norm_axis(node.attrs.axis, rank)
    out = list(idx)
    out.insert(axis, depth[0] if depth is not None else None)
    return [(_dtype(node, 2), tuple(out))]


@rule(Op.Einsum)
def _einsum(node: Node) -> list[TypeShape]:
    shapes = [v.shape for v in node.inputs]
    eq = node.attrs.equation.replace(" ", "")
    if "..." in eq or "->" not in eq or any(s is None for s in shapes):
        return [(_dtype(node), None)]
    lhs, rhs = eq.split("->")
    sizes: dict[str, Dim] = {}
    for term, s in zip(lhs.split(","), shapes):
        for ch, d in zip(term, s):
            if sizes.get(ch) in (None, 1):
                sizes[ch] = d
    return [(_dtype(node), tuple(sizes.get(ch) for ch in rhs))]


@rule(Op.Pad)
def _pad(node: Node) -> list[TypeShape]:
    shape, pads = _shape(node), _ints(node, 1)
    if shape is None or pads is None:
        return [(_dtype(node), None if shape is None else (None,) * len(shape))]
    rank = len(shape)
    axes = _ints(node, 3) if node.input(3) is not None else list(range(rank))
    if axes is None:
        return [(_dtype(node), (None,) * rank)]
    out = list(shape)
    n = len(axes)
    for j, a in enumerate(axes):
        a = _norm_axis(a, rank)
        d, grow = shape[a], pads[j] + pads[j + n]
        # an unpadded symbolic dim keeps its name
        out[a] = d + grow if isinstance(d, int) else (d if pads[j] == pads[j + n] == 0 else None)
    return [(_dtype(node), tuple(out))]


def _spatial(node: Node, kernel: tuple[int, ...] | None, channels: Dim) -> list[TypeShape]:
    shape = _shape(node)
    a = node.attrs
    if shape is None or kernel is None:
        return [(_dtype(node), None if shape is None else (shape[0], channels) + (None,) * (len(shape) - 2))]
    n = len(shape) - 2
    strides = a.strides or (1,) * n
    dil = getattr(a, "dilations", None) or (1,) * n
    pads = a.pads or (0,) * (2 * n)
    out: list[Dim] = [shape[0], channels]
    ceil = getattr(a, "ceil_mode", 0)
    for i in range(n):
        d = shape[2 + i]
        if not isinstance(d, int):
            out.append(None)
            continue
        eff = (kernel[i] - 1) * dil[i] + 1
        if a.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-d // strides[i]))
        elif a.auto_pad == "VALID":
            out.append((d - eff) // strides[i] + 1)
        else:
            span = d + pads[i] + pads[i + n] - eff
            size = (-(-span // strides[i]) if ceil else span // strides[i]) + 1
            if ceil and (size - 1) * strides[i] >= d + pads[i]:
                size -= 1
            out.append(size)
    return [(_dtype(node), tuple(out))]


@rule(Op.Conv)
def _conv(node: Node) -> list[TypeShape]:
    w = _shape(node, 1)
    kernel = node.attrs.kernel_shape or (tuple(w[2:]) if w is not None else None)
    if kernel is not None and not all(isinstance(k, int) for k in kernel):
        kernel = None
    return _spatial(node, kernel, w[0] if w is not None else None)


@rule(Op.MaxPool, Op.AveragePool)
def _pool(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    res = _spatial(node, node.attrs.kernel_shape, shape[1] if shape is not None else None)
    return res + ([(DType.INT64, res[0][1])] if node.op is Op.MaxPool else [])


@rule(Op.GlobalAveragePool, Op.GlobalMaxPool)
def _global_pool(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    return [(_dtype(node), None if shape is None else tuple(shape[:2]) + (1,) * (len(shape) - 2))]


@rule(Op.ConvTranspose)
def _conv_transpose(node: Node) -> list[TypeShape]:
    shape, w = _shape(node), _shape(node, 1)
    if shape is None or w is None:
        return [(_dtype(node), None)]
    a = node.attrs
    n = len(shape) - 2
    channels = w[1] * a.group if isinstance(w[1], int) else None
    if a.output_shape:
        return [(_dtype(node), (shape[0], channels) + tuple(a.output_shape[-n:]))]
    kernel = a.kernel_shape or tuple(w[2:])
    strides = a.strides or (1,) * n
    dil = a.dilations or (1,) * n
    pads = a.pads or (0,) * (2 * n)
    opad = a.output_padding or (0,) * n
    out: list[Dim] = [shape[0], channels]
    for i in range(n):
        d = shape[2 + i]
        if not isinstance(d, int):
            out.append(None)
        elif a.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(d * strides[i])
        else:
            out.append(strides[i] * (d - 1) + opad[i] + (kernel[i] - 1) * dil[i] + 1 - pads[i] - pads[i + n])
    return [(_dtype(node), tuple(out))]


@rule(Op.DepthToSpace, Op.SpaceToDepth)
def _depth_space(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None or not all(isinstance(d, int) for d in shape[1:]):
        return [(_dtype(node), None)]
    b = node.attrs.blocksize
    n, c, h, w = shape
    if node.op is Op.DepthToSpace:
        return [(_dtype(node), (n, c // (b * b), h * b, w * b))]
    return [(_dtype(node), (n, c * b * b, h // b, w // b))]


@rule(Op.Resize)
def _resize(node: Node) -> list[TypeShape]:
    shape = _shape(node)
    if shape is None:
        return [(_dtype(node), None)]
    sizes = _ints(node, 3) if node.input(3) is not None else None
    scales = _const(node, 2) if node.input(2) is not None else None
    axes = list(node.attrs.axes) if node.attrs.axes else list(range(len(shape)))
    out = list(shape)
    if sizes is not None and node.attrs.keep_aspect_ratio_policy == "stretch":
        for a, s in zip(axes, sizes):
            out[a] = s
    elif scales is not None and scales.size:
        for a, s in zip(axes, scales.reshape(-1)):
            out[a] = int(np.floor(out[a] * float(s))) if isinstance(out[a], int) else None
    else:
        return [(_dtype(node), (None,) * len(shape))]
    return [(_dtype(node), tuple(out))]
