"""Clustering faces by person: DBSCAN on cosine distance, and grouping real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceops.cluster import NOISE, cluster_faces, cluster_photos, cosine_distances, dbscan
from faceops.recognition import Recognizer
from recognition_fixtures import BACKEND, app, person_photos, reference_faces


def test_dbscan_two_groups_and_noise():
    points = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [10.0]])
    distances = np.abs(points - points.T)
    np.testing.assert_array_equal(dbscan(distances, eps=0.15), [0, 0, 0, 1, 1, 2])
    # min_samples=3 (itself included): only the first run of three is dense; 0.2 joins as a border point
    np.testing.assert_array_equal(dbscan(distances, eps=0.15, min_samples=3), [0, 0, 0, NOISE, NOISE, NOISE])


def test_dbscan_border_point_does_not_extend_cluster():
    points = np.array([[0.0], [0.1], [0.2], [0.3]])
    distances = np.abs(points - points.T)
    # cores need 3 points within 0.1: only 0.1 and 0.2 are cores; 0.0 and 0.3 are borders
    np.testing.assert_array_equal(dbscan(distances, eps=0.1 + 1e-9, min_samples=3), [0, 0, 0, 0])
    labels = dbscan(distances, eps=0.1 + 1e-9, min_samples=4)
    np.testing.assert_array_equal(labels, [NOISE] * 4)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_well_separated_people_give_one_cluster_each(people, per_person, seed):
    """Random orthogonal identities plus small noise: exactly one cluster per identity, whatever the order."""
    rng = np.random.default_rng(seed)
    identities = np.linalg.qr(rng.normal(size=(64, people)))[0].T
    samples = np.repeat(identities, per_person, axis=0) + rng.normal(scale=0.03, size=(people * per_person, 64))
    order = rng.permutation(len(samples))
    labels = cluster_faces(samples[order], model="w600k_mbf")
    truth = np.repeat(np.arange(people), per_person)[order]
    assert len(set(labels)) == people
    for label in set(labels):
        assert len(set(truth[labels == label])) == 1


def test_cosine_distances_and_errors():
    d = cosine_distances(np.array([[1.0, 0], [0, 2.0], [-3.0, 0]]))
    np.testing.assert_allclose(d, [[0, 1, 2], [1, 0, 1], [2, 1, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="model="):
        cluster_faces(np.ones((2, 3)))
    with pytest.raises(ValueError, match="square"):
        dbscan(np.ones((2, 3)), eps=0.5)
    assert cluster_faces(np.zeros((0, 8)), eps=0.5).shape == (0,)


@pytest.mark.parametrize("model", ["w600k_mbf", "sface"])
def test_t1_faces_and_mirrors_make_six_groups(model):
    recognizer = Recognizer(model, backend=BACKEND)
    img, faces = reference_faces("t1")
    mimg, mfaces = reference_faces("t1", mirrored=True)
    for face in faces:
        recognizer.get(img, face)
    for face in mfaces:
        recognizer.get(mimg, face)
    labels = cluster_faces(np.stack([f.embedding for f in faces + mfaces]), model=model)
    assert len(set(labels)) == 6
    # face i (left to right) and the mirror face 5 - i (right to left in the mirror) share a group
    np.testing.assert_array_equal(labels[:6], labels[6:][::-1])


def test_cluster_photos_from_files(tmp_path):
    photos = person_photos()
    paths = []
    for name in ("t1_person2", "t1_person4", "astronaut"):
        for variant, img in (("a", photos[name]), ("b", cv2.GaussianBlur(photos[name][:, ::-1], (0, 0), 1.0))):
            path = tmp_path / f"{name}_{variant}.png"
            cv2.imwrite(str(path), img)
            paths.append(path)
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((120, 160, 3), 90, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    report = cluster_photos(paths + [empty, broken], app())
    groups = report.groups()
    assert sorted(len(records) for records in groups.values()) == [2, 2, 2]
    for records in groups.values():
        assert len({r.path.name.rsplit("_", 1)[0] for r in records}) == 1
    assert report.photos_without_faces == [empty]
    assert list(report.unreadable) == [broken]
    as_dict = report.to_dict()
    assert as_dict["num_people"] == 3 and as_dict["num_faces"] == 6
