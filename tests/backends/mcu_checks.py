"""Shared helpers of the MCU backend tests: compile to C99, build with gcc, run, compare.

Every build uses the flags the target promises: gcc -std=c99 -Wall -Wextra -Werror
-pedantic (backends/mcu/host.py). Tolerances: float32 results against the reference
interpreter at atol 1e-4, rtol 1e-4 (sums run in another order); integers and bools exactly.
"""
from __future__ import annotations

import shutil

import pytest

from fuseformer.backends.mcu import compile_mcu
from fuseformer.backends.mcu.host import HostModel
from fuseformer.ir.interpreter import run

# the comparison and the seeded inputs are the CPU backend tests' own
from .cpu_checks import FP32, assert_close, out, randn, ret  # noqa: F401

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build the generated C99")


def compile_and_run(graph, feeds, out_dir, dims=None, **kwargs):
    path = compile_mcu(graph, out_dir, dims or {}, **kwargs)
    with HostModel(path) as model:
        return model.run(feeds), path


def check_against_interpreter(graph, feeds, out_dir, dims=None, **kwargs):
    """Compile ``graph``, run it on ``feeds`` and compare every output with the interpreter."""
    got, path = compile_and_run(graph, feeds, out_dir, dims, **kwargs)
    assert_close(got, run(graph, feeds))
    return path
