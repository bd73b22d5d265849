"""Integer expressions of the model's symbols: the dims the generated C++ computes at run time.

An ``Expr`` is a polynomial with integer coefficients over atoms. An atom is a
symbol (``batch``, ``seq``) or an operation a polynomial cannot express
(floor division, min, max) kept whole. Polynomials are canonical, so two
expressions compare equal when they are structurally the same formula, which
is what broadcasting and reshaping need to decide on symbolic dims.

Every symbol ranges over [1, max] (the maxima a build is compiled for), so
``Bounds`` can decide comparisons such as min(seq, 512) = seq for seq <= 128.

Example:
    >>> s = Expr.sym("seq")
    >>> str(2 * s + 1), (s * 64).exact_div(Expr.const(64)) == s
    ('2*seq + 1', True)
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Atom:
    """A symbol (kind "sym") or an opaque operation on expressions ("floordiv", "min", "max")."""

    kind: str
    name: str = ""
    args: tuple[Expr, ...] = ()

    @property
    def key(self) -> str:
        if self.kind == "sym":
            return "s:" + self.name
        return f"{self.kind}({', '.join(a.key for a in self.args)})"


Monomial = tuple[tuple[Atom, int], ...]


def _mono_mul(a: Monomial, b: Monomial) -> Monomial:
    powers: dict[Atom, int] = dict(a)
    for atom, p in b:
        powers[atom] = powers.get(atom, 0) + p
    return tuple(sorted(powers.items(), key=lambda ap: ap[0].key))


def _mono_div(a: Monomial, b: Monomial) -> Monomial | None:
    powers: dict[Atom, int] = dict(a)
    for atom, p in b:
        have = powers.get(atom, 0)
        if have < p:
            return None
        if have == p:
            del powers[atom]
        else:
            powers[atom] = have - p
    return tuple(sorted(powers.items(), key=lambda ap: ap[0].key))


class Expr:
    """An immutable canonical polynomial over atoms; ints mix in freely."""

    __slots__ = ("terms", "_hash")

    def __init__(self, terms: Mapping[Monomial, int]):
        self.terms: dict[Monomial, int] = {m: c for m, c in terms.items() if c != 0}
        self._hash = hash(frozenset(self.terms.items()))

    # ---- construction ----------------------------------------------------
    @staticmethod
    def const(n: int) -> Expr:
        return Expr({(): int(n)})

    @staticmethod
    def sym(name: str) -> Expr:
        return Expr({((Atom("sym", name), 1),): 1})

    @staticmethod
    def of(x: Expr | int) -> Expr:
        if isinstance(x, Expr):
            return x
        if isinstance(x, (int,)) or hasattr(x, "__index__"):
            return Expr.const(int(x))
        raise TypeError(f"cannot make an expression of {x!r}")

    # ---- queries ----------------------------------------------------------
    @property
    def is_const(self) -> bool:
        return all(m == () for m in self.terms)

    @property
    def value(self) -> int:
        if not self.is_const:
            raise ValueError(f"{self} is not a constant")
        return self.terms.get((), 0)

    def is_value(self, n: int) -> bool:
        return self.is_const and self.value == n

    def symbols(self) -> set[str]:
        out: set[str] = set()
        for m in self.terms:
            for atom, _ in m:
                if atom.kind == "sym":
                    out.add(atom.name)
                else:
                    for a in atom.args:
                        out |= a.symbols()
        return out

    @property
    def key(self) -> str:
        return "(" + str(self) + ")"

    # ---- arithmetic -------------------------------------------------------
    def __add__(self, other: Expr | int) -> Expr:
        other = Expr.of(other)
        terms = dict(self.terms)
        for m, c in other.terms.items():
            terms[m] = terms.get(m, 0) + c
        return Expr(terms)

    __radd__ = __add__

    def __neg__(self) -> Expr:
        return Expr({m: -c for m, c in self.terms.items()})

    def __sub__(self, other: Expr | int) -> Expr:
        return self + (-Expr.of(other))

    def __rsub__(self, other: Expr | int) -> Expr:
        return Expr.of(other) - self

    def __mul__(self, other: Expr | int) -> Expr:
        other = Expr.of(other)
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = _mono_mul(m1, m2)
                terms[m] = terms.get(m, 0) + c1 * c2
        return Expr(terms)

    __rmul__ = __mul__

    def exact_div(self, other: Expr | int) -> Expr | None:
        """self / other when other divides every term exactly (a constant or one term), else None."""
        other = Expr.of(other)
        if other == self and self.terms:
            return Expr.const(1)
        if len(other.terms) != 1:
            return None
        (dm, dc), = other.terms.items()
        out: dict[Monomial, int] = {}
        for m, c in self.terms.items():
            q = _mono_div(m, dm)
            if q is None or c % dc:
                return None
            out[q] = c // dc
        return Expr(out)

    # ---- evaluation and rendering ------------------------------------------
    def evaluate(self, env: Mapping[str, int]) -> int:
        total = 0
        for m, c in self.terms.items():
            term = c
            for atom, p in m:
                term *= _eval_atom(atom, env) ** p
            total += term
        return total

    def render(self, name: Callable[[str], str]) -> str:
        """A C++ int64 expression; ``name`` maps a symbol to its C++ variable."""
        if not self.terms:
            return "0"
        parts = []
        for m, c in sorted(self.terms.items(), key=lambda mc: _mono_key(mc[0])):
            factors = [_render_atom(a, name) for a, p in m for _ in range(p)]
            lit = _int_literal(abs(c))
            if not factors:
                body = lit
            elif abs(c) == 1:
                body = "*".join(factors)
            else:
                body = lit + "*" + "*".join(factors)
            parts.append(("- " if c < 0 else "+ ") + body)
        text = " ".join(parts)
        text = text[2:] if text.startswith("+ ") else "-" + text[2:]
        return "(" + text + ")" if len(parts) > 1 or text.startswith("-") else text

    def __str__(self) -> str:
        text = self.render(lambda s: s)
        return text[1:-1] if text.startswith("(") and text.endswith(")") and len(self.terms) > 1 else text

    def __repr__(self) -> str:
        return f"Expr({self})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return self.is_value(other)
        return isinstance(other, Expr) and self.terms == other.terms

    def __hash__(self) -> int:
        return self._hash


def _mono_key(m: Monomial) -> tuple:
    # constants last, then by degree and atom names: a stable, readable order
    return (m == (), -sum(p for _, p in m), [a.key for a, _ in m])


def _int_literal(n: int) -> str:
    return f"{n}LL" if n > _INT32_MAX else str(n)


def _eval_atom(atom: Atom, env: Mapping[str, int]) -> int:
    if atom.kind == "sym":
        return env[atom.name]
    a, b = (x.evaluate(env) for x in atom.args)
    if atom.kind == "floordiv":
        return a // b
    return min(a, b) if atom.kind == "min" else max(a, b)


def _render_atom(atom: Atom, name: Callable[[str], str]) -> str:
    if atom.kind == "sym":
        return name(atom.name)
    a, b = (x.render(name) for x in atom.args)
    if atom.kind == "floordiv":
        return f"ff::floordiv({a}, {b})"
    return f"std::{atom.kind}<int64_t>({a}, {b})"


class Bounds:
    """Decides comparisons of expressions over symbols that range in [1, max]."""

    def __init__(self, maxima: Mapping[str, int]):
        self.maxima = dict(maxima)

    def range(self, e: Expr) -> tuple[int | None, int | None]:
        """(lowest, highest) by interval arithmetic; None where unbounded or unknown."""
        lo_total: int | None = 0
        hi_total: int | None = 0
        for m, c in e.terms.items():
            lo, hi = 1, 1
            for atom, p in m:
                alo, ahi = self._atom_range(atom)
                for _ in range(p):
                    lo, hi = _mul_range(lo, hi, alo, ahi)
            lo, hi = _mul_range(lo, hi, c, c)
            lo_total = None if lo_total is None or lo is None else lo_total + lo
            hi_total = None if hi_total is None or hi is None else hi_total + hi
        return lo_total, hi_total

    def _atom_range(self, atom: Atom) -> tuple[int | None, int | None]:
        if atom.kind == "sym":
            return 1, self.maxima.get(atom.name)
        (alo, ahi), (blo, bhi) = (self.range(x) for x in atom.args)
        if atom.kind == "min":
            return _opt(min, alo, blo), _opt_hi(min, ahi, bhi)
        if atom.kind == "max":
            return _opt(max, alo, blo), _opt(max, ahi, bhi)
        if alo is not None and alo >= 0 and blo is not None and blo > 0:
            return alo // (bhi if bhi is not None else alo + 1), (None if ahi is None else ahi // blo)
        return None, None

    def ge(self, a: Expr | int, b: Expr | int) -> bool:
        """True when a >= b holds for every allowed value of the symbols."""
        lo, _ = self.range(Expr.of(a) - Expr.of(b))
        return lo is not None and lo >= 0

    def min(self, a: Expr | int, b: Expr | int) -> Expr:
        a, b = Expr.of(a), Expr.of(b)
        if self.ge(b, a):
            return a
        if self.ge(a, b):
            return b
        return Expr({((Atom("min", args=tuple(sorted((a, b), key=str))), 1),): 1})

    def max(self, a: Expr | int, b: Expr | int) -> Expr:
        a, b = Expr.of(a), Expr.of(b)
        if self.ge(a, b):
            return a
        if self.ge(b, a):
            return b
        return Expr({((Atom("max", args=tuple(sorted((a, b), key=str))), 1),): 1})

    def floordiv(self, a: Expr | int, b: Expr | int) -> Expr:
        a, b = Expr.of(a), Expr.of(b)
        if a.is_const and b.is_const:
            return Expr.const(a.value // b.value)
        exact = a.exact_div(b)
        if exact is not None:
            return exact
        return Expr({((Atom("floordiv", args=(a, b)), 1),): 1})

    def ceildiv(self, a: Expr | int, b: Expr | int) -> Expr:
        return -self.floordiv(-Expr.of(a), b)

    def sign(self, e: Expr) -> int | None:
        """-1, 0 or 1 when the sign is the same for every allowed value, else None."""
        lo, hi = self.range(e)
        if lo is not None and lo > 0:
            return 1
        if hi is not None and hi < 0:
            return -1
        if lo == 0 and hi == 0:
            return 0
        return None


def _mul_range(alo, ahi, blo, bhi):
    corners = [x * y for x in (alo, ahi) for y in (blo, bhi) if x is not None and y is not None]
    if None in (alo, ahi, blo, bhi):
        # an unbounded factor: only the sign of a product of non-negatives survives
        if alo is not None and blo is not None and alo >= 0 and blo >= 0:
            return alo * blo, None
        return None, None
    return min(corners), max(corners)


def _opt(fn, a, b):
    return None if a is None or b is None else fn(a, b)


def _opt_hi(fn, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def numel(shape: tuple[Expr, ...]) -> Expr:
    n = Expr.const(1)
    for d in shape:
        n = n * d
    return n


def contiguous_strides(shape: tuple[Expr, ...]) -> tuple[Expr, ...]:
    strides: list[Expr] = []
    acc = Expr.const(1)
    for d in reversed(shape):
        strides.append(acc)
        acc = acc * d
    return tuple(reversed(strides))
