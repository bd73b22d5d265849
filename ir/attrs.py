"""Per-op attribute records: one frozen dataclass per op that has attributes.

Field names are the ONNX attribute names so import and export are a lookup;
defaults are those of the ONNX schema (opset 21). Axis lists that older opsets
carried as attributes (Reduce*, Squeeze, Unsqueeze, Split) are inputs in the IR,
as in current ONNX; the importer moves them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tensor import Tensor


@dataclass(frozen=True)
class Attrs:
    """Base of every attribute record. An op without attributes uses ``Attrs()``."""

    def items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def non_default(self) -> list[tuple[str, Any]]:
        """The attributes whose value differs from the schema default (what a printer shows)."""
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or value != f.default:
                out.append((f.name, value))
        return out

    def replace(self, **changes: Any) -> Attrs:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ModAttrs(Attrs):
    fmod: int = 0

@dataclass(frozen=True)
class LeakyReluAttrs(Attrs):
    alpha: float = 0.01

@dataclass(frozen=True)
class EluAttrs(Attrs):
    alpha: float = 1.0

@dataclass(frozen=True)
class SeluAttrs(Attrs):
    alpha: float = 1.6732632
    gamma: float = 1.050701

@dataclass(frozen=True)
class CeluAttrs(Attrs):
    alpha: float = 1.0

@dataclass(frozen=True)
class GeluAttrs(Attrs):
    approximate: str = 'none'

@dataclass(frozen=True)
class HardSigmoidAttrs(Attrs):
    alpha: float = 0.2
    beta: float = 0.5

@dataclass(frozen=True)
class IsInfAttrs(Attrs):
    detect_negative: int = 1
    detect_positive: int = 1

@dataclass(frozen=True)
class CastAttrs(Attrs):
    to: int
    saturate: int = 1

@dataclass(frozen=True)
class CastLikeAttrs(Attrs):
    saturate: int = 1

@dataclass(frozen=True)
class ThresholdedReluAttrs(Attrs):
    alpha: float = 1.0

@dataclass(frozen=True)
class ReduceMeanAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceSumAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceMaxAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceMinAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceProdAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceL1Attrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceL2Attrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceSumSquareAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceLogSumExpAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ReduceLogSumAttrs(Attrs):
    keepdims: int = 1
    noop_with_empty_axes: int = 0

@dataclass(frozen=True)
class ArgMaxAttrs(Attrs):
    axis: int = 0
    keepdims: int = 1
    select_last_index: int = 0

@dataclass(frozen=True)
class ArgMinAttrs(Attrs):
    axis: int = 0
    keepdims: int = 1
    select_last_index: int = 0

@dataclass(frozen=True)
class GemmAttrs(Attrs):
    alpha: float = 1.0
    beta: float = 1.0
    transA: int = 0
    transB: int = 0

@dataclass(frozen=True)
class ConvAttrs(Attrs):
    auto_pad: str = 'NOTSET'
    dilations: tuple[int, ...] | None = None
    group: int = 1
    kernel_shape: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None

@dataclass(frozen=True)
class ConvTransposeAttrs(Attrs):
    auto_pad: str = 'NOTSET'
    dilations: tuple[int, ...] | None = None
    group: int = 1
    kernel_shape: tuple[int, ...] | None = None
    output_padding: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None

@dataclass(frozen=True)
class MaxPoolAttrs(Attrs):
    kernel_shape: tuple[int, ...]
    auto_pad: str = 'NOTSET'
    ceil_mode: int = 0
    dilations: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    storage_order: int = 0
    strides: tuple[int, ...] | None = None

@dataclass(frozen=True)
class AveragePoolAttrs(Attrs):
    kernel_shape: tuple[int, ...]
    auto_pad: str = 'NOTSET'
    ceil_mode: int = 0
    count_include_pad: int = 0
    dilations: tuple[int, ...] | None = None
    pads: tuple[int, ...] | None = None
    strides: tuple[int, ...] | None = None

@dataclass(frozen=True)
class BatchNormalizationAttrs(Attrs):
    epsilon: float = 1e-05
    momentum: float = 0.9
    training_mode: int = 0

@dataclass(frozen=True)
class InstanceNormalizationAttrs(Attrs):
    epsilon: float = 1e-05

@dataclass(frozen=True)
class LayerNormalizationAttrs(Attrs):
    axis: int = -1
    epsilon: float = 1e-05
    stash_type: int = 1

@dataclass(frozen=True)
class GroupNormalizationAttrs(Attrs):
    num_groups: int
    epsilon: float = 1e-05
    stash_type: int = 1

@dataclass(frozen=True)
class SoftmaxAttrs(Attrs):
    axis: int = -1

@dataclass(frozen=True)
class LogSoftmaxAttrs(Attrs):
    axis: int = -1

@dataclass(frozen=True)
class DropoutAttrs(Attrs):
    seed: int | None = None

@dataclass(frozen=True)
class EinsumAttrs(Attrs):
    equation: str

@dataclass(frozen=True)
class ResizeAttrs(Attrs):
    antialias: int = 0
    axes: tuple[int, ...] | None = None
    coordinate_transformation_mode: str = 'half_pixel'
    cubic_coeff_a: float = -0.75
    exclude_outside: int = 0
    extrapolation_value: float = 0.0
    keep_aspect_ratio_policy: str = 'stretch'
    mode: str = 'nearest'
    nearest_mode: str = 'round_prefer_floor'

@dataclass(frozen=True)
class DepthToSpaceAttrs(Attrs):
    blocksize: int
    mode: str = 'DCR'

@dataclass(frozen=True)
class SpaceToDepthAttrs(Attrs):
    blocksize: int

@dataclass(frozen=True)
class LpNormalizationAttrs(Attrs):
    axis: int = -1
    p: int = 2

@dataclass(frozen=True)
class ReshapeAttrs(Attrs):
    allowzero: int = 0

@dataclass(frozen=True)
class FlattenAttrs(Attrs):
    axis: int = 1

@dataclass(frozen=True)
class TransposeAttrs(Attrs):
    perm: tuple[int, ...] | None = None

@dataclass(frozen=True)
class ConcatAttrs(Attrs):
    axis: int

@dataclass(frozen=True)
class SplitAttrs(Attrs):
    axis: int = 0
    num_outputs: int | None = None

@dataclass(frozen=True)
class GatherAttrs(Attrs):
    axis: int = 0

@dataclass(frozen=True)
class GatherElementsAttrs(Attrs):
    axis: int = 0

@dataclass(frozen=True)
class GatherNDAttrs(Attrs):
    batch_dims: int = 0

@dataclass(frozen=True)
class ScatterNDAttrs(Attrs):
    reduction: str = 'none'

@dataclass(frozen=True)
class ScatterElementsAttrs(Attrs):
    axis: int = 0
    reduction: str = 'none'

@dataclass(frozen=True)
class PadAttrs(Attrs):
    mode: str = 'constant'

@dataclass(frozen=True)
class ShapeAttrs(Attrs):
    end: int | None = None
    start: int = 0

@dataclass(frozen=True)
class ConstantOfShapeAttrs(Attrs):
    value: Tensor | None = None

@dataclass(frozen=True)
class TriluAttrs(Attrs):
    upper: int = 1

@dataclass(frozen=True)
class CumSumAttrs(Attrs):
    exclusive: int = 0
    reverse: int = 0

@dataclass(frozen=True)
class TopKAttrs(Attrs):
    axis: int = -1
    largest: int = 1
    sorted: int = 1

@dataclass(frozen=True)
class OneHotAttrs(Attrs):
    axis: int = -1


# fuseformer's own ops, created by passes (domain "fuseformer").


@dataclass(frozen=True)
class RMSNormAttrs(Attrs):
    """y = x / sqrt(mean(x^2 over axes >= axis) + epsilon) * scale (+ bias)."""

    axis: int = -1
    epsilon: float = 1e-05


@dataclass(frozen=True)
class CRMSNormAttrs(Attrs):
    """RMSNorm of a zero-mean vector stored in dim-1 coordinates (x_dim = -sum x').

    y' = x' / sqrt((sum x'^2 + (sum x')^2) / dim + epsilon) over the last axis;
    equals the first dim-1 coordinates of RMSNorm(x) (Jiang et al. 2023).
    """

    dim: int
    epsilon: float = 1e-05


@dataclass(frozen=True)
class LinearAttrs(Attrs):
    """y = act(x @ W + bias) + residual; inputs (x, W [K, N], bias?, residual?).

    activation is one of ACTIVATIONS ("none" for none). The residual is added
    after the activation, as a transformer block's output projection does.
    """

    activation: str = "none"


@dataclass(frozen=True)
class SkipLayerNormAttrs(Attrs):
    """s = x + skip (+ bias); y = LayerNorm(s) * gamma + beta over the last axis.

    Inputs (x, skip, gamma, beta?, bias?); outputs (y, s): s feeds the next
    residual connection in Pre-LN blocks.
    """

    epsilon: float = 1e-05


@dataclass(frozen=True)
class SkipRMSNormAttrs(Attrs):
    """s = x + skip; y = s / sqrt(mean(s^2) + epsilon) * gamma over the last axis.

    Inputs (x, skip, gamma); outputs (y, s).
    """

    epsilon: float = 1e-05


@dataclass(frozen=True)
class RotaryEmbeddingAttrs(Attrs):
    """y = x * cos + rotate(x) * sin over the last axis (head_dim D) of x [B, H, S, D].

    Inputs (x, cos, sin), cos/sin broadcastable to x. interleaved=0 rotates
    halves, rotate(x) = concat(-x[..., D/2:], x[..., :D/2]) (LLaMA, GPT-NeoX);
    interleaved=1 rotates pairs, rotate(x)[2i] = -x[2i+1], rotate(x)[2i+1] = x[2i] (GPT-J).
    """

    interleaved: int = 0


ACTIVATIONS = ("none", "relu", "gelu", "gelu_tanh", "silu", "sigmoid", "tanh")


@dataclass(frozen=True)
class AttentionAttrs(Attrs):
    """softmax(Q K^T * scale + mask [+ causal]) V over [batch, heads, seq, head_dim].

    scale None means 1/sqrt(head_dim). K and V may have fewer heads than Q
    (grouped-query attention); they are repeated to match. mask_kind states the
    optional mask input's meaning: "bool" (True = attend), "additive" (added to
    the scores), or "none" (no mask, or decide by the mask's dtype). causal=1
    masks key j > query i + (Sk - Sq), bottom-right aligned as with a KV cache.
    """

    scale: float | None = None
    causal: int = 0
    mask_kind: str = "none"
