"""Pieces of the CPU backend on their own: symbolic dims, the arena planner, comment escaping."""
from __future__ import annotations

import itertools
import random

import pytest

from fuseformer.backends.cpu.planner import Buffer, check, plan
from fuseformer.backends.cpu.source import Source, comment_text
from fuseformer.backends.cpu.symexpr import Bounds, Expr

SEQ, BATCH = Expr.sym("seq"), Expr.sym("batch")
NAMES = {"seq": "s1", "batch": "s0"}.__getitem__


def test_expressions_are_canonical_polynomials():
    assert 2 * SEQ + 1 - SEQ == SEQ + 1
    assert (SEQ * 64 * BATCH).exact_div(BATCH * 64) == SEQ
    assert (SEQ * 64).exact_div(BATCH) is None
    assert (SEQ + 1).exact_div(SEQ + 1) == Expr.const(1)
    assert str(BATCH * SEQ * 4 + 3) == "4*batch*seq + 3"
    assert (BATCH * SEQ * 4 - 3).render(NAMES) == "(4*s0*s1 - 3)"
    assert (-SEQ).render(NAMES) == "(-s1)"
    assert Expr.const(2**40).render(NAMES) == "1099511627776LL"
    assert (SEQ * SEQ + 2).evaluate({"seq": 5}) == 27


def test_bounds_decide_comparisons_within_the_maxima():
    b = Bounds({"seq": 128, "batch": 4})
    assert b.min(SEQ, 512) == SEQ  # a position table longer than any sequence
    assert b.max(SEQ - 1, 0) == SEQ - 1
    assert b.sign(SEQ - 200) == -1 and b.sign(SEQ) == 1 and b.sign(SEQ - 64) is None
    opaque = b.min(SEQ, 64)
    assert opaque.evaluate({"seq": 100}) == 64 and opaque.evaluate({"seq": 3}) == 3
    assert "std::min<int64_t>" in opaque.render(NAMES)
    assert b.floordiv(SEQ * 6, 3) == 2 * SEQ
    q = b.floordiv(SEQ + 1, 2)
    assert q.evaluate({"seq": 6}) == 3 and "ff::floordiv" in q.render(NAMES)
    assert b.ceildiv(SEQ + 1, 2).evaluate({"seq": 6}) == 4
    assert b.range(BATCH * SEQ * 4) == (4, 4 * 4 * 128)


def test_planner_never_overlaps_live_buffers_and_reuses_dead_ones():
    rng = random.Random(0)
    for _ in range(50):
        buffers = []
        for i in range(30):
            start = rng.randrange(40)
            buffers.append(Buffer(i, rng.choice([0, 64, 100, 4096, 10_000]), start, start + rng.randrange(6)))
        total = plan(buffers)
        check(buffers)
        assert all(b.offset % 64 == 0 and b.offset + b.size <= total for b in buffers)
        peak = max(sum(b.size for b in buffers if b.start <= t <= b.end) for t in range(50))
        assert total >= peak
    chain = [Buffer(i, 1000, i, i + 1) for i in range(10)]  # each read only by the next step
    assert plan(chain) == 2 * 1024


def test_comment_text_lets_no_syntax_through():
    for text in ['a"b', "x\ny", "*/", "\\", "ü名", "\r", "??/", "a\u2028b"]:
        safe = comment_text(text)
        assert safe.isascii() and not set(safe) & set('"\n\r\\*?')
    assert comment_text("/layers.0/attn/Add_1") == "/layers.0/attn/Add_1"
    assert len(comment_text("x" * 500)) == 120


def test_source_blocks_indent():
    src = Source()
    with src.block("if (a)"):
        src.line("b();")
        with src.block():
            src.line("c();")
    assert src.text() == "if (a) {\n    b();\n    {\n        c();\n    }\n}\n"
    with pytest.raises(ValueError):
        src.line("two\nlines")


@pytest.mark.parametrize("a,b", list(itertools.product([SEQ, BATCH * SEQ, Expr.const(3)], repeat=2)))
def test_expression_equality_is_structural(a, b):
    assert (a + b == b + a) and (a * b == b * a) and hash(a * b) == hash(b * a)
