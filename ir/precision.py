"""Change a graph's float precision (float32 <-> float64), e.g. to check an exact rewrite in float64."""
from __future__ import annotations

import numpy as np

from .dtype import DType
from .graph import Graph
from .op import Op
from .tensor import Tensor


def convert_float(graph: Graph, dtype: DType = DType.DOUBLE, source: DType = DType.FLOAT) -> Graph:
    """A copy of ``graph`` whose ``source``-typed constants, inputs, values and casts use ``dtype``.

    Example:
        >>> g64 = convert_float(graph)          # run a float32 model, and its rewrites, in float64
    """
    g = graph.clone()
    for v in list(g.values()):
        if v.dtype is source:
            v.dtype = dtype
    for name, v in g.constants.items():
        if v.const.dtype is source:
            v.const = Tensor.from_numpy(np.asarray(v.const.numpy()).astype(dtype.numpy))
    for node in g.nodes:
        a = node.attrs
        if node.op is Op.Cast and a.to == source.value:
            node.attrs = a.replace(to=dtype.value)
        elif node.op in (Op.LayerNormalization, Op.GroupNormalization) and a.stash_type == source.value:
            node.attrs = a.replace(stash_type=dtype.value)
        elif node.op is Op.ConstantOfShape and a.value is not None and a.value.dtype is source:
            node.attrs = a.replace(value=Tensor.from_numpy(np.asarray(a.value.numpy()).astype(dtype.numpy)))
    return g
