"""Shapes whose dims are integers or named symbols (batch, seq).

A dim is an ``int`` when known, a ``Sym`` when it is a named unknown that the
same name denotes everywhere in the graph, or ``None`` when nothing is known.
A shape is a tuple of dims, or ``None`` when even the rank is unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, order=True)
class Sym:
    """A named symbolic dim: every ``Sym("seq")`` in a graph has one value at run time."""

    name: str

    def __str__(self) -> str:
        return self.name


Dim = Union[int, Sym, None]
Shape = Union[tuple[Dim, ...], None]


def format_dim(d: Dim) -> str:
    return "?" if d is None else str(d)


def format_shape(shape: Shape) -> str:
    if shape is None:
        return "[*]"
    return "[" + ",".join(format_dim(d) for d in shape) + "]"


def is_static(shape: Shape) -> bool:
    return shape is not None and all(isinstance(d, int) for d in shape)


def numel(shape: Shape) -> int | None:
    if not is_static(shape):
        return None
    n = 1
    for d in shape:
        n *= d
    return n


def broadcast(*shapes: Shape) -> Shape:
    """Numpy broadcasting over symbolic dims; unknown where it cannot be decided.

    Raises ValueError when two known dims conflict.
    """
    if any(s is None for s in shapes):
        return None
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for i in range(rank):
        dims = [s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0]
        out.append(_broadcast_dim(dims))
    return tuple(out)


def _broadcast_dim(dims: list[Dim]) -> Dim:
    # an unknown dim is 1 or equal to the others (else the model is invalid), so any
    # known dim other than 1 decides the result
    known = {d for d in dims if d is not None and d != 1}
    if not known:
        return None if any(d is None for d in dims) else 1
    if len(known) == 1:
        return known.pop()
    ints = {d for d in known if isinstance(d, int)}
    if len(ints) > 1:
        raise ValueError(f"dims {sorted(ints)} do not broadcast")
    if ints:
        # a symbol broadcast against a concrete dim > 1 must equal it (or be 1)
        return ints.pop()
    return None
