"""numpy reference implementations: the executable spec of every op, one small function each."""
from . import elementwise, fused, indexing, nn, reduce, shape_ops  # noqa: F401  (they register)
from .registry import lookup, reference, supported_ops

__all__ = ["lookup", "reference", "supported_ops"]
