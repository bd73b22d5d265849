"""Passes: the pass manager, instruments, the pattern rewriter, canonicalization and fusions.

Example:
    >>> from fuseformer.passes import PassContext, optimize_graph, VerifyEachPass
    >>> ctx = PassContext(opt_level=2, instruments=[VerifyEachPass()])
    >>> graph = optimize_graph(graph, ctx)
    >>> print(ctx.report.format())
"""
from .base import Pass, PassResult
from .context import DEFAULT_OPT_LEVEL, PassContext
from .instruments import DumpIR, Instrument, NumericalCheck, PassBrokeGraph, Timing, VerifyEachPass
from .manager import PassError, PassManager
from .pipeline import all_passes, default_pipeline, optimize_graph, pass_names
from .report import Report

__all__ = ["DEFAULT_OPT_LEVEL", "DumpIR", "Instrument", "NumericalCheck", "Pass", "PassBrokeGraph",
           "PassContext", "PassError", "PassManager", "PassResult", "Report", "Timing", "VerifyEachPass",
           "all_passes", "default_pipeline", "optimize_graph", "pass_names"]
