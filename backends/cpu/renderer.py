"""The C++ renderer: dtype and op tables, the per-node emitter, and the whole source file.

Generated names are ``s0, s1, ...`` for the symbols and ``v0, v1, ...`` for
values; model names appear only in comments, escaped by ``comment_text``. The
source has one ``extern "C"`` entry, ``ff_run(inputs, outputs, dims, weights,
arena)``, plus small helpers the runtime calls (see runtime/session.py) and the
self-description of metadata.py; backends/cpu/include/fuseformer.h declares them all.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

from ... import __version__
from ...ir.dtype import DType
from ...ir.op import Op
from ...ir.value import Value
from .errors import UnsupportedOpError
from .metadata import render_metadata
from .profiling import exports as profile_exports
from .profiling import kernel_kind, prelude as profile_prelude, timed
from .program import Program
from .regions import Region
from .source import Source, comment_text
from .symexpr import Expr

ABI_VERSION = 1

CTYPES = {
    DType.FLOAT: "float", DType.DOUBLE: "double", DType.INT64: "int64_t", DType.INT32: "int32_t",
    DType.INT16: "int16_t", DType.INT8: "int8_t", DType.UINT8: "uint8_t", DType.UINT16: "uint16_t",
    DType.UINT32: "uint32_t", DType.UINT64: "uint64_t", DType.BOOL: "bool",
}

# op -> C++ expression of the operand x (T is the element type, {alpha} etc. attributes)
UNARY = {
    Op.Abs: "std::abs(x)", Op.Neg: "-x", Op.Exp: "ff::vexp(x)", Op.Log: "std::log(x)",
    Op.Sqrt: "std::sqrt(x)", Op.Reciprocal: "T(1) / x", Op.Erf: "std::erf(x)",
    Op.Tanh: "ff::vtanh(x)", Op.Sigmoid: "ff::vsigmoid(x)", Op.Relu: "x < T(0) ? T(0) : x",
    Op.LeakyRelu: "x >= T(0) ? x : x * T({alpha})",
    Op.Elu: "x >= T(0) ? x : T({alpha}) * std::expm1(x)",
    Op.Selu: "T({gamma}) * (x > T(0) ? x : T({alpha}) * std::expm1(x))",
    Op.Celu: "std::max(x, T(0)) + T({alpha}) * std::expm1(std::min(x / T({alpha}), T(0)))",
    Op.HardSigmoid: "std::min(std::max(T({alpha}) * x + T({beta}), T(0)), T(1))",
    Op.HardSwish: "x * std::min(std::max(x / T(6) + T(0.5), T(0)), T(1))",
    Op.Softplus: "ff::softplus(x)", Op.Softsign: "x / (T(1) + std::abs(x))",
    Op.Mish: "x * std::tanh(ff::softplus(x))", Op.Sin: "std::sin(x)", Op.Cos: "std::cos(x)",
    Op.Tan: "std::tan(x)", Op.Asin: "std::asin(x)", Op.Acos: "std::acos(x)",
    Op.Atan: "std::atan(x)", Op.Sinh: "std::sinh(x)", Op.Cosh: "std::cosh(x)",
    Op.Floor: "std::floor(x)", Op.Ceil: "std::ceil(x)",
    Op.Round: "std::nearbyint(x)",  # the default rounding mode rounds half to even, as ONNX
    Op.Sign: "ff::sign(x)", Op.Identity: "x", Op.ThresholdedRelu: "x > T({alpha}) ? x : T(0)",
}
# unary ops defined on integers too (the rest need a floating-point type)
INTEGER_UNARY = frozenset({Op.Abs, Op.Neg, Op.Sign, Op.Identity, Op.Relu})

# op -> C++ expression of operands a, b
BINARY = {
    Op.Add: "a + b", Op.Sub: "a - b", Op.Mul: "a * b", Op.Div: "a / b", Op.Sum: "a + b",
    Op.Mean: "(a + b) / T(2)", Op.Max: "ff::maximum(a, b)", Op.Min: "ff::minimum(a, b)",
    Op.Pow: "ff::power(a, b)", Op.PRelu: "a < T(0) ? a * b : a",
    Op.And: "a && b", Op.Or: "a || b", Op.Xor: "a != b",
    Op.Equal: "a == b", Op.Less: "a < b", Op.LessOrEqual: "a <= b", Op.Greater: "a > b",
    Op.GreaterOrEqual: "a >= b",
}


def ctype(dtype: DType) -> str:
    try:
        return CTYPES[dtype]
    except KeyError:
        raise UnsupportedOpError(f"element type {dtype.short} has no CPU kernels") from None


def c_float(x: float) -> str:
    """A float literal that round-trips a float32 (or the C macro for inf/nan)."""
    x = float(x)
    if math.isnan(x):
        return "NAN"
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    return repr(x)


def c_scalar(value, dtype: DType) -> str:
    if dtype is DType.BOOL:
        return "true" if value else "false"
    if dtype.is_float:
        return f"{ctype(dtype)}({c_float(value)})"
    return f"{ctype(dtype)}({int(value)}LL)"


class NodeEmitter:
    """What a rule's emit closure writes through: pointers, dims, lines, blocks."""

    def __init__(self, src: Source, names: dict[int, str], symbols: dict[str, str],
                 status: int | None = None, scratch_offset: int | None = None, profile: bool = False,
                 region: bool = False):
        self.src = src
        self._profile = profile
        self._region = region
        self._names = names
        self._symbols = symbols
        self._status = status
        self._scratch = scratch_offset
        self._counter = 0

    def ptr(self, v: Value | None) -> str:
        return "nullptr" if v is None else self._names[id(v)]

    def dim(self, e: Expr | int) -> str:
        """A dim as a C++ int64 expression of the symbols."""
        return Expr.of(e).render(self._symbols.__getitem__)

    def line(self, text: str) -> None:
        kind = kernel_kind(text) if self._profile else None
        self.src.line(text if kind is None else timed(text, kind, self._region))

    def block(self, head: str = ""):
        return self.src.block(head)

    def array(self, values: Sequence[Expr | int], ctype_: str = "int64_t") -> str:
        """Declare a local array of dims (or other values); returns its name."""
        name = f"a{self._counter}"
        self._counter += 1
        items = ", ".join(self.dim(v) if ctype_ == "int64_t" else str(v) for v in values) or "0"
        self.line(f"const {ctype_} {name}[] = {{{items}}};")
        return name

    def scratch(self, ctype_: str) -> str:
        if self._scratch is None:
            raise RuntimeError("this node planned no scratch space")
        return f"reinterpret_cast<{ctype_}*>(arena + {self._scratch})"

    def check(self, call: str) -> None:
        """Emit a kernel call that returns false on bad data; ff_run then returns the node's status."""
        if self._status is None:
            raise RuntimeError("this node declared no status")
        self.line(f"if (!({call})) return {self._status};")


def render_program(prog: Program, weight_offsets: Sequence[int],
                   profile: bool = False) -> tuple[str, dict[int, str]]:
    """The C++ source of ``prog`` and its status table (code -> what went wrong).

    ``weight_offsets[j]`` is the byte offset of weight j in the weights file's data section;
    ``profile`` times every kernel call (see profiling.py).
    """
    symbols = {s: f"s{i}" for i, s in enumerate(prog.symbols)}
    names: dict[int, str] = {}
    counter = 0
    for v in prog.graph.values():
        if id(v) in prog.storage:
            names[id(v)] = f"v{counter}"
            counter += 1

    src = Source()
    src.line(f"// Generated by fuseformer {__version__} for the CPU target; regenerate, do not edit.")
    src.comment(f"model: {prog.graph.name}")
    src.line('#include "fuseformer.h"  // the ABI: the compiler checks every export against it')
    src.line('#include "fuseformer/kernels.h"')
    src.line("")
    src.line('#define FF_EXPORT extern "C" __attribute__((visibility("default")))')
    src.line("")
    src.line("namespace {")
    src.line("// byte offsets of the weights in the data section of weights.safetensors")
    offsets = ", ".join(f"{o}ULL" for o in weight_offsets) or "0ULL"
    src.line(f"constexpr uint64_t kWeightOffsets[] = {{{offsets}}};")
    for text in profile_prelude():
        src.line(text)
    src.line("}  // namespace")
    src.line("")
    src.line(f"FF_EXPORT int ff_abi_version(void) {{ return {ABI_VERSION}; }}")
    src.line(f"FF_EXPORT int64_t ff_arena_bytes(void) {{ return {prog.arena_bytes}LL; }}")
    with src.block("FF_EXPORT void ff_set_threads(int n)"):
        src.line("ff::g_threads = n;")
    for head, body in profile_exports(profile):
        with src.block(head):
            for text in body:
                src.line(text)
    _render_output_shapes(src, prog, NodeEmitter(src, names, symbols))
    status = _render_run(src, prog, names, symbols, profile)
    render_metadata(src, prog, status, weight_offsets)
    return src.text(), status


def _symbol_prologue(src: Source, prog: Program, check: bool) -> None:
    for i, s in enumerate(prog.symbols):
        src.line(f"const int64_t s{i} = dims[{i}];  // {comment_text(s)}")
        if check:
            src.line(f"if (s{i} < 1 || s{i} > {prog.maxima[s]}LL) return -1;")


def _render_output_shapes(src: Source, prog: Program, e: NodeEmitter) -> None:
    with src.block("FF_EXPORT int ff_output_shape(int k, const int64_t* dims, int64_t* shape)"):
        _symbol_prologue(src, prog, check=False)
        for s in range(len(prog.symbols)):
            src.line(f"(void)s{s};")
        with src.block("switch (k)"):
            for k, v in enumerate(prog.graph.outputs):
                shape = prog.info(v).shape
                with src.block(f"case {k}:"):
                    for i, d in enumerate(shape):
                        src.line(f"shape[{i}] = {e.dim(d)};")
                    src.line("return 0;")
        src.line("return -1;")


def _declare(src: Source, prog: Program, v: Value, names: dict[int, str]) -> None:
    s = prog.storage[id(v)]
    t = ctype(prog.info(v).dtype)
    name = names[id(v)]
    if s.kind == "input":
        src.line(f"const {t}* const {name} = static_cast<const {t}*>(inputs[{s.index}]);")
    elif s.kind == "output":
        src.line(f"{t}* const {name} = static_cast<{t}*>(outputs[{s.index}]);")
    elif s.kind == "weight":
        src.line(f"const {t}* const {name} = reinterpret_cast<const {t}*>(weights + kWeightOffsets[{s.index}]);")
    elif s.kind == "arena":
        src.line(f"{t}* const {name} = reinterpret_cast<{t}*>(arena + {s.offset});")
    else:
        src.line(f"auto const {name} = {names[id(s.alias_of)]};")


def _render_run(src: Source, prog: Program, names: dict[int, str],
                symbols: dict[str, str], profile: bool) -> dict[int, str]:
    status: dict[int, str] = {-1: "a symbolic dim is outside [1, the compiled maximum]"}
    head = ("FF_EXPORT int ff_run(const void* const* inputs, void* const* outputs, const int64_t* dims, "
            "const unsigned char* weights, unsigned char* arena)")
    with src.block(head):
        _symbol_prologue(src, prog, check=True)
        src.line("(void)inputs; (void)outputs; (void)weights; (void)arena;")
        src.line("// OpenBLAS stays single-threaded: ff::gemm splits GEMMs over the OpenMP threads")
        src.line("static const bool blas_serial = (scipy_openblas_set_num_threads(1), true);")
        src.line("(void)blas_serial;")
        declared: set[int] = set()
        for v in list(prog.graph.inputs) + prog.weights:
            _declare(src, prog, v, names)
            declared.add(id(v))
        regions = {r.first: r for r in prog.regions}
        region_end = -1  # the last step of the region just written
        for i, step in enumerate(prog.steps):
            if i <= region_end:
                continue
            if i in regions:
                region_end = _render_region(src, prog, regions[i], names, symbols, declared, profile)
                continue
            node, lowered = step.node, step.lowered
            fills = prog.fills.get(i, [])
            if not prog.run[i] and not fills:
                continue
            src.line("")
            src.comment(f"{node.op.value} {node.name}")
            # outputs are declared where they are made (views alias already-declared buffers)
            for v in node.outputs:
                if id(v) in prog.storage and id(v) not in declared:
                    _declare(src, prog, v, names)
                    declared.add(id(v))
            if prog.run[i]:
                code = None
                if lowered.status is not None:
                    code = len(status)
                    status[code] = f"node {node.describe()}: {lowered.status}"
                body = Source()
                lowered.emit(NodeEmitter(body, names, symbols, code, prog.scratch.get(i), profile))
                if not body.empty:
                    with src.block():
                        src.extend(body)
            plain = NodeEmitter(src, names, symbols)
            for v in fills:
                info = prog.info(v)
                for j, e in enumerate(info.elems):
                    value = plain.dim(e)
                    src.line(f"{names[id(v)]}[{j}] = {ctype(info.dtype)}({value});")
        if prog.copies:
            src.line("")
            src.line("// graph outputs that live in another buffer")
        plain = NodeEmitter(src, names, symbols, profile=profile)
        for k, v in prog.copies:
            info = prog.info(v)
            size = plain.dim(info.numel)
            plain.line(f"std::memcpy(outputs[{k}], {names[id(v)]}, sizeof({ctype(info.dtype)}) * {size});")
        src.line("return 0;")
    return status


def _render_region(src: Source, prog: Program, region: Region, names: dict[int, str], symbols: dict[str, str],
                   declared: set[int], profile: bool) -> int:
    """One row region (regions.py): its buffers declared, then one parallel_rows whose body
    runs every member's row form on the thread's rows. Returns the region's last step."""
    src.line("")
    src.comment(f"row region: {len(region.members)} kernels on the same rows, one hand-off")
    for i in range(region.first, region.last + 1):
        for v in prog.steps[i].node.outputs:
            if id(v) in prog.storage and id(v) not in declared:
                _declare(src, prog, v, names)
                declared.add(id(v))
    plain = NodeEmitter(src, names, symbols)
    head = (f"ff::parallel_rows({plain.dim(region.count)}, ff::kRowAlign, "
            f"{plain.dim(region.work)} >= ff::kGemmGrain, [&](int64_t r0_, int64_t r1_)")
    with src.block(head, tail="});"):
        for i in region.members:
            node = prog.steps[i].node
            src.comment(f"{node.op.value} {node.name}")
            body = Source()
            prog.steps[i].lowered.rows.emit(NodeEmitter(body, names, symbols, profile=profile, region=True),
                                            "r0_", "r1_")
            with src.block():
                src.extend(body)
    return region.last
