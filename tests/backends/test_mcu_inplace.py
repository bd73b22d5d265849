"""Hand-made memory plans: views, in-place results and overlaps the C99 code must get right.

The planner's contract (passes/memory/plan.py) lets values share bytes: Reshape and
Split outputs and Concat inputs as views, elementwise outputs and Linear over their
residual in place. Each plan here is built by hand so every such case is exercised
whatever the planner of the day chooses; the numbers must still match the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.backends.mcu import PlanError, compile_mcu
from fuseformer.backends.mcu.timeline import timeline
from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.passes.memory.plan import MemoryPlan, Placement, value_bytes

from .mcu_checks import check_against_interpreter, needs_gcc, out, randn

pytestmark = needs_gcc
F32 = DType.FLOAT
RNG = np.random.default_rng(5)


def plan_of(g: Graph, offsets: dict) -> MemoryPlan:
    placement = {v: Placement(off, value_bytes(v)) for v, off in offsets.items()}
    arena = max(p.offset + p.size for p in placement.values())
    return MemoryPlan(g, list(g.nodes), placement, arena, flash_bytes=0)


def aliased_graph():
    g = Graph("inplace")
    x, y = g.add_input("x", F32, (4, 8)), g.add_input("y", F32, (4, 8))
    z, y2 = g.add_input("z", F32, (4, 8)), g.add_input("y2", F32, (4, 8))
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    r = out(g, Op.Relu, [x])
    a = out(g, Op.Add, [r, y])
    v = out(g, Op.Reshape, [a, ints(2, 16)])
    s0, s1 = out(g, Op.Split, [v], A.SplitAttrs(axis=0, num_outputs=2), n=2)
    t0, t1 = out(g, Op.Neg, [s0]), out(g, Op.Exp, [s1])
    c = out(g, Op.Concat, [t0, t1], A.ConcatAttrs(axis=0))
    ln = out(g, Op.LayerNormalization, [c, g.add_constant(randn(RNG, 16), "g")])
    sm = out(g, Op.Softmax, [ln])
    fl = out(g, Op.Reshape, [sm, ints(4, 8)])
    lin = out(g, Op.Linear, [z, g.add_constant(randn(RNG, 8, 8), "w"), g.add_constant(randn(RNG, 8), "b"), fl],
              A.LinearAttrs(activation="gelu"))
    sk_y, sk_s = out(g, Op.SkipLayerNorm, [lin, y2, g.add_constant(randn(RNG, 8), "gamma")], n=2)
    g.outputs.extend([sk_y, sk_s])
    # one 128-byte slot holds the whole chain x -> r -> a -> v -> (s0, s1) -> ... -> lin -> sk_s
    chain = [x, r, a, v, s0, t0, c, ln, sm, fl, lin, sk_s]
    offsets = {val: 0 for val in chain} | {s1: 64, t1: 64, y: 128, z: 256, y2: 384, sk_y: 384}
    return g, offsets


def test_views_and_in_place_results_match_the_interpreter(tmp_path):
    g, offsets = aliased_graph()
    plan = plan_of(g, offsets)
    assert plan.arena_bytes == 512
    feeds = {n: randn(RNG, 4, 8) for n in ("x", "y", "z", "y2")}
    path = check_against_interpreter(g, feeds, tmp_path / "art", plan=plan)
    source = (path / "model.c").read_text()
    body = source[source.index("int model_run(void)"):]
    # Reshape, Split and Concat are views here: no byte moves at all
    assert "memcpy" not in body and "memmove" not in body
    # two Reshapes, each Split output, each Concat input
    assert body.count("the memory plan made this a view") == 6
    assert "unsigned char bytes[512];" in source


def test_timeline_counts_shared_bytes_once():
    g, offsets = aliased_graph()
    tl = timeline(plan_of(g, offsets))
    concat = next(i for i, n in enumerate(tl.schedule) if n.op is Op.Concat)
    live = tl.live_at(concat)
    # t0 and t1 sit inside the Concat output c; z and y2 wait for Linear and SkipLayerNorm
    assert {iv.value.name for iv in live} == {"Neg_out", "Exp_out", "Concat_out", "z", "y2"}
    assert sum(iv.size for iv in live) == 512 and tl.live[concat] == 384
    assert tl.peak_bytes == 512 and tl.peak_step == 0 and "peak 512 bytes live at step 0" in tl.table()


def test_overlapping_copy_uses_memmove(tmp_path):
    g = Graph("shift")
    x = g.add_input("x", F32, (16,))
    v = out(g, Op.Reshape, [x, g.add_constant(np.array([4, 4], np.int64), "s")])
    g.outputs.append(out(g, Op.Neg, [v]))
    plan = plan_of(g, {x: 0, v: 32, g.outputs[0]: 96})  # v starts inside x: a shifted copy
    path = check_against_interpreter(g, {"x": randn(RNG, 16)}, tmp_path / "art", plan=plan)
    assert "memmove(" in (path / "model.c").read_text()


def test_a_plan_no_kernel_can_run_with_is_refused(tmp_path):
    g = Graph("bad")
    x = g.add_input("x", F32, (4, 8))
    t = g.make_node(Op.Transpose, [x], A.TransposeAttrs((1, 0)), name="swap").output
    g.outputs.append(out(g, Op.Relu, [t]))
    with pytest.raises(PlanError, match=r"node swap \(Transpose\).*over input 'x'"):
        compile_mcu(g, tmp_path / "a", plan=plan_of(g, {x: 0, t: 0, g.outputs[0]: 128}))
    shifted = plan_of(g, {x: 0, t: 128, g.outputs[0]: 132})  # Relu over its input, 4 bytes off
    with pytest.raises(PlanError, match=r"Relu.*cannot run in place"):
        compile_mcu(g, tmp_path / "b", plan=shifted)
    with pytest.raises(PlanError, match="places no bytes"):
        compile_mcu(g, tmp_path / "c", plan=plan_of(g, {x: 0, t: 128}))
    assert not any(tmp_path.iterdir())


def test_outputs_nobody_reads_may_go_unplaced(tmp_path):
    g = Graph("dropped")
    x = g.add_input("x", F32, (4, 8))
    y, mean, inv = out(g, Op.LayerNormalization, [x, g.add_constant(randn(RNG, 8), "g")], n=3)
    s0, s1 = out(g, Op.Split, [y], A.SplitAttrs(axis=1, num_outputs=2), n=2)
    g.outputs.append(out(g, Op.Relu, [s0]))
    plan = plan_of(g, {x: 0, y: 128, s0: 256, g.outputs[0]: 384})  # mean, inv and s1: no bytes
    path = check_against_interpreter(g, {"x": randn(RNG, 4, 8)}, tmp_path / "art", plan=plan)
    assert "ff_layernorm(4, 8, v0, 0, 1, 0, w0, 0, " in (path / "model.c").read_text()
