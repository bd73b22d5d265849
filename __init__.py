"""fuseformer: a compiler-style graph optimizer for transformer models."""
__version__ = "0.1.0"
