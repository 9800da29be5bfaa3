"""Hide faces: blur, pixelate or fill every detected face, with a margin around its box.

Used by ``faceops blur IN OUT``. The box is grown by ``margin`` (a fraction
of its width and height on each side) because detector boxes hug the inner
face and leave hair, ears and jaw line, which are themselves identifying.

Methods:

* ``"gaussian"``: a Gaussian blur whose sigma is a quarter of the region's
  shorter side, so large and small faces are blurred alike;
* ``"pixelate"``: the region shrunk to ``blocks`` cells across (8 by default)
  and scaled back with nearest neighbour;
* ``"fill"``: a solid black rectangle.

Only ``"fill"`` removes the information. Blurring and pixelation are
partly reversible and face recognisers still match blurred faces far more
often than chance; see docs/privacy.md before relying on them.
"""

from __future__ import annotations

from typing import Iterable

import cv2
import numpy as np

from faceops.face import Face

METHODS = ("gaussian", "pixelate", "fill")


def expand_box(box, margin: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``box`` (x1, y1, x2, y2) grown by ``margin`` x its size on every side, as ints clipped to the image."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = shape[:2]
    return (
        int(np.clip(np.floor(x1 - dx), 0, w)),
        int(np.clip(np.floor(y1 - dy), 0, h)),
        int(np.clip(np.ceil(x2 + dx), 0, w)),
        int(np.clip(np.ceil(y2 + dy), 0, h)),
    )


def hide_region(region: np.ndarray, method: str = "gaussian", blocks: int = 8) -> np.ndarray:
    """The region with its content hidden by ``method`` (same shape and dtype)."""
    h, w = region.shape[:2]
    if method == "gaussian":
        sigma = max(min(h, w) / 4.0, 1.0)
        # a 6-sigma kernel holds 99.7 % of the Gaussian's weight; border pixels reflect
        return cv2.GaussianBlur(region, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if method == "pixelate":
        cells_x = max(1, min(blocks, w))
        cells_y = max(1, min(int(round(blocks * h / max(w, 1))), h))
        small = cv2.resize(region, (cells_x, cells_y), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    if method == "fill":
        return np.zeros_like(region)
    raise ValueError(f"unknown blur method {method!r}; choose one of {METHODS}")


def blur_faces(img: np.ndarray, faces: Iterable[Face] | np.ndarray, method: str = "gaussian",
               margin: float = 0.25, blocks: int = 8) -> np.ndarray:
    """A copy of ``img`` with every face hidden; ``faces`` are ``Face`` objects or an (N, >=4) box array."""
    if method not in METHODS:
        raise ValueError(f"unknown blur method {method!r}; choose one of {METHODS}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    out = img.copy()
    boxes = [f.bbox if isinstance(f, Face) else f for f in faces]
    for box in boxes:
        x1, y1, x2, y2 = expand_box(box, margin, img.shape)
        if x2 - x1 < 1 or y2 - y1 < 1:
            continue  # the box lies entirely outside the image
        out[y1:y2, x1:x2] = hide_region(out[y1:y2, x1:x2], method, blocks)
    return out
