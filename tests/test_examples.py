"""The shipped examples run and say what they should."""
from __future__ import annotations

import pathlib
import subprocess
import sys

import onnx

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def test_example_model_is_small_and_valid():
    path = EXAMPLES / "tiny_vit.onnx"
    assert path.stat().st_size < 2 * 1024 * 1024
    onnx.checker.check_model(str(path), full_check=True)


def test_api_example_runs():
    proc = subprocess.run([sys.executable, str(EXAMPLES / "api_example.py")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "optimized:" in proc.stdout
    errors = [float(line.rsplit(" ", 1)[1]) for line in proc.stdout.splitlines()
              if "max abs diff vs the original" in line or line.startswith("onnxruntime ")]
    assert len(errors) == 4  # two outputs, interpreter and onnxruntime
    assert max(errors) < 1e-4, proc.stdout
