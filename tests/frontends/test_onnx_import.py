"""ONNX import: normalization of legacy forms, external data, and every failure named in the docs."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fuseformer.frontends.onnx import from_model, load_onnx
from fuseformer.ir import DType, Op, Sym
from fuseformer.ir.errors import ModelError
from fuseformer.ir.interpreter import run

from ..onnx_builders import mlp_model, with_node

X = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)


def ort_run(model_or_path, feeds):
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    return ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_import_matches_onnxruntime(opset):
    model = mlp_model(opset)
    g = from_model(model)
    g.verify()
    assert g.inputs[0].shape == (Sym("batch"), Sym("seq"), 4)
    reduce = next(n for n in g.nodes if n.op is Op.ReduceMean)
    assert reduce.inputs[1].is_const  # axes attribute moved to an input
    ours = run(g, {"x": X})["y"]
    np.testing.assert_allclose(ours, ort_run(model, {"x": X})[0], atol=1e-5, rtol=1e-5)


def test_constant_nodes_become_constants():
    model = mlp_model(17)
    model.graph.node.insert(0, helper.make_node("Constant", [], ["c"], value_float=2.0))
    model.graph.node.append(helper.make_node("Mul", ["y", "c"], ["y2"], name="scale"))
    model.graph.output[0].name = "y2"
    g = from_model(model)
    assert "c" in g.constants and g.constants["c"].const.dtype is DType.FLOAT
    np.testing.assert_allclose(run(g, {"x": X})["y2"], ort_run(model, {"x": X})[0], atol=1e-5)


def test_external_data_is_memory_mapped(tmp_path):
    model = mlp_model(17, hidden=64)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=16)
    g = load_onnx(path)
    w = g.constants["w"].const
    assert w.external is not None and isinstance(w.numpy(), np.memmap)
    np.testing.assert_allclose(run(g, {"x": X})["y"], ort_run(str(path), {"x": X})[0], atol=1e-5)


def _write(tmp_path, model, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_error_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such model file"):
        load_onnx(tmp_path / "nope.onnx")


def test_error_not_onnx(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x08\x07this is not a protobuf at all\xff\xff\xff")
    with pytest.raises(ModelError, match="junk.onnx"):
        load_onnx(path)


def test_error_truncated(tmp_path):
    data = mlp_model(17, hidden=64).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated|cannot be read|not an ONNX"):
        load_onnx(path)


def test_error_missing_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(mlp_model(17, hidden=64), str(path), save_as_external_data=True, location="m.data",
              size_threshold=16)
    (tmp_path / "m.data").unlink()
    with pytest.raises(ModelError, match=r"initializer 'w'.*m\.data.*not found"):
        load_onnx(path)


def test_error_short_external_data(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(mlp_model(17, hidden=64), str(path), save_as_external_data=True, location="m.data",
              size_threshold=16)
    data = tmp_path / "m.data"
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(ModelError, match="shorter than"):
        load_onnx(path)


@pytest.mark.parametrize("opset", [9, 11, 12])
def test_error_old_opset(opset):
    with pytest.raises(ModelError, match=f"opset {opset} is too old"):
        from_model(_with_opset(opset))


def _with_opset(opset):
    m = mlp_model(17)
    m.opset_import[0].version = opset
    return m


def test_error_unsupported_op_names_node():
    m = with_node(mlp_model(17), helper.make_node("FusedMatMul", ["x", "w"], ["z"], name="ms/fused",
                                                   domain="com.microsoft"), ("com.microsoft", 1))
    with pytest.raises(ModelError, match=r"node 'ms/fused' \(com\.microsoft::FusedMatMul, opset 17\).*unsupported op"):
        from_model(m)


def test_error_unknown_default_domain_op():
    m = with_node(mlp_model(17), helper.make_node("StringNormalizer", ["x"], ["z"], name="strnorm"))
    with pytest.raises(ModelError, match=r"node 'strnorm' \(StringNormalizer, opset 17\)"):
        from_model(m)


def test_error_nested_graph():
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["o"])], "b", [],
                               [helper.make_tensor_value_info("o", TensorProto.FLOAT, None)])
    cond = numpy_helper.from_array(np.array(True), "cond")
    m = mlp_model(17)
    m.graph.initializer.append(cond)
    m = with_node(m, helper.make_node("If", ["cond"], ["z"], name="branch", then_branch=branch,
                                      else_branch=branch))
    with pytest.raises(ModelError, match=r"node 'branch' \(If.*(nested graphs|unsupported op)"):
        from_model(m)


def test_error_undefined_input():
    m = with_node(mlp_model(17), helper.make_node("Relu", ["ghost"], ["z"], name="haunted"))
    with pytest.raises(ModelError, match=r"node 'haunted' \(Relu.*'ghost' is not defined"):
        from_model(m)


def test_error_unknown_attribute():
    m = with_node(mlp_model(17), helper.make_node("Relu", ["x"], ["z"], name="odd", flavour=3))
    with pytest.raises(ModelError, match=r"node 'odd' \(Relu.*attribute 'flavour'"):
        from_model(m)


def test_error_unsupported_input_type():
    m = mlp_model(17)
    m.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING
    with pytest.raises(ModelError, match="graph input 'x'"):
        from_model(m)
