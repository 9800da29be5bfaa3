"""The morphable model and the least-squares fitter on synthetic data (small random linear bases).

What is checked, and with which tolerance:

* noiseless landmarks, unregularised fit, enough iterations: the pose,
  coefficients and landmarks come back to round-off (rotation within 1e-6
  degrees, reprojection error below 1e-6 px);
* pixel noise of sigma 0.5 px, 5 iterations, MAP weight: rotation within
  3 degrees, RMS reprojection error between 0.6 and 1.05 x the RMS of the
  noise actually added;
* translating or scaling the 2D points changes only t and s (relative 1e-7);
* every kind of bad input raises FittingError naming the count or indices.

Poses: yaw and pitch uniform in +-60 degrees, roll in +-30.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceops.errors import FaceopsError
from faceops.morphable import (
    Camera,
    FittingError,
    MorphableModel,
    estimate_camera,
    fit_shape_and_pose,
    pose_to_rotation,
    random_model,
    rotation_to_pose,
)
from faceops.morphable.fitting import nearest_rotation

MODEL = random_model(n_vertices=150, n_shape=10, n_expression=5, seed=3)
LANDMARKS = MODEL.landmark_vertices

angles = st.tuples(st.floats(-60, 60), st.floats(-60, 60), st.floats(-30, 30))  # pitch, yaw, roll
seeds = st.integers(0, 2**31 - 1)


def rotation_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle of the rotation taking ``a`` to ``b``, from ``|a - b|_F = 2 sqrt(2) sin(angle / 2)``.

    (The textbook ``acos((trace(a^T b) - 1) / 2)`` loses half the digits near 0.)
    """
    return float(np.degrees(2.0 * np.arcsin(min(np.linalg.norm(a - b) / (2.0 * np.sqrt(2.0)), 1.0))))


def synthetic_face(pose, seed, scale=2.5, noise_px=0.0):
    """Ground truth (camera, shape coeffs, expression coeffs) and its projected landmarks."""
    rng = np.random.default_rng(seed)
    camera = Camera(pose_to_rotation(*pose), scale, rng.uniform(100, 500, 2))
    c_id = rng.normal(size=MODEL.n_shape)
    c_exp = rng.normal(size=MODEL.n_expression)
    points = camera.project(MODEL.vertices(c_id, c_exp, indices=LANDMARKS))
    return camera, c_id, c_exp, points + rng.normal(0.0, noise_px, points.shape)


def noise_rms(points, camera, c_id, c_exp) -> float:
    """RMS length of the noise vectors that were added to the exact projections."""
    exact = camera.project(MODEL.vertices(c_id, c_exp, indices=LANDMARKS))
    return float(np.sqrt(np.mean(np.sum((points - exact) ** 2, axis=1))))


# -- the model -------------------------------------------------------------------------------------


def test_vertices_is_the_linear_model():
    rng = np.random.default_rng(0)
    c_id, c_exp = rng.normal(size=MODEL.n_shape), rng.normal(size=MODEL.n_expression)
    expected = MODEL.mean + np.einsum("vdk,k->vd", MODEL.shape_basis, c_id) \
        + np.einsum("vdk,k->vd", MODEL.expression_basis, c_exp)
    np.testing.assert_allclose(MODEL.vertices(c_id, c_exp), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(MODEL.vertices(c_id, c_exp, indices=[5, 2]), expected[[5, 2]], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(MODEL.vertices(), MODEL.mean)


def test_model_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="shape_basis must be"):
        MorphableModel(np.zeros((4, 3)), np.zeros((5, 3, 2)), np.zeros((4, 3, 1)), [], [])
    with pytest.raises(ValueError, match="landmark_vertices index"):
        MorphableModel(np.zeros((4, 3)), np.zeros((4, 3, 2)), np.zeros((4, 3, 0)), [], [0, 4])
    with pytest.raises(ValueError, match="shape_coeffs has 3 values"):
        MODEL.vertices(np.zeros(3))


def test_random_model_triangulation_is_consistent():
    tri = MODEL.triangles
    assert len(tri) > MODEL.n_vertices  # a surface: about 2 triangles per vertex
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() <= 2  # every edge borders at most two triangles: no folds


# -- rotations and poses ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(angles)
def test_pose_round_trip(pose):
    rotation = pose_to_rotation(*pose)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(rotation_to_pose(rotation), pose, atol=1e-3)  # rotation_to_angles is float32


def test_pose_signs_follow_face_pose_convention():
    """yaw > 0 turns the nose to the image right; pitch > 0 lifts it; roll > 0 is clockwise."""
    nose, right = np.array([[0.0, 0.0, 100.0]]), np.array([[100.0, 0.0, 0.0]])

    def project(pose, point):
        return Camera(pose_to_rotation(*pose), 1.0, np.zeros(2)).project(point)[0]

    assert project((0, 30, 0), nose)[0] > 0
    assert project((30, 0, 0), nose)[1] < 0  # image y is down: up is negative
    assert project((0, 0, 30), right)[1] > 0


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_nearest_rotation_is_a_rotation(seed):
    matrix = np.random.default_rng(seed).normal(size=(3, 3))
    rotation = nearest_rotation(matrix)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0, abs=1e-12)


# -- the camera ------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(angles, seeds)
def test_camera_exact_on_exact_data(pose, seed):
    camera, _, _, _ = synthetic_face(pose, seed)
    points_3d = MODEL.mean[LANDMARKS]
    estimate = estimate_camera(camera.project(points_3d), points_3d)
    assert rotation_angle_deg(estimate.rotation, camera.rotation) < 1e-6
    assert estimate.scale == pytest.approx(camera.scale, rel=1e-10)
    np.testing.assert_allclose(estimate.translation, camera.translation, atol=1e-8)


# -- the fitter ------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(angles, seeds)
def test_noiseless_fit_is_exact(pose, seed):
    camera, c_id, c_exp, points = synthetic_face(pose, seed)
    fit = fit_shape_and_pose(MODEL, points, LANDMARKS, n_iterations=60, shape_lambda=0.0, expression_lambda=0.0)
    assert fit.rms_error < 1e-6
    assert rotation_angle_deg(fit.rotation, camera.rotation) < 1e-6
    assert fit.scale == pytest.approx(camera.scale, rel=1e-8)
    np.testing.assert_allclose(fit.shape_coeffs, c_id, atol=1e-6)
    np.testing.assert_allclose(fit.expression_coeffs, c_exp, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(angles, seeds)
def test_noisy_fit_recovers_pose_at_the_noise_level(pose, seed):
    noise_px, scale = 0.5, 2.5
    camera, c_id, c_exp, points = synthetic_face(pose, seed, scale=scale, noise_px=noise_px)
    lam = (noise_px / scale) ** 2  # the MAP weight: noise variance in model units
    fit = fit_shape_and_pose(MODEL, points, LANDMARKS, shape_lambda=lam, expression_lambda=lam)
    assert rotation_angle_deg(fit.rotation, camera.rotation) < 3.0
    # At the noise level: the fit explains the points about as well as the truth does -- a little
    # better (21 of 136 degrees of freedom absorb some noise), never much worse.
    noise = noise_rms(points, camera, c_id, c_exp)
    assert 0.6 * noise <= fit.rms_error <= 1.05 * noise


@settings(max_examples=20, deadline=None)
@given(angles, seeds, st.floats(-300, 300), st.floats(-300, 300), st.floats(0.2, 5.0))
def test_translating_or_scaling_points_changes_only_t_and_s(pose, seed, dx, dy, k):
    _, _, _, points = synthetic_face(pose, seed, noise_px=0.7)
    base = fit_shape_and_pose(MODEL, points, LANDMARKS)
    moved = fit_shape_and_pose(MODEL, k * points + [dx, dy], LANDMARKS)
    np.testing.assert_allclose(moved.rotation, base.rotation, atol=1e-7)
    np.testing.assert_allclose(moved.shape_coeffs, base.shape_coeffs, atol=1e-7)
    np.testing.assert_allclose(moved.expression_coeffs, base.expression_coeffs, atol=1e-7)
    assert moved.scale == pytest.approx(k * base.scale, rel=1e-7)
    np.testing.assert_allclose(moved.translation, k * base.translation + [dx, dy], rtol=1e-7, atol=1e-6)
    np.testing.assert_allclose(moved.residuals, k * base.residuals, rtol=1e-6, atol=1e-6)


def test_regularisation_shrinks_coefficients_and_raises_error():
    _, _, _, points = synthetic_face((10, -20, 5), seed=7, noise_px=0.5)
    norms, errors = [], []
    for lam in (0.0, 0.1, 1.0, 10.0, 100.0):
        fit = fit_shape_and_pose(MODEL, points, LANDMARKS, shape_lambda=lam, expression_lambda=lam)
        norms.append(np.linalg.norm(np.concatenate([fit.shape_coeffs, fit.expression_coeffs])))
        errors.append(fit.rms_error)
    assert all(a > b for a, b in zip(norms, norms[1:]))
    assert all(a < b for a, b in zip(errors, errors[1:]))


def test_fit_result_mesh_and_image_vertices():
    camera, _, _, points = synthetic_face((0, 25, 0), seed=1)
    fit = fit_shape_and_pose(MODEL, points, LANDMARKS, n_iterations=60, shape_lambda=0.0, expression_lambda=0.0)
    assert fit.vertices.shape == (MODEL.n_vertices, 3)
    image = fit.image_vertices()
    np.testing.assert_allclose(image[LANDMARKS, :2], points, atol=1e-6)
    np.testing.assert_allclose(fit.residuals, points - image[LANDMARKS, :2], atol=1e-6)
    assert fit.yaw == pytest.approx(25.0, abs=1e-3)
    assert fit.errors.shape == (len(LANDMARKS),)


def test_subset_of_landmarks_fits():
    """Any subset with known vertex indices works, e.g. a handful of points."""
    for seed in range(5):
        camera, _, _, points = synthetic_face((15, -30, 10), seed=seed)
        subset = np.random.default_rng(seed).choice(len(LANDMARKS), 20, replace=False)
        fit = fit_shape_and_pose(MODEL, points[subset], LANDMARKS[subset])
        assert fit.residuals.shape == (20, 2)
        # 20 points cannot pin down 15 coefficients and the pose exactly; the
        # regularised fit still gets the pose within a few degrees (measured: <= 3.6 over 20 seeds).
        assert rotation_angle_deg(fit.rotation, camera.rotation) < 5.0


# -- bad input -------------------------------------------------------------------------------------


def test_fitting_error_is_a_value_error_and_a_faceops_error():
    assert issubclass(FittingError, ValueError) and issubclass(FittingError, FaceopsError)


def test_too_few_points():
    with pytest.raises(FittingError, match="at least 4 points.*got 3"):
        fit_shape_and_pose(MODEL, np.zeros((3, 2)), LANDMARKS[:3])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_points(bad):
    _, _, _, points = synthetic_face((0, 0, 0), seed=2)
    points[[4, 9]] = bad
    with pytest.raises(FittingError, match=r"points \[4, 9\] are not finite"):
        fit_shape_and_pose(MODEL, points, LANDMARKS)


def test_mismatched_lengths():
    with pytest.raises(FittingError, match="10 points but 9 vertex indices"):
        fit_shape_and_pose(MODEL, np.zeros((10, 2)), LANDMARKS[:9])


def test_indices_outside_the_model():
    _, _, _, points = synthetic_face((0, 0, 0), seed=2)
    indices = LANDMARKS.copy()
    indices[3] = MODEL.n_vertices + 5
    with pytest.raises(FittingError, match=rf"vertex indices \[{MODEL.n_vertices + 5}\] \(at positions \[3\]\)"):
        fit_shape_and_pose(MODEL, points, indices)


def test_collinear_points():
    points = np.column_stack([np.linspace(0, 100, 10), np.linspace(0, 50, 10)])
    with pytest.raises(FittingError, match="10 2D points are degenerate \\(collinear"):
        fit_shape_and_pose(MODEL, points, LANDMARKS[:10])


def test_coplanar_model_points():
    flat = MorphableModel(np.column_stack([np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20)]),
                          np.zeros((20, 3, 2)), np.zeros((20, 3, 0)), [], [])
    points = np.random.default_rng(1).normal(size=(20, 2))
    with pytest.raises(FittingError, match="model vertices are degenerate \\(coplanar"):
        fit_shape_and_pose(flat, points, np.arange(20))


def test_wrong_shapes():
    with pytest.raises(FittingError, match=r"points_2d must be \(N, 2\)"):
        fit_shape_and_pose(MODEL, np.zeros((10, 3)), LANDMARKS[:10])
    with pytest.raises(FittingError, match="1-D integer array"):
        fit_shape_and_pose(MODEL, np.zeros((10, 2)), np.arange(10.0))
