"""Split a patchifying Conv into blocks of patches (MCUFormer's patch-embedding decomposition)."""
from __future__ import annotations

import math

import numpy as np

from ...ir.attrs import TransposeAttrs
from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ..base import Pass, PassResult
from .chunk_utils import ChunkReport, chunk_sizes, emitting_before, concat_rows, copy_node, erase_dead, reshape, single_user
from .plan import value_bytes


class ChunkPatchEmbedding(Pass):
    """Run a patchifying Conv (kernel = stride, no padding) on blocks of patches.

        T = Transpose(Reshape(Conv(img)))  ==>  T = Concat_t(Transpose(Reshape(Conv(img[rows_t]))))

    Each block is whole patch rows or, with more chunks than patch rows, part of one patch
    row; ``img[rows_t]`` is a Slice of the pixels under it. Only done when the estimate
    (image + tokens + one block, against image + conv output or conv output + tokens)
    says the peak of this stage drops: the image stays live throughout.
    """

    name = "chunk-patch-embedding"
    opt_level = 3

    def __init__(self, chunks: int, report: ChunkReport | None = None):
        self.chunks, self.report = chunks, report or ChunkReport()

    def run(self, graph: Graph, ctx=None) -> PassResult:
        sites = [s for s in (self._match(n) for n in list(graph.nodes) if n.op is Op.Transpose) if s]
        for site in sites:
            self._rewrite(graph, *site)
        return PassResult(graph, bool(sites))

    def _match(self, tr: Node):
        if tuple(tr.attrs.perm or ()) != (0, 2, 1):
            return None
        rs = tr.inputs[0].producer
        cv = rs.inputs[0].producer if rs is not None and rs.op is Op.Reshape else None
        if cv is None or cv.op is not Op.Conv or single_user(rs.output) is not tr or single_user(cv.output) is not rs:
            return None
        a, img = cv.attrs, cv.inputs[0]
        k, s = tuple(a.kernel_shape or cv.inputs[1].shape[2:]), tuple(a.strides or (1, 1))
        if (a.group != 1 or k != s or len(k) != 2 or any(a.pads or ()) or any(d != 1 for d in a.dilations or ())
                or a.auto_pad not in ("NOTSET", "VALID") or img.shape[0] != 1 or img.is_const):
            self.report.skipped.append(f"{cv.name}: patch embedding not chunked: not a batch-1 "
                                       f"Conv with kernel = stride and no padding")
            return None
        hp, wp = cv.output.shape[2:]
        rows, cols = self._blocks(hp, wp)
        block = max(r1 - r0 for r0, r1 in rows) * max(c1 - c0 for c0, c1 in cols)
        per_patch = value_bytes(cv.output) // (hp * wp)
        pix = value_bytes(img) // (img.shape[2] * img.shape[3]) * k[0] * k[1]
        before = max(value_bytes(img), value_bytes(tr.output)) + value_bytes(cv.output)
        after = value_bytes(img) + value_bytes(tr.output) + block * (pix + 2 * per_patch)
        if after >= before:
            self.report.skipped.append(f"{cv.name}: patch embedding not chunked: the image stays live, "
                                       f"blocks of {block} patches would not lower this stage's peak")
            return None
        return tr, rs, cv, k, s, rows, cols

    def _blocks(self, hp: int, wp: int):
        if self.chunks <= hp:
            rows, acc = [], 0
            for n in chunk_sizes(hp, self.chunks):
                rows.append((acc, acc + n))
                acc += n
            return rows, [(0, wp)]
        cols, acc = [], 0
        for n in chunk_sizes(wp, math.ceil(self.chunks / hp)):
            cols.append((acc, acc + n))
            acc += n
        return [(r, r + 1) for r in range(hp)], cols

    def _rewrite(self, g: Graph, tr: Node, rs: Node, cv: Node, kernel, strides, rows, cols) -> None:
        (kh, kw), (sh, sw) = kernel, strides
        img, out_ch = cv.inputs[0], cv.output.shape[1]
        parts = []
        with emitting_before(g, tr):
            for r0, r1 in rows:
                for c0, c1 in cols:
                    tag = f"{cv.name}/patches_{r0}_{c0}"
                    starts, ends = [r0 * sh, c0 * sw], [(r1 - 1) * sh + kh, (c1 - 1) * sw + kw]
                    sl = g.make_node(Op.Slice, [img, g.add_constant(np.array(starts, np.int64), f"{tag}/starts"),
                                                g.add_constant(np.array(ends, np.int64), f"{tag}/ends"),
                                                g.add_constant(np.array([2, 3], np.int64), f"{tag}/axes")],
                                     name=f"{tag}/pixels").output
                    conv = copy_node(g, cv, [sl, *cv.inputs[1:]], f"{tag}/conv")
                    n = (r1 - r0) * (c1 - c0)
                    flat = reshape(g, conv, [1, out_ch, n], f"{tag}/flatten")
                    parts.append(g.make_node(Op.Transpose, [flat], TransposeAttrs(perm=(0, 2, 1)),
                                             name=f"{tag}/tokens").output)
            y = concat_rows(g, parts, tr.output, f"{cv.name}/patches_out")
        g.replace_all_uses_with(tr.output, y)
        erase_dead(g, [tr, rs, cv])
        self.report.sites.append(f"{cv.name}: patch embedding in {len(parts)} blocks")
