"""Every zoo export runs in onnxruntime and agrees with the PyTorch model it came from."""
from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys
import threading

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from . import zoo  # noqa: E402

TOL = dict(atol=1e-4, rtol=1e-4)
SLOW_EXPORT_SECONDS = 20.0


def _param(combo):
    marks = [pytest.mark.slow] if zoo.EXPORT_SECONDS.get(combo, 0.0) > SLOW_EXPORT_SECONDS else []
    return pytest.param(*combo, id="-".join(map(str, combo)), marks=marks)


@functools.cache
def _torch_model(name):
    # Building minilm or the paraphrase rebuild takes about a second; tests of the same
    # model in one worker share it.
    return zoo.zoo_torch_model(name)


def _session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # xdist runs one worker per core already
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _check_against_torch(name, sess, feeds):
    assert [i.name for i in sess.get_inputs()] == list(feeds)
    got = sess.run(None, feeds)
    want = zoo.torch_outputs(name, feeds, _torch_model(name))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"output {i}: {g.shape} != {w.shape}"
        np.testing.assert_allclose(g, w, err_msg=f"output {i}", **TOL)


@pytest.mark.parametrize("name,exporter,opset", [_param(c) for c in zoo.ZOO])
def test_export_runs_and_matches_torch(name, exporter, opset):
    path = zoo.zoo_model(name, exporter, opset)
    assert zoo._default_opset(path) == opset
    sess = _session(path)
    _check_against_torch(name, sess, zoo.zoo_inputs(name, seed=0))
    # Other batch (and sequence) sizes than the export example: the axes really are dynamic.
    other = dict(batch=3, seq=9) if name in zoo._TEXT else dict(batch=3)
    _check_against_torch(name, sess, zoo.zoo_inputs(name, seed=1, **other))


@pytest.mark.parametrize("combo", [c for c in zoo.ZOO if c[0] in zoo._KEEP_BN], ids=str)
def test_batchnorm_nodes_survive_export(combo):
    graph = onnx.load(str(zoo.zoo_model(*combo))).graph
    # levit: 4 stem Conv+BatchNorm2d, and a BatchNorm1d after each of its 22 Linears
    # (stages of 1 attention + 1 MLP block (4), two attention-subsamples (3 each) with their
    # MLP (2 each)). slab_vit: 6 RepBN (patch embedding, 2 per block, final).
    counts = {"cnn": 3, "efficientnet_lite0": 49, "levit": 26, "slab_vit": 6}
    assert sum(n.op_type == "BatchNormalization" for n in graph.node) == counts[combo[0]]


@pytest.mark.parametrize("combo", list(zoo.ZOO_FAILURES), ids=str)
def test_known_failures_still_fail(combo):
    # When an upgrade makes one of these work, move it from ZOO_FAILURES to ZOO.
    with pytest.raises(zoo.ZooExportError):
        zoo.zoo_model(*combo)


def test_bad_requests_are_refused():
    with pytest.raises(KeyError):
        zoo.zoo_model("no_such_model", "torchscript", 17)
    with pytest.raises(KeyError):
        zoo.zoo_model("bert", "onnxmltools", 17)
    with pytest.raises(zoo.ZooExportError, match="ships opset 17"):
        zoo.zoo_model("paraphrase_minilm", "shipped", 14)
    with pytest.raises(zoo.ZooExportError, match="shipped"):
        zoo.zoo_model("paraphrase_minilm", "torchscript", 17)


def test_zoo_inputs_are_valid_and_seeded():
    for name in zoo.NAMES:
        a, b = zoo.zoo_inputs(name, seed=0), zoo.zoo_inputs(name, seed=0)
        assert list(a) == list(zoo.input_names(name))
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        if "input_ids" in a:
            vocab = zoo._TEXT[name][0]
            assert a["input_ids"].min() >= 0 and a["input_ids"].max() < vocab
            mask = a["attention_mask"]
            assert mask[0].all() and not mask[-1, -1] and mask[-1, 0]
    assert not np.array_equal(zoo.zoo_inputs("vit", seed=0)["pixel_values"],
                              zoo.zoo_inputs("vit", seed=1)["pixel_values"])


# ---------------------------------------------------------------------------- cache


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEFORMER_ZOO_CACHE", str(tmp_path))
    return tmp_path


def test_cache_reuses_file_and_keys_on_versions(fresh_cache, monkeypatch):
    calls = []
    real = zoo._export_bytes
    monkeypatch.setattr(zoo, "_export_bytes", lambda *a: calls.append(a) or real(*a))
    first = zoo.zoo_model("cnn", "torchscript", 17)
    assert zoo.zoo_model("cnn", "torchscript", 17) == first
    assert len(calls) == 1
    assert first.is_relative_to(fresh_cache)
    assert zoo.export_info(first)["opset"] == 17

    zoo.version_key.cache_clear()
    monkeypatch.setattr(zoo, "_version", lambda dist: "99.0" if dist == "torch" else "1.0")
    try:
        bumped = zoo.zoo_model("cnn", "torchscript", 17)
    finally:
        zoo.version_key.cache_clear()
    assert bumped != first and len(calls) == 2


def test_crashed_export_leaves_no_file(fresh_cache, monkeypatch):
    def boom(*a):
        raise MemoryError("simulated")

    monkeypatch.setattr(zoo, "_export_bytes", boom)
    with pytest.raises(MemoryError):
        zoo.zoo_model("cnn", "torchscript", 14)
    leftovers = [p for p in fresh_cache.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert leftovers == []


def test_failed_write_leaves_no_partial_file(fresh_cache, monkeypatch):
    monkeypatch.setattr(zoo, "_export_bytes", lambda *a: b"\0" * 4096)
    real_fdopen = zoo.os.fdopen

    class Exploding:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError("disk full (simulated)")

    monkeypatch.setattr(zoo.os, "fdopen", lambda fd, mode: Exploding(real_fdopen(fd, mode)))
    with pytest.raises(OSError):
        zoo.zoo_model("cnn", "torchscript", 14)
    monkeypatch.undo()
    assert not any(p.suffix in (".onnx", ".tmp") for p in fresh_cache.rglob("*"))


def test_concurrent_requests_export_once(fresh_cache, monkeypatch):
    calls = []
    real = zoo._export_bytes
    gate = threading.Barrier(4)

    def counted(*a):
        calls.append(a)
        return real(*a)

    monkeypatch.setattr(zoo, "_export_bytes", counted)
    results, errors = [], []

    def worker():
        gate.wait()
        try:
            results.append(zoo.zoo_model("cnn", "torchscript", 20))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1 and len(calls) == 1
    onnx.checker.check_model(str(results[0]))


_EXPORT_IN_SUBPROCESS = """
import os, sys
from tests import zoo
real = zoo._export_bytes
def marked(*a):
    open(os.path.join(sys.argv[1], f"exported-{os.getpid()}"), "w").close()
    return real(*a)
zoo._export_bytes = marked
print(zoo.zoo_model("cnn", "torchscript", 17))
"""


def test_two_processes_share_one_export(fresh_cache, tmp_path_factory):
    # What pytest-xdist does: separate processes asking for the same file at once.
    markers = tmp_path_factory.mktemp("markers")
    root = pathlib.Path(zoo.__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-c", _EXPORT_IN_SUBPROCESS, str(markers)], cwd=root,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    paths = {out.strip().splitlines()[-1] for out, _ in outs}
    assert len(paths) == 1
    assert len(list(markers.iterdir())) == 1
    onnx.checker.check_model(paths.pop())


def test_failures_are_remembered(fresh_cache, monkeypatch):
    calls = []

    def fails(*a):
        calls.append(a)
        raise zoo.ZooExportError("simulated exporter bug")

    monkeypatch.setattr(zoo, "_export_bytes", fails)
    for _ in range(2):
        with pytest.raises(zoo.ZooExportError, match="simulated exporter bug"):
            zoo.zoo_model("cnn", "dynamo", 20)
    assert len(calls) == 1
