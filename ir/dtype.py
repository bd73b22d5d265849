"""Element types of IR values, with their ONNX and numpy spellings."""
from __future__ import annotations

import enum

import numpy as np
from onnx import TensorProto


class DType(enum.Enum):
    """An element type. The value is the ONNX ``TensorProto.DataType`` code."""

    FLOAT = TensorProto.FLOAT
    UINT8 = TensorProto.UINT8
    INT8 = TensorProto.INT8
    UINT16 = TensorProto.UINT16
    INT16 = TensorProto.INT16
    INT32 = TensorProto.INT32
    INT64 = TensorProto.INT64
    BOOL = TensorProto.BOOL
    FLOAT16 = TensorProto.FLOAT16
    DOUBLE = TensorProto.DOUBLE
    UINT32 = TensorProto.UINT32
    UINT64 = TensorProto.UINT64
    BFLOAT16 = TensorProto.BFLOAT16

    @property
    def numpy(self) -> np.dtype:
        if self is DType.BFLOAT16:
            import ml_dtypes  # only needed for the rare bf16 model

            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype(_TO_NUMPY[self])

    @property
    def short(self) -> str:
        return _SHORT[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.FLOAT, DType.FLOAT16, DType.DOUBLE, DType.BFLOAT16)

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @classmethod
    def from_onnx(cls, code: int) -> DType:
        try:
            return cls(code)
        except ValueError:
            name = TensorProto.DataType.Name(code) if code in TensorProto.DataType.values() else str(code)
            raise TypeError(f"element type {name} is not supported") from None

    @classmethod
    def from_numpy(cls, dtype: np.dtype) -> DType:
        dtype = np.dtype(dtype)
        for member, np_name in _TO_NUMPY.items():
            if np.dtype(np_name) == dtype:
                return member
        if dtype.name == "bfloat16":
            return DType.BFLOAT16
        raise TypeError(f"numpy dtype {dtype} has no IR element type")


_TO_NUMPY = {
    DType.FLOAT: "float32",
    DType.UINT8: "uint8",
    DType.INT8: "int8",
    DType.UINT16: "uint16",
    DType.INT16: "int16",
    DType.INT32: "int32",
    DType.INT64: "int64",
    DType.BOOL: "bool",
    DType.FLOAT16: "float16",
    DType.DOUBLE: "float64",
    DType.UINT32: "uint32",
    DType.UINT64: "uint64",
}

_SHORT = {
    DType.FLOAT: "f32",
    DType.UINT8: "u8",
    DType.INT8: "i8",
    DType.UINT16: "u16",
    DType.INT16: "i16",
    DType.INT32: "i32",
    DType.INT64: "i64",
    DType.BOOL: "bool",
    DType.FLOAT16: "f16",
    DType.DOUBLE: "f64",
    DType.UINT32: "u32",
    DType.UINT64: "u64",
    DType.BFLOAT16: "bf16",
}
