"""`optimize --target mcu`: C99 out, --memory-budget, --report's table and picture, --verify."""
from __future__ import annotations

import re
import shutil

import onnx
import pytest

from fuseformer.cli import EXIT_USER, optimize_main

from .onnx_builders import mlp_model

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="--verify builds the C99 with gcc")


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(17), str(path))
    return path


def test_mcu_budget_report_verify(model_path, tmp_path, capsys):
    out = tmp_path / "mcu"
    rc = optimize_main([str(model_path), "--target", "mcu", "--memory-budget", "320KB", "--report", "--verify",
                        "--dim", "seq=5", "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert {p.name for p in out.iterdir()} == {"model.c", "model.h", "manifest.json", "memory.png", "memory.txt"}
    assert "y: max abs err" in captured.out and "FAIL" not in captured.out
    assert "live bytes" in captured.out and "peak" in captured.out
    for line in ("peak SRAM (arena)", "flash (weights)", "live there:", "TFLM greedy arena"):
        assert line in captured.out, line
    assert f"memory timeline drawn in {out / 'memory.png'}" in captured.out


def test_mcu_budget_miss_writes_nothing(model_path, tmp_path, capsys):
    out = tmp_path / "mcu"
    rc = optimize_main([str(model_path), "--target", "mcu", "--memory-budget", "64", "--dim", "seq=5",
                        "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == EXIT_USER
    assert "budget" in err and re.search(r"step \d+, node", err)
    assert re.search(r"(?i)smallest budget", err) and "Traceback" not in err
    assert not out.exists()


def test_memory_budget_is_checked(model_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        optimize_main([str(model_path), "--target", "mcu", "--memory-budget", "12XB", "-o", str(tmp_path / "a")])
    assert info.value.code == EXIT_USER and "KB (=1024 B)" in capsys.readouterr().err
    rc = optimize_main([str(model_path), "--memory-budget", "1MB", "-o", str(tmp_path / "b.onnx"), "-q"])
    assert rc == EXIT_USER and "--memory-budget applies to --target mcu" in capsys.readouterr().err
