"""The settings a pipeline runs under: opt level, disabled passes, instruments, the report."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .report import Report

DEFAULT_OPT_LEVEL = 2


@dataclass
class PassContext:
    """Example:
        >>> ctx = PassContext(opt_level=2, disabled=["fuse-attention"], instruments=[VerifyEachPass()])
        >>> PassManager(default_passes())(graph, ctx)
        >>> print(ctx.report.format())
    """

    opt_level: int = DEFAULT_OPT_LEVEL
    disabled: Iterable[str] = ()
    instruments: list = field(default_factory=list)
    report: Report = field(default_factory=Report)

    def __post_init__(self) -> None:
        self.disabled = frozenset(self.disabled)

    def enabled(self, p) -> bool:
        return p.opt_level <= self.opt_level and p.name not in self.disabled
