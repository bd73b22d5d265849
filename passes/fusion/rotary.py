"""RotaryEmbedding fusion (rotary position embedding, LLaMA / GPT-NeoX halves layout).

    RotaryEmbedding(x, cos, sin) = x * cos + rotate_half(x) * sin
    rotate_half(x) = Concat(-x[..., D/2:], x[..., :D/2])          over the last axis (D)

Exporters spell rotate_half with two Slices of x along the last axis, a Neg of
the upper half and a Concat; the Muls and the Add may come in either operand
order. cos and sin stay inputs: they are computed once per model from the
positions and shared by every layer's q and k.
"""
from __future__ import annotations

from ...ir.node import Node
from ...ir.value import Value
from ..pattern import Match, Rule
from .common import flat
from .fusion_pass import FusionPass


def target(op, x, cos, sin, lo_start, lo_end, lo_axes, hi_start, hi_end, hi_axes):
    lower = op.Slice(x, lo_start, lo_end, lo_axes, _name="lower")    # x[..., :D/2]
    upper = op.Slice(x, hi_start, hi_end, hi_axes, _name="upper")    # x[..., D/2:]
    rotated = op.Concat(op.Neg(upper), lower, _name="concat")
    return op.Add(op.Mul(x, cos), op.Mul(rotated, sin))


def _slice_range(node: Node, rank: int, dim: int) -> range | str:
    """The indices a one-axis Slice of the last axis keeps, or why it is not such a Slice."""
    args = [node.input(i) for i in range(1, 5)]
    if any(a is not None and a.const is None for a in args):
        return f"{node.describe()} has non-constant starts/ends/axes/steps"
    starts, ends, axes, steps = (None if a is None else [int(e) for e in flat(a)] for a in args)
    if axes is None or len(axes) != 1 or axes[0] % rank != rank - 1:
        return f"{node.describe()} slices axes {axes}, not the last axis only"
    step = steps[0] if steps else 1
    return range(*slice(starts[0], ends[0], step).indices(dim))


def check(m: Match) -> str | None:
    x: Value = m["x"]
    if x.dtype is None or not x.dtype.is_float:
        return "x is not floating point"
    if x.shape is None or not isinstance(x.shape[-1], int):
        return "the head size (last dim of x) is unknown"
    rank, dim = len(x.shape), x.shape[-1]
    if dim % 2:
        return f"the head size {dim} is odd"
    concat = m.nodes["concat"]
    if len(concat.inputs) != 2 or concat.attrs.axis % rank != rank - 1:
        return f"{concat.describe()} does not join two halves along the last axis"
    half = dim // 2
    for name, want in (("lower", range(0, half)), ("upper", range(half, dim))):
        got = _slice_range(m.nodes[name], rank, dim)
        if isinstance(got, str):
            return got
        if got != want:
            return (f"{m.nodes[name].describe()} keeps [{got.start}:{got.stop}:{got.step}] of the "
                    f"last axis, not [{want.start}:{want.stop}] (rotate_half of D={dim})")
    if m.root.outputs[0].shape != x.shape:
        return (f"cos/sin broadcast x {x.type_str()} to {m.root.outputs[0].type_str()}; "
                f"they must broadcast to x's shape")
    return None


def replacement(op, m: Match):
    return op.RotaryEmbedding(m["x"], m["cos"], m["sin"], interleaved=0)


RULES = [Rule("RotaryEmbedding", target, replacement, check)]


class FuseRotaryEmbedding(FusionPass):
    """x * cos + Concat(-x[..., D/2:], x[..., :D/2]) * sin  ->  RotaryEmbedding(x, cos, sin)"""

    name = "fuse-rotary"

    def rules(self) -> list[Rule]:
        return RULES
