"""Arena planning: one block of memory for every activation, offsets fixed at compile time.

Each buffer has a size (bytes, at the symbols' maxima) and a lifetime [start, end]
in steps of the graph's node order. Two buffers may share bytes when their
lifetimes do not overlap. Buffers are placed largest first, each at the lowest
offset that clears every placed buffer it is alive with (first fit): a greedy
rule that is within a few percent of optimal on transformer graphs, whose
activations come in a few repeating sizes.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

ALIGNMENT = 64  # a cache line, and enough for any SIMD load


@dataclass
class Buffer:
    key: Hashable
    size: int
    start: int
    end: int
    offset: int = -1


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def plan(buffers: Sequence[Buffer]) -> int:
    """Set each buffer's offset; returns the arena size in bytes.

    Example:
        >>> a, b, c = Buffer("a", 100, 0, 1), Buffer("b", 100, 2, 3), Buffer("c", 10, 1, 2)
        >>> plan([a, b, c]), a.offset, b.offset, c.offset
        (192, 0, 0, 128)
    """
    placed: list[Buffer] = []
    total = 0
    for buf in sorted(buffers, key=lambda b: (-b.size, b.start, b.end)):
        if buf.end < buf.start:
            raise ValueError(f"buffer {buf.key!r} ends ({buf.end}) before it starts ({buf.start})")
        live = sorted((p for p in placed if p.start <= buf.end and buf.start <= p.end),
                      key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        buf.offset = offset
        placed.append(buf)
        total = max(total, _align(offset + buf.size))
    return total


def check(buffers: Sequence[Buffer]) -> None:
    """Raise if two buffers alive at the same step overlap in memory (a planner bug)."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.start <= b.end and b.start <= a.end and a.size and b.size:
                if a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                    raise AssertionError(f"buffers {a.key!r} and {b.key!r} overlap")
