"""fuseformer passes."""
