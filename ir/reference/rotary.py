"""RotaryEmbedding (fuseformer domain): rotary position embedding of query/key heads.

    y = x * cos + rotate(x) * sin        over the last axis (head_dim D) of x

rotate pairs each element with its partner in the other half (interleaved=0,
LLaMA / GPT-NeoX) or in its adjacent pair (interleaved=1, GPT-J); see
RotaryEmbeddingAttrs in ir/attrs.py.
"""
from __future__ import annotations

import numpy as np

from ..op import Op
from .registry import reference


def rotate(x: np.ndarray, interleaved: int) -> np.ndarray:
    """rotate(x): halves (-x2, x1) when not interleaved, pairs (-x[2i+1], x[2i]) when interleaved."""
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"RotaryEmbedding needs an even head_dim, got {d}")
    if interleaved:
        pairs = x.reshape(x.shape[:-1] + (d // 2, 2))
        return np.stack([-pairs[..., 1], pairs[..., 0]], axis=-1).reshape(x.shape)
    return np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)


@reference(Op.RotaryEmbedding)
def rotary_embedding(attrs, x, cos, sin):
    y = x * cos + rotate(x, attrs.interleaved) * sin
    if y.shape != x.shape:
        raise ValueError(f"RotaryEmbedding: cos {list(cos.shape)} / sin {list(sin.shape)} "
                         f"do not broadcast to x {list(x.shape)}")
    return y.astype(x.dtype, copy=False)
