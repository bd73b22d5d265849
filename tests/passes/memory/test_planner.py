"""plan_memory on the three models: budgets, chunk choice, the error, the report, soundness."""
from __future__ import annotations

import re

import pytest

from fuseformer.ir.errors import FuseformerError
from fuseformer.passes.memory import MemoryBudgetError, check_plan, format_report, plan_memory, timeline

from .models import MODELS, planned, specialized
from .test_chunking import mlp


@pytest.mark.parametrize("name", MODELS)
def test_unchunked_plans_are_sound(name):
    plan = planned(name)
    assert check_plan(plan) == []
    assert plan.arena_bytes <= plan.stats["tflm_arena"]
    assert plan.arena_bytes <= 1.05 * plan.lower_bound
    assert plan.lower_bound <= plan.stats["original_order_peak"]


@pytest.mark.parametrize("name", ["tiny_vit", "bert"])
def test_auto_chunking(name):
    plan = planned(name, "auto")
    assert plan.stats["chunks"] > 1 and plan.graph is not specialized(name)
    assert check_plan(plan) == []  # views and in-place writes hold up under simulation
    assert plan.arena_bytes <= plan.stats["tflm_arena"]
    assert plan.arena_bytes <= 1.05 * plan.lower_bound
    # MCUFormer-style operator integration halves the peak of the attention block at least
    assert plan.lower_bound * 2 <= plan.stats["unchunked_peak"] == planned(name).lower_bound
    assert plan.flash_bytes == planned(name).flash_bytes  # weights sliced per head, not copied


def test_budget_met_without_chunking_keeps_the_graph():
    plan = plan_memory(specialized("tiny_vit"), budget=320 * 1024)
    assert plan.stats["chunks"] == 1 and plan.arena_bytes <= 320 * 1024
    assert plan.graph is specialized("tiny_vit")


def test_budget_takes_the_fewest_chunks_that_fit():
    # 2 blocks already bring the tiny ViT from 81 KB to under 48 KB
    plan = plan_memory(specialized("tiny_vit"), budget=48 * 1024)
    assert plan.stats["chunks"] == 2 and plan.arena_bytes <= 48 * 1024
    assert check_plan(plan) == []


def test_budget_error_names_the_peak():
    with pytest.raises(MemoryBudgetError) as info:
        plan_memory(specialized("efficientnet_lite0"), budget=320 * 1024)
    msg = str(info.value)
    assert isinstance(info.value, FuseformerError)
    assert "over the 320.0 KB budget" in msg
    assert re.search(r"step 9, node /inner/_blocks\.1/_depthwise_conv/static_padding/Pad \(Pad\)", msg)
    assert "%/inner/_blocks.1/_depthwise_conv/static_padding/Pad_output_0 4788.4 KB" in msg
    assert "The smallest budget reachable is 9492.4 KB (9720192 bytes" in msg
    assert info.value.plan.arena_bytes == 9720192


def test_smallest_budget_in_the_error_is_reachable():
    g = mlp()
    with pytest.raises(MemoryBudgetError) as info:
        plan_memory(g, budget=64)
    reachable = info.value.plan.arena_bytes
    assert "with 6 chunks" in str(info.value)  # it tried down to one row per block
    assert plan_memory(g, budget=reachable).arena_bytes <= reachable


def test_report_and_timeline():
    plan = planned("bert")
    text = format_report(plan)
    assert "peak SRAM (arena)" in text and "TFLM greedy arena" in text and "flash (weights)" in text
    assert f"peak at step {plan.peak_step}: {plan.schedule[plan.peak_step].describe()}" in text
    tl = timeline(plan)
    assert len(tl.live_bytes) == len(plan.schedule) and max(tl.live_bytes) == plan.lower_bound
    for r in tl.rects:
        assert 0 <= r.offset and r.offset + r.size <= plan.arena_bytes and r.start <= r.end
