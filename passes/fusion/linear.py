"""Linear fusion: products with a constant 2-D weight become Linear(x, W, bias).

    1. MatMul(x, W)                      ->  Linear(x, W)          W constant [K, N]
    2. Gemm(a, B, C; alpha, beta, transB) ->  Linear(a, W, bias)   W = alpha * (B^T if transB else B),
                                                                   bias = beta * C (C per column)
    3. Add(Linear(x, W), b)              ->  Linear(x, W, b)       b constant, per output channel
    4. Reshape(Linear(Reshape(x, [M, K]), W, ...), x.shape[:-1] + [N])  ->  Linear(x, W, ...)

Case 4 is GPT-2's Conv1D (torchscript) and torch's addmm (dynamo): the rows
of x are flattened around a 2-D product and restored after it. Both shapes
are checked on the inferred types (the targets are usually Shape/Gather/Concat
chains that canonicalization and symbolic shapes resolve), which makes the
rewrite exact: a row-major [M, K] view of x whose last dim is K keeps x's rows.
Folding alpha into W is exact for powers of two and within one rounding otherwise.

The cases run in two stages (1-2, then 3-4, each to a fixpoint) because 3 and 4
build on the Linear that 1-2 make. Activation and residual epilogues are the
passes in linear_epilogue.py.
"""
from __future__ import annotations

import numpy as np

from ...ir.shape import format_shape
from ...ir.value import Value
from ..pattern import CHECK_DEPTH, Match, Rule
from .common import NOT_APPLICABLE, flat, known_shape, per_channel
from .fusion_pass import StagedFusionPass

KIND = "Linear"  # the report counts products made Linear; bias and row folds have their own kinds


def linear_inputs(*inputs: Value | None) -> list[Value | None]:
    """Linear's inputs (x, W, bias, residual) without trailing omitted ones."""
    out = list(inputs)
    while out and out[-1] is None:
        out.pop()
    return out


def shared_constant(op, source: Value, array: np.ndarray, suffix: str) -> Value:
    """A constant derived from ``source`` (a transposed weight); made once even if source is shared."""
    name = f"{source.name}{suffix}"
    existing = op.graph.constants.get(name)
    if existing is not None and existing.const.shape == array.shape and \
            np.array_equal(np.asarray(existing.const.numpy()), array):
        return existing
    return op.graph.add_constant(np.require(array, requirements="C"), name)


def _bias_vector(op, v: Value, n: int, scale: float = 1.0) -> Value:
    """``v`` (per-channel constant) as a [n] vector, reusing v itself when it already is one."""
    if scale == 1.0 and v.const.shape == (n,):
        return v
    arr = flat(v)
    if scale != 1.0:
        arr = arr * np.asarray(scale, arr.dtype)
    return shared_constant(op, v, np.broadcast_to(arr, (n,)).copy(), "_bias" if scale == 1.0 else f"_x{scale:g}")


# ---- 1. MatMul with a constant weight ------------------------------------------------
def target_matmul(op, x, w):
    return op.MatMul(x, w)


def check_matmul(m: Match) -> str | None:
    x, w = m["x"], m["w"]
    if w.const is None or x.const is not None:
        return NOT_APPLICABLE  # activations times activations (attention), or constant folding's job
    if len(w.const.shape) != 2:
        return f"the weight %{w.name} is {len(w.const.shape)}-D; Linear takes a 2-D [K, N] weight"
    if x.rank is None or x.rank < 2:
        return f"x %{x.name} has rank {x.rank}; Linear takes rows of rank >= 2"
    if x.dtype is None or not x.dtype.is_float:
        return "x is not floating point"
    return None


def replace_matmul(op, m: Match):
    return op.Linear(m["x"], m["w"])


# ---- 2. Gemm -------------------------------------------------------------------------
def target_gemm(op, a, b):
    return op.Gemm(a, b)


def check_gemm(m: Match) -> str | None:
    gemm, b = m.root, m["b"]
    if b.const is None or m["a"].const is not None:
        return NOT_APPLICABLE
    if gemm.attrs.transA:
        return "transA=1: the rows of the input are its columns"
    if m["a"].dtype is None or not m["a"].dtype.is_float:
        return "the input is not floating point"
    c = gemm.input(2)
    if c is None:
        return None
    n = gemm.output.shape[-1] if gemm.output.shape else None
    if c.const is None:
        return f"C %{c.name} is not a constant, so it is no bias"
    shape = c.const.shape
    if len(shape) == 2 and shape[0] != 1:
        return f"C has shape {list(shape)}: it varies along the rows, a bias cannot"
    return per_channel(c, n, "C")


def replace_gemm(op, m: Match):
    gemm, b = m.root, m["b"]
    alpha, beta = gemm.attrs.alpha, gemm.attrs.beta
    w = b
    if gemm.attrs.transB or alpha != 1.0:
        arr = np.asarray(b.const.numpy())
        suffix = ""
        if gemm.attrs.transB:
            arr, suffix = arr.T, "_T"
        if alpha != 1.0:
            arr, suffix = arr * np.asarray(alpha, arr.dtype), f"{suffix}_x{alpha:g}"
        w = shared_constant(op, b, arr, suffix)
    c = gemm.input(2)
    bias = None if c is None else _bias_vector(op, c, w.shape[1], beta)
    return op.Linear(*linear_inputs(m["a"], w, bias))


# ---- 3. bias ---------------------------------------------------------------------------
def target_bias(op, x, w, b):
    return op.Add(op.Linear(x, w, _name="linear"), b)


def check_bias(m: Match) -> str | None:
    linear, b = m.nodes["linear"], m["b"]
    if b.const is None or linear.input(3) is not None or linear.attrs.activation != "none":
        return NOT_APPLICABLE  # a residual, or an addend after the activation: the epilogue's case
    if linear.input(2) is not None:
        return f"the Linear already has a bias; adding %{b.name} too would round differently"
    out = linear.output
    reason = per_channel(b, out.shape[-1] if out.shape else None, "the bias")
    if reason:
        return reason
    if out.rank is None or len(b.const.shape) > out.rank:
        return f"the bias {list(b.const.shape)} broadcasts the output to a higher rank"
    return None


def replace_bias(op, m: Match):
    return op.Linear(m["x"], m["w"], _bias_vector(op, m["b"], m["w"].shape[1]))


# ---- 4. flattened rows ------------------------------------------------------------
def target_rows(op, x, rows, w, shape):
    flatten = op.Reshape(x, rows, _name="flatten")
    return op.Reshape(op.Linear(flatten, w, _name="linear"), shape)


def _row_shape(x: Value, lead: tuple, k: int) -> list[int] | None:
    """The Reshape target that views x as [*lead, k] ([] when x already is), or None.

    0 copies x's dim (Reshape without allowzero), so symbolic leading dims need no Shape ops.
    """
    if tuple(x.shape[:-1]) == lead and x.shape[-1] == k:
        return []
    if len(lead) < x.rank and tuple(x.shape[:len(lead)]) == lead:
        return [0] * len(lead) + [k]  # the dims after lead hold k elements: numel says so
    if all(isinstance(d, int) for d in lead):
        return list(lead) + [k]
    return None


def check_rows(m: Match) -> str | None:
    x, linear = m["x"], m.nodes["linear"]
    flat_shape, (k, n) = m.nodes["flatten"].output.shape, m["w"].shape
    if flat_shape is None or len(flat_shape) != 2 or flat_shape[1] != k:
        return NOT_APPLICABLE  # not a [rows, K] view: the Linear is an ordinary 2-D one
    if linear.input(3) is not None:
        return "the Linear adds a residual of the flattened shape"
    out = m.root.output.shape
    if not known_shape(out) or len(out) < 2 or out[-1] != n:
        return NOT_APPLICABLE  # not restoring rows: a head split of the 2-D result
    if not known_shape(x.shape) or _row_shape(x, tuple(out[:-1]), k) is None:
        return (f"x %{x.name}{format_shape(x.shape)} does not have the result's leading dims "
                f"{format_shape(out[:-1])} as its own")
    return None


def replace_rows(op, m: Match):
    x, linear = m["x"], m.nodes["linear"]
    shape = _row_shape(x, tuple(m.root.output.shape[:-1]), m["w"].shape[0])
    if shape:
        x = op.Reshape(x, op.const(np.array(shape, np.int64), "rows"))
    return op.Linear(*linear_inputs(x, m["w"], linear.input(2)), activation=linear.attrs.activation)


class _ChecksOnly(Rule):
    """A Reshape after a Linear is every head split: only a failed check is a near miss."""

    @property
    def near_miss_depth(self) -> int:
        return CHECK_DEPTH


RULES_PRODUCTS = [
    Rule(KIND, target_gemm, replace_gemm, check_gemm),
    Rule(KIND, target_matmul, replace_matmul, check_matmul),
]
RULES_FOLD = [
    Rule("Linear+bias", target_bias, replace_bias, check_bias),
    _ChecksOnly("Linear+rows", target_rows, replace_rows, check_rows),
]


class FuseLinear(StagedFusionPass):
    """MatMul(x, W) [+ b], Gemm, and Reshape-Gemm-Reshape  ->  Linear(x, W, b)"""

    name = "fuse-linear"

    def stages(self) -> list[list[Rule]]:
        return [RULES_PRODUCTS, RULES_FOLD]
