"""The C ABI of CPU artifacts: fuseformer.h, the library's self-description, examples/c/run_artifact.c.

The C program must compute what the Python runtime computes from the same
library: bit for bit, with the same thread count. Both are checked against
onnxruntime on the original model within the usual 1e-4.
"""
from __future__ import annotations

import ctypes
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fuseformer.backends.cpu import compile_cpu
from fuseformer.backends.cpu import compile as cpu_compile
from fuseformer.backends.cpu.build import INCLUDE_DIR
from fuseformer.backends.cpu.planner import ALIGNMENT
from fuseformer.backends.cpu.renderer import ABI_VERSION
from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir import attrs as A
from fuseformer.passes import optimize_graph
from fuseformer.runtime import load
from fuseformer.runtime import session as runtime_session

from .cpu_checks import randn
from .test_cpu_artifact import mlp

ROOT = Path(__file__).resolve().parents[2]
HEADER = INCLUDE_DIR / "fuseformer.h"
RUNNER = ROOT / "examples" / "c" / "run_artifact.c"
TINY_VIT = ROOT / "examples" / "tiny_vit.onnx"
THREADS = 2  # the same count on both sides: the GEMM split, and so the sums' order, depends on it

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("g++") is None,
                                reason="needs gcc and g++")


def _compile(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)}\n{proc.stderr}"


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Path:
    """run_artifact.c built as the Makefile does, warnings as errors, -pedantic too."""
    out = tmp_path_factory.mktemp("runner") / "run_artifact"
    _compile(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", str(INCLUDE_DIR),
              str(RUNNER), "-ldl", "-o", str(out)], out.parent)
    return out


@pytest.fixture(scope="module")
def vit(tmp_path_factory) -> Path:
    graph = optimize_graph(load_onnx(str(TINY_VIT)))
    return compile_cpu(graph, tmp_path_factory.mktemp("cpu") / "tiny_vit.cpu", {"batch": 2})


def run_c(runner: Path, artifact: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(runner), str(artifact), *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def read_outputs(prefix: Path, manifest: dict, shapes: list[tuple[int, ...]]) -> dict[str, np.ndarray]:
    return {spec["name"]: np.fromfile(f"{prefix}{k}.bin", dtype=spec["dtype"]).reshape(shape)
            for k, (spec, shape) in enumerate(zip(manifest["outputs"], shapes))}


# ---- the header ---------------------------------------------------------------


@pytest.mark.parametrize("compiler, std", [("gcc", "c99"), ("g++", "c++17")])
def test_header_compiles_alone_as_c99_and_cxx17(tmp_path, compiler, std):
    # a translation unit that uses every macro and inline helper, so none of them hides an error
    src = tmp_path / ("use.c" if compiler == "gcc" else "use.cpp")
    src.write_text(
        '#include "fuseformer.h"\n'
        '#include "fuseformer.h"  /* the include guard holds */\n'
        "int main(void) {\n"
        "    int64_t d = FF_DIM_SYMBOL(2);\n"
        "    ff_run_fn run = 0; ff_tensor_dims_fn dims = 0; ff_status_message_fn msg = 0;\n"
        "    (void)run; (void)dims; (void)msg;\n"
        "    if (!FF_DIM_IS_SYMBOL(d) || FF_DIM_SYMBOL_INDEX(d) != 2 || FF_DIM_IS_SYMBOL(FF_DIM_DERIVED)) return 1;\n"
        "    if (ff_dtype_size(FF_DTYPE_FLOAT32) != 4 || ff_dtype_size(FF_DTYPE_BOOL) != 1) return 1;\n"
        "    if (ff_dtype_size(16) != 0 || ff_dtype_name(FF_DTYPE_INT64)[0] != 'i') return 1;\n"
        "    return FF_ABI_VERSION == 1 && FF_INPUT != FF_OUTPUT && FF_OK == 0 ? 0 : 1;\n"
        "}\n")
    exe = tmp_path / "use"
    _compile([compiler, f"-std={std}", "-pedantic", "-Wall", "-Wextra", "-Werror", "-I", str(INCLUDE_DIR),
              str(src), "-o", str(exe)], tmp_path)
    assert subprocess.run([str(exe)], timeout=30).returncode == 0


def _defines() -> dict[str, str]:
    return dict(re.findall(r"^#define (FF_\w+) (\S+)", HEADER.read_text(), re.M))


def test_header_constants_agree_with_the_python_side():
    d = _defines()
    assert int(d["FF_ABI_VERSION"]) == ABI_VERSION == runtime_session.ABI_VERSION
    assert d["FF_LIBRARY_FILE"] == f'"{cpu_compile.LIBRARY}"'
    assert d["FF_WEIGHTS_FILE"] == f'"{cpu_compile.WEIGHTS}"'
    assert int(d["FF_ARENA_ALIGN"]) == ALIGNMENT == runtime_session._ALIGN
    codes = {k[len("FF_DTYPE_"):]: int(v) for k, v in d.items() if k.startswith("FF_DTYPE_")}
    spelled = {"FLOAT32": DType.FLOAT, "FLOAT64": DType.DOUBLE}
    for name, code in codes.items():
        assert spelled.get(name, DType[name] if name in DType.__members__ else None).value == code, name
    # every element type with CPU kernels has a code (fp16/bf16 have none)
    from fuseformer.backends.cpu.renderer import CTYPES
    assert {t.value for t in CTYPES} == set(codes.values())


def _declared_functions() -> list[str]:
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    text = re.sub(r"static inline .*?^}", "", text, flags=re.S | re.M)  # helpers, not exports
    return re.findall(r"^[\w ]+?\**\s*\b(ff_\w+)\(", text, re.M)


def test_every_declared_function_is_exported_and_the_source_includes_the_header(vit):
    declared = _declared_functions()
    assert {"ff_run", "ff_output_shape", "ff_tensor_dims", "ff_status_message", "ff_weights_bytes"} <= set(declared)
    lib = ctypes.CDLL(str(vit / "model.so"))
    missing = [name for name in declared if not hasattr(lib, name)]
    assert not missing
    # the definitions are compiled against the declarations, so a signature drift fails the build
    assert '#include "fuseformer.h"' in (vit / "model.cpp").read_text()


# ---- the library's self-description ----------------------------------------------


def _bind(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.ff_tensor_name.restype = ctypes.c_char_p
    lib.ff_tensor_name.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.ff_tensor_dims.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64)]
    lib.ff_symbol_name.restype = ctypes.c_char_p
    lib.ff_symbol_max.restype = ctypes.c_int64
    lib.ff_status_message.restype = ctypes.c_char_p
    lib.ff_weights_bytes.restype = ctypes.c_int64
    return lib


def _describe(lib: ctypes.CDLL) -> dict:
    """What the library says about itself, in the manifest's terms."""
    symbols = [lib.ff_symbol_name(s).decode() for s in range(lib.ff_symbol_count())]

    def spec(io: int, k: int) -> dict:
        rank = lib.ff_tensor_rank(io, k)
        dims = (ctypes.c_int64 * max(rank, 1))()
        assert lib.ff_tensor_dims(io, k, dims) == 0
        shape = [d if d >= 0 else symbols[-1 - d] for d in dims[:rank]]
        return {"name": lib.ff_tensor_name(io, k).decode(), "dtype": DType(lib.ff_tensor_dtype(io, k)).numpy.name,
                "shape": shape}

    return {
        "inputs": [spec(0, k) for k in range(lib.ff_tensor_count(0))],
        "outputs": [spec(1, k) for k in range(lib.ff_tensor_count(1))],
        "symbols": [{"name": s, "max": lib.ff_symbol_max(i)} for i, s in enumerate(symbols)],
    }


def _check_against_manifest(path: Path) -> ctypes.CDLL:
    manifest = json.loads((path / "manifest.json").read_text())
    lib = _bind(path / "model.so")
    assert _describe(lib) == {k: manifest[k] for k in ("inputs", "outputs", "symbols")}
    for code, message in manifest["status"].items():
        assert lib.ff_status_message(int(code)).decode() == message
    assert lib.ff_status_message(0) == b"ok" and lib.ff_status_message(12345) == b"unknown status code"
    # out of range: NULL names, -1 counts, never a crash
    assert lib.ff_tensor_name(0, 99) is None and lib.ff_tensor_name(7, 0) is None
    assert lib.ff_tensor_count(2) == -1 and lib.ff_tensor_rank(1, -1) == -1
    assert lib.ff_symbol_name(-1) is None and lib.ff_symbol_max(99) == -1
    # the weights data section the library reads is exactly what the file holds after its header
    raw = (path / "weights.safetensors").read_bytes()
    header = int.from_bytes(raw[:8], "little")
    assert lib.ff_weights_bytes() == len(raw) - 8 - header
    return lib


def test_self_description_matches_the_manifest(vit):
    _check_against_manifest(vit)


def test_self_description_returns_hostile_names_byte_exact(tmp_path):
    nasty_in = 'x"\n*/ #include <evil.h> \\??='
    nasty_out = 'out */ "); system("rm -rf /"); // ü名\r'
    g = mlp(nasty_in, nasty_out, graph_name="model */\n#error no", node_prefix='fc"*/\n\\')
    path = compile_cpu(g, tmp_path / "nasty", {"batch": 2})
    lib = _check_against_manifest(path)
    assert lib.ff_tensor_name(0, 0).decode() == nasty_in and lib.ff_tensor_name(1, 0).decode() == nasty_out
    source = (path / "model.cpp").read_text()
    for line in source.splitlines():  # the names are tables of numbers, not string literals
        code = line.split("//", 1)[0]
        assert "evil" not in code and "system" not in code and "??=" not in code


def test_derived_output_dims_are_marked(tmp_path):
    g = Graph("concat")
    x = g.add_input("x", DType.FLOAT, (Sym("seq"), 3))
    g.outputs.append(g.make_node(Op.Concat, [x, x], A.ConcatAttrs(axis=0), output_names=["y"]).output)
    lib = _bind(compile_cpu(g, tmp_path / "concat", {"seq": 4}) / "model.so")
    dims = (ctypes.c_int64 * 2)()
    assert lib.ff_tensor_dims(1, 0, dims) == 0
    assert list(dims) == [-(2**63), 3]  # FF_DIM_DERIVED: 2 * seq
    assert lib.ff_tensor_dims(0, 0, dims) == 0 and list(dims) == [-1, 3]  # FF_DIM_SYMBOL(0)


# ---- the example program -----------------------------------------------------------


@pytest.mark.parametrize("batch", [2, 1])
def test_c_program_matches_the_python_runtime_bit_for_bit_and_onnxruntime(vit, runner, tmp_path, batch):
    import onnxruntime as ort

    manifest = json.loads((vit / "manifest.json").read_text())
    pixels = randn(np.random.default_rng(batch), batch, 3, 32, 32)
    pixels.tofile(tmp_path / "pixels.bin")
    proc = run_c(runner, vit, "-d", f"batch={batch}", "-i", str(tmp_path / "pixels.bin"), "-o",
                 str(tmp_path / "out"), "-t", str(THREADS), "-r", "3")
    with load(vit, threads=THREADS) as session:
        want = session.run({"pixel_values": pixels})
    got = read_outputs(tmp_path / "out", manifest, [w.shape for w in want.values()])
    for name, ref in want.items():
        assert got[name].tobytes() == ref.tobytes(), f"{name}: the C host and the Python runtime differ"
    ort_session = ort.InferenceSession(str(TINY_VIT), providers=["CPUExecutionProvider"])
    for name, ref in zip(manifest["outputs"], ort_session.run(None, {"pixel_values": pixels})):
        np.testing.assert_allclose(got[name["name"]], ref, atol=1e-4, rtol=1e-4, err_msg=name["name"])
    lines = proc.stdout.splitlines()
    assert 'input 0 "pixel_values" float32 ["batch", 3, 32, 32]' in lines
    assert f'symbol 0 "batch" = {batch} (max 2)' in lines
    assert any(line.startswith(f'result 1 "pooler_output" float32 [{batch}, 64] sum=') for line in lines)
    assert lines[-1].startswith("latency: median ") and lines[-1].endswith("over 3 runs")


def test_c_program_without_inputs_is_deterministic(vit, runner):
    first, second = run_c(runner, vit, "-t", "1"), run_c(runner, vit, "-t", "1")
    results = [line for line in first.stdout.splitlines() if line.startswith("result ")]
    assert len(results) == 2
    assert results == [line for line in second.stdout.splitlines() if line.startswith("result ")]


def test_c_program_reports_the_status_message_of_a_refused_input(tmp_path, runner):
    g = Graph("gather")
    ids = g.add_input("ids", DType.INT64, (Sym("seq"),))
    table = g.add_constant(randn(np.random.default_rng(0), 5, 2), "table")
    g.outputs.append(g.make_node(Op.Gather, [table, ids], name="embed").output)
    path = compile_cpu(g, tmp_path / "gather", {"seq": 4})
    np.array([0, 9, 1], np.int64).tofile(tmp_path / "ids.bin")
    proc = run_c(runner, path, "-d", "seq=3", "-i", str(tmp_path / "ids.bin"), check=False)
    assert proc.returncode == 1
    assert re.search(r"status \d+\): node embed \(Gather\): an index is out of range", proc.stderr), proc.stderr


@pytest.mark.parametrize("args, message, code", [
    (["-d", "batch=3"], "batch=3 is above the compiled maximum 2", 2),
    (["-d", "seq=3"], "no such symbolic dim; it has: batch", 2),
    (["-d", "batch=0"], "0 is not a number in [1,", 2),
    (["-i", "__short__"], "holds 12 bytes; the input needs 24576 (6144 elements of float32)", 1),
    (["-x"], "usage: run_artifact", 2),
])
def test_c_program_refuses_bad_arguments_clearly(vit, runner, tmp_path, args, message, code):
    (tmp_path / "short.bin").write_bytes(b"\0" * 12)
    args = [str(tmp_path / "short.bin") if a == "__short__" else a for a in args]
    proc = run_c(runner, vit, *args, check=False)
    assert proc.returncode == code and message in proc.stderr, proc.stderr


def test_c_program_refuses_a_truncated_weights_file(vit, runner, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(vit, broken)
    weights = broken / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    proc = run_c(runner, broken, check=False)
    assert proc.returncode == 1 and "is shorter than the model's weights" in proc.stderr
    weights.write_bytes(b"\xff" * 16)  # a header length far past the end
    proc = run_c(runner, broken, check=False)
    assert proc.returncode == 1 and "truncated inside its JSON header" in proc.stderr
