"""fuseformer frontends."""
