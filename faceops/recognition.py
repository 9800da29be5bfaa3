"""Face recognition: an aligned face crop in, an identity vector (embedding) out.

Two faces belong to the same person when the cosine similarity of their
embeddings is at least the model's threshold. The pipeline, for one face:

1. **align**: warp the photo so the five detected keypoints land on the
   ArcFace template of a 112x112 crop (``faceops.align.norm_crop``); both
   recognisers here were trained on crops cut exactly this way;
2. **embed**: feed the crop to the network, built as the model's manifest
   input spec says (``faceops.model_input``):

   * ``w600k_mbf`` (InsightFace's MobileFaceNet trained on WebFace600K,
     512-D): RGB, ``(x - 127.5) / 127.5``;
   * ``sface`` (OpenCV Zoo's SFace, 128-D): RGB 0..255; the graph starts with
     its own Sub/Mul nodes, so nothing is normalised outside it. OpenCV's
     ``cv2.FaceRecognizerSF`` runs the same file; tests check that our
     embeddings agree with its ``alignCrop`` + ``feature`` (cosine >= 0.99);

3. **compare**: cosine similarity ``a.b / (|a| |b|)`` in [-1, 1].

The thresholds in ``THRESHOLDS`` were measured by
``scripts/measure_thresholds.py``; docs/recognition.md gives the numbers,
what they were measured on and why each value was chosen. Embeddings of two
different models live in unrelated spaces: comparing them is refused.

The InsightFace weights (w600k_mbf) are for non-commercial research only;
SFace is Apache-2.0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from faceops.align import norm_crop
from faceops.errors import ModelConfigError
from faceops.face import Face
from faceops.model_input import InputSpec
from faceops.runtime import create_session

# Cosine-similarity thresholds: same person when similarity >= threshold.
# scripts/measure_thresholds.py measured 8 people x 18 variants (augmented
# copies before detection): impostor max 0.341 (w600k_mbf) and 0.424 (sface),
# genuine min 0.481 and 0.564. Rule: the larger of the published reference
# (0.40 for InsightFace models, 0.363 OpenCV's for SFace) and the next multiple
# of 0.05 above every impostor. Full numbers: docs/recognition.md, "Thresholds".
THRESHOLDS = {
    "w600k_mbf": 0.40,
    "sface": 0.45,
}

RECOGNITION_MODELS = tuple(THRESHOLDS)


class EmbeddingMismatchError(ModelConfigError):
    """Two embeddings (or an embedding and a gallery) come from different models, or have different sizes."""


@dataclass(frozen=True)
class Comparison:
    """The verdict on two faces: cosine ``similarity``, ``same`` = similarity >= ``threshold``."""

    similarity: float
    same: bool
    threshold: float
    model: str | None = None

    def to_dict(self) -> dict:
        return {"similarity": round(self.similarity, 4), "same": self.same,
                "threshold": self.threshold, "model": self.model}


def check_model(model: str) -> str:
    if model not in THRESHOLDS:
        raise ModelConfigError(f"{model!r} is not a recognition model; known: {', '.join(RECOGNITION_MODELS)}")
    return model


def threshold_for(model: str) -> float:
    """The documented same-person threshold of recognition model ``model``."""
    return THRESHOLDS[check_model(model)]


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """``a.b / (|a| |b|)`` for two vectors of the same length."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise EmbeddingMismatchError(f"cannot compare embeddings of lengths {a.size} and {b.size}: "
                                     "they come from different models")
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0.0 or not np.isfinite(norm):
        raise ValueError("cannot compare an all-zero or non-finite embedding")
    return float(a @ b / norm)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (float64): cosine similarity of unit rows is their dot product."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if np.any(norms == 0.0) or not np.all(np.isfinite(norms)):
        raise ValueError("an embedding is all zeros or not finite")
    return vectors / norms


def _unpack(x, what: str) -> tuple[np.ndarray, str | None]:
    """(vector, model or None) from a Face or an array."""
    if isinstance(x, Face):
        if x.embedding is None:
            raise ValueError(f"{what} is a Face without an embedding: run a Recognizer on it first "
                             "(FaceAnalysis does, when its pack has a recognition model)")
        return np.asarray(x.embedding), x.embedding_model
    return np.asarray(x), None


def compare(a, b, model: str | None = None, threshold: float | None = None) -> Comparison:
    """Cosine similarity of ``a`` and ``b`` and the same-person verdict.

    ``a`` and ``b`` are Face objects (with embeddings) or raw vectors. The
    model, which picks the threshold, comes from the faces'
    ``embedding_model`` or from ``model``; faces embedded by different models
    (or a ``model`` contradicting them) raise ``EmbeddingMismatchError``.
    For two raw vectors ``model`` is required. ``threshold`` overrides the
    model's documented one.
    """
    vec_a, model_a = _unpack(a, "a")
    vec_b, model_b = _unpack(b, "b")
    known = {m for m in (model_a, model_b, model) if m is not None}
    if len(known) > 1:
        raise EmbeddingMismatchError(
            f"refusing to compare embeddings of different models ({', '.join(sorted(known))}): "
            "their vectors live in unrelated spaces; embed both faces with the same model"
        )
    if not known and threshold is None:
        raise ValueError("compare(a, b) of two raw vectors needs model= (which picks the threshold) or threshold=")
    name = known.pop() if known else None
    limit = float(threshold) if threshold is not None else threshold_for(name)
    similarity = cosine_similarity(vec_a, vec_b)
    return Comparison(similarity=similarity, same=similarity >= limit, threshold=limit, model=name)


class Recognizer:
    """The 'recognition' module: fills ``face.embedding`` and ``face.embedding_model``.

    ``model`` is "w600k_mbf" or "sface"; ``backend`` "minicnn" (default) or
    "onnxruntime". ``threshold`` is the model's documented same-person
    threshold (``THRESHOLDS``).
    """

    taskname = "recognition"

    def __init__(self, model: str = "w600k_mbf", backend: str = "minicnn"):
        self.model = check_model(model)
        self.backend = backend
        self.spec = InputSpec.from_manifest(model)
        if self.spec.size[0] != self.spec.size[1]:
            raise ModelConfigError(f"{model}: the ArcFace alignment needs a square input, the manifest says {self.spec.size}")
        self.session = create_session(model, backend=backend)
        self.input_name = self.session.get_inputs()[0].name
        self.threshold = THRESHOLDS[model]

    @property
    def crop_size(self) -> int:
        return self.spec.size[0]

    def align(self, img_bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """The aligned crop (BGR uint8, ``crop_size`` square) of the face with keypoints ``kps``."""
        return norm_crop(img_bgr, kps, self.crop_size)

    def embed_aligned(self, crop_bgr: np.ndarray) -> np.ndarray:
        """The raw embedding (float32, not normalised) of an already aligned BGR crop."""
        if crop_bgr.ndim != 3 or crop_bgr.shape[2] != 3:
            raise ValueError(f"embed_aligned takes one (H, W, 3) BGR crop; got shape {crop_bgr.shape}")
        output = self.session.run(None, {self.input_name: self.spec.blob(crop_bgr)})[0]
        return np.asarray(output, dtype=np.float32).reshape(-1)

    def get(self, img_bgr: np.ndarray, face: Face) -> None:
        """Align ``face`` by its keypoints, embed it, store the vector and this model's name in ``face``."""
        if face.kps is None:
            raise ValueError("recognition needs the 5 detected keypoints (face.kps) to align the face; "
                             "this detector gave none")
        face.embedding = self.embed_aligned(self.align(img_bgr, face.kps))
        face.embedding_model = self.model

    def compare(self, a, b) -> Comparison:
        """``compare(a, b)`` with this recogniser's model."""
        return compare(a, b, model=self.model)

    def __repr__(self) -> str:
        return f"Recognizer({self.model!r}, backend={self.backend!r})"
