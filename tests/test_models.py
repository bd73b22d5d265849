"""Every model of the test zoo: imports, verifies, runs in the interpreter like onnxruntime, round-trips.

Tolerances: interpreter vs onnxruntime fp32 atol 1e-4, rtol 1e-4; round trip
1e-6 with onnxruntime's graph optimizations off on both sides (its fusions
round differently between two spellings of one graph, by ~1e-6, which is not
ours to answer for).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from fuseformer.backends.onnx import save_onnx
from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir.interpreter import run
from fuseformer.ir.reference import supported_ops

from .zoo import ZOO, zoo_inputs, zoo_model

IDS = [f"{n}-{e}-{o}" for n, e, o in ZOO]


def _ort(path, feeds, optimize=True):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


@pytest.fixture(scope="module", params=ZOO, ids=IDS)
def imported(request):
    name, exporter, opset = request.param
    path = zoo_model(name, exporter, opset)
    graph = load_onnx(path)
    return name, path, graph


def test_imports_and_verifies(imported):
    name, path, graph = imported
    graph.verify()
    assert all(n.op in supported_ops() for n in graph.nodes)
    assert graph.inputs and graph.outputs


def test_interpreter_matches_onnxruntime(imported):
    name, path, graph = imported
    feeds = zoo_inputs(name, seed=0)
    expected = _ort(path, feeds)
    ours = run(graph, feeds)
    assert list(ours) == list(expected)
    for key, want in expected.items():
        got = ours[key]
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4, err_msg=f"output {key}")


def test_round_trip(imported, tmp_path):
    name, path, graph = imported
    out = save_onnx(graph, tmp_path / "rt.onnx")
    feeds = zoo_inputs(name, seed=1)
    expected = _ort(path, feeds, optimize=False)
    got = _ort(out, feeds, optimize=False)
    assert list(got) == list(expected)
    for key, want in expected.items():
        np.testing.assert_allclose(got[key], want, atol=1e-6, rtol=1e-6, err_msg=f"output {key}")
    # and what comes back in is the same graph
    again = load_onnx(out)
    again.verify()
    assert again.op_counts() == graph.op_counts()
