"""Views and in-place results: which values share bytes, and the hazards that forbid it."""
from __future__ import annotations

import numpy as np

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir.attrs import ConcatAttrs, SplitAttrs
from fuseformer.passes.memory import Placement, analyze_aliasing, build_plan, check_plan


def same_bytes(al, a, b, delta=0) -> bool:
    (ga, oa), (gb, ob) = al.position[a], al.position[b]
    return ga == gb and oa == ob + delta


def split(g, x, sizes, axis, name):
    return g.make_node(Op.Split, [x, g.add_constant(np.array(sizes, np.int64), f"{name}_sizes")],
                       SplitAttrs(axis=axis), name=name, num_outputs=len(sizes)).outputs


def test_reshape_is_a_view_and_relu_goes_in_place():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (2, 6))
    r = g.make_node(Op.Relu, [x], name="relu").output  # x is a graph input: no in place
    s = g.make_node(Op.Reshape, [r, g.add_constant(np.array([3, 4], np.int64), "shape")], name="view").output
    g.outputs = [g.make_node(Op.Neg, [s], name="neg").output]
    al = analyze_aliasing(g)
    assert s in al.views and same_bytes(al, s, r)
    assert al.inplace == {g.outputs[0]: s}
    assert al.group(x) != al.group(r)


def test_split_views_only_along_the_outermost_axis():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (1, 6, 4))
    y = g.make_node(Op.Relu, [x], name="y").output
    rows = split(g, y, [2, 4], 1, "rows")  # [1, 6, 4] cut on axis 1: prefix dims are 1
    cols = split(g, y, [1, 3], 2, "cols")  # cut on the last axis: strided, copied
    g.outputs = [g.make_node(Op.Neg, [v], name=f"n{i}").output for i, v in enumerate(rows + cols)]
    al = analyze_aliasing(g)
    assert same_bytes(al, rows[0], y, 0) and same_bytes(al, rows[1], y, 2 * 4 * 4)
    assert not any(c in al.views or al.group(c) == al.group(y) for c in cols)


def test_concat_places_fresh_inputs_and_copies_the_rest():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (2, 3))
    a = g.make_node(Op.Relu, [x], name="a").output
    b = g.make_node(Op.Neg, [x], name="b").output
    c = g.make_node(Op.Concat, [a, x, b, a], ConcatAttrs(axis=0), name="cat").output
    g.outputs = [c]
    al = analyze_aliasing(g)
    assert same_bytes(al, a, c, 0) and same_bytes(al, b, c, 2 * 2 * 3 * 4)
    assert al.group(x) != al.group(c)  # a graph input is copied in, and so is a's second use
    assert c not in al.views  # the Concat still has slots to copy


def test_no_in_place_over_a_value_read_later():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (8,))
    a = g.make_node(Op.Relu, [x], name="a").output
    b = g.make_node(Op.Neg, [a], name="b").output  # a is read again below
    c = g.make_node(Op.Add, [a, b], name="c").output  # may overwrite a or b: both die here
    g.outputs = [c]
    al = analyze_aliasing(g)
    assert b not in al.inplace and al.inplace[c] in (a, b)


def test_linear_overwrites_its_residual_not_its_input():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (1, 4, 8))
    r = g.make_node(Op.Relu, [x], name="r").output
    h = g.make_node(Op.Neg, [x], name="h").output
    w = g.add_constant(np.eye(8, dtype=np.float32), "w")
    y = g.make_node(Op.Linear, [h, w, None, r], name="fc").output
    g.outputs = [y]
    al = analyze_aliasing(g)
    assert al.inplace == {y: r}
    assert al.group(y) != al.group(h)


def test_token_overwriting_puts_the_concat_over_the_stream():
    # rows of x are updated block by block in place; the Concat of the blocks is x's bytes
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (1, 6, 4))
    s = g.make_node(Op.Relu, [x], name="stream").output
    parts = split(g, s, [3, 3], 1, "rows")
    c = g.add_constant(np.ones((1, 1, 4), np.float32), "one")
    outs = [g.make_node(Op.Add, [p, c], name=f"blk{i}").output for i, p in enumerate(parts)]
    y = g.make_node(Op.Concat, outs, ConcatAttrs(axis=1), name="join").output
    g.outputs = [y]
    al = analyze_aliasing(g)
    assert same_bytes(al, y, s) and al.sizes[al.group(s)] == 6 * 4 * 4
    assert all(al.inplace[o] is p for o, p in zip(outs, parts))


def test_check_plan_catches_a_clobbered_value():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (16,))
    a = g.make_node(Op.Relu, [x], name="a").output
    b = g.make_node(Op.Neg, [x], name="b").output
    g.outputs = [g.make_node(Op.Add, [a, b], name="c").output]
    plan = build_plan(g)
    assert check_plan(plan) == []
    plan.placement[b] = Placement(plan.placement[a].offset, 64)  # b written over a, still needed
    problems = check_plan(plan)
    assert problems and "c (Add)" in problems[0] and "%a_out was overwritten" in problems[0]
