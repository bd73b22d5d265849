"""Per-channel affine constants: recognizing them and reshaping them for one axis."""
from __future__ import annotations

import numpy as np

from ...ir.value import Value


def channel_vector(v: Value | None, rank: int | None, axis: int, channels) -> np.ndarray | None:
    """The constant ``v`` as a vector over ``axis`` of a rank-``rank`` tensor, if it only varies there.

    A scalar broadcasts to every channel. Returns None when ``v`` is not a
    constant, would broadcast the tensor to a larger shape, or varies along
    another axis.
    """
    if v is None or v.const is None or rank is None or not isinstance(channels, int):
        return None
    shape = v.const.shape
    if len(shape) > rank:
        return None
    padded = (1,) * (rank - len(shape)) + tuple(shape)
    axis %= rank
    if any(d != 1 for i, d in enumerate(padded) if i != axis):
        return None
    if padded[axis] not in (1, channels):
        return None
    arr = np.asarray(v.const.numpy()).reshape(-1)
    return np.broadcast_to(arr, (channels,)).copy()


def shaped_for_axis(vec: np.ndarray, rank: int, axis: int) -> np.ndarray:
    """A channel vector shaped to broadcast along ``axis`` of a rank-``rank`` tensor."""
    axis %= rank
    shape = [1] * (rank - axis)
    shape[0] = vec.shape[0]
    return vec.reshape(shape)
