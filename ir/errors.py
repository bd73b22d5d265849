"""Errors users see. Each names the model node, op and reason."""
from __future__ import annotations


class FuseformerError(Exception):
    """Base of the errors the CLI reports as a clean message and a non-zero exit."""


class ModelError(FuseformerError):
    """The input model cannot be read or is not supported; the message names the node."""


class UnsupportedTargetError(FuseformerError):
    """A compilation target that this build does not provide yet."""
