"""Gallery: enrol, search top-k, save/load, model checks, and attendance on the t1 group photo."""

from __future__ import annotations

import numpy as np
import pytest

from faceops.errors import NoFaceError
from faceops.face import Face
from faceops.gallery import Gallery, GalleryFileError, attendance
from faceops.recognition import THRESHOLDS, EmbeddingMismatchError
from recognition_fixtures import app, person_photos, photo


def random_unit(rng, dim=512):
    v = rng.normal(size=dim)
    return v / np.linalg.norm(v)


def test_search_top_k_and_threshold():
    rng = np.random.default_rng(0)
    alice, bob, carol = (random_unit(rng) for _ in range(3))
    gallery = Gallery("w600k_mbf")
    gallery.enroll("alice", alice)
    gallery.enroll("bob", bob)
    gallery.enroll("bob", 0.9 * carol + 0.1 * bob)  # a second, very different photo of bob
    gallery.enroll("carol", carol)
    assert gallery.people == ["alice", "bob", "carol"] and len(gallery.names) == 4
    query = 0.8 * alice + 0.2 * random_unit(rng)
    matches = gallery.search(query, top_k=3)
    assert [m.name for m in matches][0] == "alice" and matches[0].same
    assert [m.similarity for m in matches] == sorted((m.similarity for m in matches), reverse=True)
    assert len(matches) == 3 and not matches[2].same
    assert gallery.identify(query).name == "alice"
    assert gallery.identify(random_unit(rng)) is None  # a stranger
    # a person scores their best embedding: bob's second photo looks like carol
    assert gallery.similarities(carol)["bob"] > THRESHOLDS["w600k_mbf"]


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    gallery = Gallery("sface")
    for name in ("ann", "ann", "ben"):
        gallery.enroll(name, random_unit(rng, 128))
    path = gallery.save(tmp_path / "people")
    assert path.name == "people.npz"
    loaded = Gallery.load(path)
    assert loaded.model == "sface" and loaded.threshold == gallery.threshold
    assert loaded.names == gallery.names
    np.testing.assert_allclose(loaded.embeddings, gallery.embeddings, atol=1e-7)
    query = random_unit(rng, 128)
    assert [m.to_dict() for m in loaded.search(query, 2)] == [m.to_dict() for m in gallery.search(query, 2)]
    with pytest.raises(EmbeddingMismatchError, match="holds sface embeddings"):
        Gallery.load(path, model="w600k_mbf")


def test_bad_files_and_inputs(tmp_path):
    with pytest.raises(GalleryFileError, match="no such gallery"):
        Gallery.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    np.savez(junk, something=np.zeros(3))
    with pytest.raises(GalleryFileError, match="not a faceops gallery"):
        Gallery.load(junk)
    gallery = Gallery("w600k_mbf")
    gallery.enroll("x", np.ones(512))
    with pytest.raises(EmbeddingMismatchError):
        gallery.enroll("y", np.ones(128))
    with pytest.raises(EmbeddingMismatchError, match="embedded by 'sface'"):
        gallery.enroll("z", Face(bbox=np.zeros(4), det_score=1.0, embedding=np.ones(128), embedding_model="sface"))
    with pytest.raises(ValueError, match="non-empty"):
        gallery.enroll(" ", np.ones(512))
    with pytest.raises(ValueError, match="top_k"):
        gallery.search(np.ones(512), top_k=0)


def test_enroll_photo_without_face():
    gallery = Gallery("w600k_mbf")
    with pytest.raises(NoFaceError):
        gallery.enroll_photo("nobody", np.full((200, 200, 3), 127, np.uint8), app())


def test_attendance_on_the_group_photo():
    """Enrol 3 of t1's people (from their own cut-outs) and the astronaut; the group photo has the 3 and 3 strangers."""
    recognise = app()
    gallery = Gallery(recognise.models["recognition"].model)
    photos = person_photos()
    for name in ("t1_person1", "t1_person3", "t1_person5", "astronaut"):
        gallery.enroll_photo(name, photos[name][:, ::-1].copy(), recognise)  # enrol the mirror image
    present, absent, unknown = attendance(gallery, photo("t1"), recognise)
    assert sorted(present) == ["t1_person1", "t1_person3", "t1_person5"]
    assert absent == ["astronaut"]
    assert len(unknown) == 3
    for score, face in present.values():
        assert score >= gallery.threshold and isinstance(face, Face)
    # present faces are distinct faces
    boxes = {tuple(np.round(face.bbox, 1)) for _, face in present.values()}
    assert len(boxes) == 3
