"""The fast paths of the CPU kernels against the reference interpreter, at the sizes that
reach them: attention over several query and key blocks, the vectorized exp / erf at
their edges, direct depthwise convolution with padding, stride and dilation, the
fill-copy-fill Pad, and the kernel profile of a ``profile=True`` build.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from fuseformer.backends.cpu import compile_cpu
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir import attrs as A
from fuseformer.runtime import load
from fuseformer.runtime.artifact import ArtifactError

from .cpu_checks import check_against_interpreter, compile_and_run, out, randn

B, S = Sym("batch"), Sym("seq")
F32 = DType.FLOAT
RNG = np.random.default_rng(11)


def test_attention_many_blocks(tmp_path):
    # 130 queries make three query blocks; 1100 keys make three key blocks (512, 512, 76),
    # so the online softmax rescales earlier blocks; masks and causal cut across blocks
    g = Graph("attention_blocks")
    q = g.add_input("q", F32, (B, 4, S, 8))
    k = g.add_input("k", F32, (B, 2, S, 8))
    v = g.add_input("v", F32, (B, 2, S, 5))
    keep = g.add_input("keep", DType.BOOL, (B, 1, 1, S))
    add = g.add_input("add", F32, (B, 1, S, S))
    qs = g.add_input("qs", F32, (B, 4, 130, 8))
    g.outputs.extend([
        out(g, Op.Attention, [q, k, v]),
        out(g, Op.Attention, [q, k, v, keep], A.AttentionAttrs(mask_kind="bool", causal=1)),
        out(g, Op.Attention, [q, k, v, add], A.AttentionAttrs(scale=0.9, mask_kind="additive")),
        out(g, Op.Attention, [qs, k, v], A.AttentionAttrs(causal=1)),
    ])
    s = 1100
    mask = RNG.random((1, 1, 1, s)) < 0.8
    mask[..., :600] = False  # the first key block and part of the second: all masked
    additive = np.where(RNG.random((1, 1, s, s)) < 0.5, -np.inf, 0).astype(np.float32)
    additive[0, 0, 3] = -np.inf  # a row with every key masked gives zeros
    q_ = randn(RNG, 1, 4, s, 8) * 3  # large scores: the running maximum moves between blocks
    feeds = {"q": q_, "k": randn(RNG, 1, 2, s, 8) * 3, "v": randn(RNG, 1, 2, s, 5), "keep": mask,
             "add": additive, "qs": randn(RNG, 1, 4, 130, 8)}
    check_against_interpreter(g, feeds, {"batch": 1, "seq": s}, tmp_path / "art")


@pytest.mark.parametrize("d,dv", [(16, 16), (32, 64), (48, 32)])
def test_attention_whole_vector_heads(tmp_path, d, dv):
    # heads whose width is whole 16-float vectors: K is packed by 16 x 16 register
    # transposes (a key count that is not a multiple of 16 leaves a scalar tail) and V is
    # read in place (one or several 32-column panels, or one 16-column half); 600 keys make
    # two key blocks (512, 88), so the in-place V is also read from the second block on
    g = Graph("attention_vectors")
    q = g.add_input("q", F32, (B, 4, S, d))
    k = g.add_input("k", F32, (B, 2, S, d))
    v = g.add_input("v", F32, (B, 2, S, dv))
    add = g.add_input("add", F32, (B, 1, 1, S))
    g.outputs.extend([
        out(g, Op.Attention, [q, k, v]),
        out(g, Op.Attention, [q, k, v, add], A.AttentionAttrs(scale=0.3, mask_kind="additive", causal=1)),
    ])
    s = 600
    feeds = {"q": randn(RNG, 1, 4, s, d) * 2, "k": randn(RNG, 1, 2, s, d), "v": randn(RNG, 1, 2, s, dv),
             "add": np.where(RNG.random((1, 1, 1, s)) < 0.3, -1e4, 0.5).astype(np.float32)}
    check_against_interpreter(g, feeds, {"batch": 1, "seq": s}, tmp_path / "art")
    # 37 keys: two whole 16-key transposes and a tail of 5
    short = {n: a[:, :, :37] if n != "add" else a[..., :37] for n, a in feeds.items()}
    check_against_interpreter(g, short, {"batch": 1, "seq": s}, tmp_path / "art")


def _gelu_tanh64(x: float) -> float:
    return x / (1.0 + math.exp(min(-2.0 * 0.7978845608028654 * (x + 0.044715 * x ** 3), 700.0)))


_TRUTH = {
    Op.Gelu: lambda x: 0.5 * x * math.erfc(-x / math.sqrt(2.0)),
    "gelu_tanh": _gelu_tanh64,
    Op.Tanh: math.tanh,
    Op.Sigmoid: lambda x: 1.0 / (1.0 + math.exp(min(-x, 700.0))),
    Op.Exp: lambda x: math.exp(min(x, 700.0)),
}


@pytest.mark.parametrize("op,attrs", [
    (Op.Gelu, None), (Op.Gelu, A.GeluAttrs(approximate="tanh")), (Op.Tanh, None),
    (Op.Sigmoid, None), (Op.Exp, None)], ids=["gelu", "gelu_tanh", "tanh", "sigmoid", "exp"])
def test_vmath_edges(tmp_path, op, attrs):
    # float32 Gelu (both forms), Tanh, Sigmoid and Exp through the vectorized exp / erf of
    # vmath.h, on the special values and a dense sweep, against numpy's libm-based forms
    g = Graph("vmath")
    x = g.add_input("x", F32, (S,))
    g.outputs.append(out(g, op, [x], attrs) if attrs is not None else out(g, op, [x]))
    edges = [0.0, -0.0, 1e-30, -1e-30, 1e-7, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 5.5, -5.5, 10.0, -10.0,
             87.0, -87.0, 88.5, -88.5, 100.0, -100.0, 1e30, -1e30, np.inf, -np.inf]
    xs = np.concatenate([np.array(edges, np.float32), np.linspace(-12, 12, 4001, dtype=np.float32)])
    feeds = {"x": xs}
    got, _ = compile_and_run(g, feeds, {"seq": len(xs)}, tmp_path / "art")
    from fuseformer.ir.interpreter import run

    want = run(g, feeds)
    y, ref = list(got.values())[0], list(want.values())[0]
    np.testing.assert_allclose(y, ref, rtol=1e-6, atol=2e-7)
    # near 0 and in the tails the relative error matters (tanh(1e-7) is not 0): there the
    # truth is float64 libm, since float32 references lose those digits to cancellation
    truth = np.array([_TRUTH[op if attrs is None else "gelu_tanh"](float(v)) for v in xs])
    small = (np.abs(truth) < 1e-3) & (np.abs(truth) > 1e-12)
    np.testing.assert_allclose(y[small], truth[small], rtol=1e-5)
    nan = np.array([np.nan], np.float32)
    got_nan, _ = compile_and_run(g, {"x": nan}, {"seq": len(xs)}, tmp_path / "art")
    assert np.isnan(list(got_nan.values())[0]).all()


def test_attention_exp_range(tmp_path):
    # one key dominating by ~80 (exp underflows for the rest) and scores near the overflow edge
    g = Graph("attention_exp")
    q = g.add_input("q", F32, (1, 1, S, 4))
    k = g.add_input("k", F32, (1, 1, S, 4))
    v = g.add_input("v", F32, (1, 1, S, 4))
    g.outputs.append(out(g, Op.Attention, [q, k, v], A.AttentionAttrs(scale=1.0)))
    s = 40
    q_ = np.zeros((1, 1, s, 4), np.float32)
    q_[..., 0] = np.linspace(-10, 10, s)
    k_ = np.zeros((1, 1, s, 4), np.float32)
    k_[..., 0] = np.linspace(-9, 9, s)
    feeds = {"q": q_, "k": k_, "v": randn(RNG, 1, 1, s, 4)}
    check_against_interpreter(g, feeds, {"seq": s}, tmp_path / "art")


def test_depthwise_and_pad_paths(tmp_path):
    g = Graph("depthwise")
    x = g.add_input("x", F32, (B, 6, 11, 13))
    w3 = g.add_constant(randn(RNG, 6, 1, 3, 3), "w3")
    w5 = g.add_constant(randn(RNG, 12, 1, 5, 5), "w5")  # two outputs per input channel
    bias = g.add_constant(randn(RNG, 6), "b")
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    g.outputs.extend([
        out(g, Op.Conv, [x, w3, bias], A.ConvAttrs(group=6, pads=(1, 1, 1, 1))),
        out(g, Op.Conv, [x, w3], A.ConvAttrs(group=6, pads=(0, 2, 1, 0), strides=(2, 2))),
        out(g, Op.Conv, [x, w5], A.ConvAttrs(group=6, pads=(2, 3, 2, 3), dilations=(2, 2))),
        out(g, Op.Conv, [x, w5], A.ConvAttrs(group=6, strides=(1, 3), pads=(4, 4, 4, 4))),
        # no padding, stride 1: the "wide" whole-plane path, with dilation and 2 outputs per channel
        out(g, Op.Conv, [x, w3, bias], A.ConvAttrs(group=6)),
        out(g, Op.Conv, [x, w5], A.ConvAttrs(group=6, dilations=(2, 1))),
        out(g, Op.Pad, [x, ints(0, 0, 1, 2, 0, 0, 2, 3)]),
        out(g, Op.Pad, [x, ints(0, 0, 0, -2, 0, 0, 1, 1)]),
    ])
    check_against_interpreter(g, {"x": randn(RNG, 2, 6, 11, 13)}, {"batch": 2}, tmp_path / "art")


def _linear_graph():
    g = Graph("profiled")
    rng = np.random.default_rng(3)
    x = g.add_input("x", F32, (B, 8))
    w = g.add_constant(randn(rng, 8, 16), "w")
    b = g.add_constant(randn(rng, 16), "b")
    y = out(g, Op.Linear, [x, w, b], A.LinearAttrs(activation="gelu"))
    g.outputs.append(out(g, Op.Softmax, [y]))
    g.outputs.append(out(g, Op.Tanh, [x]))  # elementwise: Linear's epilogue may run inside its GEMM
    return g


def test_profile_build_reports_kernel_kinds(tmp_path):
    path = compile_cpu(_linear_graph(), tmp_path / "prof", {"batch": 4}, profile=True)
    with load(path) as session:
        feeds = {"x": randn(RNG, 3, 8)}
        plain = compile_and_run(_linear_graph(), feeds, {"batch": 4}, tmp_path / "plain")[0]
        for _ in range(3):
            got = session.run(feeds)
        np.testing.assert_array_equal(list(got.values())[0], list(plain.values())[0])
        prof = session.profile(reset=True)
        assert {"gemm", "attention", "norm", "elementwise", "layout", "conv", "reduce"} <= set(prof)
        assert prof["gemm"] > 0 and prof["elementwise"] > 0 and prof["reduce"] > 0
        assert prof["attention"] == 0
        assert all(v == 0 for v in session.profile().values())
    assert load(path).manifest["profile"] is True
    with load(tmp_path / "plain") as session, pytest.raises(ArtifactError, match="profile=True"):
        session.profile()


def test_head_split_and_merge_become_views(tmp_path):
    # x [B, S, 3, H*D] -> per-projection Reshape [B, S, H, D] -> Transpose -> Attention ->
    # Transpose -> Reshape: both transposes become views; a transposed value with a
    # second reader, and an attention output that is also a graph output, keep their copies
    g = Graph("heads")
    x = g.add_input("x", F32, (B, S, 12))
    ints = lambda *v: g.add_constant(np.array(v, np.int64), "c")  # noqa: E731
    perm = A.TransposeAttrs((0, 2, 1, 3))

    def heads(v):
        return out(g, Op.Transpose, [out(g, Op.Reshape, [v, ints(0, 0, 3, 4)])], perm)
    q, k, v = (heads(out(g, Op.Mul, [x, g.add_constant(np.float32(c), "s")])) for c in (0.5, 1.5, -1.0))
    a = out(g, Op.Attention, [q, k, v], A.AttentionAttrs(causal=1))
    merged = out(g, Op.Reshape, [out(g, Op.Transpose, [a], perm), ints(0, 0, 12)])
    k_exposed = heads(out(g, Op.Add, [x, x]))
    a2 = out(g, Op.Attention, [q, k_exposed, k_exposed])
    g.outputs.extend([merged, k_exposed, a2, out(g, Op.Transpose, [a2], perm)])
    path = check_against_interpreter(g, {"x": randn(RNG, 2, 7, 12)}, {"batch": 2, "seq": 9}, tmp_path / "art")
    source = (path / "model.cpp").read_text()
    # k and v of the first attention split as views, its output merges as a view; copies
    # remain for q (read by two attentions), the exposed k and the merge of a2 (an output)
    assert source.count("ff::strided_copy") == 3


def test_blas_coretype_choice(monkeypatch):
    import os

    from fuseformer.backends.cpu import build

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.delenv(build.CORETYPE_ENV, raising=False)
    assert build.blas_coretype() is None  # the user's OpenBLAS choice stands
    monkeypatch.setenv(build.CORETYPE_ENV, "Zen")
    assert build.blas_coretype() == "Zen"
    with build.blas_load_environment():
        assert os.environ["OPENBLAS_CORETYPE"] == "Zen"
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell"  # restored after the load
    monkeypatch.setenv(build.CORETYPE_ENV, "auto")
    avx512 = all(f in build._cpu_identity() for f in build._AVX512)
    assert build.blas_coretype() == ("SkylakeX" if avx512 else None)


@pytest.mark.parametrize("packed", ["1", "0"], ids=["packed", "openblas"])
def test_linear_packed_weights(tmp_path, monkeypatch, packed):
    # Linear through the register-blocked kernel on weights packed in 32-column panels
    # (packed_gemm.h) and through OpenBLAS: ragged panels (n = 45, 70), ragged row blocks
    # (rows 1..12 at the tail), every epilogue, a residual, and a weight two Linears share
    from fuseformer.backends.cpu import packing

    monkeypatch.setenv(packing.ENV, packed)
    rng = np.random.default_rng(11)
    g = Graph("packed")
    x = g.add_input("x", F32, (B, 37))
    w1 = g.add_constant(randn(rng, 37, 45), "w1")
    w2 = g.add_constant(randn(rng, 45, 70), "w2")
    b1 = g.add_constant(randn(rng, 45), "b1")
    h = out(g, Op.Linear, [x, w1, b1], A.LinearAttrs(activation="gelu_tanh"))
    outs = [h]
    for act in ("none", "relu", "gelu", "silu", "sigmoid", "tanh"):
        outs.append(out(g, Op.Linear, [h, w2], A.LinearAttrs(activation=act)))
    res = g.add_input("r", F32, (B, 45))
    outs.append(out(g, Op.Linear, [x, w1, b1, res], A.LinearAttrs()))
    g.outputs.extend(outs)
    for rows in (1, 12, 25, 31):
        feeds = {"x": randn(rng, rows, 37), "r": randn(rng, rows, 45)}
        path = check_against_interpreter(g, feeds, {"batch": 31}, tmp_path / f"art{rows}")
    source = (path / "model.cpp").read_text()
    # alone, or on a thread's rows inside a row region (regions.py)
    assert ("ff::packed_linear(" in source or "ff::packed_linear_rows(" in source) == (packed == "1")


@pytest.mark.parametrize("threads", [1, 2])
def test_row_split_paths(tmp_path, threads):
    # a narrow model (width <= 256) splits norms, Linears (small packed weights) and batch-1
    # attention by row ranges on multiples of 12 rows (pool.h parallel_rows); 101 rows
    # leave a partial register tile, 63 and 40 columns a partial vector in the norms
    g = Graph("row_split")
    x = g.add_input("x", F32, (B, S, 63))
    h = g.add_input("h", F32, (B, S, 40))
    q = g.add_input("q", F32, (B, 4, S, 16))
    k = g.add_input("k", F32, (B, 4, S, 16))
    v = g.add_input("v", F32, (B, 4, S, 16))
    keep = g.add_input("keep", DType.BOOL, (B, 1, 1, S))
    gamma, beta = g.add_constant(randn(RNG, 40), "gamma"), g.add_constant(randn(RNG, 40), "beta")
    w, bias = g.add_constant(randn(RNG, 63, 96) * 0.1, "w"), g.add_constant(randn(RNG, 96), "bias")
    res = g.add_input("res", F32, (B, S, 96))
    g.outputs.extend([
        out(g, Op.CRMSNorm, [x], A.CRMSNormAttrs(dim=64)),
        out(g, Op.RMSNorm, [x, g.add_constant(randn(RNG, 63), "scale")]),
        out(g, Op.LayerNormalization, [h, gamma, beta], A.LayerNormalizationAttrs(epsilon=1e-5)),
        out(g, Op.Linear, [x, w, bias, res], A.LinearAttrs(activation="gelu")),
        out(g, Op.Attention, [q, k, v]),
        out(g, Op.Attention, [q, k, v, keep], A.AttentionAttrs(mask_kind="bool", causal=1)),
    ])
    s = 101
    mask = RNG.random((1, 1, 1, s)) < 0.7
    feeds = {"x": randn(RNG, 1, s, 63) * 2 + 0.5, "h": randn(RNG, 1, s, 40) * 3 + 1,
             "q": randn(RNG, 1, 4, s, 16), "k": randn(RNG, 1, 4, s, 16), "v": randn(RNG, 1, 4, s, 16),
             "keep": mask, "res": randn(RNG, 1, s, 96)}
    path = compile_cpu(g, tmp_path / "art", {"batch": 1, "seq": s})
    from fuseformer.ir.interpreter import run

    with load(path, threads=threads) as session:
        got = session.run(feeds)
    want = run(g, feeds)
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, atol=1e-4, rtol=1e-4, err_msg=name)
