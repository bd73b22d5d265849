"""Code generators and writers: ONNX now; CPU, CUDA, TVM and MCU targets come later."""
from .onnx import save_onnx, to_model

__all__ = ["save_onnx", "to_model"]
