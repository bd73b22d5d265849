"""Fusion counts per model: fuseformer's default pipeline next to onnxruntime's transformer optimizer.

    python bench/fusion_report.py               # the test zoo (torchscript, opset 17)
    python bench/fusion_report.py --bert-base   # also BERT-base (12 layers, hidden 768, seeded weights)

onnxruntime's side is ``onnxruntime.transformers.optimizer.optimize_model(...)``
``.get_fused_operator_statistics()`` with the model type that fits each model.
Output: one Markdown table per model, ours | theirs per fused-op kind, and
fuseformer's near misses (why a fusion did not happen).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pathlib
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tests import zoo  # noqa: E402

from fuseformer.frontends.onnx import load_onnx  # noqa: E402
from fuseformer.ir.op import Op  # noqa: E402
from fuseformer.passes import PassContext, optimize_graph  # noqa: E402

MODELS = [("bert", "bert"), ("minilm", "bert"), ("gpt2", "gpt2"), ("llama", "bert"), ("vit", "vit"),
          ("paraphrase_minilm", "bert")]
LAYERS = {"bert": 2, "gpt2": 2, "llama": 2, "vit": 2, "minilm": 6, "paraphrase_minilm": 3, "bert_base": 12}
# our op -> the onnxruntime fused op types that do the same job
KINDS = {
    "Attention": ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention"),
    "LayerNormalization": ("LayerNormalization", "EmbedLayerNormalization"),
    "SkipLayerNorm": ("SkipLayerNormalization",),
    "RMSNorm": ("SimplifiedLayerNormalization",),
    "CRMSNorm": (),
    "SkipRMSNorm": ("SkipSimplifiedLayerNormalization",),
    "Gelu": ("Gelu", "FastGelu", "BiasGelu", "GemmFastGelu"),
    "RotaryEmbedding": ("RotaryEmbedding",),
    # onnxruntime fuses bias adds into its own ops instead of a Linear op: nothing to count
    "Linear": (),
    # residual Adds in a Linear epilogue; onnxruntime counts those inside SkipLayerNormalization
    "Linear+residual": (),
}


def ours(path: pathlib.Path) -> tuple[dict[str, int], str]:
    ctx = PassContext()
    graph = optimize_graph(load_onnx(path), ctx)
    counts = graph.op_counts()
    for node in graph.nodes:  # epilogues fused into a Linear count under their own kind
        if node.op is Op.Linear and node.attrs.activation in ("gelu", "gelu_tanh"):
            counts["Gelu"] = counts.get("Gelu", 0) + 1
        if node.op is Op.Linear and node.input(3) is not None:
            counts["Linear+residual"] = counts.get("Linear+residual", 0) + 1
    misses = "\n".join(f"  - {m}" for kind in ctx.report.missed.values() for m in kind)
    return counts, misses


def theirs(path: pathlib.Path, model_type: str) -> dict[str, int] | str:
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            model = optimize_model(str(path), model_type=model_type, num_heads=0, hidden_size=0)
            return dict(model.get_fused_operator_statistics())
    except Exception as e:  # a failure is a result worth printing, not a crash of the report
        return f"{type(e).__name__}: {e}"[:160]


def bert_base_path() -> pathlib.Path:
    """BERT-base with seeded random weights, exported once (TorchScript, opset 17)."""
    import torch
    import transformers

    cache = pathlib.Path(os.environ.get("FUSEFORMER_BENCH_CACHE", pathlib.Path.home() / ".cache/fuseformer/bench"))
    path = cache / f"bert_base-ts17-{torch.__version__}-{transformers.__version__}.onnx"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    bert = transformers.BertModel(transformers.BertConfig(attn_implementation="eager")).eval()

    class Wrapped(torch.nn.Module):  # keyword call: forward's positional order changed across versions
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            out = self.bert(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return out.last_hidden_state, out.pooler_output

    model = Wrapped().eval()
    ids = torch.randint(0, 30522, (1, 128))
    mask = torch.ones_like(ids)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = pathlib.Path(tmp) / "m.onnx"
        with torch.no_grad():
            torch.onnx.export(model, (ids, mask), str(out), input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state", "pooler_output"], opset_version=17,
                              dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                            "attention_mask": {0: "batch", 1: "seq"}}, dynamo=False)
        os.replace(out, path)
    return path


def table(name: str, path: pathlib.Path, model_type: str) -> str:
    counts, misses = ours(path)
    ort = theirs(path, model_type)
    lines = [f"### {name} ({LAYERS.get(name, '?')} layers; onnxruntime model_type={model_type})", "",
             "| fused op | fuseformer | onnxruntime optimizer |", "|---|---:|---:|"]
    for kind, ort_names in KINDS.items():
        mine = counts.get(kind, 0)
        if isinstance(ort, str):
            other = "failed"
        else:
            other = " + ".join(f"{ort[n]} {n}" for n in ort_names if ort.get(n)) or ("0" if ort_names else "-")
        lines.append(f"| {kind} | {mine} | {other} |")
    if isinstance(ort, str):
        lines.append(f"\nonnxruntime optimizer failed: {ort}")
    if misses:
        lines.append("\nfuseformer near misses:\n" + misses)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bert-base", action="store_true", help="include BERT-base (exports ~440 MB once)")
    parser.add_argument("--exporter", default="torchscript", choices=["torchscript", "dynamo"])
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args()
    for name, model_type in MODELS:
        combo = (name, args.exporter, args.opset) if name != "paraphrase_minilm" else (name, "shipped", 17)
        if combo not in zoo.ZOO:
            print(f"### {name}: {combo} is not in the zoo ({zoo.ZOO_FAILURES.get(combo, 'not exported')})\n")
            continue
        print(table(name, zoo.zoo_model(*combo), model_type))
    if args.bert_base:
        print(table("bert_base", bert_base_path(), "bert"))


if __name__ == "__main__":
    main()
