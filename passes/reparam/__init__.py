"""Exact re-parameterizations: inference-time norms and affine maps folded into linear layers."""
