"""Canonicalization: make equivalent graphs look the same before fusion patterns run."""
