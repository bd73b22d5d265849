"""fuseformer ops written back as standard ONNX ops, for any onnxruntime to run.

Each lowering is the op's formula spelled in ONNX nodes; the reference
implementations in ir/reference/fused.py define the same formulas.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.graph import Graph
from ..ir.node import Node
from ..ir.op import Op


class _Emitter:
    def __init__(self, node: Node):
        self.node = node
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self._k = 0

    def tmp(self) -> str:
        self._k += 1
        return f"{self.node.outputs[0].name}__{self._k}"

    def const(self, value, dtype) -> str:
        name = self.tmp()
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def emit(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        out = out or self.tmp()
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def lower_node(node: Node, graph: Graph) -> tuple[list[onnx.NodeProto], list[TensorProto]]:
    fn = _LOWERINGS.get(node.op)
    if fn is None:
        raise NotImplementedError(f"node {node.describe()}: no ONNX lowering")
    e = _Emitter(node)
    fn(e, node)
    return e.nodes, e.inits


def _float_dtype(node: Node):
    return node.inputs[0].dtype.numpy


def _rms_norm(e: _Emitter, node: Node) -> None:
    """y = x / sqrt(mean(x^2, axes >= axis) + eps) * scale + bias."""
    x = node.inputs[0].name
    rank = node.inputs[0].rank
    axis = node.attrs.axis % rank
    dt = _float_dtype(node)
    sq = e.emit("Mul", [x, x])
    ms = e.emit("ReduceMean", [sq, e.const(list(range(axis, rank)), np.int64)], keepdims=1)
    rms = e.emit("Sqrt", [e.emit("Add", [ms, e.const(node.attrs.epsilon, dt)])])
    y = e.emit("Div", [x, rms])
    tail = [v for v in node.inputs[1:3] if v is not None]
    for i, v in enumerate(tail):
        last = i == len(tail) - 1
        y = e.emit("Mul" if v is node.inputs[1] else "Add", [y, v.name],
                   out=node.outputs[0].name if last else None)
    if not tail:
        e.emit("Identity", [y], out=node.outputs[0].name)


_ACTIVATIONS = {
    "relu": lambda e, y, out, dt: e.emit("Relu", [y], out=out),
    "gelu": lambda e, y, out, dt: e.emit("Gelu", [y], out=out),
    "gelu_tanh": lambda e, y, out, dt: e.emit("Gelu", [y], out=out, approximate="tanh"),
    "silu": lambda e, y, out, dt: e.emit("Mul", [y, e.emit("Sigmoid", [y])], out=out),
    "sigmoid": lambda e, y, out, dt: e.emit("Sigmoid", [y], out=out),
    "tanh": lambda e, y, out, dt: e.emit("Tanh", [y], out=out),
    "none": lambda e, y, out, dt: e.emit("Identity", [y], out=out),
}


def _linear(e: _Emitter, node: Node) -> None:
    """y = act(x @ W + b)."""
    x, w, b = node.inputs[0], node.inputs[1], node.input(2)
    y = e.emit("MatMul", [x.name, w.name])
    if b is not None:
        y = e.emit("Add", [y, b.name])
    _ACTIVATIONS[node.attrs.activation](e, y, node.outputs[0].name, _float_dtype(node))


def _attention(e: _Emitter, node: Node) -> None:
    """softmax(q k^T * scale + mask [causal]) v, k/v heads repeated for grouped queries."""
    q, k, v = (node.inputs[i] for i in range(3))
    mask = node.input(3)
    dt = _float_dtype(node)
    kname, vname = k.name, v.name
    hq, hk = q.shape[1], k.shape[1]
    if hq != hk:
        if not (isinstance(hq, int) and isinstance(hk, int)):
            raise NotImplementedError(f"node {node.describe()}: grouped heads need static head counts")
        rep = hq // hk
        kname, vname = (_repeat_heads(e, name, rep) for name in (kname, vname))
    scale = node.attrs.scale
    if scale is None:
        scale = 1.0 / float(np.sqrt(q.shape[-1]))
    kt = e.emit("Transpose", [kname], perm=[0, 1, 3, 2])
    scores = e.emit("Mul", [e.emit("MatMul", [q.name, kt]), e.const(scale, dt)])
    if mask is not None:
        if mask.dtype.numpy == np.bool_:
            scores = e.emit("Where", [mask.name, scores, e.const(-np.inf, dt)])
        else:
            scores = e.emit("Add", [scores, mask.name])
    if node.attrs.causal:
        scores = _causal(e, scores, dt)
    probs = e.emit("Softmax", [scores], axis=-1)
    e.emit("MatMul", [probs, vname], out=node.outputs[0].name)


def _repeat_heads(e: _Emitter, name: str, rep: int) -> str:
    """[B, H, S, D] -> [B, H*rep, S, D], each head repeated rep times consecutively."""
    shape = e.emit("Shape", [name])
    x5 = e.emit("Unsqueeze", [name, e.const([2], np.int64)])
    b_h = e.emit("Slice", [shape, e.const([0], np.int64), e.const([2], np.int64)])
    s_d = e.emit("Slice", [shape, e.const([2], np.int64), e.const([4], np.int64)])
    target = e.emit("Concat", [b_h, e.const([rep], np.int64), s_d], axis=0)
    expanded = e.emit("Expand", [x5, target])
    merged = e.emit("Concat", [e.const([0, -1], np.int64), s_d], axis=0)
    return e.emit("Reshape", [expanded, merged])


def _causal(e: _Emitter, scores: str, dt) -> str:
    """Keep key j <= query i + (Sk - Sq): a lower-triangular band aligned bottom-right."""
    shape = e.emit("Shape", [scores])
    sq_sk = e.emit("Slice", [shape, e.const([2], np.int64), e.const([4], np.int64)])
    ones = e.emit("ConstantOfShape", [sq_sk], value=helper.make_tensor("one", TensorProto.BOOL, [1], [True]))
    sq = e.emit("Slice", [shape, e.const([2], np.int64), e.const([3], np.int64)])
    sk = e.emit("Slice", [shape, e.const([3], np.int64), e.const([4], np.int64)])
    diag = e.emit("Squeeze", [e.emit("Sub", [sk, sq]), e.const([0], np.int64)])
    keep = e.emit("Trilu", [e.emit("Cast", [ones], to=TensorProto.INT32), diag], upper=0)
    keep = e.emit("Cast", [keep], to=TensorProto.BOOL)
    return e.emit("Where", [keep, scores, e.const(-np.inf, dt)])


_LOWERINGS = {Op.RMSNorm: _rms_norm, Op.Linear: _linear, Op.Attention: _attention}
