"""``faceops analyze`` and ``faceops blur`` end to end, including bad input and exit codes.

Most runs use backend="onnxruntime" to stay fast; one runs the default
(minicnn) backend, as the README's first command does.
"""

import json

import cv2
import numpy as np
import pytest

from faceops.analysis import create_detector
from faceops.blur import expand_box
from faceops.cli import main

FAST = ["--backend", "onnxruntime", "--modules", "detection"]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_example_json_and_draw(tmp_path, capsys):
    out = tmp_path / "t1_faces.jpg"
    assert main(["analyze", "--example", "--json", "--draw", str(out), *FAST]) == 0
    records = json_lines(capsys.readouterr().out)
    assert len(records) == 1 and records[0]["path"].endswith("t1.jpg")
    assert (records[0]["width"], records[0]["height"]) == (1280, 886)
    faces = records[0]["faces"]
    assert len(faces) == 6 and {"bbox", "det_score", "kps", "embedding"} <= set(faces[0])
    drawn = cv2.imread(str(out))
    assert drawn.shape == (886, 1280, 3)


def test_example_on_the_default_backend(capsys):
    assert main(["analyze", "--example", "--modules", "detection"]) == 0
    assert "6 faces" in capsys.readouterr().out


def test_text_output(capsys):
    assert main(["analyze", "--example", *FAST]) == 0
    out = capsys.readouterr().out
    assert "t1.jpg: 6 faces (1280x886)" in out and out.count("face ") == 6


def test_batch_reports_failures_and_carries_on(tmp_path, photos, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a_t1.jpg"), photos["t1"])
    (folder / "b_broken.jpg").write_text("not an image")
    cv2.imwrite(str(folder / "c_blank.png"), np.full((100, 100), 128, np.uint8))  # grayscale, no face
    code = main(["analyze", str(folder), str(tmp_path / "missing.jpg"), "--json",
                 "--draw", str(tmp_path / "drawn"), *FAST])
    captured = capsys.readouterr()
    assert code == 1
    records = {r["path"].split("/")[-1]: r for r in json_lines(captured.out)}
    assert len(records["a_t1.jpg"]["faces"]) == 6
    assert records["c_blank.png"]["faces"] == []
    assert "not a readable image" in records["b_broken.jpg"]["error"]
    assert "no such file" in records["missing.jpg"]["error"]
    assert "warning: " in captured.err and "c_blank.png: no face found" in captured.err
    assert "2 of 4 input(s) failed" in captured.err
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["a_t1_faces.jpg", "c_blank_faces.png"]


def test_no_face_is_success(tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 160, 3), 200, np.uint8))
    assert main(["analyze", str(tmp_path / "wall.png"), "--json", *FAST]) == 0
    assert json_lines(capsys.readouterr().out)[0]["faces"] == []


def test_usage_errors(capsys):
    assert main(["analyze", *FAST]) == 2
    assert main(["analyze", "--example", "--backend", "onnxruntime", "--modules", "detection,telepathy"]) == 1
    assert "unknown module" in capsys.readouterr().err


def write_video(path, frame, count):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5, (frame.shape[1], frame.shape[0]))
    for _ in range(count):
        writer.write(frame)
    writer.release()


def test_video_frame_by_frame(tmp_path, photos, capsys):
    small = cv2.resize(photos["t1"], (640, 443))
    write_video(tmp_path / "clip.mp4", small, 3)
    out = tmp_path / "annotated.mp4"
    assert main(["analyze", str(tmp_path / "clip.mp4"), "--json", "--draw", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    records = json_lines(captured.out)
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert all(len(r["faces"]) == 6 for r in records)
    assert "3 frames in" in captured.err and "frames/s" in captured.err
    video = cv2.VideoCapture(str(out))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3


def test_unopenable_video(tmp_path, capsys):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 2048)
    assert main(["analyze", str(tmp_path / "bad.mp4"), *FAST]) == 1
    assert "bad.mp4" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["gaussian", "pixelate", "fill"])
def test_blur_changes_only_face_regions(method, tmp_path, photos, capsys):
    src = tmp_path / "t1.png"
    cv2.imwrite(str(src), photos["t1"])
    out = tmp_path / "t1_hidden.png"
    assert main(["blur", str(src), str(out), "--method", method, "--backend", "onnxruntime"]) == 0
    assert "6 faces hidden" in capsys.readouterr().out
    hidden = cv2.imread(str(out))
    changed = (hidden != photos["t1"]).any(axis=2)
    assert changed.sum() > 6 * 80 * 80  # the six faces (about 100x130 px each) changed
    # nothing changed outside the faces' boxes grown by the default margin
    boxes, _ = create_detector("scrfd_500m", backend="onnxruntime").detect(photos["t1"], det_thresh=0.3)
    inside = np.zeros_like(changed)
    for box in boxes:
        x1, y1, x2, y2 = expand_box(box, 0.25, photos["t1"].shape)
        inside[y1:y2, x1:x2] = True
    assert not changed[~inside].any()
    if method == "fill":
        # nothing left to find
        assert main(["analyze", str(out), "--json", *FAST]) == 0
        assert json_lines(capsys.readouterr().out)[0]["faces"] == []


def test_blur_folder_and_errors(tmp_path, photos, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "t1.jpg"), photos["t1"])
    (folder / "zero.jpg").write_bytes(b"")
    assert main(["blur", str(folder), str(tmp_path / "out"), "--backend", "onnxruntime"]) == 1
    captured = capsys.readouterr()
    assert "zero.jpg: the file is empty" in captured.err
    assert (tmp_path / "out" / "t1.jpg").is_file()


# -- the library functions behind the two commands ---------------------------------------------


def test_blur_faces_library(photos):
    from faceops.blur import blur_faces, hide_region
    from faceops.draw import draw_faces
    from faceops.face import Face

    img = photos["astronaut"]
    box = np.array([180, 60, 272, 180], np.float32)
    face = Face(bbox=box, det_score=0.9, kps=np.array([[200, 100], [250, 100], [225, 125], [205, 150], [245, 150]]))
    for method in ("gaussian", "pixelate", "fill"):
        out = blur_faces(img, [face], method=method, margin=0.0)
        assert out.shape == img.shape and (out[60:180, 180:272] != img[60:180, 180:272]).any()
        np.testing.assert_array_equal(out[:60], img[:60])
    assert hide_region(img[60:180, 180:272], "pixelate", blocks=4).reshape(-1, 3).shape[0] == 120 * 92
    # boxes reaching past the border are clipped; boxes wholly outside change nothing
    np.testing.assert_array_equal(blur_faces(img, np.array([[600, 600, 700, 700]])), img)
    assert blur_faces(img, np.array([[-50, -50, 30, 30]]), method="fill")[:30, :30].max() == 0
    with pytest.raises(ValueError, match="unknown blur method"):
        blur_faces(img, [face], method="swirl")
    with pytest.raises(ValueError, match="margin"):
        blur_faces(img, [face], margin=-1)
    drawn = draw_faces(img, [face])
    assert drawn.shape == img.shape and (drawn != img).any()


def test_grayscale_rgba_and_16_bit_photos_go_through(tmp_path, photos, capsys):
    t1 = photos["t1"]
    cv2.imwrite(str(tmp_path / "rgba.png"), np.dstack([t1, np.full(t1.shape[:2], 255, np.uint8)]))
    cv2.imwrite(str(tmp_path / "deep.png"), t1.astype(np.uint16) * 257)  # 16-bit, scales back exactly
    cv2.imwrite(str(tmp_path / "gray.png"), cv2.cvtColor(t1, cv2.COLOR_BGR2GRAY))
    assert main(["analyze", str(tmp_path), "--json", *FAST]) == 0
    records = {r["path"].split("/")[-1]: r["faces"] for r in json_lines(capsys.readouterr().out)}
    assert records["rgba.png"] == records["deep.png"]  # both convert back to t1's exact pixels
    assert len(records["rgba.png"]) == 6 and len(records["gray.png"]) == 6
