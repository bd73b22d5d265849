"""fuseformer backends."""
