"""Seeded random inputs that fit a graph's input specs (for --verify and tests)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..ir.graph import Graph
from ..ir.op import Op
from ..ir.shape import Sym
from ..ir.value import Value

DEFAULT_DIM = 16
DEFAULT_BATCH = 1


def resolve_dims(graph: Graph, dims: Mapping[str, int]) -> dict[str, int]:
    """Value of every symbolic input dim: from ``dims``, else a default (batch-like 1, others 16)."""
    out: dict[str, int] = {}
    for v in graph.inputs:
        for d in v.shape or ():
            if isinstance(d, Sym) and d.name not in out:
                default = DEFAULT_BATCH if "batch" in d.name.lower() else DEFAULT_DIM
                out[d.name] = int(dims.get(d.name, default))
    unknown = sorted(set(dims) - set(out))
    if unknown:
        raise ValueError(f"--dim names {unknown} are not symbolic input dims of this model "
                         f"(it has {sorted(out) or 'none'})")
    return out


def random_feeds(graph: Graph, dims: Mapping[str, int] | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs drawn from a seeded generator.

    Integer inputs that index an embedding table stay inside it; inputs named
    like a mask are all ones, so padding does not hide differences.
    """
    sizes = resolve_dims(graph, dims or {})
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in graph.inputs:
        if v.shape is None:
            raise ValueError(f"input {v.name!r} has unknown rank; cannot make an input for it")
        shape = []
        for axis, d in enumerate(v.shape):
            if isinstance(d, int):
                shape.append(d)
            elif isinstance(d, Sym):
                shape.append(sizes[d.name])
            else:
                raise ValueError(f"input {v.name!r} dim {axis} is unknown and unnamed; "
                                 f"cannot make an input for it")
        feeds[v.name] = _draw(v, tuple(shape), rng)
    return feeds


def _draw(v: Value, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = v.dtype.numpy
    if dtype == np.bool_:
        return np.ones(shape, np.bool_) if "mask" in v.name.lower() else rng.random(shape) < 0.5
    if dtype.kind in "iu":
        if "mask" in v.name.lower():
            return np.ones(shape, dtype)
        return rng.integers(0, _index_bound(v), shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def _index_bound(v: Value, depth: int = 0) -> int:
    """Smallest table size among the Gathers this integer input indexes (through casts and reshapes)."""
    bound = None
    for node, i in v.uses:
        if node.op is Op.Gather and i == 1 and node.inputs[0].shape is not None:
            d = node.inputs[0].shape[node.attrs.axis]
            if isinstance(d, int):
                bound = d if bound is None else min(bound, d)
        elif node.op in (Op.Cast, Op.Unsqueeze, Op.Reshape, Op.Squeeze, Op.Flatten) and i == 0 and depth < 4:
            b = _index_bound(node.outputs[0], depth + 1)
            bound = b if bound is None else min(bound, b)
    return bound if bound is not None else 2
