"""One-op checks: the same op run by the reference interpreter and by onnxruntime."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from fuseformer.ir import DType, Graph, Op, Tensor
from fuseformer.ir.interpreter import run

FP32_TOL = dict(atol=1e-4, rtol=1e-4)


def onnx_attr(value):
    if isinstance(value, Tensor):
        return numpy_helper.from_array(np.asarray(value.numpy()))
    if isinstance(value, tuple):
        return list(value)
    return value


def one_node_model(op: Op, inputs: list[np.ndarray | None], attrs, n_outputs: int = 1,
                   const_inputs: set[int] = frozenset(), opset: int = 21) -> onnx.ModelProto:
    names, graph_inputs, inits = [], [], []
    for i, arr in enumerate(inputs):
        if arr is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        if i in const_inputs:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
    while names and names[-1] == "":
        names.pop()  # onnxruntime 1.32 crashes on some ops given a trailing empty optional input
    kwargs = {k: onnx_attr(v) for k, v in attrs.items() if v is not None}
    outs = [f"out{i}" for i in range(n_outputs)]
    node = helper.make_node(op.value, names, outs, domain=op.domain, **kwargs)
    graph = helper.make_graph([node], "one", graph_inputs,
                              [helper.make_value_info(o, onnx.TypeProto()) for o in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def run_ir(op: Op, inputs: list[np.ndarray | None], attrs=None, n_outputs: int = 1,
           const_inputs: set[int] = frozenset()) -> list[np.ndarray]:
    """Build a one-node IR graph (constants for ``const_inputs``) and interpret it."""
    g = Graph("one")
    values, feeds = [], {}
    for i, arr in enumerate(inputs):
        if arr is None:
            values.append(None)
        elif i in const_inputs:
            values.append(g.add_constant(arr, f"in{i}"))
        else:
            values.append(g.add_input(f"in{i}", DType.from_numpy(arr.dtype), arr.shape))
            feeds[f"in{i}"] = arr
    node = g.make_node(op, values, attrs, num_outputs=n_outputs)
    g.outputs.extend(node.outputs)
    g.verify()
    result = run(g, feeds)
    return [result[v.name] for v in node.outputs]


def check_op(op: Op, inputs: list[np.ndarray | None], attrs=None, *, n_outputs: int = 1,
             const_inputs: set[int] = frozenset(), atol: float = 1e-5, rtol: float = 1e-5,
             opset: int = 21) -> list[np.ndarray]:
    """Assert the interpreter and onnxruntime agree on one node; returns the IR outputs.

    Inputs listed in ``const_inputs`` become constants on both sides (shape-like
    inputs such as Reshape's target must be constant for shape inference).
    """
    attrs = attrs if attrs is not None else op.attrs_type()
    ours = run_ir(op, inputs, attrs, n_outputs, const_inputs)
    model = one_node_model(op, inputs, dict(attrs.items()), n_outputs, const_inputs, opset)
    feeds = {f"in{i}": a for i, a in enumerate(inputs) if a is not None and i not in const_inputs}
    theirs = run_ort(model, feeds)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.dtype == b.dtype, f"output {k}: dtype {a.dtype} vs onnxruntime {b.dtype}"
        assert a.shape == b.shape, f"output {k}: shape {a.shape} vs onnxruntime {b.shape}"
        np.testing.assert_allclose(a, b, atol=atol, rtol=rtol, err_msg=f"output {k} of {op.value}")
    return ours
