"""Reference shape ops against onnxruntime: data movement must match bit for bit."""
import numpy as np
import pytest

from fuseformer.ir import DType, Op, Tensor
from fuseformer.ir import attrs as A

from .harness import check_op, one_node_model, run_ir, run_ort


def check_exact(op, inputs, attrs=None, *, n_outputs=1, const_inputs=frozenset(), opset=21):
    """check_op with bitwise equality: assert_allclose goes through float64, which rounds
    int64 above 2**53 and equates -0.0 with 0.0."""
    attrs = attrs if attrs is not None else op.attrs_type()
    ours = run_ir(op, inputs, attrs, n_outputs, const_inputs)
    model = one_node_model(op, inputs, dict(attrs.items()), n_outputs, const_inputs, opset)
    feeds = {f"in{i}": a for i, a in enumerate(inputs) if a is not None and i not in const_inputs}
    theirs = run_ort(model, feeds)
    assert len(ours) == len(theirs)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype, f"output {k}: dtype {a.dtype} vs onnxruntime {b.dtype}"
        assert a.shape == b.shape, f"output {k}: shape {a.shape} vs onnxruntime {b.shape}"
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), \
            f"output {k} of {op.value}: {a} vs onnxruntime {b}"
    return ours


def data(shape, dtype=np.float32, seed=0):
    """Distinct values per element, so a misplaced element shows; seeded per call so that
    a test's data does not depend on which tests ran before it (pytest -n)."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return np.asarray(rng.random(shape) > 0.5)
    if dtype.kind == "f":
        return np.asarray(rng.standard_normal(shape), dtype)
    return np.asarray(np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) * 7 - 5 + 3 * seed, dtype)


def i64(*values):
    return np.array(values, dtype=np.int64)


DTYPES = [np.float32, np.int64, np.bool_]


# ---- Reshape / Flatten / Transpose -----------------------------------------------
@pytest.mark.parametrize("shape,target,allowzero", [
    ((2, 3, 4), [0, -1], 0),
    ((2, 3, 4), [4, 0, 2], 0),
    ((2, 3, 4), [-1], 0),
    ((2, 3, 4), [2, -1, 2], 0),
    ((2, 3, 4), [6, 4], 1),
    ((1,), [], 0),
    ((), [1, 1], 0),
    ((3, 0), [0, 0, 1], 0),
    ((2, 0, 4), [0, 4, 0], 1),
    ((2, 0, 4), [0, 5], 1),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape(shape, target, allowzero, dtype):
    check_exact(Op.Reshape, [data(shape, dtype), i64(*target)], A.ReshapeAttrs(allowzero),
                const_inputs={1})


def test_reshape_runtime_target():
    out, = check_exact(Op.Reshape, [data((2, 3, 4)), i64(0, 0, 2, -1)])
    assert out.shape == (2, 3, 2, 2)


def test_reshape_rejects_two_inferred_dims():
    with pytest.raises(Exception, match="more than one -1"):
        run_ir(Op.Reshape, [data((2, 3)), i64(-1, -1)])


@pytest.mark.parametrize("axis", [0, 1, 2, 3, -1, -3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_flatten(axis, dtype):
    check_exact(Op.Flatten, [data((2, 3, 4), dtype)], A.FlattenAttrs(axis))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_flatten_empty(axis):
    check_exact(Op.Flatten, [data((0, 3), np.float32)], A.FlattenAttrs(axis))


@pytest.mark.parametrize("shape,perm", [
    ((2, 3, 4), None), ((2, 3, 4), (1, 0, 2)), ((2, 3, 4), (2, 0, 1)), ((5,), None),
    ((2, 0, 3), (2, 1, 0)), ((), None), ((2, 3, 4, 5), (0, 2, 1, 3)),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose(shape, perm, dtype):
    check_exact(Op.Transpose, [data(shape, dtype)], A.TransposeAttrs(perm))


# ---- Squeeze / Unsqueeze -----------------------------------------------------------
@pytest.mark.parametrize("shape,axes", [
    ((1, 3, 1, 2), None), ((1, 3, 1, 2), [0]), ((1, 3, 1, 2), [-2]), ((1, 3, 1, 2), [0, 2]),
    ((1, 3, 1, 2), [2, -4]), ((1, 1), None), ((1, 0, 1), None), ((1, 0, 1), [-1]), ((3,), None),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_squeeze(shape, axes, dtype):
    inputs = [data(shape, dtype)] + ([] if axes is None else [i64(*axes)])
    check_exact(Op.Squeeze, inputs, const_inputs={1})


def test_squeeze_runtime_axes():
    check_exact(Op.Squeeze, [data((1, 3, 1)), i64(-1)])


def test_squeeze_empty_axes_is_a_noop():
    # The spec and ONNX shape inference squeeze nothing for an empty axes tensor;
    # onnxruntime squeezes every 1 (as if axes were absent). We follow the spec.
    x = data((1, 3, 1))
    out, = run_ir(Op.Squeeze, [x, np.zeros(0, np.int64)], const_inputs={1})
    np.testing.assert_array_equal(out, x)


def test_squeeze_rejects_non_unit_axis():
    with pytest.raises(Exception, match="cannot squeeze axis 1"):
        run_ir(Op.Squeeze, [data((1, 3)), i64(1)])


@pytest.mark.parametrize("shape,axes", [
    ((3, 4), [0]), ((3, 4), [-1]), ((3, 4), [0, 3]), ((3, 4), [1, -1]), ((3, 4), [3, 0]),
    ((), [0]), ((), [0, -1]), ((0, 2), [1]), ((3, 4), [-4, -2]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_unsqueeze(shape, axes, dtype):
    check_exact(Op.Unsqueeze, [data(shape, dtype), i64(*axes)], const_inputs={1})


def test_unsqueeze_runtime_axes():
    check_exact(Op.Unsqueeze, [data((3, 4), np.int64), i64(1, -1)])


# ---- Concat / Split ----------------------------------------------------------------
@pytest.mark.parametrize("shapes,axis", [
    ([(2, 3), (4, 3)], 0), ([(2, 3), (2, 1), (2, 5)], 1), ([(2, 3), (2, 1)], -1),
    ([(0, 3), (2, 3)], 0), ([(2, 0), (2, 0)], -1), ([(4,)], 0), ([(1, 2, 3), (1, 2, 3)], -3),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_concat(shapes, axis, dtype):
    check_exact(Op.Concat, [data(s, dtype) for s in shapes], A.ConcatAttrs(axis))


@pytest.mark.parametrize("shape,axis,sizes", [
    ((6, 4), 0, [2, 3, 1]), ((3, 4), -1, [0, 4]), ((3, 4), 1, [1, 1, 1, 1]), ((2, 5, 2), 1, [5]),
    ((2, 5, 2), -2, [2, 3]), ((0, 4), 0, [0, 0]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_sizes(shape, axis, sizes, dtype):
    check_exact(Op.Split, [data(shape, dtype), i64(*sizes)], A.SplitAttrs(axis),
                n_outputs=len(sizes), const_inputs={1})


def test_split_runtime_sizes():
    check_exact(Op.Split, [data((6, 2)), i64(4, 2)], n_outputs=2)


@pytest.mark.parametrize("dim,n,axis", [(6, 3, 0), (7, 3, 0), (8, 3, -1), (5, 5, 0), (9, 4, 1), (1, 1, 0)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_split_num_outputs(dim, n, axis, dtype):
    shape = [2, 2]
    shape[axis] = dim
    check_exact(Op.Split, [data(tuple(shape), dtype)], A.SplitAttrs(axis, num_outputs=n), n_outputs=n)


def test_split_num_outputs_too_many():
    with pytest.raises(Exception, match="cannot split dim 5 into 4"):
        run_ir(Op.Split, [data((5,))], A.SplitAttrs(0, num_outputs=4), n_outputs=4)


def test_split_by_output_count_even():
    # opset 13 semantics (no num_outputs, no sizes), which the importer keeps
    check_exact(Op.Split, [data((2, 6), np.int64)], A.SplitAttrs(1), n_outputs=3, opset=13)


def test_split_by_output_count_uneven():
    # onnxruntime rejects this at opset 18+; the IR splits as num_outputs would
    x = data((7,), np.int64)
    outs = run_ir(Op.Split, [x], A.SplitAttrs(0), n_outputs=3)
    assert [o.tolist() for o in outs] == [x[:3].tolist(), x[3:6].tolist(), x[6:].tolist()]


# ---- Expand / Tile -----------------------------------------------------------------
@pytest.mark.parametrize("shape,target", [
    ((3, 1), [2, 1, 4]), ((1,), [3]), ((2, 3), [1]), ((2, 3), [1, 1]), ((3, 1), [3, 0]),
    ((), [2, 2]), ((1, 4), [3, 1]), ((2, 1, 1), [2, 5, 1]), ((2, 3), []),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_expand(shape, target, dtype):
    check_exact(Op.Expand, [data(shape, dtype), i64(*target)], const_inputs={1})


def test_expand_runtime_shape():
    check_exact(Op.Expand, [data((3, 1)), i64(2, 3, 4)])


@pytest.mark.parametrize("shape,reps", [
    ((2, 3), [2, 1]), ((2, 3), [1, 3]), ((2, 3), [0, 2]), ((4,), [3]), ((2, 1, 2), [1, 2, 2]),
    ((0, 2), [3, 1]),
])
@pytest.mark.parametrize("dtype", DTYPES)
def test_tile(shape, reps, dtype):
    check_exact(Op.Tile, [data(shape, dtype), i64(*reps)], const_inputs={1})


def test_tile_runtime_repeats():
    check_exact(Op.Tile, [data((2, 3), np.int64), i64(2, 2)])


# ---- Pad ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape,pads,axes", [
    ((3, 4), [1, 2, 0, 1], None), ((3, 4), [0, 0, 0, 0], None), ((3, 4), [-1, 1, 1, -2], None),
    ((3, 4), [2, 1], [1]), ((3, 4), [2, 1], [-1]), ((2, 3, 4), [1, 0, 0, 2], [0, -1]),
    ((4,), [-1, -2], None), ((3, 4), [0, -1, 0, -2], None),
])
@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(shape, pads, axes, mode):
    inputs = [data(shape), i64(*pads), None] + ([] if axes is None else [i64(*axes)])
    check_exact(Op.Pad, inputs, A.PadAttrs(mode), const_inputs={1, 3})


@pytest.mark.parametrize("dtype,value", [
    (np.float32, 1.5), (np.float64, -2.25), (np.int64, 7), (np.int32, -3), (np.bool_, True),
])
def test_pad_constant_value(dtype, value):
    x = data((2, 3), dtype)
    check_exact(Op.Pad, [x, i64(1, 0, 2, 3), np.array(value, dtype)], const_inputs={1})


def test_pad_constant_value_with_axes():
    check_exact(Op.Pad, [data((2, 3)), i64(1, 2), np.array(9.0, np.float32), i64(0)],
                const_inputs={1, 3})


def test_pad_crop_everything_then_pad():
    check_exact(Op.Pad, [data((4,)), i64(-4, 2)], const_inputs={1})


def test_pad_runtime_pads():
    check_exact(Op.Pad, [data((2, 3)), i64(1, 0, 0, 2)], A.PadAttrs("reflect"))


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_bool_and_int(mode):
    check_exact(Op.Pad, [data((3, 3), np.int64), i64(1, 2, 2, 1)], A.PadAttrs(mode), const_inputs={1})
    check_exact(Op.Pad, [data((3, 3), np.bool_), i64(1, 2, 2, 1)], A.PadAttrs(mode), const_inputs={1})


# ---- Shape / Size / ConstantOfShape / Range ----------------------------------------------
@pytest.mark.parametrize("start,end", [
    (0, None), (1, None), (-1, None), (-10, 10), (2, 1), (0, -1), (3, None), (-2, -1), (1, 100),
])
def test_shape(start, end):
    out, = check_exact(Op.Shape, [data((2, 3, 4))], A.ShapeAttrs(end=end, start=start))
    assert out.tolist() == [2, 3, 4][start:end]


@pytest.mark.parametrize("shape", [(2, 3, 4), (), (0, 5)])
@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_and_size(shape, dtype):
    check_exact(Op.Shape, [data(shape, dtype)])
    check_exact(Op.Size, [data(shape, dtype)])


@pytest.mark.parametrize("value", [
    None, np.array([2.5], np.float32), np.array([-1.0], np.float64), np.array([7], np.int64),
    np.array([3], np.int32), np.array([True]), np.array([4], np.uint8),
])
@pytest.mark.parametrize("shape", [[2, 3], [], [0, 4], [1]])
def test_constant_of_shape(value, shape):
    attrs = A.ConstantOfShapeAttrs(None if value is None else Tensor.from_numpy(value))
    out, = check_exact(Op.ConstantOfShape, [i64(*shape)], attrs, const_inputs={0})
    assert out.dtype == (np.float32 if value is None else value.dtype)


def test_constant_of_shape_runtime_shape():
    check_exact(Op.ConstantOfShape, [i64(3, 2)], A.ConstantOfShapeAttrs(Tensor.from_numpy(np.array([5], np.int64))))


@pytest.mark.parametrize("dtype,start,limit,delta", [
    (np.int64, 0, 10, 3), (np.int64, 10, 0, -3), (np.int64, 5, 5, 1), (np.int64, 0, -5, 1),
    (np.int32, -4, 7, 2), (np.int16, 3, 11, 4), (np.float32, 0, 2, 0.25), (np.float32, 1, -1, -0.5),
    (np.float64, -1.5, 2.5, 0.5), (np.float32, 0, 1, 2), (np.float32, 3, 1, 1),
])
@pytest.mark.parametrize("const", [True, False])
def test_range(dtype, start, limit, delta, const):
    inputs = [np.array(v, dtype) for v in (start, limit, delta)]
    check_exact(Op.Range, inputs, const_inputs={0, 1, 2} if const else frozenset())


def test_range_inexact_delta():
    # onnxruntime adds delta repeatedly; the spec (and we) compute start + i * delta, so the
    # last bits may differ, never the length
    inputs = [np.array(v, np.float32) for v in (1, 2, 0.1)]
    ours, = check_op(Op.Range, inputs, const_inputs={0, 1, 2}, atol=1e-6, rtol=1e-6)
    np.testing.assert_array_equal(ours, np.float32(1) + np.arange(10, dtype=np.float32) * np.float32(0.1))


def test_range_int64_beyond_double():
    start, limit = 2**60, 2**60 + 7
    out, = run_ir(Op.Range, [np.array(start), np.array(limit), np.array(2)], const_inputs={0, 1, 2})
    assert out.tolist() == [start, start + 2, start + 4, start + 6]


def test_float64_run_keeps_integers():
    # float_dtype widens floats only; shape ops must not leak float32 into an int path
    from fuseformer.ir import Graph
    from fuseformer.ir.interpreter import run

    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (2, 3))
    shape = g.make_node(Op.Shape, [x]).output
    zeros = g.make_node(Op.ConstantOfShape, [shape]).output
    flat = g.make_node(Op.Reshape, [x, g.add_constant(i64(-1))]).output
    g.outputs += [shape, zeros, flat]
    res = run(g, {"x": data((2, 3))}, float_dtype=np.float64)
    assert res[shape.name].dtype == np.int64
    assert res[flat.name].dtype == np.float64
