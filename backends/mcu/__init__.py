"""The microcontroller target: plain C99 with one static arena (see compile.py)."""
