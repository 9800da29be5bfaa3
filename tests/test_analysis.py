"""faceops.FaceAnalysis: pack wiring from the manifest, modules, detection results, full packs."""

import numpy as np
import pytest

import faceops
from faceops import weights
from faceops.analysis import DETECTOR_CLASSES, MODEL_MODULES, MODULE_NAMES, FaceAnalysis
from faceops.errors import ModelConfigError
from faceops.face import Face


def test_every_pack_model_has_a_module_and_every_detector_a_decoder():
    manifest = weights.load_manifest()
    for pack in ("buffalo_s", "open"):
        models = [n for n in weights.names_in_pack(pack) if n in manifest["models"]]
        assert models and all(n in MODEL_MODULES for n in models), pack
    detectors = [n for n, e in manifest["models"].items() if e["task"] == "detection"]
    assert sorted(detectors) == sorted(DETECTOR_CLASSES)
    assert set(MODEL_MODULES.values()) <= set(MODULE_NAMES)


def test_pack_membership_comes_from_the_manifest():
    by_pack = {pack: {MODEL_MODULES[n]: [] for n in weights.names_in_pack(pack) if n in MODEL_MODULES}
               for pack in ("buffalo_s", "open")}
    for pack in by_pack:
        for n in weights.names_in_pack(pack):
            if n in MODEL_MODULES:
                by_pack[pack][MODEL_MODULES[n]].append(n)
    assert by_pack["buffalo_s"] == {"detection": ["scrfd_500m"], "recognition": ["w600k_mbf"],
                                    "landmark_2d_106": ["2d106det"]}
    assert by_pack["open"]["detection"] == ["yunet"]
    assert sorted(by_pack["open"]["genderage"]) == ["age_cydral", "gender_cydral"]
    assert set(by_pack["open"]) == {"detection", "recognition", "landmark_3d_468", "expression", "genderage"}


@pytest.mark.parametrize("pack, detector", [("buffalo_s", "scrfd_500m"), ("open", "yunet")])
def test_detection_only(pack, detector, photos):
    app = FaceAnalysis(pack=pack, allowed_modules=["detection"], backend="onnxruntime")
    app.prepare(det_size=(640, 640), det_thresh=0.5)
    assert list(app.models) == ["detection"] and app.det_model.model == detector
    faces = app.get(photos["t1"])
    assert len(faces) == 6 and all(isinstance(f, Face) for f in faces)
    face = faces[0]
    assert face.bbox.shape == (4,) and face.kps.shape == (5, 2) and 0.5 <= face.det_score <= 1
    assert face.embedding is None and face.age is None
    assert len(app.get(photos["t1"], max_num=3)) == 3
    assert app.get(np.zeros((200, 300, 3), np.uint8)) == []


def test_detector_override_and_errors():
    app = FaceAnalysis(pack="buffalo_s", allowed_modules=["detection"], backend="onnxruntime",
                       detector="retinaface_mnet025")
    assert app.det_model.model == "retinaface_mnet025"
    with pytest.raises(ModelConfigError, match="unknown module"):
        FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "telepathy"], backend="onnxruntime")
    with pytest.raises(ModelConfigError, match="must include 'detection'"):
        FaceAnalysis(pack="buffalo_s", allowed_modules=["recognition"], backend="onnxruntime")
    with pytest.raises(ModelConfigError, match="5 detection models"):
        FaceAnalysis(pack="detectors", backend="onnxruntime")
    with pytest.raises(ModelConfigError, match="no model for module"):
        FaceAnalysis(pack="buffalo_s", allowed_modules=["detection", "expression"], backend="onnxruntime")
    with pytest.raises(weights.UnknownWeightError, match="unknown pack"):
        FaceAnalysis(pack="nonexistent")


def test_fixed_size_detector_prepares_at_its_own_size(photos):
    app = FaceAnalysis(pack="buffalo_s", allowed_modules=["detection"], backend="onnxruntime",
                       detector="blazeface_full")
    assert app.det_model.det_size == (192, 192)
    assert len(app.get(photos["t1"])) == 6
    with pytest.raises(ModelConfigError, match="fixed 192x192"):
        app.prepare(det_size=(640, 640))


def test_top_level_exports():
    assert faceops.FaceAnalysis is FaceAnalysis
    assert faceops.Face is Face
    assert callable(faceops.norm_crop) and callable(faceops.read_image) and callable(faceops.compare)
    assert faceops.Gallery.__name__ == "Gallery"
    with pytest.raises(AttributeError, match="no attribute"):
        faceops.not_a_thing


@pytest.mark.parametrize("pack", ["buffalo_s", "open"])
def test_full_pack_fills_every_module(pack, photos):
    app = FaceAnalysis(pack=pack, backend="onnxruntime")
    app.prepare(det_size=(640, 640))
    faces = app.get(photos["t1"])
    assert len(faces) == 6
    for face in faces:
        assert face.embedding is not None and face.embedding_model is not None
        if pack == "buffalo_s":
            assert face.landmark_2d_106.shape == (106, 2)
        else:
            assert face.landmark_3d_468.shape == (468, 3) and face.pose.shape == (3,)
            assert face.age is not None and face.gender in (0, 1) and face.expression is not None
