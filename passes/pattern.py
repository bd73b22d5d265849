"""Pattern rewriting: rules spelled as target / replacement functions, with reasons for near misses.

A rule's ``target(op, x, ...)`` spells the subgraph as it appears; every
parameter after ``op`` is a variable that binds a Value (the same variable twice
must bind the same Value). ``replacement(op, match)`` builds the new subgraph
and returns its output. ``check(match)`` returns None to accept or a reason;
an empty reason rejects silently (the match is another rule's case, e.g. a
non-constant addend is a residual, not a bias), so it is no near miss.

    # LayerNorm = (x - mean(x)) / sqrt(var(x) + eps) * gamma + beta
    def target(op, x, axes, eps, gamma, beta): ...

Add, Mul and the other commutative ops match in either operand order. Every
matched node but the root must be used only inside the match (else fusing
would duplicate its work), and a failure past the root is recorded as a near
miss with the reason, so ``--report`` can say why a fusion did not happen.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Graph
from ..ir.node import Node
from ..ir.op import COMMUTATIVE, Op
from ..ir.value import Value


# ---- pattern terms ------------------------------------------------------------
@dataclass(eq=False)
class PVar:
    name: str


@dataclass(eq=False)
class PConst:
    """A constant input whose every element is ``value`` (within rtol)."""

    value: float
    rtol: float = 1e-6


@dataclass(eq=False)
class PNode:
    ops: tuple[Op, ...]
    inputs: list
    attrs: dict
    # the output index of the matched node this term refers to
    output: int = 0
    # inputs beyond those listed may be present (e.g. optional axes)
    name: str | None = None


@dataclass(eq=False)
class PAlt:
    """Any one of several alternative terms (tried in order, with backtracking)."""

    alternatives: tuple


class _TargetBuilder:
    """The ``op`` of a target function: ``op.Add(a, b)``, ``op.const(0.5)``, ``op.any(Op.Div, Op.Mul)``."""

    def __getattr__(self, name: str):
        op = Op[name]

        def build(*inputs, _name: str | None = None, **attrs) -> PNode:
            return PNode((op,), list(inputs), attrs, name=_name)
        return build

    def any(self, *ops: Op) -> Callable[..., PNode]:
        def build(*inputs, _name: str | None = None, **attrs) -> PNode:
            return PNode(tuple(ops), list(inputs), attrs, name=_name)
        return build

    @staticmethod
    def const(value: float, rtol: float = 1e-6) -> PConst:
        return PConst(value, rtol)

    @staticmethod
    def either(*alternatives) -> PAlt:
        return PAlt(tuple(alternatives))


# ---- matches --------------------------------------------------------------------
@dataclass
class Match:
    root: Node
    values: dict[str, Value] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    matched: list[Node] = field(default_factory=list)

    def __getitem__(self, name: str) -> Value:
        return self.values[name]

    def const(self, name: str) -> np.ndarray | None:
        v = self.values[name]
        return None if v.const is None else np.asarray(v.const.numpy())


class _Failures:
    """The deepest failure seen while matching: the most informative near-miss reason."""

    def __init__(self):
        self.reason, self.depth = "no match", -1

    def __call__(self, reason: str, depth: int) -> None:
        if depth > self.depth:
            self.reason, self.depth = reason, depth


# Matching is a generator of Matches with backtracking: a term that cannot match
# yields nothing and logs why; the caller tries the next alternative or order.
def _match_value(term, value: Value | None, m: Match, depth: int, fail: _Failures) -> Iterator[Match]:
    if isinstance(term, PAlt):
        for alt in term.alternatives:
            yield from _match_value(alt, value, m, depth, fail)
        return
    if isinstance(term, PVar):
        bound = m.values.get(term.name)
        if bound is None:
            if value is None:
                fail(f"{term.name} is absent", depth)
                return
            m2 = _copy(m)
            m2.values[term.name] = value
            yield m2
        elif bound is value:
            yield m
        else:
            fail(f"%{value.name if value else '_'} is not the same value as {term.name} (%{bound.name})", depth)
        return
    if value is None:
        fail("an input is absent", depth)
        return
    if isinstance(term, PConst):
        if value.const is None:
            fail(f"%{value.name} is not a constant (expected {term.value:g})", depth)
            return
        arr = np.asarray(value.const.numpy(), dtype=np.float64)
        if arr.size == 0 or not np.allclose(arr, term.value, rtol=term.rtol, atol=0):
            fail(f"constant %{value.name} is not {term.value:g}", depth)
            return
        yield m
        return
    node = value.producer
    if node is None:
        kind = "constant" if value.const is not None else "graph input"
        fail(f"%{value.name} is a {kind}, expected the output of {'/'.join(o.value for o in term.ops)}", depth)
        return
    yield from _match_node(term, node, value.index, m, depth, fail)


def _match_node(term: PNode, node: Node, out_index: int, m: Match, depth: int,
                fail: _Failures) -> Iterator[Match]:
    if node.op not in term.ops:
        fail(f"{node.describe()} is not {'/'.join(o.value for o in term.ops)}", depth)
        return
    if out_index != term.output:
        fail(f"{node.describe()} output {out_index} is used, expected output {term.output}", depth)
        return
    for key, want in term.attrs.items():
        have = getattr(node.attrs, key)
        if have != want:
            fail(f"{node.describe()} has {key}={have!r}, expected {want!r}", depth)
            return
    if len(term.inputs) > len(node.inputs):
        fail(f"{node.describe()} has {len(node.inputs)} inputs, expected {len(term.inputs)}", depth)
        return
    m = _copy(m)
    m.matched.append(node)
    if term.name:
        m.nodes[term.name] = node
    orders = [list(range(len(term.inputs)))]
    if node.op in COMMUTATIVE and len(term.inputs) == 2:
        orders.append([1, 0])
    for order in orders:
        yield from _match_inputs(term, node, order, 0, m, depth + 1, fail)


def _match_inputs(term: PNode, node: Node, order: list[int], k: int, m: Match, depth: int,
                  fail: _Failures) -> Iterator[Match]:
    if k == len(term.inputs):
        yield m
        return
    for m2 in _match_value(term.inputs[k], node.inputs[order[k]], m, depth, fail):
        yield from _match_inputs(term, node, order, k + 1, m2, depth, fail)


def _height(term) -> int:
    if isinstance(term, PAlt):
        return max(_height(t) for t in term.alternatives)
    if isinstance(term, PNode):
        return 1 + max((_height(t) for t in term.inputs), default=0)
    return 0


def _copy(m: Match) -> Match:
    return Match(m.root, dict(m.values), dict(m.nodes), list(m.matched))


# ---- rules ------------------------------------------------------------------------
@dataclass
class Rule:
    """One rewrite. ``kind`` groups rules in the report (e.g. "LayerNorm")."""

    kind: str
    target: Callable
    replacement: Callable
    check: Callable[[Match], str | None] | None = None
    one_use: bool = True
    name: str = ""
    _root: PNode | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        params = list(inspect.signature(self.target).parameters)[1:]
        self._root = self.target(_TargetBuilder(), *[PVar(p) for p in params])
        self.name = self.name or getattr(self.target, "__name__", self.kind)

    @property
    def near_miss_depth(self) -> int:
        """A failure this deep (half the pattern's height, at least 2) is worth reporting."""
        return max(NEAR_MISS_DEPTH, (_height(self._root) + 1) // 2)

    def _roots(self) -> list[PNode]:
        return list(self._root.alternatives) if isinstance(self._root, PAlt) else [self._root]

    @property
    def root_ops(self) -> tuple[Op, ...]:
        return tuple(dict.fromkeys(op for r in self._roots() for op in r.ops))

    def match(self, node: Node) -> tuple[Match | None, str | None, int]:
        """(match, None, depth) on success, else (None, reason, depth of the failure).

        Structural matches are tried in turn until one passes the one-use
        constraint and the check; a check's reason outranks structural ones.
        """
        fail = _Failures()
        rejected: str | None = None
        not_applicable = False
        candidates = (m for root in self._roots() for m in _match_node(root, node, 0, Match(node), 0, fail))
        for m in candidates:
            reason = self._one_use(m) if self.one_use else None
            verdict = self.check(m) if self.check is not None else None
            if verdict == "":
                not_applicable = True  # another rule's case: no near miss, whatever else failed
                continue
            reason = reason or verdict
            if reason is None:
                return m, None, CHECK_DEPTH + 1
            rejected = rejected or reason
        if rejected is not None:
            return None, rejected, CHECK_DEPTH
        if not_applicable:
            return None, "not applicable", -1
        return None, fail.reason, fail.depth

    @staticmethod
    def _one_use(m: Match) -> str | None:
        inside = {id(n) for n in m.matched}
        for n in m.matched:
            if n is m.root:
                continue
            for v in n.outputs:
                for user, _ in v.uses:
                    if id(user) not in inside:
                        return (f"intermediate %{v.name} of {n.describe()} is also used by "
                                f"{user.describe()}; fusing would compute it twice")
                if n.graph is not None and v in n.graph.outputs:
                    return f"intermediate %{v.name} of {n.describe()} is a graph output"
        return None


class RewriteBuilder:
    """The ``op`` of a replacement: ``op.RMSNorm(x, scale, epsilon=1e-6)`` inserts before the root."""

    def __init__(self, graph: Graph, root: Node):
        self.graph, self.root = graph, root

    def __getattr__(self, name: str):
        op = Op[name]

        def build(*inputs, _outputs: int = 1, _name: str | None = None, **attrs):
            with self.graph.inserting_before(self.root):
                node = self.graph.make_node(op, list(inputs), op.attrs_type(**attrs),
                                            name=_name or f"{self.root.name}/{op.value}",
                                            num_outputs=_outputs)
            return node.outputs if _outputs > 1 else node.output
        return build

    def const(self, array, name: str = "c") -> Value:
        return self.graph.add_constant(np.asarray(array), f"{self.root.name}/{name}")


# the depth a failure must reach to count as a near miss worth reporting: the
# root matched and at least one of its inputs did too
NEAR_MISS_DEPTH = 2
# a structural match rejected by one-use or check ranks above any structural failure
CHECK_DEPTH = 1000


def apply_rules(graph: Graph, rules: list[Rule], report=None) -> int:
    """Apply rules once over the graph, first match per node wins. Returns the number of rewrites.

    Nodes are visited from the outputs up, so a pattern is tried at its root
    before any of its sub-patterns can claim the nodes inside it.
    """
    by_op: dict[Op, list[Rule]] = {}
    for r in rules:
        for op in r.root_ops:
            by_op.setdefault(op, []).append(r)
    count = 0
    misses: list[tuple[Node, str, str]] = []
    for node in reversed(list(graph.nodes)):
        if node.graph is not graph:
            continue
        best = None
        for rule in by_op.get(node.op, ()):
            m, reason, depth = rule.match(node)
            if m is None:
                if depth >= rule.near_miss_depth and (best is None or depth > best[0]):
                    best = (depth, rule.kind, reason)
                continue
            new = rule.replacement(RewriteBuilder(graph, node), m)
            news = new if isinstance(new, (list, tuple)) else [new]
            for old, nv in zip(node.outputs, news):
                if old.shape is not None:
                    nv.shape = old.shape  # the rewrite keeps the type; keep the better-known shape
                graph.replace_all_uses_with(old, nv)
            _erase_dead(graph, m.matched)
            if report is not None:
                report.record_fired(rule.kind)
            count += 1
            best = None
            break
        if best is not None:
            misses.append((node, best[1], best[2]))
    if report is not None:
        for node, kind, reason in misses:
            if node.graph is graph:  # not swallowed by a later fusion
                report.record_miss(kind, node.name, reason)
    return count


def _erase_dead(graph: Graph, nodes: list[Node]) -> set[int]:
    erased = set()
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if id(n) in erased or n.graph is not graph:
                continue
            if all(not v.uses and v not in graph.outputs for v in n.outputs):
                graph.erase(n)
                erased.add(id(n))
                changed = True
    return erased
