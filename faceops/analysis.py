"""``FaceAnalysis``: detect every face in a photo, then run the pack's other models on each.

Shaped like InsightFace's ``insightface.app.FaceAnalysis``::

    from faceops import FaceAnalysis, read_image

    app = FaceAnalysis(pack="buffalo_s")           # or "open"; backend="onnxruntime" to compare
    app.prepare(det_size=(640, 640), det_thresh=0.5)
    faces = app.get(read_image("group.jpg"))       # list[Face], best detection score first
    faces[0].bbox, faces[0].kps, faces[0].normed_embedding

How it is wired (nothing is guessed from a model's output shapes):

* A **pack** is a named set of models, listed in ``weights/manifest.json``
  (each model entry names the packs it belongs to; ``faceops.weights.names_in_pack``).
  ``buffalo_s``: scrfd_500m (detection), w600k_mbf (recognition), 2d106det
  (landmark_2d_106). ``open``: yunet (detection), sface (recognition),
  facemesh (landmark_3d_468), fer_mini_xception (expression), age_cydral +
  gender_cydral (genderage).
  The InsightFace models of ``buffalo_s`` are licensed for non-commercial
  research only; ``open`` is permissively licensed (``faceops weights list``).
* ``MODEL_MODULES`` below maps each model to the **module** (InsightFace's
  ``taskname``) it serves, and ``MODULE_CLASSES`` maps each module to the
  class that runs it. ``allowed_modules`` keeps a subset, as in InsightFace;
  detection is always needed.
* Detection runs first (``faceops.detection``); every other module then fills
  its fields of each ``Face``.

The contract for a non-detection module class (written by the recognition
side of faceops; imported lazily, only when a pack uses it, so detection
works on its own):

* ``__init__(self, model: str, backend: str = "minicnn")`` -- a module fed by
  several models gets them all, in ``MODEL_MODULES`` order:
  ``GenderAge("age_cydral", "gender_cydral", backend=...)``;
* attribute ``taskname``: the module name (e.g. ``"recognition"``);
* ``get(self, img_bgr, face: Face) -> None``: reads ``face.bbox`` /
  ``face.kps`` and fills its own fields of ``face`` (``embedding``,
  ``landmark_2d_106``, ``landmark_3d_468`` and ``pose``, ``age`` and
  ``gender``, ``expression``...).
"""

from __future__ import annotations

import importlib
import logging

import numpy as np

from faceops import weights
from faceops.errors import ModelConfigError
from faceops.face import Face

log = logging.getLogger(__name__)

# model name -> the module (InsightFace taskname) it serves
MODEL_MODULES = {
    "scrfd_500m": "detection",
    "yunet": "detection",
    "retinaface_mnet025": "detection",
    "blazeface_full": "detection",
    "blazeface_short": "detection",
    "w600k_mbf": "recognition",
    "sface": "recognition",
    "2d106det": "landmark_2d_106",
    "facemesh": "landmark_3d_468",
    "age_cydral": "genderage",
    "gender_cydral": "genderage",
    "fer_mini_xception": "expression",
}

# detector model -> "module:Class" of its decoder family
DETECTOR_CLASSES = {
    "scrfd_500m": "faceops.detection.scrfd:SCRFD",
    "yunet": "faceops.detection.yunet:YuNet",
    "retinaface_mnet025": "faceops.detection.retinaface:RetinaFace",
    "blazeface_full": "faceops.detection.blazeface:BlazeFace",
    "blazeface_short": "faceops.detection.blazeface:BlazeFace",
}

# module -> "module:Class" running it (see the contract in the module docstring)
MODULE_CLASSES = {
    "recognition": "faceops.recognition:Recognizer",
    "landmark_2d_106": "faceops.landmarks:Landmark2D106",
    "landmark_3d_468": "faceops.landmarks:FaceMesh468",
    "genderage": "faceops.attributes:GenderAge",
    "expression": "faceops.attributes:Expression",
}

MODULE_NAMES = ("detection", *MODULE_CLASSES)


def load_class(dotted: str, needed_for: str):
    """Import ``"package.module:Class"``; a failure says which module of the pipeline needed it."""
    module_name, class_name = dotted.split(":")
    try:
        return getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ModelConfigError(
            f"the {needed_for!r} module needs {dotted.replace(':', '.')}, which cannot be loaded ({exc}); "
            f"leave {needed_for!r} out with allowed_modules=[...]"
        ) from exc


def create_detector(model: str, backend: str = "minicnn", **kwargs):
    """The detector for zoo model ``model`` (its decoder family from ``DETECTOR_CLASSES``)."""
    if model not in DETECTOR_CLASSES:
        raise ModelConfigError(f"{model!r} is not a face detector; detectors: {', '.join(DETECTOR_CLASSES)}")
    return load_class(DETECTOR_CLASSES[model], "detection")(model, backend=backend, **kwargs)


class FaceAnalysis:
    """Detection plus every other module of a pack, on one photo at a time.

    Parameters
    ----------
    pack : a pack of ``weights/manifest.json`` ("buffalo_s", "open", ...).
    allowed_modules : module names to keep (None: all of the pack's);
        "detection" must be among them.
    backend : "minicnn" (default) or "onnxruntime" (the reference; needs the
        onnxruntime package), for every model.
    detector : a detector model to use instead of the pack's (e.g.
        "retinaface_mnet025"); required when the pack holds several.

    ``self.models`` maps each module name to the object running it;
    ``self.det_model`` is the detector.
    """

    def __init__(self, pack: str = "buffalo_s", allowed_modules=None, backend: str = "minicnn",
                 detector: str | None = None):
        self.pack = pack
        self.backend = backend
        pack_models = [n for n in weights.names_in_pack(pack) if n in MODEL_MODULES]
        if allowed_modules is not None:
            allowed_modules = list(allowed_modules)
            unknown = [m for m in allowed_modules if m not in MODULE_NAMES]
            if unknown:
                raise ModelConfigError(f"unknown module(s) {unknown}; modules: {', '.join(MODULE_NAMES)}")
            if "detection" not in allowed_modules:
                raise ModelConfigError("allowed_modules must include 'detection': every other module works on detected faces")

        if detector is None:
            detectors = [n for n in pack_models if MODEL_MODULES[n] == "detection"]
            if len(detectors) != 1:
                raise ModelConfigError(
                    f"pack {pack!r} has {len(detectors)} detection models ({', '.join(detectors) or 'none'}); "
                    f"choose one with detector=..."
                )
            detector = detectors[0]
        self.det_model = create_detector(detector, backend=backend)
        self.models = {"detection": self.det_model}

        by_module: dict[str, list[str]] = {}
        for name in MODEL_MODULES:  # table order, so multi-model modules get their models in a fixed order
            module = MODEL_MODULES[name]
            if name in pack_models and module != "detection":
                if allowed_modules is None or module in allowed_modules:
                    by_module.setdefault(module, []).append(name)
        for module, names in by_module.items():
            cls = load_class(MODULE_CLASSES[module], module)
            self.models[module] = cls(*names, backend=backend)
            log.debug("%s: %s on %s", module, ", ".join(names), backend)
        if allowed_modules is not None:
            missing = [m for m in allowed_modules if m not in self.models]
            if missing:
                raise ModelConfigError(f"pack {pack!r} has no model for module(s) {missing}; "
                                       f"it has {', '.join(self.models)}")
        self.prepare()

    def prepare(self, det_size=None, det_thresh: float = 0.5) -> None:
        """Set the detector's input size (width, height) and minimum face score.

        ``det_size=None`` means 640x640 for detectors that take any size, or
        the size fixed in the file (BlazeFace).
        """
        if det_size is None:
            det_size = self.det_model.fixed_size or (640, 640)
        self.det_model.prepare(det_size=det_size, det_thresh=det_thresh)

    def detect(self, img_bgr: np.ndarray, max_num: int = 0) -> list[Face]:
        """Detection only: a ``Face`` with bbox, det_score and kps per face."""
        boxes, kps = self.det_model.detect(img_bgr, max_num=max_num)
        return [Face(bbox=box[:4].copy(), det_score=float(box[4]), kps=points) for box, points in zip(boxes, kps)]

    def get(self, img_bgr: np.ndarray, max_num: int = 0) -> list[Face]:
        """Every face in ``img_bgr`` (BGR uint8, see ``faceops.read_image``), with every module's fields filled.

        ``max_num > 0`` keeps that many faces, the most prominent (large and
        central) first; otherwise all faces, best detection score first.
        """
        faces = self.detect(img_bgr, max_num=max_num)
        for module, model in self.models.items():
            if module == "detection":
                continue
            for face in faces:
                model.get(img_bgr, face)
        return faces

    def __repr__(self) -> str:
        modules = ", ".join(f"{m}={getattr(v, 'model', type(v).__name__)}" for m, v in self.models.items())
        return f"FaceAnalysis(pack={self.pack!r}, backend={self.backend!r}, {modules})"
