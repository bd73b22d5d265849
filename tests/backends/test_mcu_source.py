"""What the generated C99 must and must not contain, model names made safe, budgets and reports.

Source-text checks (one static arena of exactly the planned size, const weights, no
malloc, nothing from libc but <math.h>/<string.h>), exact weights, escaping of hostile
names, the budget miss that writes nothing, and the memory report.
"""
from __future__ import annotations

import ctypes
import json
import re
import subprocess

import numpy as np
import pytest

from fuseformer.backends.mcu import BudgetError, compile_mcu, parse_size
from fuseformer.backends.mcu.ctext import c_identifier, c_string
from fuseformer.backends.mcu.host import STRICT, HostModel, build
from fuseformer.backends.mcu.kernels import closure, library
from fuseformer.ir import DType, Graph, Op
from fuseformer.ir import attrs as A
from fuseformer.passes.memory.plan import naive_plan

from .mcu_checks import check_against_interpreter, needs_gcc, randn

RNG = np.random.default_rng(3)
F32 = DType.FLOAT
LIBM_AND_STRING = {"memcpy", "memmove", "memset", "expf", "logf", "sqrtf", "tanhf", "erff", "expm1f",
                   "log1pf", "fabsf", "fmodf", "powf", "sinf", "cosf", "floorf", "ceilf", "nearbyintf"}


def small_graph() -> Graph:
    g = Graph("small")
    x = g.add_input("x", F32, (3, 8))
    h = g.make_node(Op.Linear, [x, g.add_constant(randn(RNG, 8, 6), "w"), g.add_constant(randn(RNG, 6), "b")],
                    A.LinearAttrs(activation="gelu")).output
    g.outputs.append(g.make_node(Op.Softmax, [h]).output)
    return g


@needs_gcc
def test_source_is_plain_c99_with_one_static_arena(tmp_path):
    g = small_graph()
    plan = naive_plan(g)
    path = check_against_interpreter(g, {"x": randn(RNG, 3, 8)}, tmp_path / "art", plan=plan)
    source, header = (path / "model.c").read_text(), (path / "model.h").read_text()
    assert f"unsigned char bytes[{plan.arena_bytes}];" in source
    assert len(re.findall(r"^static union", source, re.M)) == 1  # the one arena
    assert re.search(r"^static const float w0\[48\] = \{$", source, re.M)
    assert re.search(r"0x1\.[0-9a-f]*p[-+]\d+f", source)  # exact hexadecimal weights
    for banned in ("malloc", "calloc", "realloc", "free(", "printf", "stdio", "stdlib", "alloca("):
        assert banned not in source + header, banned
    assert set(re.findall(r"#include (\S+)", source)) == {'"model.h"', "<math.h>", "<string.h>"}
    assert re.findall(r"#include (\S+)", header) == ["<stdint.h>"]
    assert f"#define MODEL_ARENA_BYTES {plan.arena_bytes}" in header
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["target"] == "mcu" and manifest["arena_bytes"] == plan.arena_bytes
    assert manifest["kernels"] == ["ff_act_gelu", "ff_linear", "ff_softmax"]
    # nothing from libc but <math.h> and <string.h>
    obj = tmp_path / "model.o"
    subprocess.run(["gcc", *STRICT, "-O0", "-c", str(path / "model.c"), "-I", str(path), "-o", str(obj)],
                   check=True)
    undefined = set(subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True,
                                   check=True).stdout.split()) - {"U"}
    assert undefined and undefined <= LIBM_AND_STRING, undefined - LIBM_AND_STRING


@needs_gcc
def test_weights_are_bit_exact(tmp_path):
    special = np.array([0.0, -0.0, 1.0, -1.0, 1e-45, 1.1754944e-38, 3.4028235e38, -3.4028235e38, np.inf,
                        -np.inf, np.nan, 0.1, np.pi, 2.0**-130, 65504.0], np.float32)
    values = np.concatenate([special, randn(RNG, 100) * 1e3]).astype(np.float32)
    ints = np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max], np.int64)
    g = Graph("exact")
    for name, arr in (("f", values), ("i", ints), ("b", np.array([True, False, True]))):
        g.outputs.append(g.make_node(Op.Identity, [g.add_constant(arr, name)]).output)
    with HostModel(compile_mcu(g, tmp_path / "art")) as model:
        got = model.run({})
    assert np.array_equal(got["Identity_out"].view(np.uint32)[~np.isnan(values)],
                          values.view(np.uint32)[~np.isnan(values)])
    assert np.isnan(got["Identity_out"][np.isnan(values)]).all()
    assert np.array_equal(got["Identity_1_out"], ints) and got["Identity_2_out"].tolist() == [1, 0, 1]


HOSTILE = ['in"put\n*/ ??/ \\', "int", "2x", "a-b", "a_b", "ü名\u2028", "x\nint evil(void) { return 0; }"]


@needs_gcc
def test_model_names_cannot_break_the_source(tmp_path):
    g = Graph('graph */ "\n')
    ins = [g.add_input(n, F32, (2,)) for n in HOSTILE]
    total = ins[0]
    for k, v in enumerate(ins[1:]):
        total = g.make_node(Op.Add, [total, v], name=f'add{k} */\n"??/').output
    scaled = g.make_node(Op.Mul, [total, g.add_constant(np.float32(2), 'w "*/\n')], name="mul\\").output
    g.outputs.append(scaled)
    scaled.name = "out*/\n\"x"
    feeds = {n: randn(RNG, 2) for n in HOSTILE}
    path = check_against_interpreter(g, feeds, tmp_path / "art")
    library = build(path, tmp_path / "model.so")
    lib = HostModel(path, library)
    names = (ctypes.c_char_p * len(HOSTILE)).in_dll(lib.lib, "model_input_names")
    assert [n.decode("utf-8") for n in names] == HOSTILE
    assert (ctypes.c_char_p * 1).in_dll(lib.lib, "model_output_names")[0].decode() == "out*/\n\"x"
    taken: set[str] = set()
    idents = [c_identifier(n, taken) for n in HOSTILE]
    assert idents == ["in_put", "t_int", "t_2x", "a_b", "a_b_2", "t", "x_int_evil_void_return_0"]
    for ident in idents:
        getattr(lib.lib, f"model_input_{ident}")  # every accessor exists under its safe name
    nm = subprocess.run(["nm", str(library)], capture_output=True, text=True, check=True).stdout
    assert "evil" not in {line.split()[-1] for line in nm.splitlines()}  # the name never became code


def test_escaping_helpers():
    assert c_string('a"b\\c\n?') == '"a\\042b\\134c\\012\\077"'
    assert c_string("ü") == '"\\303\\274"'
    taken: set[str] = set()
    assert [c_identifier(n, taken) for n in ("A", "a", "_x_", "__y", "")] == ["A", "a_2", "x", "y", "t"]


def test_parse_size_is_binary():
    assert parse_size("320KB") == parse_size("320K") == parse_size("320kib") == 320 * 1024
    assert parse_size("0.5MB") == 512 * 1024 and parse_size("327680") == 327680
    assert parse_size(" 1.5 KB ") == 1536
    for bad in ("12XB", "-1", "0", "0.3B", "", "KB", "1e3"):
        with pytest.raises(ValueError, match="memory size"):
            parse_size(bad)


@pytest.mark.parametrize("given_plan", [False, True], ids=["planner", "given-plan"])
def test_budget_miss_names_the_peak_and_writes_nothing(tmp_path, given_plan):
    g = small_graph()
    out = tmp_path / "art"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier output stays")
    plan = naive_plan(g) if given_plan else None
    with pytest.raises(BudgetError) as info:
        compile_mcu(g, out, budget=64, plan=plan)
    message = str(info.value)
    # the planner's words or the backend's: both name the budget, the peak step and its
    # node, the tensors live there and the smallest budget reachable
    assert re.search(r"(?i)over the (memory budget of 64 bytes|0\.1 KB budget)", message)
    assert re.search(r"step \d+, node \w+ \((fuseformer::Linear|Softmax)\)", message)
    assert "Linear_out" in message and re.search(r"(?i)smallest budget", message)
    assert re.search(r"(?i)nothing was written", message)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@needs_gcc
def test_report_draws_the_timeline(tmp_path):
    path = compile_mcu(small_graph(), tmp_path / "art", budget=4096, report=True)
    assert (path / "memory.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (path / "memory.txt").read_text()
    assert "Linear" in table and "Softmax" in table and re.search(r"peak [\d,]+ bytes live at step", table)
    assert json.loads((path / "manifest.json").read_text())["files"]["report"]["path"] == "memory.png"


@needs_gcc
def test_kernel_library_compiles_on_its_own(tmp_path):
    sections = closure(list(library()))
    assert [s.name for s in sections] == list(library())  # dependencies come first
    text = "#include <math.h>\n#include <stdint.h>\n#include <string.h>\n" + "\n".join(s.text for s in sections)
    (tmp_path / "lib.c").write_text(text + "\n")
    subprocess.run(["gcc", *STRICT, "-Wno-unused-function", "-c", str(tmp_path / "lib.c"), "-o",
                    str(tmp_path / "lib.o")], check=True)


@needs_gcc
def test_port_names_never_collide_with_the_api(tmp_path):
    # inputs named like the fixed API ("names") or like another port's macro ("x" and
    # "x_numel") once gave a redefined macro or a clash with model_input_names[]; and an
    # n-ary Sum of 30 inputs once ran out of single-letter operand names
    g = Graph("ports")
    xs = [g.add_input(name, F32, (2, 3)) for name in ("x", "x_numel", "names", "shapes")]
    more = [g.add_input(f"in{k}", F32, (2, 3)) for k in range(26)]
    total = g.make_node(Op.Sum, xs + more).output
    g.outputs.append(g.make_node(Op.Relu, [total], output_names=["ranks"]).output)
    feeds = {v.name: randn(RNG, 2, 3) for v in g.inputs}
    path = check_against_interpreter(g, feeds, tmp_path / "art", plan=naive_plan(g))
    header = (path / "model.h").read_text()
    macros = re.findall(r"^#define (\w+) ", header, re.M)
    assert len(macros) == len(set(macros))
    assert "MODEL_INPUT_INDEX_X " in header and "MODEL_INPUT_NUMEL_X_NUMEL " in header
    functions = re.findall(r"\b(model_\w+)\(void\);", header)
    assert "model_input_names" not in functions and "model_output_ranks" not in functions
