"""LayerNorm fusion.

    LayerNorm(x) = (x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps) * gamma + beta

over the last axis. Exporters spell it with ReduceMean, Sub, Pow (or Mul d*d),
ReduceMean, Add, Sqrt, and Div (or Mul by Reciprocal), then Mul gamma, Add beta.
"""
from __future__ import annotations

import numpy as np

from ..pattern import Match, Rule
from .fusion_pass import FusionPass
from .common import flat, last_axis_only, per_channel, scalar


def _normalized(op, x, axes1, axes2, eps):
    d = op.Sub(x, op.ReduceMean(x, axes1, _name="mean"))
    var = op.ReduceMean(op.either(op.Pow(d, op.const(2.0)), op.Mul(d, d)), axes2, _name="var")
    std = op.Sqrt(op.Add(var, eps))
    return op.either(op.Div(d, std), op.Mul(d, op.Reciprocal(std)))


def target_affine(op, x, axes1, axes2, eps, gamma, beta):
    return op.Add(op.Mul(_normalized(op, x, axes1, axes2, eps), gamma), beta)


def target_scale(op, x, axes1, axes2, eps, gamma):
    return op.Mul(_normalized(op, x, axes1, axes2, eps), gamma)


def target_plain(op, x, axes1, axes2, eps):
    return _normalized(op, x, axes1, axes2, eps)


def check(m: Match) -> str | None:
    x = m["x"]
    rank = x.rank
    for name in ("axes1", "axes2"):
        reason = last_axis_only(m[name], rank)
        if reason:
            return reason
    for node_name in ("mean", "var"):
        if not m.nodes[node_name].attrs.keepdims:
            return "a ReduceMean drops the reduced axis (keepdims=0)"
    if scalar(m["eps"]) is None:
        return "epsilon is not a constant scalar"
    channels = x.shape[-1] if x.shape else None
    for name in ("gamma", "beta"):
        if name in m.values:
            reason = per_channel(m[name], channels, name)
            if reason:
                return reason
    if not isinstance(channels, int) and not all(n in m.values for n in ("gamma", "beta")):
        return "the hidden size is unknown, so the missing gamma/beta cannot be made"
    if x.dtype is None or not x.dtype.is_float:
        return "x is not floating point"
    return None


def replacement(op, m: Match):
    x = m["x"]
    channels = x.shape[-1]
    dtype = x.dtype.numpy

    def vector(name, fill):
        if name in m.values:
            v = flat(m[name]).astype(dtype)
            return op.const(np.broadcast_to(v, (channels,)).copy() if isinstance(channels, int) else v, name)
        return op.const(np.full(channels, fill, dtype), name)

    return op.LayerNormalization(x, vector("gamma", 1.0), vector("beta", 0.0), axis=-1,
                                 epsilon=scalar(m["eps"]))


RULES = [
    Rule("LayerNorm", target_affine, replacement, check),
    Rule("LayerNorm", target_scale, replacement, check),
    Rule("LayerNorm", target_plain, replacement, check),
]


class FuseLayerNorm(FusionPass):
    """(x - mean(x)) / sqrt(var(x) + eps) * gamma + beta  ->  LayerNormalization(x, gamma, beta)"""

    name = "fuse-layernorm"

    def rules(self) -> list[Rule]:
        return RULES
