"""Running models and artifacts: compiled-artifact sessions, input generation, comparison against onnxruntime."""
from .session import Session, load

__all__ = ["Session", "load"]
