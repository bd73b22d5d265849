"""The zoo models after the default pipeline, shared by the fusion tests (cached per worker).

Each fusion test file asks about its own ops in the same optimized graphs; the
pipeline runs once per model and worker, the reference interpreter only when asked.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir.graph import Graph
from fuseformer.ir.interpreter import run
from fuseformer.ir.node import Node
from fuseformer.ir.op import Op
from fuseformer.passes import PassContext
from fuseformer.passes.pipeline import default_pipeline

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import FP32

# the transformer layers in each zoo model (tests/zoo.py builds them)
TRANSFORMERS = {"bert": 2, "gpt2": 2, "llama": 2, "vit": 2, "minilm": 6, "paraphrase_minilm": 3, "deit": 2}
TRANSFORMER_ZOO = [c for c in ZOO if c[0] in TRANSFORMERS]
ZOO_IDS = ["-".join(map(str, c)) for c in ZOO]
TRANSFORMER_IDS = ["-".join(map(str, c)) for c in TRANSFORMER_ZOO]


@dataclass
class Optimized:
    path: str
    name: str
    graph: Graph
    ctx: PassContext

    def nodes(self, op: Op) -> list[Node]:
        return [n for n in self.graph.nodes if n.op is op]

    def count(self, op: Op) -> int:
        return len(self.nodes(op))

    def assert_same_outputs(self) -> None:
        """The reference interpreter gives the optimized graph's outputs the original's values.

        Seconds on the larger models, so one test per model calls it (test_fuse_linear's zoo test).
        """
        feeds = zoo_inputs(self.name, seed=0)
        before, after = run(load_onnx(self.path), feeds), run(self.graph, feeds)
        assert list(after) == list(before)
        for key, want in before.items():
            np.testing.assert_allclose(after[key], want, **FP32, err_msg=key)


@functools.lru_cache(maxsize=4)
def optimized(name: str, exporter: str, opset: int) -> Optimized:
    path = zoo_model(name, exporter, opset)
    graph = load_onnx(path)
    # the fusion counts are about fusion: the norm re-parameterizations have their own tests
    ctx = PassContext(disabled=["ln-to-rmsnorm", "crmsnorm"])
    for pm in default_pipeline():
        graph = pm(graph, ctx).graph
    return Optimized(str(path), name, graph, ctx)
