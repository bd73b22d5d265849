"""Shared helpers of the MCU backend tests: compile to C99, build with gcc, run, compare.

Every build uses the flags the target promises: gcc -std=c99 -Wall -Wextra -Werror
-pedantic (backends/mcu/host.py). Tolerances: float32 results against the reference
interpreter at atol 1e-4, rtol 1e-4 (sums run in another order); integers and bools exactly.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from fuseformer.backends.mcu import compile_mcu
from fuseformer.backends.mcu.host import HostModel
from fuseformer.ir.interpreter import run

FP32 = dict(atol=1e-4, rtol=1e-4)

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the generated C99")


def compile_and_run(graph, feeds, out_dir, dims=None, **kwargs):
    path = compile_mcu(graph, out_dir, dims or {}, **kwargs)
    with HostModel(path) as model:
        return model.run(feeds), path


def assert_close(got: dict, want: dict, **tol) -> None:
    assert list(got) == list(want)
    for name, ref in want.items():
        out = got[name]
        assert out.shape == ref.shape, f"{name}: shape {out.shape} != {ref.shape}"
        assert out.dtype == ref.dtype, f"{name}: dtype {out.dtype} != {ref.dtype}"
        if ref.dtype.kind == "f":
            np.testing.assert_allclose(out, ref, **(tol or FP32), err_msg=name)
        else:
            np.testing.assert_array_equal(out, ref, err_msg=name)


def check_against_interpreter(graph, feeds, out_dir, dims=None, **kwargs):
    """Compile ``graph``, run it on ``feeds`` and compare every output with the interpreter."""
    got, path = compile_and_run(graph, feeds, out_dir, dims, **kwargs)
    assert_close(got, run(graph, feeds))
    return path


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)
