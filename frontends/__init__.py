"""Model readers: ONNX files (and, later, PyTorch modules) into the IR."""
from .onnx import load_onnx

__all__ = ["load_onnx"]
