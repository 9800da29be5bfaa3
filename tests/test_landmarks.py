"""2D-106 and FaceMesh-468 landmarks, and head pose, on real photos.

Tolerances: minicnn vs onnxruntime landmarks within 0.05 px (the networks'
outputs agree to ~1e-5 relative; 0.05 px leaves room for float32 summation
order after scaling by ~1 px per unit), poses within 0.05 degrees.
Sign conventions (faceops.landmarks docstring) are checked on exact
rotations of the mean shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceops.errors import ModelConfigError
from faceops.landmarks import (
    FaceMesh468,
    Landmark2D106,
    box_crop_matrix,
    crop_to_image,
    estimate_pose,
    facemesh_canonical,
)
from recognition_fixtures import BACKEND, reference_faces

OTHER_BACKEND = "onnxruntime" if BACKEND == "minicnn" else "minicnn"


@pytest.fixture(scope="module")
def lmk106():
    return Landmark2D106("2d106det", backend=BACKEND)


@pytest.fixture(scope="module")
def mesh():
    return FaceMesh468("facemesh", backend=BACKEND)


def rotation(axis: str, degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """Mean distance from each point of a to the nearest point of b (order-free comparison)."""
    return float(np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=2).min(axis=1).mean())


def test_box_crop_matrix_round_trip():
    matrix = box_crop_matrix(np.array([100, 50, 180, 150.0]), 192, 1.5, angle_rad=0.3)
    points = np.array([[10.0, 20.0, 5.0], [150.0, 170.0, -3.0]])
    image = crop_to_image(points, matrix)
    back = image[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(back, points[:, :2], atol=1e-9)
    # depth is scaled like x: the crop covers 1.5 * 100 image pixels with 192 crop pixels
    np.testing.assert_allclose(image[:, 2], points[:, 2] * 150 / 192, rtol=1e-9)
    # the box centre lands in the crop centre
    np.testing.assert_allclose(matrix[:, :2] @ [140, 100] + matrix[:, 2], [96, 96], atol=1e-9)


def test_landmark_106_on_t1(lmk106):
    img, faces = reference_faces("t1")
    for face in faces:
        lmk106.get(img, face)
        points = face.landmark_2d_106
        assert points.shape == (106, 2) and points.dtype == np.float32
        x1, y1, x2, y2 = face.bbox
        w, h = x2 - x1, y2 - y1
        inside = (points[:, 0] > x1 - 0.1 * w) & (points[:, 0] < x2 + 0.1 * w) & \
                 (points[:, 1] > y1 - 0.1 * h) & (points[:, 1] < y2 + 0.1 * h)
        assert inside.mean() > 0.95
        # every detector keypoint (eyes, nose, mouth corners) has a 106-point landmark nearby
        nearest = np.linalg.norm(face.kps[:, None] - points[None], axis=2).min(axis=1)
        assert nearest.max() < 0.08 * max(w, h)


def test_landmark_106_mirror_equivariant(lmk106):
    img, faces = reference_faces("astronaut")
    mimg, mfaces = reference_faces("astronaut", mirrored=True)
    lmk106.get(img, faces[0])
    lmk106.get(mimg, mfaces[0])
    unflipped = mfaces[0].landmark_2d_106.copy()
    unflipped[:, 0] = img.shape[1] - 1 - unflipped[:, 0]
    size = faces[0].bbox[2] - faces[0].bbox[0]
    assert chamfer(faces[0].landmark_2d_106, unflipped) < 0.03 * size


def test_facemesh_on_t1_and_astronaut(mesh):
    for name in ("t1", "astronaut"):
        img, faces = reference_faces(name)
        for face in faces:
            mesh.get(img, face)
            assert face.landmark_3d_468.shape == (468, 3)
            assert face.extra["facemesh_presence"] > 0.9
            assert face.pose.shape == (3,)
            x1, y1, x2, y2 = face.bbox
            centre = face.landmark_3d_468[:, :2].mean(axis=0)
            assert x1 < centre[0] < x2 and y1 < centre[1] < y2
            # the nose tip (MediaPipe index 1) is the point closest to the camera among the central ones
            assert face.landmark_3d_468[1, 2] > np.median(face.landmark_3d_468[:, 2])


def test_pose_frontal_and_mirrored(mesh):
    img, faces = reference_faces("astronaut")
    mesh.get(img, faces[0])
    pitch, yaw, roll = faces[0].pose
    assert abs(yaw) < 5 and abs(roll) < 5 and abs(pitch) < 10
    # mirroring the photo flips the sign of yaw (and roll) for every clearly turned face of t1
    img, faces = reference_faces("t1")
    mimg, mfaces = reference_faces("t1", mirrored=True)
    for face, mface in zip(faces, reversed(mfaces)):  # left-to-right order reverses in the mirror
        mesh.get(img, face)
        mesh.get(mimg, mface)
        if abs(face.pose[1]) > 10:
            assert np.sign(face.pose[1]) == -np.sign(mface.pose[1])
            assert abs(face.pose[1] + mface.pose[1]) < 10
        assert abs(face.pose[0] - mface.pose[0]) < 5  # pitch does not change


@pytest.mark.parametrize("axis, index, meaning", [
    ("x", 0, "pitch > 0: chin towards the camera (looking up)"),
    ("y", 1, "yaw > 0: nose towards the image's right"),
    ("z", 2, "roll > 0: clockwise in the image"),
])
def test_pose_sign_conventions(axis, index, meaning):
    mean_shape, _ = facemesh_canonical()
    turned = mean_shape @ rotation(axis, 20.0).T
    pose = estimate_pose(mean_shape, turned)
    expected = np.zeros(3)
    expected[index] = 20.0
    np.testing.assert_allclose(pose, expected, atol=1e-4, err_msg=meaning)
    nose, chin = 1, 152
    if axis == "x":
        assert turned[chin, 2] > mean_shape[chin, 2]
    if axis == "y":
        assert turned[nose, 0] > mean_shape[nose, 0]
    if axis == "z":
        assert turned[chin, 0] < mean_shape[chin, 0]  # chin swings to the image left: clockwise


@settings(max_examples=25, deadline=None)
@given(st.floats(-60, 60), st.floats(-60, 60), st.floats(-60, 60), st.floats(0.1, 10), st.floats(-100, 100))
def test_pose_recovers_rotation_whatever_scale_and_shift(pitch, yaw, roll, scale, shift):
    """R = Rz(roll) Ry(yaw) Rx(pitch) is exactly what matrix2angle decomposes."""
    mean_shape, _ = facemesh_canonical()
    R = rotation("z", roll) @ rotation("y", yaw) @ rotation("x", pitch)
    points = scale * mean_shape @ R.T + shift
    np.testing.assert_allclose(estimate_pose(mean_shape, points), [pitch, yaw, roll], atol=1e-3)


def test_canonical_shape_is_symmetric():
    mean_shape, mirror = facemesh_canonical()
    assert mean_shape.shape == (468, 3)
    np.testing.assert_array_equal(mirror[mirror], np.arange(468))
    reflected = mean_shape.copy()
    reflected[:, 0] *= -1
    np.testing.assert_allclose(reflected[mirror], mean_shape, atol=1e-6)
    np.testing.assert_allclose(estimate_pose(mean_shape, mean_shape), 0.0, atol=1e-6)


def test_minicnn_matches_onnxruntime(lmk106, mesh):
    other106 = Landmark2D106("2d106det", backend=OTHER_BACKEND)
    other_mesh = FaceMesh468("facemesh", backend=OTHER_BACKEND)
    img, faces = reference_faces("t1")
    for face in faces[:3]:
        np.testing.assert_allclose(lmk106.predict(img, face.bbox), other106.predict(img, face.bbox), atol=0.05)
        points, presence = mesh.predict(img, face)
        other_points, other_presence = other_mesh.predict(img, face)
        np.testing.assert_allclose(points, other_points, atol=0.05)
        assert abs(presence - other_presence) < 1e-4
        mean_shape, _ = facemesh_canonical()
        np.testing.assert_allclose(estimate_pose(mean_shape, points), estimate_pose(mean_shape, other_points), atol=0.05)


def test_wrong_model_names():
    with pytest.raises(ModelConfigError, match="runs '2d106det'"):
        Landmark2D106("facemesh", backend="onnxruntime")
    with pytest.raises(ModelConfigError, match="runs 'facemesh'"):
        FaceMesh468("2d106det", backend="onnxruntime")
