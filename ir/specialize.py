"""Specialize a graph to concrete dims: every symbol bound, every shape an integer tuple.

Targets without dynamic shapes (the microcontroller backend, memory planning) need
the size of every tensor. ``specialize(graph, {"batch": 1, "seq": 16})`` returns a
copy whose inputs carry the given dims, re-infers every shape in order, folds the
shape arithmetic that has become constant, and fails, naming the value and its
producer, when a shape is still not static.
"""
from __future__ import annotations

from collections.abc import Mapping

from .errors import ModelError
from .graph import Graph
from .infer import infer_node
from .shape import Sym, format_shape, is_static


def specialize(graph: Graph, dims: Mapping[str, int]) -> Graph:
    """A copy of ``graph`` with the symbols of ``dims`` bound and every shape static.

    Example:
        >>> from fuseformer.ir.graph import Graph
        >>> from fuseformer.ir.dtype import DType
        >>> from fuseformer.ir.op import Op
        >>> from fuseformer.ir.shape import Sym
        >>> g = Graph("g")
        >>> x = g.add_input("x", DType.FLOAT, (Sym("seq"), 4))
        >>> y = g.make_node(Op.Relu, [x]).outputs[0]
        >>> g.outputs.append(y)
        >>> specialize(g, {"seq": 3}).outputs[0].shape
        (3, 4)
    """
    from ..passes.context import PassContext
    from ..passes.manager import PassManager
    from ..passes.pipeline import canonicalize_passes

    g = graph.clone()
    missing: list[str] = []
    for v in g.inputs:
        if v.shape is None:
            raise ModelError(f"input {v.name!r} has no known rank: it cannot be specialized")
        new = []
        for d in v.shape:
            if isinstance(d, Sym):
                if d.name not in dims:
                    missing.append(d.name)
                    new.append(d)
                else:
                    new.append(int(dims[d.name]))
            else:
                new.append(d)
        v.shape = tuple(new)
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise ModelError(f"dims {names} need a value (--dim NAME=N) to specialize the graph")
    _reinfer(g)
    PassManager(canonicalize_passes(), fixpoint=True)(g, PassContext())
    _reinfer(g)
    for n in g.nodes:
        for o in n.outputs:
            if not is_static(o.shape):
                raise ModelError(
                    f"node {n.name!r} ({n.op.name}): output {o.name!r} has shape "
                    f"{format_shape(o.shape)} after binding {dict(dims)}; a static shape is needed")
    return g


def _reinfer(g: Graph) -> None:
    for n in g.nodes:
        for o in n.outputs:
            # forget what depended on the symbols; the rules recompute it from the inputs
            if o.shape is not None and any(not isinstance(d, int) for d in o.shape):
                o.shape = tuple(None for _ in o.shape)
        infer_node(n)
