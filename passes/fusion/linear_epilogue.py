"""Linear epilogues: the activation and the residual Add a GEMM kernel applies on its way out.

    1. act(Linear(x, W, b))           ->  Linear(x, W, b, activation=act)
       act: Relu, Sigmoid, Tanh, Gelu (erf -> "gelu", tanh -> "gelu_tanh")
    2. y * Sigmoid(y), y = Linear(..)  ->  Linear(.., activation="silu")      (LLaMA's gate)
    3. Add(Linear(x, W, b, act), r)   ->  Linear(x, W, b, r, activation=act)  r not constant

Case 3 requires the Add's output shape to equal the Linear's: a residual that
broadcasts the product to a bigger shape would make the Linear write more than
its rows. The residual is added after the activation, as the Add did.

Order against fuse-skip-norm: the residual epilogue runs first. In a Pre-LN
block h = x + proj(a) feeds both the next norm and the next residual. With the
residual in the Linear, the traffic over [tokens, hidden] tensors is: the Linear
reads x and writes h, the norm reads h and writes y (4 passes). With
SkipLayerNorm instead, the Linear writes proj(a), SkipLayerNorm reads it and x
and writes y and h (5 passes). Post-LN blocks tie at 4. So a residual Add whose
operand is a Linear goes into the Linear, and fuse-skip-norm takes the Adds
that remain (embedding sums, and every residual when this pass is disabled).
"""
from __future__ import annotations

from ...ir.op import Op
from ...ir.shape import format_shape
from ..pattern import Match, Rule
from .common import NOT_APPLICABLE, known_shape
from .fusion_pass import FusionPass
from .linear import linear_inputs

_ACTIVATION = {Op.Relu: "relu", Op.Sigmoid: "sigmoid", Op.Tanh: "tanh"}


# ---- 1-2. activation -------------------------------------------------------------
def target_activation(op, x, w):
    return op.any(Op.Relu, Op.Sigmoid, Op.Tanh, Op.Gelu)(op.Linear(x, w, _name="linear"))


def target_silu(op, x, w):
    y = op.Linear(x, w, _name="linear")
    return op.Mul(y, op.Sigmoid(y, _name="sigmoid"))


def _activation(m: Match) -> str:
    root = m.root
    if root.op is Op.Gelu:
        return "gelu" if root.attrs.approximate == "none" else "gelu_tanh"
    return _ACTIVATION.get(root.op, "silu")


def check_activation(m: Match) -> str | None:
    linear = m.nodes["linear"]
    if "sigmoid" in m.nodes and not any(v is m.nodes["sigmoid"].inputs[0] for v in m.root.inputs):
        return NOT_APPLICABLE  # y * sigmoid(y') of two equal-looking Linears: not SiLU
    if m.root.op is Op.Gelu and m.root.attrs.approximate not in ("none", "tanh"):
        return f"Gelu approximate={m.root.attrs.approximate!r}"
    if linear.attrs.activation != "none":
        return f"the Linear already applies {linear.attrs.activation}"
    if linear.input(3) is not None:
        return "the Linear adds its residual before this activation"
    return None


def replace_activation(op, m: Match):
    linear = m.nodes["linear"]
    return op.Linear(*linear_inputs(m["x"], m["w"], linear.input(2)), activation=_activation(m))


# ---- 3. residual ---------------------------------------------------------------------
def target_residual(op, x, w, r):
    return op.Add(op.Linear(x, w, _name="linear"), r)


def check_residual(m: Match) -> str | None:
    linear, r = m.nodes["linear"], m["r"]
    if r.const is not None:
        return NOT_APPLICABLE  # a constant addend is a bias (fuse-linear), not a residual
    if r is linear.output:
        return "the Add doubles the Linear's output; it has no residual"
    if linear.input(3) is not None:
        return "the Linear already adds a residual"
    out, y = m.root.output.shape, linear.output.shape
    if not known_shape(out) or out != y:
        return (f"the residual %{r.name}{format_shape(r.shape)} broadcasts the Linear's output "
                f"{format_shape(y)} to {format_shape(out)}")
    if r.dtype is not linear.output.dtype:
        return f"the residual is {r.dtype}, the Linear {linear.output.dtype}"
    return None


def replace_residual(op, m: Match):
    linear = m.nodes["linear"]
    return op.Linear(m["x"], m["w"], linear.input(2), m["r"], activation=linear.attrs.activation)


ACTIVATION_RULES = [
    Rule("Linear+activation", target_silu, replace_activation, check_activation),
    Rule("Linear+activation", target_activation, replace_activation, check_activation),
]
RESIDUAL_RULES = [Rule("Linear+residual", target_residual, replace_residual, check_residual)]


class FuseLinearActivation(FusionPass):
    """act(Linear(x, W, b))  ->  Linear(x, W, b, activation=act)  (Relu, Sigmoid, Tanh, Gelu, SiLU)"""

    name = "fuse-linear-activation"

    def rules(self) -> list[Rule]:
        return ACTIVATION_RULES


class FuseLinearResidual(FusionPass):
    """Linear(x, W, b, act) + r  ->  Linear(x, W, b, r, activation=act)  (same output shape)"""

    name = "fuse-linear-residual"

    def rules(self) -> list[Rule]:
        return RESIDUAL_RULES
