"""Proving that (part of) a bool attention mask is the causal mask.

Exporters build the causal mask from positions: keep[b, h, i, j] = kpos[j] <= qpos[i]
with kpos = arange(Sk) on the key axis and qpos = arange(Sq) on the query axis,
ANDed with the padding mask and expanded:

    mask = Expand(And(And(ones, LessOrEqual(kpos, qpos)), padding), shape)

When Sq == Sk (same symbol) and both ranges start at 0, LessOrEqual(kpos, qpos)
is exactly Attention's causal=1 (bottom-right aligned, offset Sk - Sq = 0), so
the term leaves the mask and becomes the attribute; terms that are provably all
True (ones, positions >= 0) are dropped. The rest is ANDed back together.
"""
from __future__ import annotations

import numpy as np

from ...ir.node import Node
from ...ir.op import Op
from ...ir.shape import Dim
from ...ir.symbolic import symbolic_value
from ...ir.value import Value

_QUERY_AXIS, _KEY_AXIS = 2, 3


def and_terms(v: Value) -> list[Value]:
    """The operands of a tree of And (and Expand, which only broadcasts them)."""
    node = v.producer
    if node is not None and node.op is Op.And:
        return and_terms(node.inputs[0]) + and_terms(node.inputs[1])
    if node is not None and node.op is Op.Expand:
        return and_terms(node.inputs[0])
    return [v]


def _const_ints(v: Value | None) -> list[int] | None:
    if v is None or v.const is None or v.dtype.numpy.kind not in "iu":
        return None
    return [int(x) for x in np.asarray(v.const.numpy()).reshape(-1)]


def positions(v: Value) -> tuple[int, Dim] | None:
    """v = arange(0, n) laid along one axis of a rank-4 tensor  ->  (that axis, n), else None."""
    shape = v.shape
    if shape is None or len(shape) != 4:
        return None
    along = [i for i, d in enumerate(shape) if d != 1]
    if len(along) != 1:
        return None
    x: Value = v
    # Unsqueeze and integer Casts only move or retype the elements of the 1-D range
    while x.producer is not None and x.producer.op in (Op.Unsqueeze, Op.Cast):
        if x.producer.op is Op.Cast and x.dtype.numpy.kind not in "iu":
            return None
        x = x.producer.inputs[0]
    rng: Node | None = x.producer
    if rng is None or rng.op is not Op.Range or x.rank != 1:
        return None
    start, delta = _const_ints(rng.inputs[0]), _const_ints(rng.inputs[2])
    limit = symbolic_value(rng.inputs[1])
    if start != [0] or delta != [1] or limit is None or len(limit) != 1 or limit[0] is None:
        return None
    return along[0], limit[0]


def _is_causal(term: Value, sq: Dim, sk: Dim) -> bool:
    node = term.producer
    if node is None or node.op not in (Op.LessOrEqual, Op.GreaterOrEqual):
        return False
    a, b = node.inputs
    if node.op is Op.GreaterOrEqual:
        a, b = b, a  # qpos >= kpos  is  kpos <= qpos
    key, query = positions(a), positions(b)
    return key == (_KEY_AXIS, sk) and query == (_QUERY_AXIS, sq)


def all_true(v: Value) -> bool:
    """v is provably all True: a constant, an Expand or And of such, or positions >= c <= 0."""
    if v.const is not None:
        return v.const.size > 0 and bool(np.all(np.asarray(v.const.numpy())))
    node = v.producer
    if node is None:
        return False
    if node.op is Op.Expand:
        return all_true(node.inputs[0])
    if node.op is Op.And:
        return all_true(node.inputs[0]) and all_true(node.inputs[1])
    # BERT's bidirectional "mask": query positions >= 0
    if node.op is Op.GreaterOrEqual and positions(node.inputs[0]) is not None:
        c = _const_ints(node.inputs[1])
        return c is not None and len(c) == 1 and c[0] <= 0
    return False


def split_causal(mask: Value, sq: Dim, sk: Dim) -> tuple[list[Value], int]:
    """A bool mask (True = attend) over [B, H, sq, sk] -> (the terms to AND back, causal).

    Returns ([mask], 0) unless some term is provably causal or all True.
    """
    terms = and_terms(mask)
    # bottom-right alignment equals kpos <= qpos only when no past keys shift it: Sq == Sk
    causal = sq is not None and sq == sk and any(_is_causal(t, sq, sk) for t in terms)
    rest = [t for t in terms if not all_true(t) and not (causal and _is_causal(t, sq, sk))]
    if len(rest) == len(terms):
        return [mask], 0
    return rest, int(causal)
