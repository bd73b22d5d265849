"""numpy reference implementations: the executable spec of every op, one small function each."""
from . import crmsnorm, elementwise, fused, indexing, nn, reduce, rotary, shape_ops  # noqa: F401  (they register)
from .registry import lookup, reference, supported_ops

__all__ = ["lookup", "reference", "supported_ops"]
