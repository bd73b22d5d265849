"""Run multi-head attention head by head, with the queries in row blocks.

Whole, self-attention needs the stream, Q, K, V and the output at once (five [T, d]
tensors). Head by head only one head's K and V ([T, d/H] each) must be whole, because every
query reads them; queries and outputs go block by block, and the output projection splits
by head rows of Wo:

    y = r + bo + concat_h(o_h) Wo = r + bo + sum_h o_h Wo[h*D:(h+1)*D, :]

The output of heads 0..H-2 is kept ([T, D] each, (H-1)/H of the attention output); at the
last head each query block t folds all heads into the output in place over r_t:

    y_t = Linear(o_{H-1,t}, Wo_{H-1}, -, ... Linear(o_{0,t}, Wo_0, bo, r_t))

Peak of the block: r + (H-1)/H [T, d] + k_h + v_h + one block, about 2.2x below whole.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ..base import Pass, PassResult
from .chunk_utils import (ChunkReport, chunk_sizes, emitting_before, concat_rows, const_slice, copy_node, erase_dead, is_row_norm,
                          reshape, rows_fit, single_user, split_rows)


@dataclass
class _Site:
    att: Node
    projections: list[tuple[Node, Node, Node]]  # (Linear, Reshape, Transpose) for q, k, v
    out_chain: tuple[Node, Node, Node]  # Transpose, Reshape, output Linear
    heads: int
    head_dim: int
    norm: Node | None  # recompute this norm per block instead of keeping its output


class ChunkAttentionHeads(Pass):
    """Attention head by head, queries in row blocks, output projection folded per head.

    Cases: 1. q, k, v all project s = norm(x) and nothing else reads s (pre-norm ViT): s is
    recomputed from each row block of x and never exists whole; 2. otherwise (BERT, where
    s is also the residual): s is split into row blocks once. Skipped, with the reason:
    causal attention, batch > 1, grouped K/V heads, a mask that varies per head or query,
    projections with an activation or residual, intermediates with other users.
    """

    name = "chunk-attention-heads"
    opt_level = 3

    def __init__(self, chunks: int, report: ChunkReport | None = None):
        self.chunks, self.report = chunks, report or ChunkReport()

    def run(self, graph: Graph, ctx=None) -> PassResult:
        sites = [s for s in (self._match(n) for n in list(graph.nodes) if n.op is Op.Attention) if s]
        for site in sites:
            self._rewrite(graph, site)
            self.report.sites.append(f"{site.att.name}: attention in {site.heads} heads x "
                                     f"{min(self.chunks, site.att.output.shape[2])} query blocks")
        return PassResult(graph, bool(sites))

    def _skip(self, att: Node, why: str) -> None:
        self.report.skipped.append(f"{att.name}: attention not chunked: {why}")

    def _match(self, att: Node) -> _Site | None:
        if att.attrs.causal:
            return self._skip(att, "causal (query blocks would shift the mask)")
        q4 = att.inputs[0]
        if len(q4.shape) != 4 or q4.shape[0] != 1:
            return self._skip(att, "not batch 1")
        _, heads, rows, head_dim = q4.shape
        projections = []
        for v4 in att.inputs[:3]:
            tr = v4.producer
            rs = tr.inputs[0].producer if tr is not None and tr.op is Op.Transpose else None
            lin = rs.inputs[0].producer if rs is not None and rs.op is Op.Reshape else None
            if (lin is None or lin.op is not Op.Linear or tuple(tr.attrs.perm or ()) != (0, 2, 1, 3)
                    or single_user(v4) is not att or single_user(rs.output) is not tr
                    or single_user(lin.output) is not rs or lin.attrs.activation != "none"
                    or lin.input(3) is not None or not all(v is None or v.is_const for v in lin.inputs[1:3])
                    or v4.shape[1] != heads or rs.output.shape[2:] != (heads, head_dim)):
                return self._skip(att, "Q, K or V is not Transpose(Reshape(Linear(s))) per head")
            projections.append((lin, rs, tr))
        mask = att.input(3)
        if mask is not None and (len(mask.shape) < 2 or mask.shape[-2] != 1
                                 or len(mask.shape) >= 3 and mask.shape[-3] != 1):
            return self._skip(att, "the mask varies per head or per query")
        tr_o = single_user(att.output)
        rs_o = single_user(tr_o.output) if tr_o is not None and tr_o.op is Op.Transpose else None
        out = single_user(rs_o.output) if rs_o is not None and rs_o.op is Op.Reshape else None
        if (out is None or out.op is not Op.Linear or tuple(tr_o.attrs.perm or ()) != (0, 2, 1, 3)
                or out.inputs[0] is not rs_o.output or out.attrs.activation != "none"
                or not all(v is None or v.is_const for v in out.inputs[1:3])):
            return self._skip(att, "the output is not Linear(Reshape(Transpose(attention)))")
        r = out.input(3)
        sq, sk, sv = (p[0].inputs[0] for p in projections)
        if (not rows_fit([sq, out.output] + ([r] if r is not None else []), rows)
                or not rows_fit([sk, sv], att.inputs[1].shape[2]) or r is not None and r.shape != out.output.shape):
            return self._skip(att, "the projections' inputs or the residual are not batch-1 rows")
        norm = None
        if sq is sk is sv and sq.producer is not None and is_row_norm(sq.producer) \
                and {id(u) for u, _ in sq.uses} == {id(p[0]) for p in projections} and len(sq.uses) == 3:
            norm = sq.producer
        return _Site(att, projections, (tr_o, rs_o, out), heads, head_dim, norm)

    @staticmethod
    def _keys_values(g: Graph, site: _Site, w: dict, xs: list | None, tag: str):
        """One head's K and V, [1, T, D] each: from recomputed norm rows when ``xs`` is given."""
        lk, lv = site.projections[1][0], site.projections[2][0]
        if xs is None:
            return tuple(g.make_node(Op.Linear, [lin.inputs[0], *w[p]], name=f"{tag}/{p}").output
                         for p, lin in (("k", lk), ("v", lv)))
        parts: dict[str, list] = {"k": [], "v": []}
        for t, x_t in enumerate(xs):
            n_t = copy_node(g, site.norm, [x_t, *site.norm.inputs[1:]], f"{tag}/kv{t}/norm")
            for p in parts:
                parts[p].append(g.make_node(Op.Linear, [n_t, *w[p]], name=f"{tag}/kv{t}/{p}").output)
        return tuple(concat_rows(g, parts[p], like.output, f"{tag}/{p}") for p, like in (("k", lk), ("v", lv)))

    def _rewrite(self, g: Graph, site: _Site) -> None:
        lq, lk, lv = (p[0] for p in site.projections)
        tr_o, rs_o, out = site.out_chain
        att, heads, d = site.att, site.heads, site.head_dim
        rows, kv_rows = att.inputs[0].shape[2], att.inputs[1].shape[2]
        sizes, kv_sizes = chunk_sizes(rows, self.chunks), chunk_sizes(kv_rows, self.chunks)
        norm, r, mask = site.norm, out.input(3), att.input(3)
        name = att.name
        with emitting_before(g, out):
            xs = xs_kv = sqs = None
            if norm is not None:
                x = norm.inputs[0]
                xs = split_rows(g, x, sizes, f"{name}/rows")
                xs_kv = xs if kv_sizes == sizes else split_rows(g, x, kv_sizes, f"{name}/kv_rows")
            else:
                sqs = split_rows(g, lq.inputs[0], sizes, f"{name}/q_rows")
            if r is None:
                rs = None
            elif norm is not None and r is norm.inputs[0]:
                rs = xs
            elif norm is None and r is lq.inputs[0]:
                rs = sqs
            else:
                rs = split_rows(g, r, sizes, f"{name}/residual_rows")
            kept: list[list] = []
            ys = []
            wo = [const_slice(g, out.inputs[1], (slice(j * d, (j + 1) * d), slice(None)), f"{name}/Wo{j}")
                  for j in range(heads)]
            for h in range(heads):
                cols = (slice(None), slice(h * d, (h + 1) * d))
                tag = f"{name}/h{h}"
                w = {p: (const_slice(g, lin.inputs[1], cols, f"{tag}/W{p}"),
                         const_slice(g, lin.input(2), cols[1:], f"{tag}/b{p}"))
                     for p, lin in (("q", lq), ("k", lk), ("v", lv))}
                k_h, v_h = self._keys_values(g, site, w, xs_kv, tag)
                k4 = reshape(g, k_h, [1, 1, kv_rows, d], f"{tag}/k4")
                v4 = reshape(g, v_h, [1, 1, kv_rows, d], f"{tag}/v4")
                outs = []
                for t, c in enumerate(sizes):
                    src = (copy_node(g, norm, [xs[t], *norm.inputs[1:]], f"{tag}/q{t}/norm")
                           if norm is not None else sqs[t])
                    q = g.make_node(Op.Linear, [src, *w["q"]], name=f"{tag}/q{t}").output
                    q4 = reshape(g, q, [1, 1, c, d], f"{tag}/q{t}/q4")
                    o4 = g.make_node(Op.Attention, [q4, k4, v4] + ([mask] if mask is not None else []),
                                     att.attrs, name=f"{tag}/attn{t}").output
                    o = reshape(g, o4, [1, c, d], f"{tag}/attn{t}/rows")
                    if h < heads - 1:
                        outs.append(o)
                        continue
                    acc = rs[t] if rs is not None else None
                    for j in range(heads):  # fold every head's rows t into the output
                        ins = [o if j == heads - 1 else kept[j][t], wo[j], out.input(2) if j == 0 else None, acc]
                        while ins[-1] is None:
                            ins.pop()
                        acc = g.make_node(Op.Linear, ins, name=f"{name}/out{t}/h{j}").output
                    ys.append(acc)
                kept.append(outs)
            y = concat_rows(g, ys, out.output, f"{name}/rows_out")
        g.replace_all_uses_with(out.output, y)
        dead = [out, rs_o, tr_o, att] + [n for p in site.projections for n in reversed(p)]
        erase_dead(g, dead + ([norm] if norm is not None else []))
