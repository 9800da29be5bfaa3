"""Where the fitter's 2D points come from, and which model vertex each one is.

The fitter needs pairs (image point, model vertex). Three sources:

* **"3ddfa"**: 3DDFA_V2 regresses the 68 iBUG landmarks
  (``faceops.morphable.tddfa``); they map to ``model.landmark_vertices``.
* **"106"**: InsightFace's 2d106det (``Face.landmark_2d_106``) marks
  different places. ``faceops/data/landmarks_106_to_68.json`` says, for each
  of the 68, which 106 point stands in for it; the table was derived from
  data by ``scripts/derive_106_to_68.py`` (the 106 point nearest, on
  average, to 3DDFA_V2's landmark), with its mean error recorded there.
* **"5"**: a detector's 5 key points (``Face.kps``), mapped to vertices by
  ``faceops.morphable.model.five_point_vertices``: enough for a pose and a
  rough shape.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

from faceops.morphable.model import LEFT_EYE_68, RIGHT_EYE_68, MorphableModel, five_point_vertices

TABLE_PATH = Path(__file__).resolve().parent.parent / "data" / "landmarks_106_to_68.json"
SOURCES = ("106", "3ddfa", "5")


def inter_ocular_distance(landmarks_68: np.ndarray) -> float:
    """Distance between the two eye centres (means of points 36-41 and 42-47) of 68 landmarks."""
    landmarks_68 = np.asarray(landmarks_68, dtype=np.float64)
    return float(np.linalg.norm(landmarks_68[list(RIGHT_EYE_68), :2].mean(axis=0)
                                - landmarks_68[list(LEFT_EYE_68), :2].mean(axis=0)))


@functools.lru_cache(maxsize=1)
def table_106_to_68() -> np.ndarray:
    """(68,) the 2d106det index standing in for each iBUG-68 landmark (from the derived JSON table)."""
    if not TABLE_PATH.is_file():
        raise FileNotFoundError(f"{TABLE_PATH} is missing; recreate it with scripts/derive_106_to_68.py")
    table = np.array(json.loads(TABLE_PATH.read_text())["index_106"], dtype=np.int64)
    if table.shape != (68,) or table.min() < 0 or table.max() > 105:
        raise ValueError(f"{TABLE_PATH}: index_106 must be 68 indices in 0..105")
    return table


def landmarks_68_from_106(landmarks_106: np.ndarray) -> np.ndarray:
    """(106, 2) 2d106det points -> (68, 2) stand-ins for the iBUG-68 landmarks."""
    landmarks_106 = np.asarray(landmarks_106, dtype=np.float64)
    if landmarks_106.shape[0] != 106:
        raise ValueError(f"expected 106 landmarks; got an array of shape {landmarks_106.shape}")
    return landmarks_106[table_106_to_68(), :2]


def correspondences(model: MorphableModel, source: str, face=None, img_bgr=None, tddfa=None):
    """(points (N, 2), vertex indices (N,)) for fitting ``face`` from landmark ``source``.

    "106" reads ``face.landmark_2d_106``; "5" reads ``face.kps``; "3ddfa"
    runs ``tddfa`` (a :class:`faceops.morphable.tddfa.TDDFA`) on ``img_bgr``
    in ``face.bbox``.
    """
    if source == "106":
        if face is None or face.landmark_2d_106 is None:
            raise ValueError("landmark source '106' needs face.landmark_2d_106 (run the landmark_2d_106 module)")
        return landmarks_68_from_106(face.landmark_2d_106), model.landmark_vertices
    if source == "5":
        if face is None or face.kps is None:
            raise ValueError("landmark source '5' needs face.kps (a detector with key points)")
        return np.asarray(face.kps, dtype=np.float64)[:, :2], five_point_vertices(model)
    if source == "3ddfa":
        if tddfa is None or img_bgr is None or face is None:
            raise ValueError("landmark source '3ddfa' needs a TDDFA instance, the photo and the face")
        return tddfa.predict(img_bgr, face.bbox).landmarks_68()[:, :2], model.landmark_vertices
    raise ValueError(f"unknown landmark source {source!r}; choose one of {SOURCES}")
