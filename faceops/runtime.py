"""One way to get a runnable session for a zoo model, whatever the backend.

``create_session("scrfd_500m")`` returns an object with onnxruntime's API
(``get_inputs()``, ``get_outputs()``, ``run(output_names, feeds)``), backed
by minicnn (the default) or by onnxruntime, so the same pipeline runs on
either and the two can be compared on any photo.
"""

from __future__ import annotations

import logging
from pathlib import Path

from faceops import weights

log = logging.getLogger(__name__)

BACKENDS = ("minicnn", "onnxruntime")


def create_session(model: str | Path, backend: str = "minicnn", minicnn_backend: str = "numba"):
    """A session for zoo model ``model`` (a manifest name) or an ONNX file path.

    ``backend="minicnn"`` runs our engine (``minicnn_backend`` picks its
    kernels: "numba", "numpy" or "cuda"); ``backend="onnxruntime"`` runs
    onnxruntime's CPU provider, which must be installed (it is a test and
    benchmark dependency, never a runtime one).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    path = Path(model) if isinstance(model, Path) or str(model).endswith(".onnx") else weights.model_path(model)
    if backend == "minicnn":
        import minicnn

        return minicnn.InferenceSession(str(path), backend=minicnn_backend)
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(
            "backend='onnxruntime' needs the onnxruntime package (pip install onnxruntime); "
            "faceops itself runs on minicnn without it"
        ) from exc
    options = ort.SessionOptions()
    options.log_severity_level = 3  # old exports list initializers as inputs; ORT warns about each
    # A pipeline alternates between several models (and, when compared, with minicnn): ORT's idle pool
    # threads would otherwise spin after each run and take the cores from whatever runs next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
