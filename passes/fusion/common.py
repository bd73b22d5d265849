"""Helpers the fusion rules share: reading constant scalars and axes from a match."""
from __future__ import annotations

import numpy as np

from ...ir.value import Value


def scalar(v: Value | None) -> float | None:
    """The value of a constant with a single distinct element, else None."""
    if v is None or v.const is None or v.const.size == 0:
        return None
    arr = np.asarray(v.const.numpy())
    first = arr.reshape(-1)[0]
    return float(first) if np.all(arr == first) else None


def last_axis_only(axes: Value | None, rank: int | None) -> str | None:
    """None when ``axes`` is the constant [-1] (or [rank-1]); else the reason it is not."""
    if axes is None or axes.const is None:
        return "the reduction axes are not a constant"
    vals = [int(a) for a in np.asarray(axes.const.numpy()).reshape(-1)]
    if rank is None:
        return None if vals == [-1] else f"reduction axes {vals} with unknown rank"
    if [a % rank for a in vals] != [rank - 1]:
        return f"reduces over axes {vals}, not the last axis only"
    return None


def per_channel(v: Value | None, channels, what: str) -> str | None:
    """None when ``v`` is a constant broadcasting only along the last axis of size ``channels``."""
    if v is None or v.const is None:
        return f"{what} is not a constant"
    shape = v.const.shape
    if any(d != 1 for d in shape[:-1]) or (shape and isinstance(channels, int) and shape[-1] not in (1, channels)):
        return f"{what} has shape {list(shape)}, not per-channel over the last axis ({channels})"
    return None


def flat(v: Value) -> np.ndarray:
    return np.asarray(v.const.numpy()).reshape(-1)


# A check returns this to reject a match that is another rule's case (a non-constant
# addend is a residual, not a bias): pattern.Rule reports no near miss for it.
NOT_APPLICABLE = ""


def broadcast_scalar(v: Value | None, rank: int | None) -> float | None:
    """The value of a one-element constant that broadcasting cannot grow past ``rank``, else None."""
    if v is None or v.const is None or v.const.size != 1:
        return None
    if rank is None or len(v.const.shape) > rank:
        return None
    return float(np.asarray(v.const.numpy()).reshape(-1)[0])


def known_shape(shape) -> bool:
    """Every dim is an int or a named symbol, so two such shapes compare exactly."""
    return shape is not None and all(d is not None for d in shape)
