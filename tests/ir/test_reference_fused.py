"""The numpy references of fuseformer's own ops against torch and against their decompositions."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.ir.interpreter import InterpreterError, run

from .harness import FP32_TOL

TOL = FP32_TOL


def randn(*shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed + 7 * len(shape) + sum(shape)).standard_normal(shape).astype(dtype)


def run_op(op, inputs, attrs, float_dtype=None):
    """One node through the interpreter (inputs fed, so its type and shape checks run)."""
    g = Graph("one")
    values, feeds = [], {}
    for i, arr in enumerate(inputs):
        if arr is None:
            values.append(None)
            continue
        values.append(g.add_input(f"in{i}", DType.from_numpy(arr.dtype), arr.shape))
        feeds[f"in{i}"] = arr
    node = g.make_node(op, values, attrs)
    g.outputs.append(node.output)
    g.verify()
    return run(g, feeds, float_dtype=float_dtype)[node.output.name]


def t(a):
    return None if a is None else torch.from_numpy(a)


# ---- RMSNorm -------------------------------------------------------------
@pytest.mark.parametrize("axis", [-1, -2, 1])
@pytest.mark.parametrize("with_scale, with_bias", [(True, False), (True, True), (False, False)])
def test_rms_norm_matches_torch(axis, with_scale, with_bias):
    x = randn(2, 5, 16) * 3 + 0.5
    norm = x.shape[axis % 3:]
    scale = randn(*norm, seed=1) if with_scale else None
    bias = randn(*norm, seed=2) if with_bias else None
    ours = run_op(Op.RMSNorm, [x, scale, bias], A.RMSNormAttrs(axis=axis, epsilon=1e-5))
    want = F.rms_norm(t(x), norm, t(scale), eps=1e-5)
    if bias is not None:
        want = want + t(bias)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_allclose(ours, want.numpy(), **TOL)


def test_rms_norm_matches_decomposition():
    # the ONNX subgraph the RMSNorm fusion replaces: Pow, ReduceMean, Add, Sqrt, Div, Mul
    x, scale = randn(3, 32) * 10, randn(32, seed=1)
    ours = run_op(Op.RMSNorm, [x, scale], A.RMSNormAttrs(epsilon=1e-6))
    want = x / np.sqrt(np.mean(np.power(x, 2), axis=-1, keepdims=True) + 1e-6) * scale
    np.testing.assert_allclose(ours, want, **TOL)


def test_rms_norm_float64_mode():
    x, scale = randn(2, 8), randn(8, seed=1)
    ours = run_op(Op.RMSNorm, [x, scale], A.RMSNormAttrs(), float_dtype=np.float64)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64 * x64).mean(-1, keepdims=True) + 1e-5) * scale.astype(np.float64)
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-12)


# ---- Linear --------------------------------------------------------------
TORCH_ACTS = {
    "none": lambda y: y,
    "relu": torch.relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


def test_every_activation_is_tested():
    assert set(TORCH_ACTS) == set(A.ACTIVATIONS)


@pytest.mark.parametrize("activation", A.ACTIVATIONS)
@pytest.mark.parametrize("x_shape", [(4, 8), (2, 3, 8), (8,)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_matches_torch(activation, x_shape, with_bias):
    x, w = randn(*x_shape) * 2, randn(8, 6, seed=1)
    bias = randn(6, seed=2) if with_bias else None
    ours = run_op(Op.Linear, [x, w, bias], A.LinearAttrs(activation=activation))
    want = TORCH_ACTS[activation](F.linear(t(x), t(w).T, t(bias)))
    assert ours.dtype == np.float32 and ours.shape == x_shape[:-1] + (6,)
    np.testing.assert_allclose(ours, want.numpy(), **TOL)


def test_linear_gelu_matches_erf_decomposition():
    x, w = randn(5, 4), randn(4, 3, seed=1)
    ours = run_op(Op.Linear, [x, w], A.LinearAttrs(activation="gelu"), float_dtype=np.float64)
    y = x.astype(np.float64) @ w.astype(np.float64)
    want = 0.5 * y * (1 + np.vectorize(math.erf)(y / math.sqrt(2)))
    np.testing.assert_allclose(ours, want, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("activation", ["sigmoid", "silu"])
def test_linear_extreme_inputs_stay_finite(activation):
    x = np.array([[-1000.0], [1000.0], [0.0]], np.float32)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        ours = run_op(Op.Linear, [x, np.ones((1, 1), np.float32)], A.LinearAttrs(activation=activation))
    want = TORCH_ACTS[activation](t(x)).numpy()
    np.testing.assert_allclose(ours, want, **TOL)


def test_linear_rejects_unknown_activation():
    with pytest.raises(InterpreterError, match="activation"):
        run_op(Op.Linear, [randn(2, 3), randn(3, 4)], A.LinearAttrs(activation="swish"))


# ---- Linear residual, skip norms ---------------------------------------------
@pytest.mark.parametrize("activation", ["none", "gelu", "silu"])
def test_linear_residual_is_added_after_the_activation(activation):
    x, w, b, r = randn(2, 3, 8), randn(8, 6, seed=1), randn(6, seed=2), randn(2, 3, 6, seed=3)
    ours = run_op(Op.Linear, [x, w, b, r], A.LinearAttrs(activation=activation))
    want = TORCH_ACTS[activation](F.linear(t(x), t(w).T, t(b))) + t(r)
    np.testing.assert_allclose(ours, want.numpy(), **TOL)


def run_two_outputs(op, inputs, attrs):
    g = Graph("two")
    values = [None if a is None else g.add_input(f"in{i}", DType.from_numpy(a.dtype), a.shape)
              for i, a in enumerate(inputs)]
    node = g.make_node(op, values, attrs, num_outputs=2)
    g.outputs.extend(node.outputs)
    g.verify()
    out = run(g, {f"in{i}": a for i, a in enumerate(inputs) if a is not None})
    return [out[v.name] for v in node.outputs]


@pytest.mark.parametrize("with_beta, with_bias", [(True, False), (False, False), (True, True)])
def test_skip_layer_norm_matches_torch(with_beta, with_bias):
    x, skip, gamma = randn(2, 5, 16) * 2, randn(2, 5, 16, seed=1), randn(16, seed=2)
    beta = randn(16, seed=3) if with_beta else None
    bias = randn(16, seed=4) if with_bias else None
    y, s = run_two_outputs(Op.SkipLayerNorm, [x, skip, gamma, beta, bias], A.SkipLayerNormAttrs(epsilon=1e-5))
    total = t(x) + t(skip) + (t(bias) if bias is not None else 0)
    np.testing.assert_allclose(s, total.numpy(), **TOL)
    np.testing.assert_allclose(y, F.layer_norm(total, (16,), t(gamma), t(beta), eps=1e-5).numpy(), **TOL)


def test_skip_rms_norm_matches_torch():
    x, skip, gamma = randn(2, 5, 16) * 2, randn(1, 5, 16, seed=1), randn(16, seed=2)
    y, s = run_two_outputs(Op.SkipRMSNorm, [x, skip, gamma], A.SkipRMSNormAttrs(epsilon=1e-6))
    total = t(x) + t(skip)
    assert s.shape == y.shape == (2, 5, 16)
    np.testing.assert_allclose(s, total.numpy(), **TOL)
    np.testing.assert_allclose(y, F.rms_norm(total, (16,), t(gamma), eps=1e-6).numpy(), **TOL)


# ---- Attention -----------------------------------------------------------
def qkv(b=2, h=4, hkv=4, sq=5, sk=5, d=8, dv=8):
    return randn(b, h, sq, d), randn(b, hkv, sk, d, seed=1), randn(b, hkv, sk, dv, seed=2)


def sdpa(q, k, v, mask=None, **kw):
    return F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=t(mask), **kw).numpy()


def bottom_right_causal(sq, sk):
    return np.tril(np.ones((sq, sk), dtype=bool), k=sk - sq)


@pytest.mark.parametrize("shapes", [
    dict(),
    dict(sq=1, sk=7),
    dict(h=6, hkv=2, sq=3, sk=9),
    dict(h=4, hkv=1),
    dict(d=16, dv=4),
])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_attention_matches_torch(shapes, scale):
    q, k, v = qkv(**shapes)
    ours = run_op(Op.Attention, [q, k, v], A.AttentionAttrs(scale=scale))
    want = sdpa(q, k, v, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
    assert ours.dtype == np.float32 and ours.shape == q.shape[:3] + v.shape[3:]
    np.testing.assert_allclose(ours, want, **TOL)


def test_attention_gqa_head_mapping():
    # query head i reads kv head i // (H / Hkv), as LLaMA's repeat_kv
    q, k, v = qkv(h=6, hkv=2, sq=3, sk=4)
    ours = run_op(Op.Attention, [q, k, v], A.AttentionAttrs())
    for head in range(6):
        want = sdpa(q[:, head:head + 1], k[:, head // 3:head // 3 + 1], v[:, head // 3:head // 3 + 1])
        np.testing.assert_allclose(ours[:, head:head + 1], want, **TOL)


def test_attention_causal_square_matches_torch():
    q, k, v = qkv(h=4, hkv=2, sq=6, sk=6)
    ours = run_op(Op.Attention, [q, k, v], A.AttentionAttrs(causal=1))
    np.testing.assert_allclose(ours, sdpa(q, k, v, is_causal=True, enable_gqa=True), **TOL)


@pytest.mark.parametrize("sq, sk", [(1, 7), (3, 7), (6, 6)])
def test_attention_causal_is_bottom_right_aligned(sq, sk):
    # with a KV cache the queries are the last sq positions: query i sees keys <= i + sk - sq
    q, k, v = qkv(sq=sq, sk=sk)
    ours = run_op(Op.Attention, [q, k, v], A.AttentionAttrs(causal=1))
    np.testing.assert_allclose(ours, sdpa(q, k, v, bottom_right_causal(sq, sk)), **TOL)


@pytest.mark.parametrize("mask_shape", [(2, 4, 5, 7), (2, 1, 1, 7), (5, 7), (1, 4, 5, 1)])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_attention_masks_match_torch(mask_shape, kind):
    q, k, v = qkv(sq=5, sk=7)
    keep = np.random.default_rng(3).random(mask_shape) < 0.7
    keep[..., 0] = True  # no fully masked row here; see test_attention_fully_masked_row_is_zero
    additive = np.where(keep, 0, -np.inf).astype(np.float32) + randn(*mask_shape, seed=4)
    mask = keep if kind == "bool" else additive
    ours = run_op(Op.Attention, [q, k, v, mask], A.AttentionAttrs(mask_kind=kind))
    np.testing.assert_allclose(ours, sdpa(q, k, v, mask), **TOL)


def test_attention_bool_and_additive_masks_agree():
    q, k, v = qkv(sq=4, sk=6)
    keep = np.random.default_rng(5).random((1, 1, 4, 6)) < 0.6
    keep[..., -1] = True
    additive = np.where(keep, 0, -np.inf).astype(np.float32)
    a = run_op(Op.Attention, [q, k, v, keep], A.AttentionAttrs(causal=1))
    b = run_op(Op.Attention, [q, k, v, additive], A.AttentionAttrs(causal=1))
    np.testing.assert_allclose(a, b, **TOL)


def test_attention_mask_and_causal_combine():
    q, k, v = qkv(h=4, hkv=2, sq=3, sk=6)
    keep = np.random.default_rng(6).random((2, 1, 3, 6)) < 0.7
    keep[..., 0] = True
    ours = run_op(Op.Attention, [q, k, v, keep], A.AttentionAttrs(causal=1, scale=0.2))
    want = sdpa(q, k, v, keep & bottom_right_causal(3, 6), scale=0.2, enable_gqa=True)
    np.testing.assert_allclose(ours, want, **TOL)


@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_attention_fully_masked_row_is_zero(kind):
    q, k, v = qkv(sq=4, sk=5)
    keep = np.ones((2, 4, 4, 5), dtype=bool)
    keep[1, 2, 3] = False
    keep[0, :, 0] = False
    mask = keep if kind == "bool" else np.where(keep, 0, -np.inf).astype(np.float32)
    with np.errstate(invalid="raise"):
        ours = run_op(Op.Attention, [q, k, v, mask], A.AttentionAttrs())
    assert np.isfinite(ours).all()
    dead = ~keep.any(axis=-1)
    np.testing.assert_array_equal(ours[dead], 0)
    want = sdpa(q, k, v, keep)
    np.testing.assert_allclose(ours[~dead], want[~dead], **TOL)


def test_attention_causal_more_queries_than_keys():
    # bottom-right alignment leaves the first sq - sk queries without any key
    q, k, v = qkv(sq=5, sk=3)
    ours = run_op(Op.Attention, [q, k, v], A.AttentionAttrs(causal=1))
    np.testing.assert_array_equal(ours[:, :, :2], 0)
    np.testing.assert_allclose(ours[:, :, 2:], sdpa(q[:, :, 2:], k, v, is_causal=True), **TOL)


def test_attention_matches_numpy_decomposition():
    # the subgraph the attention fusion replaces: MatMul, Mul, Add(mask), Softmax, MatMul
    q, k, v = qkv(sq=4, sk=6)
    mask = randn(1, 1, 4, 6, seed=9)
    ours = run_op(Op.Attention, [q, k, v, mask], A.AttentionAttrs(scale=0.25), float_dtype=np.float64)
    q, k, v, mask = (a.astype(np.float64) for a in (q, k, v, mask))
    s = q @ k.transpose(0, 1, 3, 2) * 0.25 + mask
    p = np.exp(s - s.max(-1, keepdims=True))
    want = p / p.sum(-1, keepdims=True) @ v
    assert ours.dtype == np.float64
    np.testing.assert_allclose(ours, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shapes, attrs, mask, match", [
    (dict(h=6, hkv=4), A.AttentionAttrs(), None, "multiple"),
    (dict(), A.AttentionAttrs(mask_kind="bool"), None, "no mask"),
    (dict(), A.AttentionAttrs(mask_kind="bool"), np.zeros((5, 5), np.float32), "mask_kind"),
])
def test_attention_rejects_bad_inputs(shapes, attrs, mask, match):
    q, k, v = qkv(**shapes)
    with pytest.raises(InterpreterError, match=match):
        run_op(Op.Attention, [q, k, v, mask], attrs)
