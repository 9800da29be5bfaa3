"""Recognition: alignment + embedding + cosine verdicts, on real photos.

Tolerances: minicnn vs onnxruntime embeddings cosine >= 0.9999 (float32
engines differing only in summation order); our SFace pipeline vs OpenCV's
own ``cv2.FaceRecognizerSF`` cosine >= 0.99 (same file, same 5 keypoints from
``cv2.FaceDetectorYN``; the crops differ only in how the similarity
transform is estimated and rounded).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from faceops import weights
from faceops.errors import ModelConfigError
from faceops.face import Face
from faceops.recognition import (
    RECOGNITION_MODELS,
    THRESHOLDS,
    EmbeddingMismatchError,
    Recognizer,
    compare,
    cosine_similarity,
)
from recognition_fixtures import BACKEND, reference_faces

MODELS = list(RECOGNITION_MODELS)


@pytest.fixture(scope="module", params=MODELS)
def recognizer(request):
    return Recognizer(request.param, backend=BACKEND)


def embedded(recognizer, name, mirrored=False):
    img, faces = reference_faces(name, mirrored)
    for face in faces:
        recognizer.get(img, face)
    return faces


def test_get_fills_embedding_and_model(recognizer):
    faces = embedded(recognizer, "astronaut")
    face = faces[0]
    assert face.embedding_model == recognizer.model
    assert face.embedding.shape == ({"w600k_mbf": 512, "sface": 128}[recognizer.model],)
    assert face.embedding.dtype == np.float32
    assert np.isclose(np.linalg.norm(face.normed_embedding), 1.0)


def test_mirrored_face_matches_itself(recognizer):
    """Every t1 face and the astronaut match their mirror image above the threshold."""
    for name in ("t1", "astronaut"):
        originals = embedded(recognizer, name)
        mirrors = embedded(recognizer, name, mirrored=True)
        for face in originals:
            best = max(mirrors, key=lambda m: compare(face, m).similarity)
            result = compare(face, best)
            assert result.same, f"{name}: a face does not match its mirror ({result.similarity:.3f})"
            assert result.similarity > recognizer.threshold + 0.3


def test_six_people_of_t1_are_pairwise_different(recognizer):
    faces = embedded(recognizer, "t1")
    assert len(faces) == 6
    for a, b in itertools.combinations(faces, 2):
        result = compare(a, b)
        assert not result.same, f"two different people of t1 match ({result.similarity:.3f} >= {result.threshold})"


def test_minicnn_matches_onnxruntime(recognizer):
    """Same crops through both engines: embeddings cosine >= 0.9999."""
    other = Recognizer(recognizer.model, backend="onnxruntime" if BACKEND == "minicnn" else "minicnn")
    img, faces = reference_faces("t1")
    for face in faces:
        crop = recognizer.align(img, face.kps)
        assert cosine_similarity(recognizer.embed_aligned(crop), other.embed_aligned(crop)) >= 0.9999


def test_sface_agrees_with_opencv_face_recognizer_sf():
    """Our alignment + SFace vs cv2.FaceRecognizerSF.alignCrop + feature on YuNet's 6 faces of t1."""
    img, _ = reference_faces("t1")
    detector = cv2.FaceDetectorYN.create(str(weights.model_path("yunet")), "", (img.shape[1], img.shape[0]))
    _, rows = detector.detect(img)
    assert rows is not None and len(rows) == 6
    reference = cv2.FaceRecognizerSF.create(str(weights.model_path("sface")), "")
    ours = Recognizer("sface", backend=BACKEND)
    for row in rows:
        expected = reference.feature(reference.alignCrop(img, row)).ravel()
        kps = row[4:14].reshape(5, 2)  # right eye, left eye (the person's), nose, mouth corners: image left first
        got = ours.embed_aligned(ours.align(img, kps))
        assert cosine_similarity(expected, got) >= 0.99


def test_compare_accepts_vectors_and_faces():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=512), rng.normal(size=512)
    result = compare(a, a * 3.0, model="w600k_mbf")
    assert result.same and np.isclose(result.similarity, 1.0) and result.threshold == THRESHOLDS["w600k_mbf"]
    assert not compare(a, b, model="w600k_mbf").same
    face = Face(bbox=np.zeros(4), det_score=1.0, embedding=a.astype(np.float32), embedding_model="w600k_mbf")
    assert compare(face, a).same  # the model comes from the face
    assert compare(a, -a, threshold=-1.0).same  # an explicit threshold needs no model


def test_compare_refuses_mixed_models():
    rng = np.random.default_rng(1)
    mbf = Face(bbox=np.zeros(4), det_score=1.0, embedding=rng.normal(size=512), embedding_model="w600k_mbf")
    sface = Face(bbox=np.zeros(4), det_score=1.0, embedding=rng.normal(size=128), embedding_model="sface")
    with pytest.raises(EmbeddingMismatchError, match="different models"):
        compare(mbf, sface)
    with pytest.raises(EmbeddingMismatchError, match="different models"):
        compare(mbf, rng.normal(size=512), model="sface")
    with pytest.raises(EmbeddingMismatchError, match="lengths 512 and 128"):
        compare(rng.normal(size=512), rng.normal(size=128), model="sface")
    with pytest.raises(ValueError, match="needs model="):
        compare(rng.normal(size=8), rng.normal(size=8))
    with pytest.raises(ValueError, match="without an embedding"):
        compare(Face(bbox=np.zeros(4), det_score=1.0), mbf)


def test_bad_model_and_missing_keypoints():
    with pytest.raises(ModelConfigError, match="not a recognition model"):
        Recognizer("2d106det", backend="onnxruntime")
    recognizer = Recognizer("w600k_mbf", backend="onnxruntime")
    with pytest.raises(ValueError, match="keypoints"):
        recognizer.get(np.zeros((100, 100, 3), np.uint8), Face(bbox=np.array([0, 0, 50, 50.0]), det_score=1.0))


@pytest.mark.slow
def test_documented_thresholds_follow_the_measurement_rule():
    """Re-run scripts/measure_thresholds.py's measurement: the documented thresholds are what its rule gives,
    and they separate every measured genuine pair from every impostor pair."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "measure_thresholds.py"
    spec = importlib.util.spec_from_file_location("measure_thresholds", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    embeddings = script.embed_variants(script.identity_photos(), BACKEND, MODELS)
    for model in MODELS:
        genuine, impostor = script.pair_similarities(embeddings[model])
        summary = script.summarise(genuine, impostor, THRESHOLDS[model], script.REFERENCE_THRESHOLDS[model])
        assert summary["rule"] == THRESHOLDS[model]
        assert summary["documented"]["false_accept"] == 0.0 and summary["documented"]["false_reject"] == 0.0
