"""GELU fusion: the exact (erf) form and the tanh approximation.

    1. Gelu(x)       = x * 0.5 * (1 + erf(x / sqrt(2)))
    2. Gelu_tanh(x)  = x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))

Exporters associate the product x * 0.5 * h three ways ((x*h)*0.5 from
torchscript, x*(0.5*h) from dynamo, (x*0.5)*h from GPT-2's gelu_new), or
divide x*h by 2. Erf's argument is x / 1.4142135 or x * 0.70710678. The
cube is Pow(x, 3) or x*x*x, and Megatron-style code writes the tanh argument
as sqrt(2/pi) * x * (1 + 0.044715 * x^2).

The constants are bound as variables and compared in the check (to within a
few float32 ulps), so "GELU with 0.6 instead of 0.5" is a near miss with that
reason rather than a silent non-match.

SiLU, x * sigmoid(x), stays two nodes unless it follows a Linear, where the
Linear epilogue takes it (fuse-linear-activation): there is no standalone SiLU op.
"""
from __future__ import annotations

import math

from ..pattern import Match, Rule
from .common import broadcast_scalar
from .fusion_pass import FusionPass

# float32 spells each constant to ~6e-8 relative; exporters print 7-8 digits
_RTOL = 1e-6
SQRT2 = math.sqrt(2.0)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
CUBIC = 0.044715


def _half_product(op, x, h, half, two):
    """x * h * 0.5 in every association exporters use, or x * h / 2."""
    return op.either(
        op.Mul(op.Mul(x, h), half),
        op.Mul(op.Mul(x, half), h),
        op.Mul(x, op.Mul(h, half)),
        op.Div(op.Mul(x, h), two),
    )


def target_erf(op, x, half, two, one, sqrt2, inv_sqrt2):
    arg = op.either(op.Div(x, sqrt2), op.Mul(x, inv_sqrt2))
    return _half_product(op, x, op.Add(op.Erf(arg), one), half, two)


def target_tanh(op, x, half, two, one, cubic, c, three, one_b):
    cube = op.either(op.Pow(x, three), op.Mul(op.Mul(x, x), x))
    arg = op.either(
        op.Mul(op.Add(x, op.Mul(cube, cubic)), c),                          # c * (x + k x^3)
        op.Mul(op.Mul(x, c), op.Add(op.Mul(op.Mul(x, x), cubic), one_b)),  # c x * (1 + k x^2)
    )
    return _half_product(op, x, op.Add(op.Tanh(arg), one), half, two)


def _expect(m: Match, name: str, want: float, what: str) -> str | None:
    """None when the bound constant ``name`` (if bound) is ``want``; else the reason."""
    if name not in m.values:
        return None
    v = m[name]
    got = broadcast_scalar(v, m["x"].rank)
    if got is None:
        return f"{what} %{v.name} is not a constant scalar"
    if not math.isclose(got, want, rel_tol=_RTOL):
        return f"{what} is {got:.8g}, not {want:.8g}"
    return None


def _check_common(m: Match) -> str | None:
    x = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return "x is not floating point"
    return (_expect(m, "half", 0.5, "the factor")
            or _expect(m, "two", 2.0, "the divisor")
            or _expect(m, "one", 1.0, "the added constant"))


def check_erf(m: Match) -> str | None:
    return (_check_common(m)
            or _expect(m, "sqrt2", SQRT2, "erf's divisor")
            or _expect(m, "inv_sqrt2", 1 / SQRT2, "erf's scale"))


def check_tanh(m: Match) -> str | None:
    return (_check_common(m)
            or _expect(m, "three", 3.0, "the power")
            or _expect(m, "cubic", CUBIC, "the cubic coefficient")
            or _expect(m, "c", SQRT_2_OVER_PI, "tanh's scale")
            or _expect(m, "one_b", 1.0, "the added constant"))


def replace_erf(op, m: Match):
    return op.Gelu(m["x"])


def replace_tanh(op, m: Match):
    return op.Gelu(m["x"], approximate="tanh")


RULES = [
    Rule("Gelu", target_erf, replace_erf, check_erf),
    Rule("Gelu", target_tanh, replace_tanh, check_tanh),
]


class FuseGelu(FusionPass):
    """x * 0.5 * (1 + erf(x / sqrt 2))  ->  Gelu(x);  the tanh form  ->  Gelu(x, approximate="tanh")"""

    name = "fuse-gelu"

    def rules(self) -> list[Rule]:
        return RULES
