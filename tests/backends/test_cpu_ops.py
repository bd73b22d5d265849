"""CPU kernels against the reference interpreter, a few ops per compiled graph.

Each graph mixes the ops of one family with symbolic dims and broadcasting, so a
handful of compiles (cached by source hash) covers every kernel in the headers.
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir import attrs as A
from fuseformer.runtime import load
from fuseformer.runtime.session import RunError

from .cpu_checks import check_against_interpreter, out, randn, ret

B, S = Sym("batch"), Sym("seq")
F32 = DType.FLOAT
RNG = np.random.default_rng(7)


def test_unary_and_broadcast_binary(tmp_path):
    g = Graph("elementwise")
    a = g.add_input("a", F32, (B, 3, 4))
    b = g.add_input("b", F32, (4,))
    c = g.add_input("c", F32, (B, 1, 4))
    two = g.add_constant(np.float32(2.0), "two")
    lo, hi = g.add_constant(np.float32(-0.5), "lo"), g.add_constant(np.float32(0.7), "hi")
    s = out(g, Op.Add, [a, b])
    m = out(g, Op.Mul, [s, c])
    d = out(g, Op.Div, [out(g, Op.Sub, [m, a]), out(g, Op.Add, [out(g, Op.Abs, [c]), two])])
    mx = out(g, Op.Max, [out(g, Op.Min, [a, c]), b])
    p = out(g, Op.Pow, [a, two])
    w = out(g, Op.Where, [out(g, Op.Greater, [a, c]), a, c])
    ret(g, d, mx, p, w)
    for op, attrs in [(Op.Exp, None), (Op.Tanh, None), (Op.Sigmoid, None), (Op.Relu, None),
                      (Op.LeakyRelu, A.LeakyReluAttrs(0.1)), (Op.Erf, None), (Op.Gelu, None),
                      (Op.Gelu, A.GeluAttrs("tanh")), (Op.Neg, None), (Op.Softplus, None),
                      (Op.HardSwish, None), (Op.Elu, None), (Op.Sin, None), (Op.Floor, None),
                      (Op.Round, None), (Op.Sign, None), (Op.HardSigmoid, None)]:
        ret(g, out(g, op, [a], attrs))
    ret(g, out(g, Op.Sqrt, [out(g, Op.Abs, [a])]), out(g, Op.Log, [out(g, Op.Abs, [a])]),
        out(g, Op.Clip, [a, lo, hi]), out(g, Op.Reciprocal, [c]))
    # variadic forms fold left to right into the output
    ret(g, out(g, Op.Sum, [b, a, c]), out(g, Op.Mean, [c, b, a, a]), out(g, Op.Max, [a, c, b]),
        out(g, Op.Min, [c, a, b]))
    feeds = {"a": randn(RNG, 2, 3, 4) * 2, "b": randn(RNG, 4), "c": randn(RNG, 2, 1, 4)}
    feeds["a"][0, 0, :2] = [0.5, -2.5]  # Round's ties go to even
    check_against_interpreter(g, feeds, {"batch": 3}, tmp_path / "art")


def test_integer_and_bool_ops(tmp_path):
    g = Graph("ints")
    x = g.add_input("ids", DType.INT64, (B, S))
    f = g.add_input("f", F32, (B, S))
    three = g.add_constant(np.int64(3), "three")
    q = out(g, Op.Div, [out(g, Op.Sub, [x, three]), three])  # truncation toward zero
    r = out(g, Op.Mod, [out(g, Op.Sub, [x, three]), three])  # Python's sign rule
    as_bool = out(g, Op.Cast, [x], A.CastAttrs(to=DType.BOOL.value))
    eq = out(g, Op.Equal, [q, out(g, Op.Mul, [x, three])])
    both = out(g, Op.And, [as_bool, out(g, Op.Not, [eq])])
    picked = out(g, Op.Where, [both, f, out(g, Op.Neg, [f])])
    to_int = out(g, Op.Cast, [out(g, Op.Mul, [f, g.add_constant(np.float32(3), "k")])],
                 A.CastAttrs(to=DType.INT64.value))
    to_float = out(g, Op.Cast, [x], A.CastAttrs(to=F32.value))
    axis1 = g.add_constant(np.array([1], np.int64), "axis1")
    ret(g, q, r, both, picked, to_int, to_float, out(g, Op.ReduceMax, [as_bool, axis1]),
        out(g, Op.ReduceMin, [as_bool, axis1], A.ReduceMinAttrs(keepdims=0)))
    feeds = {"ids": RNG.integers(-5, 6, (2, 5)), "f": randn(RNG, 2, 5)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_reductions_and_softmax(tmp_path):
    g = Graph("reduce")
    x = g.add_input("x", F32, (B, 3, S, 5))
    ax = lambda *axes: g.add_constant(np.array(axes, np.int64), "axes")  # noqa: E731
    ret(g, out(g, Op.ReduceSum, [x, ax(-1)]),
        out(g, Op.ReduceMean, [x, ax(1, 2)], A.ReduceMeanAttrs(keepdims=0)),
        out(g, Op.ReduceMax, [x, ax(2)]),
        out(g, Op.ReduceL2, [x, ax(3)], A.ReduceL2Attrs(keepdims=0)),
        out(g, Op.ReduceLogSumExp, [x, ax(1)]),
        out(g, Op.ReduceSum, [x], A.ReduceSumAttrs(keepdims=0)),
        out(g, Op.Softmax, [x], A.SoftmaxAttrs(axis=2)),
        out(g, Op.Softmax, [x]),
        out(g, Op.LogSoftmax, [x], A.LogSoftmaxAttrs(axis=1)))
    check_against_interpreter(g, {"x": randn(RNG, 2, 3, 4, 5)}, {"batch": 2, "seq": 6}, tmp_path / "art")


def test_norms(tmp_path):
    g = Graph("norms")
    x = g.add_input("x", F32, (B, S, 16))
    pos = g.add_input("pos", F32, (1, S, 16))
    gamma, beta, bias = (g.add_constant(randn(RNG, 16), n) for n in ("gamma", "beta", "bias"))
    ln = g.make_node(Op.LayerNormalization, [x, gamma, beta], A.LayerNormalizationAttrs(epsilon=1e-5),
                     num_outputs=3).outputs
    rms = out(g, Op.RMSNorm, [x, gamma], A.RMSNormAttrs(epsilon=1e-6))
    rms_bias = out(g, Op.RMSNorm, [x, gamma, beta])
    crms = out(g, Op.CRMSNorm, [x], A.CRMSNormAttrs(dim=17))
    skip = out(g, Op.SkipLayerNorm, [x, pos, gamma, beta, bias], A.SkipLayerNormAttrs(1e-12), n=2)
    skip_rms = out(g, Op.SkipRMSNorm, [x, rms, gamma], n=2)
    ret(g, *ln, rms, rms_bias, crms, *skip, *skip_rms)
    feeds = {"x": randn(RNG, 2, 5, 16) * 3 + 1, "pos": randn(RNG, 1, 5, 16)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_linear_epilogues_matmul_gemm(tmp_path):
    g = Graph("gemms")
    x = g.add_input("x", F32, (B, S, 8))
    y = g.add_input("y", F32, (B, 2, S, 8))
    w, bias = g.add_constant(randn(RNG, 8, 8), "w"), g.add_constant(randn(RNG, 8), "bias")
    row = g.add_constant(randn(RNG, 1, 8), "row")
    for act in ("none", "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"):
        ret(g, out(g, Op.Linear, [x, w, bias, x], A.LinearAttrs(activation=act)))
    ret(g, out(g, Op.Linear, [x, w]), out(g, Op.Linear, [x, w, None, row]))
    yt = out(g, Op.Transpose, [y], A.TransposeAttrs((0, 1, 3, 2)))
    ret(g, out(g, Op.MatMul, [y, yt]), out(g, Op.MatMul, [y, w]), out(g, Op.MatMul, [x, bias]),
        out(g, Op.MatMul, [bias, w]))
    m = g.add_input("m", F32, (3, 8))
    ret(g, out(g, Op.Gemm, [m, w, bias], A.GemmAttrs(alpha=0.5, beta=2.0)),
        out(g, Op.Gemm, [w, m, g.add_constant(randn(RNG, 8, 1), "col")], A.GemmAttrs(transA=1, transB=1)))
    # large enough to be split over threads, by rows (transposed A) and by columns (transposed B)
    tall, wide = g.add_input("tall", F32, (64, 96)), g.add_input("wide", F32, (2, 64))
    wt = g.add_constant(randn(RNG, 512, 64), "wt")
    ret(g, out(g, Op.Gemm, [tall, wt], A.GemmAttrs(transA=1, transB=1)),
        out(g, Op.Gemm, [wide, wt], A.GemmAttrs(transB=1)))
    feeds = {"x": randn(RNG, 2, 5, 8), "y": randn(RNG, 2, 2, 5, 8), "m": randn(RNG, 3, 8),
             "tall": randn(RNG, 64, 96), "wide": randn(RNG, 2, 64)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_attention_variants(tmp_path):
    g = Graph("attention")
    q = g.add_input("q", F32, (B, 4, S, 8))
    k = g.add_input("k", F32, (B, 4, S, 8))
    v = g.add_input("v", F32, (B, 4, S, 6))
    k2 = g.add_input("k2", F32, (B, 2, S, 8))
    v2 = g.add_input("v2", F32, (B, 2, S, 8))
    keep = g.add_input("keep", DType.BOOL, (B, 1, 1, S))
    add = g.add_input("add", F32, (B, 1, S, S))
    kv = g.add_input("kv", F32, (B, 4, 3, 8))  # fewer queries than keys: causal is bottom-right
    ret(g, out(g, Op.Attention, [q, k, v]),
        out(g, Op.Attention, [q, k2, v2], A.AttentionAttrs(causal=1)),
        out(g, Op.Attention, [q, k, v, keep], A.AttentionAttrs(mask_kind="bool", causal=1)),
        out(g, Op.Attention, [q, k, v, add], A.AttentionAttrs(scale=0.3, mask_kind="additive")),
        out(g, Op.Attention, [kv, k, v], A.AttentionAttrs(causal=1)))
    s = 5
    mask = np.ones((2, 1, 1, s), bool)
    mask[1, ..., 0] = False  # with causal, row 0 of batch 1 sees nothing: zeros, not NaN
    additive = np.where(RNG.random((2, 1, s, s)) < 0.3, -1e9, 0).astype(np.float32)
    feeds = {"q": randn(RNG, 2, 4, s, 8), "k": randn(RNG, 2, 4, s, 8), "v": randn(RNG, 2, 4, s, 6),
             "k2": randn(RNG, 2, 2, s, 8), "v2": randn(RNG, 2, 2, s, 8), "keep": mask, "add": additive,
             "kv": randn(RNG, 2, 4, 3, 8)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_layout_ops(tmp_path):
    g = Graph("layout")
    x = g.add_input("x", F32, (B, S, 6))
    ids = g.add_input("ids", DType.INT64, (B, S))
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    shape = out(g, Op.Shape, [x])
    seq = out(g, Op.Gather, [shape, g.add_constant(np.int64(1), "one")])
    positions = out(g, Op.Range, [g.add_constant(np.int64(0), "zero"), seq, g.add_constant(np.int64(1), "d")])
    table = g.add_constant(randn(RNG, 10, 6), "table")
    ret(g, out(g, Op.Gather, [table, ids]), out(g, Op.Gather, [x, ints(-1, 0)], A.GatherAttrs(axis=2)),
        positions)
    ret(g, out(g, Op.Transpose, [x], A.TransposeAttrs((2, 0, 1))),
        out(g, Op.Concat, [x, out(g, Op.Neg, [x])], A.ConcatAttrs(axis=1)))
    ret(g, *out(g, Op.Split, [x, ints(2, 4)], A.SplitAttrs(axis=2), n=2))
    ret(g, out(g, Op.Slice, [x, ints(1, 5), ints(2**62, 1), ints(1, 2), ints(1, -2)]),
        out(g, Op.Slice, [x, ints(0), out(g, Op.Unsqueeze, [seq, ints(0)]), ints(1)]))
    flat = out(g, Op.Reshape, [x, ints(0, -1)])
    ret(g, out(g, Op.Reshape, [flat, ints(-1, 3, 2)]), out(g, Op.Flatten, [x], A.FlattenAttrs(axis=2)))
    ret(g, out(g, Op.Squeeze, [out(g, Op.Unsqueeze, [x, ints(1, -1)]), ints(1)]))
    target = out(g, Op.Concat, [out(g, Op.Slice, [shape, ints(0), ints(1)]), ints(4, 1)], A.ConcatAttrs(axis=0))
    ret(g, out(g, Op.Expand, [g.add_constant(randn(RNG, 1, 1, 6), "row"), target]))
    pairs = out(g, Op.Concat, [out(g, Op.Unsqueeze, [ids, ints(-1)])] * 2, A.ConcatAttrs(axis=-1))
    grid = g.add_constant(randn(RNG, 10, 10, 3), "grid")
    pick = g.add_input("pick", DType.INT64, (B, 2, 1))
    ret(g, out(g, Op.GatherND, [grid, pairs]),
        out(g, Op.GatherND, [x, pick], A.GatherNDAttrs(batch_dims=1)), out(g, Op.Identity, [ids]))
    for mode in ("constant", "reflect", "edge"):
        ret(g, out(g, Op.Pad, [x, ints(0, 2, 1, 0, -1, 2), g.add_constant(np.float32(0.5), "pv")],
                   A.PadAttrs(mode)))
    feeds = {"x": randn(RNG, 2, 5, 6), "ids": RNG.integers(-10, 10, (2, 5)), "pick": RNG.integers(-5, 5, (2, 2, 1))}
    check_against_interpreter(g, feeds, {"batch": 3, "seq": 8}, tmp_path / "art")


def test_conv_and_pooling(tmp_path):
    g = Graph("conv")
    x = g.add_input("x", F32, (B, 4, 9, 9))
    w = g.add_constant(randn(RNG, 6, 4, 3, 3), "w")
    wg = g.add_constant(randn(RNG, 6, 2, 3, 3), "wg")
    wd = g.add_constant(randn(RNG, 8, 1, 3, 3), "wd")
    w1 = g.add_constant(randn(RNG, 5, 4, 1, 1), "w1")
    bias = g.add_constant(randn(RNG, 6), "b")
    ret(g, out(g, Op.Conv, [x, w, bias], A.ConvAttrs(pads=(1, 0, 2, 1), strides=(2, 1))),
        out(g, Op.Conv, [x, wg], A.ConvAttrs(group=2, dilations=(2, 2), auto_pad="SAME_UPPER")),
        out(g, Op.Conv, [x, wd], A.ConvAttrs(group=4, pads=(1, 1, 1, 1), strides=(2, 2))),
        out(g, Op.Conv, [x, w1]),
        out(g, Op.MaxPool, [x], A.MaxPoolAttrs((3, 3), pads=(1, 1, 1, 1), strides=(2, 2), ceil_mode=1)),
        out(g, Op.AveragePool, [x], A.AveragePoolAttrs((3, 2), pads=(1, 0, 1, 1), count_include_pad=1)),
        out(g, Op.AveragePool, [x], A.AveragePoolAttrs((2, 2), strides=(2, 2), ceil_mode=1)),
        out(g, Op.GlobalAveragePool, [x]), out(g, Op.GlobalMaxPool, [x]))
    x1 = g.add_input("x1", F32, (B, 4, 7))
    ret(g, out(g, Op.Conv, [x1, g.add_constant(randn(RNG, 3, 4, 3), "w1d")], A.ConvAttrs(pads=(1, 1))))
    check_against_interpreter(g, {"x": randn(RNG, 2, 4, 9, 9), "x1": randn(RNG, 2, 4, 7)}, {"batch": 2},
                              tmp_path / "art")


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding(tmp_path, interleaved):
    g = Graph("rotary")
    x = g.add_input("x", F32, (B, 2, S, 8))
    cos, sin = g.add_input("cos", F32, (1, 1, S, 8)), g.add_input("sin", F32, (S, 8))
    ret(g, out(g, Op.RotaryEmbedding, [x, cos, sin], A.RotaryEmbeddingAttrs(interleaved)))
    feeds = {"x": randn(RNG, 2, 2, 5, 8), "cos": randn(RNG, 1, 1, 5, 8), "sin": randn(RNG, 5, 8)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_indexing_ops(tmp_path):
    g = Graph("indexing")
    x = g.add_input("x", F32, (B, S, 6))
    pick = g.add_input("pick", DType.INT64, (B, S, 3))  # smaller than x off the axis too
    rows = g.add_input("rows", DType.INT32, (B, 2, 6))
    upd = g.add_input("upd", F32, (B, 2, 6))
    cells = g.add_constant(np.array([[1, 2], [0, -1], [1, 2]], np.int64), "cells")  # a duplicate
    cell_upd = g.add_input("cell_upd", F32, (3, 6))
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    ret(g, out(g, Op.GatherElements, [x, pick], A.GatherElementsAttrs(axis=2)),
        out(g, Op.GatherElements, [x, rows], A.GatherElementsAttrs(axis=1)))
    for reduction in ("none", "add", "mul", "max", "min"):
        ret(g, out(g, Op.ScatterElements, [x, rows, upd], A.ScatterElementsAttrs(axis=-2, reduction=reduction)),
            out(g, Op.ScatterND, [x, cells, cell_upd], A.ScatterNDAttrs(reduction)))
    ret(g, out(g, Op.Tile, [x, ints(2, 1, 3)]), out(g, Op.Tile, [x, ints(1, 2, 1)]))
    on_off = g.add_constant(np.array([-1, 3], np.float32), "on_off")
    ret(g, out(g, Op.OneHot, [pick, ints(5), on_off]),  # -6 and 5 are off every class
        out(g, Op.OneHot, [rows, g.add_constant(np.float32(4.0), "depth"), on_off],  # depth of any type
            A.OneHotAttrs(axis=1)))
    image = g.add_input("image", F32, (B, 8, 4, 6))
    for mode in ("DCR", "CRD"):
        ret(g, out(g, Op.DepthToSpace, [image], A.DepthToSpaceAttrs(2, mode)))
    ret(g, out(g, Op.SpaceToDepth, [image], A.SpaceToDepthAttrs(2)))
    seq = 5
    feeds = {"x": randn(RNG, 2, seq, 6), "pick": RNG.integers(-6, 6, (2, seq, 3)),
             "rows": RNG.integers(-seq, seq, (2, 2, 6)).astype(np.int32), "upd": randn(RNG, 2, 2, 6),
             "cell_upd": randn(RNG, 3, 6), "image": randn(RNG, 2, 8, 4, 6)}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")


def test_scans_and_selections(tmp_path):
    g = Graph("selections")
    x = g.add_input("x", F32, (B, S, 7))
    ids = g.add_input("ids", DType.INT32, (B, S))
    one = lambda v: g.add_constant(np.array([v], np.int64), "k")  # noqa: E731
    for exclusive in (0, 1):
        for reverse in (0, 1):
            ret(g, out(g, Op.CumSum, [x, one(1)], A.CumSumAttrs(exclusive, reverse)))
    ret(g, out(g, Op.CumSum, [ids, g.add_constant(np.int32(-1), "axis")]))
    for op in (Op.ArgMax, Op.ArgMin):
        ret(g, out(g, op, [x], op.attrs_type(axis=-1, keepdims=0)),
            out(g, op, [x], op.attrs_type(axis=1, select_last_index=1)),
            out(g, op, [ids], op.attrs_type(axis=1, select_last_index=1)))
    for largest in (0, 1):
        ret(g, *out(g, Op.TopK, [x, one(3)], A.TopKAttrs(axis=-1, largest=largest), n=2),
            *out(g, Op.TopK, [ids, one(2)], A.TopKAttrs(axis=1, largest=largest), n=2))
    ret(g, out(g, Op.Trilu, [x]), out(g, Op.Trilu, [x, g.add_constant(np.int64(-1), "k")], A.TriluAttrs(0)),
        out(g, Op.Trilu, [x, one(2)], A.TriluAttrs(1)))
    seq = 5
    feeds = {"x": randn(RNG, 2, seq, 7), "ids": RNG.integers(-3, 3, (2, seq)).astype(np.int32)}
    feeds["x"][0, 1, 2:5] = 0.25  # ties: the first (or last) index, TopK in index order
    feeds["x"][1, 3, 4] = np.nan  # ArgMax and ArgMin both pick a NaN
    path = check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")
    # k=2 along seq compiles (seq may reach 8) and is refused when seq is 1
    with load(path) as session, pytest.raises(RunError, match=r"\(TopK\): k=2 exceeds the size of the axis"):
        session.run({"x": randn(RNG, 2, 1, 7), "ids": np.zeros((2, 1), np.int32)})


def test_einsum_forms(tmp_path):
    g = Graph("einsum")
    q = g.add_input("q", F32, (B, 2, S, 4))
    k = g.add_input("k", F32, (B, 2, S, 4))
    m = g.add_input("m", F32, (3, 3))
    v = g.add_input("v", F32, (4,))
    ints = g.add_input("ints", DType.INT64, (3, 3))
    for eq, ins in [("bhqd,bhkd->bhqk", [q, k]),  # attention scores
                    ("bhqk,bhkd->bhqd", [out(g, Op.Einsum, [q, k], A.EinsumAttrs("bhqd,bhkd->bhqk")), k]),
                    ("...d,d->...", [q, v]),  # broadcast dims
                    ("ij,jk", [m, m]),  # implicit output: ik
                    ("ii->i", [m]), ("ii", [m]),  # diagonal, trace
                    ("bhsd->bdhs", [q]), ("b h s d -> b", [k]),
                    ("i,j->ij", [v, v]), ("ij,ij,ij->i", [m, m, m]), ("ij,jk->ik", [ints, ints])]:
        ret(g, out(g, Op.Einsum, ins, A.EinsumAttrs(eq)))
    seq = 5
    feeds = {"q": randn(RNG, 2, 2, seq, 4), "k": randn(RNG, 2, 2, seq, 4), "m": randn(RNG, 3, 3),
             "v": randn(RNG, 4), "ints": RNG.integers(-4, 4, (3, 3))}
    check_against_interpreter(g, feeds, {"batch": 2, "seq": 8}, tmp_path / "art")
