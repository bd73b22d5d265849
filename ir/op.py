"""The op set: ONNX default-domain ops (opset 13-21 semantics of opset 21) and fuseformer's own."""
from __future__ import annotations

import enum

from . import attrs as A


class Op(enum.Enum):
    """An operator. The value is its ONNX op_type (or fuseformer op name)."""

    Add = "Add"
    Sub = "Sub"
    Mul = "Mul"
    Div = "Div"
    Pow = "Pow"
    Mod = "Mod"
    Max = "Max"
    Min = "Min"
    Sum = "Sum"
    Mean = "Mean"
    Equal = "Equal"
    Less = "Less"
    LessOrEqual = "LessOrEqual"
    Greater = "Greater"
    GreaterOrEqual = "GreaterOrEqual"
    And = "And"
    Or = "Or"
    Xor = "Xor"
    Not = "Not"
    Where = "Where"
    Abs = "Abs"
    Neg = "Neg"
    Exp = "Exp"
    Log = "Log"
    Sqrt = "Sqrt"
    Reciprocal = "Reciprocal"
    Erf = "Erf"
    Tanh = "Tanh"
    Sigmoid = "Sigmoid"
    Relu = "Relu"
    LeakyRelu = "LeakyRelu"
    Elu = "Elu"
    Selu = "Selu"
    Celu = "Celu"
    Gelu = "Gelu"
    HardSigmoid = "HardSigmoid"
    HardSwish = "HardSwish"
    Softplus = "Softplus"
    Softsign = "Softsign"
    Mish = "Mish"
    Sin = "Sin"
    Cos = "Cos"
    Tan = "Tan"
    Asin = "Asin"
    Acos = "Acos"
    Atan = "Atan"
    Sinh = "Sinh"
    Cosh = "Cosh"
    Floor = "Floor"
    Ceil = "Ceil"
    Round = "Round"
    Sign = "Sign"
    IsNaN = "IsNaN"
    IsInf = "IsInf"
    Clip = "Clip"
    Identity = "Identity"
    Cast = "Cast"
    CastLike = "CastLike"
    PRelu = "PRelu"
    ThresholdedRelu = "ThresholdedRelu"
    ReduceMean = "ReduceMean"
    ReduceSum = "ReduceSum"
    ReduceMax = "ReduceMax"
    ReduceMin = "ReduceMin"
    ReduceProd = "ReduceProd"
    ReduceL1 = "ReduceL1"
    ReduceL2 = "ReduceL2"
    ReduceSumSquare = "ReduceSumSquare"
    ReduceLogSumExp = "ReduceLogSumExp"
    ReduceLogSum = "ReduceLogSum"
    ArgMax = "ArgMax"
    ArgMin = "ArgMin"
    MatMul = "MatMul"
    Gemm = "Gemm"
    Conv = "Conv"
    ConvTranspose = "ConvTranspose"
    MaxPool = "MaxPool"
    AveragePool = "AveragePool"
    GlobalAveragePool = "GlobalAveragePool"
    GlobalMaxPool = "GlobalMaxPool"
    BatchNormalization = "BatchNormalization"
    InstanceNormalization = "InstanceNormalization"
    LayerNormalization = "LayerNormalization"
    GroupNormalization = "GroupNormalization"
    Softmax = "Softmax"
    LogSoftmax = "LogSoftmax"
    Dropout = "Dropout"
    Einsum = "Einsum"
    Resize = "Resize"
    DepthToSpace = "DepthToSpace"
    SpaceToDepth = "SpaceToDepth"
    LpNormalization = "LpNormalization"
    Reshape = "Reshape"
    Flatten = "Flatten"
    Transpose = "Transpose"
    Squeeze = "Squeeze"
    Unsqueeze = "Unsqueeze"
    Concat = "Concat"
    Split = "Split"
    Slice = "Slice"
    Gather = "Gather"
    GatherElements = "GatherElements"
    GatherND = "GatherND"
    ScatterND = "ScatterND"
    ScatterElements = "ScatterElements"
    Expand = "Expand"
    Tile = "Tile"
    Pad = "Pad"
    Shape = "Shape"
    Size = "Size"
    ConstantOfShape = "ConstantOfShape"
    Range = "Range"
    Trilu = "Trilu"
    CumSum = "CumSum"
    TopK = "TopK"
    NonZero = "NonZero"
    OneHot = "OneHot"

    # fuseformer domain: higher-level ops that passes create
    RMSNorm = "RMSNorm"
    Linear = "Linear"
    Attention = "Attention"
    SkipLayerNorm = "SkipLayerNorm"
    SkipRMSNorm = "SkipRMSNorm"
    RotaryEmbedding = "RotaryEmbedding"
    CRMSNorm = "CRMSNorm"

    @property
    def domain(self) -> str:
        return FUSEFORMER_DOMAIN if self in _FUSEFORMER_OPS else ""

    @property
    def attrs_type(self) -> type[A.Attrs]:
        return getattr(A, self.value + "Attrs", A.Attrs)

    @classmethod
    def from_onnx(cls, op_type: str, domain: str) -> Op | None:
        if domain in ("", "ai.onnx"):
            op = cls.__members__.get(op_type)
            return op if op is not None and op not in _FUSEFORMER_OPS else None
        if domain == FUSEFORMER_DOMAIN:
            op = cls.__members__.get(op_type)
            return op if op in _FUSEFORMER_OPS else None
        return None

    def __repr__(self) -> str:
        return f"Op.{self.name}"


FUSEFORMER_DOMAIN = "fuseformer"
_FUSEFORMER_OPS = frozenset({Op.RMSNorm, Op.Linear, Op.Attention, Op.SkipLayerNorm, Op.SkipRMSNorm,
                             Op.RotaryEmbedding, Op.CRMSNorm})

# Ops whose output has the shape and dtype of the first input, applied elementwise.
UNARY_ELEMENTWISE = frozenset({
    Op.Abs, Op.Neg, Op.Exp, Op.Log, Op.Sqrt, Op.Reciprocal, Op.Erf, Op.Tanh, Op.Sigmoid, Op.Relu,
    Op.LeakyRelu, Op.Elu, Op.Selu, Op.Celu, Op.Gelu, Op.HardSigmoid, Op.HardSwish, Op.Softplus,
    Op.Softsign, Op.Mish, Op.Sin, Op.Cos, Op.Tan, Op.Asin, Op.Acos, Op.Atan, Op.Sinh, Op.Cosh,
    Op.Floor, Op.Ceil, Op.Round, Op.Sign, Op.Identity, Op.ThresholdedRelu, Op.Not,
})
# Broadcasting ops whose output dtype is the inputs' dtype.
BINARY_ELEMENTWISE = frozenset({
    Op.Add, Op.Sub, Op.Mul, Op.Div, Op.Pow, Op.Mod, Op.Max, Op.Min, Op.Sum, Op.Mean, Op.And,
    Op.Or, Op.Xor, Op.PRelu,
})
# Broadcasting ops whose output is bool.
COMPARISON = frozenset({Op.Equal, Op.Less, Op.LessOrEqual, Op.Greater, Op.GreaterOrEqual})
REDUCTIONS = frozenset({
    Op.ReduceMean, Op.ReduceSum, Op.ReduceMax, Op.ReduceMin, Op.ReduceProd, Op.ReduceL1,
    Op.ReduceL2, Op.ReduceSumSquare, Op.ReduceLogSumExp, Op.ReduceLogSum,
})
COMMUTATIVE = frozenset({Op.Add, Op.Mul, Op.Max, Op.Min, Op.Sum, Op.Mean, Op.And, Op.Or, Op.Xor, Op.Equal})
