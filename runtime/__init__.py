"""fuseformer runtime."""
