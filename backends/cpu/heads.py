"""Head split and merge without copies: Transpose [0, 2, 1, 3] around Attention as views.

Exporters write multi-head attention as ``Linear -> Reshape [B, S, H, D] -> Transpose
[0, 2, 1, 3] -> Attention -> Transpose [0, 2, 1, 3] -> Reshape [B, S, H*D]``. The
attention kernel reads Q, K, V and writes O through (batch, head, seq) strides, so:

- a split Transpose whose only reader is an Attention (as q, k or v) is lowered as a
  view of its input; the attention reads the [B, S, H, D] buffer with head stride D and
  sequence stride H*D (``ctx.strided``);
- an Attention whose only reader is a merge Transpose writes its output straight in the
  [B, S, H, Dv] layout, and that Transpose is lowered as a view (``ctx.fused_views``).

A strided value is never a graph output and has no other reader, so no other kernel
ever sees a non-contiguous buffer.
"""
from __future__ import annotations

from ...ir.dtype import DType
from ...ir.node import Node
from ...ir.op import Op
from ...ir.value import Value
from .lowering import Ctx, Info
from .symexpr import Expr

HEAD_PERM = (0, 2, 1, 3)


def _sole_user(ctx: Ctx, v: Value) -> Node | None:
    if id(v) in ctx.graph_outputs:
        return None
    users = v.users()
    return users[0] if len(users) == 1 else None


def _is_head_transpose(node: Node | None) -> bool:
    return (node is not None and node.op is Op.Transpose and node.attrs.perm is not None
            and tuple(node.attrs.perm) == HEAD_PERM)


def split_view(ctx: Ctx, node: Node, x: Info) -> tuple[Expr, ...] | None:
    """For a Transpose ``node`` of ``x``: the strides its output is read with by the Attention
    that is its only reader, when it can be a view; else None."""
    if not _is_head_transpose(node) or x.rank != 4 or x.dtype is not DType.FLOAT:
        return None
    src = node.inputs[0]
    if id(src) in ctx.strided:
        return None  # its input is itself not contiguous
    out = node.outputs[0]
    user = _sole_user(ctx, out)
    if user is None or user.op is not Op.Attention:
        return None
    slots = [i for i, v in enumerate(user.inputs) if v is out]
    if not slots or any(i > 2 for i in slots):
        return None  # read as the mask too: the mask takes plain broadcast strides
    _, s, h, d = x.shape  # x is [B, S, H, D]: output [B, H, S, D]
    return (s * h * d, d, h * d, Expr.const(1))


def merge_into(ctx: Ctx, node: Node, out_shape: tuple[Expr, ...]) -> tuple[Expr, ...] | None:
    """For an Attention ``node`` with output [B, H, S, Dv]: the (batch, head, seq) strides to
    write it with when its only reader is a merge Transpose (now a view); else None."""
    out = node.outputs[0]
    user = _sole_user(ctx, out)
    if not _is_head_transpose(user) or len(user.inputs) != 1:
        return None
    _, h, s, dv = out_shape
    ctx.fused_views.add(id(user))
    ctx.strided[id(out)] = (s * h * dv, dv, h * dv, Expr.const(1))
    return ctx.strided[id(out)][:3]
