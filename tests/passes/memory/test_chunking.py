"""Chunking rewrites: the printed form on a hand-built MLP, and the same numbers as unchunked.

Tolerance: fp32 atol 1e-5, rtol 1e-5 (blocks and per-head output projections sum in a
different order than the whole products).
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op
from fuseformer.ir.attrs import AttentionAttrs, ConvAttrs, LinearAttrs, TransposeAttrs
from fuseformer.ir.interpreter import run
from fuseformer.passes.memory import check_plan, chunk_graph, plan_memory
from fuseformer.passes.memory.row_chunking import ChunkRowwiseRegions

from ..checks import body
from .models import feeds, specialized

TOL = dict(atol=1e-5, rtol=1e-5)
RNG = np.random.default_rng(0)


def w(g, *shape, name):
    return g.add_constant(RNG.standard_normal(shape).astype(np.float32) / np.sqrt(shape[0]), name)


def assert_same(before: Graph, after: Graph, inputs: dict):
    after.verify()
    want, got = run(before, inputs), run(after, inputs)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], **TOL, err_msg=k)


def mlp() -> Graph:
    g = Graph("mlp")
    x = g.add_input("x", DType.FLOAT, (1, 6, 4))
    s = g.make_node(Op.Relu, [x], name="stream").output
    n = g.make_node(Op.LayerNormalization, [s, g.add_constant(np.ones(4, np.float32), "gamma")], name="norm").output
    h = g.make_node(Op.Linear, [n, w(g, 4, 16, name="w1")], LinearAttrs("gelu"), name="fc1").output
    g.outputs = [g.make_node(Op.Linear, [h, w(g, 16, 4, name="w2"), None, s], name="fc2").output]
    return g


def test_mlp_rows_printed():
    g = mlp()
    ChunkRowwiseRegions(2).run(g)
    assert body(g) == """graph mlp(%x: f32[1,6,4]) {
  %x/rows_out0: f32[1,3,4], %x/rows_out1: f32[1,3,4] = Split(%x, %x/rows/sizes) {axis=1}  # x/rows
  %stream/rows0_out: f32[1,3,4] = Relu(%x/rows_out0)  # stream/rows0
  %norm/rows0_out: f32[1,3,4] = LayerNormalization(%stream/rows0_out, %gamma)  # norm/rows0
  %fc1/rows0_out: f32[1,3,16] = fuseformer::Linear(%norm/rows0_out, %w1) {activation='gelu'}  # fc1/rows0
  %fc2/rows0_out: f32[1,3,4] = fuseformer::Linear(%fc1/rows0_out, %w2, _, %stream/rows0_out)  # fc2/rows0
  %stream/rows1_out: f32[1,3,4] = Relu(%x/rows_out1)  # stream/rows1
  %norm/rows1_out: f32[1,3,4] = LayerNormalization(%stream/rows1_out, %gamma)  # norm/rows1
  %fc1/rows1_out: f32[1,3,16] = fuseformer::Linear(%norm/rows1_out, %w1) {activation='gelu'}  # fc1/rows1
  %fc2/rows1_out: f32[1,3,4] = fuseformer::Linear(%fc1/rows1_out, %w2, _, %stream/rows1_out)  # fc2/rows1
  %fc2_out: f32[1,6,4] = Concat(%fc2/rows0_out, %fc2/rows1_out) {axis=1}  # fc2_out/rows_out
  return %fc2_out
}"""


@pytest.mark.parametrize("chunks", [2, 4, 6])
def test_mlp_rows_same_numbers_and_smaller_peak(chunks):
    g = mlp()
    chunked, report = chunk_graph(g, chunks)
    assert len(report.sites) == 1
    x = {"x": RNG.standard_normal((1, 6, 4)).astype(np.float32)}
    assert_same(g, chunked, x)
    whole, blocks = plan_memory(g, chunking=False), plan_memory(g, chunking=chunks)
    assert blocks.lower_bound < whole.lower_bound  # the [6, 16] hidden tensor is never whole
    assert check_plan(blocks) == []


def attention_block(causal: int = 0) -> Graph:
    g = Graph("attn")
    x = g.add_input("x", DType.FLOAT, (1, 6, 8))
    s = g.make_node(Op.Relu, [x], name="stream").output
    n = g.make_node(Op.LayerNormalization, [s, g.add_constant(np.ones(8, np.float32), "gamma")], name="norm").output
    heads = []
    for p in "qkv":
        y = g.make_node(Op.Linear, [n, w(g, 8, 8, name=f"w{p}"), w(g, 8, name=f"b{p}")], name=p).output
        r = g.make_node(Op.Reshape, [y, g.add_constant(np.array([1, 6, 2, 4]), f"{p}_shape")], name=f"{p}_heads").output
        heads.append(g.make_node(Op.Transpose, [r], TransposeAttrs(perm=(0, 2, 1, 3)), name=f"{p}_t").output)
    o = g.make_node(Op.Attention, heads, AttentionAttrs(causal=causal), name="att").output
    o = g.make_node(Op.Transpose, [o], TransposeAttrs(perm=(0, 2, 1, 3)), name="o_t").output
    o = g.make_node(Op.Reshape, [o, g.add_constant(np.array([1, 6, 8]), "o_shape")], name="o_rows").output
    g.outputs = [g.make_node(Op.Linear, [o, w(g, 8, 8, name="wo"), w(g, 8, name="bo"), s], name="out").output]
    return g


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_attention_by_heads_same_numbers(chunks):
    g = attention_block()
    chunked, report = chunk_graph(g, chunks)
    assert report.sites == [f"att: attention in 2 heads x {chunks} query blocks"]
    assert not any(n.op in (Op.Transpose, Op.LayerNormalization) and n.name in ("q_t", "norm")
                   for n in chunked.nodes)
    assert sum(n.op is Op.Attention for n in chunked.nodes) == 2 * chunks
    assert_same(g, chunked, {"x": RNG.standard_normal((1, 6, 8)).astype(np.float32)})


def test_causal_attention_is_left_whole_with_a_reason():
    # the QKV projections (and the norm before them) still run in row blocks
    g = attention_block(causal=1)
    chunked, report = chunk_graph(g, 2)
    assert report.skipped == ["att: attention not chunked: causal (query blocks would shift the mask)"]
    assert report.sites == ["out: 6 row-wise ops (LayerNormalization, Linear, Relu) in 2 row blocks; "
                            "inner tensors up to 192 bytes"]
    assert sum(n.op is Op.Attention for n in chunked.nodes) == 1
    assert_same(g, chunked, {"x": RNG.standard_normal((1, 6, 8)).astype(np.float32)})


def patch_embedding() -> Graph:
    # a 4x4-patch Conv over a 16x8 image: 4 patch rows of 2 patches, 96 channels each
    g = Graph("patches")
    img = g.add_input("img", DType.FLOAT, (1, 2, 16, 8))
    c = g.make_node(Op.Conv, [img, w(g, 96, 2, 4, 4, name="wc"), w(g, 96, name="bc")],
                    ConvAttrs(kernel_shape=(4, 4), strides=(4, 4), pads=(0, 0, 0, 0)), name="conv").output
    r = g.make_node(Op.Reshape, [c, g.add_constant(np.array([1, 96, 8]), "flat")], name="flat").output
    t = g.make_node(Op.Transpose, [r], TransposeAttrs(perm=(0, 2, 1)), name="tokens").output
    g.outputs = [g.make_node(Op.Neg, [t], name="out").output]
    return g


@pytest.mark.parametrize("chunks", [4, 8])  # 4: one patch row each; 8: half rows
def test_patch_embedding_in_blocks(chunks):
    g = patch_embedding()
    chunked, report = chunk_graph(g, chunks)
    assert report.sites == [f"conv: patch embedding in {chunks} blocks"]
    assert sum(n.op is Op.Conv for n in chunked.nodes) == chunks
    assert_same(g, chunked, {"img": RNG.standard_normal((1, 2, 16, 8)).astype(np.float32)})
    assert plan_memory(chunked, chunking=False).lower_bound < plan_memory(g, chunking=False).lower_bound


def test_patch_embedding_left_whole_when_blocks_do_not_pay():
    # two blocks of 4 patches: image + tokens + a block exceed conv output + tokens
    _, report = chunk_graph(patch_embedding(), 2)
    assert report.sites == []
    assert report.skipped == ["conv: patch embedding not chunked: the image stays live, blocks of 4 patches "
                              "would not lower this stage's peak"]


@pytest.mark.parametrize("name,chunks", [("tiny_vit", 5), ("tiny_vit", 16), ("bert", 8)])
def test_models_chunked_same_numbers(name, chunks):
    g = specialized(name)
    chunked, report = chunk_graph(g, chunks)
    kinds = " ".join(report.sites)
    assert "attention in 4 heads" in kinds and "row-wise ops" in kinds
    if chunks == 16 and name == "tiny_vit":
        assert "patch embedding in 16 blocks" in kinds
    assert_same(g, chunked, feeds(name))
