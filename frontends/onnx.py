"""ONNX -> IR. Any exporter, default-domain opset 13 and newer, external data memory-mapped.

Legacy forms are normalized on the way in so the IR has one spelling per op:
axes given as attributes (Reduce* before opset 18, Squeeze/Unsqueeze/Split
before 13) become constant inputs, Constant nodes become constants, and
GroupNormalization's per-group scale (opset 18-20) becomes per-channel.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from ..ir.dtype import DType
from ..ir.errors import ModelError
from ..ir.graph import Graph
from ..ir.infer import infer_types
from ..ir.node import Node
from ..ir.op import REDUCTIONS, Op
from ..ir.shape import Shape, Sym
from ..ir.tensor import ExternalLocation, Tensor
from ..ir.value import Value

MIN_OPSET = 13
_MAX_OPSET = onnx.defs.onnx_opset_version()


def load_onnx(path: str | os.PathLike, *, progress: Callable[[str], None] | None = None) -> Graph:
    """Read an ONNX file into the IR. Raises ModelError naming the node on anything unsupported.

    Example:
        >>> graph = load_onnx("model.onnx")
        >>> graph.verify()
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as e:
        raise ModelError(f"{path}: not a readable ONNX model (truncated or corrupt protobuf: {e})") from e
    except Exception as e:
        raise ModelError(f"{path}: cannot be read as ONNX: {type(e).__name__}: {e}") from e
    if not model.HasField("graph"):
        raise ModelError(f"{path}: not an ONNX model (no graph); truncated or a different file type")
    return from_model(model, base_dir=path.parent, progress=progress, source=str(path))


def from_model(model: onnx.ModelProto, base_dir: str | os.PathLike | None = None, *,
               progress: Callable[[str], None] | None = None, source: str = "<model>") -> Graph:
    """Convert a ModelProto (external data resolved against ``base_dir``)."""
    return _Importer(model, Path(base_dir) if base_dir else None, progress or (lambda _: None), source).run()


class _Importer:
    def __init__(self, model: onnx.ModelProto, base_dir: Path | None, progress, source: str):
        self.model = model
        self.base_dir = base_dir
        self.progress = progress
        self.source = source
        self.opset = self._check_opset()
        self.graph = Graph(model.graph.name or "main")
        self.graph.opset = self.opset
        self.values: dict[str, Value] = {}
        self.types: dict[str, tuple[DType | None, Shape]] = {}

    # ---- driver ---------------------------------------------------------------
    def run(self) -> Graph:
        self.progress("running ONNX shape inference")
        self._read_types(self._inferred())
        g = self.model.graph
        self.graph.metadata = {"producer": self.model.producer_name, "source": self.source,
                               **{p.key: p.value for p in self.model.metadata_props}}
        initializer_names = {t.name for t in g.initializer}
        for vi in g.input:
            if vi.name not in initializer_names:
                self._add_input(vi)
        self.progress(f"reading {len(g.initializer)} initializers")
        for t in g.initializer:
            self._define(t.name, self.graph.add_constant(self._tensor(t, f"initializer {t.name!r}"), t.name))
        for t in g.sparse_initializer:
            raise ModelError(f"{self.source}: sparse initializer {t.values.name!r} is not supported")
        self.progress(f"converting {len(g.node)} nodes")
        for i, proto in enumerate(g.node):
            self._node(proto, i)
        for vi in g.output:
            if vi.name not in self.values:
                raise ModelError(f"{self.source}: graph output {vi.name!r} is not produced by any node")
            self.graph.outputs.append(self.values[vi.name])
        self.graph.sort()
        return self.graph

    def _check_opset(self) -> int:
        versions = {o.domain or "": o.version for o in self.model.opset_import}
        if "" not in versions and "ai.onnx" not in versions:
            raise ModelError(f"{self.source}: the model imports no default-domain opset")
        v = versions.get("", versions.get("ai.onnx"))
        if v < MIN_OPSET:
            raise ModelError(f"{self.source}: opset {v} is too old; fuseformer reads opset {MIN_OPSET} "
                             f"to {_MAX_OPSET} (convert it with onnx.version_converter.convert_version)")
        if v > _MAX_OPSET:
            raise ModelError(f"{self.source}: opset {v} is newer than this onnx package knows "
                             f"({_MAX_OPSET}); upgrade onnx")
        return v

    def _inferred(self) -> onnx.ModelProto:
        try:
            return onnx.shape_inference.infer_shapes(self.model, strict_mode=False, data_prop=True)
        except Exception as e:  # inference is a help, not a requirement: our own rules fill in
            self.progress(f"ONNX shape inference failed ({type(e).__name__}); using fuseformer's only")
            return self.model

    def _read_types(self, model: onnx.ModelProto) -> None:
        g = model.graph
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            t = _tensor_type(vi)
            if t is not None:
                self.types[vi.name] = t

    # ---- values ---------------------------------------------------------------
    def _define(self, name: str, value: Value) -> None:
        if name in self.values:
            raise ModelError(f"{self.source}: value {name!r} is defined twice")
        self.values[name] = value

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        t = _tensor_type(vi)
        if t is None or t[0] is None:
            raise ModelError(f"{self.source}: graph input {vi.name!r} is not a tensor of a supported type "
                             f"({_describe_type(vi.type)})")
        self._define(vi.name, self.graph.add_input(vi.name, *t))

    def _tensor(self, t: TensorProto, what: str) -> Tensor:
        try:
            dtype = DType.from_onnx(t.data_type)
        except TypeError as e:
            raise ModelError(f"{self.source}: {what}: {e}") from e
        if t.data_location == TensorProto.EXTERNAL:
            info = {e.key: e.value for e in t.external_data}
            if self.base_dir is None:
                raise ModelError(f"{self.source}: {what} uses external data but the model has no directory")
            loc = ExternalLocation(str(self.base_dir / info["location"]), int(info.get("offset", 0)),
                                   int(info.get("length", 0)) or int(np.prod(t.dims, dtype=np.int64)) * dtype.itemsize)
            try:
                return Tensor.from_external(dtype, tuple(t.dims), loc)
            except (OSError, ValueError) as e:
                raise ModelError(f"{self.source}: {what}: {e}") from e
        try:
            return Tensor.from_numpy(numpy_helper.to_array(t), dtype)
        except Exception as e:
            raise ModelError(f"{self.source}: {what}: cannot decode tensor data: {e}") from e

    # ---- nodes ----------------------------------------------------------------
    def _node(self, proto: onnx.NodeProto, index: int) -> None:
        name = proto.name or f"{proto.op_type}_{index}"
        where = f"node {name!r} ({proto.domain + '::' if proto.domain else ''}{proto.op_type}, opset {self.opset})"
        if proto.op_type == "Constant" and proto.domain in ("", "ai.onnx"):
            self._define(proto.output[0], self.graph.add_constant(self._constant(proto, where), proto.output[0]))
            return
        op = Op.from_onnx(proto.op_type, proto.domain)
        if op is None:
            raise ModelError(f"{self.source}: {where}: unsupported op "
                             f"(domain {proto.domain or 'ai.onnx'!r}); fuseformer cannot import this model yet")
        for a in proto.attribute:
            if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
                raise ModelError(f"{self.source}: {where}: nested graphs (attribute {a.name!r}) are not supported")
        inputs: list[Value | None] = []
        for i, n in enumerate(proto.input):
            if n == "":
                inputs.append(None)
            elif n not in self.values:
                raise ModelError(f"{self.source}: {where}: input {i} {n!r} is not defined before use")
            else:
                inputs.append(self.values[n])
        attrs, inputs = self._attrs(op, proto, inputs, where)
        outputs = []
        for n in proto.output:
            # an omitted optional output still needs a value; it is simply never used
            out_name = n or self.graph.fresh_name(f"{name}_unused")
            v = self.graph.new_value(out_name)
            v.dtype, v.shape = self.types.get(n, (None, None))
            outputs.append(v)
        node = Node(op, inputs, outputs, attrs, self.graph.fresh_node_name(name))
        try:
            ours = infer_types(node)
        except Exception as e:
            raise ModelError(f"{self.source}: {where}: {e}") from e
        for v, (dtype, shape) in zip(outputs, ours):
            v.dtype = v.dtype or dtype
            v.shape = _merge_shapes(shape, v.shape)
        for v in outputs:
            if v.dtype is None:
                raise ModelError(f"{self.source}: {where}: cannot infer the type of output {v.name!r}")
        self.graph.insert(node)
        for n, v in zip(proto.output, outputs):
            if n:
                self._define(n, v)

    def _constant(self, proto: onnx.NodeProto, where: str) -> Tensor:
        if len(proto.attribute) != 1:
            raise ModelError(f"{self.source}: {where}: Constant needs exactly one value attribute")
        a = proto.attribute[0]
        if a.name == "value":
            return self._tensor(a.t, where)
        if a.name == "sparse_value":
            raise ModelError(f"{self.source}: {where}: sparse constants are not supported")
        kinds = {"value_float": np.float32, "value_floats": np.float32, "value_int": np.int64,
                 "value_ints": np.int64}
        if a.name in kinds:
            return Tensor.from_numpy(np.asarray(helper.get_attribute_value(a), kinds[a.name]))
        raise ModelError(f"{self.source}: {where}: Constant attribute {a.name!r} is not supported")

    def _attrs(self, op: Op, proto: onnx.NodeProto, inputs: list[Value | None], where: str):
        raw = {}
        for a in proto.attribute:
            if a.ref_attr_name:
                raise ModelError(f"{self.source}: {where}: attribute {a.name!r} refers to a function "
                                 f"attribute; functions are not supported")
            raw[a.name] = a
        inputs = self._legacy_inputs(op, raw, inputs, where)
        if op is Op.GroupNormalization and self.opset < 21:
            inputs = self._group_norm_per_channel(raw, inputs, where)
        fields = {f.name: f for f in dataclasses.fields(op.attrs_type)}
        kwargs = {}
        for key, a in raw.items():
            if key not in fields:
                raise ModelError(f"{self.source}: {where}: attribute {key!r} is not supported")
            kwargs[key] = self._attr_value(a, where)
        try:
            return op.attrs_type(**kwargs), inputs
        except TypeError as e:
            raise ModelError(f"{self.source}: {where}: {e}") from e

    def _attr_value(self, a: AttributeProto, where: str):
        if a.type == AttributeProto.TENSOR:
            return self._tensor(a.t, f"{where} attribute {a.name!r}")
        value = helper.get_attribute_value(a)
        if isinstance(value, bytes):
            return value.decode()
        if isinstance(value, list):
            return tuple(v.decode() if isinstance(v, bytes) else v for v in value)
        return value

    def _legacy_inputs(self, op: Op, raw: dict, inputs: list, where: str) -> list:
        """Move axes/split attributes of older opsets to the constant input newer opsets use."""
        key = {Op.Squeeze: "axes", Op.Unsqueeze: "axes", Op.Split: "split"}.get(op)
        if op in REDUCTIONS:
            key = "axes"
        if key is None or key not in raw:
            return inputs
        values = np.asarray(helper.get_attribute_value(raw.pop(key)), np.int64)
        const = self.graph.add_constant(values, f"{key}_const")
        return [inputs[0], const] + list(inputs[1:])

    def _group_norm_per_channel(self, raw: dict, inputs: list, where: str) -> list:
        """Opset 18-20 scales per group; opset 21 per channel: repeat each group's value."""
        x, scale, bias = inputs[:3]
        groups = helper.get_attribute_value(raw["num_groups"])
        channels = x.shape[1] if x.shape is not None else None
        if not isinstance(channels, int) or scale.const is None or bias.const is None:
            raise ModelError(f"{self.source}: {where}: opset<21 GroupNormalization needs a known channel "
                             f"count and constant scale/bias")
        rep = channels // groups
        new = [self.graph.add_constant(np.repeat(np.asarray(v.const.numpy()), rep), f"{v.name}_per_channel")
               for v in (scale, bias)]
        return [x] + new


def _merge_shapes(ours: Shape, theirs: Shape) -> Shape:
    """Per dim: a number from either side, else our symbol, else ONNX's named symbol.

    ONNX shape inference names dims it could not work out "unk__N": fresh
    symbols that would hide that, say, a Reshape keeps the batch dim. Ours
    traces shape arithmetic, so it wins where it knows the dim.
    """
    if ours is None:
        return tuple(None if isinstance(d, Sym) and d.name.startswith("unk__") else d
                     for d in theirs) if theirs is not None else None
    if theirs is None or len(theirs) != len(ours):
        return ours
    out = []
    for a, b in zip(ours, theirs):
        if isinstance(a, int):
            out.append(a)
        elif isinstance(b, int):
            out.append(b)
        elif a is not None:
            out.append(a)
        elif isinstance(b, Sym) and not b.name.startswith("unk__"):
            out.append(b)
        else:
            out.append(None)
    return tuple(out)


def _tensor_type(vi: onnx.ValueInfoProto) -> tuple[DType | None, Shape] | None:
    if not vi.type.HasField("tensor_type"):
        return None
    tt = vi.type.tensor_type
    try:
        dtype = DType.from_onnx(tt.elem_type) if tt.elem_type else None
    except TypeError:
        return None
    if not tt.HasField("shape"):
        return dtype, None
    dims = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(Sym(d.dim_param))
        else:
            dims.append(None)
    return dtype, tuple(dims)


def _describe_type(t: onnx.TypeProto) -> str:
    kind = t.WhichOneof("value")
    if kind == "tensor_type":
        return TensorProto.DataType.Name(t.tensor_type.elem_type)
    return kind or "no type"
