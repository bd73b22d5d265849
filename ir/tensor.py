"""Constant tensor data: in memory, or loaded lazily (memory-mapped) from an external file."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .dtype import DType


@dataclass(frozen=True)
class ExternalLocation:
    """Where an external-data tensor's bytes live (ONNX external data)."""

    path: str
    offset: int
    length: int


class Tensor:
    """Immutable constant data with a dtype and a static shape.

    External data is memory-mapped on first use and never copied, so a model
    whose weights exceed memory still imports, and the exporter can stream it.
    """

    __slots__ = ("dtype", "shape", "_array", "external")

    def __init__(self, dtype: DType, shape: tuple[int, ...], array: np.ndarray | None = None,
                 external: ExternalLocation | None = None):
        if (array is None) == (external is None):
            raise ValueError("a Tensor holds either an array or an external location")
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)
        self._array = array
        self.external = external

    @classmethod
    def from_numpy(cls, array: np.ndarray | float | int | bool, dtype: DType | None = None) -> Tensor:
        arr = np.asarray(array) if dtype is None else np.asarray(array, dtype=dtype.numpy)
        arr = arr.copy() if arr.base is not None or not arr.flags.c_contiguous else arr
        arr.flags.writeable = False
        return cls(DType.from_numpy(arr.dtype), arr.shape, array=arr)

    @classmethod
    def from_external(cls, dtype: DType, shape: tuple[int, ...], location: ExternalLocation) -> Tensor:
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if location.length != expected:
            raise ValueError(f"external data {location.path!r} holds {location.length} bytes at offset "
                             f"{location.offset}, the tensor needs {expected}")
        if not os.path.isfile(location.path):
            raise FileNotFoundError(f"external data file {location.path!r} not found")
        size = os.path.getsize(location.path)
        if location.offset + location.length > size:
            raise ValueError(f"external data file {location.path!r} is {size} bytes, "
                             f"shorter than offset {location.offset} + length {location.length}")
        return cls(dtype, shape, external=location)

    def numpy(self) -> np.ndarray:
        """The data as a read-only array (a memory map for external data)."""
        if self._array is None:
            loc = self.external
            if loc.length == 0:
                arr = np.zeros(self.shape, self.dtype.numpy)
            else:
                arr = np.memmap(loc.path, dtype=self.dtype.numpy, mode="r", offset=loc.offset,
                                shape=self.shape)
            return arr
        return self._array

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        where = f" @ {self.external.path}" if self.external else ""
        return f"Tensor({self.dtype.short}{list(self.shape)}{where})"
