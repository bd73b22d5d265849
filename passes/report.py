"""What the passes did and why they did not: fired rewrites and near misses, per kind."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NearMiss:
    kind: str
    node: str
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} at node {self.node}: {self.reason}"


@dataclass
class Report:
    """Filled by passes through ``PassContext.report``; printed by ``--report``."""

    fired: Counter = field(default_factory=Counter)
    missed: dict[str, list[NearMiss]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def record_fired(self, kind: str, count: int = 1) -> None:
        self.fired[kind] += count

    def record_miss(self, kind: str, node: str, reason: str) -> None:
        miss = NearMiss(kind, node, reason)
        if miss not in self.missed[kind]:
            self.missed[kind].append(miss)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def format(self) -> str:
        kinds = sorted(set(self.fired) | {k for k, v in self.missed.items() if v})
        lines = []
        if kinds:
            lines.append(f"{'rewrite':<24}{'fired':>7}{'missed':>8}")
            for kind in kinds:
                lines.append(f"{kind:<24}{self.fired.get(kind, 0):>7}{len(self.missed.get(kind, [])):>8}")
            for kind in kinds:
                for miss in self.missed.get(kind, []):
                    lines.append(f"  not fused: {miss}")
        lines.extend(self.notes)
        if self.timings:
            lines.append("pass times: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in self.timings.items()))
        return "\n".join(lines)
