"""The table op -> numpy reference implementation."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..op import Op


@dataclass(frozen=True)
class Impl:
    fn: Callable
    # Split and friends need to know how many outputs the node has
    needs_outputs: bool = False

    def __call__(self, attrs, args: list, n_outputs: int):
        if self.needs_outputs:
            return self.fn(attrs, *args, n_outputs=n_outputs)
        return self.fn(attrs, *args)


_IMPLS: dict[Op, Impl] = {}


def reference(*ops: Op, needs_outputs: bool = False):
    """Register ``fn(attrs, *inputs) -> array | tuple`` as the definition of ``ops``.

    Omitted optional inputs arrive as None. With ``needs_outputs`` the function
    also gets ``n_outputs=`` (the node's output count).
    """
    def register(fn: Callable) -> Callable:
        for op in ops:
            if op in _IMPLS:
                raise ValueError(f"{op} has two reference implementations")
            _IMPLS[op] = Impl(fn, needs_outputs)
        return fn
    return register


def lookup(op: Op) -> Impl | None:
    return _IMPLS.get(op)


def supported_ops() -> frozenset[Op]:
    return frozenset(_IMPLS)
