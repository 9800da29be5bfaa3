"""faceops: the face pipeline on minicnn, shaped like InsightFace.

image -> preprocess -> session -> decode -> Face. See README.md and docs/pipeline.md.

    import faceops
    app = faceops.FaceAnalysis(pack="buffalo_s")
    app.prepare(det_size=(640, 640))
    faces = app.get(faceops.read_image("photo.jpg"))

The names below are imported on first use (PEP 562 module ``__getattr__``),
so ``import faceops`` stays cheap and the command line starts fast.
"""

from __future__ import annotations

import importlib

# public name -> module that defines it
_EXPORTS = {
    "FaceAnalysis": "faceops.analysis",
    "Face": "faceops.face",
    "norm_crop": "faceops.align",
    "estimate_norm": "faceops.align",
    "compare": "faceops.recognition",
    "Recognizer": "faceops.recognition",
    "THRESHOLDS": "faceops.recognition",
    "Gallery": "faceops.gallery",
    "attendance": "faceops.gallery",
    "cluster_photos": "faceops.cluster",
    "create_session": "faceops.runtime",
    "read_image": "faceops.image_io",
    "iter_images": "faceops.image_io",
    "iter_video_frames": "faceops.image_io",
    "blur_faces": "faceops.blur",
    "draw_faces": "faceops.draw",
    "FaceopsError": "faceops.errors",
    "ImageReadError": "faceops.errors",
    "NoFaceError": "faceops.errors",
    "VideoOpenError": "faceops.errors",
    "ModelConfigError": "faceops.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'faceops' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
