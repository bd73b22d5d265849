"""GELU fusion: every association order exporters write, numbers, near misses, the zoo.

Tolerances: fp32 atol 1e-4, rtol 1e-4 (Gelu multiplies by 1/sqrt(2) where the
decomposition may divide by sqrt(2)).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.interpreter import run
from fuseformer.passes.fusion.gelu import FuseGelu

from .checks import apply, assert_same_numbers, body
from .fused_zoo import TRANSFORMER_IDS, TRANSFORMER_ZOO, optimized

B, S = Sym("batch"), Sym("seq")
F32 = DType.FLOAT
RNG = np.random.default_rng(0)


def const(g, value, name):
    return g.add_constant(np.asarray(value, np.float32), name)


def node(g, op, inputs, name):
    return g.make_node(op, inputs, name=name).output


def half_product(g, x, h, order, half=0.5):
    """x * h * 0.5 associated as ``order`` says."""
    if order == "torchscript":      # (x * h) * 0.5
        return node(g, Op.Mul, [node(g, Op.Mul, [x, h], "xh"), const(g, half, "half")], "gelu")
    if order == "dynamo":           # x * (0.5 * h)
        return node(g, Op.Mul, [x, node(g, Op.Mul, [const(g, half, "half"), h], "hh")], "gelu")
    if order == "gelu_new":         # (0.5 * x) * h
        return node(g, Op.Mul, [node(g, Op.Mul, [const(g, half, "half"), x], "hx"), h], "gelu")
    assert order == "div2"          # (x * h) / 2
    return node(g, Op.Div, [node(g, Op.Mul, [h, x], "xh"), const(g, 1 / half, "two")], "gelu")


def erf_graph(order="torchscript", arg="div", half=0.5):
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    if arg == "div":
        z = node(g, Op.Div, [x, const(g, 1.4142135, "sqrt2")], "arg")
    else:
        z = node(g, Op.Mul, [const(g, 0.70710678, "inv_sqrt2"), x], "arg")
    h = node(g, Op.Add, [node(g, Op.Erf, [z], "erf"), const(g, 1.0, "one")], "one_plus")
    g.outputs.append(half_product(g, x, h, order, half))
    return g


def tanh_graph(order="gelu_new", cube="pow", form="gpt2"):
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    c, k = const(g, math.sqrt(2 / math.pi), "c"), const(g, 0.044715, "k")
    if form == "gpt2":              # c * (x + k * x^3)
        x3 = (node(g, Op.Pow, [x, const(g, 3.0, "three")], "cube") if cube == "pow"
              else node(g, Op.Mul, [x, node(g, Op.Mul, [x, x], "sq")], "cube"))
        inner = node(g, Op.Add, [x, node(g, Op.Mul, [x3, k], "kx3")], "inner")
        z = node(g, Op.Mul, [inner, c], "arg")
    else:                           # c * x * (1 + k * x^2)
        kx2 = node(g, Op.Mul, [k, node(g, Op.Mul, [x, x], "sq")], "kx2")
        z = node(g, Op.Mul, [node(g, Op.Mul, [x, c], "cx"),
                             node(g, Op.Add, [const(g, 1.0, "one_b"), kx2], "poly")], "arg")
    h = node(g, Op.Add, [node(g, Op.Tanh, [z], "tanh"), const(g, 1.0, "one")], "one_plus")
    g.outputs.append(half_product(g, x, h, order))
    return g


FEEDS = {"x": (RNG.standard_normal((2, 5, 8)) * 3).astype(np.float32)}


def test_erf_gelu_torchscript_order(tmp_path):
    g = erf_graph()
    before = run(g, FEEDS)
    g2, modified, ctx = apply(FuseGelu(), g)
    assert modified
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8]) {\n"
        "  %gelu_out: f32[batch,seq,8] = Gelu(%x)  # gelu/Gelu\n"
        "  return %gelu_out\n}")
    assert ctx.report.fired["Gelu"] == 1
    assert_same_numbers(before, g2, FEEDS, tmp_path)


def test_tanh_gelu_gpt2_order(tmp_path):
    g = tanh_graph()
    before = run(g, FEEDS)
    g2, modified, _ = apply(FuseGelu(), g)
    assert body(g2) == (
        "graph g(%x: f32[batch,seq,8]) {\n"
        "  %gelu_out: f32[batch,seq,8] = Gelu(%x) {approximate='tanh'}  # gelu/Gelu\n"
        "  return %gelu_out\n}")
    assert_same_numbers(before, g2, FEEDS, tmp_path)


@pytest.mark.parametrize("order", ["torchscript", "dynamo", "gelu_new", "div2"])
@pytest.mark.parametrize("arg", ["div", "mul"])
def test_erf_gelu_every_order(order, arg, tmp_path):
    g = erf_graph(order, arg)
    before = run(g, FEEDS)
    g2, _, _ = apply(FuseGelu(), g)
    assert [(n.op, n.attrs.approximate) for n in g2.nodes] == [(Op.Gelu, "none")]
    assert_same_numbers(before, g2, FEEDS, tmp_path)


@pytest.mark.parametrize("order", ["torchscript", "dynamo", "gelu_new", "div2"])
@pytest.mark.parametrize("cube,form", [("pow", "gpt2"), ("mul", "gpt2"), (None, "megatron")])
def test_tanh_gelu_every_order(order, cube, form, tmp_path):
    g = tanh_graph(order, cube, form)
    before = run(g, FEEDS)
    g2, _, _ = apply(FuseGelu(), g)
    assert [(n.op, n.attrs.approximate) for n in g2.nodes] == [(Op.Gelu, "tanh")]
    assert_same_numbers(before, g2, FEEDS, tmp_path)


def test_near_miss_factor_0_6():
    g = erf_graph(half=0.6)
    _, modified, ctx = apply(FuseGelu(), g)
    assert not modified
    assert "Gelu at node gelu: the factor is 0.60000002, not 0.5" in ctx.report.format()


def test_near_miss_intermediate_used_elsewhere():
    g = erf_graph()
    g.outputs.append(g.find_node("erf").output)
    _, modified, ctx = apply(FuseGelu(), g)
    assert not modified
    assert "Gelu at node gelu: intermediate %erf_out of erf (Erf) is a graph output" in ctx.report.format()


def test_silu_is_left_alone():
    # x * sigmoid(x) has no op of its own; fuse-linear-activation takes it after a Linear
    g = Graph("g")
    x = g.add_input("x", F32, (B, S, 8))
    g.outputs.append(node(g, Op.Mul, [x, node(g, Op.Sigmoid, [x], "sigmoid")], "silu"))
    text = str(g)
    g2, modified, ctx = apply(FuseGelu(), g)
    assert not modified and str(g2) == text
    assert ctx.report.format() == ""


# ---- the zoo ---------------------------------------------------------------------------
GELUS = {"bert": 2, "gpt2": 2, "llama": 0, "vit": 2, "minilm": 6, "paraphrase_minilm": 3, "deit": 2}


@pytest.mark.parametrize("name,exporter,opset", TRANSFORMER_ZOO, ids=TRANSFORMER_IDS)
def test_zoo_every_gelu_fuses(name, exporter, opset):
    o = optimized(name, exporter, opset)
    report = o.ctx.report.format()
    want = "tanh" if name == "gpt2" else "none"
    standalone = [n.attrs.approximate for n in o.nodes(Op.Gelu)]
    in_linear = [{"gelu": "none", "gelu_tanh": "tanh"}[n.attrs.activation]
                 for n in o.nodes(Op.Linear) if n.attrs.activation.startswith("gelu")]
    assert standalone + in_linear == [want] * GELUS[name], report
    counts = o.graph.op_counts()
    assert "Erf" not in counts and "Pow" not in counts, report
    if name == "gpt2":
        assert "Tanh" not in counts, report
    assert not o.ctx.report.missed.get("Gelu"), report
