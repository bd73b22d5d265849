"""Elementwise ops: unary math and activations, broadcasting binary ops, comparisons, casts.

Every result keeps the dtype of its (first) input: float constants are made in
that dtype, because numpy would promote float32 mixed with a float64 scalar and
the interpreter also runs float32 graphs in float64.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from ..dtype import DType
from ..op import Op
from .registry import reference


def _c(value: float, x: np.ndarray) -> np.ndarray:
    """A constant in the dtype of ``x``."""
    return np.asarray(value, dtype=x.dtype)


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division rounding toward zero, as C and onnxruntime divide."""
    q = np.floor_divide(a, b)
    # floor and truncation differ only for an inexact negative quotient
    inexact_negative = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + inexact_negative.astype(q.dtype)


# ---- broadcasting arithmetic -------------------------------------------------
@reference(Op.Add)
def add(attrs, a, b):
    return a + b


@reference(Op.Sub)
def sub(attrs, a, b):
    return a - b


@reference(Op.Mul)
def mul(attrs, a, b):
    return a * b


@reference(Op.Div)
def div(attrs, a, b):
    if a.dtype.kind in "iu":
        return trunc_div(a, b)
    return a / b


@reference(Op.Pow)
def pow_(attrs, a, b):
    if a.dtype.kind in "iu":
        # onnxruntime computes std::pow in double and casts back, so 2 ** -1 == 0
        return np.power(a.astype(np.float64), b.astype(np.float64)).astype(a.dtype)
    # the exponent may be of any numeric type; the result has the base's type
    return np.power(a, b.astype(a.dtype, copy=False))


@reference(Op.Mod)
def mod(attrs, a, b):
    if attrs.fmod:
        return np.fmod(a, b)  # C fmod: the sign of the dividend
    # Python %: the sign of the divisor. Opsets before 28 allow it for integers only;
    # opset 28 defines it for floats too, as this floor modulo.
    return np.remainder(a, b)


# Variadic ops fold their inputs left to right with broadcasting.
@reference(Op.Sum)
def sum_(attrs, *xs):
    return functools.reduce(np.add, xs)


@reference(Op.Mean)
def mean(attrs, *xs):
    total = functools.reduce(np.add, xs)
    return (total / _c(len(xs), total)).astype(total.dtype, copy=False)


@reference(Op.Max)
def max_(attrs, *xs):
    return functools.reduce(np.maximum, xs)  # propagates NaN, as onnxruntime does


@reference(Op.Min)
def min_(attrs, *xs):
    return functools.reduce(np.minimum, xs)


@reference(Op.PRelu)
def prelu(attrs, x, slope):
    return np.where(x < 0, x * slope, x)


# ---- comparisons and logic ---------------------------------------------------
@reference(Op.Equal)
def equal(attrs, a, b):
    return np.equal(a, b)


@reference(Op.Less)
def less(attrs, a, b):
    return np.less(a, b)


@reference(Op.LessOrEqual)
def less_or_equal(attrs, a, b):
    return np.less_equal(a, b)


@reference(Op.Greater)
def greater(attrs, a, b):
    return np.greater(a, b)


@reference(Op.GreaterOrEqual)
def greater_or_equal(attrs, a, b):
    return np.greater_equal(a, b)


@reference(Op.And)
def and_(attrs, a, b):
    return np.logical_and(a, b)


@reference(Op.Or)
def or_(attrs, a, b):
    return np.logical_or(a, b)


@reference(Op.Xor)
def xor(attrs, a, b):
    return np.logical_xor(a, b)


@reference(Op.Not)
def not_(attrs, x):
    return np.logical_not(x)


@reference(Op.Where)
def where(attrs, cond, x, y):
    return np.where(cond, x, y)


# ---- unary math --------------------------------------------------------------
@reference(Op.Abs)
def abs_(attrs, x):
    return np.abs(x)


@reference(Op.Neg)
def neg(attrs, x):
    return np.negative(x)


@reference(Op.Exp)
def exp(attrs, x):
    return np.exp(x)


@reference(Op.Log)
def log(attrs, x):
    return np.log(x)


@reference(Op.Sqrt)
def sqrt(attrs, x):
    return np.sqrt(x)


@reference(Op.Reciprocal)
def reciprocal(attrs, x):
    return _c(1, x) / x


# numpy has no erf; math.erf is exact in double and fast enough through frompyfunc.
_erf_scalar = np.frompyfunc(math.erf, 1, 1)


def erf_array(x: np.ndarray) -> np.ndarray:
    return np.array(_erf_scalar(x), dtype=x.dtype)


@reference(Op.Erf)
def erf(attrs, x):
    return erf_array(x)


_UNARY_UFUNCS = {
    Op.Tanh: np.tanh, Op.Sin: np.sin, Op.Cos: np.cos, Op.Tan: np.tan, Op.Asin: np.arcsin,
    Op.Acos: np.arccos, Op.Atan: np.arctan, Op.Sinh: np.sinh, Op.Cosh: np.cosh,
    Op.Floor: np.floor, Op.Ceil: np.ceil,
    Op.Round: np.rint,  # rint rounds half to even, as ONNX Round does
    Op.Sign: np.sign, Op.IsNaN: np.isnan,
}


def _register_ufunc(op: Op, ufunc) -> None:
    @reference(op)
    def apply(attrs, x):
        return ufunc(x)
    apply.__name__ = op.value.lower()


for _op, _ufunc in _UNARY_UFUNCS.items():
    _register_ufunc(_op, _ufunc)


@reference(Op.IsInf)
def isinf(attrs, x):
    out = np.zeros(x.shape, dtype=bool)
    if attrs.detect_positive:
        out |= np.isposinf(x)
    if attrs.detect_negative:
        out |= np.isneginf(x)
    return out


@reference(Op.Clip)
def clip(attrs, x, lo=None, hi=None):
    # min before max, so min > max gives max everywhere as the spec says
    if lo is not None:
        x = np.maximum(x, lo)
    if hi is not None:
        x = np.minimum(x, hi)
    return x


@reference(Op.Identity)
def identity(attrs, x):
    return x


# ---- activations -------------------------------------------------------------
def sigmoid_array(x: np.ndarray) -> np.ndarray:
    # exp of a non-positive argument cannot overflow, for either sign of x
    e = np.exp(-np.abs(x))
    one = _c(1, x)
    return np.where(x >= 0, one / (one + e), e / (one + e))


def softplus_array(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(_c(0, x), x)  # log(1 + exp(x)) without overflow


def _expm1_negative(x: np.ndarray) -> np.ndarray:
    # np.where evaluates both branches: clamping keeps the unused one from overflowing
    return np.expm1(np.minimum(x, _c(0, x)))


@reference(Op.Sigmoid)
def sigmoid(attrs, x):
    return sigmoid_array(x)


@reference(Op.Relu)
def relu(attrs, x):
    return np.maximum(x, np.zeros((), x.dtype))


@reference(Op.LeakyRelu)
def leaky_relu(attrs, x):
    return np.where(x >= 0, x, x * _c(attrs.alpha, x))


@reference(Op.Elu)
def elu(attrs, x):
    return np.where(x >= 0, x, _c(attrs.alpha, x) * _expm1_negative(x))


@reference(Op.Selu)
def selu(attrs, x):
    return _c(attrs.gamma, x) * np.where(x > 0, x, _c(attrs.alpha, x) * _expm1_negative(x))


@reference(Op.Celu)
def celu(attrs, x):
    alpha = _c(attrs.alpha, x)
    return np.maximum(x, _c(0, x)) + alpha * _expm1_negative(x / alpha)


@reference(Op.Gelu)
def gelu(attrs, x):
    half = _c(0.5, x)
    if attrs.approximate == "tanh":
        inner = _c(math.sqrt(2 / math.pi), x) * (x + _c(0.044715, x) * x * x * x)
        return half * x * (_c(1, x) + np.tanh(inner))
    if attrs.approximate != "none":
        raise ValueError(f"Gelu approximate={attrs.approximate!r}: expected 'none' or 'tanh'")
    return half * x * (_c(1, x) + erf_array(x * _c(1 / math.sqrt(2), x)))


@reference(Op.HardSigmoid)
def hard_sigmoid(attrs, x):
    return np.clip(_c(attrs.alpha, x) * x + _c(attrs.beta, x), _c(0, x), _c(1, x))


@reference(Op.HardSwish)
def hard_swish(attrs, x):
    return x * np.clip(x / _c(6, x) + _c(0.5, x), _c(0, x), _c(1, x))


@reference(Op.Softplus)
def softplus(attrs, x):
    return softplus_array(x)


@reference(Op.Softsign)
def softsign(attrs, x):
    return x / (_c(1, x) + np.abs(x))


@reference(Op.Mish)
def mish(attrs, x):
    return x * np.tanh(softplus_array(x))


@reference(Op.ThresholdedRelu)
def thresholded_relu(attrs, x):
    return np.where(x > _c(attrs.alpha, x), x, _c(0, x))


@reference(Op.Dropout)
def dropout(attrs, x, ratio=None, training_mode=None):
    if training_mode is not None and bool(np.asarray(training_mode).reshape(-1)[0]):
        raise ValueError("Dropout with training_mode=True is not supported: the reference "
                         "runs inference, where Dropout is the identity")
    return x, np.ones(x.shape, dtype=bool)


# ---- casts -------------------------------------------------------------------
# numpy's astype matches ONNX on everything the IR's dtypes can hold: float to
# int truncates toward zero, float to bool is x != 0 (NaN is True), float
# narrowing rounds to nearest even. `saturate` only concerns float8 types.
@reference(Op.Cast)
def cast(attrs, x):
    return x.astype(DType.from_onnx(attrs.to).numpy)


@reference(Op.CastLike)
def cast_like(attrs, x, like):
    return x.astype(like.dtype)
