"""Elementwise ops: tables of op -> C99 expression, mapped over (broadcast) operands by loops.emit_map.

A unary template reads its operand as ``x``; binary ones name theirs ``{a}`` and ``{b}``
and the C type ``{T}``, all filled in by ``str.format`` (an n-ary Sum folds the binary
template over operands ``x0``, ``x1``, ...); attributes are ``{alpha}``-style and become
exact hexadecimal float literals. A
template may call ``ff_*`` helpers of the kernel library; each one named is pulled
into model.c. Every map reads an element before it writes the same element, so an
output the plan puts exactly over a same-shape input is correct (alias=ELEMENTWISE).
"""
from __future__ import annotations

import re

from ...ir.dtype import DType
from ...ir.op import Op
from .ctext import c_float, c_scalar, ctype
from .lowering import ELEMENTWISE, Emitter, rule
from .loops import emit_map

# op -> float32 expression of x
FLOAT_UNARY = {
    Op.Abs: "fabsf(x)", Op.Neg: "-x", Op.Exp: "expf(x)", Op.Log: "logf(x)", Op.Sqrt: "sqrtf(x)",
    Op.Reciprocal: "1.0f / x", Op.Erf: "erff(x)", Op.Tanh: "tanhf(x)", Op.Sigmoid: "ff_sigmoidf(x)",
    Op.Relu: "x < 0.0f ? 0.0f : x",
    Op.LeakyRelu: "x >= 0.0f ? x : x * {alpha}",
    Op.Elu: "x >= 0.0f ? x : {alpha} * expm1f(x)",
    Op.Selu: "{gamma} * (x > 0.0f ? x : {alpha} * expm1f(x))",
    Op.Celu: "(x > 0.0f ? x : 0.0f) + {alpha} * expm1f(fminf(x / {alpha}, 0.0f))",
    Op.HardSigmoid: "fminf(fmaxf({alpha} * x + {beta}, 0.0f), 1.0f)",
    Op.HardSwish: "x * fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f)",
    Op.Softplus: "ff_softplusf(x)", Op.Softsign: "x / (1.0f + fabsf(x))",
    Op.Mish: "x * tanhf(ff_softplusf(x))", Op.Sin: "sinf(x)", Op.Cos: "cosf(x)", Op.Tan: "tanf(x)",
    Op.Asin: "asinf(x)", Op.Acos: "acosf(x)", Op.Atan: "atanf(x)", Op.Sinh: "sinhf(x)",
    Op.Cosh: "coshf(x)", Op.Floor: "floorf(x)", Op.Ceil: "ceilf(x)",
    # the default rounding mode rounds half to even, as ONNX Round does
    Op.Round: "nearbyintf(x)",
    Op.Sign: "x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x)",
    Op.ThresholdedRelu: "x > {alpha} ? x : 0.0f",
}
# unary ops defined on every numeric type (T is the C type)
ANY_UNARY = {
    Op.Abs: "x < ({T})0 ? ({T})-x : x", Op.Neg: "({T})-x",
    Op.Relu: "x < ({T})0 ? ({T})0 : x", Op.Sign: "({T})((x > ({T})0) - (x < ({T})0))",
}
GELU = {
    "none": "0.5f * x * (1.0f + erff(x * 0x1.6a09e6p-1f))",
    "tanh": "0.5f * x * (1.0f + tanhf(0x1.988454p-1f * (x + 0x1.6e4e26p-5f * x * x * x)))",
}

# op -> expression of {a}, {b} in the operands' type ({T})
FLOAT_BINARY = {
    Op.Add: "{a} + {b}", Op.Sub: "{a} - {b}", Op.Mul: "{a} * {b}", Op.Div: "{a} / {b}",
    Op.Sum: "{a} + {b}", Op.Max: "ff_maxf({a}, {b})", Op.Min: "ff_minf({a}, {b})",
    Op.PRelu: "{a} < 0.0f ? {a} * {b} : {a}",
}
INT_BINARY = {
    # C's / truncates toward zero, as ONNX integer Div does
    Op.Add: "({T})({a} + {b})", Op.Sub: "({T})({a} - {b})", Op.Mul: "({T})({a} * {b})",
    Op.Div: "({T})({a} / {b})", Op.Sum: "({T})({a} + {b})", Op.Max: "{a} > {b} ? {a} : {b}",
    Op.Min: "{a} < {b} ? {a} : {b}",
}
LOGIC = {Op.And: "{a} && {b}", Op.Or: "{a} || {b}", Op.Xor: "({a} != 0) != ({b} != 0)"}
COMPARE = {Op.Equal: "{a} == {b}", Op.Less: "{a} < {b}", Op.LessOrEqual: "{a} <= {b}",
           Op.Greater: "{a} > {b}", Op.GreaterOrEqual: "{a} >= {b}"}
_HELPER = re.compile(r"\bff_\w+")


def _attr_literals(attrs) -> dict[str, str]:
    return {name: c_float(value) for name, value in attrs.items() if isinstance(value, float)}


def _map(e: Emitter, operands, expr: str, scalars=None) -> None:
    for helper in _HELPER.findall(expr):
        e.kernel(helper)
    emit_map(e, e.outputs[0], operands, f"({expr})", scalars)


@rule(*FLOAT_UNARY, *ANY_UNARY, Op.Gelu, alias=ELEMENTWISE)
def unary(e: Emitter) -> None:
    x = e.inputs[0]
    op = e.node.op
    if x.dtype is DType.FLOAT:
        if op is Op.Gelu:
            if e.attrs.approximate not in GELU:
                raise e.unsupported(f"Gelu approximate={e.attrs.approximate!r}")
            expr = GELU[e.attrs.approximate]
        else:
            expr = FLOAT_UNARY[op].format(**_attr_literals(e.attrs))
    elif op in ANY_UNARY and x.dtype is not DType.BOOL:
        expr = ANY_UNARY[op].format(T=ctype(x.dtype))
    else:
        raise e.unsupported(f"{op.value} on {x.dtype.short}")
    _map(e, [("x", x)], expr)


@rule(Op.Not, alias=ELEMENTWISE)
def not_(e: Emitter) -> None:
    _map(e, [("x", e.inputs[0])], "!x")


@rule(Op.IsNaN, alias=ELEMENTWISE)
def is_nan(e: Emitter) -> None:
    e.require_float(e.inputs[0])
    _map(e, [("x", e.inputs[0])], "x != x")


@rule(Op.IsInf, alias=ELEMENTWISE)
def is_inf(e: Emitter) -> None:
    e.require_float(e.inputs[0])
    tests = (["x == INFINITY"] if e.attrs.detect_positive else []) + \
            (["x == -INFINITY"] if e.attrs.detect_negative else [])
    _map(e, [("x", e.inputs[0])], " || ".join(tests) or "0")


@rule(*FLOAT_BINARY, *INT_BINARY, Op.Mean, *LOGIC, *COMPARE, alias=ELEMENTWISE)
def nary(e: Emitter) -> None:
    op = e.node.op
    ins = list(e.inputs)
    t = ins[0].dtype
    if any(v.dtype is not t for v in ins):
        raise e.unsupported(f"{op.value} of mixed types {[v.dtype.short for v in ins]}")
    names = [f"x{k}" for k in range(len(ins))]
    if op in LOGIC or op in COMPARE:
        table = LOGIC if op in LOGIC else COMPARE
        if op in LOGIC and t is not DType.BOOL:
            raise e.unsupported(f"{op.value} on {t.short}")
        _map(e, list(zip(names, ins)), table[op].format(a=names[0], b=names[1]))
        return
    fold = Op.Add if op is Op.Mean else op
    if t is DType.FLOAT:
        template = FLOAT_BINARY[fold]
    elif t is not DType.BOOL and not t.is_float and fold in INT_BINARY:
        template = INT_BINARY[fold]
    else:
        raise e.unsupported(f"{op.value} on {t.short}")
    expr = names[0]
    for name in names[1:]:  # n-ary Sum/Max/Min/Mean: ((x0 op x1) op x2) ...
        lhs = expr if expr == names[0] else f"({expr})"
        expr = template.format(a=lhs, b=name, T=ctype(t))
    if op is Op.Mean:
        if t is not DType.FLOAT:
            raise e.unsupported(f"Mean on {t.short}")
        expr = f"({expr}) / {c_float(len(ins))}"
    _map(e, list(zip(names, ins)), expr)


@rule(Op.Pow, alias=ELEMENTWISE)
def pow_(e: Emitter) -> None:
    a, b = e.inputs
    e.require_float(a)
    # the exponent may be of another numeric type; the result has the base's type
    cast = "" if b.dtype is DType.FLOAT else "(float)"
    _map(e, [("a", a), ("b", b)], f"powf(a, {cast}b)")


@rule(Op.Mod, alias=ELEMENTWISE)
def mod(e: Emitter) -> None:
    a, b = e.inputs
    if a.dtype is DType.FLOAT:
        expr = "fmodf(a, b)" if e.attrs.fmod else "ff_modf(a, b)"
    elif not a.dtype.is_float and a.dtype is not DType.BOOL:
        t = ctype(a.dtype)
        # C's % takes the dividend's sign; fmod=0 wants the divisor's (Python %)
        expr = ("({T})(a % b)" if e.attrs.fmod else
                "({T})((a % b) != 0 && (((a % b) < 0) != (b < 0)) ? (a % b) + b : (a % b))").format(T=t)
    else:
        raise e.unsupported(f"Mod on {a.dtype.short}")
    _map(e, [("a", a), ("b", b)], expr)


@rule(Op.Where, alias={(0, 1), (0, 2)})
def where(e: Emitter) -> None:
    c, a, b = e.inputs
    if c.dtype is not DType.BOOL or a.dtype is not b.dtype:
        raise e.unsupported(f"Where({c.dtype.short}, {a.dtype.short}, {b.dtype.short})")
    _map(e, [("c", c), ("a", a), ("b", b)], "c ? a : b")


@rule(Op.Clip, alias=ELEMENTWISE)
def clip(e: Emitter) -> None:
    x = e.inputs[0]
    if x.dtype is DType.BOOL:
        raise e.unsupported("Clip on bool")
    t = ctype(x.dtype)
    operands, scalars, expr = [("x", x)], {}, "x"
    for slot, name in ((1, "lo"), (2, "hi")):
        v = e.input(slot)
        if v is None:
            continue
        if v.const is not None and v.const.size == 1:
            scalars[name] = (t, c_scalar(v.const.numpy().reshape(-1)[0].item(), x.dtype))
        else:  # ONNX says scalar; a broadcasting bound is read like any operand
            operands.append((name, v))
    # max with the low bound first, then min with the high one: lo > hi gives hi, as the
    # spec says; a NaN fails both tests and passes through, as numpy's does
    bounds = set(scalars) | {name for name, _ in operands}
    if "lo" in bounds:
        expr = "x < lo ? lo : x"
    if "hi" in bounds:
        expr = f"({expr}) > hi ? hi : ({expr})"
    _map(e, operands, expr, scalars)


@rule(Op.Cast, Op.CastLike, alias=ELEMENTWISE)
def cast(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    dst = ctype(y.dtype)
    if y.dtype is DType.BOOL:
        expr = "x != 0"
    elif x.dtype is y.dtype:
        expr = "x"
    else:
        expr = f"({dst})x"
    _map(e, [("x", x)], expr)
