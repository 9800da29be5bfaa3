"""Write the images of ``docs/tutorial.md``: classic filters applied to a photo by minicnn's own Conv op.

Blurring and edge detection were convolutions long before CNNs learned
their kernels; here the kernels are written by hand and run through exactly
the op a network uses (``minicnn.ops.conv.Conv``), on the astronaut photo
(Eileen Collins, NASA, public domain; fetched by ``faceops.weights``).

    python docs/make_tutorial_images.py            # writes docs/img/*.png
    python docs/make_tutorial_images.py --out /tmp/img

Every image is 256 x 256 and a few tens of kilobytes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minicnn.ops.conv import Conv  # noqa: E402

SIZE = 256  # side of every tutorial image

BOX_5X5 = np.full((5, 5), 1 / 25, dtype=np.float32)
GAUSSIAN_5X5 = (np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256).astype(np.float32)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float32)  # reacts to left-to-right change
SOBEL_Y = SOBEL_X.T.copy()  # top-to-bottom change
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float32)  # curvature: edges and fine detail


def load_photo(path: Path | None = None) -> np.ndarray:
    """The astronaut photo as float32 RGB in [0, 1], SIZE x SIZE, shape (H, W, 3)."""
    import cv2

    if path is None:
        from faceops import weights

        path = weights.photo_path("astronaut")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cv2 could not read {path}")
    bgr = cv2.resize(bgr, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return bgr[:, :, ::-1].astype(np.float32) / 255


def filter_gray(gray: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """One (H, W) image through one (k, k) kernel, via Conv: N=1, C=1, 'same' size output."""
    x = gray[None, None]  # (1, 1, H, W)
    w = kernel[None, None]  # (C_out=1, C_in=1, k, k)
    return Conv(x, w, auto_pad="SAME_UPPER")[0, 0]


def blur_rgb(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur each colour channel separately: one depthwise Conv with group=3 (one kernel copy per channel)."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]  # (1, 3, H, W)
    w = np.repeat(kernel[None, None], 3, axis=0)  # (3, 1, k, k): each output channel sees one input channel
    return Conv(x, w, group=3, auto_pad="SAME_UPPER")[0].transpose(1, 2, 0)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601) as a 1x1 convolution: 3 input channels, 1 output channel."""
    x = np.ascontiguousarray(rgb.transpose(2, 0, 1))[None]
    w = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return Conv(x, w)[0, 0]


def tutorial_images(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Image name -> float image in [0, 1] ((H, W) gray or (H, W, 3) RGB)."""
    gray = to_gray(rgb)
    gx, gy = filter_gray(gray, SOBEL_X), filter_gray(gray, SOBEL_Y)
    sobel = np.sqrt(gx**2 + gy**2)
    laplacian = np.abs(filter_gray(gray, LAPLACIAN))
    return {
        "astronaut": rgb,
        "astronaut_gray": gray,
        "blur_box": blur_rgb(rgb, BOX_5X5),
        "blur_gaussian": blur_rgb(rgb, GAUSSIAN_5X5),
        "edges_sobel": sobel / sobel.max(),
        "edges_laplacian": np.clip(laplacian * 2, 0, 1),  # a faint response: doubled for visibility
    }


def save_png(path: Path, image: np.ndarray) -> None:
    import cv2

    u8 = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    if u8.ndim == 3:
        u8 = u8[:, :, ::-1]  # RGB -> BGR for cv2
    if not cv2.imwrite(str(path), u8, [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"cv2 could not write {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    parser.add_argument("--photo", type=Path, help="use this image instead of the astronaut")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, image in tutorial_images(load_photo(args.photo)).items():
        path = args.out / f"{name}.png"
        save_png(path, image)
        print(f"{path}  {path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
