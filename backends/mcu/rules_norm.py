"""Normalizations, softmax and reductions.

Norms and softmax are kernel calls over rows; reductions are loop templates from a
table of op -> (initial value, accumulate, finish) expressions of ``acc``, ``x`` and
``n`` over x viewed as [outer, n, inner].
"""
from __future__ import annotations

import numpy as np

from ...ir.dtype import DType
from ...ir.op import Op
from .ctext import c_float, c_scalar, ctype
from .lowering import Emitter, numel, rule
from .rules_nn import per_feature, trailing_rows


def _norm_axis(e: Emitter, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise e.unsupported(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


@rule(Op.LayerNormalization, alias={(0, 0)})
def layer_norm(e: Emitter) -> None:
    x, scale, bias = e.inputs[0], e.inputs[1], e.input(2)
    e.require_float(x, scale, bias)
    if e.attrs.stash_type != DType.FLOAT.value:
        raise e.unsupported(f"stash_type {e.attrs.stash_type} (float32 statistics only)")
    shape = e.shape(x)
    axis = _norm_axis(e, e.attrs.axis, len(shape))
    rows, n = numel(shape[:axis]), numel(shape[axis:])
    per_feature(e, scale, n, "scale")
    per_feature(e, bias, n, "bias")
    outs = [e.ptr(e.outputs[j]) if j < len(e.outputs) else "0" for j in range(3)]
    e.kernel("ff_layernorm")
    e.line(f"ff_layernorm({rows}, {n}, {e.ptr(x)}, 0, 1, 0, {e.ptr(scale)}, {e.ptr(bias)}, "
           f"{c_float(e.attrs.epsilon)}, 0, {outs[0]}, {outs[1]}, {outs[2]});")


# outputs (y, s) may each sit exactly over x or skip: a row's s is complete before its y
SKIP_ALIAS = {(0, 0), (0, 1), (1, 0), (1, 1)}


@rule(Op.SkipLayerNorm, alias=SKIP_ALIAS)
def skip_layer_norm(e: Emitter) -> None:
    x, skip, gamma, beta, bias = (e.input(i) for i in range(5))
    e.require_float(x, skip, gamma, beta, bias)
    shape = e.shape(x)
    n = shape[-1]
    skip_rows = trailing_rows(e, skip, shape, n, "skip")
    for v, what in ((gamma, "gamma"), (beta, "beta"), (bias, "bias")):
        per_feature(e, v, n, what)
    y, s = e.outputs[0], (e.outputs[1] if len(e.outputs) > 1 else None)
    e.kernel("ff_layernorm")
    e.line(f"ff_layernorm({numel(shape[:-1])}, {n}, {e.ptr(x)}, {e.ptr(skip)}, {skip_rows}, "
           f"{e.ptr(bias)}, {e.ptr(gamma)}, {e.ptr(beta)}, {c_float(e.attrs.epsilon)}, {e.ptr(s)}, "
           f"{e.ptr(y)}, 0, 0);")


@rule(Op.RMSNorm, alias={(0, 0)})
def rms_norm(e: Emitter) -> None:
    x, scale, bias = e.inputs[0], e.input(1), e.input(2)
    e.require_float(x, scale, bias)
    shape = e.shape(x)
    axis = _norm_axis(e, e.attrs.axis, len(shape))
    rows, n = numel(shape[:axis]), numel(shape[axis:])
    per_feature(e, scale, n, "scale")
    per_feature(e, bias, n, "bias")
    e.kernel("ff_rmsnorm")
    e.line(f"ff_rmsnorm({rows}, {n}, {e.ptr(x)}, 0, 1, {e.ptr(scale)}, {e.ptr(bias)}, "
           f"{c_float(e.attrs.epsilon)}, 0, {e.ptr(e.outputs[0])});")


@rule(Op.SkipRMSNorm, alias=SKIP_ALIAS)
def skip_rms_norm(e: Emitter) -> None:
    x, skip, gamma = e.inputs[0], e.inputs[1], e.inputs[2]
    e.require_float(x, skip, gamma)
    shape = e.shape(x)
    n = shape[-1]
    skip_rows = trailing_rows(e, skip, shape, n, "skip")
    per_feature(e, gamma, n, "gamma")
    e.kernel("ff_rmsnorm")
    e.line(f"ff_rmsnorm({numel(shape[:-1])}, {n}, {e.ptr(x)}, {e.ptr(skip)}, {skip_rows}, "
           f"{e.ptr(gamma)}, 0, {c_float(e.attrs.epsilon)}, "
           f"{e.ptr(e.outputs[1]) if len(e.outputs) > 1 else '0'}, {e.ptr(e.outputs[0])});")


@rule(Op.CRMSNorm, alias={(0, 0)})
def crms_norm(e: Emitter) -> None:
    x = e.inputs[0]
    e.require_float(x)
    shape = e.shape(x)
    e.kernel("ff_crmsnorm")
    e.line(f"ff_crmsnorm({numel(shape[:-1])}, {shape[-1]}, {e.attrs.dim}, {c_float(e.attrs.epsilon)}, "
           f"{e.ptr(x)}, {e.ptr(e.outputs[0])});")


@rule(Op.Softmax, Op.LogSoftmax, alias={(0, 0)})
def softmax(e: Emitter) -> None:
    x = e.inputs[0]
    e.require_float(x)
    shape = e.shape(x)
    axis = _norm_axis(e, e.attrs.axis, len(shape))
    e.kernel("ff_softmax")
    e.line(f"ff_softmax({numel(shape[:axis])}, {shape[axis]}, {numel(shape[axis + 1:])}, {e.ptr(x)}, "
           f"{int(e.node.op is Op.LogSoftmax)}, {e.ptr(e.outputs[0])});")


@rule(Op.BatchNormalization, alias={(0, 0)})
def batch_norm(e: Emitter) -> None:
    x, scale, b, mean, var = e.inputs[:5]
    y = e.outputs[0]
    if len(e.outputs) > 1 or e.attrs.training_mode:
        raise e.unsupported("BatchNormalization in training mode")
    e.require_float(x, scale, b, mean, var)
    shape = e.shape(x)
    c = shape[1]
    for v, what in ((scale, "scale"), (b, "B"), (mean, "mean"), (var, "var")):
        per_feature(e, v, c, what)
    plane = numel(shape[2:])
    with e.loop(shape[0], "n") as n, e.loop(c, "c") as ch:
        e.line(f"const float a = {e.ptr(scale)}[{ch}] * (1.0f / sqrtf({e.ptr(var)}[{ch}] + "
               f"{c_float(e.attrs.epsilon)}));")
        e.line(f"const float m = {e.ptr(mean)}[{ch}], z = {e.ptr(b)}[{ch}];")
        e.line(f"const long at = ((long){n} * {c} + {ch}) * {plane};")
        with e.loop(plane, "p") as p:
            e.line(f"{e.ptr(y)}[at + {p}] = ({e.ptr(x)}[at + {p}] - m) * a + z;")


# op -> (initial, accumulate, finish); {T} is the C type, {n} the count of reduced elements
FLOAT_REDUCE = {
    Op.ReduceSum: ("0.0f", "acc + x", "acc"),
    Op.ReduceMean: ("0.0f", "acc + x", "acc / (float){n}"),
    # a NaN wins, as in numpy's max/min
    Op.ReduceMax: ("-INFINITY", "(x != x || x > acc) ? x : acc", "acc"),
    Op.ReduceMin: ("INFINITY", "(x != x || x < acc) ? x : acc", "acc"),
    Op.ReduceProd: ("1.0f", "acc * x", "acc"),
    Op.ReduceL1: ("0.0f", "acc + fabsf(x)", "acc"),
    Op.ReduceL2: ("0.0f", "acc + x * x", "sqrtf(acc)"),
    Op.ReduceSumSquare: ("0.0f", "acc + x * x", "acc"),
    Op.ReduceLogSum: ("0.0f", "acc + x", "logf(acc)"),
}
INT_REDUCE = {
    Op.ReduceSum: ("0", "({T})(acc + x)", "acc"),
    # the integer mean truncates toward zero, as C's / does
    Op.ReduceMean: ("0", "({T})(acc + x)", "({T})(acc / {n})"),
    Op.ReduceMax: ("{lowest}", "x > acc ? x : acc", "acc"),
    Op.ReduceMin: ("{highest}", "x < acc ? x : acc", "acc"),
    Op.ReduceProd: ("1", "({T})(acc * x)", "acc"),
    Op.ReduceL1: ("0", "({T})(acc + (x < 0 ? -x : x))", "acc"),
    Op.ReduceSumSquare: ("0", "({T})(acc + x * x)", "acc"),
}


def reduced_view(e: Emitter, shape: tuple[int, ...], axes: set[int]) -> tuple[int, int, int]:
    """(outer, n, inner) of x when the reduced axes are adjacent (unit dims aside)."""
    touched = [a for a in sorted(axes) if shape[a] != 1]
    if not touched:
        return numel(shape), 1, 1
    first, last = touched[0], touched[-1]
    if any(a not in axes and shape[a] != 1 for a in range(first, last + 1)):
        raise e.unsupported(f"reducing axes {sorted(axes)} of {list(shape)}, which are not adjacent")
    return numel(shape[:first]), numel(shape[first:last + 1]), numel(shape[last + 1:])


def emit_reduce(e: Emitter, x, y, view: tuple[int, int, int], init: str, step: str,
                finish: str, t: str) -> None:
    outer, n, inner = view
    with e.loop(outer, "o") as o, e.loop(inner, "i") as i:
        e.line(f"{t} acc = {init};")
        with e.loop(n, "j") as j:
            e.line(f"const {t} x = {e.ptr(x)}[((long){o} * {n} + {j}) * {inner} + {i}];")
            e.line(f"acc = {step};")
        e.line(f"{e.ptr(y)}[(long){o} * {inner} + {i}] = {finish.format(n=n)};")


def emit_log_sum_exp(e: Emitter, x, y, view: tuple[int, int, int]) -> None:
    """log(sum(exp(x - m))) + m with m the slice's max; an infinite max needs no shift."""
    outer, n, inner = view
    with e.loop(outer, "o") as o, e.loop(inner, "i") as i:
        e.line(f"const float* const xs = {e.ptr(x)} + (long){o} * {n} * {inner} + {i};")
        e.line("float peak = -INFINITY, acc = 0.0f;")
        with e.loop(n, "j") as j:
            e.line(f"if (xs[(long){j} * {inner}] > peak) peak = xs[(long){j} * {inner}];")
        e.line("if (!isfinite(peak)) peak = 0.0f;")
        with e.loop(n, "j") as j:
            e.line(f"acc += expf(xs[(long){j} * {inner}] - peak);")
        e.line(f"{e.ptr(y)}[(long){o} * {inner} + {i}] = logf(acc) + peak;")


@rule(*FLOAT_REDUCE, Op.ReduceLogSumExp)
def reduce(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    shape = e.shape(x)
    axes_in = e.static_ints(1, "axes") if e.input(1) is not None else []
    if not axes_in:
        axes = set() if e.attrs.noop_with_empty_axes else set(range(len(shape)))
    else:
        axes = {_norm_axis(e, a, len(shape)) for a in axes_in}
    op = e.node.op
    t = ctype(x.dtype)
    if op is Op.ReduceLogSumExp:
        e.require_float(x)
        emit_log_sum_exp(e, x, y, reduced_view(e, shape, axes))
        return
    if x.dtype is DType.FLOAT:
        init, step, finish = FLOAT_REDUCE[op]
    elif op in INT_REDUCE and not x.dtype.is_float and x.dtype is not DType.BOOL:
        info = np.iinfo(x.dtype.numpy)
        lowest, highest = c_scalar(info.min, x.dtype), c_scalar(info.max, x.dtype)
        init, step, finish = (s.format(T=t, n="{n}", lowest=lowest, highest=highest)
                              for s in INT_REDUCE[op])
    else:
        raise e.unsupported(f"{op.value} on {x.dtype.short}")
    emit_reduce(e, x, y, reduced_view(e, shape, axes), init, step, finish, t)


@rule(Op.GlobalAveragePool, Op.GlobalMaxPool)
def global_pool(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    e.require_float(x)
    shape = e.shape(x)
    plane = numel(shape[2:])
    init, step, finish = FLOAT_REDUCE[Op.ReduceMean if e.node.op is Op.GlobalAveragePool else Op.ReduceMax]
    emit_reduce(e, x, y, (shape[0] * shape[1], plane, 1), init, step, finish, "float")


@rule(Op.ArgMax, Op.ArgMin)
def arg_reduce(e: Emitter) -> None:
    x, y = e.inputs[0], e.outputs[0]
    if x.dtype is DType.BOOL or x.dtype.is_float and x.dtype is not DType.FLOAT:
        raise e.unsupported(f"{e.node.op.value} on {x.dtype.short}")
    shape = e.shape(x)
    axis = _norm_axis(e, e.attrs.axis, len(shape))
    outer, n, inner = numel(shape[:axis]), shape[axis], numel(shape[axis + 1:])
    better = ">" if e.node.op is Op.ArgMax else "<"
    if e.attrs.select_last_index:
        better += "="
    # the first NaN wins, as numpy's argmax/argmin
    nan = "(x != x && best == best) || " if x.dtype is DType.FLOAT else ""
    t = ctype(x.dtype)
    with e.loop(outer, "o") as o, e.loop(inner, "i") as i:
        e.line(f"const long at = (long){o} * {n} * {inner} + {i};")
        e.line(f"{t} best = {e.ptr(x)}[at];")
        e.line("int64_t arg = 0;")
        with e.loop(n, "j") as j:
            e.line(f"const {t} x = {e.ptr(x)}[at + (long){j} * {inner}];")
            with e.block(f"if ({j} > 0 && ({nan}x {better} best))"):
                e.line("best = x;")
                e.line(f"arg = {j};")
        e.line(f"{e.ptr(y)}[(long){o} * {inner} + {i}] = arg;")
