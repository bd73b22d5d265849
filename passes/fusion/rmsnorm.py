"""RMSNorm fusion (LLaMA, Mistral, T5).

    RMSNorm(x) = x / sqrt(mean(x^2) + eps) * weight

over the last axis. Exporters spell it as

1. the square as Pow(x, 2) or Mul(x, x);
2. ReduceMean over the last axis (keepdims=1), then Add eps;
3. the inverse root as Reciprocal(Sqrt(.)) (dynamo's rsqrt), Div(1, Sqrt(.))
   (torchscript's rsqrt) or Pow(., -0.5), multiplied into x; or x divided by Sqrt(.);
4. then Mul by the per-channel weight (either side), or no weight at all.

The fused op computes x / sqrt(.) instead of x * (1 / sqrt(.)): the same value
up to one rounding. A norm computed in float32 around a float16 model
(Cast on the way in and out) is left alone: fusing would change its precision.
"""
from __future__ import annotations

import numpy as np

from ..pattern import Match, Rule
from .common import broadcast_scalar, flat, last_axis_only, per_channel, scalar
from .fusion_pass import FusionPass


def _normalized(op, x, axes, eps, one, minus_half):
    square = op.either(op.Pow(x, op.const(2.0)), op.Mul(x, x))
    var = op.Add(op.ReduceMean(square, axes, _name="mean"), eps)
    std = op.Sqrt(var)
    inverse = op.either(op.Reciprocal(std), op.Div(one, std), op.Pow(var, minus_half))
    return op.either(op.Mul(x, inverse), op.Div(x, std))


def target_weighted(op, x, axes, eps, one, minus_half, weight):
    return op.Mul(_normalized(op, x, axes, eps, one, minus_half), weight)


def target_plain(op, x, axes, eps, one, minus_half):
    return _normalized(op, x, axes, eps, one, minus_half)


def check(m: Match) -> str | None:
    x = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return "x is not floating point"
    reason = last_axis_only(m["axes"], x.rank)
    if reason:
        return reason
    if not m.nodes["mean"].attrs.keepdims:
        return "the ReduceMean drops the reduced axis (keepdims=0)"
    if scalar(m["eps"]) is None or broadcast_scalar(m["eps"], x.rank) is None:
        return "epsilon is not a constant scalar"
    if "one" in m.values and broadcast_scalar(m["one"], x.rank) != 1.0:
        return f"the inverse root divides %{m['one'].name} into the root, not 1"
    if "minus_half" in m.values and broadcast_scalar(m["minus_half"], x.rank) != -0.5:
        return f"the root is Pow(., %{m['minus_half'].name}), not Pow(., -0.5)"
    if "weight" in m.values:
        w = m["weight"]
        reason = per_channel(w, x.shape[-1] if x.shape else None, "the weight")
        if reason:
            return reason
        if len(w.const.shape) > x.rank:
            return f"the weight {list(w.const.shape)} has a higher rank than x"
    return None


def replacement(op, m: Match):
    x = m["x"]
    eps = scalar(m["eps"])
    if "weight" not in m.values:
        return op.RMSNorm(x, axis=-1, epsilon=eps)
    w = flat(m["weight"]).astype(x.dtype.numpy)
    channels = x.shape[-1]
    if isinstance(channels, int) and w.size != channels:
        w = np.broadcast_to(w, (channels,)).copy()  # a [1] weight becomes per-channel
    weight = m["weight"] if m["weight"].const.shape == w.shape else op.const(w, "weight")
    return op.RMSNorm(x, weight, axis=-1, epsilon=eps)


RULES = [
    Rule("RMSNorm", target_weighted, replacement, check),
    Rule("RMSNorm", target_plain, replacement, check),
]


class FuseRMSNorm(FusionPass):
    """x / sqrt(mean(x^2) + eps) * weight  ->  RMSNorm(x, weight)"""

    name = "fuse-rmsnorm"

    def rules(self) -> list[Rule]:
        return RULES
