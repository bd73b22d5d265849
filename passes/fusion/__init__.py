"""Pattern fusions: each an exact rewrite, written as formula + target + replacement."""
