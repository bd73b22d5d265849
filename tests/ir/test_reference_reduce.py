"""The numpy references of reductions, softmax, scans and selections, against onnxruntime."""
import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.ir.interpreter import InterpreterError, run

from .harness import check_op, one_node_model, run_ir, run_ort

FP32 = dict(atol=1e-5, rtol=1e-5)


def uniform(shape, lo=-3.0, hi=3.0, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


def ints(shape, lo=-9, hi=10, dtype=np.int64, seed=0):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(dtype)


def run_widened(op, inputs, attrs, n_outputs=1):
    """Run one node in the interpreter's float64 mode; inputs after the first are constants."""
    g = Graph("wide")
    values = [g.add_input("x", DType.from_numpy(inputs[0].dtype), inputs[0].shape)]
    values += [g.add_constant(a, f"c{i}") for i, a in enumerate(inputs[1:])]
    node = g.make_node(op, values, attrs, num_outputs=n_outputs)
    g.outputs.extend(node.outputs)
    out = run(g, {"x": inputs[0]}, float_dtype=np.float64)
    return [out[v.name] for v in node.outputs]


REDUCE_OPS = [Op.ReduceSum, Op.ReduceMean, Op.ReduceMax, Op.ReduceMin, Op.ReduceProd, Op.ReduceL1,
              Op.ReduceL2, Op.ReduceSumSquare, Op.ReduceLogSumExp, Op.ReduceLogSum]


def reduce_input(op, shape=(2, 3, 4), dtype=np.float32, seed=0):
    if dtype != np.float32:
        # positive for LogSum: the log of a negative sum is NaN, whose cast to int is undefined
        return ints(shape, 1 if op is Op.ReduceLogSum else -5, 6, dtype, seed)
    if op is Op.ReduceLogSum:
        return uniform(shape, 0.1, 2, seed=seed)
    if op is Op.ReduceProd:
        # magnitudes near 1 keep the product of 24 factors in a well-conditioned range
        sign = np.where(uniform(shape, seed=seed + 1) < 0, -1, 1).astype(np.float32)
        return uniform(shape, 0.5, 1.5, seed=seed) * sign
    return uniform(shape, seed=seed)


# axes: None means the input is omitted; a list becomes a constant int64 input
AXES = [[1], [0, 2], [-1], [2, 0, 1], None, []]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes", AXES, ids=str)
@pytest.mark.parametrize("keepdims", [1, 0])
def test_reduce(op, axes, keepdims):
    attrs = op.attrs_type(keepdims=keepdims)
    inputs = [reduce_input(op)] + ([] if axes is None else [np.array(axes, np.int64)])
    check_op(op, inputs, attrs, const_inputs={1}, **FP32)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("axes", [None, []], ids=["absent", "empty"])
def test_reduce_noop_with_empty_axes(op, axes):
    # each element is reduced on its own: ReduceSumSquare squares, ReduceL1 takes |x| ...
    attrs = op.attrs_type(noop_with_empty_axes=1)
    x = reduce_input(op)
    inputs = [x] + ([] if axes is None else [np.array(axes, np.int64)])
    out = check_op(op, inputs, attrs, const_inputs={1}, **FP32)[0]
    assert out.shape == x.shape


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_reduce_noop_ignored_when_axes_given(op):
    attrs = op.attrs_type(noop_with_empty_axes=1, keepdims=0)
    check_op(op, [reduce_input(op), np.array([1], np.int64)], attrs, const_inputs={1}, **FP32)


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
@pytest.mark.parametrize("keepdims", [1, 0])
def test_reduce_int(op, dtype, keepdims):
    # integer results of the float-valued reductions (Mean, L2, LogSum*) truncate toward zero
    attrs = op.attrs_type(keepdims=keepdims)
    check_op(op, [reduce_input(op, (3, 5), dtype), np.array([1], np.int64)], attrs, const_inputs={1})


def test_reduce_mean_int_truncates_toward_zero():
    x = np.array([[7, -7, 5], [3, 2, -9]], np.int64)
    out = check_op(Op.ReduceMean, [x, np.array([1], np.int64)], A.ReduceMeanAttrs(keepdims=0),
                   const_inputs={1})[0]
    np.testing.assert_array_equal(out, [1, -1])


@pytest.mark.parametrize("op", [Op.ReduceMax, Op.ReduceMin])
def test_reduce_bool(op):
    x = np.array([[True, False, False], [True, True, True], [False, False, False]])
    check_op(op, [x, np.array([1], np.int64)], const_inputs={1})


@pytest.mark.parametrize("op", [Op.ReduceSum, Op.ReduceProd, Op.ReduceMax, Op.ReduceMin,
                                Op.ReduceLogSumExp, Op.ReduceL1, Op.ReduceL2, Op.ReduceSumSquare])
def test_reduce_over_empty_axis(op):
    # the identities: 0, 1, -inf (max), +inf (min), log(0) = -inf
    check_op(op, [np.zeros((2, 0, 3), np.float32), np.array([1], np.int64)], const_inputs={1})


def test_reduce_log_sum_exp_large_and_infinite():
    x = np.array([[100.0, 100.0, -100.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]], np.float32)
    check_op(Op.ReduceLogSumExp, [x, np.array([1], np.int64)], const_inputs={1}, **FP32)


def test_reduce_axes_as_graph_input():
    # axes computed at run time rather than constant; shape inference cannot know the rank
    x = uniform((2, 3, 4))
    out = run_ir(Op.ReduceSum, [x, np.array([0, 2], np.int64)], A.ReduceSumAttrs(keepdims=0))[0]
    np.testing.assert_allclose(out, x.sum(axis=(0, 2)), **FP32)


def test_reduce_axis_out_of_range():
    with pytest.raises(InterpreterError, match="out of range"):
        run_ir(Op.ReduceSum, [uniform((2, 3)), np.array([2], np.int64)], A.ReduceSumAttrs())


# ---- ArgMax / ArgMin -------------------------------------------------------------
@pytest.mark.parametrize("op", [Op.ArgMax, Op.ArgMin])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [1, 0])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_reduce(op, axis, keepdims, last):
    # small integers make ties, where select_last_index matters
    x = ints((3, 4, 5), -2, 3).astype(np.float32)
    attrs = op.attrs_type(axis=axis, keepdims=keepdims, select_last_index=last)
    out = check_op(op, [x], attrs)[0]
    assert out.dtype == np.int64


@pytest.mark.parametrize("op", [Op.ArgMax, Op.ArgMin])
@pytest.mark.parametrize("last", [0, 1])
def test_arg_reduce_int(op, last):
    check_op(op, [ints((4, 6), -2, 3)], op.attrs_type(axis=1, select_last_index=last))


def test_arg_reduce_ties_pick_first_or_last():
    x = np.array([[1, 3, 3, 0, 3]], np.float32)
    first = check_op(Op.ArgMax, [x], A.ArgMaxAttrs(axis=1, keepdims=0))[0]
    last = check_op(Op.ArgMax, [x], A.ArgMaxAttrs(axis=1, keepdims=0, select_last_index=1))[0]
    assert first.tolist() == [1] and last.tolist() == [4]


# ---- Softmax / LogSoftmax --------------------------------------------------------
@pytest.mark.parametrize("op", [Op.Softmax, Op.LogSoftmax])
@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
def test_softmax(op, axis):
    check_op(op, [uniform((2, 3, 5))], op.attrs_type(axis=axis), **FP32)


@pytest.mark.parametrize("op", [Op.Softmax, Op.LogSoftmax])
def test_softmax_large_logits(op):
    # exp(300) overflows float32: the max must be subtracted first
    x = uniform((3, 7), -300, 300)
    x[0, :] = -1e30
    out = check_op(op, [x], **FP32)[0]
    assert np.all(np.isfinite(out) | (out == -np.inf))


def test_softmax_masked_positions():
    x = uniform((2, 4))
    x[:, 1] = -np.inf
    out = check_op(Op.Softmax, [x], **FP32)[0]
    np.testing.assert_array_equal(out[:, 1], 0)


@pytest.mark.parametrize("op", [Op.Softmax, Op.LogSoftmax])
def test_softmax_float64(op):
    check_op(op, [uniform((3, 6), dtype=np.float64)], atol=1e-12, rtol=1e-12)


# ---- CumSum ----------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_cumsum(axis, exclusive, reverse, dtype):
    x = uniform((3, 4, 5)) if dtype == np.float32 else ints((3, 4, 5), dtype=dtype)
    check_op(Op.CumSum, [x, np.array(axis, np.int64)], A.CumSumAttrs(exclusive=exclusive, reverse=reverse),
             const_inputs={1}, **FP32)


@pytest.mark.parametrize("axis", [np.array(1, np.int32), np.array([1], np.int64), np.array([-1], np.int32)],
                         ids=["i32-scalar", "i64-vector", "i32-negative"])
def test_cumsum_axis_forms(axis):
    check_op(Op.CumSum, [ints((2, 6)), axis], A.CumSumAttrs(exclusive=1), const_inputs={1})


def test_cumsum_exclusive_reverse_values():
    x = np.array([1, 2, 3, 4], np.int64)
    out = check_op(Op.CumSum, [x, np.array(0, np.int64)], A.CumSumAttrs(exclusive=1, reverse=1),
                   const_inputs={1})[0]
    np.testing.assert_array_equal(out, [9, 7, 4, 0])


def test_cumsum_axis_as_graph_input():
    check_op(Op.CumSum, [uniform((3, 4)), np.array(1, np.int64)], A.CumSumAttrs(reverse=1), **FP32)


# ---- TopK ------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("largest", [1, 0])
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_topk(axis, largest, k, dtype):
    x = uniform((4, 5, 6)) if dtype == np.float32 else ints((4, 5, 6), -100, 100)
    values, indices = check_op(Op.TopK, [x, np.array([k], np.int64)], A.TopKAttrs(axis=axis, largest=largest),
                               n_outputs=2, const_inputs={1})
    assert indices.dtype == np.int64 and values.dtype == x.dtype


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_ties_lower_index_first(largest):
    x = np.array([[3, 1, 4, 1, 5, 5, 2, 6, 5, 3]], np.float32)
    _, indices = check_op(Op.TopK, [x, np.array([5], np.int64)], A.TopKAttrs(largest=largest),
                          n_outputs=2, const_inputs={1})
    assert indices.tolist() == ([[7, 4, 5, 8, 2]] if largest else [[1, 3, 6, 0, 9]])


def test_topk_full_length_with_many_ties():
    x = ints((3, 12), 0, 3).astype(np.float32)
    for largest in (0, 1):
        check_op(Op.TopK, [x, np.array([12], np.int64)], A.TopKAttrs(largest=largest), n_outputs=2,
                 const_inputs={1})


@pytest.mark.parametrize("largest", [1, 0])
def test_topk_unsorted(largest):
    # with sorted=0 the order is unspecified (onnxruntime returns heap order), so compare
    # the selected sets: sort both outputs by index
    x = uniform((3, 10))
    k = np.array([4], np.int64)
    attrs = A.TopKAttrs(sorted=0, largest=largest)
    ours = run_ir(Op.TopK, [x, k], attrs, n_outputs=2, const_inputs={1})
    theirs = run_ort(one_node_model(Op.TopK, [x, k], dict(attrs.items()), 2, {1}), {"in0": x})
    for values, indices in (ours, theirs):
        order = np.argsort(indices, axis=-1)
        values[:] = np.take_along_axis(values, order, -1)
        indices[:] = np.take_along_axis(indices, order, -1)
    np.testing.assert_array_equal(ours[1], theirs[1])
    np.testing.assert_array_equal(ours[0], theirs[0])


def test_topk_k_too_large():
    with pytest.raises(InterpreterError, match="out of range"):
        run_ir(Op.TopK, [uniform((2, 3)), np.array([4], np.int64)], A.TopKAttrs(), n_outputs=2)


# ---- Trilu -----------------------------------------------------------------------
@pytest.mark.parametrize("upper", [1, 0])
@pytest.mark.parametrize("k", [None, 0, 1, -1, 6, -6])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 5, 3)], ids=str)
def test_trilu(upper, k, shape):
    inputs = [uniform(shape)] + ([] if k is None else [np.array(k, np.int64)])
    check_op(Op.Trilu, inputs, A.TriluAttrs(upper=upper), const_inputs={1})


@pytest.mark.parametrize("dtype", [np.int64, np.bool_])
@pytest.mark.parametrize("upper", [1, 0])
def test_trilu_other_dtypes(dtype, upper):
    x = ints((3, 4), 1, 9).astype(dtype)
    check_op(Op.Trilu, [x, np.array(1, np.int64)], A.TriluAttrs(upper=upper), const_inputs={1})


def test_trilu_k_as_graph_input():
    check_op(Op.Trilu, [uniform((4, 4)), np.array(-1, np.int64)], A.TriluAttrs(upper=0))


# float32 graphs run in float64: no op may narrow its result back to float32
WIDE_CASES = [(op, [np.array([1], np.int64)], op.attrs_type()) for op in REDUCE_OPS] + [
    (Op.Softmax, [], A.SoftmaxAttrs()), (Op.LogSoftmax, [], A.LogSoftmaxAttrs()),
    (Op.CumSum, [np.array(1, np.int64)], A.CumSumAttrs(exclusive=1)),
    (Op.TopK, [np.array([2], np.int64)], A.TopKAttrs()), (Op.Trilu, [], A.TriluAttrs()),
]


@pytest.mark.parametrize("op, extra, attrs", WIDE_CASES, ids=[c[0].value for c in WIDE_CASES])
def test_float64_mode_keeps_float64(op, extra, attrs):
    x = uniform((3, 4), 0.1, 2)
    n = 2 if op is Op.TopK else 1
    wide = run_widened(op, [x] + extra, attrs, n)[0]
    assert wide.dtype == np.float64
    narrow = run_ir(op, [x] + extra, attrs, n, const_inputs=set(range(1, 1 + len(extra))))[0]
    np.testing.assert_allclose(wide, narrow, atol=1e-6, rtol=1e-6)
