"""The compiler driver: generated C++ -> shared library, cached by content hash.

The cache key covers everything that changes the library: the source, the
kernel headers, the flags, the compiler's version, the BLAS it links and, for
``-march=native`` builds, the CPU. Libraries live in ~/.cache/fuseformer/cpu
(or $FUSEFORMER_CPU_CACHE) as ``<key>.so`` next to the ``<key>.cpp`` they came
from, which stays there for inspection when the compiler fails.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import CompilerError

CACHE_ENV = "FUSEFORMER_CPU_CACHE"
COMPILE_TIMEOUT = 900  # seconds; a large model's source takes well under a minute at -O3
INCLUDE_DIR = Path(__file__).resolve().parent / "include"


@dataclass(frozen=True)
class Library:
    path: Path
    key: str
    command: list[str]  # the compiler invocation, with the source and output paths
    flags: list[str]  # the code-generation flags (what the manifest records)
    compiler: str  # the compiler's version line
    cached: bool


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "fuseformer" / "cpu"


def codegen_flags(portable: bool) -> list[str]:
    """-O3 for this machine's CPU, or -O2 for any x86-64 with SSE4.2 (v2) with ``portable``."""
    arch = ["-O2", "-march=x86-64-v2"] if portable else ["-O3", "-march=native"]
    # no -ffast-math: masks rely on -inf and NaN behaving as IEEE says. -Wno-psabi: the
    # kernels' 64-byte vector types pass between inline functions only, so GCC's note that
    # their calling convention differs on CPUs without AVX-512 does not apply
    return ["-std=c++17", *arch, "-fopenmp", "-fPIC", "-fno-math-errno", "-fvisibility=hidden", "-Wno-psabi"]


@functools.cache
def blas() -> tuple[str, str, str]:
    """(include dir, lib dir, link name) of the OpenBLAS that scipy-openblas32 ships."""
    import scipy_openblas32 as sob

    return sob.get_include_dir(), sob.get_lib_dir(), sob.get_library()


def blas_library_path() -> Path:
    _, libdir, name = blas()
    return Path(libdir) / f"lib{name}.so"


# OpenBLAS picks its kernels by CPU model when it loads; a CPU it does not know (AMD Zen 5
# in the OpenBLAS that scipy-openblas32 ships) falls back to the AVX2 "Haswell" kernels
# although the CPU has AVX-512. Measured here: sgemm 128x384x384 on one core 128 GFLOP/s with
# Haswell, 223 with SkylakeX; small GEMMs (65x64x63) 2.3x faster.
_AVX512 = ("avx512f", "avx512dq", "avx512bw", "avx512vl")
CORETYPE_ENV = "FUSEFORMER_BLAS_CORETYPE"


def blas_coretype() -> str | None:
    """The OpenBLAS kernel set to load with (None: leave OpenBLAS to choose).

    ``$FUSEFORMER_BLAS_CORETYPE`` wins (``auto``: as if nothing were set); then an
    ``$OPENBLAS_CORETYPE`` the user set is kept; else SkylakeX on a CPU with AVX-512.
    """
    mine = os.environ.get(CORETYPE_ENV, "").strip()
    if mine and mine.lower() != "auto":
        return mine
    if not mine and "OPENBLAS_CORETYPE" in os.environ:
        return None
    flags = set()
    for line in _cpu_identity().splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return "SkylakeX" if all(f in flags for f in _AVX512) else None


@contextlib.contextmanager
def blas_load_environment() -> Iterator[None]:
    """Around the first load of OpenBLAS: OPENBLAS_CORETYPE set to ``blas_coretype()``.

    OpenBLAS reads the variable once, when it loads; the process's environment is
    restored afterwards so that child processes see what they would have seen.
    """
    core = blas_coretype()
    before = os.environ.get("OPENBLAS_CORETYPE")
    if core is not None:
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OPENBLAS_CORETYPE", None)
        else:
            os.environ["OPENBLAS_CORETYPE"] = before


def find_compiler() -> str:
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("g++")
    if cxx is None:
        raise CompilerError("no C++ compiler found: install g++ (apt-get install g++) or set CXX")
    return cxx


@functools.cache
def compiler_version(cxx: str) -> str:
    out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout.splitlines() or ["unknown"])[0].strip()


@functools.cache
def _cpu_identity() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    keep = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def _headers_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(INCLUDE_DIR.rglob("*.h")):
        h.update(path.relative_to(INCLUDE_DIR).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def build_library(source: str, *, portable: bool = False,
                  progress: Callable[[str], None] | None = None) -> Library:
    """Compile ``source`` (or reuse the cached build of the same inputs); returns the library."""
    progress = progress or (lambda _: None)
    cxx = find_compiler()
    flags = codegen_flags(portable)
    include, libdir, libname = blas()
    version = compiler_version(cxx)
    key_parts = [source, "\0".join(flags), version, _headers_digest(), str(blas_library_path()),
                 "" if portable else _cpu_identity()]
    key = hashlib.sha256("\0\0".join(key_parts).encode()).hexdigest()[:32]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    lib, src = root / f"{key}.so", root / f"{key}.cpp"

    def command(out: str) -> list[str]:
        return [cxx, *flags, "-shared", "-I", str(INCLUDE_DIR), "-I", include, str(src), "-o", out,
                "-L", libdir, f"-l{libname}", f"-Wl,-rpath,{libdir}"]
    if lib.exists():
        progress(f"reusing the cached build {lib.name}")
        return Library(lib, key, command(str(lib)), flags, version, cached=True)
    _write_atomic(src, source.encode())
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".so", dir=root)
    os.close(fd)
    try:
        progress(f"compiling {src.name} ({len(source) // 1024} KiB of C++) with {Path(cxx).name}")
        try:
            proc = subprocess.run(command(tmp), capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise CompilerError(f"{Path(cxx).name} took over {COMPILE_TIMEOUT} s on {src} "
                                f"(kept for inspection)") from None
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-30:])
            raise CompilerError(f"{Path(cxx).name} failed on {src} (kept for inspection), exit "
                                f"{proc.returncode}:\n{tail}")
        os.replace(tmp, lib)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return Library(lib, key, command(str(lib)), flags, version, cached=False)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
