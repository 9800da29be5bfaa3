"""The teaching material is true: ``docs/tutorial.md`` prints what it says, and its claims hold.

* Each ```` ```pycon ```` block of the tutorial is run as a doctest (one test
  per block, so a failing section is named).
* The examples are also checked as plain assertions, through every
  implementation of the convolution (direct loops, im2col, the numba fast path).
* The hand-made filters of ``docs/make_tutorial_images.py`` agree with
  OpenCV's ``filter2D`` (also a cross-correlation) on a real photo, and the
  script writes small PNGs.
"""

from __future__ import annotations

import doctest
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn.ops  # noqa: F401  (registers every op)
from minicnn.ops import conv as conv_ops
from minicnn.ops.registry import get_op

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIAL = DOCS / "tutorial.md"
sys.path.insert(0, str(DOCS))

import make_tutorial_images as images  # noqa: E402

BLOCKS = re.findall(r"```pycon\n(.*?)```", TUTORIAL.read_text(), flags=re.S)

numba_conv = get_op("Conv", "numba")


def all_convs(X, W, **attrs):
    """The same convolution through all three implementations: name -> output."""
    geometry = conv_ops.conv_geometry(X.shape, W.shape, **attrs)
    X2, W2 = conv_ops.as_2d(X, W)
    direct = conv_ops.conv_direct(X2, W2, None, geometry)
    return {
        "direct": direct.reshape(direct.shape[0], direct.shape[1], *direct.shape[2 + (X.ndim == 3):]),
        "im2col": conv_ops.Conv(X, W, **attrs),
        "numba": numba_conv(X, W, **attrs),
    }


def test_tutorial_has_examples():
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_tutorial_block_prints_what_it_says(index):
    test = doctest.DocTestParser().get_doctest(BLOCKS[index], {}, f"tutorial.md block {index + 1}", str(TUTORIAL), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=lambda text: pytest.fail(f"tutorial.md block {index + 1} prints something else:\n{text}"))
    assert runner.failures == 0


def test_kernel_reacts_to_its_pattern():
    signal = np.array([0, 1, 0, 1, 0, 0, 1, 1, 1, 0], dtype=np.float32).reshape(1, 1, 10)
    kernel = np.array([1, 0, 1], dtype=np.float32).reshape(1, 1, 3)
    for name, out in all_convs(signal, kernel).items():
        assert out[0, 0].tolist() == [0, 2, 0, 1, 1, 1, 2, 1], name


def test_pm1_template_match_averages_products():
    template = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], dtype=np.float32)
    image = -np.ones((5, 5), dtype=np.float32)
    image[1:4, 1:4] = template
    for name, scores in all_convs(image[None, None], (template / 9)[None, None]).items():
        assert scores[0, 0, 1, 1] == pytest.approx(1.0, abs=1e-6), name  # a perfect match
        assert scores.max() == scores[0, 0, 1, 1], name
    # The template against its negative: every product is -1, the average -1.
    assert conv_ops.Conv(-template[None, None], (template / 9)[None, None]).item() == pytest.approx(-1.0)


def test_max_pooling_keeps_the_strongest_response():
    max_pool = get_op("MaxPool")
    assert max_pool is not None, "minicnn has no MaxPool op registered (minicnn/ops/pool.py)"
    out = max_pool(np.array([[4, 8], [7, 1]], dtype=np.float32).reshape(1, 1, 2, 2), kernel_shape=[2, 2],
                   strides=[2, 2])
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape == (1, 1, 1, 1) and out.item() == 8


@pytest.fixture(scope="module")
def photo(photo_path):
    return images.load_photo(photo_path("astronaut"))


@pytest.mark.parametrize("name", ["BOX_5X5", "GAUSSIAN_5X5", "SOBEL_X", "SOBEL_Y", "LAPLACIAN"])
def test_filters_match_opencv_on_the_photo(photo, name):
    """Conv with a hand-made kernel = cv2.filter2D with the same kernel (zero border, as Conv pads)."""
    import cv2

    kernel = getattr(images, name)
    gray = images.to_gray(photo)
    got = images.filter_gray(gray, kernel)
    expected = cv2.filter2D(gray, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_blur_kernels_sum_to_one_edge_kernels_to_zero(photo):
    for kernel in (images.BOX_5X5, images.GAUSSIAN_5X5):
        assert kernel.sum() == pytest.approx(1.0)
    for kernel in (images.SOBEL_X, images.SOBEL_Y, images.LAPLACIAN):
        assert kernel.sum() == 0
    blurred = images.blur_rgb(photo, images.GAUSSIAN_5X5)
    inner = (slice(8, -8), slice(8, -8))  # away from the zero padding
    assert blurred[inner].mean() == pytest.approx(photo[inner].mean(), abs=2e-3)  # brightness kept
    assert np.abs(np.diff(blurred, axis=1)).mean() < np.abs(np.diff(photo, axis=1)).mean()  # smoother


def test_depthwise_blur_equals_per_channel_blur(photo):
    """group=3 blurs each colour channel on its own: same as three single-channel convolutions."""
    together = images.blur_rgb(photo, images.BOX_5X5)
    for ch in range(3):
        np.testing.assert_allclose(together[:, :, ch], images.filter_gray(photo[:, :, ch], images.BOX_5X5),
                                   rtol=1e-6, atol=1e-6)


def test_make_tutorial_images_writes_small_pngs(tmp_path, photo_path):
    assert images.main(["--out", str(tmp_path), "--photo", str(photo_path("astronaut"))]) == 0
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == sorted(f"{n}.png" for n in ("astronaut", "astronaut_gray", "blur_box", "blur_gaussian",
                                                  "edges_sobel", "edges_laplacian"))
    for p in tmp_path.glob("*.png"):
        assert p.stat().st_size < 200_000, p.name
    # The tutorial shows the committed images: every one it links must exist.
    for link in re.findall(r"\((img/[^)]+)\)", TUTORIAL.read_text()):
        assert (DOCS / link).is_file(), link
