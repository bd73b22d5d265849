"""The graph: an ordered node list over SSA values, edited in place by passes."""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from .attrs import Attrs
from .dtype import DType
from .node import Node
from .op import Op
from .shape import Shape
from .tensor import Tensor
from .value import Value

if TYPE_CHECKING:
    import networkx as nx


class Graph:
    """A dataflow graph in topological order.

    Values are unique by name. Constants (weights, folded values) are values
    with ``const`` set and no producer. Edits keep use lists exact; the node
    list may be edited while a pass iterates over ``list(graph.nodes)``.

    Example:
        >>> g = Graph("g")
        >>> x = g.add_input("x", DType.FLOAT, (Sym("batch"), 4))
        >>> y = g.make_node(Op.Relu, [x]).output
        >>> g.outputs.append(y)
        >>> g.verify()
    """

    def __init__(self, name: str = "main"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.constants: dict[str, Value] = {}
        self.opset: int = 21
        self.metadata: dict[str, str] = {}
        self._names: set[str] = set()
        self._counter = itertools.count()
        self._insert_at: tuple[str, Node] | None = None
        self._node_names: set[str] = set()

    # ---- names -------------------------------------------------------------
    def fresh_name(self, hint: str = "v") -> str:
        if hint and hint not in self._names:
            return hint
        while True:
            name = f"{hint}_{next(self._counter)}"
            if name not in self._names:
                return name

    def fresh_node_name(self, hint: str) -> str:
        """Node names are for people and errors: unique, but any string."""
        name, k = hint, 1
        while name in self._node_names:
            name = f"{hint}_{k}"
            k += 1
        return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"value name {name!r} is defined twice")
        self._names.add(name)
        return name

    # ---- building ----------------------------------------------------------
    def add_input(self, name: str, dtype: DType, shape: Shape) -> Value:
        v = Value(self._claim(name), dtype, shape)
        self.inputs.append(v)
        return v

    def add_constant(self, array: np.ndarray | Tensor, name: str = "const") -> Value:
        tensor = array if isinstance(array, Tensor) else Tensor.from_numpy(array)
        v = Value(self._claim(self.fresh_name(name)), tensor.dtype, tensor.shape, const=tensor)
        self.constants[v.name] = v
        return v

    def new_value(self, name: str = "v", dtype: DType | None = None, shape: Shape = None) -> Value:
        return Value(self._claim(self.fresh_name(name)), dtype, shape)

    def make_node(self, op: Op, inputs: Sequence[Value | None], attrs: Attrs | None = None,
                  name: str | None = None, num_outputs: int = 1,
                  output_names: Sequence[str] | None = None, infer: bool = True) -> Node:
        """Create a node with fresh outputs, infer their types and insert it.

        It goes at the current insertion point (see ``inserting_before``), else at the end.
        """
        name = self.fresh_node_name(name or op.value)
        names = output_names or [f"{name}_out{i}" if num_outputs > 1 else f"{name}_out"
                                 for i in range(num_outputs)]
        outputs = [self.new_value(n) for n in names]
        node = Node(op, inputs, outputs, attrs, name)
        if infer:
            from .infer import infer_node

            infer_node(node)
        self.insert(node)
        return node

    @contextlib.contextmanager
    def inserting_before(self, anchor: Node) -> Iterator[None]:
        saved, self._insert_at = self._insert_at, ("before", anchor)
        try:
            yield
        finally:
            self._insert_at = saved

    @contextlib.contextmanager
    def inserting_after(self, anchor: Node) -> Iterator[None]:
        saved, self._insert_at = self._insert_at, ("after", anchor)
        try:
            yield
        finally:
            self._insert_at = saved

    def insert(self, node: Node) -> None:
        """Insert a node built elsewhere (its output names must be new to this graph)."""
        for v in node.outputs:
            if v.name not in self._names:
                self._claim(v.name)
        node.graph = self
        self._node_names.add(node.name)
        if self._insert_at is None:
            self.nodes.append(node)
            return
        where, anchor = self._insert_at
        i = self.nodes.index(anchor) + (where == "after")
        self.nodes.insert(i, node)
        if where == "after":
            self._insert_at = ("after", node)  # keep successive inserts in program order

    # ---- editing -----------------------------------------------------------
    def erase(self, node: Node) -> None:
        """Remove a node whose outputs are no longer used."""
        for v in node.outputs:
            if v.uses or v in self.outputs:
                user = v.uses[0][0].describe() if v.uses else "a graph output"
                raise ValueError(f"cannot erase {node.describe()}: %{v.name} is still used by {user}")
        node.drop_uses()
        self.nodes.remove(node)
        node.graph = None
        self._node_names.discard(node.name)
        for v in node.outputs:
            self._names.discard(v.name)

    def replace_all_uses_with(self, old: Value, new: Value) -> None:
        """Point every use of ``old`` (node inputs and graph outputs) at ``new``.

        A graph output keeps its name (users fetch outputs by name): ``new`` takes
        it over when it is a node output not already returned, else an Identity
        named like ``old`` is appended.
        """
        if old is new:
            return
        for node, i in list(old.uses):
            node.set_input(i, new)
        if not any(o is old for o in self.outputs):
            return
        if new.producer is not None and not any(o is new for o in self.outputs):
            old.name, new.name = new.name, old.name
            self.outputs = [new if o is old else o for o in self.outputs]
            return
        keep = old.name
        if any(v is old for v in self.inputs):
            raise ValueError(f"graph output %{keep} is a graph input: it cannot be replaced by another value")
        self._names.discard(keep)
        old.name = self._claim(self.fresh_name(keep + "_replaced"))
        if old.const is not None:
            self.constants[old.name] = self.constants.pop(keep)
        alias = Value(self._claim(keep), new.dtype, new.shape)
        node = Node(Op.Identity, [new], [alias], name=self.fresh_node_name(f"{keep}/keep_name"))
        saved, self._insert_at = self._insert_at, None
        self.insert(node)
        self._insert_at = saved
        self.outputs = [alias if o is old else o for o in self.outputs]

    def remove_unused_constants(self) -> int:
        used = {id(o) for o in self.outputs}
        dead = [n for n, v in self.constants.items() if not v.uses and id(v) not in used]
        for n in dead:
            del self.constants[n]
            self._names.discard(n)
        return len(dead)

    def sort(self) -> None:
        """Re-order nodes topologically (stable: keeps the current order where it can)."""
        position = {id(n): i for i, n in enumerate(self.nodes)}
        indegree = {id(n): 0 for n in self.nodes}
        for n in self.nodes:
            indegree[id(n)] = len({id(v.producer) for v in n.inputs
                                   if v is not None and v.producer is not None})
        import heapq

        ready = [(position[id(n)], n) for n in self.nodes if indegree[id(n)] == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            _, n = heapq.heappop(ready)
            order.append(n)
            for user in {id(u): u for v in n.outputs for u, _ in v.uses}.values():
                if id(user) in indegree:
                    indegree[id(user)] -= 1
                    if indegree[id(user)] == 0:
                        heapq.heappush(ready, (position[id(user)], user))
        if len(order) != len(self.nodes):
            stuck = next(n for n in self.nodes if indegree[id(n)] > 0)
            raise ValueError(f"graph has a cycle through {stuck.describe()}")
        self.nodes = order

    def clone(self) -> Graph:
        """A structural copy: new Values and Nodes, the same (immutable) constant Tensors."""
        g = Graph(self.name)
        g.opset, g.metadata = self.opset, dict(self.metadata)
        vmap: dict[int, Value] = {}
        for v in self.inputs:
            vmap[id(v)] = g.add_input(v.name, v.dtype, v.shape)
        for v in self.constants.values():
            nv = Value(g._claim(v.name), v.dtype, v.shape, const=v.const)
            g.constants[v.name] = nv
            vmap[id(v)] = nv
        for n in self.nodes:
            outs = [Value(o.name, o.dtype, o.shape) for o in n.outputs]
            for o, no in zip(n.outputs, outs):
                vmap[id(o)] = no
            node = Node(n.op, [None if v is None else vmap[id(v)] for v in n.inputs], outs, n.attrs, n.name)
            g.insert(node)
        g.outputs = [vmap[id(v)] for v in self.outputs]
        return g

    # ---- queries -----------------------------------------------------------
    def values(self) -> Iterator[Value]:
        """Every value: inputs, constants, node outputs."""
        yield from self.inputs
        yield from self.constants.values()
        for n in self.nodes:
            yield from n.outputs

    def find_node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r}")

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op.value] = counts.get(n.op.value, 0) + 1
        return dict(sorted(counts.items()))

    def weight_bytes(self) -> int:
        return sum(v.const.nbytes for v in self.constants.values())

    def verify(self) -> None:
        from .verify import verify

        verify(self)

    def to_networkx(self) -> nx.MultiDiGraph:
        from .analysis import to_networkx

        return to_networkx(self)

    def __str__(self) -> str:
        from .printer import format_graph

        return format_graph(self)
