"""Peak SRAM of the memory planner on the three microcontroller test models, as a Markdown table.

    python bench/memory_table.py                 # tiny ViT, tiny BERT (128 tokens), efficientnet-lite0
    python bench/memory_table.py --bert-seq 64

Columns (KB = 1024 bytes), all for batch 1, float32 activations:
- peak, original order: bytes live at once running the nodes in the graph's order;
- our schedule: the peak-minimizing order (passes/memory/schedule.py), same graph;
- + chunking: row blocks / heads / patch blocks chosen by ``plan_memory`` (chunk count in
  brackets; "-" when the model has no chunkable site);
- arena TFLM-greedy, arena ours: offsets for the final plan's buffers by TensorFlow Lite
  Micro's greedy planner and by ours (16-byte aligned);
- lower bound: the final schedule's live-bytes bound, which no arena for it can beat.
Views and in-place results count in every column (a Reshape is free, a residual add
overwrites the stream).
"""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import zoo  # noqa: E402

from fuseformer.frontends.onnx import load_onnx  # noqa: E402
from fuseformer.ir.specialize import specialize  # noqa: E402
from fuseformer.passes import optimize_graph  # noqa: E402
from fuseformer.passes.memory import check_plan, plan_memory  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def models(bert_seq: int):
    yield "tiny ViT (embed 64, depth 4, 32x32)", ROOT / "examples" / "tiny_vit.onnx", {"batch": 1}
    yield (f"tiny BERT (2 layers, hidden 64, {bert_seq} tokens)", zoo.zoo_model("bert", "torchscript", 17),
           {"batch": 1, "sequence": bert_seq})
    yield ("efficientnet-lite0 (224x224)", zoo.zoo_model("efficientnet_lite0", "torchscript", 17), {"batch": 1})


def kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bert-seq", type=int, default=128)
    args = ap.parse_args(argv)
    rows = ["| model | peak, original order | our schedule | + chunking | arena TFLM-greedy | arena ours "
            "| lower bound |", "|---|---:|---:|---:|---:|---:|---:|"]
    for label, path, dims in models(args.bert_seq):
        t0 = time.perf_counter()
        graph = specialize(optimize_graph(load_onnx(str(path))), dims)
        whole = plan_memory(graph, chunking=False)
        plan = plan_memory(graph)
        problems = check_plan(plan)
        if problems:
            raise SystemExit(f"{label}: the plan does not hold: {problems[0]}")
        chunks = plan.stats["chunks"]
        chunked = f"{kb(plan.lower_bound)} ({chunks} blocks)" if chunks > 1 else "-"
        rows.append(f"| {label} | {kb(whole.stats['original_order_peak'])} | {kb(whole.lower_bound)} | {chunked} "
                    f"| {kb(plan.stats['tflm_arena'])} | {kb(plan.arena_bytes)} | {kb(plan.lower_bound)} |")
        print(f"{label}: planned in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
