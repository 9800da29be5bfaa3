"""The real Basel Face Model, 3DDFA_V2, the 106->68 table, and fits on real photos.

Models run on onnxruntime here (the reference; these tests are about the
geometry, not the engine); ``test_tddfa_minicnn_matches_onnxruntime`` checks
that minicnn gives 3DDFA_V2 the same answer.

Bounds on real photos (t1.jpg's 6 faces and the astronaut, landmarks from
2d106det through the 106->68 table, default lambda), measured values in
docs/reconstruction.md:

* landmark reprojection RMS / inter-ocular distance: mean < 0.10, max < 0.20;
* |pitch|, |yaw|, |roll| difference to 3DDFA_V2's regressed pose: mean < 8
  degrees, max < 25 degrees;
* fitting 3DDFA_V2's own 68 landmarks recovers its pose within 2 degrees.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from faceops.morphable import fit_landmarks_68, fit_shape_and_pose, five_point_vertices, load_bfm, pose_to_rotation
from faceops.morphable.fitting import Camera
from faceops.morphable.landmarks import (
    TABLE_PATH,
    correspondences,
    inter_ocular_distance,
    landmarks_68_from_106,
    table_106_to_68,
)
from faceops.morphable.tddfa import TDDFA, roi_box_from_bbox


@pytest.fixture(scope="session")
def bfm():
    return load_bfm()


@pytest.fixture(scope="session")
def tddfa(bfm, model_path):
    model_path("3ddfa_mb1")
    return TDDFA(backend="onnxruntime", model=bfm)


@pytest.fixture(scope="session")
def photo_faces(photos, model_path):
    """[(photo, [Face, ...]), ...] for t1 and the astronaut: boxes, 5 key points and 106 landmarks."""
    from faceops import FaceAnalysis

    app = FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "landmark_2d_106"], backend="onnxruntime")
    app.prepare(det_size=(640, 640))
    return [(photos[name], app.get(photos[name])) for name in ("t1", "astronaut")]


# -- the model -------------------------------------------------------------------------------------


def test_bfm_dimensions_and_landmarks(bfm):
    assert bfm.mean.shape == (38365, 3)
    assert (bfm.n_shape, bfm.n_expression) == (40, 10)
    assert bfm.landmark_vertices.shape == (68,) and len(set(bfm.landmark_vertices.tolist())) == 68
    # A face about 15 cm wide, in millimetres; eyes above the mouth (y up), nose tip in front.
    width = np.ptp(bfm.mean[:, 0])
    assert 120 < width < 180
    lm = bfm.mean[bfm.landmark_vertices]
    assert lm[36:48, 1].mean() > lm[48:68, 1].mean()
    assert lm[30, 2] == pytest.approx(lm[:, 2].max(), abs=5.0)


def test_bfm_is_3ddfa_model_standardised(bfm, model_path):
    """model.vertices(c) in micrometres == u + W_shp alpha_shp + W_exp alpha_exp, alpha = mean + std * c."""
    with np.load(model_path("bfm_noneck_v3")) as raw, np.load(model_path("3ddfa_param_mean_std")) as stats:
        u, w_shp, w_exp = raw["u"].astype(np.float64), raw["w_shp"].astype(np.float64), raw["w_exp"].astype(np.float64)
        mean, std = stats["mean"].astype(np.float64), stats["std"].astype(np.float64)
    c = np.random.default_rng(0).normal(size=50)
    alpha = mean[12:] + std[12:] * c
    flat = u[:, 0] + w_shp @ alpha[:40] + w_exp @ alpha[40:]
    expected = flat.reshape(3, -1, order="F").T  # 3DDFA's reshape: columns of x, y, z per vertex
    np.testing.assert_allclose(bfm.vertices(c[:40], c[40:]) * 1000.0, expected, rtol=1e-9, atol=1e-3)


def test_bfm_triangulation(bfm):
    tri = bfm.triangles
    assert 70_000 < len(tri) < 80_000 and tri.min() == 0 and tri.max() == bfm.n_vertices - 1
    edges = np.sort(np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() <= 2
    a, b, c = (bfm.mean[tri[:, k]] for k in range(3))
    assert np.max(np.linalg.norm(a - b, axis=1)) < 10.0  # mm: no bridging triangles
    normals = np.cross(b - a, c - a)
    assert np.mean(normals[:, 2] > 0) > 0.9  # counter-clockwise seen from the front


def test_five_point_vertices_are_eyes_nose_mouth(bfm):
    five = bfm.mean[five_point_vertices(bfm)]
    assert five[0, 0] < five[2, 0] < five[1, 0]  # image-left eye, nose, image-right eye
    assert five[3, 0] < five[4, 0] and five[3, 1] < five[2, 1] < five[0, 1]


@pytest.mark.parametrize("pose", [(0, 0, 0), (20, -45, 10), (-30, 60, -20)])
def test_noiseless_fit_with_the_bfm(bfm, pose):
    """Default settings on exact landmarks of a random BFM face (coefficients N(0, 1), face ~195 px wide).

    Not exact: lambda biases the shape, and with the real BFM the alternation
    converges slowly (pose and identity trade off; docs/reconstruction.md).
    Measured over 9 cases: pose error <= 1.8 degrees, RMS 0.7-1.2 px.
    """
    for seed in range(3):
        rng = np.random.default_rng(seed)
        camera = Camera(pose_to_rotation(*pose), 1.3, np.array([300.0, 250.0]))
        c_id, c_exp = rng.normal(size=40), rng.normal(size=10)
        points = camera.project(bfm.vertices(c_id, c_exp, indices=bfm.landmark_vertices))
        fit = fit_landmarks_68(bfm, points)
        assert fit.rms_error < 1.5
        assert np.all(np.abs(fit.pose - pose) < 2.5), fit.pose
        assert fit.scale == pytest.approx(camera.scale, rel=0.05)


# -- 3DDFA_V2 --------------------------------------------------------------------------------------


def test_roi_box_matches_3ddfa():
    # parse_roi_box_from_bbox([100, 50, 200, 170]): old_size 110, centre (150, 110 + 15.4), side int(173.8) = 173
    np.testing.assert_allclose(roi_box_from_bbox([100, 50, 200, 170]), [63.5, 38.9, 236.5, 211.9], atol=1e-9)


def test_tddfa_on_the_astronaut(tddfa, photos, astronaut_face_box):
    prediction = tddfa.predict(photos["astronaut"], astronaut_face_box)
    landmarks = prediction.landmarks_68()
    assert landmarks.shape == (68, 3)
    x1, y1, x2, y2 = astronaut_face_box
    assert np.all((landmarks[:, 0] > x1 - 10) & (landmarks[:, 0] < x2 + 10))
    assert np.all((landmarks[:, 1] > y1 - 10) & (landmarks[:, 1] < y2 + 10))
    assert np.all(np.abs(prediction.pose) < 20)  # a frontal portrait
    dense = prediction.image_vertices()
    assert dense.shape == (38365, 3) and dense[:, 2].min() == 0.0
    np.testing.assert_allclose(dense[tddfa.model.landmark_vertices, :2], landmarks[:, :2], atol=1e-6)


def test_tddfa_minicnn_matches_onnxruntime(tddfa, bfm, photos, astronaut_face_box):
    ours = TDDFA(backend="minicnn", model=bfm).predict(photos["astronaut"], astronaut_face_box)
    reference = tddfa.predict(photos["astronaut"], astronaut_face_box)
    np.testing.assert_allclose(ours.coeffs, reference.coeffs, atol=1e-3)
    np.testing.assert_allclose(ours.landmarks_68(), reference.landmarks_68(), atol=0.05)


def test_fitting_3ddfa_landmarks_recovers_its_pose(tddfa, bfm, photo_faces):
    for img, faces in photo_faces:
        for face in faces:
            prediction = tddfa.predict(img, face.bbox)
            fit = fit_landmarks_68(bfm, prediction.landmarks_68()[:, :2])
            assert np.all(np.abs(fit.pose - prediction.pose) < 2.0), (fit.pose, prediction.pose)


# -- the 106 -> 68 table and fits on real photos ---------------------------------------------------


def test_table_106_to_68_file():
    record = json.loads(TABLE_PATH.read_text())
    assert len(record["index_106"]) == 68 and len(record["mean_error_iod"]) == 68
    assert record["overall_mean_error_iod"] == pytest.approx(np.mean(record["mean_error_iod"]), abs=1e-3)
    table = table_106_to_68()
    points = np.arange(212, dtype=np.float64).reshape(106, 2)
    np.testing.assert_array_equal(landmarks_68_from_106(points), points[table])
    with pytest.raises(ValueError, match="expected 106 landmarks"):
        landmarks_68_from_106(points[:68])


def test_fits_on_real_photos(tddfa, bfm, photo_faces):
    relative_errors, pose_differences = [], []
    for img, faces in photo_faces:
        for face in faces:
            points, indices = correspondences(bfm, "106", face)
            fit = fit_shape_and_pose(bfm, points, indices)
            relative_errors.append(fit.rms_error / inter_ocular_distance(points))
            pose_differences.append(np.abs(fit.pose - tddfa.predict(img, face.bbox).pose))
    assert len(relative_errors) == 7
    relative_errors, pose_differences = np.array(relative_errors), np.array(pose_differences)
    assert relative_errors.mean() < 0.10 and relative_errors.max() < 0.20, relative_errors
    assert np.all(pose_differences.mean(axis=0) < 8.0), pose_differences
    assert pose_differences.max() < 25.0, pose_differences


def test_five_point_fit_on_the_astronaut(bfm, tddfa, photo_faces):
    img, faces = photo_faces[1]
    points, indices = correspondences(bfm, "5", faces[0])
    fit = fit_shape_and_pose(bfm, points, indices)
    assert fit.residuals.shape == (5, 2)
    reference = tddfa.predict(img, faces[0].bbox).pose
    assert np.all(np.abs(fit.pose - reference) < 15.0), (fit.pose, reference)
