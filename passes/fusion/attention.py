"""Attention fusion: the scaled-dot-product core of a transformer layer.

    Attention(q, k, v, mask) = softmax(q @ k^T * scale + mask) @ v

over [batch, heads, seq, head_dim]. The matcher is procedural, rooted at each
Softmax, because exporters spell the core with many optional parts:

1. K^T as Transpose(k), as Transpose of the [B, S, H, D] head split, or (dynamo)
   as Reshape(Transpose(Reshape(k, [B*H, S, D]), [0, 2, 1]), [B, H, D, S]);
2. the scale as Mul/Div of the scores by a constant, or of q and k each by its
   square root (torch's SDPA decomposition);
3. an optional mask: Add of a float mask, Where(keep, scores, -big), or
   masked_fill's Where(masked, -big, scores). A float mask Where(b, 0, -inf)
   becomes the bool mask b; a mask that is all zeros / all True (ViT's dynamo
   export) is dropped; with a -inf fill, a provably causal term of a bool mask
   becomes causal=1 (see causal.py). A finite fill (finfo.min) stays additive:
   a fully masked row then averages all keys, which -inf would turn into zeros;
4. the guard Where(IsNaN(p), 0, p) after the Softmax. Attention defines a fully
   masked row as zeros, so the guard is implied (without it such a row was NaN);
5. grouped-query attention: LLaMA's repeat_kv, Reshape(Expand(Unsqueeze(k, 2),
   [B, Hkv, r, S, D]), [B, Hkv*r, S, D]), is folded into Attention, which
   repeats each kv head r times the same way.

Head split and merge (Reshape/Transpose around the core) stay separate nodes.
A Softmax next to a MatMul that does not fuse leaves its reason in the report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...ir.attrs import AttentionAttrs, TransposeAttrs
from ...ir.graph import Graph
from ...ir.node import Node
from ...ir.op import Op
from ...ir.shape import Dim, Shape
from ...ir.symbolic import symbolic_value
from ...ir.value import Value
from ..base import Pass, PassResult
from .causal import all_true, split_causal
from .common import scalar

KIND = "Attention"
# a Where fill at or below this is a mask value (HF uses finfo.min or -10000)
_MASK_FILL = -1e4


class NoMatch(Exception):
    """Raised inside the matcher with the reason the candidate does not fuse."""


@dataclass
class _Found:
    """Everything the rewrite needs, bound by the matcher (no state kept on the pass)."""

    pv: Node                      # MatMul(probs, v): its output becomes the Attention output
    core: list[Node]              # nodes the Attention replaces (used only inside the match)
    q: Value
    k: Value
    k_perm: tuple[int, ...] | None  # Transpose k by this first (k given as [B, S, H, D])
    v: Value
    scale: float | None
    mask: Value | None = None
    mask_kind: str = "none"
    mask_fill: float | None = None  # Where(bool, scores, fill) with a finite fill: rebuild additively
    mask_invert: bool = False       # the Where condition marks masked positions (masked_fill)
    mask_terms: list[Value] = field(default_factory=list)  # ANDed into the bool mask
    causal: int = 0
    stripped: list[Node] = field(default_factory=list)  # layout/scale nodes that may die with it


# ---- small helpers ------------------------------------------------------------------
def _producer(v: Value | None, *ops: Op) -> Node | None:
    node = v.producer if v is not None else None
    return node if node is not None and node.op in ops else None


def _strip_scale(v: Value) -> tuple[Value, float, list[Node]]:
    """v = x * c1 / c2 ...  ->  (x, c1 / c2 ..., the Mul/Div nodes), constants being scalars."""
    factor, nodes = 1.0, []
    while True:
        node = _producer(v, Op.Mul, Op.Div)
        if node is None:
            return v, factor, nodes
        a, b = node.inputs
        c = scalar(b)
        if node.op is Op.Mul and c is None and scalar(a) is not None:
            a, c = b, scalar(a)
        # the constant must not broadcast x to a bigger shape
        if c is None or c == 0 or a.const is not None or node.outputs[0].shape != a.shape:
            return v, factor, nodes
        factor = factor * c if node.op is Op.Mul else factor / c
        nodes.append(node)
        v = a


def _leads_to_matmul(v: Value) -> bool:
    return _producer(_strip_scale(v)[0], Op.MatMul) is not None


def _dims(shape: Shape) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]" if shape is not None else "[*]"


def _const_all(v: Value, pred) -> bool:
    return v.const is not None and v.const.size > 0 and bool(np.all(pred(np.asarray(v.const.numpy()))))


def _all_zero(v: Value) -> bool:
    """v is provably all zeros: a constant, an Expand of one, or Where(all-True, zeros, _)."""
    if _const_all(v, lambda a: a == 0):
        return True
    node = v.producer
    if node is not None and node.op is Op.Expand:
        return _all_zero(node.inputs[0])
    if node is not None and node.op is Op.Where:
        return all_true(node.inputs[0]) and _all_zero(node.inputs[1])
    return False


def _vector(v: Value) -> tuple[Dim, ...] | None:
    """symbolic_value, plus torchscript's Where(Equal(t, -1), 1, t) that resolves -1 in expand sizes."""
    got = symbolic_value(v)
    if got is not None:
        return got
    node = _producer(v, Op.Where)
    eq = _producer(node.inputs[0], Op.Equal) if node is not None else None
    if eq is None:
        return None
    a, b, x, y = (symbolic_value(u) for u in (*eq.inputs, node.inputs[1], node.inputs[2]))
    if a is None or b is None or x is None or y is None:
        return None
    n = max(len(a), len(b), len(x), len(y))
    if any(len(t) not in (1, n) for t in (a, b, x, y)):
        return None
    a, b, x, y = (t * n if len(t) == 1 else t for t in (a, b, x, y))
    out = []
    for ai, bi, xi, yi in zip(a, b, x, y):
        if isinstance(ai, int) and isinstance(bi, int):
            same = ai == bi
        elif ai is not None and bi is not None and (isinstance(ai, int) and ai < 0 or
                                                    isinstance(bi, int) and bi < 0):
            same = False  # a symbolic dim is never negative
        else:
            return None
        out.append(xi if same else yi)
    return tuple(out)


# ---- K^T and repeat_kv ------------------------------------------------------------------
def _untranspose(kt: Value) -> tuple[Value, tuple[int, ...] | None, list[Node]]:
    """K^T [B, H, D, S] -> (k source, perm turning it into k [B, H, S, D] or None, nodes)."""
    node = _producer(kt, Op.Transpose)
    if node is not None and kt.rank == 4:
        perm = node.attrs.perm or (3, 2, 1, 0)
        perm = (perm[0], perm[1], perm[3], perm[2])
        return node.inputs[0], (None if perm == (0, 1, 2, 3) else perm), [node]
    # dynamo: Reshape(Transpose(Reshape(k, [B*H, S, D]), [0, 2, 1]), [B, H, D, S])
    outer = _producer(kt, Op.Reshape)
    tr = _producer(outer.inputs[0], Op.Transpose) if outer is not None else None
    inner = _producer(tr.inputs[0], Op.Reshape) if tr is not None else None
    if inner is not None and tr.attrs.perm == (0, 2, 1):
        k = inner.inputs[0]
        ks, flat_shape = k.shape, inner.outputs[0].shape
        if ks is not None and len(ks) == 4 and None not in ks and flat_shape is not None \
                and len(flat_shape) == 3 and tuple(flat_shape[1:]) == tuple(ks[2:]) \
                and kt.shape == (ks[0], ks[1], ks[3], ks[2]):
            return k, None, [outer, tr, inner]
    return kt, (0, 1, 3, 2), []  # anything else: transpose it back explicitly


def _unrepeat(x: Value) -> tuple[Value, list[Node]] | None:
    """x = repeat_kv(src, r) [B, Hkv*r, S, D]  ->  (src [B, Hkv, S, D], nodes), else None."""
    reshape = _producer(x, Op.Reshape)
    expand = _producer(reshape.inputs[0], Op.Expand) if reshape is not None else None
    unsq = _producer(expand.inputs[0], Op.Unsqueeze) if expand is not None else None
    if unsq is None or unsq.input(1) is None or unsq.inputs[1].const is None:
        return None
    src = unsq.inputs[0]
    if [int(a) for a in np.asarray(unsq.inputs[1].const.numpy()).reshape(-1)] != [2] \
            or src.shape is None or x.shape is None or len(src.shape) != 4 or len(x.shape) != 4:
        return None
    (b, hkv, s, d), (b2, h, s2, d2) = src.shape, x.shape
    if (b, s, d) != (b2, s2, d2) or None in (b, s, d) or not isinstance(hkv, int) \
            or not isinstance(h, int) or h % hkv:
        return None
    # Expand may only broadcast the new axis (to r): then the heads come out as Attention repeats them
    target = _vector(expand.inputs[1])
    src5 = (b, hkv, 1, s, d)
    if target is None or len(target) != 5 or target[2] != h // hkv:
        return None
    if any(t != 1 and t != src_dim for i, (t, src_dim) in enumerate(zip(target, src5)) if i != 2):
        return None
    return src, [reshape, expand, unsq]


# ---- the matcher -----------------------------------------------------------------------
def match(softmax: Node) -> _Found:
    """Bind the attention core around ``softmax``, or raise NoMatch with the reason."""
    probs = softmax.outputs[0]
    rank = probs.rank
    if rank is None:
        raise NoMatch("the softmax input's rank is unknown")
    if softmax.attrs.axis % rank != rank - 1:
        raise NoMatch(f"softmax over axis {softmax.attrs.axis}, not the last (key) axis")
    core = [softmax]
    # 4. the NaN guard: Where(IsNaN(p), 0, p)
    users = probs.users()
    isnan = next((u for u in users if u.op is Op.IsNaN), None)
    if isnan is not None:
        guard = next((u for u in isnan.outputs[0].users() if u.op is Op.Where), None)
        if guard is None or guard.inputs[0] is not isnan.outputs[0] or guard.inputs[2] is not probs \
                or not _const_all(guard.inputs[1], lambda a: a == 0):
            raise NoMatch("IsNaN of the probabilities is not the guard Where(IsNaN(p), 0, p)")
        core += [isnan, guard]
        probs = guard.outputs[0]
    pv = next((u for u in probs.users() if u.op is Op.MatMul and u.inputs[0] is probs), None)
    if pv is None:
        raise NoMatch("the probabilities do not feed a MatMul with V")
    core.append(pv)
    v = pv.inputs[1]

    # 3. the mask, 2. the scale on the scores, then Q @ K^T
    x = softmax.inputs[0]
    found = _Found(pv=pv, core=core, q=x, k=x, k_perm=None, v=v, scale=None)
    node = x.producer
    if node is not None and node.op is Op.Add:
        a, b = node.inputs
        if not _leads_to_matmul(a) and _leads_to_matmul(b):
            a, b = b, a
        if not _leads_to_matmul(a):
            raise NoMatch("the softmax input is an Add, but neither operand is a scaled Q @ K^T")
        found.mask, found.mask_kind = b, "additive"
        core.append(node)
        x = a
    elif node is not None and node.op is Op.Where and any(_leads_to_matmul(i) for i in node.inputs[1:]):
        # Where(keep, scores, fill), or masked_fill's Where(masked, fill, scores)
        invert = not _leads_to_matmul(node.inputs[1])
        x, fill_value = (node.inputs[2], node.inputs[1]) if invert else (node.inputs[1], node.inputs[2])
        fill = scalar(fill_value)
        if fill is None or fill > _MASK_FILL:
            raise NoMatch(f"the masking Where fills with %{fill_value.name}, not a large negative constant")
        found.mask, found.mask_kind, found.mask_invert = node.inputs[0], "bool", invert
        found.mask_fill = None if fill == -math.inf else fill
        core.append(node)
    scores_in, s_factor, s_nodes = _strip_scale(x)
    core += s_nodes
    qk = _producer(scores_in, Op.MatMul)
    if qk is None:
        what = scores_in.producer.describe() if scores_in.producer else f"%{scores_in.name}"
        raise NoMatch(f"the softmax input is not a scaled Q @ K^T (it comes from {what})")
    core.append(qk)
    scores = qk.outputs[0]
    q, q_factor, q_nodes = _strip_scale(qk.inputs[0])
    kt, k_factor, k_nodes = _strip_scale(qk.inputs[1])
    k, perm, t_nodes = _untranspose(kt)
    found.q, found.k, found.k_perm = q, k, perm
    found.stripped = q_nodes + k_nodes + t_nodes

    # 5. grouped-query attention: fold repeat_kv when both k and v carry it
    if perm is None:
        k_src, v_src = _unrepeat(k), _unrepeat(v)
        if k_src is not None and v_src is not None and k_src[0].shape[1] == v_src[0].shape[1]:
            found.k, found.v = k_src[0], v_src[0]
            found.stripped += k_src[1] + v_src[1]

    _check_shapes(found, scores)
    _check_mask(found, scores)
    _check_one_use(found)
    d = q.shape[3]
    total = q_factor * k_factor * s_factor
    # the default 1/sqrt(D) prints as no attribute; exporters store sqrt(scale) in float32
    default = isinstance(d, int) and math.isclose(total, 1 / math.sqrt(d), rel_tol=1e-6)
    found.scale = None if default else float(total)
    return found


def _check_shapes(found: _Found, scores: Value) -> None:
    q, v = found.q, found.v
    k_shape = found.k.shape
    if k_shape is not None and found.k_perm is not None and len(k_shape) == 4:
        k_shape = tuple(k_shape[p] for p in found.k_perm)
    for name, shape in (("Q", q.shape), ("K", k_shape), ("V", v.shape), ("the scores", scores.shape)):
        if shape is None or len(shape) != 4:
            raise NoMatch(f"{name} has shape {_dims(shape)}; Attention takes [batch, heads, seq, head_dim]")
    for v_ in (q, found.k, v):
        if v_.dtype is None or not v_.dtype.is_float:
            raise NoMatch(f"%{v_.name} is not floating point")
    h, hk, hv = q.shape[1], k_shape[1], v.shape[1]
    if hk != hv or k_shape[2] != v.shape[2]:
        raise NoMatch(f"K {_dims(k_shape)} and V {_dims(v.shape)} differ in heads or length")
    if isinstance(h, int) and isinstance(hk, int) and h % hk:
        raise NoMatch(f"{h} query heads is not a multiple of {hk} key/value heads")
    if not (isinstance(h, int) and isinstance(hk, int)) and h != hk:
        raise NoMatch(f"query heads {h} and key/value heads {hk} are not provably compatible")
    if q.shape[3] != k_shape[3] or q.shape[3] is None:
        raise NoMatch(f"Q {_dims(q.shape)} and K {_dims(k_shape)} differ in head size")
    want = (q.shape[0], q.shape[1], q.shape[2], k_shape[2])
    if tuple(scores.shape) != want:
        raise NoMatch(f"Q @ K^T has shape {_dims(scores.shape)}, expected {_dims(want)} "
                      f"(the batch or head dims broadcast)")


def _check_mask(found: _Found, scores: Value) -> None:
    mask = found.mask
    if mask is None:
        return
    if found.mask_kind == "additive":
        if mask.dtype is not scores.dtype:
            raise NoMatch(f"the mask %{mask.name} is {mask.dtype}, the scores {scores.dtype}")
    elif mask.dtype is None or mask.dtype.numpy != np.bool_:
        raise NoMatch(f"the Where condition %{mask.name} is not bool")
    reason = _broadcast_reason(mask, scores.shape)
    if reason:
        raise NoMatch(reason)
    # a float mask Where(b, 0, -inf) is the bool mask b
    where = _producer(mask, Op.Where)
    if found.mask_kind == "additive" and where is not None \
            and where.inputs[0].dtype is not None and where.inputs[0].dtype.numpy == np.bool_ \
            and _const_all(where.inputs[1], lambda a: a == 0) \
            and _const_all(where.inputs[2], lambda a: a == -np.inf) \
            and where.outputs[0].shape == where.inputs[0].shape:
        found.mask, found.mask_kind = where.inputs[0], "bool"
    if (found.mask_kind == "bool" and not found.mask_invert and all_true(found.mask)) or \
            (found.mask_kind == "additive" and _all_zero(found.mask)):
        found.mask, found.mask_kind, found.mask_fill = None, "none", None
        return
    if found.mask_kind == "bool" and found.mask_fill is None and not found.mask_invert:
        # with a -inf fill a fully masked row gives zeros both ways, so the causal part may move
        # to the attribute; with a finite fill it gives a uniform row, and must stay in the mask
        terms, causal = split_causal(found.mask, scores.shape[2], scores.shape[3])
        if any(_broadcast_reason(t, scores.shape) for t in terms):
            return  # a term alone would not fit the scores: keep the whole mask
        found.causal = causal
        found.mask, found.mask_terms = (terms[0], terms[1:]) if terms else (None, [])
        if found.mask is None:
            found.mask_kind = "none"


def _broadcast_reason(mask: Value, scores: Shape) -> str | None:
    """Why ``mask`` does not broadcast to the scores without growing them, or None."""
    shape = mask.shape
    fits = shape is not None and len(shape) <= 4 and all(
        # an unknown dim is 1 or equal (the model is valid) but could grow a dim of 1
        m == 1 or m == s or (m is None and s != 1) for m, s in zip(shape, scores[4 - len(shape):]))
    if fits:
        return None
    return (f"the mask %{mask.name} has shape {_dims(shape)}, which does not broadcast "
            f"to the scores {_dims(scores)}")


def _check_one_use(found: _Found) -> None:
    inside = {id(n) for n in found.core}
    for node in found.core:
        if node is found.pv:
            continue
        for out in node.outputs:
            for user in out.users():
                if id(user) not in inside:
                    raise NoMatch(f"%{out.name} of {node.describe()} is also used by {user.describe()}; "
                                  f"fusing would compute it twice")
            if node.graph is not None and out in node.graph.outputs:
                raise NoMatch(f"%{out.name} of {node.describe()} is a graph output")


# ---- the rewrite ----------------------------------------------------------------------
def rewrite(graph: Graph, found: _Found) -> Node:
    pv = found.pv
    with graph.inserting_before(pv):
        k = found.k
        if found.k_perm is not None:
            k = graph.make_node(Op.Transpose, [k], TransposeAttrs(perm=found.k_perm),
                                name=f"{pv.name}/k").output
        inputs = [found.q, k, found.v]
        if found.mask is not None:
            mask = found.mask
            if found.mask_fill is not None:
                # Where(b, s, fill) == s + Where(b, 0, fill): keep the finite fill, as an additive mask
                dtype = found.q.dtype.numpy
                zero = graph.add_constant(np.zeros((), dtype), f"{pv.name}/mask_zero")
                fill = graph.add_constant(np.array(found.mask_fill, dtype), f"{pv.name}/mask_fill")
                branches = [fill, zero] if found.mask_invert else [zero, fill]
                mask = graph.make_node(Op.Where, [mask, *branches], name=f"{pv.name}/mask").output
            elif found.mask_invert:
                mask = graph.make_node(Op.Not, [mask], name=f"{pv.name}/mask").output
            for term in found.mask_terms:
                mask = graph.make_node(Op.And, [mask, term], name=f"{pv.name}/mask").output
            inputs.append(mask)
        kind = found.mask_kind if found.mask_fill is None else "additive"
        attn = graph.make_node(Op.Attention, inputs,
                               AttentionAttrs(scale=found.scale, causal=found.causal, mask_kind=kind),
                               name=f"{pv.name}/Attention")
    out = pv.outputs[0]
    if out.shape is not None:
        attn.outputs[0].shape = out.shape
    graph.replace_all_uses_with(out, attn.outputs[0])
    _erase_dead(graph, found.core + found.stripped)
    return attn


def _erase_dead(graph: Graph, nodes: list[Node]) -> None:
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.graph is graph and all(not v.uses and v not in graph.outputs for v in n.outputs):
                graph.erase(n)
                changed = True


def _looks_like_attention(softmax: Node) -> bool:
    """Report misses only where attention is plausible: a MatMul feeds or reads the Softmax."""
    x = softmax.inputs[0]
    node = x.producer
    if node is not None and node.op in (Op.Add, Op.Where):
        if any(_leads_to_matmul(i) for i in node.inputs if i is not None):
            return True
    if _leads_to_matmul(x):
        return True
    frontier = [softmax.outputs[0]]
    for u in softmax.outputs[0].users():
        if u.op in (Op.IsNaN, Op.Where):
            frontier += u.outputs
    return any(u.op is Op.MatMul for f in frontier for u in f.users())


class FuseAttention(Pass):
    """softmax(q @ k^T * scale + mask) @ v  ->  Attention(q, k, v, mask){scale, causal, mask_kind}"""

    name = "fuse-attention"
    opt_level = 2

    def run(self, graph: Graph, ctx) -> PassResult:
        report = ctx.report if ctx is not None else None
        count = 0
        for node in list(graph.nodes):
            if node.graph is not graph or node.op is not Op.Softmax:
                continue
            try:
                found = match(node)
            except NoMatch as e:
                if report is not None and _looks_like_attention(node):
                    report.record_miss(KIND, node.name, str(e))
                continue
            rewrite(graph, found)
            count += 1
            if report is not None:
                report.record_fired(KIND)
        return PassResult(graph, count > 0)
