"""`faceops compare`, `enroll`, `identify`, `attendance` and `cluster`, run through faceops.cli.main."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from faceops import weights
from faceops.cli import main
from recognition_fixtures import BACKEND, person_photos

ENGINE = ["--backend", BACKEND]


@pytest.fixture(scope="module")
def photo_dir(tmp_path_factory):
    """person_N.png and person_N_mirror.png for three people of t1, the astronaut, a faceless image, the group photo."""
    folder = tmp_path_factory.mktemp("photos")
    photos = person_photos()
    for name in ("t1_person1", "t1_person2", "t1_person6", "astronaut"):
        cv2.imwrite(str(folder / f"{name}.png"), photos[name])
        cv2.imwrite(str(folder / f"{name}_mirror.png"), photos[name][:, ::-1])
    cv2.imwrite(str(folder / "wall.png"), np.full((100, 100, 3), 128, np.uint8))
    return folder


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_same_and_different(capsys, photo_dir):
    code, out, _ = run(capsys, "compare", photo_dir / "t1_person1.png", photo_dir / "t1_person1_mirror.png", *ENGINE)
    assert code == 0 and "same person" in out and "w600k_mbf" in out
    code, out, _ = run(capsys, "compare", photo_dir / "t1_person1.png", photo_dir / "astronaut.png",
                       "--json", "--pack", "open", *ENGINE)
    result = json.loads(out)
    assert code == 0 and result["same"] is False and result["model"] == "sface" and result["similarity"] < 0.45


def test_compare_errors(capsys, photo_dir):
    code, _, err = run(capsys, "compare", photo_dir / "wall.png", photo_dir / "astronaut.png", *ENGINE)
    assert code == 1 and "no face found" in err and "wall.png" in err
    code, _, err = run(capsys, "compare", photo_dir / "nothing.png", photo_dir / "astronaut.png", *ENGINE)
    assert code == 1 and "no such file" in err


def test_enroll_identify_attendance(capsys, photo_dir, tmp_path):
    gallery = tmp_path / "class.npz"
    for name in ("t1_person1", "t1_person2", "astronaut"):
        code, out, _ = run(capsys, "enroll", name, photo_dir / f"{name}.png", "--gallery", gallery, *ENGINE)
        assert code == 0 and f"enrolled {name}" in out
    code, out, _ = run(capsys, "identify", photo_dir / "t1_person2_mirror.png", "--gallery", gallery,
                       "--top-k", "2", "--json", *ENGINE)
    result = json.loads(out)
    assert code == 0 and len(result["faces"]) == 1
    matches = result["faces"][0]["matches"]
    assert len(matches) == 2 and matches[0]["name"] == "t1_person2" and matches[0]["same"] and not matches[1]["same"]

    code, out, _ = run(capsys, "attendance", weights.photo_path("t1"), "--gallery", gallery, "--json", *ENGINE)
    result = json.loads(out)
    assert code == 0
    assert sorted(p["name"] for p in result["present"]) == ["t1_person1", "t1_person2"]
    assert result["absent"] == ["astronaut"] and len(result["unknown_faces"]) == 4

    code, out, _ = run(capsys, "attendance", weights.photo_path("t1"), "--gallery", gallery, *ENGINE)
    assert code == 0 and "present (2/3)" in out and "absent (1): astronaut" in out

    # a gallery of w600k_mbf embeddings cannot be used with the open pack (SFace)
    code, _, err = run(capsys, "identify", photo_dir / "astronaut.png", "--gallery", gallery, "--pack", "open", *ENGINE)
    assert code == 1 and "holds w600k_mbf embeddings" in err
    code, _, err = run(capsys, "enroll", "x", photo_dir / "wall.png", "--gallery", tmp_path / "g2.npz", *ENGINE)
    assert code == 1 and "no face" in err


def test_cluster_json_and_copies(capsys, photo_dir, tmp_path):
    out_dir = tmp_path / "sorted"
    code, out, err = run(capsys, "cluster", photo_dir, "--json", "--copy-to", out_dir, *ENGINE)
    report = json.loads(out)
    assert code == 0
    assert report["num_people"] == 4 and report["num_faces"] == 8
    assert [p.rsplit("/", 1)[-1] for p in report["photos_without_faces"]] == ["wall.png"]
    for faces in report["groups"].values():
        stems = {f["path"].rsplit("/", 1)[-1].replace("_mirror", "") for f in faces}
        assert len(stems) == 1 and len(faces) == 2
    assert sorted(p.name for p in out_dir.iterdir()) == ["no_face", "person_1", "person_2", "person_3", "person_4"]
    assert all(len(list(p.iterdir())) == 2 for p in out_dir.iterdir() if p.name != "no_face")
    assert "photo" in err  # the tqdm progress bar went to stderr
