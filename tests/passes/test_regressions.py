"""Regressions found in review: each a model that once made a pass or the importer go wrong."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from fuseformer.backends.onnx import save_onnx
from fuseformer.frontends.onnx import from_model
from fuseformer.ir.symbolic import symbolic_value
from fuseformer.passes import PassContext, VerifyEachPass, optimize_graph
from fuseformer.runtime.verify import compare_outputs

RNG = np.random.default_rng(0)


def _ort(model_or_path, feeds):
    src = model_or_path.SerializeToString() if isinstance(model_or_path, onnx.ModelProto) else str(model_or_path)
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _roundtrip(model, feeds, tmp_path):
    """Optimize with verification after every pass; compare with onnxruntime on the original."""
    g = optimize_graph(from_model(model), PassContext(instruments=[VerifyEachPass()]))
    got = _ort(save_onnx(g, tmp_path / "out.onnx"), feeds)
    want = _ort(model, feeds)
    for err in compare_outputs(want, got, 1e-5):
        assert err.bad_fraction == 0, err
    return g


def test_rank2_int_tensor_is_not_a_shape_vector(tmp_path):
    nodes = [h.make_node("Shape", ["x"], ["s"], start=1),
             h.make_node("Unsqueeze", ["s", "ax0"], ["s2"]),          # [[3, 4]]: rank 2
             h.make_node("Gather", ["s2", "zero"], ["row"], axis=0),  # [3, 4]
             h.make_node("Concat", ["m1", "row"], ["tgt"], axis=0),
             h.make_node("Reshape", ["x", "tgt"], ["r"]),
             h.make_node("Relu", ["r"], ["y"])]
    inits = [nh.from_array(np.array([0], np.int64), "ax0"), nh.from_array(np.array(0, np.int64), "zero"),
             nh.from_array(np.array([-1], np.int64), "m1")]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", 3, 4])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, None)], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    g = from_model(m)
    s2 = next(n for n in g.nodes if n.op.value == "Unsqueeze").outputs[0]
    assert symbolic_value(s2) is None
    _roundtrip(m, {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)}, tmp_path)


def test_negative_step_slice_of_a_shape(tmp_path):
    nodes = [h.make_node("Shape", ["x"], ["s"]),
             h.make_node("Slice", ["s", "st", "en", "ax", "step"], ["tail"]),  # [-10:-20:-1] keeps s[0]
             h.make_node("Concat", ["tail", "m1"], ["tgt"], axis=0),
             h.make_node("Reshape", ["x", "tgt"], ["y"])]
    inits = [nh.from_array(np.array([v], np.int64), n) for v, n in ((-10, "st"), (-20, "en"), (0, "ax"),
                                                                      (-1, "step"), (-1, "m1"))]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", 3, 4])],
                                  [h.make_tensor_value_info("y", TP.FLOAT, None)], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    _roundtrip(m, {"x": RNG.standard_normal((2, 3, 4)).astype(np.float32)}, tmp_path)


def _embedding_ln(table_shape, with_mean_output=False):
    outs = ["ln", "mean"] if with_mean_output else ["ln"]
    nodes = [h.make_node("Gather", ["table", "ids"], ["e"]),
             h.make_node("LayerNormalization", ["e", "gamma", "beta"], outs, axis=-1),
             h.make_node("MatMul", ["ln", "W"], ["y"])]
    inits = [nh.from_array(RNG.standard_normal(table_shape).astype(np.float32), "table"),
             nh.from_array(RNG.standard_normal(8).astype(np.float32), "gamma"),
             nh.from_array(RNG.standard_normal(8).astype(np.float32), "beta"),
             nh.from_array(RNG.standard_normal((8, 3)).astype(np.float32), "W")]
    outputs = [h.make_tensor_value_info("y", TP.FLOAT, None)]
    if with_mean_output:
        outputs.append(h.make_tensor_value_info("mean", TP.FLOAT, None))
    return h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("ids", TP.INT64, ["batch", 5])],
                                     outputs, inits), opset_imports=[h.make_opsetid("", 17)])


@pytest.mark.parametrize("table_shape,mean_out", [((10, 8), True), ((10, 2, 8), False)])
def test_layernorm_stream_edge_cases_stay_exact(table_shape, mean_out, tmp_path):
    """A used Mean output, or an embedding table that is not [V, d], is not converted."""
    m = _embedding_ln(table_shape, mean_out)
    _roundtrip(m, {"ids": RNG.integers(0, 10, (2, 5))}, tmp_path)


def test_division_by_a_tiny_constant_is_not_inverted(tmp_path):
    nodes = [h.make_node("Div", ["x", "c"], ["d"]), h.make_node("MatMul", ["d", "W"], ["y"])]
    inits = [nh.from_array(np.full(4, 1e-5, np.float16), "c"),
             nh.from_array(RNG.standard_normal((4, 4)).astype(np.float16), "W")]
    m = h.make_model(h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT16, [1, 4])],
                                  [h.make_tensor_value_info("y", TP.FLOAT16, None)], inits),
                     opset_imports=[h.make_opsetid("", 17)])
    feeds = {"x": (RNG.standard_normal((1, 4)) * 1e-3).astype(np.float16)}
    g = optimize_graph(from_model(m))
    assert any(n.op.value == "Div" for n in g.nodes)
    out = _ort(save_onnx(g, tmp_path / "o.onnx"), feeds)["y"]
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("opset", [14, 17])
def test_dead_shape_reader_does_not_block_norm_folding(opset):
    # GPT-2's torchscript export reads Shape(ln_out) for its Conv1D reshapes; after the
    # Linear fusion that shape arithmetic is dead, and it once counted as a non-Linear
    # reader: every norm kept its affine (Mul, Add) and a full-vector rebuild
    # (ReduceSum, Neg, Concat) in front of its Linear readers
    from ..zoo import zoo_inputs, zoo_model
    from fuseformer.frontends.onnx import load_onnx
    from fuseformer.ir.interpreter import run

    path = zoo_model("gpt2", "torchscript", opset)
    g = optimize_graph(load_onnx(path))
    ops = [n.op.name for n in g.nodes]
    assert ops.count("CRMSNorm") == 5
    # only ln_f, whose output is the graph's, is rebuilt to the full width
    assert ops.count("ReduceSum") == 1 and ops.count("Neg") == 1
    feeds = zoo_inputs("gpt2", seed=0)
    got, want = run(g, feeds), _ort(str(path), feeds)
    for name, ref in want.items():
        np.testing.assert_allclose(got[name], ref, atol=1e-4, rtol=1e-4, err_msg=name)
