"""Compare two ONNX models in onnxruntime on the same seeded inputs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputError:
    name: str
    max_abs: float
    # max |a - b| / max |b|: relative to the output's scale, stable near zeros
    max_rel: float
    # np.allclose-style: fraction of elements with |a-b| > tol + tol*|b|
    bad_fraction: float


def ort_session(model_path: str, threads: int = 0):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def run_onnx(model_path: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    sess = ort_session(model_path)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def compare_outputs(reference: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                    tol: float) -> list[OutputError]:
    """Errors of ``actual`` against ``reference``, output by output, in the reference's order."""
    if list(reference) != list(actual):
        raise ValueError(f"the outputs differ: {list(reference)} vs {list(actual)}")
    errors = []
    for name, ref in reference.items():
        got = actual[name]
        if ref.shape != got.shape:
            raise ValueError(f"output {name!r} has shape {list(got.shape)}, expected {list(ref.shape)}")
        a, b = got.astype(np.float64), ref.astype(np.float64)
        diff = np.abs(a - b)
        scale = float(np.nanmax(np.abs(b))) if b.size and not np.all(np.isnan(b)) else 0.0
        max_abs = float(diff.max()) if diff.size else 0.0  # NaN when any element is NaN: shown as nan
        # NaN where the reference has none (or the reverse) is an error, as is inf against finite
        bad = ~np.isclose(a, b, rtol=tol, atol=tol, equal_nan=True)
        errors.append(OutputError(
            name, max_abs, max_abs / scale if scale > 0 else max_abs, float(np.mean(bad)) if bad.size else 0.0))
    return errors
