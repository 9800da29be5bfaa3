"""``faceops reconstruct`` end to end on the astronaut photo (models on onnxruntime, to keep it quick)."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from faceops.cli import reconstruct
from faceops.morphable.export import read_obj


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="faceops")
    reconstruct.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["reconstruct", *argv])
    return args.func(args)


def test_reconstruct_writes_mesh_render_and_views(tmp_path, photo_path, capsys):
    photo = photo_path("astronaut")
    code = run([str(photo), "-o", str(tmp_path / "face.obj"), "--render", str(tmp_path / "overlay.png"),
                "--side", str(tmp_path / "side.png"), "--view-size", "128", "--backend", "onnxruntime"])
    assert code == 0
    out = capsys.readouterr().out
    assert "face 0 at" in out and "yaw" in out and "landmark rms" in out
    vertices, triangles, colours = read_obj(tmp_path / "face.obj")
    assert vertices.shape == (38365, 3) and triangles.shape[1] == 3 and colours.shape == (38365, 3)
    overlay = cv2.imread(str(tmp_path / "overlay.png"))
    original = cv2.imread(str(photo))
    assert overlay.shape == original.shape
    changed = np.any(overlay != original, axis=2)
    assert changed[120, 226] and not changed[5, 5]  # the face centre is drawn over, a corner is not
    assert cv2.imread(str(tmp_path / "side.png")).shape == (128, 256, 3)


@pytest.mark.parametrize("extra", [["--tddfa"], ["--landmarks", "5"], ["--landmarks", "3ddfa"]])
def test_reconstruct_other_sources_write_ply(tmp_path, photo_path, extra):
    code = run([str(photo_path("astronaut")), "-o", str(tmp_path / "face.ply"), "--backend", "onnxruntime", *extra])
    assert code == 0
    header = (tmp_path / "face.ply").read_text().split("end_header")[0]
    assert "element vertex 38365" in header and "property uchar red" in header


def test_reconstruct_without_a_face_fails_cleanly(tmp_path, capsys):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, dtype=np.uint8))
    assert run([str(blank), "-o", str(tmp_path / "face.obj"), "--backend", "onnxruntime"]) == 1
    assert "no face found" in capsys.readouterr().err
    assert not (tmp_path / "face.obj").exists()
