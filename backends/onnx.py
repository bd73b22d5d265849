"""IR -> ONNX. Checked with onnx.checker (full), runnable by onnxruntime.

The IR's ONNX ops are written as they are, at the lowest opset that spells
them (the source model's, raised where the IR's normalized form needs it),
with only non-default attributes. fuseformer's
own ops are lowered to standard ONNX by ``onnx_lowering``. Weights past
``EXTERNAL_THRESHOLD`` bytes in total go to one external data file, streamed
tensor by tensor, so a model over 2 GB is never held twice in memory.
"""
from __future__ import annotations

import functools
import os
import shutil
import uuid
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from ..ir.errors import FuseformerError
from ..ir.graph import Graph
from ..ir.node import Node
from ..ir.op import REDUCTIONS, Op
from ..ir.shape import Shape, Sym
from ..ir.tensor import Tensor
from ..ir.value import Value
from .onnx_lowering import lower_node
from .onnx_native import native_node

# protobuf's hard limit is 2 GiB; stay well below it with the graph structure included
EXTERNAL_THRESHOLD = 1 << 30
_MIN_EXTERNAL_TENSOR = 1024


def required_opset(graph: Graph) -> int:
    """The lowest opset that spells every node as the IR holds it (at least the source's)."""
    need = max(graph.opset, 13)
    for node in graph.nodes:
        need = max(need, _node_opset(node))
    return need


class OpsetError(FuseformerError, ValueError):
    """An --opset the graph cannot be written at, or onnxruntime cannot run."""


@functools.lru_cache(maxsize=None)
def _runtime_runs_opset(opset: int) -> bool:
    """Whether the installed onnxruntime loads a model of this opset (a trivial one)."""
    import onnxruntime as ort

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = min(m.ir_version, 10)
    try:
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return True
    except Exception:
        return False


def check_opset(opset: int, need: int) -> None:
    if opset < need:
        raise OpsetError(f"the optimized graph needs opset {need} or newer; --opset {opset} was asked for")
    if opset > onnx.defs.onnx_opset_version() or not _runtime_runs_opset(opset):
        raise OpsetError(f"opset {opset} is newer than the installed onnx/onnxruntime run "
                         f"(onnx knows up to {onnx.defs.onnx_opset_version()})")


def _node_opset(node: Node) -> int:
    op = node.op
    if op in REDUCTIONS and op is not Op.ReduceSum and node.input(1) is not None:
        return 18  # axes became an input in 18 (ReduceSum: 13)
    if op is Op.Split and node.attrs.num_outputs is not None:
        return 18
    if op is Op.Pad and node.input(3) is not None:
        return 18
    if op is Op.Resize and (node.attrs.antialias or node.attrs.axes
                            or node.attrs.keep_aspect_ratio_policy != "stretch"):
        return 18
    if op is Op.Gelu:
        return 20
    if op is Op.GroupNormalization:
        return 21
    if op is Op.LayerNormalization:
        return 17
    if op in (Op.RMSNorm, Op.SkipRMSNorm):
        return 18  # the decomposition's ReduceMean takes axes as an input
    if op is Op.SkipLayerNorm:
        return 17  # decomposed to Add + LayerNormalization
    if op is Op.Attention and node.attrs.causal:
        return 14  # the decomposition's causal band is a Trilu
    if op.domain:
        return 20 if node.attrs.items() and getattr(node.attrs, "activation", "") in ("gelu", "gelu_tanh") else 13
    return 13


def to_model(graph: Graph, *, opset: int | None = None, external: dict | None = None) -> onnx.ModelProto:
    """Build a ModelProto at ``opset`` (default: ``required_opset(graph)``).

    ``external`` (name -> (location, offset, length)) marks tensors stored outside.
    """
    need = required_opset(graph)
    if opset is None:
        opset = need
    else:
        check_opset(opset, need)
    nodes: list[onnx.NodeProto] = []
    extra_inits: list[TensorProto] = []
    for node in graph.nodes:
        if node.op.domain:
            lowered, inits = native_node(node, opset) or lower_node(node, graph)
            nodes.extend(lowered)
            extra_inits.extend(inits)
        else:
            nodes.append(_node(node))
    initializers = [_initializer(v, external) for v in graph.constants.values()] + extra_inits
    value_info = [_value_info(v) for n in graph.nodes for v in n.outputs
                  if v not in graph.outputs and v.uses]
    g = helper.make_graph(
        nodes, graph.name,
        [_value_info(v) for v in graph.inputs],
        [_value_info(v) for v in graph.outputs],
        initializers, value_info=value_info)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="fuseformer", producer_version=__version__)
    model.ir_version = min(model.ir_version, 10)  # what onnxruntime 1.20+ reads
    return model


def save_onnx(graph: Graph, path: str | os.PathLike, *, opset: int | None = None,
              check: bool = True, progress: Callable[[str], None] | None = None,
              before_commit: Callable[[Path], None] | None = None) -> Path:
    """Write ``graph`` to ``path`` atomically (and a ``<name>.<id>.data`` file when weights are large).

    Nothing appears at ``path`` unless the whole model was written, passed
    ``onnx.checker`` with full_check (with ``check``), and ``before_commit``
    (given the temporary file, e.g. a numerical verification) returned. The
    data file has a fresh name, so it never replaces data that another model
    (the input, or the model being overwritten) still reads; the model file
    is switched last, in one rename, and the data of the model it replaced
    is removed afterwards.
    """
    progress = progress or (lambda _: None)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    placed_data: Path | None = None
    try:
        data_name = f"{path.name}.{uuid.uuid4().hex[:8]}.data"
        external = None
        if graph.weight_bytes() > EXTERNAL_THRESHOLD:
            progress(f"streaming {graph.weight_bytes() / 2**30:.2f} GiB of weights to {data_name}")
            external = _write_external(graph, tmp / data_name, data_name)
        model = to_model(graph, opset=opset, external=external)
        out = tmp / path.name
        with open(out, "wb") as f:
            f.write(model.SerializeToString())
        if check:
            progress("checking with onnx.checker (full)")
            onnx.checker.check_model(str(out), full_check=True)
        if before_commit is not None:
            before_commit(out)
        stale = _own_data_files(path) - _external_files(graph)
        if external is not None:
            placed_data = path.parent / data_name
            os.replace(tmp / data_name, placed_data)
        os.replace(out, path)
        placed_data = None
        for old in stale:
            if old.name != data_name:
                old.unlink(missing_ok=True)
    finally:
        if placed_data is not None:  # the model never switched to it
            placed_data.unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _own_data_files(path: Path) -> set[Path]:
    """The external data files the model now at ``path`` reads (if it is one of ours to replace)."""
    if not path.is_file():
        return set()
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        return set()
    files = set()
    for t in model.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                files.add((path.parent / e.value).resolve())
    return files


def _external_files(graph: Graph) -> set[Path]:
    """Files the graph's own constants are memory-mapped from (never to be deleted)."""
    return {Path(v.const.external.path).resolve() for v in graph.constants.values() if v.const.external}


def _write_external(graph: Graph, file: Path, location: str) -> dict:
    placed = {}
    offset = 0
    with open(file, "wb") as f:
        for v in graph.constants.values():
            if v.const.nbytes < _MIN_EXTERNAL_TENSOR:
                continue
            pad = (-offset) % 64  # aligned so the data can be memory-mapped directly
            f.write(b"\0" * pad)
            offset += pad
            arr = np.ascontiguousarray(v.const.numpy())
            for chunk in np.array_split(arr.reshape(-1), max(1, arr.nbytes >> 26)):
                f.write(chunk.tobytes())
            placed[v.name] = (location, offset, v.const.nbytes)
            offset += v.const.nbytes
    return placed


def _initializer(v: Value, external: dict | None) -> TensorProto:
    if external and v.name in external:
        location, offset, length = external[v.name]
        t = TensorProto(name=v.name, data_type=v.const.dtype.value, dims=v.const.shape)
        t.data_location = TensorProto.EXTERNAL
        for k, val in (("location", location), ("offset", str(offset)), ("length", str(length))):
            t.external_data.add(key=k, value=val)
        return t
    return tensor_proto(v.const, v.name)


def tensor_proto(t: Tensor, name: str) -> TensorProto:
    return numpy_helper.from_array(np.asarray(t.numpy()), name)


def _node(node: Node) -> onnx.NodeProto:
    attrs = {}
    for key, value in node.attrs.non_default():
        if value is None:
            continue
        if isinstance(value, Tensor):
            value = tensor_proto(value, key)
        elif isinstance(value, tuple):
            value = list(value)
        attrs[key] = value
    return helper.make_node(node.op.value, [_name(v) for v in node.inputs],
                            [v.name for v in node.outputs], name=node.name, **attrs)


def _name(v: Value | None) -> str:
    return "" if v is None else v.name


def _value_info(v: Value) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(v.name, v.dtype.value, _dims(v.shape))


def _dims(shape: Shape):
    if shape is None:
        return None
    return [d.name if isinstance(d, Sym) else d for d in shape]
