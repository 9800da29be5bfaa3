"""3DDFA_V2's answer: 62 regressed 3DMM parameters turned into 68 landmarks, a pose and a dense mesh.

3DDFA_V2 (Guo et al., "Towards Fast, Accurate and Stable 3D Dense Face
Alignment", ECCV 2020) skips fitting: a MobileNet looks at a crop of the
face and *regresses* the model parameters directly. Putting its result
beside our least-squares fit (``faceops.morphable.fitting``) shows what
each approach gets right. What this file reproduces, from cleardusk/3DDFA_V2
(``TDDFA.py``, ``utils/functions.py``, ``utils/tddfa_util.py``):

Crop (``parse_roi_box_from_bbox``): a square of side
``int(1.58 * (w + h) / 2)`` centred on the box centre moved down by
``0.14 * (w + h) / 2``; its corners are rounded to whole pixels, the part
outside the photo is black (``crop_img``), and it is resized to 120x120
(bilinear). Input: BGR, ``(x - 127.5) / 128``, NCHW.

Output: 62 values, de-normalised as ``p * std + mean`` (``param_mean_std``):
``p[:12]`` is a 3x4 matrix ``[sR | offset]`` (row-major), ``p[12:52]`` the
identity and ``p[52:62]`` the expression parameters ``alpha``. The network's
raw outputs ``(alpha - mean) / std`` are exactly the standardised
coefficients of ``faceops.morphable.model.load_bfm``.

Vertices (``recon_vers``): ``sR @ (u + W_shp a_shp + W_exp a_exp).reshape(3, -1,
order='F') + offset`` -- the flattened x0 y0 z0 ... array read as columns of
x, y, z (micrometres), in 120x120 crop coordinates with y up. Then
``similar_transform``: subtract 1 from x and z (3DDFA's MATLAB-era 1-based
pixels), flip y (``120 - y``), scale x and y by the crop box's size / 120 and
add its corner, scale z by the mean of the two scales and shift it so its
minimum is 0.

The model is trained on 300W-LP (BFM-based): non-commercial research only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from faceops.morphable.fitting import nearest_rotation, rotation_to_pose
from faceops.morphable.model import MICROMETRES_PER_MM, TDDFA_POSE_PARAMS, MorphableModel, load_bfm

log = logging.getLogger(__name__)

MODEL_NAME = "3ddfa_mb1"
INPUT_SIZE = 120
BOX_SCALE = 1.58  # crop side / mean box side
BOX_SHIFT_DOWN = 0.14  # crop centre moves down by this x the mean box side
PIXEL_MEAN = 127.5
PIXEL_STD = 128.0


def roi_box_from_bbox(bbox) -> np.ndarray:
    """3DDFA_V2's square crop box (x1, y1, x2, y2) for a face box (``parse_roi_box_from_bbox``)."""
    left, top, right, bottom = (float(v) for v in np.asarray(bbox)[:4])
    old_size = (right - left + bottom - top) / 2.0
    if not old_size > 0:
        raise ValueError(f"face box {np.asarray(bbox)[:4].tolist()} has no area")
    centre_x = right - (right - left) / 2.0
    centre_y = bottom - (bottom - top) / 2.0 + old_size * BOX_SHIFT_DOWN
    size = int(old_size * BOX_SCALE)  # 3DDFA truncates the side to whole pixels
    return np.array([centre_x - size / 2.0, centre_y - size / 2.0, centre_x + size / 2.0, centre_y + size / 2.0])


def crop_roi(img: np.ndarray, roi_box: np.ndarray) -> np.ndarray:
    """The pixels of ``roi_box`` (corners rounded), black where the box leaves the photo (``crop_img``)."""
    h, w = img.shape[:2]
    sx, sy, ex, ey = (int(round(v)) for v in roi_box)
    out = np.zeros((ey - sy, ex - sx) + img.shape[2:], dtype=img.dtype)
    x0, y0, x1, y1 = max(sx, 0), max(sy, 0), min(ex, w), min(ey, h)
    if x1 > x0 and y1 > y0:
        out[y0 - sy:y1 - sy, x0 - sx:x1 - sx] = img[y0:y1, x0:x1]
    return out


@dataclass
class TDDFAPrediction:
    """3DDFA_V2's parameters for one face and what they mean.

    ``params`` (62,) de-normalised; ``coeffs`` (50,) the network's raw
    identity + expression outputs (= our standardised coefficients);
    ``roi_box`` the crop box in the photo.
    """

    params: np.ndarray
    coeffs: np.ndarray
    roi_box: np.ndarray
    model: MorphableModel

    @property
    def scaled_rotation(self) -> np.ndarray:
        """``sR`` (3, 3), micrometres -> crop pixels, y up."""
        return self.params[:TDDFA_POSE_PARAMS].reshape(3, 4)[:, :3]

    @property
    def offset(self) -> np.ndarray:
        return self.params[:TDDFA_POSE_PARAMS].reshape(3, 4)[:, 3]

    @property
    def shape_coeffs(self) -> np.ndarray:
        return self.coeffs[:self.model.n_shape]

    @property
    def expression_coeffs(self) -> np.ndarray:
        return self.coeffs[self.model.n_shape:]

    @property
    def rotation(self) -> np.ndarray:
        """The rotation in ``sR``: rows normalised (3DDFA's ``P2sRt``), then made exactly orthonormal."""
        r1, r2 = (row / np.linalg.norm(row) for row in self.scaled_rotation[:2])
        return nearest_rotation(np.stack([r1, r2, np.cross(r1, r2)]))

    @property
    def pose(self) -> np.ndarray:
        """(pitch, yaw, roll) degrees, same convention as ``FitResult.pose`` and ``Face.pose``."""
        return rotation_to_pose(self.rotation)

    def image_vertices(self, indices=None) -> np.ndarray:
        """(V, 3) vertices in photo pixels: x right, y down, z (min 0, larger = closer), 3DDFA's way.

        ``indices`` (e.g. ``model.landmark_vertices``) restricts to those
        vertices; z's zero is then the minimum over them, as in 3DDFA.
        """
        shape_um = self.model.vertices(self.shape_coeffs, self.expression_coeffs, indices=indices) * MICROMETRES_PER_MM
        pts = shape_um @ self.scaled_rotation.T + self.offset  # (V, 3), crop pixels, y up
        pts[:, 0] -= 1.0
        pts[:, 2] -= 1.0
        pts[:, 1] = INPUT_SIZE - pts[:, 1]
        sx, sy, ex, ey = self.roi_box
        scale_x, scale_y = (ex - sx) / INPUT_SIZE, (ey - sy) / INPUT_SIZE
        pts[:, 0] = pts[:, 0] * scale_x + sx
        pts[:, 1] = pts[:, 1] * scale_y + sy
        pts[:, 2] *= (scale_x + scale_y) / 2.0
        pts[:, 2] -= pts[:, 2].min()
        return pts

    def landmarks_68(self) -> np.ndarray:
        """(68, 3) the sparse landmarks in photo pixels (3DDFA's ``dense_flag=False``)."""
        return self.image_vertices(self.model.landmark_vertices)


class TDDFA:
    """Runs 3DDFA_V2's MobileNet (``3ddfa_mb1``) on face boxes.

    ``backend``: "minicnn" (default) or "onnxruntime" (``faceops.runtime``).
    ``model``: the morphable model (default :func:`load_bfm`).
    """

    def __init__(self, backend: str = "minicnn", model: MorphableModel | None = None):
        from faceops import weights
        from faceops.runtime import create_session

        self.backend = backend
        self.model = model if model is not None else load_bfm()
        self.session = create_session(MODEL_NAME, backend)
        self.input_name = self.session.get_inputs()[0].name
        with np.load(weights.model_path("3ddfa_param_mean_std"), allow_pickle=False) as stats:
            self.param_mean = stats["mean"].astype(np.float64)
            self.param_std = stats["std"].astype(np.float64)
        expected = TDDFA_POSE_PARAMS + self.model.n_shape + self.model.n_expression
        if self.param_mean.size != expected:
            raise ValueError(f"{MODEL_NAME} gives {self.param_mean.size} parameters but the model needs {expected}")

    def blob(self, img_bgr: np.ndarray, roi_box: np.ndarray) -> np.ndarray:
        """The network input (1, 3, 120, 120) for a crop box."""
        crop = cv2.resize(crop_roi(img_bgr, roi_box), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
        return ((crop.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD).transpose(2, 0, 1)[None]

    def predict(self, img_bgr: np.ndarray, bbox) -> TDDFAPrediction:
        """3DDFA_V2's parameters for the face in box ``bbox`` (x1, y1, x2, y2) of a BGR photo."""
        roi_box = roi_box_from_bbox(bbox)
        raw = np.asarray(self.session.run(None, {self.input_name: self.blob(img_bgr, roi_box)})[0],
                         dtype=np.float64).reshape(-1)
        params = raw * self.param_std + self.param_mean
        return TDDFAPrediction(params=params, coeffs=raw[TDDFA_POSE_PARAMS:].copy(), roi_box=roi_box,
                               model=self.model)

    def __repr__(self) -> str:
        return f"TDDFA(model={MODEL_NAME!r}, backend={self.backend!r})"
