"""Elementwise ops: unary math and activations, broadcasting binary ops, comparisons, casts."""
from __future__ import annotations

import numpy as np

from ..op import Op
from .registry import reference


@reference(Op.Add)
def add(attrs, a, b):
    return a + b


@reference(Op.Relu)
def relu(attrs, x):
    return np.maximum(x, np.zeros((), x.dtype))
