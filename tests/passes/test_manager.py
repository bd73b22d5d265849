"""Pass manager, context and instruments."""
from __future__ import annotations

import numpy as np
import pytest

from fuseformer.ir import DType, Graph, Op, Sym
from fuseformer.passes import (DumpIR, NumericalCheck, Pass, PassBrokeGraph, PassContext, PassError,
                               PassManager, PassResult, Timing, VerifyEachPass)


def graph():
    g = Graph("g")
    x = g.add_input("x", DType.FLOAT, (Sym("batch"), 4))
    y = g.make_node(Op.Relu, [x], name="relu").output
    g.outputs.append(g.make_node(Op.Neg, [y], name="neg").output)
    return g


FEEDS = {"x": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)}


class Noop(Pass):
    """x -> x"""
    name, opt_level = "noop", 0

    def run(self, g, ctx):
        return PassResult(g, False)


class Rename(Pass):
    """Counts its runs; reports a change the first two times (to test fixpoints)."""
    name, opt_level = "rename", 1

    def __init__(self):
        self.runs = 0

    def run(self, g, ctx):
        self.runs += 1
        return PassResult(g, self.runs <= 2)


class NegToIdentity(Pass):
    """-x -> x: a deliberately wrong rewrite."""
    name, opt_level = "neg-to-identity", 1

    def run(self, g, ctx):
        node = next((n for n in g.nodes if n.op is Op.Neg), None)
        if node is None:
            return PassResult(g, False)
        with g.inserting_before(node):
            ident = g.make_node(Op.Identity, [node.inputs[0]])
        g.replace_all_uses_with(node.output, ident.output)
        g.erase(node)
        return PassResult(g, True)


class BreakUses(Pass):
    """Leaves a stale use list."""
    name, opt_level = "break-uses", 1

    def run(self, g, ctx):
        g.nodes[1].inputs[0] = g.inputs[0]
        return PassResult(g, True)


class Crash(Pass):
    name, opt_level = "crash", 1

    def run(self, g, ctx):
        raise KeyError("boom")


def test_fixpoint_runs_until_no_change():
    r = Rename()
    result = PassManager([r], fixpoint=True)(graph(), PassContext())
    assert r.runs == 3 and result.modified


def test_opt_level_and_disabled():
    r = Rename()
    PassManager([r])(graph(), PassContext(opt_level=0))
    assert r.runs == 0
    PassManager([r])(graph(), PassContext(opt_level=1, disabled=["rename"]))
    assert r.runs == 0
    PassManager([r])(graph(), PassContext(opt_level=1))
    assert r.runs == 1


def test_duplicate_pass_names_rejected():
    with pytest.raises(ValueError, match="listed twice"):
        PassManager([Noop(), Noop()])


def test_pass_error_names_pass_and_predecessors():
    with pytest.raises(PassError, match=r"pass 'crash' failed: KeyError.*before it: noop"):
        PassManager([Noop(), Crash()])(graph(), PassContext())


def test_verify_instrument_names_pass():
    with pytest.raises(PassBrokeGraph, match="after pass 'break-uses'.*use list"):
        PassManager([BreakUses()])(graph(), PassContext(instruments=[VerifyEachPass()]))


@pytest.mark.parametrize("mode", ["each", "bisect"])
def test_numerical_check_names_first_bad_pass(mode):
    passes = [Noop(), Rename(), NegToIdentity()]
    ctx = PassContext(instruments=[NumericalCheck(FEEDS, mode=mode)])
    with pytest.raises(PassBrokeGraph, match="'neg-to-identity'.*max abs error"):
        PassManager(passes)(graph(), ctx)


def test_timing_and_dump(tmp_path):
    ctx = PassContext(instruments=[Timing(), DumpIR(tmp_path)])
    PassManager([Noop(), NegToIdentity()])(graph(), ctx)
    assert set(ctx.report.timings) == {"noop", "neg-to-identity"}
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["00_input.txt", "01_noop.txt", "02_neg-to-identity.txt"]
    assert "Neg(" in (tmp_path / "00_input.txt").read_text()
    assert "Neg(" not in (tmp_path / "02_neg-to-identity.txt").read_text()
