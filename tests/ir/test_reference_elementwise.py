"""The numpy references of elementwise ops, checked node by node against onnxruntime."""
import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.ir.interpreter import InterpreterError, run

from .harness import check_op, run_ir

FP32 = dict(atol=1e-5, rtol=1e-5)
FP64 = dict(atol=1e-12, rtol=1e-12)


def uniform(shape, lo=-3.0, hi=3.0, dtype=np.float32, seed=0):
    return np.random.default_rng(seed).uniform(lo, hi, shape).astype(dtype)


def ints(shape, lo=-9, hi=10, dtype=np.int64, seed=0):
    return np.random.default_rng(seed).integers(lo, hi, shape).astype(dtype)


def nonzero_ints(shape, dtype=np.int64, seed=0):
    x = ints(shape, 1, 10, dtype, seed)
    return np.where(np.random.default_rng(seed + 1).random(shape) < 0.5, -x, x).astype(dtype)


def bools(shape, seed=0):
    return np.random.default_rng(seed).random(shape) < 0.5


def run_widened(op, inputs, attrs=None, n_outputs=1):
    """Run one node with the interpreter in float64 mode (float inputs declared float32)."""
    g = Graph("wide")
    values = [g.add_input(f"in{i}", DType.from_numpy(a.dtype), a.shape) for i, a in enumerate(inputs)]
    node = g.make_node(op, values, attrs if attrs is not None else op.attrs_type(), num_outputs=n_outputs)
    g.outputs.extend(node.outputs)
    out = run(g, {f"in{i}": a for i, a in enumerate(inputs)}, float_dtype=np.float64)
    return [out[v.name] for v in node.outputs]


# ---- unary float math ----------------------------------------------------------
# (op, low, high): each op sampled inside its domain
UNARY_FLOAT = [
    (Op.Abs, -3, 3), (Op.Neg, -3, 3), (Op.Exp, -5, 5), (Op.Log, 0.05, 5), (Op.Sqrt, 0, 5),
    (Op.Erf, -4, 4), (Op.Tanh, -5, 5), (Op.Sin, -4, 4), (Op.Cos, -4, 4), (Op.Tan, -1.4, 1.4),
    (Op.Asin, -0.99, 0.99), (Op.Acos, -0.99, 0.99), (Op.Atan, -5, 5), (Op.Sinh, -4, 4),
    (Op.Cosh, -4, 4), (Op.Floor, -3, 3), (Op.Ceil, -3, 3), (Op.Round, -3, 3), (Op.Sign, -3, 3),
    (Op.Identity, -3, 3),
]


@pytest.mark.parametrize("op, lo, hi", UNARY_FLOAT, ids=[c[0].value for c in UNARY_FLOAT])
def test_unary_float(op, lo, hi):
    check_op(op, [uniform((3, 4, 5), lo, hi)], **FP32)


def test_reciprocal_both_signs():
    x = uniform((4, 5), 0.2, 3) * np.where(bools((4, 5)), 1, -1).astype(np.float32)
    check_op(Op.Reciprocal, [x], **FP32)


def test_round_halves_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 2.4999, -0.0, 7.0], np.float32)
    out = check_op(Op.Round, [x])[0]
    np.testing.assert_array_equal(out, [-2, -2, -0, 0, 2, 2, 4, 2, 0, 7])


def test_sign_zero_and_nan():
    check_op(Op.Sign, [np.array([-0.0, 0.0, np.nan, -np.inf, 3.0], np.float32)])


def test_isnan():
    check_op(Op.IsNaN, [np.array([np.nan, 0.0, np.inf, -np.inf, 1.0], np.float32)])


@pytest.mark.parametrize("neg, pos", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_isinf(neg, pos):
    x = np.array([[np.nan, 0.0, np.inf], [-np.inf, 1.0, -2.0]], np.float32)
    check_op(Op.IsInf, [x], A.IsInfAttrs(detect_negative=neg, detect_positive=pos))


@pytest.mark.parametrize("op", [Op.Abs, Op.Neg, Op.Sign, Op.Relu, Op.Identity])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_unary_int(op, dtype):
    x = ints((3, 4), dtype=dtype)
    if op is Op.Relu and dtype == np.int64:
        # onnxruntime 1.32 implements Relu for float, int8 and int32 only: compare with numpy
        out = run_ir(op, [x], A.Attrs())[0]
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, np.maximum(x, 0))
        return
    check_op(op, [x])


def test_identity_bool():
    check_op(Op.Identity, [bools((2, 3))])


def test_not():
    check_op(Op.Not, [bools((2, 3, 4))])


# ---- activations -----------------------------------------------------------------
ACTIVATIONS = [
    (Op.Sigmoid, None), (Op.Relu, None), (Op.LeakyRelu, A.LeakyReluAttrs()),
    (Op.LeakyRelu, A.LeakyReluAttrs(alpha=0.3)), (Op.Elu, A.EluAttrs()),
    (Op.Elu, A.EluAttrs(alpha=0.5)), (Op.Selu, A.SeluAttrs()),
    (Op.Selu, A.SeluAttrs(alpha=1.2, gamma=0.9)), (Op.Celu, A.CeluAttrs()),
    (Op.Celu, A.CeluAttrs(alpha=2.0)), (Op.Gelu, A.GeluAttrs()),
    (Op.Gelu, A.GeluAttrs(approximate="tanh")), (Op.HardSigmoid, A.HardSigmoidAttrs()),
    (Op.HardSigmoid, A.HardSigmoidAttrs(alpha=0.3, beta=0.4)), (Op.HardSwish, None),
    (Op.Softplus, None), (Op.Softsign, None), (Op.Mish, None),
    (Op.ThresholdedRelu, A.ThresholdedReluAttrs()),
    (Op.ThresholdedRelu, A.ThresholdedReluAttrs(alpha=0.5)),
]


def _act_id(case):
    op, attrs = case
    changed = [] if attrs is None else attrs.non_default()
    return "-".join([op.value] + [f"{k}={v}" for k, v in changed])


@pytest.mark.parametrize("op, attrs", ACTIVATIONS, ids=[_act_id(c) for c in ACTIVATIONS])
def test_activation(op, attrs):
    check_op(op, [uniform((2, 3, 8), -5, 5)], attrs, **FP32)


@pytest.mark.parametrize("op", [Op.Sigmoid, Op.Softplus, Op.Mish, Op.Elu, Op.Gelu, Op.Tanh])
def test_activation_large_inputs_stay_finite(op):
    # exp(+-120) overflows float32: the stable forms must still agree with onnxruntime
    x = np.array([-120.0, -90.0, -30.0, 0.0, 30.0, 90.0, 120.0], np.float32)
    out = check_op(op, [x], **FP32)[0]
    assert np.all(np.isfinite(out))


# onnxruntime has double kernels for these only (not Erf, Gelu, Softplus, Elu, ...);
# test_float64_mode_keeps_float64 covers the dtype of the others.
@pytest.mark.parametrize("op", [Op.Sigmoid, Op.Tanh, Op.Exp, Op.Sin, Op.Reciprocal, Op.Abs])
def test_float64_inputs(op):
    check_op(op, [uniform((3, 4), 0.1, 4, np.float64)], **FP64)


# float32 graphs run in float64: no op may narrow to float32 (or widen beyond the input)
WIDE_CASES = [(op, None) for op, _, _ in UNARY_FLOAT if op is not Op.Identity] + [
    (op, attrs) for op, attrs in ACTIVATIONS] + [(Op.Reciprocal, None)]


@pytest.mark.parametrize("op, attrs", WIDE_CASES, ids=[_act_id(c) for c in WIDE_CASES])
def test_float64_mode_keeps_float64(op, attrs):
    x = uniform((3, 4), 0.1, 0.9)
    wide = run_widened(op, [x], attrs)[0]
    assert wide.dtype == np.float64
    np.testing.assert_allclose(wide, run_ir(op, [x], attrs if attrs is not None else op.attrs_type())[0],
                               atol=1e-6, rtol=1e-6)


def test_float64_mode_binary_and_variadic():
    a, b, c = uniform((2, 3), 0.1, 2, seed=1), uniform((3,), 0.1, 2, seed=2), uniform((2, 1), 0.1, 2)
    for op, inputs in [(Op.Pow, [a, b]), (Op.Div, [a, b]), (Op.Mean, [a, b, c]), (Op.PRelu, [a - 1, b])]:
        assert run_widened(op, inputs)[0].dtype == np.float64, op


# ---- broadcasting binary ops -------------------------------------------------------
SHAPES = [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((4,), (2, 1, 4)), ((2, 3), ())]


@pytest.mark.parametrize("op", [Op.Add, Op.Sub, Op.Mul, Op.Div, Op.Max, Op.Min])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_binary_float(op, shapes):
    a, b = uniform(shapes[0], seed=1), uniform(shapes[1], 0.5, 2, seed=2)
    check_op(op, [a, b], **FP32)


@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_pow_float(shapes):
    check_op(Op.Pow, [uniform(shapes[0], 0.1, 3, seed=1), uniform(shapes[1], -2, 2, seed=2)], **FP32)


@pytest.mark.parametrize("exp_dtype", [np.int64, np.int32, np.float64])
def test_pow_float_base_other_exponent_type(exp_dtype):
    # the output keeps the base's float32 whatever the exponent's type
    base = uniform((3, 4), -2, 2)
    exponent = np.array([0, 1, 2, 3], exp_dtype)
    out = check_op(Op.Pow, [base, exponent], **FP32)[0]
    assert out.dtype == np.float32


@pytest.mark.parametrize("exp_dtype", [np.int64, np.float32])
def test_pow_int_base(exp_dtype):
    # negative exponents truncate to 0 (2 ** -1); fractional ones truncate the float result
    if exp_dtype == np.int64:
        base = np.array([[2, 3, -2, 5], [1, 4, 7, -3]], np.int64)
        exponent = np.array([-1, 2, 3, 0], np.int64)
    else:  # a negative base would give NaN, whose cast to int is undefined
        base = np.array([[2, 3, 2, 5], [1, 4, 7, 3]], np.int64)
        exponent = np.array([0.5, 1.5, 2.0, 0.1], np.float32)
    check_op(Op.Pow, [base, exponent])


@pytest.mark.parametrize("op", [Op.Add, Op.Sub, Op.Mul, Op.Div, Op.Max, Op.Min])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_binary_int(op, dtype):
    check_op(op, [ints((2, 3, 4), -20, 21, dtype, seed=1), nonzero_ints((3, 1), dtype, seed=2)])


def test_int_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 6, -6, 0, 1], np.int64)
    b = np.array([2, 2, -2, -2, 3, 3, -5, -5], np.int64)
    out = check_op(Op.Div, [a, b])[0]
    np.testing.assert_array_equal(out, [3, -3, -3, 3, 2, -2, 0, 0])


@pytest.mark.parametrize("fmod", [0, 1])
@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_mod_int(fmod, dtype):
    a = ints((3, 4), -20, 21, dtype, seed=1)
    check_op(Op.Mod, [a, nonzero_ints((4,), dtype, seed=2)], A.ModAttrs(fmod=fmod))


def test_mod_signs():
    a = np.array([7, -7, 7, -7], np.int64)
    b = np.array([3, 3, -3, -3], np.int64)
    np.testing.assert_array_equal(check_op(Op.Mod, [a, b])[0], [1, 2, -2, -1])
    np.testing.assert_array_equal(check_op(Op.Mod, [a, b], A.ModAttrs(fmod=1))[0], [1, -1, 1, -1])


def test_mod_float_fmod():
    check_op(Op.Mod, [uniform((3, 4), -5, 5), uniform((4,), 0.5, 2)], A.ModAttrs(fmod=1), **FP32)


def test_mod_float_floor_mod():
    # Float fmod=0 is defined from opset 28 on (floor modulo); onnxruntime 1.32 rejects it
    # ("fmod attribute must be true for floating point types before opset 28"), so
    # compare with numpy, which has the same definition.
    a = np.array([-4.3, 7.2, 5.0, 4.3, -7.2, 8.0, -0.0, 3.0], np.float32)
    b = np.array([2.1, -3.4, 8.0, -2.1, 3.4, 5.0, 2.0, -np.inf], np.float32)
    out = run_ir(Op.Mod, [a, b], A.ModAttrs(fmod=0))[0]
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.mod(a, b))


@pytest.mark.parametrize("op", [Op.Sum, Op.Mean, Op.Max, Op.Min])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_variadic_float(op, n):
    shapes = [(2, 3, 4), (3, 1), (4,), (2, 1, 1)][:n]
    check_op(op, [uniform(s, seed=i) for i, s in enumerate(shapes)], **FP32)


@pytest.mark.parametrize("op", [Op.Max, Op.Min])  # Sum and Mean are float-only in ONNX
def test_variadic_int(op):
    check_op(op, [ints((2, 3), seed=1), ints((3,), seed=2), ints((2, 1), seed=3)])


@pytest.mark.parametrize("op", [Op.Max, Op.Min])
def test_max_min_propagate_nan(op):
    a = np.array([np.nan, 1, -np.inf, 2], np.float32)
    b = np.array([0, 0, 0, np.nan], np.float32)
    check_op(op, [a, b])


# ---- comparisons and logic ---------------------------------------------------------
COMPARISONS = [Op.Equal, Op.Less, Op.LessOrEqual, Op.Greater, Op.GreaterOrEqual]


@pytest.mark.parametrize("op", COMPARISONS)
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.int32])
def test_comparison(op, dtype):
    # small integers make ties, where the strict and non-strict forms differ
    a = ints((2, 3, 4), -2, 3, seed=1).astype(dtype)
    b = ints((3, 1), -2, 3, seed=2).astype(dtype)
    out = check_op(op, [a, b])[0]
    assert out.dtype == np.bool_


def test_equal_bool():
    check_op(Op.Equal, [bools((2, 3), seed=1), bools((3,), seed=2)])


@pytest.mark.parametrize("op", [Op.And, Op.Or, Op.Xor])
def test_logic(op):
    check_op(op, [bools((2, 3, 4), seed=1), bools((3, 1), seed=2)])


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_])
def test_where(dtype):
    cond = bools((2, 1, 4))
    x = ints((3, 4), seed=1).astype(dtype)
    y = ints((2, 3, 1), seed=2).astype(dtype)
    if dtype == np.bool_:
        # onnxruntime 1.32 has no bool Where kernel: compare with numpy
        out = run_ir(Op.Where, [cond, x, y], A.Attrs())[0]
        assert out.dtype == np.bool_ and out.shape == (2, 3, 4)
        np.testing.assert_array_equal(out, np.where(cond, x, y))
        return
    check_op(Op.Where, [cond, x, y])


# ---- Clip, PRelu, Dropout ----------------------------------------------------------
CLIP_BOUNDS = [(None, None), (-1.0, None), (None, 0.5), (-1.0, 0.5), (1.0, -1.0)]


@pytest.mark.parametrize("lo, hi", CLIP_BOUNDS, ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_clip(lo, hi, dtype):
    x = (uniform((3, 4), -3, 3) * (3 if dtype == np.int64 else 1)).astype(dtype)
    bound = lambda v: None if v is None else np.array(v * (3 if dtype == np.int64 else 1), dtype)
    inputs = [x, bound(lo), bound(hi)]
    while inputs[-1] is None:
        inputs.pop()
    check_op(Op.Clip, inputs)


@pytest.mark.parametrize("clip_const", [False, True])
def test_clip_bounds_as_constants(clip_const):
    x = uniform((2, 5))
    const = {1, 2} if clip_const else set()
    check_op(Op.Clip, [x, np.array(-0.5, np.float32), np.array(0.7, np.float32)], const_inputs=const)


@pytest.mark.parametrize("slope_shape", [(), (1,), (4,), (3, 1), (2, 3, 4)], ids=str)
def test_prelu(slope_shape):
    check_op(Op.PRelu, [uniform((2, 3, 4)), uniform(slope_shape, 0, 0.5, seed=1)], **FP32)


def test_prelu_int():
    # onnxruntime 1.32 has no integer PRelu kernel (NOT_IMPLEMENTED), so compare with numpy
    x, slope = ints((2, 3)), np.array([2, 3, 4], np.int64)
    out = run_ir(Op.PRelu, [x, slope], A.Attrs())[0]
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.where(x < 0, x * slope, x))


@pytest.mark.parametrize("extra", ["none", "ratio", "ratio_and_mode"])
@pytest.mark.parametrize("n_outputs", [1, 2])
def test_dropout_inference(extra, n_outputs):
    x = uniform((2, 3, 4))
    inputs = [x]
    if extra != "none":
        inputs.append(np.array(0.3, np.float32))
    if extra == "ratio_and_mode":
        inputs.append(np.array(False))
    outs = check_op(Op.Dropout, inputs, n_outputs=n_outputs, const_inputs={1, 2})
    np.testing.assert_array_equal(outs[0], x)
    if n_outputs == 2:
        assert outs[1].dtype == np.bool_ and outs[1].all()


def test_dropout_training_mode_rejected():
    x = uniform((2, 3))
    with pytest.raises(InterpreterError, match="training_mode"):
        run_ir(Op.Dropout, [x, np.array(0.5, np.float32), np.array(True)], A.DropoutAttrs(),
               n_outputs=2, const_inputs={1, 2})


# ---- casts -------------------------------------------------------------------------
# (source dtype, target DType): values in range of the target (float to unsigned of a
# negative is undefined in ONNX)
CASTS = [
    (np.float32, DType.INT64), (np.float32, DType.INT32), (np.float32, DType.INT8),
    (np.float32, DType.UINT8), (np.float32, DType.BOOL), (np.float32, DType.FLOAT16),
    (np.float32, DType.DOUBLE), (np.float32, DType.FLOAT), (np.float64, DType.FLOAT),
    (np.float64, DType.INT64), (np.float16, DType.FLOAT), (np.int64, DType.FLOAT),
    (np.int64, DType.INT32), (np.int64, DType.BOOL), (np.int32, DType.INT64),
    (np.bool_, DType.FLOAT), (np.bool_, DType.INT64), (np.uint8, DType.FLOAT),
]


@pytest.mark.parametrize("src, dst", CASTS, ids=lambda c: getattr(c, "name", None) or np.dtype(c).name)
def test_cast(src, dst):
    lo = 0 if dst in (DType.UINT8,) else -100
    if np.dtype(src).kind == "f":
        x = uniform((3, 5), lo, 100).astype(src)
        x[0, :3] = [0.0, -0.0, 0.5]
        if lo < 0:
            x[1, :4] = [-1.7, 1.7, -0.5, -99.99]  # truncation toward zero, not floor
    elif src == np.bool_:
        x = bools((3, 5))
    else:
        x = ints((3, 5), max(lo, 0) if np.dtype(src).kind == "u" else lo, 100).astype(src)
    out = check_op(Op.Cast, [x], A.CastAttrs(to=dst.value))[0]
    assert out.dtype == dst.numpy


def test_cast_nan_to_bool_is_true():
    check_op(Op.Cast, [np.array([np.nan, 0.0, -0.0, 1e-30], np.float32)], A.CastAttrs(to=DType.BOOL.value))


@pytest.mark.parametrize("src, like", [(np.float32, np.int64), (np.int64, np.float32),
                                       (np.float32, np.float16), (np.int32, np.bool_)], ids=str)
def test_cast_like(src, like):
    x = (uniform((2, 4), -50, 50) if np.dtype(src).kind == "f" else ints((2, 4), -50, 50)).astype(src)
    check_op(Op.CastLike, [x, np.zeros((1,), like)])
