"""fuseformer ops written as the standard ONNX op that has the same meaning, where the opset has one.

Opset 23 added RMSNormalization and Attention. A node is written natively only
when the ONNX op means exactly what the IR op means; otherwise ``lower_node``
decomposes it. ONNX Attention's is_causal masks upper-left aligned, the IR's
causal bottom-right aligned: the two agree only when Sq == Sk is known.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.node import Node
from ..ir.op import Op

NATIVE_OPSET = 23


def native_node(node: Node, opset: int) -> tuple[list[onnx.NodeProto], list[TensorProto]] | None:
    """The node as standard ONNX at ``opset``, or None when it must be decomposed."""
    if opset < NATIVE_OPSET:
        return None
    fn = _NATIVE.get(node.op)
    return fn(node) if fn is not None else None


def _rms_norm(node: Node):
    x, scale, bias = node.inputs[0], node.input(1), node.input(2)
    out = node.outputs[0].name
    inits = []
    if scale is None:
        d = x.shape[-1] if x.shape else None
        if node.attrs.axis != -1 or not isinstance(d, int):
            return None
        scale_name = f"{out}__ones"
        inits.append(numpy_helper.from_array(np.ones(d, x.dtype.numpy), scale_name))
    else:
        scale_name = scale.name
    y = out if bias is None else f"{out}__unbiased"
    nodes = [helper.make_node("RMSNormalization", [x.name, scale_name], [y], name=node.name,
                              axis=node.attrs.axis, epsilon=node.attrs.epsilon)]
    if bias is not None:
        nodes.append(helper.make_node("Add", [y, bias.name], [out], name=f"{node.name}/bias"))
    return nodes, inits


def _attention(node: Node):
    q, k, v, mask = node.inputs[0], node.inputs[1], node.inputs[2], node.input(3)
    attrs = {}
    if node.attrs.causal:
        sq = q.shape[2] if q.shape else None
        sk = k.shape[2] if k.shape else None
        if sq is None or sq != sk:
            return None  # bottom-right vs upper-left alignment would differ
        attrs["is_causal"] = 1
    if node.attrs.scale is not None:
        attrs["scale"] = float(node.attrs.scale)
    if mask is not None and (mask.rank != 4 or mask.shape[-2] != q.shape[2]):
        # onnxruntime 1.32 requires the mask's query dim to be spelled out, not broadcast
        return None
    inputs = [q.name, k.name, v.name] + ([mask.name] if mask is not None else [])
    return [helper.make_node("Attention", inputs, [node.outputs[0].name], name=node.name, **attrs)], []


_NATIVE = {Op.RMSNorm: _rms_norm, Op.Attention: _attention}
