"""Pre-RMSNorm -> Pre-CRMSNorm (Jiang et al. 2023): the zero-mean stream stored in d-1 dims."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value
from ..base import Pass, PassResult
from ..canonical.dce import EliminateDeadCode
from .prernorm import _linear_readers, _replace_const
from .stream import Stream, Writer, trace_stream

KIND = "RMSNorm -> CRMSNorm"
# a writer whose outputs average to more than this (relative to its weights) is not centred
_CENTRED_RTOL = 1e-5


class RMSNormToCRMSNorm(Pass):
    """Store a zero-mean residual stream x in its first d-1 coordinates (x_d = -sum x').

    1. writers drop their last output channel (weights, biases, tables, constants);
    2. every stream tensor's hidden axis shrinks d -> d-1 (Reshape/Expand targets too);
    3. RMSNorm(x) -> CRMSNorm(x') = x' / sqrt((sum x'^2 + (sum x')^2)/d + eps), which is
       RMSNorm(x)[:d-1]; a Linear reading it takes W' = W[:d-1] - W[d-1] (the dropped
       coordinate is -sum of the others); any other reader gets the full vector back,
       Concat(y', -sum y'), before the norm's own scale and bias.
    Needs a stream proven zero-mean with its writers already centred (ln-to-rmsnorm
    does that); the model's inputs and outputs keep their shapes.
    """

    name = "crmsnorm"
    opt_level = 2

    def run(self, graph: Graph, ctx) -> PassResult:
        norms = [n for n in graph.nodes if n.op is Op.RMSNorm]
        if not norms:
            return PassResult(graph, False)
        # shape arithmetic that earlier rewrites left dead (GPT-2's Conv1D reshapes read
        # Shape(ln_out)) must not count as a reader of the stream or of a norm
        EliminateDeadCode().run(graph, ctx)
        stream = trace_stream(graph)
        reason = (stream.reason or _not_centred(stream) or _hidden_size(stream)[1] or _shape_use(stream)
                  or _targets(stream, graph, _hidden_size(stream)[0], dry_run=True))
        if reason:
            if ctx is not None:
                ctx.report.record_miss(KIND, norms[0].name, f"not convertible: {reason}")
            return PassResult(graph, False)
        d = _hidden_size(stream)[0]
        for w in stream.writers:
            _drop_last(graph, w)
        _targets(stream, graph, d, dry_run=False)
        for v in stream.values:
            if v.const is None and v.shape is not None and v.shape[stream.axes[id(v)]] == d:
                axis = stream.axes[id(v)]
                v.shape = v.shape[:axis] + (d - 1,) + v.shape[axis + 1:]
        for n in norms:
            _to_crms(graph, n, d)
        graph.remove_unused_constants()
        if ctx is not None:
            ctx.report.record_fired(KIND, len(norms))
            ctx.report.note(f"{KIND}: residual stream stored in {d - 1} of {d} dims")
        return PassResult(graph, True)


def _hidden_size(stream: Stream) -> tuple[int | None, str | None]:
    sizes = {n.inputs[0].shape[-1] for n in stream.norms if n.inputs[0].shape}
    if len(sizes) != 1 or not isinstance(next(iter(sizes)), int):
        return None, f"hidden sizes {sorted(map(str, sizes))} are not one known number"
    return sizes.pop(), None


def _writer_mean(w: Writer) -> tuple[float, float]:
    """(largest |mean over the output axis|, scale) of what the writer adds to the stream."""
    if w.node is None:
        arr = np.asarray(w.value.const.numpy(), np.float64)
        return float(np.abs(arr.mean(axis=w.axis)).max()), float(np.abs(arr).max())
    node = w.node
    if node.op is Op.Gather:
        arr = np.asarray(node.inputs[0].const.numpy(), np.float64)
        return float(np.abs(arr.mean(axis=1)).max()), float(np.abs(arr).max())
    arr = np.asarray(node.inputs[1].const.numpy(), np.float64)
    axis = 0 if node.op is Op.Conv or (node.op is Op.Gemm and node.attrs.transB) else 1
    worst = float(np.abs(arr.mean(axis=axis)).max())
    b = node.input(2)
    if b is not None:
        worst = max(worst, abs(float(np.asarray(b.const.numpy(), np.float64).mean())))
    return worst, float(np.abs(arr).max())


def _not_centred(stream: Stream) -> str | None:
    for w in stream.writers:
        mean, scale = _writer_mean(w)
        if mean > _CENTRED_RTOL * max(scale, 1.0):
            where = w.node.describe() if w.node is not None else f"constant %{w.value.name}"
            return (f"{where} writes vectors with mean {mean:.2e}: the stream is not zero-mean (ln-to-rmsnorm "
                    f"centres the streams of LayerNorm models; a model built with RMSNorm keeps it)")
    return None


def _shape_use(stream: Stream) -> str | None:
    """A Shape reader may look at the stream's other dims, never the hidden one (it shrinks)."""
    for reader in stream.shape_readers:
        v = reader.inputs[0]
        axis = stream.axes[id(v)]
        for user, _ in reader.outputs[0].uses:
            idx = user.inputs[1].const if user.op is Op.Gather and len(user.inputs) > 1 else None
            if idx is None:
                return f"{reader.describe()} passes the stream's shape to {user.describe()}"
            picked = [int(i) % v.rank for i in np.asarray(idx.numpy()).reshape(-1)]
            if axis in picked:
                return f"{user.describe()} reads the hidden size"
    return None


def _slice_last(arr: np.ndarray, axis: int) -> np.ndarray:
    index = [slice(None)] * arr.ndim
    index[axis] = slice(0, arr.shape[axis] - 1)
    return np.require(arr[tuple(index)], requirements="C")


def _drop_last(graph: Graph, w: Writer) -> None:
    if w.node is None:
        arr = np.asarray(w.value.const.numpy())
        _replace_const(graph, None, w.value, _slice_last(arr, w.axis), f"{w.value.name}_crms")
        return
    node = w.node
    if node.op is Op.Gather:
        table = node.inputs[0]
        _replace_const(graph, node, table, _slice_last(np.asarray(table.const.numpy()), 1), f"{table.name}_crms")
        return
    weight = node.inputs[1]
    axis = 0 if node.op is Op.Conv or (node.op is Op.Gemm and node.attrs.transB) else 1
    _replace_const(graph, node, weight, _slice_last(np.asarray(weight.const.numpy()), axis), f"{weight.name}_crms")
    bias = node.input(2)
    if bias is not None:
        b = np.asarray(bias.const.numpy()).reshape(-1)
        _replace_const(graph, node, bias, b[:-1].copy(), f"{bias.name}_crms")


def _targets(stream: Stream, graph: Graph, d: int | None, dry_run: bool) -> str | None:
    """Reshape/Expand targets on the stream that spell d at the hidden axis must say d-1."""
    for v in stream.values:
        p = v.producer
        if p is None or p.op not in (Op.Reshape, Op.Expand):
            continue
        if p.op is Op.Expand:
            # the stream proof saw the input already has the full hidden axis: a target of 1
            # there keeps it, whatever the exporter computed
            if not dry_run:
                _expand_keeps_axis(graph, p, stream.axes[id(v)])
            continue
        slot = _slot(p.inputs[1], stream.axes[id(v)])
        if slot is None:
            return f"{p.describe()}: cannot tell whether its target spells the hidden size"
        const, pos = slot
        if const is None or int(np.asarray(const.const.numpy()).reshape(-1)[pos]) != d:
            continue
        if not dry_run:
            arr = np.asarray(const.const.numpy()).reshape(-1).copy()
            arr[pos] = d - 1
            new = graph.add_constant(arr.reshape(const.const.shape), f"{const.name}_crms")
            for user, i in list(const.uses):
                if user is p or user.outputs[0] is p.inputs[1]:
                    user.set_input(i, new)
    return None


def _expand_keeps_axis(graph: Graph, node: Node, axis: int) -> None:
    """target' = target * keep + onehot: 1 at the hidden axis, the rest unchanged."""
    target = node.inputs[1]
    n = target.shape[0] if target.shape else None
    keep = np.ones(n, np.int64)
    keep[axis] = 0
    with graph.inserting_before(node):
        k = graph.add_constant(keep, f"{node.name}/keep")
        one = graph.add_constant(1 - keep, f"{node.name}/one")
        t = graph.make_node(Op.Mul, [target, k], name=f"{node.name}/keep").output
        t = graph.make_node(Op.Add, [t, one], name=f"{node.name}/one").output
    node.set_input(1, t)


def _slot(target: Value, index: int) -> tuple[Value | None, int] | None:
    """The constant (and position in it) that holds element ``index`` of a shape vector.

    (None, 0) when that element comes from a Shape (it tracks the input's dim by itself).
    """
    if target.const is not None:
        return (target, index) if index < target.const.size else None
    p = target.producer
    if p is None:
        return None
    if p.op is Op.Concat:
        offset = 0
        for part in p.inputs:
            n = part.shape[0] if part.shape and len(part.shape) == 1 else (1 if part.shape == () else None)
            if not isinstance(n, int):
                return None
            if index < offset + n:
                return _slot(part, index - offset)
            offset += n
        return None
    if p.op in (Op.Unsqueeze, Op.Gather, Op.Shape, Op.Cast, Op.Squeeze):
        return (None, 0)  # derived from a shape, not a spelled-out number
    return None


def _to_crms(graph: Graph, norm: Node, d: int) -> None:
    x, scale, bias = norm.inputs[0], norm.input(1), norm.input(2)
    y = norm.outputs[0]
    readers = _linear_readers(y, graph) if scale is None and bias is None else None
    with graph.inserting_before(norm):
        yc = graph.make_node(Op.CRMSNorm, [x], Op.CRMSNorm.attrs_type(dim=d, epsilon=norm.attrs.epsilon),
                             name=f"{norm.name}/crms").output
    if readers is not None:
        for r in readers:
            w = r.inputs[1]
            wa = np.asarray(w.const.numpy(), np.float64)
            _replace_const(graph, r, w, (wa[:-1] - wa[-1:]).astype(w.const.dtype.numpy), f"{w.name}_crms")
        graph.replace_all_uses_with(y, yc)
        graph.erase(norm)
        return
    with graph.inserting_before(norm):
        last = graph.add_constant(np.array([-1], np.int64), f"{norm.name}/axis")
        total = graph.make_node(Op.ReduceSum, [yc, last], name=f"{norm.name}/sum").output
        neg = graph.make_node(Op.Neg, [total], name=f"{norm.name}/last").output
        full = graph.make_node(Op.Concat, [yc, neg], Op.Concat.attrs_type(axis=-1), name=f"{norm.name}/full").output
        if scale is not None:
            full = graph.make_node(Op.Mul, [full, scale], name=f"{norm.name}/scale").output
        if bias is not None:
            full = graph.make_node(Op.Add, [full, bias], name=f"{norm.name}/bias").output
    graph.replace_all_uses_with(y, full)
    graph.erase(norm)
