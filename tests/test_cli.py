"""The `optimize` command: success path, --verify, --report, and clean failures that write nothing."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper

import fuseformer.runtime.verify as verify_mod
from fuseformer.cli import EXIT_USER, EXIT_VERIFY, main, optimize_main

from .onnx_builders import mlp_model, with_node


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "mlp.onnx"
    onnx.save(mlp_model(17), str(path))
    return path


def test_optimize_verify_report(model_path, tmp_path, capsys):
    out = tmp_path / "out" / "mlp_opt.onnx"
    rc = optimize_main([str(model_path), "--target", "onnx", "-o", str(out), "--verify", "--report",
                        "--dim", "seq=5", "--dump-ir", str(tmp_path / "ir")])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert out.is_file()
    assert "verify (batch=1, seq=5; tol 0.0001):" in captured.out
    assert "y: max abs err 0.000e+00" in captured.out
    assert "ReduceMean" in captured.out and "model size" in captured.out
    dumps = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert dumps[0] == "00_input.txt" and len(dumps) > 1
    assert "graph mlp(" in (tmp_path / "ir" / "00_input.txt").read_text()
    assert "[fuseformer" in captured.err  # progress lines


def test_fuseformer_optimize_subcommand(model_path, tmp_path):
    assert main(["optimize", str(model_path), "-o", str(tmp_path / "o.onnx"), "-q"]) == 0


def test_verify_failure_writes_nothing(model_path, tmp_path, monkeypatch, capsys):
    real = verify_mod.run_onnx

    def skewed(path, feeds):
        outs = real(path, feeds)
        if str(path) != str(model_path):  # the candidate, not the original
            outs = {k: v + 1e-2 for k, v in outs.items()}
        return outs

    monkeypatch.setattr(verify_mod, "run_onnx", skewed)
    out = tmp_path / "out.onnx"
    rc = optimize_main([str(model_path), "-o", str(out), "--verify", "-q"])
    captured = capsys.readouterr()
    assert rc == EXIT_VERIFY
    assert "FAIL" in captured.out and "nothing was written" in captured.err
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["mlp.onnx"]


def test_bad_model_names_node_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    onnx.save(with_node(mlp_model(17), helper.make_node("Frobnicate", ["x"], ["z"], name="layer3/frob",
                                                        domain="acme"), ("acme", 1)), str(bad))
    out = tmp_path / "out.onnx"
    rc = optimize_main([str(bad), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == EXIT_USER
    assert "node 'layer3/frob' (acme::Frobnicate, opset 17)" in err and "unsupported op" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_planned_target_is_a_clear_error(model_path, tmp_path, capsys):
    rc = optimize_main([str(model_path), "--target", "cuda", "-o", str(tmp_path / "a")])
    assert rc == EXIT_USER
    assert "not available" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()


def test_unknown_dim_name(model_path, tmp_path, capsys):
    rc = optimize_main([str(model_path), "-o", str(tmp_path / "o.onnx"), "--verify", "--dim", "sequence=4"])
    assert rc == EXIT_USER
    assert "'sequence'" in capsys.readouterr().err


def test_refuses_to_overwrite_input(model_path, capsys):
    assert optimize_main([str(model_path), "-o", str(model_path)]) == EXIT_USER
    assert onnx.load(str(model_path)).graph.node  # untouched


def test_console_script_exit_code(tmp_path):
    missing = tmp_path / "missing.onnx"
    proc = subprocess.run([sys.executable, "-m", "fuseformer", "optimize", str(missing), "-o",
                           str(tmp_path / "o.onnx")], capture_output=True, text=True)
    assert proc.returncode == EXIT_USER
    assert "no such model file" in proc.stderr


def test_list_passes(capsys):
    assert optimize_main(["--list-passes"]) == 0
    out = capsys.readouterr().out
    assert "fuse-layernorm" in out and "dce" in out


def test_unknown_pass_name(model_path, tmp_path, capsys):
    rc = optimize_main([str(model_path), "-o", str(tmp_path / "o.onnx"), "--disable-pass", "fuse-everything"])
    assert rc == EXIT_USER
    assert "unknown pass names ['fuse-everything']" in capsys.readouterr().err


def test_bisect_and_opt_levels(model_path, tmp_path):
    for level in ("0", "1", "2"):
        assert optimize_main([str(model_path), "-o", str(tmp_path / f"o{level}.onnx"), "-q",
                              "--opt-level", level, "--bisect"]) == 0


def test_exit_codes_for_bad_options(model_path, tmp_path, capsys):
    out = str(tmp_path / "o.onnx")
    assert optimize_main([str(model_path), "-o", out, "--opset", "13"]) == EXIT_USER
    assert "needs opset" in capsys.readouterr().err
    assert optimize_main([str(model_path), "-o", out, "--opset", "99"]) == EXIT_USER
    assert optimize_main([str(model_path), "-o", out, "--bisect", "--dim", "sequence=4"]) == EXIT_USER
    assert "--bisect" in capsys.readouterr().err
    assert not (tmp_path / "o.onnx").exists()


def test_broken_pass_is_an_internal_error(model_path, tmp_path, monkeypatch, capsys):
    from fuseformer.passes.canonical.simplify import RemoveNoOps

    def explode(self, graph, ctx):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(RemoveNoOps, "run", explode)
    rc = optimize_main([str(model_path), "-o", str(tmp_path / "o.onnx"), "-q"])
    err = capsys.readouterr().err
    assert rc == 4 and "pass 'remove-noops' failed" in err and "--disable-pass" in err
    assert not (tmp_path / "o.onnx").exists()


def test_target_cpu_compiles_verifies_and_times(model_path, tmp_path, capsys):
    out = tmp_path / "mlp.cpu"
    rc = optimize_main([str(model_path), "--target", "cpu", "-o", str(out), "--verify", "--dim", "seq=1..8", "--dim", "batch=2",
                        "--threads", "1", "-q"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert (out / "manifest.json").is_file() and (out / "model.so").is_file()
    assert "verify (batch=2, seq=8; tol 0.0001):" in captured.out and "FAIL" not in captured.out
    assert "latency (1 threads" in captured.out

    from fuseformer.runtime import load

    x = np.random.default_rng(3).standard_normal((2, 5, 4)).astype(np.float32)
    import onnxruntime as ort

    want = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(load(out).run({"x": x})["y"], want, atol=1e-4, rtol=1e-4)


def test_target_cpu_verify_failure_writes_nothing(model_path, tmp_path, monkeypatch, capsys):
    import fuseformer.cli as cli

    real = cli._run_artifact
    monkeypatch.setattr(cli, "_run_artifact", lambda p, f: {k: v + 1 for k, v in real(p, f).items()})
    out = tmp_path / "mlp.cpu"
    rc = optimize_main([str(model_path), "--target", "cpu", "-o", str(out), "--verify", "-q"])
    assert rc == EXIT_VERIFY and not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["mlp.onnx"]


@pytest.mark.parametrize("text", ["seq=0", "seq=8..2", "seq=a..b", "seq"])
def test_bad_dim_syntax(text, model_path, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        optimize_main([str(model_path), "-o", str(tmp_path / "o.onnx"), "--dim", text])
    assert e.value.code == 2
