"""The official ONNX backend node tests, compiled for the CPU backend and run.

The same cases as tests/ir/test_onnx_backend.py (the reference interpreter), less
the ops and forms the CPU backend has no kernel for, each listed in ``EXCLUDE_CPU``
with its reason. Each case is imported (frontends/onnx.py) and compiled without
optimize_graph: the node's own kernel is under test, and compile_cpu must take
unoptimized graphs.

Inputs a deployed model holds as constants (shapes, axes, pads, split sizes ...)
are graph inputs in many node tests; the CPU backend plans its buffers at compile
time, so those are bound from the case's data as initializers first (``STATIC_INPUTS``).

Compile time: one g++ run costs 0.6 s or more, nearly all of it parsing the kernel
headers; one compile per case (~630) took 12 minutes on 2 busy cores with a cold
cache. The node cases are compiled in chunks instead: ``CHUNK`` cases in name order,
each lowered alone first, the ones that lower merged into one graph (names prefixed
``c<k>_``) and compiled once: 21 compiles, about a minute cold, 20 s warm. A case
outside a chunk (not a node case, symbolic dims, fails to lower), whose chunk fails
to build, or whose chunk's run a kernel refuses, is compiled alone: a failure is
always reported by the case that causes it.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import re
import tempfile
import unittest
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnx.backend.test
import pytest
from onnx import numpy_helper
from onnx.backend.base import Backend, BackendRep
from onnx.backend.test.loader import load_node_model_tests

from fuseformer.backends.cpu import compile_cpu
from fuseformer.backends.cpu.errors import CpuCompileError
from fuseformer.backends.cpu.lowering import lower_graph
from fuseformer.backends.cpu.symexpr import Bounds
from fuseformer.frontends.onnx import MIN_OPSET, from_model
from fuseformer.ir.graph import Graph
from fuseformer.ir.node import Node
from fuseformer.ir.op import REDUCTIONS
from fuseformer.ir.shape import Sym
from fuseformer.ir.value import Value
from fuseformer.runtime import load
from fuseformer.runtime.session import RunError, Session

from ..ir.test_onnx_backend import EXCLUDE as INTERPRETER_EXCLUDE
from ..ir.test_onnx_backend import INCLUDE

CHUNK = 30

# op type -> the input slots the CPU backend reads at compile time
STATIC_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Squeeze": (1,), "Unsqueeze": (1,), "Split": (1,), "Pad": (1, 2, 3),
    "Resize": (1, 2, 3), "TopK": (1,), "OneHot": (1,), "CumSum": (1,), "Trilu": (1,),
    "Dropout": (1, 2), **{op.value: (1,) for op in REDUCTIONS},
}

# what the CPU backend does not do that the interpreter does (test_excluded_cases_fail_to_lower
# checks that each still fails, so an op that gains a kernel leaves this list)
EXCLUDE_CPU: dict[str, str] = {
    r"test_resize_": "no CPU kernel for Resize",
    r"test_convtranspose": "no CPU kernel for ConvTranspose",
    r"test_(averagepool|maxpool)_3d_": "pooling over 3 spatial dims (the pooling kernels take 1 or 2)",
    r"test_maxpool_2d_uint8": "MaxPool on uint8 (the pooling kernels are float32 only)",
    r"test_batchnorm_": "no CPU kernel for BatchNormalization: optimize_graph rewrites it to an affine "
                        "map (passes/reparam/batchnorm.py)",
    r"test_instancenorm_": "no CPU kernel for InstanceNormalization",
    r"test_group_normalization_": "no CPU kernel for GroupNormalization",
    r"test_lpnormalization_": "no CPU kernel for LpNormalization",
    r"test_nonzero_": "NonZero's output shape depends on the data; the CPU backend plans shapes at "
                      "compile time",
    r"test_range_float_": "Range of floats (the CPU backend computes integer ranges, i.e. shape arithmetic)",
}

EXCLUDE = {**INTERPRETER_EXCLUDE, **EXCLUDE_CPU}


# ---- one case: ONNX model + data -> IR graph and feeds ---------------------------------
@dataclass
class Prepared:
    graph: Graph
    feeds: dict[str, np.ndarray]
    static: dict[str, np.ndarray]  # the inputs bound as initializers


def upgrade(model: onnx.ModelProto) -> onnx.ModelProto:
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset >= MIN_OPSET:
        return model
    # fuseformer reads opset 13+; older cases still test the op after onnx's own upgrade
    try:
        return onnx.version_converter.convert_version(model, MIN_OPSET)
    except Exception as e:
        raise unittest.SkipTest(f"opset {opset} case does not upgrade to {MIN_OPSET}: {e}") from e


def prepare(model: onnx.ModelProto, inputs) -> Prepared:
    """Bind ``model``'s shape-like inputs to their values in ``inputs`` and import it."""
    names = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
    wanted = {node.input[i] for node in model.graph.node
              for i in STATIC_INPUTS.get(node.op_type, ()) if i < len(node.input) and node.input[i]}
    bound = onnx.ModelProto.FromString(model.SerializeToString())
    feeds, static = {}, {}
    for name, arr in zip(names, inputs):
        if name in wanted:
            static[name] = np.asarray(arr)
            bound.graph.initializer.append(numpy_helper.from_array(static[name], name))
        else:
            feeds[name] = arr
    graph = from_model(bound)
    graph.verify()
    return Prepared(graph, feeds, static)


def symbolic_dims(p: Prepared) -> dict[str, int]:
    """The fed size of every symbolic input dim (node tests compile for the data they run)."""
    dims: dict[str, int] = {}
    for v in p.graph.inputs:
        for d, n in zip(v.shape, np.shape(p.feeds[v.name])):
            if isinstance(d, Sym):
                dims[d.name] = max(dims.get(d.name, 1), n)
    return dims


def run_alone(p: Prepared) -> tuple[np.ndarray, ...]:
    with tempfile.TemporaryDirectory(prefix="ff-node-") as tmp:
        path = compile_cpu(p.graph, Path(tmp) / "art", symbolic_dims(p))
        with load(path) as session:
            return tuple(session.run(p.feeds).values())


# ---- chunks: many node cases in one compiled graph -------------------------------------
def merge(graphs: list[Graph]) -> Graph:
    """One graph holding ``graphs`` side by side; graph k's names get the prefix ``c<k>_``."""
    g = Graph("node_tests")
    for k, sub in enumerate(graphs):
        p = f"c{k}_"
        vmap: dict[int, Value] = {}
        for v in sub.inputs:
            vmap[id(v)] = g.add_input(p + v.name, v.dtype, v.shape)
        for v in sub.constants.values():
            vmap[id(v)] = g.add_constant(v.const, p + v.name)
        for n in sub.nodes:
            outs = [Value(p + o.name, o.dtype, o.shape) for o in n.outputs]
            vmap.update((id(o), no) for o, no in zip(n.outputs, outs))
            g.insert(Node(n.op, [None if v is None else vmap[id(v)] for v in n.inputs], outs,
                          n.attrs, p + n.name))
        g.outputs.extend(vmap[id(v)] for v in sub.outputs)
    g.verify()
    return g


def _matches(name: str, patterns) -> bool:
    return any(re.search("(?i)" + pattern, name + "_cpu") for pattern in patterns)


@functools.cache
def node_cases(exclude: tuple[str, ...] = tuple(EXCLUDE)) -> dict[str, object]:
    """The included node cases (onnx's TestCase) less ``exclude``, by name, in name order."""
    cases = sorted(load_node_model_tests(), key=lambda c: c.name)
    return {c.name: c for c in cases if re.search(INCLUDE, c.name + "_cpu") and not _matches(c.name, exclude)}


def data_inputs(case) -> list[np.ndarray]:
    # some cases hold their data as TensorProto (the runner converts them the same way)
    return [numpy_helper.to_array(x) if isinstance(x, onnx.TensorProto) else x for x in case.data_sets[0][0]]


@dataclass
class Chunk:
    session: Session | None
    prefix: dict[str, str]  # case name -> its prefix in the merged graph
    prepared: dict[str, Prepared]

    def run(self, name: str, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        merged = {}
        for case, p in self.prepared.items():
            mine = feeds if case == name else p.feeds
            merged.update((self.prefix[case] + k, v) for k, v in mine.items())
        out = self.session.run(merged)
        return tuple(out[self.prefix[name] + o.name] for o in self.prepared[name].graph.outputs)


def _lowers(p: Prepared) -> bool:
    try:
        lower_graph(p.graph, Bounds({}))
    except CpuCompileError:
        return False
    return True


@contextlib.contextmanager
def _build_lock(index: int):
    # the pytest-xdist workers may reach one chunk together: the second waits for the
    # first's build and then finds the library in the build cache
    root = Path(tempfile.gettempdir()) / "fuseformer-node-chunks"
    root.mkdir(exist_ok=True)
    with open(root / f"{index}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_WORK = tempfile.TemporaryDirectory(prefix="ff-node-chunks-")


@functools.cache
def chunk(index: int) -> Chunk:
    names = list(node_cases())[index * CHUNK:(index + 1) * CHUNK]
    members: dict[str, Prepared] = {}
    for name in names:
        case = node_cases()[name]
        try:
            p = prepare(upgrade(case.model), data_inputs(case))
        except Exception:  # noqa: BLE001  (the case reports it when it runs alone)
            continue
        if not any(isinstance(d, Sym) for v in p.graph.inputs for d in v.shape) and _lowers(p):
            members[name] = p
    prefix = {name: f"c{k}_" for k, name in enumerate(members)}
    if not members:
        return Chunk(None, {}, {})
    graph = merge(list(p.graph for p in members.values()))
    try:
        with _build_lock(index):
            path = compile_cpu(graph, Path(_WORK.name) / f"chunk{index}", {})
    except CpuCompileError:
        return Chunk(None, {}, {})
    return Chunk(load(path), prefix, members)


def run_in_chunk(name: str, p: Prepared) -> tuple[np.ndarray, ...] | None:
    """The case's outputs from its chunk's library, or None when it has to run alone."""
    names = list(node_cases())
    if name not in node_cases():
        return None
    c = chunk(names.index(name) // CHUNK)
    member = c.prepared.get(name)
    if c.session is None or member is None or member.static.keys() != p.static.keys() or not all(
            np.array_equal(member.static[k], p.static[k]) for k in p.static):
        return None
    try:
        return c.run(name, p.feeds)
    except RunError:  # a kernel refused its data: alone, the case that did it reports it
        return None


# ---- the onnx backend interface ---------------------------------------------------------
class CpuRep(BackendRep):
    """Compiles at the first ``run``, when the static inputs' values are known."""

    def __init__(self, model: onnx.ModelProto):
        self.model = model

    def run(self, inputs, **kwargs):
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        p = prepare(self.model, list(inputs))
        out = run_in_chunk(self.model.graph.name, p)
        return out if out is not None else run_alone(p)


class CpuBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs) -> CpuRep:
        return CpuRep(upgrade(model))

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


backend_test = onnx.backend.test.BackendTest(CpuBackend, __name__)
backend_test.include(INCLUDE)
for pattern in EXCLUDE:
    backend_test.exclude("(?i)" + pattern)

globals().update(backend_test.test_cases)


def test_excluded_cases_fail_to_lower():
    """Each EXCLUDE_CPU group matches cases and each of them is still refused with a reason."""
    cases = node_cases(tuple(INTERPRETER_EXCLUDE))
    for pattern, reason in EXCLUDE_CPU.items():
        hits = [c for name, c in cases.items() if _matches(name, [pattern])]
        assert hits, f"EXCLUDE_CPU {pattern!r} ({reason}) matches no case: remove it"
        for case in hits:
            try:
                p = prepare(upgrade(case.model), data_inputs(case))
            except unittest.SkipTest:
                continue
            with pytest.raises(CpuCompileError):
                lower_graph(p.graph, Bounds(symbolic_dims(p)))
