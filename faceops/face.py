"""``Face``: everything faceops knows about one detected face.

Shaped like InsightFace's ``Face`` so code written for it reads the same, but
as a dataclass with explicit fields: a field a module did not compute is
``None``. Coordinates are in pixels of the original image, x to the right and
y down.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

EXPRESSIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@dataclass
class Face:
    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2
    det_score: float
    kps: np.ndarray | None = None  # (5, 2): left eye, right eye, nose, left mouth, right mouth (image left/right)
    embedding: np.ndarray | None = None  # raw recognition vector (512 for w600k_mbf, 128 for SFace)
    embedding_model: str | None = None  # which model made `embedding` (embeddings of different models never compare)
    landmark_2d_106: np.ndarray | None = None  # (106, 2)
    landmark_3d_68: np.ndarray | None = None  # (68, 3), z in pixels, larger z = closer to the camera
    landmark_3d_468: np.ndarray | None = None  # (468, 3) FaceMesh
    pose: np.ndarray | None = None  # (3,) pitch, yaw, roll in degrees
    expression: str | None = None  # one of EXPRESSIONS
    expression_probs: np.ndarray | None = None  # (7,) in EXPRESSIONS order
    age: float | None = None  # years
    gender: int | None = None  # 0 = female, 1 = male (InsightFace convention)
    extra: dict[str, Any] = field(default_factory=dict)  # anything a module wants to expose beyond the above

    @property
    def normed_embedding(self) -> np.ndarray | None:
        """``embedding / |embedding|``: the vector cosine similarity is a dot product of."""
        if self.embedding is None:
            return None
        return self.embedding / np.linalg.norm(self.embedding)

    @property
    def sex(self) -> str | None:
        """'F' or 'M', as InsightFace spells it."""
        return None if self.gender is None else ("M" if self.gender == 1 else "F")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (arrays as nested lists, floats rounded to 4 decimals, None kept)."""

        def plain(v):
            if isinstance(v, np.ndarray):
                return np.round(v.astype(np.float64), 4).tolist()
            if isinstance(v, (np.floating, float)):
                return round(float(v), 4)
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v

        out = {f.name: plain(getattr(self, f.name)) for f in fields(self)}
        out["sex"] = self.sex
        return out
