"""The self-description a generated library exports, so C callers need no JSON parser.

``render_metadata`` writes the functions ``fuseformer.h`` declares under "what the
model takes and returns": input/output names, element types, ranks and dims,
the symbols and their maxima, the status messages and the size of the weights
data section. They carry what manifest.json says, for callers without Python.

Model names and status messages are arbitrary text (quotes, newlines, ``*/``,
unicode), so they never enter the source as string literals: their UTF-8 bytes
are written as decimal numbers into one table, each string NUL-terminated, and
the functions return pointers into it. No model text can then change the code.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...ir.value import Value
from .program import Program
from .source import Source
from .symexpr import Expr

FF_INPUT, FF_OUTPUT = 0, 1
# fuseformer.h: FF_DIM_SYMBOL(s) is -1 - s; FF_DIM_DERIVED is INT64_MIN
DIM_DERIVED = "INT64_MIN"
_PER_LINE = 24  # numbers per source line of a table


class _Strings:
    """Strings packed into one byte table; ``add`` returns the string's offset."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._seen: dict[bytes, int] = {}

    def add(self, text: str) -> int:
        raw = text.encode("utf-8", "surrogatepass")
        if raw not in self._seen:
            self._seen[raw] = len(self.data)
            self.data += raw + b"\0"
        return self._seen[raw]


def _table(src: Source, decl: str, values: Sequence[int | str]) -> None:
    """``constexpr decl[] = {...};`` over several lines (C++ rejects an empty initializer array)."""
    items = [str(v) for v in values] or ["0"]
    if len(items) <= _PER_LINE:
        src.line(f"constexpr {decl}[] = {{{', '.join(items)}}};")
        return
    src.line(f"constexpr {decl}[] = {{")
    for i in range(0, len(items), _PER_LINE):
        src.line("    " + ", ".join(items[i:i + _PER_LINE]) + ",")
    src.line("};")


def _dim(prog: Program, d: Expr) -> str:
    if d.is_const:
        return f"{d.value}LL"
    for s, name in enumerate(prog.symbols):
        if d == Expr.sym(name):
            return f"{-1 - s}LL"
    return DIM_DERIVED


def render_metadata(src: Source, prog: Program, status: Mapping[int, str],
                    weight_offsets: Sequence[int]) -> None:
    """Append the metadata tables (in an anonymous namespace) and the functions reading them."""
    strings = _Strings()
    tensors: list[Value] = list(prog.graph.inputs) + list(prog.graph.outputs)
    counts = (len(prog.graph.inputs), len(prog.graph.outputs))
    names, dtypes, ranks, first, dims = [], [], [], [], []
    for v in tensors:
        info = prog.info(v)
        names.append(strings.add(v.name))
        dtypes.append(info.dtype.value)  # the ONNX code, as FF_DTYPE_*
        ranks.append(len(info.shape))
        first.append(len(dims))
        dims.extend(_dim(prog, d) for d in info.shape)
    symbol_names = [strings.add(s) for s in prog.symbols]
    status = {0: "ok", **status}
    codes = sorted(status)
    messages = [strings.add(status[c]) for c in codes]
    unknown = strings.add("unknown status code")
    weights_bytes = max((off + prog.weight_nbytes(v) for off, v in zip(weight_offsets, prog.weights)),
                        default=0)

    src.line("")
    src.line("// ---- self-description (fuseformer.h); names as UTF-8 byte values, never as text")
    src.line("namespace {")
    _table(src, "unsigned char kText", list(strings.data))
    _table(src, "int kTensorName", names)
    _table(src, "int kTensorDtype", dtypes)
    _table(src, "int kTensorRank", ranks)
    _table(src, "int kTensorFirstDim", first)
    _table(src, "int64_t kTensorDims", dims)
    _table(src, "int kSymbolName", symbol_names)
    _table(src, "int64_t kSymbolMax", [f"{prog.maxima[s]}LL" for s in prog.symbols])
    _table(src, "int kStatusCode", codes)
    _table(src, "int kStatusText", messages)
    src.line("const char* text_at(int offset) { return reinterpret_cast<const char*>(kText + offset); }")
    src.line("// the row of input or output k in the kTensor* tables, or -1")
    with src.block("int tensor_row(int io, int k)"):
        src.line(f"if (io == {FF_INPUT}) return k >= 0 && k < {counts[0]} ? k : -1;")
        src.line(f"if (io == {FF_OUTPUT}) return k >= 0 && k < {counts[1]} ? {counts[0]} + k : -1;")
        src.line("return -1;")
    src.line("}  // namespace")
    src.line("")
    with src.block("FF_EXPORT int ff_tensor_count(int io)"):
        src.line(f"return io == {FF_INPUT} ? {counts[0]} : io == {FF_OUTPUT} ? {counts[1]} : -1;")
    with src.block("FF_EXPORT const char* ff_tensor_name(int io, int k)"):
        src.line("const int r = tensor_row(io, k);")
        src.line("return r < 0 ? nullptr : text_at(kTensorName[r]);")
    with src.block("FF_EXPORT int ff_tensor_dtype(int io, int k)"):
        src.line("const int r = tensor_row(io, k);")
        src.line("return r < 0 ? -1 : kTensorDtype[r];")
    with src.block("FF_EXPORT int ff_tensor_rank(int io, int k)"):
        src.line("const int r = tensor_row(io, k);")
        src.line("return r < 0 ? -1 : kTensorRank[r];")
    with src.block("FF_EXPORT int ff_tensor_dims(int io, int k, int64_t* dims)"):
        src.line("const int r = tensor_row(io, k);")
        src.line("if (r < 0) return -1;")
        src.line("for (int i = 0; i < kTensorRank[r]; ++i) dims[i] = kTensorDims[kTensorFirstDim[r] + i];")
        src.line("return 0;")
    with src.block("FF_EXPORT int ff_symbol_count(void)"):
        src.line(f"return {len(prog.symbols)};")
    with src.block("FF_EXPORT const char* ff_symbol_name(int s)"):
        src.line(f"return s >= 0 && s < {len(prog.symbols)} ? text_at(kSymbolName[s]) : nullptr;")
    with src.block("FF_EXPORT int64_t ff_symbol_max(int s)"):
        src.line(f"return s >= 0 && s < {len(prog.symbols)} ? kSymbolMax[s] : -1;")
    with src.block("FF_EXPORT const char* ff_status_message(int code)"):
        with src.block(f"for (int i = 0; i < {len(codes)}; ++i)"):
            src.line("if (kStatusCode[i] == code) return text_at(kStatusText[i]);")
        src.line(f"return text_at({unknown});")
    with src.block("FF_EXPORT int64_t ff_weights_bytes(void)"):
        src.line(f"return {weights_bytes}LL;")
