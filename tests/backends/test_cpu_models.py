"""Whole models through the CPU backend, against onnxruntime on the original ONNX file.

ONNX -> optimize_graph -> compile_cpu -> runtime.load -> run, compared at fp32
atol 1e-4, rtol 1e-4 with onnxruntime running the unoptimized export.
"""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.passes import optimize_graph
from fuseformer.runtime.verify import run_onnx

from ..zoo import zoo_inputs, zoo_model
from .cpu_checks import FP32, compile_and_run

EXAMPLE = "examples/tiny_vit.onnx"
# one export per family; the zoo's other exporters and opsets reach the same optimized ops
FAMILIES = [("bert", "torchscript", 17), ("gpt2", "torchscript", 17), ("llama", "torchscript", 17),
            ("vit", "torchscript", 17), ("minilm", "torchscript", 17), ("cnn", "torchscript", 17),
            ("efficientnet_lite0", "torchscript", 17),
            # dynamo's mask spelling (GatherND) and a shipped file whose outputs pass inputs through
            ("gpt2", "dynamo", 20), ("paraphrase_minilm", "shipped", 17)]


def _compare(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for name, ref in want.items():
        assert got[name].shape == ref.shape, name
        np.testing.assert_allclose(got[name], ref, **FP32, err_msg=name)


def _max_dims(graph) -> dict[str, int]:
    # zoo_inputs' own sizes: batch 2, sequence 16
    names = {d.name for v in graph.inputs for d in v.shape if hasattr(d, "name")}
    return {n: 2 if "batch" in n else 16 for n in names}


def test_tiny_vit_matches_onnxruntime(tmp_path):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / EXAMPLE
    graph = optimize_graph(load_onnx(path))
    rng = np.random.default_rng(0)
    feeds = {"pixel_values": rng.standard_normal((2, 3, 32, 32)).astype(np.float32)}
    got, artifact = compile_and_run(graph, feeds, {"batch": 4}, tmp_path / "tiny_vit")
    _compare(got, run_onnx(str(path), feeds))


@pytest.mark.parametrize("combo", FAMILIES, ids=["-".join(map(str, c)) for c in FAMILIES])
def test_zoo_family_matches_onnxruntime(tmp_path, combo):
    name = combo[0]
    path = zoo_model(*combo)
    graph = optimize_graph(load_onnx(path))
    feeds = zoo_inputs(name, seed=0)
    got, _ = compile_and_run(graph, feeds, _max_dims(graph), tmp_path / name)
    _compare(got, run_onnx(str(path), feeds))


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_one_build_serves_every_sequence_length(tmp_path, name):
    from fuseformer.backends.cpu import compile_cpu
    from fuseformer.runtime import load

    path = zoo_model(name, "torchscript", 17)
    artifact = compile_cpu(optimize_graph(load_onnx(path)), tmp_path / name, {"batch": 2, "sequence": 16})
    with load(artifact) as session:
        for batch, seq in ((2, 16), (1, 7), (2, 3), (1, 1)):
            feeds = zoo_inputs(name, seed=seq, batch=batch, seq=seq)
            _compare(session.run(feeds), run_onnx(str(path), feeds))
