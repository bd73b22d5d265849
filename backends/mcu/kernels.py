"""The C99 kernel library: fragments in kernels/*.c, pasted into model.c as needed.

Each fragment file holds sections that start with a marker line::

    //@ ff_conv2d needs ff_out_range

naming the one ``static`` function (or a few inseparable ones) that follows and the
sections it calls. model.c gets exactly the sections its code calls plus their
dependencies, dependencies first: so it is self-contained (two files to drop into a
firmware project) and ``-Wunused-function`` has nothing to say.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

_FILES = ("math.c", "activation.c", "linear.c", "conv.c", "attention.c", "norm.c")
MARKER = "//@ "


@dataclass(frozen=True)
class Section:
    name: str
    needs: tuple[str, ...]
    text: str
    origin: str


@functools.cache
def library() -> dict[str, Section]:
    """Every section by name, in file order."""
    sections: dict[str, Section] = {}
    root = resources.files(__package__) / "kernels"
    for filename in _FILES:
        current: list[str] | None = None
        head: list[str] = []
        for line in (root / filename).read_text().splitlines():
            if line.startswith(MARKER):
                if current is not None:
                    _add(sections, head, current, filename)
                head = line[len(MARKER):].split()
                current = []
            elif current is not None:
                current.append(line)
        if current is not None:
            _add(sections, head, current, filename)
    for s in sections.values():
        for dep in s.needs:
            if dep not in sections:
                raise ValueError(f"kernel {s.name} ({s.origin}) needs unknown kernel {dep}")
    return sections


def _add(sections: dict[str, Section], head: list[str], body: list[str], filename: str) -> None:
    name, needs = head[0], ()
    if len(head) > 1:
        if head[1] != "needs":
            raise ValueError(f"{filename}: bad kernel marker {' '.join(head)!r}")
        needs = tuple(head[2:])
    if name in sections:
        raise ValueError(f"kernel {name} is defined twice ({sections[name].origin}, {filename})")
    sections[name] = Section(name, needs, "\n".join(body).strip("\n"), filename)


def closure(names: list[str]) -> list[Section]:
    """The sections ``names`` call, with their dependencies, in library order (deps come first
    because a file defines a helper before its users, and files are ordered the same way)."""
    lib = library()
    wanted: set[str] = set()

    def visit(name: str) -> None:
        if name in wanted:
            return
        if name not in lib:
            raise KeyError(f"no kernel named {name}")
        wanted.add(name)
        for dep in lib[name].needs:
            visit(dep)

    for n in names:
        visit(n)
    ordered = [s for s in lib.values() if s.name in wanted]
    position = {s.name: i for i, s in enumerate(ordered)}
    for s in ordered:
        for dep in s.needs:
            if position[dep] > position[s.name]:
                raise ValueError(f"kernel {s.name} comes before its dependency {dep} in the library")
    return ordered
