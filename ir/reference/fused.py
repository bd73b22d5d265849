"""fuseformer's own ops (domain "fuseformer"): RMSNorm, Linear and Attention.

Passes create them from ONNX subgraphs, so each definition here must equal the
decomposition it replaces; the formulas are on the attribute records in ir/attrs.py.
"""
from __future__ import annotations

import math

import numpy as np

from ..attrs import ACTIVATIONS, LayerNormalizationAttrs, RMSNormAttrs
from ..op import Op
from .elementwise import erf_array
from .nn import layer_normalization
from .registry import reference



def _sigmoid(x):
    # exp(-|x|) never overflows, unlike 1 / (1 + exp(-x)) for large negative x
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z))


def _activate(kind, y):
    if kind == "none":
        return y
    if kind == "relu":
        return np.maximum(y, 0)
    if kind == "gelu":
        # the same erf as the Erf op, so a fused exact GELU equals its decomposition
        return 0.5 * y * (1 + erf_array(y / math.sqrt(2)).astype(y.dtype))
    if kind == "gelu_tanh":
        return 0.5 * y * (1 + np.tanh(math.sqrt(2 / math.pi) * (y + 0.044715 * y * y * y)))
    if kind == "silu":
        return y * _sigmoid(y)
    if kind == "sigmoid":
        return _sigmoid(y)
    if kind == "tanh":
        return np.tanh(y)
    raise ValueError(f"Linear activation must be one of {ACTIVATIONS}, got {kind!r}")


@reference(Op.RMSNorm)
def rms_norm(attrs, x, scale=None, bias=None):
    if not -x.ndim <= attrs.axis < x.ndim:
        raise ValueError(f"axis {attrs.axis} is out of range for rank {x.ndim}")
    axes = tuple(range(attrs.axis % x.ndim, x.ndim))
    y = x / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + attrs.epsilon)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype, copy=False)


@reference(Op.Linear)
def linear(attrs, x, w, bias=None, residual=None):
    if w.ndim != 2 or x.shape[-1] != w.shape[0]:
        raise ValueError(f"Linear: x {list(x.shape)} @ W {list(w.shape)}; W must be [K, N]")
    y = np.matmul(x, w)
    if bias is not None:
        y = y + bias
    y = _activate(attrs.activation, y).astype(x.dtype, copy=False)
    if residual is not None:
        y = y + residual  # after the activation: the Add(act(Linear), r) this replaces
    return y


@reference(Op.SkipLayerNorm)
def skip_layer_norm(attrs, x, skip, gamma, beta=None, bias=None):
    # the Add and LayerNormalization this replaces, evaluated as they would be
    s = x + skip
    if bias is not None:
        s = s + bias
    s = s.astype(x.dtype, copy=False)
    y = layer_normalization(LayerNormalizationAttrs(axis=-1, epsilon=attrs.epsilon), s, gamma, beta)[0]
    return y, s


@reference(Op.SkipRMSNorm)
def skip_rms_norm(attrs, x, skip, gamma):
    s = (x + skip).astype(x.dtype, copy=False)
    return rms_norm(RMSNormAttrs(axis=-1, epsilon=attrs.epsilon), s, gamma), s


@reference(Op.Attention)
def attention(attrs, q, k, v, mask=None):
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise ValueError("Attention takes q, k, v of rank 4 [batch, heads, seq, head_dim]")
    heads, kv_heads = q.shape[1], k.shape[1]
    if v.shape[1] != kv_heads or k.shape[2] != v.shape[2] or q.shape[3] != k.shape[3]:
        raise ValueError(f"Attention: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)} "
                         f"do not fit together")
    if heads % kv_heads:
        raise ValueError(f"Attention: {heads} query heads is not a multiple of {kv_heads} kv heads")
    if kv_heads != heads:
        # kv head j serves query heads j*r .. j*r + r - 1 (LLaMA's repeat_kv)
        k = np.repeat(k, heads // kv_heads, axis=1)
        v = np.repeat(v, heads // kv_heads, axis=1)
    sq, sk = q.shape[2], k.shape[2]
    scale = attrs.scale if attrs.scale is not None else 1 / math.sqrt(q.shape[3])
    scores = np.matmul(q, np.swapaxes(k, -1, -2)) * np.asarray(scale, q.dtype)
    keep = np.ones((1, 1, sq, sk), dtype=bool)
    if mask is not None:
        kind = "bool" if mask.dtype == np.bool_ else "additive"
        if attrs.mask_kind not in ("none", kind):
            raise ValueError(f"Attention mask_kind={attrs.mask_kind!r} but the mask is {mask.dtype}")
        if kind == "bool":
            keep = keep & mask
        else:
            scores = scores + mask.astype(scores.dtype, copy=False)
    elif attrs.mask_kind != "none":
        raise ValueError(f"Attention mask_kind={attrs.mask_kind!r} but no mask input")
    if attrs.causal:
        # bottom-right aligned: with a KV cache the last query sees every key
        rows = np.arange(sq)[:, None] + (sk - sq)
        keep = keep & (np.arange(sk)[None, :] <= rows)
    scores = np.where(keep, scores, -np.inf)
    peak = scores.max(axis=-1, keepdims=True)
    # a fully masked row has peak -inf; subtracting 0 instead keeps exp() at 0, not NaN
    peak = np.where(np.isfinite(peak), peak, 0)
    e = np.exp(scores - peak)
    total = e.sum(axis=-1, keepdims=True)
    probs = e / np.where(total == 0, 1, total)
    return np.matmul(probs, v).astype(q.dtype, copy=False)
