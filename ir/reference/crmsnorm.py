"""CRMSNorm: RMSNorm of a zero-mean vector kept in d-1 coordinates."""
from __future__ import annotations

import numpy as np

from ..op import Op
from .registry import reference


@reference(Op.CRMSNorm)
def crms_norm(attrs, x):
    # the dropped coordinate is -sum(x'), so sum x_full^2 = sum x'^2 + (sum x')^2
    total = np.sum(x * x, axis=-1, keepdims=True) + np.square(np.sum(x, axis=-1, keepdims=True))
    return (x / np.sqrt(total / attrs.dim + attrs.epsilon)).astype(x.dtype, copy=False)
