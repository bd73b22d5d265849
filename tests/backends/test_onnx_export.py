"""ONNX export: checker-clean, runnable in onnxruntime, atomic, external data for large weights."""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import fuseformer.backends.onnx as onnx_backend
from fuseformer.backends.onnx import required_opset, save_onnx
from fuseformer.frontends.onnx import from_model, load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import AttentionAttrs, LinearAttrs, RMSNormAttrs, TransposeAttrs
from fuseformer.ir.interpreter import run

from ..onnx_builders import mlp_model

X = np.random.default_rng(2).standard_normal((2, 3, 4)).astype(np.float32)


def ort_run(path, feeds):
    so = ort.SessionOptions()
    # onnxruntime's own fusions round differently between two spellings of one graph
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_round_trip_is_exact(tmp_path, opset):
    src = tmp_path / "src.onnx"
    onnx.save(mlp_model(opset), str(src))
    out = save_onnx(load_onnx(src), tmp_path / "out.onnx")
    onnx.checker.check_model(str(out), full_check=True)
    np.testing.assert_array_equal(ort_run(out, {"x": X})[0], ort_run(src, {"x": X})[0])


def test_opset_is_raised_only_where_needed():
    assert required_opset(from_model(mlp_model(13))) == 18  # ReduceMean's axes are an input in the IR
    assert onnx_backend.to_model(from_model(mlp_model(21))).opset_import[0].version == 21
    with pytest.raises(ValueError, match="needs opset 18"):
        onnx_backend.to_model(from_model(mlp_model(13)), opset=17)


def test_symbolic_dims_survive(tmp_path):
    src = tmp_path / "src.onnx"
    onnx.save(mlp_model(17), str(src))
    out = save_onnx(load_onnx(src), tmp_path / "out.onnx")
    dims = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "seq", 4]
    assert load_onnx(out).inputs[0].shape == (Sym("batch"), Sym("seq"), 4)


def test_external_data_when_large(tmp_path, monkeypatch):
    monkeypatch.setattr(onnx_backend, "EXTERNAL_THRESHOLD", 64)
    monkeypatch.setattr(onnx_backend, "_MIN_EXTERNAL_TENSOR", 16)
    src = tmp_path / "src.onnx"
    onnx.save(mlp_model(17, hidden=64), str(src))
    out = save_onnx(load_onnx(src), tmp_path / "out.onnx")
    data = list(tmp_path.glob("out.onnx.*.data"))
    assert len(data) == 1 and data[0].stat().st_size >= 4 * 64 * 4
    w = next(t for t in onnx.load(str(out), load_external_data=False).graph.initializer if t.name == "w")
    assert w.data_location == onnx.TensorProto.EXTERNAL
    np.testing.assert_array_equal(ort_run(out, {"x": X})[0], ort_run(src, {"x": X})[0])
    # and it imports back, memory-mapped
    assert load_onnx(out).constants["w"].const.external is not None


def test_failed_check_leaves_nothing(tmp_path):
    g = from_model(mlp_model(17))

    def refuse(_path):
        raise RuntimeError("verification said no")

    with pytest.raises(RuntimeError, match="said no"):
        save_onnx(g, tmp_path / "out.onnx", before_commit=refuse)
    assert os.listdir(tmp_path) == []


def _fused_graph():
    g = Graph("fused")
    b, s = Sym("batch"), Sym("seq")
    rng = np.random.default_rng(3)
    x = g.add_input("x", DType.FLOAT, (b, s, 16))
    scale = g.add_constant(rng.standard_normal(16).astype(np.float32), "gamma")
    h = g.make_node(Op.RMSNorm, [x, scale], RMSNormAttrs(epsilon=1e-6)).output
    w = g.add_constant(rng.standard_normal((16, 48)).astype(np.float32) * 0.2, "w_qkv")
    bias = g.add_constant(rng.standard_normal(48).astype(np.float32), "b_qkv")
    qkv = g.make_node(Op.Linear, [h, w, bias], LinearAttrs(activation="gelu")).output
    shape = g.add_constant(np.array([0, 0, 3, 4, 4], np.int64), "qkv_shape")
    q5 = g.make_node(Op.Reshape, [qkv, shape]).output
    perm = g.make_node(Op.Transpose, [q5], TransposeAttrs(perm=(2, 0, 3, 1, 4))).output
    idx = [g.add_constant(np.array(i, np.int64), f"i{i}") for i in range(3)]
    q, k, v = (g.make_node(Op.Gather, [perm, i]).output for i in idx)
    att = g.make_node(Op.Attention, [q, k, v], AttentionAttrs(causal=1)).output
    g.outputs.append(att)
    g.verify()
    return g


def test_fused_ops_lower_to_standard_onnx(tmp_path):
    g = _fused_graph()
    out = save_onnx(g, tmp_path / "fused.onnx")
    model = onnx.load(str(out))
    assert {n.domain for n in model.graph.node} == {""}
    xs = np.random.default_rng(4).standard_normal((2, 5, 16)).astype(np.float32)
    ours = run(g, {"x": xs})[g.outputs[0].name]
    np.testing.assert_allclose(ort_run(out, {"x": xs})[0], ours, atol=1e-4, rtol=1e-4)


def test_opset_23_writes_native_ops(tmp_path):
    g = _fused_graph()
    out = save_onnx(g, tmp_path / "fused23.onnx", opset=23)
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert "RMSNormalization" in ops and "Attention" in ops
    xs = np.random.default_rng(5).standard_normal((2, 5, 16)).astype(np.float32)
    ours = run(g, {"x": xs})[g.outputs[0].name]
    np.testing.assert_allclose(ort_run(out, {"x": xs})[0], ours, atol=1e-4, rtol=1e-4)


def test_opset_23_keeps_decomposition_when_causal_alignment_differs(tmp_path):
    g = Graph("cross")
    q = g.add_input("q", DType.FLOAT, (1, 2, Sym("sq"), 4))
    k = g.add_input("k", DType.FLOAT, (1, 2, Sym("sk"), 4))
    v = g.add_input("v", DType.FLOAT, (1, 2, Sym("sk"), 4))
    g.outputs.append(g.make_node(Op.Attention, [q, k, v], AttentionAttrs(causal=1)).output)
    out = save_onnx(g, tmp_path / "cross.onnx", opset=23)
    assert "Attention" not in {n.op_type for n in onnx.load(str(out)).graph.node}
    rng = np.random.default_rng(6)
    feeds = {"q": rng.standard_normal((1, 2, 3, 4), dtype=np.float32),
             "k": rng.standard_normal((1, 2, 5, 4), dtype=np.float32),
             "v": rng.standard_normal((1, 2, 5, 4), dtype=np.float32)}
    np.testing.assert_allclose(ort_run(out, feeds)[0], run(g, feeds)[g.outputs[0].name], atol=1e-4, rtol=1e-4)


def test_external_data_never_overwrites_the_inputs(tmp_path, monkeypatch):
    """optimize orig.onnx -o model.onnx, where orig's weights live in model.onnx.data."""
    monkeypatch.setattr(onnx_backend, "EXTERNAL_THRESHOLD", 64)
    monkeypatch.setattr(onnx_backend, "_MIN_EXTERNAL_TENSOR", 16)
    src = tmp_path / "orig.onnx"
    onnx.save(mlp_model(17, hidden=64), str(src), save_as_external_data=True, location="model.onnx.data",
              size_threshold=16)
    want = ort_run(src, {"x": X})[0]
    out = save_onnx(load_onnx(src), tmp_path / "model.onnx")
    np.testing.assert_array_equal(ort_run(src, {"x": X})[0], want)  # the input still loads
    np.testing.assert_array_equal(ort_run(out, {"x": X})[0], want)
    # writing again replaces the previous output's data file, leaving exactly one of ours
    save_onnx(load_onnx(src), tmp_path / "model.onnx")
    assert len(list(tmp_path.glob("model.onnx.*.data"))) == 1
    np.testing.assert_array_equal(ort_run(src, {"x": X})[0], want)


def test_opset_validation():
    g = from_model(mlp_model(17))
    with pytest.raises(onnx_backend.OpsetError, match="needs opset 18"):
        onnx_backend.to_model(g, opset=17)
    with pytest.raises(onnx_backend.OpsetError, match="newer than the installed"):
        onnx_backend.to_model(g, opset=99)
