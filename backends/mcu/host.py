"""Build the generated C99 on this host and run it: for --verify and the tests.

The sources compile with the flags the target promises to pass,
``gcc -std=c99 -Wall -Wextra -Werror -pedantic``, into a shared library that ctypes
loads; inputs are copied into the arena through ``<prefix>_input(i)``, outputs out
through ``<prefix>_output(i)``.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .compile import SOURCE
from .errors import GeneratedCodeError, ToolchainError

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")


def compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        raise ToolchainError("no C compiler found (gcc or $CC): it is needed to build the generated "
                             "C99 on this host")
    return cc


def build(source_dir: str | os.PathLike, out: str | os.PathLike, opt: str = "-O2") -> Path:
    """Compile ``source_dir``/model.c with the strict flags into the shared library ``out``."""
    source_dir, out = Path(source_dir), Path(out)
    cmd = [compiler(), *STRICT, opt, "-fPIC", "-shared", "-I", str(source_dir),
           str(source_dir / SOURCE), "-o", str(out), "-lm"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise GeneratedCodeError(f"{' '.join(cmd)} failed (a bug in fuseformer's MCU backend; the "
                                 f"source is {source_dir / SOURCE}):\n{done.stderr[-4000:]}")
    return out


class HostModel:
    """A generated model built for this host.

    Example:
        >>> with HostModel("tiny_vit.mcu") as model:
        ...     outputs = model.run({"pixel_values": x})
    """

    def __init__(self, source_dir: str | os.PathLike, library: str | os.PathLike | None = None):
        source_dir = Path(source_dir)
        self.manifest = json.loads((source_dir / "manifest.json").read_text())
        self._tmp = None
        if library is None:
            self._tmp = tempfile.mkdtemp(prefix="fuseformer-mcu-")
            library = build(source_dir, Path(self._tmp) / "model.so")
        self.lib = ctypes.CDLL(str(library))
        p = self.manifest["prefix"]
        self._input = getattr(self.lib, f"{p}_input")
        self._input.restype, self._input.argtypes = ctypes.c_void_p, [ctypes.c_int]
        self._output = getattr(self.lib, f"{p}_output")
        self._output.restype, self._output.argtypes = ctypes.c_void_p, [ctypes.c_int]
        self._run = getattr(self.lib, f"{p}_run")
        self._run.restype, self._run.argtypes = ctypes.c_int, []
        self._status = getattr(self.lib, f"{p}_status")
        self._status.restype, self._status.argtypes = ctypes.c_char_p, [ctypes.c_int]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        specs = self.manifest["inputs"]
        missing = [s["name"] for s in specs if s["name"] not in feeds]
        if missing or len(feeds) != len(specs):
            raise ValueError(f"inputs must be exactly {[s['name'] for s in specs]}, got {sorted(feeds)}")
        for i, spec in enumerate(specs):
            arr = np.ascontiguousarray(feeds[spec["name"]])
            if arr.dtype != np.dtype(spec["dtype"]) or list(arr.shape) != spec["shape"]:
                raise ValueError(f"input {spec['name']!r} must be {spec['dtype']} {spec['shape']}, got "
                                 f"{arr.dtype} {list(arr.shape)}")
            ctypes.memmove(self._input(i), arr.ctypes.data, arr.nbytes)
        code = self._run()
        if code != 0:
            raise GeneratedCodeError(f"{self.manifest['prefix']}_run returned {code}: "
                                     f"{self._status(code).decode('utf-8', 'replace')}")
        out = {}
        for i, spec in enumerate(self.manifest["outputs"]):
            dtype = np.dtype(spec["dtype"])
            n = int(np.prod(spec["shape"], dtype=np.int64)) * dtype.itemsize
            raw = ctypes.string_at(self._output(i), n)
            out[spec["name"]] = np.frombuffer(raw, dtype=dtype).reshape(spec["shape"]).copy()
        return out

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> HostModel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_on_host(source_dir: str | os.PathLike, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    with HostModel(source_dir) as model:
        return model.run(feeds)

