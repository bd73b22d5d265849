"""Constant tensors as C99 array initializers, fast enough for millions of weights.

A float32 weight is written as the hexadecimal float literal of its exact value
(``0x1.9bfe28p-8f``: C99 6.4.4.2 makes it exact, unlike a decimal literal). Formatting
4.6M of them one by one in Python takes ~10 s, so normal numbers are formatted in
numpy: each literal is laid out in a fixed-width row of bytes (sign, ``0x1.``, six hex
digits, exponent, ``f``, separator), the bytes a literal does not use (a positive
sign, trailing zero digits, a short exponent) are set to a pad byte, and one mask
drops every pad byte at the end. Zeros, subnormals, infinities and NaNs (rare) go
through ctext's scalar formatting.
"""
from __future__ import annotations

import numpy as np

from ...ir.value import Value
from .ctext import array_items, c_float, comment_text, ctype

PER_LINE = 8
_PAD = 0
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_INDENT = b"    "


def _exponents() -> np.ndarray:
    """Row e + 127: the bytes of 'p<e>' for every float32 exponent e, padded to 5."""
    table = np.zeros((256, 5), np.uint8)
    for biased in range(256):
        text = f"p{biased - 127:+d}".encode()
        table[biased, :len(text)] = np.frombuffer(text, np.uint8)
    return table


_EXP = _exponents()


def float_initializer(values: np.ndarray) -> bytes:
    """The items of a float32 array initializer: 'a, b, ...' with a newline every PER_LINE."""
    flat = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
    n = flat.size
    if n == 0:
        return _INDENT + b"0,\n"
    bits = flat.view(np.uint32)
    exp = (bits >> 23) & 0xFF
    frac = (bits & 0x7FFFFF) << 1  # 24 bits: six hex digits after "0x1."
    normal = (exp != 0) & (exp != 255)
    width = 1 + 4 + 6 + 5 + 1 + 2 + len(_INDENT)  # sign, 0x1., digits, p-exp, f, ", " or ",\n", indent
    rows = np.zeros((n, width), np.uint8)
    rows[:, 0] = np.where(bits >> 31, ord("-"), _PAD)
    rows[:, 1:5] = np.frombuffer(b"0x1.", np.uint8)
    digits = np.stack([(frac >> (20 - 4 * k)) & 0xF for k in range(6)], axis=1)
    rows[:, 5:11] = _HEX[digits]
    # trailing zero digits (and a bare ".") carry no information: pad them away
    nonzero_after = np.flip(np.cumsum(np.flip(digits != 0, axis=1), axis=1), axis=1) > 0
    rows[:, 5:11][~nonzero_after] = _PAD
    rows[:, 4][frac == 0] = _PAD
    rows[:, 11:16] = _EXP[exp]
    rows[:, 16] = ord("f")
    rows[:, 17] = ord(",")
    last = (np.arange(n) % PER_LINE == PER_LINE - 1) | (np.arange(n) == n - 1)
    rows[:, 18] = np.where(last, ord("\n"), ord(" "))
    rows[:, 19:] = np.where(last[:, None], np.frombuffer(_INDENT, np.uint8)[None, :], _PAD)
    rows[n - 1, 19:] = _PAD
    special = np.flatnonzero(~normal)
    chunks = [_INDENT]
    if special.size == 0:
        chunks.append(rows[rows != _PAD].tobytes())
        return b"".join(chunks)
    # stitch the rare specials in between runs of normal rows
    start = 0
    for i in special.tolist():
        block = rows[start:i]
        chunks.append(block[block != _PAD].tobytes())
        sep = b",\n" + (_INDENT if i != n - 1 else b"") if last[i] else b", "
        chunks.append(_special(float(flat[i])).encode() + sep)
        start = i + 1
    block = rows[start:]
    chunks.append(block[block != _PAD].tobytes())
    return b"".join(chunks)


def _special(x: float) -> str:
    return "0" if x == 0.0 and np.signbit(x) == 0 else c_float(x)


def write_constant(write, name: str, v: Value) -> None:
    """``static const T name[n] = {...};`` for the constant ``v``, with a comment naming it."""
    array = np.asarray(v.const.numpy())
    t = ctype(v.dtype)
    n = max(array.size, 1)
    write(f"// {name}: {comment_text(v.name)} {v.dtype.short}{list(array.shape)}\n")
    write(f"static const {t} {name}[{n}] = {{\n")
    if array.dtype == np.float32:
        write(float_initializer(array).decode("ascii"))
    else:
        items = array_items(array) or ["0"]
        for i in range(0, len(items), PER_LINE):
            write(_INDENT.decode() + ", ".join(items[i:i + PER_LINE]) + ",\n")
    write("};\n")
