"""Reference indexing ops against onnxruntime: gathers, scatters, Slice, NonZero, OneHot."""
import numpy as np
import pytest

from fuseformer.ir import Op
from fuseformer.ir import attrs as A

from .harness import run_ir
from .test_reference_shape_ops import DTYPES, check_exact, data, i64

INT64_MAX, INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min


# ---- Gather / GatherElements / GatherND ----------------------------------------------
@pytest.mark.parametrize("shape,axis,indices", [
    ((5, 3), 0, [0, 4, 2]), ((5, 3), 1, [2, 0]), ((5, 3), -1, [[1, 2], [0, 0]]), ((5, 3), 0, 3),
    ((5, 3), 0, [-1, -5, 0]), ((2, 3, 4), 1, [[-3], [2]]), ((2, 3, 4), -2, []), ((2, 3, 4), 2, -1),
    ((0, 3), 1, [1]),
])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("idx_dtype", [np.int64, np.int32])
def test_gather(shape, axis, indices, dtype, idx_dtype):
    idx = np.array(indices, idx_dtype)
    check_exact(Op.Gather, [data(shape, dtype), idx], A.GatherAttrs(axis), const_inputs={1})


def test_gather_runtime_indices():
    check_exact(Op.Gather, [data((5, 3)), np.array([[4, -1]], np.int64)], A.GatherAttrs(0))


def test_gather_out_of_range():
    with pytest.raises(Exception, match="out of bounds"):
        run_ir(Op.Gather, [data((5, 3)), i64(-6)])


@pytest.mark.parametrize("shape,axis,indices", [
    ((3, 3), 0, [[1, 2, 0], [2, 0, 0]]), ((3, 3), 1, [[0, 0], [1, 0], [2, 2]]),
    ((3, 3), -1, [[-1], [-3], [1]]), ((2, 3, 4), 1, np.zeros((2, 5, 4), np.int64)),
    ((2, 3, 4), -3, [[[1, 0, 1, -1]]]),  # smaller than data on the other axes
    ((3, 3), 0, np.zeros((0, 3), np.int64)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gather_elements(shape, axis, indices, dtype):
    check_exact(Op.GatherElements, [data(shape, dtype), np.array(indices, np.int64)],
                A.GatherElementsAttrs(axis), const_inputs={1})


@pytest.mark.parametrize("shape,indices,batch_dims", [
    ((2, 2), [[0, 0], [1, 1]], 0), ((2, 2), [[1], [0]], 0), ((2, 2, 2), [[0, 1], [1, 0]], 0),
    ((2, 2, 2), [[[0, 1]], [[1, 0]]], 0), ((2, 2, 2), [[1], [0]], 1), ((2, 2, 2), [[0, 1], [1, 0]], 1),
    ((3, 4, 5), [[-1, -4], [0, 3]], 0), ((2, 3, 4), [[[2], [-1]], [[0], [1]]], 1),
    ((2, 3, 4), np.zeros((2, 3, 1), np.int64), 2), ((3, 4), np.zeros((0, 1), np.int64), 0),
    ((2, 3), np.zeros((4, 0), np.int64), 0),
])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_gather_nd(shape, indices, batch_dims, dtype):
    check_exact(Op.GatherND, [data(shape, dtype), np.array(indices, np.int64)],
                A.GatherNDAttrs(batch_dims), const_inputs={1})


# ---- ScatterND / ScatterElements --------------------------------------------------------
REDUCTIONS = ["none", "add", "mul", "max", "min"]


@pytest.mark.parametrize("shape,indices,upd_shape", [
    ((4, 3), [[1], [3]], (2, 3)), ((4, 3), [[1, 2], [-1, 0], [0, -3]], (3,)),
    ((2, 3, 4), [[[0, 1]], [[1, 2]]], (2, 1, 4)), ((4, 3), [[2], [2], [0]], (3, 3)),  # duplicates
    ((4,), np.zeros((0, 1), np.int64), (0,)),
])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_scatter_nd(shape, indices, upd_shape, reduction, dtype):
    idx = np.array(indices, np.int64)
    flat = [tuple(r) for r in idx.reshape(-1, idx.shape[-1])]
    if reduction == "none" and len(set(flat)) != len(flat):
        pytest.skip("duplicate indices without a reduction leave the order unspecified")
    check_exact(Op.ScatterND, [data(shape, dtype), idx, data(upd_shape, dtype, seed=1)],
                A.ScatterNDAttrs(reduction), const_inputs={1})


def test_scatter_nd_runtime_indices():
    check_exact(Op.ScatterND, [data((4, 3)), i64([0], [2]), data((2, 3), seed=1)], A.ScatterNDAttrs("add"))


@pytest.mark.parametrize("shape,axis,indices", [
    ((3, 3), 0, [[1, 0, 2], [0, 2, 1]]), ((3, 3), 1, [[1], [0], [-1]]), ((3, 3), -1, [[2, 0], [1, 1]]),
    ((2, 3, 4), 1, [[[0, 1, 2, -3]]]), ((3, 3), 0, [[1, 1, 1], [1, 1, 1]]),  # duplicates
    ((3, 3), 1, np.zeros((3, 0), np.int64)),
])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_scatter_elements(shape, axis, indices, reduction, dtype):
    idx = np.array(indices, np.int64)
    wrapped = np.where(idx < 0, idx + shape[axis], idx)
    grid = np.indices(idx.shape).reshape(len(shape), -1)
    grid[axis] = wrapped.reshape(-1)
    if reduction == "none" and len(set(map(tuple, grid.T))) != grid.shape[1]:
        pytest.skip("duplicate indices without a reduction leave the order unspecified")
    check_exact(Op.ScatterElements, [data(shape, dtype), idx, data(idx.shape, dtype, seed=1)],
                A.ScatterElementsAttrs(axis, reduction), const_inputs={1})


def test_scatter_does_not_mutate_its_input():
    x = data((3,))
    before = x.copy()
    run_ir(Op.ScatterElements, [x, i64(0), data((1,))])
    run_ir(Op.ScatterND, [x, i64([1]), data((1,))])
    np.testing.assert_array_equal(x, before)


# ---- Slice -----------------------------------------------------------------------------
SLICES = [
    # (shape, starts, ends, axes, steps)
    ((10,), [1], [3], None, None),
    ((10,), [-3], [-1], None, None),
    ((10,), [-100], [100], [0], [1]),               # clamp to [0, dim]
    ((10,), [100], [200], [0], [1]),                # start past the end: empty
    ((10,), [5], [2], None, None),                  # start > end: empty
    ((10,), [0], [INT64_MAX], [0], [1]),
    ((10,), [INT64_MIN], [INT64_MAX], [0], [3]),
    ((10,), [INT64_MAX], [INT64_MIN], [0], [-1]),   # full reverse with sentinels
    ((10,), [-1], [INT64_MIN], [0], [-1]),
    ((10,), [-10], [-20], [0], [-1]),               # start clamps to 0, not -1 as in Python: [x0]
    ((10,), [-20], [-30], [0], [-1]),
    ((10,), [100], [-20], [0], [-1]),               # start clamps to dim - 1
    ((10,), [8], [1], [0], [-2]),
    ((10,), [7], [-1], [0], [-3]),                  # end -1 is dim - 1 here, so empty
    ((10,), [9], [0], [0], [-4]),
    ((10,), [1], [9], [0], [4]),
    ((4, 6), [1, 0], [3, 6], [0, 1], [1, 2]),
    ((4, 6), [-1, 5], [-5, 0], [-2, -1], [-1, -2]),
    ((4, 6), [2], [4], [-1], None),
    ((2, 3, 4), [1, 1], [2, 3], [2, 0], None),      # axes out of order
    ((2, 3, 4), [0], [0], [1], [1]),                 # empty middle axis
    ((0, 3), [0], [5], [0], [1]),
    ((0, 3), [-1], [INT64_MIN], [0], [-1]),
    ((3, 0), [0, 0], [3, 1], None, [-1, 1]),
]


@pytest.mark.parametrize("shape,starts,ends,axes,steps", SLICES)
@pytest.mark.parametrize("const", [True, False])
def test_slice(shape, starts, ends, axes, steps, const):
    inputs = [data(shape), i64(*starts), i64(*ends),
              None if axes is None else i64(*axes), None if steps is None else i64(*steps)]
    while inputs[-1] is None:
        inputs.pop()
    check_exact(Op.Slice, inputs, const_inputs={1, 2, 3, 4} if const else frozenset())


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float64, np.int32])
def test_slice_dtypes(dtype):
    check_exact(Op.Slice, [data((3, 5), dtype), i64(4, 0), i64(0, 3), i64(1, 0), i64(-2, 1)],
                const_inputs={1, 2, 3, 4})


def test_slice_int32_bounds():
    inputs = [data((6,)), np.array([-2], np.int32), np.array([-7], np.int32), None, np.array([-1], np.int32)]
    check_exact(Op.Slice, inputs[:3], const_inputs={1, 2})
    check_exact(Op.Slice, inputs, const_inputs={1, 2})


def test_slice_rejects_zero_step():
    with pytest.raises(Exception, match="step is 0"):
        run_ir(Op.Slice, [data((4,)), i64(0), i64(4), i64(0), i64(0)])


# ---- NonZero / OneHot -------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(6,), (3, 4), (2, 3, 2), (0, 3), (), (1,)])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.int32])
def test_nonzero(shape, dtype):
    x = data(shape, dtype)
    if dtype != np.bool_:
        x = np.where(np.abs(x) > 0.5, x, 0).astype(dtype)
    check_exact(Op.NonZero, [x])


@pytest.mark.parametrize("value", [0, 3])
def test_nonzero_scalar(value):
    out, = check_exact(Op.NonZero, [np.array(value, np.int64)])
    assert out.shape == (1, int(value != 0))


def test_nonzero_all_zero():
    check_exact(Op.NonZero, [np.zeros((2, 3), np.float32)])


# onnxruntime registers only these (indices, depth, values) type triples
ONEHOT_TYPES = [
    (np.int64, np.int64, np.int64), (np.int64, np.int64, np.float32), (np.int64, np.float32, np.float32),
    (np.int64, np.float32, np.int32), (np.int32, np.float32, np.float32), (np.float32, np.float32, np.float32),
    (np.float32, np.int64, np.int64),
]


@pytest.mark.parametrize("types", ONEHOT_TYPES)
@pytest.mark.parametrize("axis", [-1, 0, 1, -2])
def test_one_hot(types, axis):
    it, dt, vt = types
    indices = np.array([[0, -1, 3], [5, -4, 2]], it)  # 3, 5 and -4 are out of range for depth 4: all off
    inputs = [indices, np.array(4, dt), np.array([-2, 9], vt)]
    check_exact(Op.OneHot, inputs, A.OneHotAttrs(axis), const_inputs={1})


@pytest.mark.parametrize("shape", [(5,), (0,), (2, 0), (2, 1, 3)])
def test_one_hot_shapes(shape):
    indices = np.asarray(np.arange(int(np.prod(shape))).reshape(shape) % 3, np.int64)
    check_exact(Op.OneHot, [indices, np.array([3], np.int64), np.array([0, 1], np.float32)],
                A.OneHotAttrs(-1), const_inputs={1})


def test_one_hot_runtime_depth():
    check_exact(Op.OneHot, [i64(1, -1, 0), np.array(2, np.int64), np.array([0, 1], np.int64)])


def test_one_hot_float_indices_truncate():
    # onnxruntime has no float-index kernel with these types; truncation toward 0 is the spec's cast
    out, = run_ir(Op.OneHot, [np.array([1.7, -1.2, -0.5], np.float32), np.array(3, np.int64),
                              np.array([0, 1], np.int64)], const_inputs={1})
    assert out.tolist() == [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
