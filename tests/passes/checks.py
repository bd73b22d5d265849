"""Shared checks for pass tests: structural (printed text) and numerical (interpreter + onnxruntime)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort

from fuseformer.backends.onnx import save_onnx
from fuseformer.ir import DType, Sym
from fuseformer.ir.interpreter import run
from fuseformer.passes import PassContext
from fuseformer.passes.canonical.dce import EliminateDeadCode

FP32 = dict(atol=1e-4, rtol=1e-4)
B, S = Sym("batch"), Sym("seq")
F32 = DType.FLOAT
RNG = np.random.default_rng(0)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def const(g, value, name, dtype=np.float32):
    return g.add_constant(np.asarray(value, dtype), name)


def node(g, op, inputs, name, attrs=None):
    """Add a one-output node by name; returns its output value."""
    return g.make_node(op, inputs, attrs, name=name).output


def apply(p, graph, dce: bool = True, ctx: PassContext | None = None):
    """Run a pass (then DCE), verify, and return (graph, modified, ctx)."""
    ctx = ctx or PassContext()
    result = p.run(graph, ctx)
    if dce:
        EliminateDeadCode().run(result.graph, ctx)
    result.graph.verify()
    return result.graph, result.modified, ctx


def body(graph) -> str:
    """The printed graph without its constants' lines (their names carry counters)."""
    return "\n".join(line for line in str(graph).splitlines() if not line.lstrip().startswith("const "))


def assert_same_numbers(before_outputs: dict, graph, feeds, tmp_path=None):
    """The rewritten graph computes the outputs computed before, in the interpreter and onnxruntime."""
    after = run(graph, feeds)
    assert list(after) == list(before_outputs)
    for k, want in before_outputs.items():
        np.testing.assert_allclose(after[k], want, **FP32, err_msg=k)
    if tmp_path is not None:
        path = save_onnx(graph, tmp_path / "after.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for k, got in zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)):
            np.testing.assert_allclose(got, before_outputs[k], **FP32, err_msg=f"onnxruntime {k}")
