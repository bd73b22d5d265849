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


def _crms_norm(e: _Emitter, node: Node) -> None:
    """y' = x' / sqrt((sum x'^2 + (sum x')^2) / d + eps) over the last axis."""
    x = node.inputs[0].name
    dt = _float_dtype(node)
    last = e.const([-1], np.int64)
    sq = e.emit("ReduceSum", [e.emit("Mul", [x, x]), last], keepdims=1)
    s = e.emit("ReduceSum", [x, last], keepdims=1)
    total = e.emit("Add", [sq, e.emit("Mul", [s, s])])
    mean = e.emit("Div", [total, e.const(float(node.attrs.dim), dt)])
    rms = e.emit("Sqrt", [e.emit("Add", [mean, e.const(node.attrs.epsilon, dt)])])
    e.emit("Div", [x, rms], out=node.outputs[0].name)


def _linear(e: _Emitter, node: Node) -> None:
    """y = act(x @ W + b) + residual."""
    x, w, b, r = node.inputs[0], node.inputs[1], node.input(2), node.input(3)
    y = e.emit("MatMul", [x.name, w.name])
    if b is not None:
        y = e.emit("Add", [y, b.name])
    out, act = node.outputs[0].name, node.attrs.activation
    if r is None:
        _ACTIVATIONS[act](e, y, out, _float_dtype(node))
        return
    if act != "none":
        y = _ACTIVATIONS[act](e, y, None, _float_dtype(node))
    e.emit("Add", [y, r.name], out=out)


def _skip_layer_norm(e: _Emitter, node: Node) -> None:
    """s = x + skip (+ bias); y = LayerNormalization(s, gamma, beta) over the last axis."""
    x, skip, gamma, beta, bias = (node.input(i) for i in range(5))
    y, s = (v.name for v in node.outputs)
    if bias is None:
        e.emit("Add", [x.name, skip.name], out=s)
    else:
        e.emit("Add", [e.emit("Add", [x.name, skip.name]), bias.name], out=s)
    inputs = [s, gamma.name] + ([beta.name] if beta is not None else [])
    e.emit("LayerNormalization", inputs, out=y, axis=-1, epsilon=node.attrs.epsilon)


def _skip_rms_norm(e: _Emitter, node: Node) -> None:
    """s = x + skip; y = s / sqrt(mean(s^2, last axis) + eps) * gamma."""
    x, skip, gamma = (node.inputs[i] for i in range(3))
    y, s = (v.name for v in node.outputs)
    dt = _float_dtype(node)
    e.emit("Add", [x.name, skip.name], out=s)
    ms = e.emit("ReduceMean", [e.emit("Mul", [s, s]), e.const([-1], np.int64)], keepdims=1)
    rms = e.emit("Sqrt", [e.emit("Add", [ms, e.const(node.attrs.epsilon, dt)])])
    e.emit("Mul", [e.emit("Div", [s, rms]), gamma.name], out=y)


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
    if mask is not None or node.attrs.causal:
        # a fully masked row is softmax(-inf, ...) = NaN; Attention defines it as zeros
        probs = e.emit("Where", [e.emit("IsNaN", [probs]), e.const(0, dt), probs])
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


def _rotary(e: _Emitter, node: Node) -> None:
    """y = x * cos + rotate(x) * sin, rotate(x) = (-x2, x1) over halves (or pairs) of the last axis."""
    x, cos, sin = (node.inputs[i] for i in range(3))
    d = x.shape[-1] if x.shape else None
    if not isinstance(d, int):
        raise NotImplementedError(f"node {node.describe()}: rotary needs a static head size")
    i64, half = np.int64, d // 2
    last = e.const([-1], i64)
    if node.attrs.interleaved:
        # view the last axis as [D/2, 2] pairs, rotate within each pair, view back
        shape = e.emit("Shape", [x.name])
        lead = e.emit("Slice", [shape, e.const([0], i64), last])
        pairs = e.emit("Reshape", [x.name, e.emit("Concat", [lead, e.const([half, 2], i64)], axis=0)])
        even = e.emit("Slice", [pairs, e.const([0], i64), e.const([1], i64), last])
        odd = e.emit("Slice", [pairs, e.const([1], i64), e.const([2], i64), last])
        rotated = e.emit("Reshape", [e.emit("Concat", [e.emit("Neg", [odd]), even], axis=-1), shape])
    else:
        lower = e.emit("Slice", [x.name, e.const([0], i64), e.const([half], i64), last])
        upper = e.emit("Slice", [x.name, e.const([half], i64), e.const([d], i64), last])
        rotated = e.emit("Concat", [e.emit("Neg", [upper]), lower], axis=-1)
    e.emit("Add", [e.emit("Mul", [x.name, cos.name]), e.emit("Mul", [rotated, sin.name])],
           out=node.outputs[0].name)


_LOWERINGS = {Op.CRMSNorm: _crms_norm, Op.RMSNorm: _rms_norm, Op.Linear: _linear, Op.Attention: _attention,
              Op.RotaryEmbedding: _rotary, Op.SkipLayerNorm: _skip_layer_norm,
              Op.SkipRMSNorm: _skip_rms_norm}
