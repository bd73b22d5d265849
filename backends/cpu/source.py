"""An indenting C++ source buffer and the escaping of model-derived text."""
from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

_SAFE_COMMENT = re.compile(r"[A-Za-z0-9 _.,:;=+\-#@()\[\]<>/]")


def comment_text(text: str, limit: int = 120) -> str:
    """Model-derived text made safe for a ``//`` comment.

    Only a fixed set of printable ASCII characters passes; every other byte of
    the UTF-8 text becomes ``%XX``. So no newline, backslash (line splice),
    ``*/``, quote, or unicode ever reaches the source, and the original is recoverable.
    """
    out = []
    for ch in text:
        if _SAFE_COMMENT.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    safe = "".join(out)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


class Source:
    """Lines of C++ with indentation managed by ``block()``.

    Example:
        >>> src = Source()
        >>> with src.block("if (n > 0)"):
        ...     src.line("n = 0;")
        >>> print(src.text(), end="")
        if (n > 0) {
            n = 0;
        }
    """

    INDENT = "    "

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, text: str = "") -> None:
        if "\n" in text:
            raise ValueError("one line at a time: a newline inside a line would break indentation")
        self._lines.append(self.INDENT * self._depth + text if text else "")

    def comment(self, text: str) -> None:
        self.line("// " + comment_text(text))

    @contextlib.contextmanager
    def block(self, head: str = "", tail: str = "}") -> Iterator[None]:
        self.line(f"{head} {{" if head else "{")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self.line(tail)

    def extend(self, other: Source) -> None:
        for text in other._lines:
            self._lines.append(self.INDENT * self._depth + text if text else "")

    @property
    def empty(self) -> bool:
        return not self._lines

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
