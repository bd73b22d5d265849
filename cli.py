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
_PLANNED = {"cpu": "the CPU backend", "cuda": "the CUDA backend", "tvm": "the TVM backend",
            "mcu": "the microcontroller (C99) backend"}

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
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--dim takes NAME=POSITIVE_INT, got {text!r}")
    return name, int(value)


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
    parser.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=VALUE",
                        help="value of a symbolic input dim for --verify (repeatable; default batch 1, others 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --verify inputs")
    parser.add_argument("--report", action="store_true",
                        help="print what each fusion did (and why it did not), op counts and model sizes")
    parser.add_argument("--dump-ir", metavar="DIR",
                        help="write the IR text to DIR: 00_input.txt, then one file after each pass")
    parser.add_argument("--opset", type=int, help="ONNX opset of the output (default: lowest that fits)")
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
    args = parser.parse_args(argv)
    return _run(_do_optimize, args)


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
    if args.target != "onnx":
        raise UnsupportedTargetError(f"--target {args.target}: {_PLANNED[args.target]} is not available in "
                                     f"fuseformer {__version__} yet; use --target onnx")
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
    save_onnx(graph, out, opset=args.opset, progress=progress, before_commit=check)
    if args.report:
        print(ctx.report.format())
        _report(before, graph.op_counts(), src, out)
    progress("done")
    return EXIT_OK


def _verifier(args, graph, src: Path, progress):
    from .runtime.feeds import random_feeds, resolve_dims
    from .runtime.verify import compare_outputs, run_onnx

    try:
        dims = resolve_dims(graph, dict(args.dim))
        feeds = random_feeds(graph, dims, seed=args.seed)
    except ValueError as e:
        raise FuseformerError(f"--verify: {e}") from e

    def check(tmp_model: Path) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in dims.items()) or "static shapes"
        progress(f"verifying against onnxruntime ({shown}, seed {args.seed})")
        try:
            reference = run_onnx(str(src), feeds)
        except Exception as e:
            raise ModelError(f"--verify: onnxruntime cannot run the original model: {e}") from e
        try:
            errors = compare_outputs(reference, run_onnx(str(tmp_model), feeds), args.tol)
        except ValueError as e:  # different output names or shapes
            raise VerificationFailed(f"--verify: {e}; nothing was written") from e
        print(f"verify ({shown}; tol {args.tol:g}):")
        for err in errors:
            flag = "ok" if err.bad_fraction == 0 else "FAIL"
            print(f"  {err.name}: max abs err {err.max_abs:.3e}, max rel err {err.max_rel:.3e}  {flag}")
        bad = [e.name for e in errors if e.bad_fraction > 0]
        if bad:
            raise VerificationFailed(f"outputs {bad} differ from the original beyond --tol {args.tol:g}; "
                                     f"nothing was written")
    return check


def _report(before: dict, after: dict, src: Path, out: Path) -> None:
    ops = sorted(set(before) | set(after))
    print(f"{'op':<24}{'before':>8}{'after':>8}")
    for op in ops:
        print(f"{op:<24}{before.get(op, 0):>8}{after.get(op, 0):>8}")
    print(f"{'total nodes':<24}{sum(before.values()):>8}{sum(after.values()):>8}")
    size = lambda p: p.stat().st_size + (p.with_name(p.name + ".data").stat().st_size
                                         if p.with_name(p.name + ".data").exists() else 0)
    print(f"model size: {size(src) / 1e6:.2f} MB -> {size(out) / 1e6:.2f} MB")


if __name__ == "__main__":
    sys.exit(main())
