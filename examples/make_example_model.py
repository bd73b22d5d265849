"""Writes examples/tiny_vit.onnx: a small transformers ViT to try the optimizer on.

    python examples/make_example_model.py [output.onnx]

Hidden 64, 4 layers, 4 heads, MLP 128, 32x32 images in 4x4 patches (64 tokens + CLS),
seeded weights, TorchScript exporter at opset 17, dynamic batch. Inputs: pixel_values
[batch, 3, 32, 32] float32. Outputs: last_hidden_state [batch, 65, 64], pooler_output
[batch, 64]. The file is committed, so rerunning should reproduce it.
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import sys
import warnings

import numpy as np

OUT = pathlib.Path(__file__).resolve().parent / "tiny_vit.onnx"
MAX_BYTES = 2 * 1024 * 1024


def build():
    import torch
    import transformers

    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
        image_size=32, patch_size=4)
    vit = transformers.ViTModel(cfg).eval()
    # A fresh init has every LayerNorm at weight 1 / bias 0 and zero Linear biases. The
    # TorchScript exporter merges identical tensors into one initializer plus Identity
    # nodes, which no trained model would show, so nudge each tensor by its own noise.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))

    class TinyViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = vit

        def forward(self, pixel_values):
            out = self.vit(pixel_values=pixel_values)
            return out.last_hidden_state, out.pooler_output

    return TinyViT().eval()


def main(argv: list[str]) -> int:
    import onnx
    import onnxruntime as ort
    import torch

    out = pathlib.Path(argv[0]) if argv else OUT
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = build()
    example = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32))
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation notices
        torch.onnx.export(
            model, (example,), buf, dynamo=False, opset_version=17,
            input_names=["pixel_values"], output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={n: {0: "batch"} for n in ("pixel_values", "last_hidden_state", "pooler_output")})
    data = buf.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{len(data)} bytes is over the {MAX_BYTES}-byte budget")

    # Check a batch size other than the export example's before handing the file out.
    feeds = np.random.default_rng(1).standard_normal((3, 3, 32, 32), dtype=np.float32)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"pixel_values": feeds})
    with torch.no_grad():
        want = model(torch.from_numpy(feeds))
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-4, rtol=1e-4)

    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    print(f"wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
