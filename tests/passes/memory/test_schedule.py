"""Peak-minimizing scheduling: the DP against brute force, and never worse than graph order."""
from __future__ import annotations

import itertools
import random

import pytest

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir.attrs import ConcatAttrs
from fuseformer.passes.memory import analyze, analyze_aliasing, minimize_peak, model_peak
from fuseformer.passes.memory.planner import schedule_graph
from fuseformer.passes.memory.schedule import MemoryModel, _base, _Segment

from .models import MODELS, specialized


def random_dag(seed: int, n_nodes: int) -> Graph:
    """Elementwise ops and concats of random widths: buffers of many sizes, in-place chances."""
    rng = random.Random(seed)
    g = Graph(f"dag{seed}")
    values = [g.add_input("x", DType.FLOAT, (rng.randint(1, 8),)), g.add_input("y", DType.FLOAT, (rng.randint(1, 8),))]
    for i in range(n_nodes):
        kind = rng.choice(["relu", "neg", "concat", "concat", "add"])
        a = rng.choice(values)
        if kind == "add":
            same = [v for v in values if v.shape == a.shape]
            out = g.make_node(Op.Add, [a, rng.choice(same)], name=f"n{i}").output
        elif kind == "concat":
            parts = [a] + rng.sample(values, k=min(len(values), rng.randint(1, 2)))
            out = g.make_node(Op.Concat, parts, ConcatAttrs(axis=0), name=f"n{i}").output
        else:
            out = g.make_node(Op.Relu if kind == "relu" else Op.Neg, [a], name=f"n{i}").output
        values.append(out)
    g.outputs = [v for v in values[2:] if not v.uses] or [values[-1]]
    return g


def brute_force_peak(g: Graph, aliasing) -> int:
    """The least peak over every topological order, in the scheduler's model."""
    model = MemoryModel(g, aliasing)
    index = {n: i for i, n in enumerate(g.nodes)}
    seg = _Segment(model, list(range(len(g.nodes))), [0] * len(g.nodes), 0)
    return min(seg.run([index[n] for n in order], _base(model))[0] for order in topological_orders(g))


def topological_orders(graph: Graph):
    for perm in itertools.permutations(graph.nodes):
        done: set = set()
        ok = True
        for n in perm:
            if any(v.producer is not None and v.producer not in done for v in n.inputs if v is not None):
                ok = False
                break
            done.add(n)
        if ok:
            yield list(perm)


@pytest.mark.parametrize("seed", range(12))
def test_dp_matches_brute_force(seed):
    g = random_dag(seed, n_nodes=7)
    aliasing = analyze_aliasing(g)
    best = brute_force_peak(g, aliasing)
    result = minimize_peak(g, aliasing)
    assert result.exact
    assert result.peak == best
    assert model_peak(g, result.order, aliasing) == best


@pytest.mark.parametrize("seed", range(6))
def test_dp_alone_matches_brute_force(seed):
    # the DP over the whole graph as one segment, without the cut and bound shortcuts
    g = random_dag(50 + seed, n_nodes=7)
    aliasing = analyze_aliasing(g)
    best = brute_force_peak(g, aliasing)
    model = MemoryModel(g, aliasing)
    n = len(g.nodes)
    seg = _Segment(model, list(range(n)), [0] * n, 0)
    order, peak = seg.dp(_base(model), bound=1 << 60, max_transitions=10 ** 6)
    assert peak == best == model_peak(g, [g.nodes[k] for k in order], aliasing)
    assert seg.lower_bound(_base(model)) <= best


@pytest.mark.parametrize("seed", range(8))
def test_heuristic_never_worse_than_graph_order(seed):
    g = random_dag(100 + seed, n_nodes=40)
    aliasing = analyze_aliasing(g)
    greedy_only = minimize_peak(g, aliasing, dp_max_nodes=0)
    assert greedy_only.peak <= model_peak(g, g.nodes, aliasing)
    chosen = schedule_graph(g)
    assert chosen.liveness.peak <= analyze(g).peak
    assert sorted(map(id, chosen.schedule)) == sorted(map(id, g.nodes))


def test_dp_beats_graph_order_on_a_branchy_graph():
    # graph order runs both wide branches before either narrow reduction; the best order
    # reduces each branch as soon as it is computed
    g = Graph("branches")
    x = g.add_input("x", DType.FLOAT, (4,))
    wide = [g.make_node(Op.Concat, [x] * 8, ConcatAttrs(axis=0), name=f"wide{i}").output for i in range(2)]
    narrow = [g.make_node(Op.ReduceSum, [w], name=f"sum{i}").output for i, w in enumerate(wide)]
    g.outputs = [g.make_node(Op.Add, narrow, name="out").output]
    graph_order = analyze(g).peak
    chosen = schedule_graph(g)
    assert chosen.exact
    assert chosen.liveness.peak < graph_order
    assert [n.name for n in chosen.schedule] == ["wide0", "sum0", "wide1", "sum1", "out"]


@pytest.mark.parametrize("name", MODELS)
def test_models_schedule_not_worse(name):
    g = specialized(name)
    chosen = schedule_graph(g)
    assert chosen.liveness.peak <= chosen.original_peak == analyze(g).peak
    assert chosen.exact  # unchunked, every segment between cuts is small enough for the DP
