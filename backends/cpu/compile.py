"""Optimized IR graph -> CPU artifact directory (see runtime/artifact.py for the layout).

Example:
    >>> from fuseformer.frontends.onnx import load_onnx
    >>> from fuseformer.passes import optimize_graph
    >>> graph = optimize_graph(load_onnx("examples/tiny_vit.onnx"))
    >>> path = compile_cpu(graph, "tiny_vit.cpu", dims={"batch": 8})
    >>> session = fuseformer.runtime.load(path)
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ... import __version__
from ...ir.graph import Graph
from ...ir.value import Value
from ...runtime.artifact import FORMAT_VERSION, sha256_file, staged_directory, write_manifest
from .build import build_library
from .errors import CpuCompileError
from .lowering import lower_graph
from .packing import packing_enabled
from .program import Program, build_program, symbol_order
from .renderer import ABI_VERSION, render_program
from .symexpr import Bounds, Expr
from .weights import write_aligned

SOURCE, LIBRARY, WEIGHTS = "model.cpp", "model.so", "weights.safetensors"


def compile_cpu(graph: Graph, out_dir: str | os.PathLike, dims: Mapping[str, int],
                threads: int | None = None, portable: bool = False, profile: bool = False,
                progress: Callable[[str], None] | None = None,
                before_commit: Callable[[Path], None] | None = None) -> Path:
    """Compile ``graph`` (run ``optimize_graph`` first) to an artifact directory at ``out_dir``.

    ``dims`` gives the largest value of every symbolic input dim: the arena is
    planned for it, and the artifact runs any value from 1 up to it. ``threads``
    is the default thread count of sessions (None: all cores); ``portable``
    builds for any x86-64-v2 CPU instead of this one; ``profile`` times every kernel call
    by kind (``Session.profile()``; see profiling.py). Nothing is written unless
    every step succeeds and ``before_commit`` (given the finished artifact in its
    staging directory, e.g. a numerical check) returns; an earlier artifact at
    ``out_dir`` is replaced.

    Raises:
        UnsupportedOpError: a node has no CPU kernel (names the node and op).
        ShapeError: a dim cannot be expressed in the symbols.
        CompilerError: the C++ compiler failed (names the kept source file).
    """
    progress = progress or (lambda _: None)
    maxima = _check_dims(graph, dims)
    if threads is not None and threads < 1:
        raise CpuCompileError(f"threads must be positive, got {threads}")
    bounds = Bounds(maxima)
    progress(f"lowering {len(graph.nodes)} nodes for the CPU")
    ctx, steps = lower_graph(graph, bounds, pack_weights=packing_enabled(portable))
    prog = build_program(graph, ctx, steps, maxima)
    progress(f"{sum(prog.run)} kernels, arena {prog.arena_bytes / 2**20:.1f} MiB at "
             f"{', '.join(f'{k}={v}' for k, v in maxima.items()) or 'static shapes'}")

    out_dir = Path(out_dir)
    with staged_directory(out_dir, before_commit) as tmp:
        offsets = _write_weights(prog, tmp / WEIGHTS)
        source, status = render_program(prog, offsets, profile=profile)
        (tmp / SOURCE).write_text(source)
        lib = build_library(source, portable=portable, progress=progress)
        shutil.copyfile(lib.path, tmp / LIBRARY)
        manifest = _manifest(prog, tmp, status, lib, threads, portable, profile)
        write_manifest(tmp, manifest)
    progress(f"wrote {out_dir}")
    return out_dir


def _check_dims(graph: Graph, dims: Mapping[str, int]) -> dict[str, int]:
    symbols = symbol_order(graph)
    unknown = sorted(set(dims) - set(symbols))
    missing = [s for s in symbols if s not in dims]
    if unknown or missing:
        raise CpuCompileError(
            f"dims must give the maximum of each symbolic input dim: the model has "
            f"{symbols or 'none'}; missing {missing}, unknown {unknown} (e.g. dims={{'seq': 128}})")
    out = {}
    for s in symbols:
        value = dims[s]
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise CpuCompileError(f"dims[{s!r}] must be a positive int, got {value!r}")
        out[s] = int(value)
    return out


def _write_weights(prog: Program, path: Path) -> list[int]:
    """Write the constants as w0, w1, ... (64-byte aligned); returns their data offsets."""
    return write_aligned([prog.weight_array(v) for v in prog.weights], path)


def _dim_json(d: Expr) -> int | str:
    return d.value if d.is_const else str(d)


def _spec(prog: Program, v: Value) -> dict:
    info = prog.info(v)
    return {"name": v.name, "dtype": info.dtype.numpy.name, "shape": [_dim_json(d) for d in info.shape]}


def _manifest(prog: Program, tmp: Path, status: dict[int, str], lib, threads, portable,
              profile: bool) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "target": "cpu",
        "abi_version": ABI_VERSION,
        "fuseformer_version": __version__,
        "model": prog.graph.name,
        "inputs": [_spec(prog, v) for v in prog.graph.inputs],
        "outputs": [_spec(prog, v) for v in prog.graph.outputs],
        "symbols": [{"name": s, "max": prog.maxima[s]} for s in prog.symbols],
        "arena_bytes": prog.arena_bytes,
        "threads": threads,
        "profile": profile,
        "status": {str(k): v for k, v in status.items()},
        "files": {
            "source": {"path": SOURCE, "sha256": sha256_file(tmp / SOURCE)},
            "library": {"path": LIBRARY, "sha256": sha256_file(tmp / LIBRARY)},
            "weights": {"path": WEIGHTS, "sha256": sha256_file(tmp / WEIGHTS)},
        },
        "compiler": {"version": lib.compiler, "flags": lib.flags, "portable": portable,
                     "cache_key": lib.key},
        "kernels": sum(prog.run),
    }
