"""The reference interpreter: runs a graph with the numpy definition of each op."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .analysis import last_uses
from .graph import Graph
from .node import Node
from .shape import Sym
from .value import Value


class InterpreterError(RuntimeError):
    """An op failed or produced a value that contradicts its declared type; names the node."""


class InputError(ValueError):
    """A feed does not match the graph's input spec."""


def run(graph: Graph, feeds: Mapping[str, np.ndarray], *, check_types: bool = True,
        float_dtype: np.dtype | None = None) -> dict[str, np.ndarray]:
    """Run ``graph`` on ``feeds`` (input name -> array) and return output name -> array.

    Each value is freed after its last use. ``float_dtype=np.float64`` runs the
    float32 graph in float64 (constants and float inputs upcast), which the
    exactness tests of the re-parameterizations use; type checks then ignore
    float width.

    Example:
        >>> outputs = run(graph, {"x": np.ones((2, 4), np.float32)})
    """
    return Interpreter(graph, check_types=check_types, float_dtype=float_dtype).run(feeds)


class Interpreter:
    def __init__(self, graph: Graph, *, check_types: bool = True, float_dtype: np.dtype | None = None):
        from . import reference

        self.graph = graph
        self.check_types = check_types
        self.float_dtype = None if float_dtype is None else np.dtype(float_dtype)
        self._impls = []
        for node in graph.nodes:
            impl = reference.lookup(node.op)
            if impl is None:
                raise InterpreterError(f"node {node.describe()}: no reference implementation")
            self._impls.append(impl)
        self._frees = last_uses(graph)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        env: dict[int, np.ndarray] = {}
        for v in self.graph.constants.values():
            env[id(v)] = self._widen(np.asarray(v.const.numpy()))
        for v, arr in zip(self.graph.inputs, self._check_feeds(feeds)):
            env[id(v)] = self._widen(arr)
        keep = {id(v) for v in self.graph.outputs}
        for step, (node, impl) in enumerate(zip(self.graph.nodes, self._impls)):
            args = [None if v is None else env[id(v)] for v in node.inputs]
            try:
                result = impl(node.attrs, args, len(node.outputs))
            except InterpreterError:
                raise
            except Exception as e:
                raise InterpreterError(f"while running node {node.describe()}: "
                                       f"{type(e).__name__}: {e}") from e
            results = result if isinstance(result, tuple) else (result,)
            if len(results) < len(node.outputs):
                raise InterpreterError(f"node {node.describe()}: the reference gave {len(results)} "
                                       f"outputs, the node has {len(node.outputs)}")
            for v, arr in zip(node.outputs, results):
                # a Cast to float32 must not narrow a float64 run back down
                arr = self._widen(np.asarray(arr))
                if self.check_types:
                    self._check_result(node, v, arr)
                env[id(v)] = arr
            for v in self._frees.get(step, ()):
                if id(v) not in keep:
                    env.pop(id(v), None)
        return {v.name: env[id(v)] for v in self.graph.outputs}

    def _widen(self, arr: np.ndarray) -> np.ndarray:
        if self.float_dtype is not None and arr.dtype.kind == "f":
            return arr.astype(self.float_dtype)
        return arr

    def _check_feeds(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        expected = [v.name for v in self.graph.inputs]
        unknown = sorted(set(feeds) - set(expected))
        missing = [n for n in expected if n not in feeds]
        if unknown or missing:
            raise InputError(f"inputs do not match: missing {missing}, unexpected {unknown}; "
                             f"the graph takes {expected}")
        symbols: dict[Sym, int] = {}
        arrays = []
        for v in self.graph.inputs:
            arr = np.asarray(feeds[v.name])
            if arr.dtype != v.dtype.numpy:
                raise InputError(f"input {v.name!r} must be {v.dtype.numpy}, got {arr.dtype}")
            if v.shape is not None:
                if arr.ndim != len(v.shape):
                    raise InputError(f"input {v.name!r} must have rank {len(v.shape)} "
                                     f"({v.type_str()}), got shape {list(arr.shape)}")
                for axis, (want, got) in enumerate(zip(v.shape, arr.shape)):
                    if isinstance(want, int) and want != got:
                        raise InputError(f"input {v.name!r} dim {axis} must be {want}, got {got}")
                    if isinstance(want, Sym):
                        if symbols.setdefault(want, got) != got:
                            raise InputError(f"input {v.name!r} dim {axis} is {want.name}={got}, but "
                                             f"another input set {want.name}={symbols[want]}")
            arrays.append(arr)
        return arrays

    def _check_result(self, node: Node, v: Value, arr: np.ndarray) -> None:
        want = v.dtype.numpy
        same = arr.dtype == want or (self.float_dtype is not None and arr.dtype.kind == "f" == want.kind)
        if not same:
            raise InterpreterError(f"node {node.describe()} output %{v.name}: the reference gave "
                                   f"{arr.dtype}, the graph declares {want}")
        if v.shape is not None:
            ok = arr.ndim == len(v.shape) and all(
                not isinstance(d, int) or d == n for d, n in zip(v.shape, arr.shape))
            if not ok:
                raise InterpreterError(f"node {node.describe()} output %{v.name}: the reference gave "
                                       f"shape {list(arr.shape)}, the graph declares {v.type_str()}")
