"""Pre-LN -> Pre-RMSNorm -> Pre-CRMSNorm: exact in float32 (1e-4) and in float64 (1e-9)."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.frontends.onnx import load_onnx
from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.ir.attrs import LayerNormalizationAttrs
from fuseformer.ir.interpreter import run
from fuseformer.ir.precision import convert_float
from fuseformer.passes import PassContext, PassManager, VerifyEachPass, optimize_graph
from fuseformer.passes.reparam.crmsnorm import RMSNormToCRMSNorm
from fuseformer.passes.reparam.prernorm import LayerNormToRMSNorm

from ..zoo import ZOO, zoo_inputs, zoo_model
from .checks import assert_same_numbers

PRE_LN = [c for c in ZOO if c[0] in ("gpt2", "vit", "deit")]
POST_LN = [c for c in ZOO if c[0] in ("bert", "minilm")]
IDS = lambda combos: [f"{n}-{e}-{o}" for n, e, o in combos]  # noqa: E731


def reparam(graph, crms: bool):
    """The default pipeline, which includes the re-parameterizations (CRMSNorm optional)."""
    ctx = PassContext(instruments=[VerifyEachPass()], disabled=[] if crms else ["crmsnorm"])
    return optimize_graph(graph, ctx), ctx


@pytest.mark.parametrize("combo", PRE_LN, ids=IDS(PRE_LN))
@pytest.mark.parametrize("crms", [False, True], ids=["rmsnorm", "crmsnorm"])
def test_float32_equal_within_1e4(combo, crms, tmp_path):
    g = load_onnx(zoo_model(*combo))
    feeds = zoo_inputs(combo[0])
    before = run(g, feeds)
    n_ln = g.op_counts().get("LayerNormalization", 0) or 5
    g, ctx = reparam(g, crms)
    counts = g.op_counts()
    assert "LayerNormalization" not in counts and "SkipLayerNorm" not in counts
    if crms:
        assert counts.get("CRMSNorm", 0) == n_ln
    else:  # skip-norm fusion runs afterwards and may take an embedding's Add with its norm
        assert counts.get("RMSNorm", 0) + counts.get("SkipRMSNorm", 0) == n_ln
    assert_same_numbers(before, g, feeds, tmp_path)


# Two exports of each Pre-LN model (float64 runs are the slow part): opset 17 first, then dynamo.
F64 = [c for m in dict.fromkeys(n for n, _, _ in PRE_LN)
       for c in [c for c in PRE_LN if c[0] == m and (c[2] == 17 or c[1] == "dynamo")][:2]]


@pytest.mark.parametrize("combo", F64, ids=IDS(F64))
def test_float64_pipeline_equal_within_1e9(combo):
    """The paper's own check: the conversion, run in float64, changes nothing but round-off.

    The reference is the same pipeline without the re-parameterizations: fusions
    themselves may differ at 1e-8 in float64, e.g. a fused GELU uses sqrt(2) exactly
    where the export spelled 1.4142135 (float32).
    """
    feeds = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in zoo_inputs(combo[0]).items()}
    results = {}
    for variant, disabled in (("LN", ["ln-to-rmsnorm", "crmsnorm"]), ("RMSNorm", ["crmsnorm"]), ("CRMSNorm", [])):
        g = optimize_graph(convert_float(load_onnx(zoo_model(*combo))), PassContext(disabled=disabled))
        results[variant] = run(g, feeds)
        assert {v.dtype for v in g.values() if v.dtype.is_float} == {DType.DOUBLE}
    for variant in ("RMSNorm", "CRMSNorm"):
        for k, want in results["LN"].items():
            np.testing.assert_allclose(results[variant][k], want, atol=1e-9, rtol=0, err_msg=f"{variant} {k}")


@pytest.mark.parametrize("combo", [c for c in PRE_LN if c[2] == 17], ids=IDS([c for c in PRE_LN if c[2] == 17]))
def test_crmsnorm_stream_is_d_minus_1(combo):
    g = load_onnx(zoo_model(*combo))
    d = next(n for n in g.nodes if n.op is Op.LayerNormalization).inputs[0].shape[-1]
    in_shapes = [v.shape for v in g.inputs]
    out_shapes = [v.shape for v in g.outputs]
    g, _ = reparam(g, crms=True)
    for n in g.nodes:
        if n.op is Op.CRMSNorm:
            assert n.inputs[0].shape[-1] == d - 1 and n.attrs.dim == d
        if n.op is Op.Add and n.outputs[0].dtype is DType.FLOAT and n.outputs[0].shape[-1] in (d, d - 1) \
                and any(u.op is Op.CRMSNorm for u in n.outputs[0].users()):
            assert n.outputs[0].shape[-1] == d - 1  # every residual add feeding a norm
    assert [v.shape for v in g.inputs] == in_shapes and [v.shape for v in g.outputs] == out_shapes


@pytest.mark.parametrize("combo", POST_LN, ids=IDS(POST_LN))
def test_post_ln_reported_and_unchanged(combo):
    g = load_onnx(zoo_model(*combo))
    g = optimize_graph(g, PassContext(disabled=["ln-to-rmsnorm", "crmsnorm"]))
    before = str(g)
    ctx = PassContext()
    PassManager([LayerNormToRMSNorm(), RMSNormToCRMSNorm()])(g, ctx)
    assert str(g) == before
    report = ctx.report.format()
    assert "LayerNorm -> RMSNorm" in report and "not convertible" in report and "Post-LN" in report


def _tiny_pre_ln(nonlinear_writer: bool = False):
    """x -> [+ pos] -> LN -> Linear -> (Relu?) -> + residual -> LN -> out."""
    rng = np.random.default_rng(0)
    g = Graph("tiny")
    ids = g.add_input("ids", DType.INT64, (Sym("batch"), 4))
    table = g.add_constant(rng.standard_normal((10, 8)).astype(np.float32), "table")
    h = g.make_node(Op.Gather, [table, ids], name="embed").output
    gamma = g.add_constant(rng.uniform(0.5, 1.5, 8).astype(np.float32), "gamma")
    beta = g.add_constant(rng.standard_normal(8).astype(np.float32), "beta")
    n1 = g.make_node(Op.LayerNormalization, [h, gamma, beta], LayerNormalizationAttrs(), name="ln1").output
    w = g.add_constant(rng.standard_normal((8, 8)).astype(np.float32), "w")
    b = g.add_constant(rng.standard_normal(8).astype(np.float32), "b")
    f = g.make_node(Op.Linear, [n1, w, b], name="fc").output
    if nonlinear_writer:
        f = g.make_node(Op.Relu, [f], name="act").output
    h2 = g.make_node(Op.Add, [h, f], name="residual").output
    g.outputs.append(g.make_node(Op.LayerNormalization, [h2, gamma, beta], LayerNormalizationAttrs(),
                                 name="ln_f").output)
    return g, {"ids": rng.integers(0, 10, (2, 4))}


def test_structure_after_conversion(tmp_path):
    g, feeds = _tiny_pre_ln()
    before = run(g, feeds)
    ctx = PassContext(instruments=[VerifyEachPass()])
    PassManager([LayerNormToRMSNorm()])(g, ctx)
    assert [n.op for n in g.nodes] == [Op.Gather, Op.RMSNorm, Op.Linear, Op.Add, Op.RMSNorm]
    rms1, rms_f = (n for n in g.nodes if n.op is Op.RMSNorm)
    assert len(rms1.inputs) == 1  # gamma and beta went into fc
    assert len(rms_f.inputs) == 3  # ln_f is a graph output: it keeps them
    table = np.asarray(g.nodes[0].inputs[0].const.numpy())
    np.testing.assert_allclose(table.mean(axis=1), 0, atol=1e-6)
    assert_same_numbers(before, g, feeds, tmp_path)
    PassManager([RMSNormToCRMSNorm()])(g, ctx)
    assert [n.op for n in g.nodes][:4] == [Op.Gather, Op.CRMSNorm, Op.Linear, Op.Add]
    assert g.nodes[0].outputs[0].shape == (Sym("batch"), 4, 7)
    assert_same_numbers(before, g, feeds, tmp_path)


def test_nonlinear_writer_is_reported():
    g, _ = _tiny_pre_ln(nonlinear_writer=True)
    before = str(g)
    ctx = PassContext()
    PassManager([LayerNormToRMSNorm()])(g, ctx)
    assert str(g) == before
    assert "act (Relu) writes into the residual stream" in ctx.report.format()
