"""faceops.align: Umeyama's similarity transform and the ArcFace crop.

Umeyama must recover a known similarity transform exactly (up to float64
round-off, tolerance 1e-6 relative) from noiseless points, never return a
reflection, and ``norm_crop`` must put the keypoints on the template.
"""

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceops.align import (
    ARCFACE_TEMPLATE,
    arcface_template,
    estimate_norm,
    invert_affine,
    norm_crop,
    transform_points,
    umeyama,
)


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@settings(max_examples=60, deadline=None)
@given(
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.05, 20.0),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(3, 12),
)
def test_umeyama_recovers_a_known_similarity(angle, scale, tx, ty, seed, n):
    rng = np.random.default_rng(seed)
    src = rng.uniform(-100, 100, size=(n, 2))
    truth = similarity(angle, scale, tx, ty)
    dst = transform_points(src, truth)
    found = umeyama(src, dst)
    np.testing.assert_allclose(found[:2], truth, rtol=1e-6, atol=1e-6 * max(1.0, scale) * 100)
    np.testing.assert_allclose(found[2], [0, 0, 1])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_umeyama_never_reflects(seed):
    # Mirror the target: the best *similarity* is still a rotation (det > 0), never the mirror.
    rng = np.random.default_rng(seed)
    src = rng.uniform(-50, 50, size=(5, 2))
    dst = src * np.array([-1.0, 1.0])
    linear = umeyama(src, dst)[:2, :2]
    assert np.linalg.det(linear) > 0


def test_umeyama_least_squares_with_noise_beats_perturbations():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = transform_points(src, similarity(0.3, 1.2, 5, -7)) + rng.normal(0, 2.0, size=(5, 2))
    best = umeyama(src, dst)
    err = lambda m: ((transform_points(src, m) - dst) ** 2).sum()
    for _ in range(50):
        angle, scale, tx, ty = rng.normal(0, [0.02, 0.02, 0.5, 0.5])
        c, s = np.cos(angle), np.sin(angle)
        rot = np.array([[c, -s], [s, c]]) * (1 + scale)
        other = best[:2].copy()
        other[:, :2] = rot @ other[:, :2]
        other[:, 2] += [tx, ty]
        assert err(best) <= err(other) + 1e-9


def test_umeyama_rejects_bad_input():
    with pytest.raises(ValueError, match="same shape"):
        umeyama(np.zeros((5, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="coincide"):
        umeyama(np.ones((5, 2)), np.zeros((5, 2)))


def test_template_sizes():
    np.testing.assert_allclose(arcface_template(112), ARCFACE_TEMPLATE)
    np.testing.assert_allclose(arcface_template(224), ARCFACE_TEMPLATE * 2)
    t128 = arcface_template(128)
    np.testing.assert_allclose(t128[:, 0], ARCFACE_TEMPLATE[:, 0] + 8.0, rtol=1e-6)
    np.testing.assert_allclose(t128[:, 1], ARCFACE_TEMPLATE[:, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="multiple of 112 or 128"):
        arcface_template(100)


def test_estimate_norm_of_the_template_is_identity():
    np.testing.assert_allclose(estimate_norm(ARCFACE_TEMPLATE, 112), [[1, 0, 0], [0, 1, 0]], atol=1e-5)
    with pytest.raises(ValueError, match="5 keypoints"):
        estimate_norm(np.zeros((4, 2)))


def test_norm_crop_puts_keypoints_on_the_template():
    # Draw five dots where a rotated, scaled face's keypoints are, crop, and find the dots again.
    truth = similarity(0.4, 2.5, 300, 150)
    kps = transform_points(ARCFACE_TEMPLATE, truth)
    img = np.zeros((600, 800, 3), dtype=np.uint8)
    for i, (x, y) in enumerate(kps):
        cv2.circle(img, (int(round(x)), int(round(y))), 6, (40 * (i + 2),) * 3, -1)
    crop = norm_crop(img, kps, 112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    for i, (x, y) in enumerate(ARCFACE_TEMPLATE):
        assert crop[int(round(y)), int(round(x)), 0] > 0, f"keypoint {i} not at its template position"
    matrix = estimate_norm(kps, 112)
    np.testing.assert_allclose(transform_points(kps, matrix), ARCFACE_TEMPLATE, atol=1e-3)
    back = transform_points(ARCFACE_TEMPLATE, invert_affine(matrix))
    np.testing.assert_allclose(back, kps, atol=1e-3)
