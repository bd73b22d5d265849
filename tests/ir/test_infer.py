"""Shape inference of the shape and indexing ops, with symbolic dims."""
from typing import NamedTuple

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym, Tensor, VerificationError
from fuseformer.ir import attrs as A

B, S, V = Sym("batch"), Sym("seq"), Sym("vocab")
INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


class In(NamedTuple):
    """A graph input of this type (inputs given as arrays become constants)."""

    shape: tuple | None
    dtype: DType = DType.FLOAT


def i64(*values):
    return np.array(values, dtype=np.int64)


def infer(op, inputs, attrs=None, n_outputs=1):
    """Build a one-node graph, verify it and return the outputs' (dtype, shape)."""
    g = Graph("t")
    values = []
    for i, x in enumerate(inputs):
        if x is None:
            values.append(None)
        elif isinstance(x, In):
            values.append(g.add_input(f"in{i}", x.dtype, x.shape))
        else:
            values.append(g.add_constant(np.asarray(x), f"c{i}"))
    node = g.make_node(op, values, attrs, num_outputs=n_outputs)
    g.outputs.extend(node.outputs)
    g.verify()
    return [(v.dtype, v.shape) for v in node.outputs]


def shape_of(op, inputs, attrs=None):
    (_, shape), = infer(op, inputs, attrs)
    return shape


# ---- Reshape / Flatten ----------------------------------------------------------------
@pytest.mark.parametrize("shape,target,allowzero,expected", [
    ((B, S, 768), [0, 0, 12, 64], 0, (B, S, 12, 64)),
    ((B, S, 768), [0, 0, 12, -1], 0, (B, S, 12, 64)),
    ((B, S, 12, 64), [0, 0, -1], 0, (B, S, 768)),
    ((B, 12, S, 64), [0, -1, 64], 0, (B, None, 64)),        # 12 * seq has no name
    ((B, S, 768), [-1, 768], 0, (None, 768)),
    ((B, S, 768), [0, -1], 0, (B, None)),
    ((2, 3, 4), [-1, 4], 0, (6, 4)),
    ((2, 3, 4), [4, 0, -1], 0, (4, 3, 2)),
    ((0, 3), [0, 3], 1, (0, 3)),
    ((2, 3), [3, 0], 1, (3, 0)),
    (None, [2, -1], 0, (2, None)),
    (None, [5, 6], 0, (5, 6)),
])
def test_reshape(shape, target, allowzero, expected):
    assert shape_of(Op.Reshape, [In(shape), i64(*target)], A.ReshapeAttrs(allowzero)) == expected


def test_reshape_runtime_target():
    assert shape_of(Op.Reshape, [In((B, 4)), In((3,), DType.INT64)]) == (None, None, None)
    assert shape_of(Op.Reshape, [In((B, 4)), In(None, DType.INT64)]) is None


def test_reshape_keeps_dtype():
    (dtype, _), = infer(Op.Reshape, [In((B, 4), DType.INT64), i64(-1)])
    assert dtype is DType.INT64


@pytest.mark.parametrize("shape,axis,expected", [
    ((B, S, 64), 1, (B, None)), ((B, S, 64), 2, (None, 64)), ((B, S, 64), 0, (1, None)),
    ((B, S, 64), -1, (None, 64)), ((B, S, 64), 3, (None, 1)), ((2, 3, 4), 2, (6, 4)),
    ((2, 3, 4), 3, (24, 1)), ((2, 3, S), 2, (6, S)), ((2, 3, 4), -3, (1, 24)),
])
def test_flatten(shape, axis, expected):
    assert shape_of(Op.Flatten, [In(shape)], A.FlattenAttrs(axis)) == expected


# ---- Squeeze / Unsqueeze / Concat / Split ------------------------------------------------
@pytest.mark.parametrize("shape,axes,expected", [
    ((B, 1, S), [1], (B, S)), ((B, 1, S), [-2], (B, S)), ((1, 3, 1), None, (3,)),
    ((B, 1, S), None, None),  # a symbol might be 1: even the rank is unknown
    ((1, B, 1), [0, -1], (B,)), ((B, 1), [], (B, 1)),
])
def test_squeeze(shape, axes, expected):
    inputs = [In(shape)] + ([] if axes is None else [np.array(axes, np.int64)])
    assert shape_of(Op.Squeeze, inputs) == expected


@pytest.mark.parametrize("shape,axes,expected", [
    ((B, S), [1], (B, 1, S)), ((B, S), [-1], (B, S, 1)), ((B, S), [0, 3], (1, B, S, 1)),
    ((B, S), [3, 0], (1, B, S, 1)), ((), [0], (1,)), ((B,), [-1, -3], (1, B, 1)),
])
def test_unsqueeze(shape, axes, expected):
    assert shape_of(Op.Unsqueeze, [In(shape), i64(*axes)]) == expected


def test_unsqueeze_runtime_axes():
    assert shape_of(Op.Unsqueeze, [In((B, S)), In((1,), DType.INT64)]) is None


@pytest.mark.parametrize("shapes,axis,expected", [
    ([(B, S, 64), (B, S, 64)], -1, (B, S, 128)),
    ([(B, S, 64), (B, S, 64)], 1, (B, None, 64)),
    ([(B, None, 64), (B, S, 64)], 0, (None, S, 64)),
    ([(2, 3), (4, 3), (0, 3)], 0, (6, 3)),
    ([(B, S, 64), None], 2, None),
])
def test_concat(shapes, axis, expected):
    assert shape_of(Op.Concat, [In(s) for s in shapes], A.ConcatAttrs(axis)) == expected


@pytest.mark.parametrize("shape,axis,sizes,num_outputs,n,expected", [
    ((B, 768), 1, None, 3, 3, [(B, 256)] * 3),
    ((B, 768), -1, [512, 256], None, 2, [(B, 512), (B, 256)]),
    ((7, B), 0, None, 3, 3, [(3, B), (3, B), (1, B)]),
    ((7, B), 0, None, None, 3, [(3, B), (3, B), (1, B)]),      # opset 13 style: by output count
    ((B, 6), 0, None, 2, 2, [(None, 6)] * 2),
    ((B, 6), 0, [1, 1], None, 2, [(1, 6)] * 2),
])
def test_split(shape, axis, sizes, num_outputs, n, expected):
    inputs = [In(shape)] + ([] if sizes is None else [i64(*sizes)])
    outs = infer(Op.Split, inputs, A.SplitAttrs(axis, num_outputs), n_outputs=n)
    assert [s for _, s in outs] == expected


def test_split_runtime_sizes_are_unknown():
    outs = infer(Op.Split, [In((B, 6)), In((2,), DType.INT64)], A.SplitAttrs(1), n_outputs=2)
    assert [s for _, s in outs] == [(B, None), (B, None)]


# ---- Slice -------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,starts,ends,axes,steps,expected", [
    ((B, S, 64), [0], [INT64_MAX], [1], None, (B, S, 64)),          # full range keeps the symbol
    ((B, S, 64), [0], [2**31 - 1], [1], [1], (B, S, 64)),
    ((B, S, 64), [INT64_MIN], [INT64_MAX], [-2], [1], (B, S, 64)),
    ((B, S, 64), [-1], [INT64_MIN], [1], [-1], (B, S, 64)),         # full reverse
    ((B, S, 64), [INT64_MAX], [INT64_MIN], [1], [-1], (B, S, 64)),
    ((B, S, 64), [0], [32], [-1], None, (B, S, 32)),
    ((B, S, 64), [0], [32], [1], None, (B, None, 64)),              # seq might be < 32
    ((B, S, 64), [1], [INT64_MAX], [1], None, (B, None, 64)),
    ((B, S, 64), [0], [INT64_MAX], [1], [2], (B, None, 64)),
    ((10,), [-10], [-20], None, [-1], (1,)),                        # ONNX clamps start to 0
    ((10,), [-20], [-30], None, [-1], (1,)),
    ((10,), [100], [-20], None, [-1], (10,)),
    ((10,), [7], [-1], None, [-3], (0,)),
    ((10,), [8], [1], None, [-2], (4,)),
    ((10,), [-100], [100], None, None, (10,)),
    ((10,), [5], [2], None, None, (0,)),
    ((0, 3), [-1], [INT64_MIN], [0], [-1], (0, 3)),
    ((4, 6), [-1, 5], [-5, 0], [-2, -1], [-1, -2], (4, 3)),
])
def test_slice(shape, starts, ends, axes, steps, expected):
    inputs = [In(shape), i64(*starts), i64(*ends), None if axes is None else i64(*axes),
              None if steps is None else i64(*steps)]
    assert shape_of(Op.Slice, inputs) == expected


def test_slice_runtime_bounds():
    starts, ends = In((1,), DType.INT64), In((1,), DType.INT64)
    # axes given: only that axis is unknown
    assert shape_of(Op.Slice, [In((B, S, 64)), starts, ends, i64(-1)]) == (B, S, None)
    # axes absent: the default 0..n-1 follows from the starts' length
    assert shape_of(Op.Slice, [In((B, S, 64)), starts, ends]) == (None, S, 64)
    # nor that: every axis may be sliced
    unknown = In((None,), DType.INT64)
    assert shape_of(Op.Slice, [In((B, S, 64)), unknown, unknown]) == (None, None, None)


# ---- Gather / GatherND -------------------------------------------------------------------
@pytest.mark.parametrize("data,indices,axis,expected", [
    ((V, 64), (B, S), 0, (B, S, 64)),
    ((B, S, 64), (), 1, (B, 64)),
    ((B, S, 64), (3,), -1, (B, S, 3)),
    ((B, S, 64), None, 0, None),
])
def test_gather(data, indices, axis, expected):
    assert shape_of(Op.Gather, [In(data), In(indices, DType.INT64)], A.GatherAttrs(axis)) == expected


@pytest.mark.parametrize("data,indices,batch_dims,expected", [
    ((B, 5, 6), (B, 3, 1), 1, (B, 3, 6)),
    ((4, 5, 6), (7, 2), 0, (7, 6)),
    ((4, 5), (7, 2), 0, (7,)),
    ((B, 5), (S, None), 0, None),
])
def test_gather_nd(data, indices, batch_dims, expected):
    assert shape_of(Op.GatherND, [In(data), In(indices, DType.INT64)], A.GatherNDAttrs(batch_dims)) == expected


def test_gather_elements_and_scatter():
    assert shape_of(Op.GatherElements, [In((B, 5)), In((B, 2), DType.INT64)], A.GatherElementsAttrs(1)) == (B, 2)
    ups = In((B, 2))
    assert shape_of(Op.ScatterElements, [In((B, 5)), In((B, 2), DType.INT64), ups]) == (B, 5)


# ---- Expand / Tile / Pad -----------------------------------------------------------------
@pytest.mark.parametrize("shape,target,expected", [
    ((B, 1, 64), [1, 4, 1], (B, 4, 64)), ((1,), [3, 2], (3, 2)), ((S, 1), [2, 1, 5], (2, S, 5)),
    ((3, 1), [1], (3, 1)),
])
def test_expand(shape, target, expected):
    assert shape_of(Op.Expand, [In(shape), i64(*target)]) == expected


def test_expand_runtime_shape():
    assert shape_of(Op.Expand, [In((B, 1)), In((3,), DType.INT64)]) is None


@pytest.mark.parametrize("shape,reps,expected", [
    ((B, 64), [1, 2], (B, 128)), ((B, 64), [2, 1], (None, 64)), ((2, 3), [0, 4], (0, 12)),
])
def test_tile(shape, reps, expected):
    assert shape_of(Op.Tile, [In(shape), i64(*reps)]) == expected


@pytest.mark.parametrize("shape,pads,axes,expected", [
    ((B, 3, 4), [0, 0, 1, 0, 0, 2], None, (B, 3, 7)),
    ((B, 3, 4), [1, 2], [-1], (B, 3, 7)),
    ((B, 3, 4), [0, -1, 0, -1], [0, 1], (B, 1, 4)),
    ((B, 3, 4), [1, 1], [0], (None, 3, 4)),
])
def test_pad(shape, pads, axes, expected):
    inputs = [In(shape), i64(*pads), None, None if axes is None else i64(*axes)]
    assert shape_of(Op.Pad, inputs) == expected


def test_pad_runtime_pads():
    assert shape_of(Op.Pad, [In((B, 3)), In((4,), DType.INT64)]) == (None, None)


# ---- Shape / Size / ConstantOfShape / Range / OneHot / NonZero ---------------------------------
@pytest.mark.parametrize("start,end,n", [(0, None, 3), (1, None, 2), (-1, None, 1), (0, -10, 0), (-10, 10, 3)])
def test_shape(start, end, n):
    assert infer(Op.Shape, [In((B, S, 64))], A.ShapeAttrs(end=end, start=start)) == [(DType.INT64, (n,))]


def test_size():
    assert infer(Op.Size, [In((B, S))]) == [(DType.INT64, ())]


@pytest.mark.parametrize("value,dtype", [
    (None, DType.FLOAT), (np.array([3], np.int64), DType.INT64), (np.array([True]), DType.BOOL),
    (np.array([0.5], np.float16), DType.FLOAT16),
])
def test_constant_of_shape(value, dtype):
    attrs = A.ConstantOfShapeAttrs(None if value is None else Tensor.from_numpy(value))
    assert infer(Op.ConstantOfShape, [i64(2, 3)], attrs) == [(dtype, (2, 3))]
    assert infer(Op.ConstantOfShape, [i64()], attrs) == [(dtype, ())]
    assert infer(Op.ConstantOfShape, [In((3,), DType.INT64)], attrs) == [(dtype, (None,) * 3)]


@pytest.mark.parametrize("dtype,start,limit,delta,n", [
    (np.int64, 0, 10, 3, 4), (np.int64, 10, 0, -3, 4), (np.int64, 0, -5, 1, 0), (np.int32, -4, 7, 2, 6),
    (np.float32, 0, 2, 0.25, 8), (np.float32, 1, 2, 0.1, 10), (np.float64, 3, 1, 1, 0),
    (np.int64, 2**60, 2**60 + 7, 2, 4),
])
def test_range(dtype, start, limit, delta, n):
    inputs = [np.array(v, dtype) for v in (start, limit, delta)]
    assert infer(Op.Range, inputs) == [(DType.from_numpy(np.dtype(dtype)), (n,))]


def test_range_runtime_bounds():
    assert shape_of(Op.Range, [np.array(0, np.int64), In((), DType.INT64), np.array(1, np.int64)]) == (None,)


@pytest.mark.parametrize("axis,expected", [(-1, (B, S, 10)), (0, (10, B, S)), (1, (B, 10, S)), (-3, (10, B, S))])
def test_one_hot(axis, expected):
    inputs = [In((B, S), DType.INT64), np.array(10, np.int64), np.array([0.0, 1.0], np.float32)]
    assert infer(Op.OneHot, inputs, A.OneHotAttrs(axis)) == [(DType.FLOAT, expected)]


def test_one_hot_runtime_depth():
    inputs = [In((B,), DType.INT64), In((), DType.INT64), In((2,), DType.INT64)]
    assert infer(Op.OneHot, inputs) == [(DType.INT64, (B, None))]


@pytest.mark.parametrize("shape,expected", [((B, 4), (2, None)), ((), (1, None)), (None, None)])
def test_nonzero(shape, expected):
    assert infer(Op.NonZero, [In(shape)]) == [(DType.INT64, expected)]


# ---- malformed nodes ---------------------------------------------------------------------
@pytest.mark.parametrize("op,inputs,attrs", [
    (Op.Unsqueeze, [In((B, S)), i64(3)], None),
    (Op.Squeeze, [In((B, 1)), i64(2)], None),
    (Op.Flatten, [In((B, S))], A.FlattenAttrs(3)),
    (Op.Slice, [In((4,)), i64(0), i64(4), i64(0), i64(0)], None),
    (Op.Reshape, [In((2, 3)), i64(4, -1)], None),
    (Op.Range, [np.array(0), np.array(5), np.array(0)], None),
])
def test_malformed_raises(op, inputs, attrs):
    with pytest.raises((ValueError, VerificationError)):
        infer(op, inputs, attrs)
