"""Latency of fuseformer's CPU artifact next to the runtimes a user would otherwise pick.

    python bench/bench.py                          # every model, 2 threads, median of 30 runs
    python bench/bench.py --models tiny-vit --runs 5
    fuseformer bench --profile                     # the same, from the installed command

One process, the same inputs for everyone, for each model (bench/models.py: BERT-base s128,
GPT-2 s128, ViT-S/16 224, a tiny ViT; batch 1, fp32, seeded random weights):

  fuseformer                 optimize_graph + compile_cpu at the benchmark's shape, run by
                             fuseformer.runtime
  onnxruntime                the same ONNX file, ORT_ENABLE_ALL
  onnxruntime + optimizer    onnxruntime.transformers.optimizer.optimize_model first
  PyTorch eager              the module the file was exported from
  torch.compile              that module through inductor (the first call, its compile, is
                             timed on its own)

Every peer runs at --threads (torch.set_num_threads, intra_op_num_threads, the artifact's
threads). Timing: warm-up calls, then --runs timed calls split over --rounds rounds that
visit the peers in turn, each round re-warming a peer with untimed calls (two, and at least
50 ms, so that the previous peer's threads have stopped spinning); the median is
reported. A ratio between two peers is paired: the median, over the rounds, of the ratio of
their medians within the round, so that the machine's speed drifting between rounds (by up
to 1.5x on a shared 2-core machine) cancels instead of landing on whoever ran then. Outputs are checked
against PyTorch eager (max abs error, --atol). A peer that fails is a result: its row
gives the reason. Writes <out>/<date>.md (a Markdown table) and <out>/<date>.png (a bar
chart; needs matplotlib, the `bench` extra).

Exit status: 0 when fuseformer ran and every peer that ran agreed with PyTorch eager,
3 otherwise (the table says which), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import inspect
import io
import logging
import os
import pathlib
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

try:
    from fuseformer.bench import models as bench_models
except ImportError:  # fuseformer installed from a wheel: bench/ is only in the source tree
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    import models as bench_models  # type: ignore[no-redef]

PEERS = ("fuseformer", "onnxruntime", "onnxruntime+optimizer", "pytorch", "torch.compile")
LABELS = {
    "fuseformer": "fuseformer",
    "onnxruntime": "onnxruntime",
    "onnxruntime+optimizer": "onnxruntime + transformer optimizer",
    "pytorch": "PyTorch eager",
    "torch.compile": "torch.compile",
}
REFERENCE = "pytorch"
RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
EXIT_OK, EXIT_USAGE, EXIT_MISMATCH = 0, 2, 3
# untimed calls that re-warm a peer at the start of each round (its threads and caches):
# the tiny ViT's first call after another peer's turn measured 1.25-1.3x its next ones.
# At least REWARM_S seconds of them, too: the previous peer may leave its threads spinning
# for a few ms (OpenMP's and onnxruntime's pools spin before they sleep), on 2 cores
# taking the CPU from whoever runs next
REWARM = 2
REWARM_S = 0.05
# above this share of the CPU taken by other processes, the report warns that it measured contention
BUSY = 0.05


@dataclass
class PeerResult:
    peer: str
    times_ms: list[float] = field(default_factory=list)
    setup_s: float | None = None     # building the runnable: session, optimizer, compile
    error: str | None = None         # why the peer has no numbers
    max_err: float | None = None     # max abs error against PyTorch eager over every output
    notes: list[str] = field(default_factory=list)
    rounds: list[list[float]] = field(default_factory=list)  # times_ms again, per round

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.times_ms)

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.times_ms, q))

    def ratio(self, other: PeerResult) -> float:
        """This peer's latency over ``other``'s, paired by round (see the module docstring);
        the ratio of the medians when the two have no rounds in common."""
        pairs = [statistics.median(a) / statistics.median(b)
                 for a, b in zip(self.rounds, other.rounds) if a and b]
        return statistics.median(pairs) if pairs else self.median / other.median


@dataclass
class ModelResult:
    spec: bench_models.BenchModel
    peers: list[PeerResult]
    profile: str | None = None       # the --profile section, Markdown
    # share of the machine's CPU time that other processes took during the timed calls
    others: float | None = None

    def result(self, peer: str) -> PeerResult | None:
        return next((r for r in self.peers if r.peer == peer), None)

    def best_peer(self, atol: float) -> PeerResult | None:
        """The fastest peer other than fuseformer whose outputs agree: what fuseformer is held
        to. Fastest against fuseformer, paired by round (the one fuseformer's ratio is highest
        to), or by median when fuseformer has no times."""
        rivals = [r for r in self.peers if r.peer != "fuseformer" and r.ok and _agrees(r, atol)]
        ours = self.result("fuseformer")
        if ours is not None and ours.ok:
            return min(rivals, key=lambda r: r.ratio(ours), default=None)
        return min(rivals, key=lambda r: r.median, default=None)


def _agrees(r: PeerResult, atol: float) -> bool:
    return r.max_err is not None and r.max_err <= atol


# ---------------------------------------------------------------------------- peers
#
# Each setup function returns a callable that runs the model once on the feeds and
# returns {output name: array}, plus notes for the table. Setup time is measured
# around it; for torch.compile the first call (the compile) is part of the setup.


class _Scratch:
    """A temporary directory for artifacts and optimized models, removed at the end."""

    def __init__(self):
        root = bench_models.cache_root()
        root.mkdir(parents=True, exist_ok=True)
        self.path = pathlib.Path(tempfile.mkdtemp(prefix=".run-", dir=root))

    def close(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _artifact_dims(graph, feeds) -> dict[str, int]:
    """The value of every symbolic input dim at the benchmark's shape, read off the feeds."""
    from fuseformer.ir.shape import Sym

    dims: dict[str, int] = {}
    for v in graph.inputs:
        for axis, d in enumerate(v.shape or ()):
            if isinstance(d, Sym):
                dims.setdefault(d.name, int(feeds[v.name].shape[axis]))
    return dims


def _compile_fuseformer(path, feeds, threads, out_dir, profile=False):
    from fuseformer.backends.cpu import compile_cpu
    from fuseformer.frontends.onnx import load_onnx
    from fuseformer.passes import optimize_graph

    graph = optimize_graph(load_onnx(path))
    dims = _artifact_dims(graph, feeds)
    extra = {"profile": True} if profile else {}
    compile_cpu(graph, out_dir, dims, threads=threads, **extra)
    return dims


def setup_fuseformer(spec, path, feeds, threads, scratch: _Scratch):
    import fuseformer.runtime

    out = scratch.path / f"{spec.name}.cpu"
    dims = _compile_fuseformer(path, feeds, threads, out)
    session = fuseformer.runtime.load(out, threads=threads)
    shown = ", ".join(f"{k}={v}" for k, v in dims.items())
    notes = [f"{session.manifest.get('kernels', '?')} kernels, compiled for {shown}"]
    return (lambda: session.run(feeds)), notes


def _ort_session(path, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _ort_runner(session, feeds):
    names = [o.name for o in session.get_outputs()]
    wanted = {i.name for i in session.get_inputs()}
    given = {k: v for k, v in feeds.items() if k in wanted}  # an optimized graph may drop an input
    return lambda: dict(zip(names, session.run(names, given)))


def setup_onnxruntime(spec, path, feeds, threads, scratch):
    return _ort_runner(_ort_session(path, threads), feeds), []


def setup_onnxruntime_optimizer(spec, path, feeds, threads, scratch):
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    # the optimizer prints and logs its progress; a failure still raises past this
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(str(path), model_type=spec.ort_model_type, num_heads=spec.num_heads,
                               hidden_size=spec.hidden_size)
    fused = {k: v for k, v in model.get_fused_operator_statistics().items() if v}
    out = scratch.path / f"{spec.name}-ort-optimized.onnx"
    model.save_model_to_file(str(out))
    notes = [f"model_type={spec.ort_model_type}; fused: "
             + (", ".join(f"{v} {k}" for k, v in sorted(fused.items())) or "nothing")]
    return _ort_runner(_ort_session(out, threads), feeds), notes


def _torch_runner(module, spec, feeds):
    import torch

    args = tuple(torch.from_numpy(feeds[n]) for n in spec.input_names)

    def call():
        with torch.inference_mode():
            out = module(*args)
        return {n: o.numpy() for n, o in zip(spec.output_names, out)}
    return call


def setup_pytorch(spec, path, feeds, threads, scratch, attn="sdpa"):
    return _torch_runner(bench_models.torch_model(spec, attn=attn), spec, feeds), [f"{attn} attention"]


def setup_torch_compile(spec, path, feeds, threads, scratch, attn="sdpa"):
    import torch

    compiled = torch.compile(bench_models.torch_model(spec, attn=attn))
    run = _torch_runner(compiled, spec, feeds)
    run()  # the compile happens here, inside the setup time
    return run, [f"inductor, default mode; {attn} attention; setup = first call (compile)"]


SETUP: dict[str, Callable] = {
    "fuseformer": setup_fuseformer,
    "onnxruntime": setup_onnxruntime,
    "onnxruntime+optimizer": setup_onnxruntime_optimizer,
    "pytorch": setup_pytorch,
    "torch.compile": setup_torch_compile,
}


def _reason(exc: BaseException) -> str:
    """One line for the table: the exception type, its message and where it was raised."""
    text = " ".join(str(exc).split()) or "(no message)"
    if len(text) > 240:
        text = text[:237] + "..."
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {pathlib.Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {text}{where}"


# ---------------------------------------------------------------------------- measuring


def _max_abs_error(reference: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> tuple[float, str | None]:
    """Max abs error over every output, matched by name (by position when the names differ)."""
    note = None
    if set(got) != set(reference):
        if len(got) != len(reference):
            raise ValueError(f"outputs {sorted(got)} do not match the reference's {sorted(reference)}")
        got = dict(zip(reference, got.values()))
        note = "outputs matched by position (their names differ)"
    worst = 0.0
    for name, ref in reference.items():
        out = np.asarray(got[name])
        if out.shape != ref.shape:
            raise ValueError(f"output {name!r} has shape {list(out.shape)}, expected {list(ref.shape)}")
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
        if np.isnan(diff).any():
            worst = float("nan")
    return worst, note


def bench_model(spec, args, progress: Callable[[str], None]) -> ModelResult:
    import torch

    path = bench_models.onnx_path(spec, progress=progress)
    feeds = bench_models.inputs(spec, seed=args.seed)
    results = {p: PeerResult(p) for p in args.peers}
    runners: dict[str, Callable] = {}
    outputs: dict[str, dict] = {}
    scratch = _Scratch()
    try:
        for peer in args.peers:
            progress(f"{spec.name}: setting up {LABELS[peer]}")
            r = results[peer]
            kwargs = {"attn": args.torch_attn} if peer in ("pytorch", "torch.compile") else {}
            start = time.perf_counter()
            try:
                run, r.notes = SETUP[peer](spec, path, feeds, args.threads, scratch, **kwargs)
                r.setup_s = time.perf_counter() - start
                outputs[peer] = run()
                runners[peer] = run
            except Exception as e:  # a failing peer is a result, reported in its row
                r.error = _reason(e)
                progress(f"{spec.name}: {LABELS[peer]} failed: {r.error}")

        reference = outputs.get(REFERENCE)
        if reference is None:  # PyTorch eager missing: compare with plain onnxruntime instead
            ref_name = "onnxruntime"
            reference = outputs.get(ref_name)
        else:
            ref_name = REFERENCE
        for peer, out in outputs.items():
            if reference is None:
                results[peer].notes.append("no reference to compare with")
                continue
            try:
                results[peer].max_err, note = _max_abs_error(reference, out)
                if note:
                    results[peer].notes.append(note)
                if ref_name != REFERENCE:
                    results[peer].notes.append(f"error against {LABELS[ref_name]}")
            except ValueError as e:
                results[peer].notes.append(f"outputs not comparable: {e}")

        before = _cpu_sample()
        _time_peers(runners, results, args, spec, progress)
        others = _others_share(before, _cpu_sample())
        profile = _profile_section(spec, path, feeds, args, scratch, results.get("fuseformer"), progress) \
            if args.profile else None
    finally:
        scratch.close()
        runners.clear()
        outputs.clear()
        gc.collect()
        torch._dynamo.reset()  # drop the compiled graphs (and the weights they hold) of this model
    return ModelResult(spec, [results[p] for p in args.peers], profile, others)


def _cpu_sample() -> tuple[float, float, float] | None:
    """(busy seconds of the whole machine, all seconds of it, CPU seconds of this process), or None
    where /proc/stat is missing."""
    try:
        fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user)
    ticks = [int(x) for x in fields[:8]]
    hz = os.sysconf("SC_CLK_TCK")
    own = os.times()
    return ((sum(ticks) - ticks[3] - ticks[4]) / hz, sum(ticks) / hz, own.user + own.system)


def _others_share(before, after) -> float | None:
    """How much of the machine other processes used between two samples: a benchmark on a busy
    machine measures the contention, and this says so."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    busy, total, own = (a - b for a, b in zip(after, before))
    return min(1.0, max(0.0, (busy - own) / total))


def _time_peers(runners, results, args, spec, progress) -> None:
    progress(f"{spec.name}: warm-up ({args.warmup} calls each)")
    for peer, run in list(runners.items()):
        try:
            for _ in range(args.warmup):
                run()
        except Exception as e:
            results[peer].error = _reason(e)
            del runners[peer]
    rounds = max(1, min(args.rounds, args.runs))
    # garbage collection pauses would land in whichever peer happens to be running
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for k in range(rounds):
            n = args.runs // rounds + (k < args.runs % rounds)
            progress(f"{spec.name}: round {k + 1}/{rounds}, {n} timed calls per peer")
            for peer, run in list(runners.items()):
                try:
                    warm_until = time.perf_counter() + REWARM_S
                    calls = 0
                    while calls < REWARM or time.perf_counter() < warm_until:
                        run()
                        calls += 1
                    times = results[peer].times_ms
                    this_round: list[float] = []
                    for _ in range(n):
                        start = time.perf_counter()
                        run()
                        this_round.append((time.perf_counter() - start) * 1e3)
                    times.extend(this_round)
                    results[peer].rounds.append(this_round)
                except Exception as e:
                    results[peer].error = _reason(e)
                    results[peer].times_ms.clear()
                    results[peer].rounds.clear()
                    del runners[peer]
    finally:
        if gc_was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------- --profile


def profile_api() -> str | None:
    """None when this fuseformer can time kernels by kind, else why not."""
    from fuseformer.backends.cpu import compile_cpu
    from fuseformer.runtime.session import Session

    if "profile" not in inspect.signature(compile_cpu).parameters or not hasattr(Session, "profile"):
        return ("not available yet: this fuseformer's CPU backend keeps no per-kernel times "
                "(it needs compile_cpu(..., profile=True) and Session.profile())")
    return None


def _profile_section(spec, path, feeds, args, scratch, plain: PeerResult | None, progress) -> str:
    missing = profile_api()
    if missing:
        return f"fuseformer profile: {missing}; nothing was measured."
    import fuseformer.runtime

    progress(f"{spec.name}: profiling fuseformer (a second build that times every kernel call)")
    out = scratch.path / f"{spec.name}.profile.cpu"
    try:
        _compile_fuseformer(path, feeds, args.threads, out, profile=True)
        session = fuseformer.runtime.load(out, threads=args.threads)
        for _ in range(args.warmup):
            session.run(feeds)
        session.profile(reset=True)
        start = time.perf_counter()
        for _ in range(args.runs):
            session.run(feeds)
        wall = (time.perf_counter() - start) * 1e3 / args.runs
        totals = session.profile()
    except Exception as e:
        return f"fuseformer profile failed: {_reason(e)}"
    per_run = {k: v / args.runs for k, v in totals.items()}
    kernels = sum(per_run.values())
    lines = ["| kernel kind | ms per run | share of kernel time |", "|---|---:|---:|"]
    for kind, ms in sorted(per_run.items(), key=lambda kv: -kv[1]):
        share = ms / kernels if kernels > 0 else 0.0
        lines.append(f"| {kind} | {ms:.3f} | {share:.1%} |")
    lines.append(f"| all kernels | {kernels:.3f} | |")
    plain_text = f"{plain.median:.3f} ms" if plain is not None and plain.ok else "n/a"
    lines.append("")
    lines.append(f"Profiled build: {wall:.3f} ms per call (mean of {args.runs}), of which kernels "
                 f"{kernels:.3f} ms; the plain build's median: {plain_text}. Clock reads around every "
                 f"kernel slow the profiled build: use it to rank kernel kinds, not to quote latency.")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- report


def _fmt_ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores"


def _versions() -> str:
    import importlib.metadata as md

    parts = []
    for dist in ("fuseformer", "onnxruntime", "torch", "transformers", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            parts.append(f"{dist} {md.version(dist)}")
    return ", ".join(parts)


def _source_state() -> str | None:
    """The commit of the checkout that ran, and whether it had uncommitted changes: the numbers
    belong to that code, not to whatever version string it carries."""
    import subprocess

    root = pathlib.Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"source at commit {commit}" + (" with uncommitted changes" if dirty else "")


def markdown(results: list[ModelResult], args, command: str, started: datetime.datetime,
             load: tuple[float, float, float] | None) -> str:
    peers = list(args.peers)
    head = [
        f"# fuseformer benchmark, {started:%Y-%m-%d %H:%M}",
        "",
        f"`{command}`",
        "",
        f"- {_machine()}; load average before the run: "
        + (", ".join(f"{x:.2f}" for x in load) if load else "unknown"),
        f"- {args.threads} threads for every peer; batch 1, fp32; median of {args.runs} timed calls after "
        f"{args.warmup} warm-up calls, in {max(1, min(args.rounds, args.runs))} rounds over the peers",
        f"- outputs compared with PyTorch eager: max abs error over all outputs, agreeing when "
        f"<= {args.atol:g}",
        f"- {_versions()}" + (f"; {state}" if (state := _source_state()) else ""),
    ]
    busy = [m for m in results if m.others is not None and m.others > BUSY]
    if busy:
        head.append("- **the machine was busy**: other processes took "
                    + ", ".join(f"{m.others:.0%} ({m.spec.name})" for m in busy)
                    + " of its CPU during the timed calls; these numbers measure that contention too")
    head += [
        "",
        "## Summary",
        "",
        "Median ms; in brackets the ratio to the best peer (the fastest of the others whose outputs "
        "agree), paired by round: the median over the rounds of the two peers' ratio within the "
        "round. fuseformer is ahead where its ratio is below 1.00.",
        "",
        "| model | " + " | ".join(LABELS[p] for p in peers) + " |",
        "|---|" + "---:|" * len(peers),
    ]
    for m in results:
        best = m.best_peer(args.atol)
        cells = []
        for r in m.peers:
            if not r.ok:
                cells.append("failed")
                continue
            ratio = f" ({r.ratio(best):.2f})" if best else ""
            flag = "" if _agrees(r, args.atol) else " (outputs differ)"
            cells.append(f"{_fmt_ms(r.median)}{ratio}{flag}")
        head.append(f"| {m.spec.label} | " + " | ".join(cells) + " |")
    body = []
    for m in results:
        best = m.best_peer(args.atol)
        body += [
            "",
            f"## {m.spec.label}",
            "",
            f"Best peer: {LABELS[best.peer] if best else 'none (no other peer ran and agreed)'}."
            + ("" if m.others is None else
               f" Other processes took {m.others:.0%} of the machine's CPU during the timed calls."),
            "",
            "| peer | median ms | p10-p90 ms | ratio to best peer | max abs err vs eager | setup s | notes |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in m.peers:
            setup = "-" if r.setup_s is None else f"{r.setup_s:.2f}" if r.setup_s < 10 else f"{r.setup_s:.0f}"
            if r.max_err is None:
                err = "-"
            else:
                err = f"{r.max_err:.1e}" + ("" if _agrees(r, args.atol) else f" (over {args.atol:g})")
            notes = "; ".join(r.notes)
            if r.ok:
                ratio = f"{r.ratio(best):.2f}" if best else "-"
                spread = f"{_fmt_ms(r.quantile(0.1))}-{_fmt_ms(r.quantile(0.9))}"
                body.append(f"| {LABELS[r.peer]} | {_fmt_ms(r.median)} | {spread} | {ratio} | {err} | "
                            f"{setup} | {_cell(notes)} |")
            else:
                reason = r.error or "no timed runs"
                body.append(f"| {LABELS[r.peer]} | failed | - | - | {err} | {setup} | "
                            f"{_cell('failed: ' + reason + ('; ' + notes if notes else ''))} |")
        if m.profile:
            body += ["", "### Where fuseformer's time goes", "", m.profile]
    return "\n".join(head + body) + "\n"


def chart(results: list[ModelResult], args, path: pathlib.Path) -> str | None:
    """A bar chart of the ratios to the best peer (models differ 100x in ms, ratios compare);
    returns why there is none, or None."""
    try:
        import matplotlib
    except ImportError:
        return "no chart: matplotlib is not installed (pip install 'fuseformer[bench]')"
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    peers = list(args.peers)
    width = 0.8 / len(peers)
    fig, ax = plt.subplots(figsize=(2.6 * len(results) + 3, 4.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = 1.0
    for j, peer in enumerate(peers):
        for i, m in enumerate(results):
            r, best = m.result(peer), m.best_peer(args.atol)
            x = i + (j - (len(peers) - 1) / 2) * width
            if r is None or not r.ok or best is None:
                ax.text(x, 0.02, "failed" if r is not None and not r.ok else "n/a", rotation=90,
                        ha="center", va="bottom", fontsize=7, color=colors[j % len(colors)])
                continue
            ratio = r.ratio(best)
            top = max(top, ratio)
            # hatched: outputs differ from PyTorch eager beyond --atol
            ax.bar(x, ratio, width, color=colors[j % len(colors)], label=LABELS[peer],
                   hatch=None if _agrees(r, args.atol) else "//")
            ax.text(x, ratio, f"{_fmt_ms(r.median)}", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(results)), [m.spec.label.replace(" (", "\n(") for m in results], fontsize=8)
    ax.set_ylabel("latency / best peer's, paired by round (lower is faster)")
    ax.set_ylim(0, top * 1.25)
    ax.set_title(f"batch 1, fp32, {args.threads} threads, median of {args.runs} (labels: ms)", fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    seen = {}  # one legend entry per peer, not one per bar
    for h, lab in zip(handles, labels):
        seen.setdefault(lab, h)
    ax.legend(seen.values(), seen.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    _atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return None


def _atomic(path: pathlib.Path, write: Callable[[str], None]) -> None:
    """``write(tmp)`` then rename onto ``path``: a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------- command line


def _models_arg(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    bad = [n for n in names if n not in bench_models.MODELS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown model(s) {bad}; known: {', '.join(bench_models.MODELS)}")
    return names


def _peers_arg(text: str) -> list[str]:
    names = [n for n in text.split(",") if n]
    bad = [n for n in names if n not in PEERS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown peer(s) {bad}; known: {', '.join(PEERS)}")
    return names


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The benchmark's options (shared by bench/bench.py and `fuseformer bench`)."""
    parser.add_argument("--models", type=_models_arg, action="extend", metavar="NAME[,NAME...]",
                        help=f"models to run (default: all of {', '.join(bench_models.MODELS)})")
    parser.add_argument("--peers", type=_peers_arg, action="extend", metavar="NAME[,NAME...]",
                        help=f"peers to run (default: all of {', '.join(PEERS)}); the error column "
                             f"compares with 'pytorch', or with 'onnxruntime' without it")
    parser.add_argument("--runs", type=_positive, default=30, help="timed calls per peer (default 30)")
    parser.add_argument("--warmup", type=_positive, default=5, help="warm-up calls per peer (default 5)")
    parser.add_argument("--rounds", type=_positive, default=10,
                        help="split the timed calls over this many rounds through the peers (default 10)")
    parser.add_argument("--threads", type=_positive, default=2, help="threads for every peer (default 2)")
    parser.add_argument("--atol", type=float, default=1e-3,
                        help="max abs error against PyTorch eager that counts as agreeing (default 1e-3)")
    parser.add_argument("--torch-attn", choices=("sdpa", "eager"), default="sdpa",
                        help="transformers' attention for the PyTorch peers (default sdpa, its default; "
                             "the ONNX export always traces eager)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the inputs")
    parser.add_argument("--profile", action="store_true",
                        help="also print where fuseformer's time goes per kernel kind (a second, "
                             "instrumented build)")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS_DIR,
                        help=f"directory for <date>.md and <date>.png (default {RESULTS_DIR})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return parser


def run(args, command: str | None = None) -> tuple[int, list[ModelResult], pathlib.Path]:
    """Run the benchmark for parsed ``args``; returns (exit status, results, Markdown path)."""
    import torch

    args.models = list(dict.fromkeys(args.models or bench_models.MODELS))
    args.peers = list(dict.fromkeys(args.peers or PEERS))
    command = command or "python bench/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = datetime.datetime.now()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    t0 = time.perf_counter()

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[bench {time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    torch.set_num_threads(args.threads)
    with contextlib.suppress(RuntimeError):  # only settable before torch's first parallel work
        torch.set_num_interop_threads(1)
    missing = profile_api() if args.profile else None
    if missing:
        print(f"--profile: {missing}; the benchmark runs without it", file=sys.stderr)

    results = []
    for name in args.models:
        results.append(bench_model(bench_models.MODELS[name], args, progress))
    text = markdown(results, args, command.strip(), started, load)
    md_path = args.out / f"{started:%Y-%m-%d}.md"
    _atomic(md_path, lambda tmp: pathlib.Path(tmp).write_text(text))
    no_chart = chart(results, args, md_path.with_suffix(".png"))
    print(text)  # the profile sections, if any, are part of it
    print(f"wrote {md_path}" + (f" and {md_path.with_suffix('.png')}" if no_chart is None else f" ({no_chart})"))
    if missing:
        print(f"--profile: {missing}")
    bad = []
    for m in results:
        for r in m.peers:
            if r.peer == "fuseformer" and not r.ok:
                bad.append(f"{m.spec.name}: fuseformer failed")
            elif r.ok and r.max_err is not None and not _agrees(r, args.atol):
                bad.append(f"{m.spec.name}: {LABELS[r.peer]} differs by {r.max_err:.2e}")
    if bad:
        print("problems: " + "; ".join(bad), file=sys.stderr)
    return (EXIT_MISMATCH if bad else EXIT_OK), results, md_path


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="bench.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter))
    args = parser.parse_args(argv)
    return run(args)[0]


if __name__ == "__main__":
    sys.exit(main())
