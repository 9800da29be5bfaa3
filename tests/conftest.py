"""Session-wide fixtures: zoo models, test photos and model-spec-driven input blobs.

Tests never skip because a weight file is absent: CI runs
``faceops weights fetch --all`` before pytest, and when a file is missing
anyway the fixture fetches it (``faceops.weights.model_path`` does) or fails
with a message saying what went wrong and which command fetches it.

Fixtures:

* ``model_path(name) -> Path`` and ``photo_path(name) -> Path``;
* ``photos``: the test photos loaded once: ``t1``, ``tom_hanks``,
  ``astronaut`` (BGR uint8 arrays, as ``cv2.imread`` gives them) and
  ``lfw_subset`` (float array of 200 25x25 gray images);
* ``astronaut_face_box``: the face in ``astronaut.png`` as (x1, y1, x2, y2),
  as SCRFD-500M finds it (rounded);
* ``blob_from_spec(image_bgr, name)``: the model's input tensor built from
  its manifest input spec (resize to the spec size, colour order,
  ``(x - mean) / std``, NCHW float32): how a model is fed in the tests
  that check the specs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from faceops import weights

ASTRONAUT_FACE_BOX = (180, 60, 272, 180)  # x1, y1, x2, y2 in astronaut.png (512x512), SCRFD-500M at 640


def _get(getter, name: str) -> Path:
    try:
        return getter(name)
    except weights.WeightsError as exc:
        pytest.fail(f"could not get {name!r} from the model zoo: {exc}\n"
                    f"(CI fetches everything first with `faceops weights fetch --all`; run that here too)",
                    pytrace=False)


@pytest.fixture(scope="session")
def model_path():
    """``model_path(name)``: the cached file of zoo model ``name``, fetched if needed."""
    return lambda name: _get(weights.model_path, name)


@pytest.fixture(scope="session")
def photo_path():
    """``photo_path(name)``: the cached test photo ``name``, fetched if needed."""
    return lambda name: _get(weights.photo_path, name)


@pytest.fixture(scope="session")
def photos(photo_path) -> dict[str, np.ndarray]:
    import cv2

    loaded = {}
    for name in ("t1", "tom_hanks", "astronaut"):
        image = cv2.imread(str(photo_path(name)), cv2.IMREAD_COLOR)
        if image is None:
            pytest.fail(f"cv2 could not read test photo {photo_path(name)}", pytrace=False)
        loaded[name] = image
    loaded["lfw_subset"] = np.load(photo_path("lfw_subset"), allow_pickle=False)
    return loaded


@pytest.fixture(scope="session")
def astronaut_face_box() -> tuple[int, int, int, int]:
    return ASTRONAUT_FACE_BOX


def make_blob(image_bgr: np.ndarray, spec: dict) -> np.ndarray:
    """Input tensor for a model whose manifest input spec is ``spec``, from a BGR uint8 image."""
    import cv2

    size = (spec["size"]["width"], spec["size"]["height"])
    image = cv2.resize(image_bgr, size, interpolation=cv2.INTER_LINEAR)
    order = spec["colour_order"]
    if order == "RGB":
        image = image[:, :, ::-1]
    elif order == "GRAY":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
    elif order != "BGR":
        raise ValueError(f"unknown colour_order {order!r} in the input spec")
    x = (image.astype(np.float32) - np.asarray(spec["mean"], np.float32)) / np.asarray(spec["std"], np.float32)
    if spec["layout"] != "NCHW":
        raise ValueError(f"unknown layout {spec['layout']!r} in the input spec")
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)


@pytest.fixture(scope="session")
def blob_from_spec():
    """``blob_from_spec(image_bgr, model_name)``: see :func:`make_blob`."""
    return lambda image_bgr, name: make_blob(image_bgr, weights.model_info(name)["input"])
