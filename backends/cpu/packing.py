"""Weights packed for the register-blocked Linear kernel (include/fuseformer/packed_gemm.h).

A Linear weight W [k, n] is stored as panels of 32 columns, [ceil(n/32), k, 32], the
last panel zero-padded: the kernel then reads each panel as one contiguous stream.
The compiler packs only for a native (-march=native) build on a CPU with AVX-512, where
the kernel's 64-byte vectors are single registers; elsewhere, or with
``FUSEFORMER_PACKED_GEMM=0``, Linear keeps OpenBLAS.
"""
from __future__ import annotations

import functools
import os

import numpy as np

PANEL = 32
ENV = "FUSEFORMER_PACKED_GEMM"
# packed weights up to this many bytes are read whole by each thread, which splits the rows
# (packed_gemm.h's kRowSplitWeights); larger ones are split by panels
ROW_SPLIT_BYTES = 256 << 10


def packed_bytes(k: int, n: int, itemsize: int = 4) -> int:
    """Bytes of a packed [k, n] weight (whole panels)."""
    return k * -(-n // PANEL) * PANEL * itemsize


def pack_panels(w: np.ndarray) -> np.ndarray:
    """[k, n] -> [ceil(n/32), k, 32], zero-padded.

    Example:
        >>> pack_panels(np.arange(6, dtype=np.float32).reshape(2, 3)).shape
        (1, 2, 32)
    """
    k, n = w.shape
    panels = -(-n // PANEL)
    padded = np.zeros((k, panels * PANEL), w.dtype)
    padded[:, :n] = w
    return np.ascontiguousarray(padded.reshape(k, panels, PANEL).transpose(1, 0, 2))


@functools.cache
def _host_has_avx512() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return " avx512f " in f" {line.split(':', 1)[1].strip()} "
    except OSError:
        pass
    return False


def packing_enabled(portable: bool) -> bool:
    """Whether a build packs Linear weights (see the module docstring)."""
    choice = os.environ.get(ENV, "").strip().lower()
    if choice in ("0", "off", "no", "false"):
        return False
    if choice in ("1", "on", "yes", "true"):
        return not portable
    return not portable and _host_has_avx512()
