"""The CPU artifact and runtime: generated source, sanitizing, integrity, input checks, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fuseformer.backends.cpu import CompilerError, CpuCompileError, UnsupportedOpError, compile_cpu
from fuseformer.backends.cpu.build import build_library
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.errors import FuseformerError
from fuseformer.ir.interpreter import run
from fuseformer.runtime import load
from fuseformer.runtime.artifact import ArtifactError
from fuseformer.runtime.session import RunError, RunInputError

from .cpu_checks import assert_close, randn

RNG = np.random.default_rng(3)
B, S = Sym("batch"), Sym("seq")


def mlp(name_in="x", name_out="y", graph_name="mlp", node_prefix="fc"):
    """The smallest end-to-end graph: y = relu(x @ W + b) with a symbolic batch."""
    g = Graph(graph_name)
    rng = np.random.default_rng(11)  # the same weights on every call
    x = g.add_input(name_in, DType.FLOAT, (B, 8))
    w = g.add_constant(randn(rng, 8, 4), "w")
    b = g.add_constant(randn(rng, 4), "b")
    h = g.make_node(Op.MatMul, [x, w], name=f"{node_prefix}/matmul").output
    h = g.make_node(Op.Add, [h, b], name=f"{node_prefix}/add").output
    y = g.make_node(Op.Relu, [h], name=f"{node_prefix}/relu", output_names=[name_out]).output
    g.outputs.append(y)
    return g


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    return compile_cpu(mlp(), tmp_path_factory.mktemp("cpu") / "mlp", {"batch": 4}, threads=1)


def test_tiny_graph_matches_interpreter_and_source_has_the_entry(artifact):
    feeds = {"x": randn(RNG, 3, 8)}
    with load(artifact) as session:
        assert_close(session.run(feeds), run(mlp(), feeds))
    source = (artifact / "model.cpp").read_text()
    for needed in ("FF_EXPORT int ff_run(", 'extern "C"', "ff::gemm(", "kWeightOffsets", "s0 > 4LL"):
        assert needed in source
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["target"] == "cpu" and manifest["format_version"] == 1
    assert manifest["symbols"] == [{"name": "batch", "max": 4}]
    assert manifest["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 8]}]
    assert {"-O3", "-march=native", "-fopenmp"} <= set(manifest["compiler"]["flags"])
    assert set(manifest["files"]) == {"source", "library", "weights"}


def test_model_names_never_reach_the_source_raw(tmp_path):
    nasty_in = 'x"\n*/ #include <evil.h> \\'
    nasty_out = 'out */ "); system("rm -rf /"); // ü名\r'
    g = mlp(nasty_in, nasty_out, graph_name="model */\n#error no", node_prefix='fc"*/\n\\')
    path = compile_cpu(g, tmp_path / "nasty", {"batch": 2})
    source = (path / "model.cpp").read_text()
    assert source.isascii()
    for raw in (nasty_in, nasty_out, "*/", '"); system', "\\\n", "\\"):
        assert raw not in source
    for line in source.splitlines():
        code = line.split("//", 1)[0]  # escaped model text may appear in comments only
        assert "evil" not in code and "system" not in code and "#error" not in code
    feeds = {nasty_in: randn(RNG, 2, 8)}
    with load(path) as session:
        got = session.run(feeds)
    assert list(got) == [nasty_out]
    assert_close(got, run(g, feeds))


def test_unsupported_op_is_a_clear_error_and_writes_nothing(tmp_path):
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (B, 3))
    y = g.make_node(Op.NonZero, [x], name="the_nonzero").output
    g.outputs.append(y)
    with pytest.raises(UnsupportedOpError, match=r"the_nonzero \(NonZero\).*no kernel for NonZero") as info:
        compile_cpu(g, tmp_path / "out", {"batch": 2})
    assert isinstance(info.value, FuseformerError)
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []

    g = Graph("ints")
    a = g.add_input("a", DType.INT64, (2, 2))
    g.outputs.append(g.make_node(Op.MatMul, [a, a], name="int_matmul").output)
    with pytest.raises(UnsupportedOpError, match=r"int_matmul \(MatMul\): MatMul on i64"):
        compile_cpu(g, tmp_path / "out", {})


def test_dims_must_name_every_symbol(tmp_path):
    with pytest.raises(CpuCompileError, match=r"missing \['batch'\]"):
        compile_cpu(mlp(), tmp_path / "a", {})
    with pytest.raises(CpuCompileError, match=r"unknown \['seq'\]"):
        compile_cpu(mlp(), tmp_path / "a", {"batch": 2, "seq": 4})
    with pytest.raises(CpuCompileError, match="positive int"):
        compile_cpu(mlp(), tmp_path / "a", {"batch": 0})


def _copy(artifact, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(artifact, dst)
    return dst


@pytest.mark.parametrize("role", ["model.so", "weights.safetensors"])
def test_corrupted_file_is_refused(artifact, tmp_path, role):
    path = _copy(artifact, tmp_path)
    data = bytearray((path / role).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / role).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match the sha256"):
        load(path)


def test_edited_or_broken_manifest_is_refused(artifact, tmp_path):
    path = _copy(artifact, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["arena_bytes"] = 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="does not match its own hash"):
        load(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="is not a fuseformer artifact"):
        load(path)


def test_inputs_are_checked(artifact):
    session = load(artifact)
    good = randn(RNG, 2, 8)
    cases = [({}, r"missing \['x'\]"), ({"x": good, "z": good}, r"unexpected \['z'\]"),
             ({"x": good.astype(np.float64)}, "must be float32, got float64"),
             ({"x": good[0]}, "must have rank 2"), ({"x": randn(RNG, 2, 7)}, "dim 1 must be 8, got 7"),
             ({"x": randn(RNG, 5, 8)}, r"batch=5; this build runs batch from 1 to 4")]
    want = session.run({"x": good})  # inputs of a shape seen before skip the checks: not these
    for feeds, message in cases:
        with pytest.raises(RunInputError, match=message):
            session.run(feeds)
    # read-only and strided inputs (no buffer-protocol address, a contiguous copy) run too
    frozen = good.copy()
    frozen.flags.writeable = False
    strided = np.repeat(good, 2, axis=1)[:, ::2]
    for x in (frozen, strided, good):
        got = session.run({"x": x})
        for name, ref in want.items():
            np.testing.assert_array_equal(got[name], ref)
    session.close()


def test_a_scalar_input_keeps_its_rank_check(tmp_path):
    # checked inputs skip the checks when their (dtype, shape) comes again: a 0-d input,
    # which the checks copy to one element, must not let a 1-d array through afterwards
    g = Graph("scalar")
    x, c = g.add_input("x", DType.FLOAT, (B, 4)), g.add_input("c", DType.FLOAT, ())
    g.outputs.append(g.make_node(Op.Mul, [x, c]).output)
    with load(compile_cpu(g, tmp_path / "scalar", {"batch": 2})) as session:
        x_ = randn(RNG, 2, 4)
        for _ in range(2):
            (got,) = session.run({"x": x_, "c": np.array(3, np.float32)}).values()
            np.testing.assert_array_equal(got, x_ * np.float32(3))
            with pytest.raises(RunInputError, match="must have rank 0"):
                session.run({"x": x_, "c": np.ones(1, np.float32)})


def test_symbols_must_agree_across_inputs(tmp_path):
    g = Graph("two")
    a, b = g.add_input("a", DType.FLOAT, (B, S)), g.add_input("b", DType.FLOAT, (B, S))
    g.outputs.append(g.make_node(Op.Add, [a, b]).output)
    with load(compile_cpu(g, tmp_path / "two", {"batch": 2, "seq": 8})) as session:
        with pytest.raises(RunInputError, match=r"dim 1 is seq=3, but another input set seq=4"):
            session.run({"a": randn(RNG, 2, 4), "b": randn(RNG, 2, 3)})


def test_bad_index_names_the_node(tmp_path):
    g = Graph("gather")
    ids = g.add_input("ids", DType.INT64, (S,))
    table = g.add_constant(randn(RNG, 5, 2), "table")
    g.outputs.append(g.make_node(Op.Gather, [table, ids], name="embed").output)
    with load(compile_cpu(g, tmp_path / "gather", {"seq": 4})) as session:
        assert session.run({"ids": np.array([0, -5, 4])})[g.outputs[0].name].shape == (3, 2)
        with pytest.raises(RunError, match=r"embed \(Gather\): an index is out of range"):
            session.run({"ids": np.array([0, 5])})


def test_recompiling_replaces_an_artifact_but_nothing_else(tmp_path):
    out = tmp_path / "art"
    compile_cpu(mlp(), out, {"batch": 2})
    compile_cpu(mlp(), out, {"batch": 3})
    assert json.loads((out / "manifest.json").read_text())["symbols"][0]["max"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a fuseformer artifact"):
        compile_cpu(mlp(), tmp_path / "precious", {"batch": 2})
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_compiler_error_keeps_the_source(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSEFORMER_CPU_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CompilerError, match=r"failed on .*\.cpp \(kept for inspection\)") as info:
        build_library("this is not C++;\n")
    kept = [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".cpp"]
    assert len(kept) == 1 and str(kept[0]) in str(info.value)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.suffix == ".so"]


def test_portable_build_and_threads(tmp_path):
    feeds = {"x": randn(RNG, 4, 8)}
    path = compile_cpu(mlp(), tmp_path / "portable", {"batch": 4}, portable=True)
    flags = json.loads((path / "manifest.json").read_text())["compiler"]["flags"]
    assert "-march=x86-64-v2" in flags and "-O2" in flags
    want = run(mlp(), feeds)
    for threads in (1, 2):
        with load(path, threads=threads) as session:
            assert_close(session.run(feeds), want)


def test_sessions_of_one_library_each_run_at_their_thread_count(artifact, monkeypatch):
    # two sessions of one artifact share its library, whose thread count is global: each
    # call sets it when the other session left another
    one, two = load(artifact, threads=1), load(artifact, threads=2)
    assert one._lib is two._lib
    from fuseformer.runtime import session as session_module

    monkeypatch.setattr(session_module, "_THREADS", {})  # whatever earlier tests left set
    calls = []
    real = one._lib.ff_set_threads
    monkeypatch.setattr(one._lib, "ff_set_threads", lambda n: (calls.append(n), real(n)))
    feeds = {"x": randn(RNG, 2, 8)}
    for session in (one, two, two, one, one, two):
        session.run(feeds)
    assert calls == [1, 2, 1, 2]
    one.close()
    two.close()


def test_weights_are_aligned_and_both_ways_of_loading_agree(artifact):
    # every weight sits at a 64-byte offset of a mapping of the file (the packed GEMM's
    # vector loads then never split a cache line), and the file stays valid safetensors
    from safetensors.numpy import load_file

    path = artifact / "weights.safetensors"
    raw = path.read_bytes()
    start = 8 + int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:start])
    assert start % 64 == 0
    weights = {k: v for k, v in header.items() if k.startswith("w")}
    assert weights and all(v["data_offsets"][0] % 64 == 0 for v in weights.values())
    assert set(load_file(str(path))) == set(header) - {"__metadata__"}
    feeds = {"x": randn(RNG, 3, 8)}
    with load(artifact) as copied, load(artifact, mmap_weights=True) as mapped:
        a, b = copied.run(feeds), mapped.run(feeds)
    np.testing.assert_array_equal(a["y"], b["y"])
    assert_close(a, run(mlp(), feeds))
