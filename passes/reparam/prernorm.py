"""Pre-LN -> Pre-RMSNorm (Jiang et al. 2023): exact when the residual stream is zero-mean."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value
from ..base import Pass, PassResult
from ..canonical.dce import EliminateDeadCode
from .stream import Stream, Writer, trace_stream

KIND = "LayerNorm -> RMSNorm"


class LayerNormToRMSNorm(Pass):
    """Turn every LayerNorm on a provably re-centrable residual stream into an RMSNorm.

    LN(x) = RMSNorm(x - mean(x)), so once every writer of the stream produces
    zero-mean vectors over the hidden axis, LN(x) = RMSNorm(x):
    1. each LN's affine moves into the Linear layers reading it (W' = diag(gamma) W,
       b' = b + beta W); an LN also read by anything else keeps gamma, beta;
    2. every writer is re-centred: W <- W - mean over the output axis, b <- b - mean(b),
       embedding tables and constants row by row;
    3. LN(x; eps) -> RMSNorm(x; eps).
    The proof is the dataflow analysis in stream.py; a stream it cannot prove
    (Post-LN, a nonlinear writer, a value read outside the norms) is left as it
    is and the report says why.
    """

    name = "ln-to-rmsnorm"
    opt_level = 2

    def run(self, graph: Graph, ctx) -> PassResult:
        lns = [n for n in graph.nodes if n.op is Op.LayerNormalization]
        if not lns:
            return PassResult(graph, False)
        # shape arithmetic that earlier rewrites left dead (GPT-2's Conv1D reshapes read
        # Shape(ln_out)) must not count as a reader of the stream or of a norm
        EliminateDeadCode().run(graph, ctx)
        stream = trace_stream(graph)
        if stream.reason is not None:
            if ctx is not None:
                ctx.report.record_miss(KIND, lns[0].name, f"not convertible: {stream.reason}")
            return PassResult(graph, False)
        for w in stream.writers:
            _recentre(graph, w)
        for ln in lns:
            _to_rmsnorm(graph, ln)
        graph.remove_unused_constants()
        if ctx is not None:
            ctx.report.record_fired(KIND, len(lns))
            ctx.report.note(f"{KIND}: re-centred {len(stream.writers)} writers of the residual stream")
        return PassResult(graph, True)


def _centred(arr: np.ndarray, axis: int) -> np.ndarray:
    a = arr.astype(np.float64)
    return (a - a.mean(axis=axis, keepdims=True)).astype(arr.dtype)


def _replace_const(graph: Graph, node: Node | None, old: Value, arr: np.ndarray, hint: str) -> Value:
    new = graph.add_constant(np.require(arr, requirements="C"), hint)
    if node is None:
        graph.replace_all_uses_with(old, new)
    else:
        for i, v in enumerate(node.inputs):
            if v is old:
                node.set_input(i, new)
    return new


def _recentre(graph: Graph, w: Writer) -> None:
    if w.node is None:
        arr = np.asarray(w.value.const.numpy())
        _replace_const(graph, None, w.value, _centred(arr, w.axis), f"{w.value.name}_centred")
        return
    node = w.node
    weight = node.inputs[1] if node.op is not Op.Gather else node.inputs[0]
    arr = np.asarray(weight.const.numpy())
    if node.op is Op.Gather:
        _replace_const(graph, node, weight, _centred(arr, 1), f"{weight.name}_centred")
        return
    if node.op is Op.Conv:
        axis = 0
    elif node.op is Op.Gemm and node.attrs.transB:
        axis = 0
    else:
        axis = 1
    _replace_const(graph, node, weight, _centred(arr, axis), f"{weight.name}_centred")
    bias = node.input(2)
    if bias is not None:
        b = np.asarray(bias.const.numpy())
        n_out = arr.shape[axis]
        full = np.broadcast_to(b.reshape(-1) if b.size > 1 else b.reshape(1), (n_out,)).astype(b.dtype)
        _replace_const(graph, node, bias, _centred(full, 0), f"{bias.name}_centred")


def _linear_readers(y: Value, graph: Graph) -> list[Node] | None:
    """The readers of y when every one is a Linear/MatMul with its own constant [d, N] weight."""
    readers = []
    if y in graph.outputs:
        return None
    for user, i in y.uses:
        if user.op not in (Op.Linear, Op.MatMul) or i != 0:
            return None
        w = user.inputs[1]
        if w.const is None or w.rank != 2 or len(w.users()) != 1:
            return None
        if user.op is Op.Linear and (user.input(3) is y or
                                     (user.input(2) is not None and user.input(2).const is None)):
            return None
        readers.append(user)
    return readers or None


def _to_rmsnorm(graph: Graph, ln: Node) -> None:
    x, gamma, beta = ln.inputs[0], ln.input(1), ln.input(2)
    y = ln.outputs[0]
    readers = _linear_readers(y, graph)
    keep = []
    if readers is not None and gamma.const is not None and (beta is None or beta.const is not None):
        g = np.asarray(gamma.const.numpy(), np.float64).reshape(-1)
        bt = None if beta is None else np.asarray(beta.const.numpy(), np.float64).reshape(-1)
        for r in readers:
            _fold_affine_into_reader(graph, r, g, bt)
    else:
        keep = [gamma, beta]
    with graph.inserting_before(ln):
        rms = graph.make_node(Op.RMSNorm, [x] + [v for v in keep if v is not None],
                              Op.RMSNorm.attrs_type(axis=-1, epsilon=ln.attrs.epsilon),
                              name=f"{ln.name}/rms").output
    graph.replace_all_uses_with(y, rms)
    graph.erase(ln)


def _fold_affine_into_reader(graph: Graph, reader: Node, gamma: np.ndarray, beta: np.ndarray | None) -> None:
    """(n gamma + beta) W + b = n (diag(gamma) W) + (beta W + b)."""
    w = reader.inputs[1]
    wa = np.asarray(w.const.numpy(), np.float64)
    dtype = w.const.dtype.numpy
    _replace_const(graph, reader, w, (gamma[:, None] * wa).astype(dtype), f"{w.name}_scaled")
    if beta is None:
        return
    shift = beta @ wa
    bias = reader.input(2) if reader.op is Op.Linear else None
    if reader.op is Op.Linear:
        new_b = shift if bias is None else np.asarray(bias.const.numpy(), np.float64) + shift
        b = graph.add_constant(new_b.astype(dtype), f"{reader.name}/bias")
        if len(reader.inputs) < 3:
            reader.inputs.append(None)
        reader.set_input(2, b)
        return
    out = reader.outputs[0]  # MatMul: the shift becomes a bias Add after it
    uses = list(out.uses)
    with graph.inserting_after(reader):
        added = graph.make_node(Op.Add, [out, graph.add_constant(shift.astype(dtype), f"{reader.name}/bias")],
                                name=f"{reader.name}/bias").output
    for user, i in uses:
        user.set_input(i, added)
    if out in graph.outputs:
        out.name, added.name = added.name, out.name
        graph.outputs = [added if o is out else o for o in graph.outputs]
