"""The default pipeline and the registry of passes users can name."""
from __future__ import annotations

from ..ir.errors import FuseformerError
from ..ir.graph import Graph
from .base import Pass
from .context import PassContext
from .canonical.cse import EliminateCommonSubexpressions
from .canonical.dce import EliminateDeadCode
from .canonical.fold_constants import FoldConstants
from .canonical.fold_shapes import FoldShapeComputations
from .canonical.simplify import RemoveNoOps, SimplifyLayoutChains
from .fusion.attention import FuseAttention
from .fusion.gelu import FuseGelu
from .fusion.layernorm import FuseLayerNorm
from .fusion.linear import FuseLinear
from .fusion.linear_epilogue import FuseLinearActivation, FuseLinearResidual
from .fusion.rmsnorm import FuseRMSNorm
from .fusion.rotary import FuseRotaryEmbedding
from .fusion.skipnorm import FuseSkipNorm
from .manager import PassManager
from .reparam.batchnorm import BatchNormToAffine
from .reparam.crmsnorm import RMSNormToCRMSNorm
from .reparam.fold_affine import FoldAffineIntoLinear
from .reparam.prernorm import LayerNormToRMSNorm


def canonicalize_passes() -> list[Pass]:
    return [RemoveNoOps(), FoldConstants(), FoldShapeComputations(), SimplifyLayoutChains(),
            EliminateCommonSubexpressions(), EliminateDeadCode()]


def fusion_passes() -> list[Pass]:
    # order matters: norms and activations first, so attention and linear patterns see fused forms;
    # then the exact re-parameterizations, which read plain Linear layers and LayerNorms (the
    # BatchNorm affine must reach its layer before an activation epilogue separates them, and
    # the residual stream's writers must still be plain Linears); then Linear's epilogues, the
    # residual one before skip-norm (fewer memory passes, see passes/fusion/linear_epilogue.py),
    # which then takes the Adds no Linear absorbed
    return [FuseLayerNorm(), FuseRMSNorm(), FuseGelu(), FuseRotaryEmbedding(), FuseAttention(),
            FuseLinear(),
            BatchNormToAffine(), FoldAffineIntoLinear(),
            LayerNormToRMSNorm(), RMSNormToCRMSNorm(),
            FuseLinearActivation(), FuseLinearResidual(), FuseSkipNorm()]


def all_passes() -> list[Pass]:
    return canonicalize_passes() + fusion_passes()


def default_pipeline() -> list[PassManager]:
    """Canonicalize to a fixpoint, fuse, then clean up."""
    return [PassManager(canonicalize_passes(), fixpoint=True),
            PassManager(fusion_passes()),
            PassManager(canonicalize_passes(), fixpoint=True)]


def pass_names() -> list[str]:
    return [p.name for p in all_passes()]


class UnknownPassError(FuseformerError, ValueError):
    """A pass name that the pipeline does not have (a user error, e.g. --disable-pass)."""


def optimize_graph(graph: Graph, ctx: PassContext | None = None) -> Graph:
    """Run the default pipeline; returns the optimized graph (``ctx.report`` says what happened).

    Example:
        >>> ctx = PassContext(opt_level=2, disabled=["fuse-attention"])
        >>> graph = optimize_graph(load_onnx("model.onnx"), ctx)
        >>> print(ctx.report.format())
    """
    ctx = ctx or PassContext()
    known = set(pass_names())
    unknown = sorted(set(ctx.disabled) - known)
    if unknown:
        raise UnknownPassError(f"unknown pass names {unknown}; the passes are: {', '.join(sorted(known))}")
    for pm in default_pipeline():
        graph = pm(graph, ctx).graph
    return graph
