"""Shared helpers of the CPU backend tests: compile a graph, run it, compare with a reference.

Tolerances: float32 results against the reference interpreter or onnxruntime at
atol 1e-4, rtol 1e-4 (the sums run in another order); integer and bool results exactly.
"""
from __future__ import annotations

import numpy as np

from fuseformer.backends.cpu import compile_cpu
from fuseformer.ir.interpreter import run
from fuseformer.runtime import load

FP32 = dict(atol=1e-4, rtol=1e-4)


def compile_and_run(graph, feeds, dims, out_dir, **kwargs):
    path = compile_cpu(graph, out_dir, dims, **kwargs)
    with load(path) as session:
        return session.run(feeds), path


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


def check_against_interpreter(graph, feeds, dims, out_dir, **tol):
    """Compile ``graph``, run it on ``feeds`` and compare every output with the interpreter."""
    got, path = compile_and_run(graph, feeds, dims, out_dir)
    assert_close(got, run(graph, feeds), **tol)
    return path


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def out(g, op, inputs, attrs=None, n=1):
    """Add a node to ``g``; its output (or outputs, for n > 1)."""
    node = g.make_node(op, inputs, attrs, num_outputs=n)
    return node.output if n == 1 else node.outputs


def ret(g, *values):
    g.outputs.extend(values)
