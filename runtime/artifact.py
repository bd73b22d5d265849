"""The compiled-artifact directory: its manifest, integrity checks and atomic commit.

An artifact is a directory::

    manifest.json         format version, target, I/O specs, symbols, hashes, flags
    model.cpp             the generated source (for inspection and rebuilds)
    model.so              the compiled library
    weights.safetensors   every constant the library reads, memory-mapped at run time

The manifest carries the sha256 of the source, library and weights, and its own
sha256 over the rest of its content, so an edited or corrupted file is refused
at load instead of computing garbage.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..ir.errors import FuseformerError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_SELF_HASH = "manifest_sha256"


class ArtifactError(FuseformerError):
    """The artifact is missing, of another format, or fails an integrity check."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _canonical(data: dict[str, Any]) -> bytes:
    return json.dumps({k: v for k, v in data.items() if k != _SELF_HASH}, sort_keys=True,
                      ensure_ascii=True, separators=(",", ":")).encode()


def write_manifest(directory: Path, data: dict[str, Any]) -> Path:
    data = dict(data)
    data[_SELF_HASH] = hashlib.sha256(_canonical(data)).hexdigest()
    path = directory / MANIFEST
    path.write_text(json.dumps(data, indent=2, ensure_ascii=True) + "\n")
    return path


def read_manifest(directory: str | os.PathLike, *, target: str) -> dict[str, Any]:
    """The manifest of the artifact at ``directory``, after its format and self-hash checks."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{directory} is not a fuseformer artifact: {MANIFEST} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ArtifactError(f"{path} does not hold a JSON object")
    if data.get(_SELF_HASH) != hashlib.sha256(_canonical(data)).hexdigest():
        raise ArtifactError(f"{path} does not match its own hash: the manifest was edited or corrupted; "
                            f"recompile the model")
    if data.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"{directory} has artifact format {data.get('format_version')!r}; this "
                            f"fuseformer reads format {FORMAT_VERSION}: recompile the model")
    if data.get("target") != target:
        raise ArtifactError(f"{directory} targets {data.get('target')!r}, not {target!r}")
    return data


def verify_file(directory: Path, manifest: dict[str, Any], role: str) -> Path:
    """Check that the file the manifest names for ``role`` exists and has the recorded sha256."""
    entry = manifest.get("files", {}).get(role)
    if not isinstance(entry, dict) or "path" not in entry or "sha256" not in entry:
        raise ArtifactError(f"the manifest of {directory} names no {role} file")
    name = entry["path"]
    if Path(name).name != name:
        raise ArtifactError(f"the manifest's {role} path {name!r} leaves the artifact directory")
    path = directory / name
    if not path.is_file():
        raise ArtifactError(f"{path} ({role}) is missing")
    if sha256_file(path) != entry["sha256"]:
        raise ArtifactError(f"{path} ({role}) does not match the sha256 in the manifest: the file was "
                            f"changed or corrupted; recompile the model")
    return path


def staging_dir(out_dir: Path) -> Path:
    """A fresh temporary directory beside ``out_dir`` (same filesystem, so the commit is a rename)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))


@contextlib.contextmanager
def staged_directory(out_dir: Path, before_commit: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """A staging directory to write an artifact into; committed to ``out_dir`` when the block
    and ``before_commit(staging)`` (e.g. a numerical check) succeed, removed in any case.

    Whether ``out_dir`` may be replaced is checked before any work, so a refusal costs nothing.
    """
    _check_replaceable(out_dir)
    tmp = staging_dir(out_dir)
    try:
        yield tmp
        if before_commit is not None:
            before_commit(tmp)
        commit_directory(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_replaceable(out_dir: Path) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        is_artifact = out_dir.is_dir() and (out_dir / MANIFEST).is_file()
        if not is_artifact and not (out_dir.is_dir() and not any(out_dir.iterdir())):
            raise ArtifactError(f"{out_dir} exists and is not a fuseformer artifact; not replacing it")


def commit_directory(tmp: Path, out_dir: Path) -> None:
    """Move the finished ``tmp`` to ``out_dir``, replacing an earlier artifact there.

    A rename cannot replace a non-empty directory, so an old artifact is first
    renamed aside and removed after the new one is in place; anything else at
    ``out_dir`` is left alone and refused.
    """
    if out_dir.exists() or out_dir.is_symlink():
        _check_replaceable(out_dir)
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "artifact")
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old / "artifact", out_dir)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(tmp, out_dir)
