"""The three models of the memory table, specialized to batch 1 (cached per worker).

tiny ViT: examples/tiny_vit.onnx (embed 64, depth 4, 32x32, 65 tokens); tiny BERT: the
zoo's, 64 tokens; efficientnet-lite0: the zoo's, real weights, 224x224.
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir.graph import Graph
from fuseformer.ir.specialize import specialize
from fuseformer.passes import optimize_graph
from fuseformer.passes.memory import MemoryPlan, plan_memory

from ...zoo import zoo_inputs, zoo_model

ROOT = pathlib.Path(__file__).resolve().parents[3]
MODELS = ("tiny_vit", "bert", "efficientnet_lite0")
BERT_SEQ = 64


@functools.lru_cache(maxsize=None)
def specialized(name: str) -> Graph:
    if name == "tiny_vit":
        return specialize(optimize_graph(load_onnx(str(ROOT / "examples" / "tiny_vit.onnx"))), {"batch": 1})
    dims = {"batch": 1, "sequence": BERT_SEQ} if name == "bert" else {"batch": 1}
    return specialize(optimize_graph(load_onnx(str(zoo_model(name, "torchscript", 17)))), dims)


def feeds(name: str) -> dict[str, np.ndarray]:
    if name == "tiny_vit":
        return {"pixel_values": np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    if name == "bert":
        return zoo_inputs("bert", seed=0, batch=1, seq=BERT_SEQ)
    return zoo_inputs(name, seed=0, batch=1)


@functools.lru_cache(maxsize=None)
def planned(name: str, chunking: bool | str | int = False) -> MemoryPlan:
    return plan_memory(specialized(name), chunking=chunking)
