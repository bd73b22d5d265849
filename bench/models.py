"""The benchmark's models: transformers architectures with seeded random weights, batch 1, fp32.

    spec = MODELS["bert-base"]
    module = torch_model(spec)          # eval-mode PyTorch module (positional inputs, tuple out)
    feeds = inputs(spec)                # dict[input name, np.ndarray], seeded
    path = onnx_path(spec)              # TorchScript export at opset 17, cached on disk

Exports are cached in ~/.cache/fuseformer/bench (FUSEFORMER_BENCH_CACHE overrides),
keyed by the model, the torch and transformers versions and a hash of this file, so an
edit of a builder or a version bump re-exports instead of benchmarking a stale graph.
A file appears there complete or not at all (written to a temporary name, then renamed).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import io
import logging
import os
import pathlib
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

OPSET = 17
SEED = 0


@dataclass(frozen=True)
class BenchModel:
    name: str                       # the --models key
    label: str                      # how tables name it
    kind: str                       # "text" or "vision"
    config: Callable[[str], object]  # attn implementation -> transformers config
    model_class: str                # transformers class that builds it from the config
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    ort_model_type: str             # model_type for onnxruntime's transformer optimizer
    num_heads: int
    hidden_size: int
    seq: int = 0                    # text: the benchmark's sequence length
    vocab: int = 0
    image: int = 0                  # vision: image side in pixels

    def dims(self) -> dict[str, int]:
        """The symbolic dims of the export at the benchmark's shape."""
        return {"batch": 1, "seq": self.seq} if self.kind == "text" else {"batch": 1}


def _bert_config(attn: str):
    import transformers

    return transformers.BertConfig(attn_implementation=attn)  # the defaults are BERT-base


def _gpt2_config(attn: str):
    import transformers

    # GPT-2 small is GPT2Config's default; no KV cache: one full forward over the prompt
    return transformers.GPT2Config(use_cache=False, attn_implementation=attn)


def _vit_s16_config(attn: str):
    import transformers

    return transformers.ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                  intermediate_size=1536, patch_size=16, image_size=224,
                                  attn_implementation=attn)


def _tiny_vit_config(attn: str):
    import transformers

    return transformers.ViTConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                  intermediate_size=128, patch_size=4, image_size=32,
                                  attn_implementation=attn)


_TEXT_IN = ("input_ids", "attention_mask")
# BERT's usual ONNX signature (the one exporters of BERT checkpoints write): without
# token_type_ids, transformers reads its buffer through a GatherElements on position ids
_BERT_IN = ("input_ids", "attention_mask", "token_type_ids")
_HIDDEN_AND_POOLED = ("last_hidden_state", "pooler_output")

MODELS: dict[str, BenchModel] = {m.name: m for m in (
    BenchModel("bert-base", "BERT-base s128", "text", _bert_config, "BertModel", _BERT_IN,
               _HIDDEN_AND_POOLED, "bert", 12, 768, seq=128, vocab=30522),
    BenchModel("gpt2", "GPT-2 s128", "text", _gpt2_config, "GPT2Model", _TEXT_IN,
               ("last_hidden_state",), "gpt2", 12, 768, seq=128, vocab=50257),
    BenchModel("vit-s16", "ViT-S/16 224", "vision", _vit_s16_config, "ViTModel", ("pixel_values",),
               _HIDDEN_AND_POOLED, "vit", 6, 384, image=224),
    BenchModel("tiny-vit", "tiny ViT (dim 64, 4 layers, 32 px)", "vision", _tiny_vit_config, "ViTModel",
               ("pixel_values",), _HIDDEN_AND_POOLED, "vit", 4, 64, image=32),
)}


# ---------------------------------------------------------------------------- inputs


def inputs(spec: BenchModel, seed: int = SEED) -> dict[str, np.ndarray]:
    """Batch-1 inputs: token ids inside the vocabulary with an all-ones mask (and segment 0), or
    an NCHW image."""
    rng = np.random.default_rng(seed)
    if spec.kind == "text":
        ids = rng.integers(0, spec.vocab, size=(1, spec.seq), dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        return {n: feeds[n] for n in spec.input_names}
    return {"pixel_values": rng.standard_normal((1, 3, spec.image, spec.image), dtype=np.float32)}


# ---------------------------------------------------------------------------- torch models


def torch_model(spec: BenchModel, attn: str = "sdpa"):
    """The eval-mode module, called with the inputs positionally, returning a tuple in the order
    of ``spec.output_names``. ``attn`` picks transformers' attention implementation: "sdpa"
    (its default, what a PyTorch user runs) or "eager" (what the ONNX export traces).
    The weights depend only on the model, never on ``attn``."""
    import torch
    import transformers

    with torch.random.fork_rng(devices=[]), _quiet():
        # seeded without disturbing the caller's RNG stream; same seed => same init for any attn
        torch.manual_seed(SEED)
        inner = getattr(transformers, spec.model_class)(spec.config(attn))
        _jitter(inner)
    inner.eval()
    for p in inner.parameters():
        p.requires_grad_(False)
    return _wrap(spec, inner).eval()


def _jitter(model, scale: float = 0.02) -> None:
    # A fresh init leaves every LayerNorm at weight 1 / bias 0 and every Linear bias at 0.
    # The TorchScript exporter merges identical tensors into one initializer plus Identity
    # nodes, which no trained model shows; give each tensor its own seeded offset.
    import torch

    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def _wrap(spec: BenchModel, inner):
    import torch

    names = spec.output_names

    # keyword calls: the positional order of transformers' forward arguments changes across versions
    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
            return tuple(out[k] for k in names)

    class Bert(Text):
        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids, return_dict=True)
            return tuple(out[k] for k in names)

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):
            out = self.inner(pixel_values=pixel_values, return_dict=True)
            return tuple(out[k] for k in names)

    if spec.kind == "vision":
        return Vision()
    return Bert() if "token_type_ids" in spec.input_names else Text()


# ---------------------------------------------------------------------------- ONNX exports


def cache_root() -> pathlib.Path:
    env = os.environ.get("FUSEFORMER_BENCH_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "fuseformer" / "bench"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


@functools.cache
def _key() -> str:
    # versions from metadata, not imports: finding a cached file must not cost a transformers import
    src = hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()[:12]
    return f"torch-{_version('torch')}_transformers-{_version('transformers')}_models-{src}"


def onnx_path(spec: BenchModel, progress: Callable[[str], None] | None = None) -> pathlib.Path:
    """The cached export of ``spec`` (TorchScript exporter, opset 17, dynamic batch and seq);
    exports it first when missing."""
    dest = cache_root() / _key() / f"{spec.name}-ts{OPSET}.onnx"
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_suffix(".lock"), "a") as lock:
        # a concurrent run (another test worker) may be exporting the same model: wait, then reuse
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if dest.exists():
                return dest
            if progress:
                progress(f"{spec.name}: exporting to ONNX (once; cached in {dest.parent})")
            start = time.perf_counter()
            _export(spec, dest)
            if progress:
                progress(f"{spec.name}: exported in {time.perf_counter() - start:.1f}s")
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return dest


def _export(spec: BenchModel, dest: pathlib.Path) -> None:
    import onnx
    import torch

    # eager attention: the plain MatMul/Softmax spelling that both optimizers look for
    model = torch_model(spec, attn="eager")
    feeds = inputs(spec)
    args = tuple(torch.from_numpy(feeds[n]) for n in spec.input_names)
    text = spec.kind == "text"
    axes = {n: ({0: "batch", 1: "seq"} if text else {0: "batch"}) for n in spec.input_names}
    for n in spec.output_names:  # only the hidden states carry the sequence axis
        axes[n] = {0: "batch", 1: "seq"} if (text and n == "last_hidden_state") else {0: "batch"}
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(model, args, tmp, dynamo=False, opset_version=OPSET,
                              input_names=list(spec.input_names), output_names=list(spec.output_names),
                              dynamic_axes=axes)
        onnx.checker.check_model(tmp)  # by path: BERT-base and GPT-2 are close to 0.5 GB
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _quiet():
    # the exporter and transformers print deprecation notices and progress: none of it is
    # actionable in a benchmark run
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "transformers")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
