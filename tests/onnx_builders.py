"""Small hand-built ONNX models for import/export tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mlp_model(opset: int = 17, hidden: int = 8) -> onnx.ModelProto:
    """x[batch, seq, 4] -> MatMul -> Add -> Relu -> ReduceMean(axes attr before 18) -> y."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, hidden)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((hidden,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="fc/matmul"),
        helper.make_node("Add", ["h", "b"], ["hb"], name="fc/add"),
        helper.make_node("Relu", ["hb"], ["r"], name="act"),
    ]
    inits = [w, b]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([-1], np.int64), "axes"))
        nodes.append(helper.make_node("ReduceMean", ["r", "axes"], ["y"], name="pool", keepdims=0))
    else:
        nodes.append(helper.make_node("ReduceMean", ["r"], ["y"], name="pool", axes=[-1], keepdims=0))
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def with_node(model: onnx.ModelProto, node: onnx.NodeProto, opset_domain: tuple[str, int] | None = None):
    """A copy of ``model`` with ``node`` appended after the existing nodes (its output unused)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.node.append(node)
    if opset_domain:
        m.opset_import.append(helper.make_opsetid(*opset_domain))
    return m
