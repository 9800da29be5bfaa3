"""Shared inputs for the recognition-side tests (recognition, landmarks, attributes, gallery, cluster, CLI).

* ``BACKEND``: the engine the behaviour tests run on: minicnn (the default),
  or ``FACEOPS_TEST_BACKEND=onnxruntime`` to check the behaviour on the
  reference engine alone. The cross-backend tests always compare minicnn
  with onnxruntime.
* ``reference_faces(photo, mirrored=False)``: the photo (BGR uint8) and its
  faces as onnxruntime's SCRFD-500M finds them, sorted left to right. The
  module tests feed these same boxes and keypoints to both backends, so a
  difference can only come from the module under test.
* ``person_photos()``: one photo per identity (the 6 people of t1 cut out
  with a margin, and the astronaut), as the threshold script makes them.
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from faceops import weights
from faceops.analysis import FaceAnalysis, create_detector
from faceops.face import Face
from faceops.image_io import read_image

BACKEND = os.environ.get("FACEOPS_TEST_BACKEND", "minicnn")


@lru_cache(maxsize=None)
def photo(name: str, mirrored: bool = False) -> np.ndarray:
    img = read_image(weights.photo_path(name))
    return np.ascontiguousarray(img[:, ::-1]) if mirrored else img


@lru_cache(maxsize=None)
def _reference_detections(name: str, mirrored: bool):
    detector = create_detector("scrfd_500m", backend="onnxruntime")
    boxes, kps = detector.detect(photo(name, mirrored))
    order = np.argsort(boxes[:, 0])
    return boxes[order], kps[order]


def reference_faces(name: str, mirrored: bool = False) -> tuple[np.ndarray, list[Face]]:
    """(image, fresh Face objects with bbox, det_score, kps), faces left to right."""
    boxes, kps = _reference_detections(name, mirrored)
    faces = [Face(bbox=b[:4].copy(), det_score=float(b[4]), kps=k.copy()) for b, k in zip(boxes, kps)]
    return photo(name, mirrored), faces


@lru_cache(maxsize=None)
def app(pack: str = "buffalo_s", backend: str = BACKEND) -> FaceAnalysis:
    """A FaceAnalysis with detection and recognition only."""
    return FaceAnalysis(pack, allowed_modules=["detection", "recognition"], backend=backend)


@lru_cache(maxsize=1)
def person_photos() -> dict[str, np.ndarray]:
    """name -> a photo of that one person: t1_person1..6 (left to right) and astronaut."""
    t1 = photo("t1")
    boxes, _ = _reference_detections("t1", False)
    out = {}
    for index, (x1, y1, x2, y2, _) in enumerate(boxes):
        w, h = x2 - x1, y2 - y1
        top, bottom = int(max(0, y1 - h)), int(min(t1.shape[0], y2 + h))
        left, right = int(max(0, x1 - w)), int(min(t1.shape[1], x2 + w))
        out[f"t1_person{index + 1}"] = np.ascontiguousarray(t1[top:bottom, left:right])
    out["astronaut"] = photo("astronaut")
    return out
