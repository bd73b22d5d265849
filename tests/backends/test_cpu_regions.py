"""Row regions (backends/cpu/regions.py): runs of row kernels handed to the threads once.

Structure: which steps a region takes and where it must stop; the arena invariant a
region needs (no two buffers its kernels touch share bytes, since the threads run
different kernels of it at once); numerics on 1 and 2 threads, with row ranges that
cross batch boundaries, against onnxruntime and the reference interpreter (fp32 atol
1e-4, rtol 1e-4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fuseformer.backends.cpu import compile_cpu
from fuseformer.backends.cpu.lowering import lower_graph
from fuseformer.backends.cpu.program import build_program
from fuseformer.backends.cpu.symexpr import Bounds
from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import attrs as A
from fuseformer.ir.dtype import DType
from fuseformer.ir.graph import Graph
from fuseformer.ir.interpreter import run
from fuseformer.ir.op import Op
from fuseformer.ir.shape import Sym
from fuseformer.passes import optimize_graph
from fuseformer.runtime import load
from fuseformer.runtime.verify import run_onnx

from .cpu_checks import FP32, assert_close, out, randn

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny_vit.onnx"
F32 = DType.FLOAT
B, S = Sym("batch"), Sym("seq")


def _program(graph: Graph, dims: dict[str, int]):
    # packed weights, as a native AVX-512 build has them: Linear's row form needs them
    ctx, steps = lower_graph(graph, Bounds(dims), pack_weights=True)
    return build_program(graph, ctx, steps, dims)


def _ops(prog, region) -> list[str]:
    return [prog.steps[i].node.op.value for i in region.members]


def _touched(prog, region) -> set[int]:
    """Arena buffers (roots) a region's kernels read or write."""
    roots = set()
    for i in region.members:
        node = prog.steps[i].node
        for v in [*node.inputs, *node.outputs]:
            if v is not None and id(v) in prog.storage:
                root = prog.root(v)
                if prog.storage[id(root)].kind == "arena":
                    roots.add(id(root))
    return roots


def _assert_disjoint(prog, dims) -> None:
    values = {id(v): v for v in prog.graph.values()}
    bounds = Bounds(dims)
    for region in prog.regions:
        spans = []
        for key in _touched(prog, region):
            info = prog.info(values[key])
            size = bounds.range(info.numel)[1] * info.dtype.itemsize
            start = prog.storage[key].offset
            spans.append((start, start + size, values[key].name))
        spans.sort()
        for (a0, a1, a), (b0, b1, b) in zip(spans, spans[1:]):
            assert a1 <= b0, f"{a} [{a0}, {a1}) and {b} [{b0}, {b1}) share bytes in one region"


def test_tiny_vit_layers_become_one_region_each():
    graph = optimize_graph(load_onnx(EXAMPLE))
    dims = {"batch": 3}
    prog = _program(graph, dims)
    regions = [_ops(prog, r) for r in prog.regions]
    layer = ["Attention", "Linear", "CRMSNorm", "Linear", "Linear", "CRMSNorm", "Linear", "Linear", "Linear"]
    # the first layer's norm and Q, K, V; then from each attention (which reads all of K and
    # V, so it must begin a region) to the next layer's Q, K, V; the last layer ends at the
    # final norm
    assert regions == [["CRMSNorm", "Linear", "Linear", "Linear"], layer, layer, layer, layer[:6]]
    assert sum(map(len, regions)) == 37
    _assert_disjoint(prog, dims)


def test_tiny_vit_regions_match_onnxruntime_on_one_and_two_threads(tmp_path):
    graph = optimize_graph(load_onnx(EXAMPLE))
    artifact = compile_cpu(graph, tmp_path / "tiny_vit", {"batch": 3})
    source = (artifact / "model.cpp").read_text()
    assert source.count("ff::attention_span(") == 4
    rng = np.random.default_rng(5)
    # 3 x 65 rows: the threads' row ranges end inside an image, and attention_span walks
    # the images of its range
    feeds = {"pixel_values": rng.standard_normal((3, 3, 32, 32)).astype(np.float32)}
    want = run_onnx(str(EXAMPLE), feeds)
    for threads in (1, 2):
        with load(artifact, threads=threads) as session:
            for batch in (3, 1):
                got = session.run({"pixel_values": feeds["pixel_values"][:batch]})
                assert_close(got, {k: v[:batch] for k, v in want.items()})


def _boundary_graph() -> Graph:
    g = Graph("boundaries")
    x = g.add_input("x", F32, (B, S, 64))
    rng = np.random.default_rng(3)
    w = lambda k, n: g.add_constant(randn(rng, k, n) / np.float32(np.sqrt(k)), f"w{k}x{n}_{len(g.constants)}")
    h = out(g, Op.CRMSNorm, [x], A.CRMSNormAttrs(dim=65))
    h = out(g, Op.Linear, [h, w(64, 64)], A.LinearAttrs(activation="gelu"))
    # the same elements as twice the rows, half as wide: a row of [B, 2S, 32] is half a row
    # of what the Linear wrote, so the norm below cannot take the Linear's rows
    shape = g.add_constant(np.array([0, -1, 32], np.int64), "shape")
    h2 = out(g, Op.Reshape, [h, shape])
    h2 = out(g, Op.RMSNorm, [h2], A.RMSNormAttrs(epsilon=1e-6))
    h2 = out(g, Op.Linear, [h2, w(32, 32), None, h2])
    # packed weights over 256 KiB: split by panels, not rows, so no row form
    big = out(g, Op.Linear, [x, w(64, 1100)])
    big = out(g, Op.LayerNormalization, [big, g.add_constant(randn(rng, 1100), "gamma")],
              A.LayerNormalizationAttrs(epsilon=1e-5))
    # causal attention has no row form (its last rows see the most keys)
    q = g.add_input("q", F32, (B, 2, S, 16))
    att = out(g, Op.Attention, [q, q, q], A.AttentionAttrs(causal=1))
    g.outputs.extend([h, h2, big, att])
    return g


def test_regions_stop_where_rows_do_not_line_up():
    g = _boundary_graph()
    dims = {"batch": 2, "seq": 40}
    prog = _program(g, dims)
    assert [_ops(prog, r) for r in prog.regions] == [["CRMSNorm", "Linear"], ["RMSNorm", "Linear"]]
    counts = [str(r.count) for r in prog.regions]
    assert counts[0] != counts[1]
    _assert_disjoint(prog, dims)


@pytest.mark.parametrize("threads", [1, 2])
def test_region_boundaries_match_the_interpreter(tmp_path, threads):
    g = _boundary_graph()
    rng = np.random.default_rng(4)
    artifact = compile_cpu(g, tmp_path / "art", {"batch": 2, "seq": 40})
    with load(artifact, threads=threads) as session:
        for batch, seq in ((2, 40), (2, 37), (1, 5)):
            feeds = {"x": randn(rng, batch, seq, 64) * 2 + 0.3, "q": randn(rng, batch, 2, seq, 16)}
            assert_close(session.run(feeds), run(g, feeds), **FP32)
