"""Run regions of row-wise ops on blocks of token rows (MCUFormer's operator integration).

An op is row-wise when row i of each output depends only on row i of each input: Linear
(over the last axis), row norms, elementwise ops, an embedding Gather, a reduction or a
Concat over the last axis, a last-axis Softmax. A connected region of such ops with the
same number of rows computes the same numbers on row blocks:

    outs = R(ins)  ==>  outs = Concat_t(R(Split(ins)_t))      (along the token axis)

so the tensors inside the region (the MLP's hidden tensor) exist one block at a time.
Cases: 1. pre-norm MLP, norm -> Linear(act) -> Linear(+x); 2. post-norm MLP with the
LayerNorms around it; 3. embeddings, Gather + Add + SkipLayerNorm; 4. a final norm.
A constant with one row per token (position embeddings) is sliced per block. Regions
without an inner tensor are left alone: chunking them saves nothing.
"""
from __future__ import annotations

import math

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import BINARY_ELEMENTWISE, REDUCTIONS, UNARY_ELEMENTWISE, Op
from ...ir.value import Value
from ..base import Pass, PassResult
from .chunk_utils import ChunkReport, chunk_sizes, concat_rows, emitting_before, is_row_norm, rows, split_rows
from .plan import value_bytes

_LAST_AXIS = frozenset({Op.Softmax, Op.LogSoftmax})


def _const_role(c: Value, out: Value, axis: int) -> str | None:
    """How a constant operand of a row-wise op meets the rows: shared, or one row per token."""
    pad = (1,) * (len(out.shape) - len(c.shape)) + tuple(c.shape)
    if len(pad) != len(out.shape):
        return None
    if pad[axis] == 1:
        return "shared"
    if pad[axis] == out.shape[axis] and math.prod(pad[:axis]) == 1:
        return "rows"
    return None


def row_operands(node: Node) -> tuple[int, ...]:
    """Input slots that meet the rows elementwise; constants elsewhere are shared parameters."""
    if node.op in BINARY_ELEMENTWISE or node.op is Op.Concat:
        return tuple(range(len(node.inputs)))
    if node.op in (Op.SkipLayerNorm, Op.SkipRMSNorm):
        return (0, 1)
    if node.op is Op.Linear:
        return (0, 3)
    return (0,)


def row_rule(node: Node) -> int | None:
    """The row count if ``node`` maps rows to rows independently, else None."""
    exported = set(node.graph.outputs) if node.graph is not None else set()
    outs = [o for o in node.outputs if o.uses or o in exported]
    live = [v for v in node.inputs if v is not None and not v.is_const]
    if not outs or not live or not node.outputs[0].shape:
        return None
    tok = rows(node.outputs[0])
    if tok is None or any(rows(v) != tok for v in live + outs):
        return None
    axis, last = tok[0], len(node.outputs[0].shape) - 1
    x, op = node.inputs[0], node.op
    consts = [v for i, v in enumerate(node.inputs) if i in row_operands(node) and v is not None and v.is_const]
    if op is Op.Gather:
        ok = node.attrs.axis == 0 and x.is_const and not node.inputs[1].is_const
        return tok[1] if ok else None
    if x is None or x.is_const:
        return None
    if op is Op.Linear:
        ok = axis < last and all(v.is_const for v in node.inputs[1:3] if v is not None) and (
            node.input(3) is None or node.input(3).shape == node.output.shape)
    elif op in (Op.SkipLayerNorm, Op.SkipRMSNorm):
        ok = axis < last and all(v is None or v.is_const for v in node.inputs[2:]) and (
            node.inputs[1].is_const or node.inputs[1].shape == x.shape)
    elif op in (Op.CRMSNorm, Op.RMSNorm, Op.LayerNormalization):
        ok = axis < last and is_row_norm(node)
    elif op in _LAST_AXIS:
        ok = axis < last and node.attrs.axis % (last + 1) == last
    elif op in REDUCTIONS:
        axes = node.input(1)
        ok = (axis < last and node.attrs.keepdims == 1 and axes is not None and axes.is_const
              and [int(a) % (last + 1) for a in axes.const.numpy().reshape(-1)] == [last])
    elif op is Op.Concat:
        ok = axis < last and node.attrs.axis % (last + 1) == last and not consts
    elif op in UNARY_ELEMENTWISE or op in (Op.Clip, Op.Cast):
        ok = x.shape == node.outputs[0].shape
    elif op in BINARY_ELEMENTWISE:
        ok = all(v.shape == node.output.shape for v in live)
    else:
        return None
    if ok and all(_const_role(c, node.outputs[0], axis) for c in consts):
        return tok[1]
    return None


class ChunkRowwiseRegions(Pass):
    """Run each region of row-wise ops on row blocks: outs = Concat_t(R(Split(ins)_t))."""

    name = "chunk-rows"
    opt_level = 3

    def __init__(self, chunks: int, report: ChunkReport | None = None, only: set[Node] | None = None):
        # ``only``: the nodes it may chunk (not those another chunking pass just made)
        self.chunks, self.report, self.only = chunks, report or ChunkReport(), only

    def run(self, graph: Graph, ctx=None) -> PassResult:
        modified = False
        for region in self.regions(graph, self.only):
            modified |= self._rewrite(graph, region)
        if modified:
            graph.sort()
        return PassResult(graph, modified)

    @staticmethod
    def regions(graph: Graph, only: set[Node] | None = None) -> list[list[Node]]:
        """Connected row-wise nodes with the same row count, each list in graph order."""
        rule = {n: row_rule(n) if only is None or n in only else None for n in graph.nodes}
        parent = {n: n for n in graph.nodes if rule[n]}

        def find(n: Node) -> Node:
            while parent[n] is not n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        for n in parent:
            for v in n.inputs:
                p = v.producer if v is not None else None
                if p in parent and rule[p] == rule[n]:
                    parent[find(p)] = find(n)
        groups: dict[Node, list[Node]] = {}
        for n in graph.nodes:
            if n in parent:
                groups.setdefault(find(n), []).append(n)
        return list(groups.values())

    def _rewrite(self, g: Graph, region: list[Node]) -> bool:
        inside = set(region)
        produced = {o for n in region for o in n.outputs}
        outputs = {v for v in g.outputs}
        inner = [o for o in produced if o not in outputs and all(u in inside for u, _ in o.uses)]
        exported = [o for n in region for o in n.outputs
                    if o in outputs or any(u not in inside for u, _ in o.uses)]
        if not inner or not exported:
            return False
        first = region[0]
        axis, total = rows(first.outputs[0])
        sizes = chunk_sizes(total, self.chunks)
        if len(sizes) < 2:
            return False
        blocks: list[dict[Value, Value]] = [{} for _ in sizes]
        starts = [sum(sizes[:t]) for t in range(len(sizes))]
        with emitting_before(g, region[-1]):
            for v in {v: None for n in region for v in n.inputs
                      if v is not None and not v.is_const and v not in produced}:
                for t, part in enumerate(split_rows(g, v, sizes, g.fresh_node_name(f"{v.name}/rows"))):
                    blocks[t][v] = part
            for t in range(len(sizes)):
                for n in region:
                    ins = [self._block_input(g, n, v, blocks[t], axis, starts[t], sizes[t]) for v in n.inputs]
                    keep = 1 + max((i for i, o in enumerate(n.outputs) if o.uses or o in outputs), default=0)
                    new = g.make_node(n.op, ins, n.attrs, name=f"{n.name}/rows{t}", num_outputs=keep)
                    blocks[t].update(zip(n.outputs, new.outputs))
            joined = {v: concat_rows(g, [b[v] for b in blocks], v, f"{v.name}/rows_out") for v in exported}
        for v, new in joined.items():
            g.replace_all_uses_with(v, new)
        for n in reversed(region):
            g.erase(n)
        names = ", ".join(sorted({n.op.value for n in region}))
        self.report.sites.append(f"{region[-1].name}: {len(region)} row-wise ops ({names}) in "
                                 f"{len(sizes)} row blocks; inner tensors up to "
                                 f"{max(map(value_bytes, inner))} bytes")
        return True

    @staticmethod
    def _block_input(g: Graph, n: Node, v: Value | None, block: dict[Value, Value], axis: int, start: int,
                     size: int) -> Value | None:
        if v is None:
            return None
        if not v.is_const:
            return block[v]
        slot = next(i for i, u in enumerate(n.inputs) if u is v)
        if slot not in row_operands(n) or _const_role(v, n.outputs[0], axis) != "rows":
            return v  # weights, scales, axes: shared by every block
        a = axis - (len(n.outputs[0].shape) - len(v.shape))
        index = tuple(slice(start, start + size) if i == a else slice(None) for i in range(len(v.shape)))
        return g.add_constant(v.const.numpy()[index].copy(), f"{v.name}/rows{start}")
