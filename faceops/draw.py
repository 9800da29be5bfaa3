"""Draw what the pipeline found on a copy of the image: boxes, keypoints, landmarks, labels.

``faceops analyze --draw OUT`` writes its result. Sizes scale with the
image, so the drawing reads the same on a thumbnail and on a 24 MP photo.
Colours (BGR): boxes green; the five keypoints left eye red, right eye blue,
nose green, mouth corners magenta/yellow (InsightFace's colours); 106-point
landmarks cyan; 468-point mesh light grey; captions black on green.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from faceops.face import Face

BOX_COLOUR = (0, 255, 0)
KPS_COLOURS = ((0, 0, 255), (255, 0, 0), (0, 255, 0), (255, 0, 255), (0, 255, 255))
LANDMARK_106_COLOUR = (255, 255, 0)
MESH_COLOUR = (200, 200, 200)


def face_label(face: Face) -> str:
    """A short caption: detection score, then sex/age and expression when known."""
    parts = [f"{face.det_score:.2f}"]
    if face.gender is not None or face.age is not None:
        sex = face.sex or ""
        age = "" if face.age is None else f"{face.age:.0f}"
        parts.append(f"{sex}{age}")
    if face.expression is not None:
        parts.append(face.expression)
    return " ".join(parts)


def draw_faces(img: np.ndarray, faces: Iterable[Face]) -> np.ndarray:
    """A copy of ``img`` (BGR uint8) with every face's box, keypoints, landmarks and label drawn."""
    out = img.copy()
    unit = max(1, round(max(img.shape[:2]) / 640))  # line width in pixels
    for face in faces:
        x1, y1, x2, y2 = (int(round(v)) for v in face.bbox[:4])
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_COLOUR, unit, cv2.LINE_AA)
        if face.landmark_3d_468 is not None:
            for x, y in np.round(face.landmark_3d_468[:, :2]).astype(int):
                cv2.circle(out, (int(x), int(y)), max(1, unit // 2), MESH_COLOUR, -1)
        if face.landmark_2d_106 is not None:
            for x, y in np.round(face.landmark_2d_106[:, :2]).astype(int):
                cv2.circle(out, (int(x), int(y)), unit, LANDMARK_106_COLOUR, -1, cv2.LINE_AA)
        if face.kps is not None:
            for (x, y), colour in zip(np.round(face.kps).astype(int), KPS_COLOURS):
                cv2.circle(out, (int(x), int(y)), 2 * unit, colour, -1, cv2.LINE_AA)
        label = face_label(face)
        scale = 0.4 * unit
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, unit)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(out, (x1, top), (x1 + tw + 2, top + th + base + 2), BOX_COLOUR, -1)
        cv2.putText(out, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), unit, cv2.LINE_AA)
    return out
