"""Command line: ``optimize MODEL --target T -o OUT`` and ``fuseformer <command>``."""
from __future__ import annotations

import argparse
import sys
import time
import traceback
from pathlib import Path

from . import __version__
from .ir.errors import FuseformerError, ModelError, UnsupportedTargetError
from .passes.context import DEFAULT_OPT_LEVEL
from .passes.instruments import PassBrokeGraph
from .passes.manager import PassError

TARGETS = ("onnx", "cpu", "cuda", "tvm", "mcu")
_PLANNED = {"cuda": "the CUDA backend", "tvm": "the TVM backend"}

EXIT_OK, EXIT_USER, EXIT_VERIFY, EXIT_INTERNAL = 0, 2, 3, 4


class VerificationFailed(FuseformerError):
    """--verify measured an error above --tol; nothing was written."""


class _Progress:
    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[fuseformer {time.perf_counter() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def _dim(text: str) -> tuple[str, int]:
    """NAME=N, or NAME=LO..HI (a compiled target serves LO..HI; checks run at HI)."""
    name, sep, value = text.partition("=")
    lo, dots, hi = value.partition("..")
    ok = sep and name and (hi if dots else lo).isdigit() and (not dots or lo.isdigit())
    if not ok or int(hi if dots else lo) < 1 or (dots and int(lo) > int(hi)):
        raise argparse.ArgumentTypeError(f"--dim takes NAME=N or NAME=LO..HI with positive ints, got {text!r}")
    return name, int(hi if dots else lo)


def _size(text: str) -> int:
    """--memory-budget: 320KB, 320K, 0.5MB or 327680 bytes (KB = 1024 bytes)."""
    from .backends.mcu.budget import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _optimize_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("model", nargs="?", help="input model (.onnx)")
    parser.add_argument("--target", choices=TARGETS, default="onnx", help="what to produce (default: onnx)")
    parser.add_argument("-o", "--output", help="output path (a .onnx file for --target onnx)")
    parser.add_argument("--opt-level", type=int, default=DEFAULT_OPT_LEVEL, choices=range(0, 4),
                        metavar="{0,1,2,3}",
                        help="0: dead code only; 1: canonicalization; 2: + fusions (default); 3: everything")
    parser.add_argument("--disable-pass", action="append", default=[], metavar="NAME",
                        help="skip a pass by name (repeatable; see --list-passes)")
    parser.add_argument("--list-passes", action="store_true", help="list the passes and exit")
    parser.add_argument("--bisect", action="store_true",
                        help="debug wrong numbers: run the interpreter on seeded inputs around the pipeline "
                             "and name the first pass that changed the outputs")
    parser.add_argument("--verify", action="store_true",
                        help="run the original and the result in onnxruntime on seeded random inputs, "
                             "print max abs / rel error per output, and fail (writing nothing) above --tol")
    parser.add_argument("--tol", type=float, default=1e-4,
                        help="--verify tolerance: fail where |new-orig| > tol + tol*|orig| (default 1e-4)")
    parser.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=N|LO..HI",
                        help="a symbolic input dim: the largest value a compiled target serves, and the "
                             "value --verify uses (repeatable; default batch 1, others 16 for onnx, "
                             "128 for cpu); --target mcu compiles for exactly these values")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --verify inputs")
    parser.add_argument("--report", action="store_true",
                        help="print what each fusion did (and why it did not), op counts and model sizes; "
                             "--target mcu: also the memory table per step, drawn as memory.png in -o")
    parser.add_argument("--memory-budget", type=_size, metavar="SIZE",
                        help="--target mcu: the SRAM the arena may use, e.g. 320KB, 320K, 0.5MB or 327680 "
                             "(bytes; KB = 1024 bytes, MB = 1024 KB): token-wise chains run in as few chunks as meet it; "
                             "fail, writing nothing, if it cannot fit (without a budget nothing is chunked)")
    parser.add_argument("--dump-ir", metavar="DIR",
                        help="write the IR text to DIR: 00_input.txt, then one file after each pass")
    parser.add_argument("--opset", type=int, help="ONNX opset of the output (default: lowest that fits)")
    parser.add_argument("--threads", type=int, help="--target cpu: default thread count of the artifact")
    parser.add_argument("--portable", action="store_true",
                        help="--target cpu: build for any x86-64-v2 CPU instead of this one")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def optimize_main(argv: list[str] | None = None) -> int:
    parser = _optimize_parser(argparse.ArgumentParser(
        prog="optimize", description="Optimize a transformer model and write it for a target."))
    parser.add_argument("--version", action="version", version=f"fuseformer {__version__}")
    return _run(_do_optimize, parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fuseformer", description="fuseformer: a graph optimizer for transformers")
    parser.add_argument("--version", action="version", version=f"fuseformer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _optimize_parser(sub.add_parser("optimize", help="optimize a model (same as the `optimize` command)"))
    bench = _bench_module()
    bench_parser = sub.add_parser("bench", help="latency against onnxruntime and PyTorch (bench/bench.py)",
                                  description=bench.__doc__ if bench else None,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    if bench is not None:
        bench.add_arguments(bench_parser)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _run(lambda a: _do_bench(bench, a, argv), args)
    return _run(_do_optimize, args)


def _bench_module():
    """bench/bench.py of the source checkout, or None: bench/ is not installed with the package."""
    try:
        from .bench import bench
    except ModuleNotFoundError as e:
        if e.name not in ("fuseformer.bench", "fuseformer.bench.bench"):
            raise  # bench/ is there but something it imports is not: say what
        return None
    return bench


def _do_bench(bench, args, argv: list[str] | None) -> int:
    if bench is None:
        raise FuseformerError("`fuseformer bench` runs from a source checkout (pip install -e .): "
                              "bench/ is not part of an installed package")
    shown = sys.argv[1:] if argv is None else argv
    return bench.run(args, command="fuseformer " + " ".join(shown))[0]


def _run(fn, args) -> int:
    try:
        return fn(args)
    except VerificationFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_VERIFY
    except (PassError, PassBrokeGraph) as e:
        # a pass failed or broke the graph: our bug, not the user's input
        print(f"internal error: {e}\n(a bug in fuseformer: please report it with the model; "
              f"--disable-pass NAME works around it; nothing was written)", file=sys.stderr)
        return EXIT_INTERNAL
    except FuseformerError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        print("internal error in fuseformer (a bug: please report it with the model); nothing was written",
              file=sys.stderr)
        return EXIT_INTERNAL


def _do_optimize(args) -> int:
    from .backends.onnx import save_onnx
    from .frontends.onnx import load_onnx
    from .passes import DumpIR, NumericalCheck, PassContext, Timing, VerifyEachPass, all_passes, optimize_graph

    if args.list_passes:
        for p in all_passes():
            print(f"{p.name:<24} O{p.opt_level}  {p.summary()}")
        return EXIT_OK
    if not args.model or not args.output:
        raise FuseformerError("a model and -o OUTPUT are required (or --list-passes)")
    progress = _Progress(args.quiet)
    if args.target not in ("onnx", "cpu", "mcu"):
        raise UnsupportedTargetError(f"--target {args.target}: {_PLANNED[args.target]} is not available in "
                                     f"fuseformer {__version__} yet; use --target onnx")
    if args.memory_budget is not None and args.target != "mcu":
        raise FuseformerError("--memory-budget applies to --target mcu")
    src, out = Path(args.model), Path(args.output)
    if out.resolve() == src.resolve():
        raise FuseformerError(f"-o {out} would overwrite the input model; choose another path")
    progress(f"reading {src}")
    graph = load_onnx(src, progress=progress)
    before = graph.op_counts()
    progress(f"verifying the IR ({len(graph.nodes)} nodes)")
    graph.verify()

    instruments = [Timing(), VerifyEachPass()]
    if args.dump_ir:
        instruments.append(DumpIR(args.dump_ir))
    if args.bisect:
        from .runtime.feeds import random_feeds

        try:
            feeds = random_feeds(graph, dict(args.dim), seed=args.seed)
        except ValueError as e:
            raise FuseformerError(f"--bisect: {e}") from e
        instruments.append(NumericalCheck(feeds, atol=args.tol, rtol=args.tol, mode="bisect"))
    ctx = PassContext(opt_level=args.opt_level, disabled=args.disable_pass, instruments=instruments)
    progress(f"optimizing at O{args.opt_level}")
    graph = optimize_graph(graph, ctx)
    progress(f"{len(graph.nodes)} nodes after optimization")

    check = None
    if args.verify:
        check = _verifier(args, graph, src, progress)
    progress(f"writing {out}")
    if args.target == "cpu":
        _compile_cpu(args, graph, out, progress, check)
    elif args.target == "mcu":
        _compile_mcu(args, graph, out, progress, check)
    else:
        save_onnx(graph, out, opset=args.opset, progress=progress, before_commit=check)
    if args.report:
        print(ctx.report.format())
        _report(before, graph.op_counts(), src, out)
    progress("done")
    return EXIT_OK


CPU_DEFAULT_MAX = 128


def _cpu_dims(args, graph) -> dict[str, int]:
    from .runtime.feeds import resolve_dims

    given = dict(args.dim)
    dims = resolve_dims(graph, given)
    # a compiled artifact serves every value up to the maximum: unnamed sequence-like dims get 128
    return {k: (v if k in given else (1 if "batch" in k.lower() else CPU_DEFAULT_MAX)) for k, v in dims.items()}


def _compile_cpu(args, graph, out: Path, progress, check) -> None:
    from .backends.cpu import compile_cpu

    try:
        dims = _cpu_dims(args, graph)
    except ValueError as e:
        raise FuseformerError(str(e)) from e
    shown = ", ".join(f"{k}<={v}" for k, v in dims.items()) or "static shapes"
    progress(f"compiling for the CPU ({shown}; set with --dim NAME=MAX)")
    compile_cpu(graph, out, dims, threads=args.threads, portable=args.portable, progress=progress,
                before_commit=check)


def _compile_mcu(args, graph, out: Path, progress, check) -> None:
    from .backends.mcu import compile_mcu
    from .runtime.feeds import resolve_dims

    try:
        dims = resolve_dims(graph, dict(args.dim))  # the same sizes --verify feeds
    except ValueError as e:
        raise FuseformerError(str(e)) from e
    shown = ", ".join(f"{k}={v}" for k, v in dims.items()) or "static shapes"
    progress(f"compiling for the MCU ({shown}; set with --dim NAME=N)")
    tables = []
    # chunking trades steps (and time) for SRAM: compile_mcu chunks only when a budget asks
    compile_mcu(graph, out, dims, budget=args.memory_budget, progress=progress, report=args.report,
                on_report=tables.append, before_commit=check)
    for table in tables:  # printed once the output is committed
        print(table)
        print(f"memory timeline drawn in {out / 'memory.png'} (every step in {out / 'memory.txt'})")


def _verifier(args, graph, src: Path, progress):
    from .runtime.feeds import random_feeds, resolve_dims
    from .runtime.verify import compare_outputs, run_onnx

    try:
        dims = resolve_dims(graph, dict(args.dim))
        feeds = random_feeds(graph, dims, seed=args.seed)
    except ValueError as e:
        raise FuseformerError(f"--verify: {e}") from e
    run_candidate = {"cpu": _run_artifact, "mcu": _run_mcu}.get(args.target, run_onnx)

    def check(tmp_model: Path) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in dims.items()) or "static shapes"
        progress(f"verifying against onnxruntime ({shown}, seed {args.seed})")
        try:
            reference = run_onnx(str(src), feeds)
        except Exception as e:
            raise ModelError(f"--verify: onnxruntime cannot run the original model: {e}") from e
        try:
            errors = compare_outputs(reference, run_candidate(str(tmp_model), feeds), args.tol)
        except ValueError as e:  # different output names or shapes
            raise VerificationFailed(f"--verify: {e}; nothing was written") from e
        print(f"verify ({shown}; tol {args.tol:g}):")
        for err in errors:
            flag = "ok" if err.bad_fraction == 0 else "FAIL"
            print(f"  {err.name}: max abs err {err.max_abs:.3e}, max rel err {err.max_rel:.3e}  {flag}")
        if args.target == "cpu":
            _print_latency(str(src), str(tmp_model), feeds, args.threads)
        bad = [e.name for e in errors if e.bad_fraction > 0]
        if bad:
            raise VerificationFailed(f"outputs {bad} differ from the original beyond --tol {args.tol:g}; "
                                     f"nothing was written")
    return check


def _run_mcu(path: str, feeds):
    from .backends.mcu.host import run_on_host

    return run_on_host(path, feeds)


def _run_artifact(path: str, feeds):
    from .runtime import load

    return load(path).run(feeds)


def _print_latency(src: str, artifact: str, feeds, threads: int | None, runs: int = 30) -> None:
    """Median wall time of the artifact and of onnxruntime on the same inputs (a rough figure:
    bench/ has the real comparison)."""
    import os
    import statistics

    from .runtime import load
    from .runtime.verify import ort_session

    n = threads or os.cpu_count() or 1
    session = load(artifact, threads=n)
    ort = ort_session(src, threads=n)

    def median_ms(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1e3

    ours = median_ms(lambda: session.run(feeds))
    theirs = median_ms(lambda: ort.run(None, feeds))
    print(f"latency ({n} threads, median of {runs}): fuseformer {ours:.3f} ms, onnxruntime {theirs:.3f} ms "
          f"(ratio {ours / theirs:.2f})")


def _report(before: dict, after: dict, src: Path, out: Path) -> None:
    ops = sorted(set(before) | set(after))
    print(f"{'op':<24}{'before':>8}{'after':>8}")
    for op in ops:
        print(f"{op:<24}{before.get(op, 0):>8}{after.get(op, 0):>8}")
    print(f"{'total nodes':<24}{sum(before.values()):>8}{sum(after.values()):>8}")
    def size(p: Path) -> int:
        if p.is_dir():
            return sum(f.stat().st_size for f in p.iterdir() if f.is_file())
        return p.stat().st_size + sum(f.stat().st_size for f in p.parent.glob(p.name + "*.data"))

    print(f"model size: {size(src) / 1e6:.2f} MB -> {size(out) / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
