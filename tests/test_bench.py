"""The benchmark harness (bench/bench.py) end to end on the tiny ViT: it reports every peer and
the outputs agree. Times are never asserted: they depend on the machine."""
from __future__ import annotations

import argparse
import re
import statistics

import pytest

from fuseformer.bench import bench, models
from fuseformer.cli import main



def _section(text: str, heading: str) -> list[list[str]]:
    """The rows of the first table under ``## heading``, as lists of cells (header excluded)."""
    lines = text.split(f"## {heading}\n", 1)[1].splitlines()
    rows, started = [], False
    for line in lines:
        if line.startswith("|"):
            started = True
            rows.append([c.strip() for c in line.strip("|").split(" | ")])
        elif started:
            break
    return rows[2:]  # header and the |---| line


def test_tiny_vit_every_peer_reported_and_outputs_agree(tmp_path, capsys):
    rc = main(["bench", "--models", "tiny-vit", "--runs", "3", "--warmup", "1", "--profile",
               "--out", str(tmp_path), "-q"])
    out = capsys.readouterr().out
    reports = list(tmp_path.glob("*.md"))
    assert len(reports) == 1, out
    text = reports[0].read_text()
    assert text.startswith("# fuseformer benchmark") and "`fuseformer bench --models tiny-vit" in text

    spec = models.MODELS["tiny-vit"]
    rows = {r[0]: r for r in _section(text, spec.label)}
    assert set(rows) == {bench.LABELS[p] for p in bench.PEERS}, text
    for label, (_, median, _spread, _ratio, err, _setup, notes) in rows.items():
        if median == "failed":
            # a peer may fail on some machine, but then the row says why
            assert re.match(r"failed: \w+", notes), (label, notes)
            assert label != "fuseformer", notes
            continue
        assert float(median) > 0, (label, median)
        assert float(err.split()[0]) <= 1e-3, (label, err)  # agrees with PyTorch eager
    assert rows["PyTorch eager"][4] == "0.0e+00"  # the reference itself
    summary = _section(text, "Summary")
    assert summary[0][0] == spec.label and len(summary[0]) == 1 + len(bench.PEERS)
    assert rc == bench.EXIT_OK, text

    # --profile: a per-kind table when the CPU backend can time kernels, else it says so
    if bench.profile_api() is None:
        assert "### Where fuseformer's time goes" in text and "| gemm |" in text
    else:
        assert "not available yet" in out
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        png = reports[0].with_suffix(".png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _args(**kw) -> argparse.Namespace:
    args = bench.add_arguments(argparse.ArgumentParser()).parse_args([])
    args.models, args.peers = ["tiny-vit"], list(bench.PEERS)
    for k, v in kw.items():
        setattr(args, k, v)
    return args


def test_table_ratios_failures_and_disagreement():
    """No torch needed: a synthetic result shows how failures and wrong outputs are reported."""
    import datetime

    spec = models.MODELS["tiny-vit"]
    R = bench.PeerResult
    peers = [
        R("fuseformer", [1.0, 1.0, 1.2], 0.5, max_err=1e-6),
        R("onnxruntime", [2.0, 2.0, 2.0], 0.1, max_err=2e-6),
        R("onnxruntime+optimizer", error="IndexError: list index out of range (at fusion_gpt.py:10)"),
        R("pytorch", [4.0, 4.0, 4.0], 1.0, max_err=0.0),
        R("torch.compile", [1.5, 1.5, 1.5], 20.0, max_err=0.5),  # fast but wrong: not the best peer
    ]
    result = bench.ModelResult(spec, peers)
    assert result.best_peer(1e-3).peer == "onnxruntime"
    text = bench.markdown([result], _args(), "python bench/bench.py", datetime.datetime(2025, 1, 2), None)
    rows = {r[0]: r for r in _section(text, spec.label)}
    assert rows["fuseformer"][1:4] == ["1.000", "1.000-1.160", "0.50"]
    assert rows["onnxruntime"][3] == "1.00"
    assert rows["onnxruntime + transformer optimizer"][1] == "failed"
    assert "failed: IndexError: list index out of range" in rows["onnxruntime + transformer optimizer"][6]
    assert rows["torch.compile"][4] == "5.0e-01 (over 0.001)"
    summary = _section(text, "Summary")[0]
    assert summary[1:] == ["1.000 (0.50)", "2.000 (1.00)", "failed", "4.000 (2.00)", "1.500 (0.75) (outputs differ)"]


def test_ratios_are_paired_by_round():
    """The machine slows down 2x halfway: the peers that ran in the slow rounds are not
    charged for it; a ratio is the median over the rounds of the two peers' ratio."""
    R = bench.PeerResult
    ours = R("fuseformer", rounds=[[1.0, 1.0], [1.0, 1.1], [2.0, 2.0], [2.0, 2.1], [2.0, 2.0]])
    ours.times_ms = [t for r in ours.rounds for t in r]
    ort = R("onnxruntime", rounds=[[1.2, 1.2], [1.25, 1.25], [2.4, 2.4], [2.5, 2.4], [2.4, 2.4]])
    ort.times_ms = [t for r in ort.rounds for t in r]
    # ratio of the overall medians: 2.0 / 2.4 = 0.83; per round: 0.83, 0.84, 0.83, 0.84, 0.83
    assert ours.ratio(ort) == pytest.approx(statistics.median([1.0 / 1.2, 1.05 / 1.25, 2.0 / 2.4,
                                                               2.05 / 2.45, 2.0 / 2.4]))
    assert ort.ratio(ort) == 1.0
    # the machine slowed down in round 3, between their turn and ours: the ratio of the
    # medians says 2.0 / 1.2 = 1.67, the paired ratio 0.83 (round 3's 1.67 is one of five)
    late = R("fuseformer", rounds=[[1.0], [1.0], [2.0], [2.0], [2.0]], times_ms=[1.0, 1.0, 2.0, 2.0, 2.0])
    early = R("onnxruntime", rounds=[[1.2], [1.2], [1.2], [2.4], [2.4]], times_ms=[1.2, 1.2, 1.2, 2.4, 2.4])
    assert late.median / early.median == pytest.approx(2.0 / 1.2)
    assert late.ratio(early) == pytest.approx(1.0 / 1.2)
    # without rounds (a result built by hand) it is the ratio of the medians
    assert R("a", [1.0, 3.0]).ratio(R("b", [4.0])) == 0.5
    # the best peer is the one fuseformer compares worst against, paired: onnxruntime's
    # median is the lower (1.2 against 2.2), torch.compile's paired ratio (1.1 against 1.2)
    def peer(name, times):
        return R(name, list(times), max_err=0.0, rounds=[[t] for t in times])

    result = bench.ModelResult(models.MODELS["tiny-vit"], [
        peer("fuseformer", [2.0, 1.0, 1.0, 2.0, 1.0]),
        peer("onnxruntime", [1.2, 1.2, 1.1, 2.4, 2.4]),
        peer("torch.compile", [2.2, 2.2, 2.4, 2.2, 1.1]),
    ])
    assert result.best_peer(1e-3).peer == "torch.compile"
    assert result.result("fuseformer").ratio(result.best_peer(1e-3)) == pytest.approx(1 / 1.1)


def test_bad_arguments_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--models", "resnet"])
    assert e.value.code == 2 and "unknown model(s) ['resnet']" in capsys.readouterr().err
