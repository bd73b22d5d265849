"""C99 kernels against the reference interpreter, a few ops per compiled graph.

Each graph mixes the ops of one family with broadcasting and odd sizes; every one is
compiled with gcc -std=c99 -Wall -Wextra -Werror -pedantic and run on the host.
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.backends.mcu import UnsupportedOpError, compile_mcu
from fuseformer.backends.mcu.errors import GeneratedCodeError
from fuseformer.backends.mcu.host import HostModel
from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.ir.errors import ModelError
from fuseformer.ir.shape import Sym

from .mcu_checks import check_against_interpreter, needs_gcc, out, randn, ret

pytestmark = needs_gcc
F32 = DType.FLOAT
RNG = np.random.default_rng(11)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # the reference's log(0), 1/0
def test_unary_and_broadcast_binary(tmp_path):
    g = Graph("elementwise")
    a = g.add_input("a", F32, (2, 3, 4))
    b = g.add_input("b", F32, (4,))
    c = g.add_input("c", F32, (2, 1, 4))
    two = g.add_constant(np.float32(2.0), "two")
    lo, hi = g.add_constant(np.float32(-0.5), "lo"), g.add_constant(np.float32(0.7), "hi")
    s = out(g, Op.Add, [a, b])
    m = out(g, Op.Mul, [s, c])
    d = out(g, Op.Div, [out(g, Op.Sub, [m, a]), out(g, Op.Add, [out(g, Op.Abs, [c]), two])])
    mx = out(g, Op.Max, [out(g, Op.Min, [a, c]), b])
    ret(g, d, mx, out(g, Op.Pow, [a, two]), out(g, Op.Where, [out(g, Op.Greater, [a, c]), a, c]))
    ret(g, out(g, Op.Sum, [a, b, c]), out(g, Op.Mean, [a, c, b]), out(g, Op.Max, [a, c, b]),
        out(g, Op.PRelu, [a, b]), out(g, Op.Mod, [a, c], A.ModAttrs(fmod=1)),
        out(g, Op.Mod, [a, c], A.ModAttrs(fmod=0)))
    for op, attrs in [(Op.Exp, None), (Op.Tanh, None), (Op.Sigmoid, None), (Op.Relu, None),
                      (Op.LeakyRelu, A.LeakyReluAttrs(0.1)), (Op.Erf, None), (Op.Gelu, None),
                      (Op.Gelu, A.GeluAttrs("tanh")), (Op.Neg, None), (Op.Softplus, None),
                      (Op.HardSwish, None), (Op.Elu, None), (Op.Selu, None), (Op.Celu, None),
                      (Op.Sin, None), (Op.Cos, None), (Op.Atan, None), (Op.Floor, None), (Op.Ceil, None),
                      (Op.Round, None), (Op.Sign, None), (Op.HardSigmoid, None), (Op.Mish, None),
                      (Op.Softsign, None), (Op.ThresholdedRelu, A.ThresholdedReluAttrs(0.3))]:
        ret(g, out(g, op, [a], attrs))
    ret(g, out(g, Op.Sqrt, [out(g, Op.Abs, [a])]), out(g, Op.Log, [out(g, Op.Abs, [a])]),
        out(g, Op.Clip, [a, lo, hi]), out(g, Op.Clip, [a, None, hi]), out(g, Op.Clip, [a, b]),
        out(g, Op.Reciprocal, [c]), out(g, Op.IsNaN, [a]), out(g, Op.IsInf, [out(g, Op.Reciprocal, [a])]))
    feeds = {"a": randn(RNG, 2, 3, 4) * 2, "b": randn(RNG, 4), "c": randn(RNG, 2, 1, 4)}
    feeds["a"][0, 0, :3] = [0.5, -2.5, 0.0]  # Round's ties go to even; 1/0 is inf
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_integer_and_bool_ops(tmp_path):
    g = Graph("ints")
    x = g.add_input("ids", DType.INT64, (2, 5))
    f = g.add_input("f", F32, (2, 5))
    three = g.add_constant(np.int64(3), "three")
    q = out(g, Op.Div, [out(g, Op.Sub, [x, three]), three])  # truncation toward zero
    r = out(g, Op.Mod, [out(g, Op.Sub, [x, three]), three])  # Python's sign rule
    as_bool = out(g, Op.Cast, [x], A.CastAttrs(to=DType.BOOL.value))
    eq = out(g, Op.Equal, [q, out(g, Op.Mul, [x, three])])
    both = out(g, Op.And, [as_bool, out(g, Op.Not, [eq])])
    either = out(g, Op.Xor, [as_bool, out(g, Op.Or, [eq, both])])
    picked = out(g, Op.Where, [both, f, out(g, Op.Neg, [f])])
    to_int = out(g, Op.Cast, [out(g, Op.Mul, [f, g.add_constant(np.float32(3), "k")])],
                 A.CastAttrs(to=DType.INT32.value))
    to_float = out(g, Op.Cast, [x], A.CastAttrs(to=F32.value))
    ret(g, q, r, both, either, picked, to_int, to_float, out(g, Op.Abs, [x]), out(g, Op.Max, [x, three]),
        out(g, Op.LessOrEqual, [f, g.add_constant(np.float32(0.1), "t")]),
        out(g, Op.ReduceSum, [x, g.add_constant(np.array([1], np.int64), "ax")]),
        out(g, Op.ReduceMax, [x], A.ReduceMaxAttrs(keepdims=0)))
    feeds = {"ids": RNG.integers(-5, 6, (2, 5)), "f": randn(RNG, 2, 5)}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_reductions_and_softmax(tmp_path):
    g = Graph("reduce")
    x = g.add_input("x", F32, (2, 3, 4, 5))
    ax = lambda *axes: g.add_constant(np.array(axes, np.int64), "axes")  # noqa: E731
    ret(g, out(g, Op.ReduceSum, [x, ax(-1)]),
        out(g, Op.ReduceMean, [x, ax(1, 2)], A.ReduceMeanAttrs(keepdims=0)),
        out(g, Op.ReduceMax, [x, ax(2)]), out(g, Op.ReduceMin, [x, ax(0)]),
        out(g, Op.ReduceProd, [x, ax(3)]), out(g, Op.ReduceL1, [x, ax(1)]),
        out(g, Op.ReduceL2, [x, ax(3)], A.ReduceL2Attrs(keepdims=0)),
        out(g, Op.ReduceSumSquare, [x, ax(2, 3)]),
        out(g, Op.ReduceLogSumExp, [x, ax(1)]),
        out(g, Op.ReduceSum, [x], A.ReduceSumAttrs(keepdims=0)),
        out(g, Op.Softmax, [x], A.SoftmaxAttrs(axis=2)), out(g, Op.Softmax, [x]),
        out(g, Op.LogSoftmax, [x], A.LogSoftmaxAttrs(axis=1)),
        out(g, Op.ArgMax, [x], A.ArgMaxAttrs(axis=3)),
        out(g, Op.ArgMin, [x], A.ArgMinAttrs(axis=1, keepdims=0, select_last_index=1)),
        out(g, Op.ReduceLogSum, [out(g, Op.Abs, [x]), ax(3)]))
    check_against_interpreter(g, {"x": randn(RNG, 2, 3, 4, 5)}, tmp_path / "art")


def test_norms(tmp_path):
    g = Graph("norms")
    x = g.add_input("x", F32, (2, 5, 16))
    pos = g.add_input("pos", F32, (1, 5, 16))
    gamma, beta, bias = (g.add_constant(randn(RNG, 16), n) for n in ("gamma", "beta", "bias"))
    ln = g.make_node(Op.LayerNormalization, [x, gamma, beta], A.LayerNormalizationAttrs(epsilon=1e-5),
                     num_outputs=3).outputs
    ln2 = out(g, Op.LayerNormalization, [x, g.add_constant(randn(RNG, 5, 16), "g2")],
              A.LayerNormalizationAttrs(axis=-2))
    rms = out(g, Op.RMSNorm, [x, gamma], A.RMSNormAttrs(epsilon=1e-6))
    rms_bias = out(g, Op.RMSNorm, [x, gamma, beta])
    crms = out(g, Op.CRMSNorm, [x], A.CRMSNormAttrs(dim=17))
    skip = out(g, Op.SkipLayerNorm, [x, pos, gamma, beta, bias], A.SkipLayerNormAttrs(1e-12), n=2)
    skip_rms = out(g, Op.SkipRMSNorm, [x, rms, gamma], n=2)
    # without the sum output (a chunked graph drops it), y's own row holds the sum
    skip_y = out(g, Op.SkipLayerNorm, [x, pos, gamma, None, bias])
    skip_rms_y = out(g, Op.SkipRMSNorm, [x, pos, gamma])
    img = g.add_input("img", F32, (2, 3, 4, 4))
    bn = out(g, Op.BatchNormalization, [img] + [g.add_constant(np.abs(randn(RNG, 3)) + 0.1, n)
                                                for n in ("s", "b", "m", "v")])
    ret(g, *ln, ln2, rms, rms_bias, crms, *skip, *skip_rms, skip_y, skip_rms_y, bn)
    feeds = {"x": randn(RNG, 2, 5, 16) * 3 + 1, "pos": randn(RNG, 1, 5, 16), "img": randn(RNG, 2, 3, 4, 4)}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_linear_epilogues_matmul_gemm(tmp_path):
    g = Graph("gemms")
    x = g.add_input("x", F32, (2, 5, 8))
    y = g.add_input("y", F32, (2, 2, 5, 8))
    w, bias = g.add_constant(randn(RNG, 8, 8), "w"), g.add_constant(randn(RNG, 8), "bias")
    row = g.add_constant(randn(RNG, 1, 8), "row")
    for act in ("none", "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh"):
        ret(g, out(g, Op.Linear, [x, w, bias, x], A.LinearAttrs(activation=act)))
    ret(g, out(g, Op.Linear, [x, w]), out(g, Op.Linear, [x, w, None, row]),
        out(g, Op.Linear, [x, g.add_constant(randn(RNG, 8, 3), "w3"), None, g.add_input("r", F32, (5, 3))]))
    yt = out(g, Op.Transpose, [y], A.TransposeAttrs((0, 1, 3, 2)))
    ret(g, out(g, Op.MatMul, [y, yt]), out(g, Op.MatMul, [y, w]), out(g, Op.MatMul, [x, bias]),
        out(g, Op.MatMul, [bias, w]), out(g, Op.MatMul, [g.add_input("z", F32, (2, 1, 3, 5)), x]))
    m = g.add_input("m", F32, (3, 8))
    ret(g, out(g, Op.Gemm, [m, w, bias], A.GemmAttrs(alpha=0.5, beta=2.0)),
        out(g, Op.Gemm, [w, m, g.add_constant(randn(RNG, 8, 1), "col")], A.GemmAttrs(transA=1, transB=1)),
        out(g, Op.Gemm, [m, w]))
    feeds = {"x": randn(RNG, 2, 5, 8), "y": randn(RNG, 2, 2, 5, 8), "m": randn(RNG, 3, 8),
             "r": randn(RNG, 5, 3), "z": randn(RNG, 2, 1, 3, 5)}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_attention_variants(tmp_path):
    g = Graph("attention")
    s = 5
    q = g.add_input("q", F32, (2, 4, s, 8))
    k = g.add_input("k", F32, (2, 4, s, 8))
    v = g.add_input("v", F32, (2, 4, s, 6))
    k2 = g.add_input("k2", F32, (2, 2, s, 8))
    v2 = g.add_input("v2", F32, (2, 2, s, 8))
    keep = g.add_input("keep", DType.BOOL, (2, 1, 1, s))
    add = g.add_input("add", F32, (2, 1, s, s))
    kv = g.add_input("kv", F32, (2, 4, 3, 8))  # fewer queries than keys: causal is bottom-right
    ret(g, out(g, Op.Attention, [q, k, v]),
        out(g, Op.Attention, [q, k2, v2], A.AttentionAttrs(causal=1)),
        out(g, Op.Attention, [q, k, v, keep], A.AttentionAttrs(mask_kind="bool", causal=1)),
        out(g, Op.Attention, [q, k, v, add], A.AttentionAttrs(scale=0.3, mask_kind="additive")),
        out(g, Op.Attention, [kv, k, v], A.AttentionAttrs(causal=1)))
    mask = np.ones((2, 1, 1, s), bool)
    mask[1, ..., 0] = False  # with causal, row 0 of batch 1 sees nothing: zeros, not NaN
    additive = np.where(RNG.random((2, 1, s, s)) < 0.3, -1e9, 0).astype(np.float32)
    feeds = {"q": randn(RNG, 2, 4, s, 8), "k": randn(RNG, 2, 4, s, 8), "v": randn(RNG, 2, 4, s, 6),
             "k2": randn(RNG, 2, 2, s, 8), "v2": randn(RNG, 2, 2, s, 8), "keep": mask, "add": additive,
             "kv": randn(RNG, 2, 4, 3, 8)}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_layout_ops(tmp_path):
    g = Graph("layout")
    x = g.add_input("x", F32, (2, 5, 6))
    ids = g.add_input("ids", DType.INT64, (2, 5))
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    table = g.add_constant(randn(RNG, 10, 6), "table")
    ret(g, out(g, Op.Gather, [table, ids]), out(g, Op.Gather, [x, ints(-1, 0)], A.GatherAttrs(axis=2)),
        out(g, Op.Gather, [x, g.add_constant(np.int64(-2), "i")], A.GatherAttrs(axis=1)))
    ret(g, out(g, Op.Transpose, [x], A.TransposeAttrs((2, 0, 1))), out(g, Op.Transpose, [x]),
        out(g, Op.Concat, [x, out(g, Op.Neg, [x])], A.ConcatAttrs(axis=1)),
        out(g, Op.Concat, [g.add_constant(randn(RNG, 2, 5, 1), "col"), x], A.ConcatAttrs(axis=-1)))
    ret(g, *out(g, Op.Split, [x, ints(2, 4)], A.SplitAttrs(axis=2), n=2),
        *out(g, Op.Split, [x], A.SplitAttrs(axis=1, num_outputs=3), n=3))
    ret(g, out(g, Op.Slice, [x, ints(1, 5), ints(2**62, 1), ints(1, 2), ints(1, -2)]),
        out(g, Op.Slice, [x, ints(-1, 0), ints(-2**62, 3), ints(0, 1), ints(-1, 1)]))
    flat = out(g, Op.Reshape, [x, ints(0, -1)])
    ret(g, out(g, Op.Reshape, [flat, ints(-1, 3, 2)]), out(g, Op.Flatten, [x], A.FlattenAttrs(axis=2)))
    ret(g, out(g, Op.Squeeze, [out(g, Op.Unsqueeze, [x, ints(1, -1)]), ints(1)]), out(g, Op.Identity, [ids]))
    ret(g, out(g, Op.Expand, [g.add_constant(randn(RNG, 1, 1, 6), "row"), ints(2, 4, 1)]))
    for mode in ("constant", "reflect", "edge", "wrap"):
        ret(g, out(g, Op.Pad, [x, ints(0, 2, 1, 0, -1, 2), g.add_constant(np.float32(0.5), "pv")],
                   A.PadAttrs(mode)))
    ret(g, out(g, Op.Pad, [x, ints(1, 3), None, ints(-1)]))
    feeds = {"x": randn(RNG, 2, 5, 6), "ids": RNG.integers(-10, 10, (2, 5))}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_conv_and_pooling(tmp_path):
    g = Graph("conv")
    x = g.add_input("x", F32, (2, 4, 9, 9))
    w = g.add_constant(randn(RNG, 6, 4, 3, 3), "w")
    wg = g.add_constant(randn(RNG, 6, 2, 3, 3), "wg")
    wd = g.add_constant(randn(RNG, 8, 1, 3, 3), "wd")
    w1 = g.add_constant(randn(RNG, 5, 4, 1, 1), "w1")
    bias = g.add_constant(randn(RNG, 6), "b")
    ret(g, out(g, Op.Conv, [x, w, bias], A.ConvAttrs(pads=(1, 0, 2, 1), strides=(2, 1))),
        out(g, Op.Conv, [x, wg], A.ConvAttrs(group=2, dilations=(2, 2), auto_pad="SAME_UPPER")),
        out(g, Op.Conv, [x, wd], A.ConvAttrs(group=4, pads=(1, 1, 1, 1), strides=(2, 2))),
        out(g, Op.Conv, [x, w1]),
        out(g, Op.Conv, [x, g.add_constant(randn(RNG, 4, 1, 5, 5), "dw5")],
            A.ConvAttrs(group=4, pads=(2, 2, 2, 2), strides=(2, 2))),
        out(g, Op.MaxPool, [x], A.MaxPoolAttrs((3, 3), pads=(1, 1, 1, 1), strides=(2, 2), ceil_mode=1)),
        out(g, Op.AveragePool, [x], A.AveragePoolAttrs((3, 2), pads=(1, 0, 1, 1), count_include_pad=1)),
        out(g, Op.AveragePool, [x], A.AveragePoolAttrs((2, 2), strides=(2, 2), ceil_mode=1)),
        out(g, Op.GlobalAveragePool, [x]), out(g, Op.GlobalMaxPool, [x]))
    x1 = g.add_input("x1", F32, (2, 4, 7))
    ret(g, out(g, Op.Conv, [x1, g.add_constant(randn(RNG, 3, 4, 3), "w1d")], A.ConvAttrs(pads=(1, 1))))
    check_against_interpreter(g, {"x": randn(RNG, 2, 4, 9, 9), "x1": randn(RNG, 2, 4, 7)}, tmp_path / "art")


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding(tmp_path, interleaved):
    g = Graph("rotary")
    x = g.add_input("x", F32, (2, 2, 5, 8))
    cos, sin = g.add_input("cos", F32, (1, 1, 5, 8)), g.add_input("sin", F32, (5, 8))
    ret(g, out(g, Op.RotaryEmbedding, [x, cos, sin], A.RotaryEmbeddingAttrs(interleaved)))
    feeds = {"x": randn(RNG, 2, 2, 5, 8), "cos": randn(RNG, 1, 1, 5, 8), "sin": randn(RNG, 5, 8)}
    check_against_interpreter(g, feeds, tmp_path / "art")


def test_symbolic_dims_are_specialized(tmp_path):
    g = Graph("sym")
    x = g.add_input("x", F32, (Sym("batch"), Sym("seq"), 4))
    ret(g, out(g, Op.Softmax, [out(g, Op.Mul, [x, x])]))
    check_against_interpreter(g, {"x": randn(RNG, 1, 3, 4)}, tmp_path / "art", dims={"batch": 1, "seq": 3})
    with pytest.raises(ModelError, match="seq"):  # a dim left unbound is named; nothing is written
        compile_mcu(g, tmp_path / "none", {"batch": 1})
    assert not (tmp_path / "none").exists()


def test_gather_index_out_of_range_returns_a_status(tmp_path):
    g = Graph("gather")
    ids = g.add_input("ids", DType.INT64, (3,))
    ret(g, out(g, Op.Gather, [g.add_constant(randn(RNG, 4, 2), "table"), ids]))
    with HostModel(compile_mcu(g, tmp_path / "art")) as model:
        assert model.run({"ids": np.array([0, -4, 3])})["Gather_out"].shape == (3, 2)
        with pytest.raises(GeneratedCodeError, match=r"returned 1: step 0, node Gather \(Gather\): a Gather "
                                                     r"index is out of range"):
            model.run({"ids": np.array([0, 4, 1])})


def test_unsupported_op_names_the_node_and_writes_nothing(tmp_path):
    g = Graph("topk")
    x = g.add_input("x", F32, (2, 6))
    node = g.make_node(Op.TopK, [x, g.add_constant(np.array([2], np.int64), "k")], num_outputs=2,
                       name="heads/top'k\n")
    ret(g, *node.outputs)
    with pytest.raises(UnsupportedOpError, match=r"node heads/top'k\n \(TopK\).*no C99 kernel for TopK"):
        compile_mcu(g, tmp_path / "art")
    assert not (tmp_path / "art").exists()
