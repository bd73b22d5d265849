"""Running models and artifacts: input generation, comparison against onnxruntime."""
