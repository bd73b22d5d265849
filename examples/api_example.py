"""fuseformer's Python API, end to end: load, optimize with a custom pipeline, inspect, run, export.

    python examples/api_example.py [MODEL.onnx]     (default: examples/tiny_vit.onnx)
"""
from __future__ import annotations

import pathlib
import sys
import tempfile

import numpy as np

from fuseformer.backends import save_onnx
from fuseformer.frontends import load_onnx
from fuseformer.ir.interpreter import run
from fuseformer.passes import NumericalCheck, PassContext, PassManager, Timing, VerifyEachPass, optimize_graph
from fuseformer.passes.canonical.dce import EliminateDeadCode
from fuseformer.passes.canonical.simplify import RemoveNoOps
from fuseformer.runtime.feeds import random_feeds
from fuseformer.runtime.verify import compare_outputs, run_onnx

model = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("tiny_vit.onnx"))

# 1. load: ONNX -> IR, and check its invariants
graph = load_onnx(model)
graph.verify()
print(f"loaded {model.name}: {len(graph.nodes)} nodes, inputs {[repr(v) for v in graph.inputs]}")

# 2. a pipeline of your own: any passes, in any order, with instruments
feeds = random_feeds(graph, {"batch": 2}, seed=0)
reference = run(graph, feeds)
ctx = PassContext(instruments=[VerifyEachPass(), Timing(), NumericalCheck(feeds)])
PassManager([RemoveNoOps(), EliminateDeadCode()], fixpoint=True)(graph, ctx)

# 3. or the default pipeline, with a pass disabled by name
graph = optimize_graph(graph, PassContext(disabled=["cse"], instruments=[VerifyEachPass()]))
print(f"optimized: {len(graph.nodes)} nodes; ops {graph.op_counts()}")

# 4. inspect: the text form, one node per line (constants are listed first; skip them here)
print("\n".join([line for line in str(graph).splitlines() if "const %" not in line][:6]) + "\n  ...")

# 5. run in the reference interpreter: same numbers as before
after = run(graph, feeds)
for name, want in reference.items():
    print(f"{name}: max abs diff vs the original {float(np.max(np.abs(after[name] - want))):.2e}")

# 6. export to ONNX and compare with the original in onnxruntime
with tempfile.TemporaryDirectory() as tmp:
    out = save_onnx(graph, pathlib.Path(tmp) / "optimized.onnx")
    for err in compare_outputs(run_onnx(str(model), feeds), run_onnx(str(out), feeds), tol=1e-4):
        print(f"onnxruntime {err.name}: max abs err {err.max_abs:.2e}")
