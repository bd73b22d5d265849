"""Liveness under a schedule: bytes live per step, the peak, and the lower bounds."""
from __future__ import annotations

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir.attrs import ConcatAttrs
from fuseformer.passes.memory import analyze, lower_bound_any_schedule, value_intervals


def chain() -> Graph:
    g = Graph("chain")
    x = g.add_input("x", DType.FLOAT, (4,))  # 16 bytes
    a = g.make_node(Op.Concat, [x, x], ConcatAttrs(axis=0), name="a").output  # 32, copies the input
    b = g.make_node(Op.Neg, [a], name="b").output  # 32, in place over a
    c = g.make_node(Op.ReduceSum, [b], name="c").output  # 4
    g.outputs = [g.make_node(Op.Add, [c, c], name="out").output]  # 4, in place over c
    return g


def test_live_bytes_per_step():
    g = chain()
    lv = analyze(g)
    assert lv.live_bytes == [16 + 32, 32, 32 + 4, 4]
    assert (lv.peak, lv.peak_step) == (48, 0)
    names = {v.name for b in lv.live_at(0) for v in b.values}
    assert names == {"x", "a_out", "b_out"}  # b shares a's buffer
    assert lv.aliasing.inplace == {g.find_node("b").output: g.find_node("a").output,
                                   g.find_node("out").output: g.find_node("c").output}


def test_graph_output_lives_to_the_end():
    g = chain()
    a = g.find_node("a").output
    g.outputs.append(a)  # now a is read at the end: b can no longer overwrite it
    lv = analyze(g)
    assert g.find_node("b").output not in lv.aliasing.inplace
    assert lv.buffer_of(a).end == len(g.nodes)
    assert lv.live_bytes == [48, 32 + 32, 32 + 32 + 4, 32 + 4]


def test_lower_bound_over_all_schedules():
    # every schedule runs node a with x and a live; b and out may write in place
    assert lower_bound_any_schedule(chain()) == 48


def test_value_intervals():
    g = chain()
    iv = value_intervals(g, g.nodes)
    assert iv[g.inputs[0]] == (0, 0)
    assert iv[g.find_node("b").output] == (1, 2)
    assert iv[g.outputs[0]] == (3, 3)
