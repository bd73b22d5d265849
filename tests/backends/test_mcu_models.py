"""Whole models through the MCU backend: tiny ViT, tiny BERT and efficientnet-lite0 (real weights).

ONNX -> optimize_graph -> compile_mcu (specialized to batch 1, planned by plan_memory)
-> gcc -std=c99 -Wall -Wextra -Werror -pedantic -> run on the host, compared with the
reference interpreter at fp32 atol 1e-4, rtol 1e-4. With a budget the arena must fit it;
a tight one makes the planner chunk the graph (Split -> per-chunk chains -> Concat).
efficientnet-lite0's 4.6M weights make a 78 MB model.c: writing it takes ~6 s and gcc
~15-30 s on 2 cores, so it has this one test.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.passes import optimize_graph

from ..zoo import zoo_inputs, zoo_model
from .mcu_checks import check_against_interpreter, needs_gcc

pytestmark = needs_gcc
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny_vit.onnx"


def _check(graph, feeds, dims, out_dir, budget=None):
    path = check_against_interpreter(graph, feeds, out_dir, dims, budget=budget)
    manifest = json.loads((path / "manifest.json").read_text())
    source = (path / "model.c").read_text()
    assert f"unsigned char bytes[{manifest['arena_bytes']}];" in source
    assert "malloc" not in source
    assert budget is None or manifest["arena_bytes"] <= budget
    return manifest


@pytest.mark.parametrize("budget, chunked", [(320 * 1024, False), (48 * 1024, True)], ids=["320KB", "48KB"])
def test_tiny_vit(tmp_path, budget, chunked):
    graph = optimize_graph(load_onnx(EXAMPLE))
    feeds = {"pixel_values": np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    manifest = _check(graph, feeds, {"batch": 1}, tmp_path / "tiny_vit", budget)
    assert manifest["flash_bytes"] > 500_000  # embed 64, depth 4: the MCUFormer range
    assert (manifest["steps"] > len(graph.nodes) + 50) == chunked


def test_tiny_bert_with_padding_mask(tmp_path):
    graph = optimize_graph(load_onnx(zoo_model("bert", "torchscript", 17)))
    feeds = zoo_inputs("bert", seed=0, batch=1, seq=16)
    assert not feeds["attention_mask"].all()  # the padded tail is masked out
    _check(graph, feeds, {"batch": 1, "sequence": 16}, tmp_path / "bert")


def test_efficientnet_lite0(tmp_path):
    graph = optimize_graph(load_onnx(zoo_model("efficientnet_lite0", "torchscript", 17)))
    feeds = zoo_inputs("efficientnet_lite0", seed=0, batch=1)
    manifest = _check(graph, feeds, {"batch": 1}, tmp_path / "effnet")
    assert manifest["flash_bytes"] > 18_000_000  # 4.6M float32 weights
