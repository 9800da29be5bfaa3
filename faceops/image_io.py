"""Reading images and video frames the way the pipeline wants them: BGR uint8.

Every model wrapper in faceops takes ``(H, W, 3)`` uint8 BGR arrays, OpenCV's
layout. Photos in the wild are not always that, so ``read_image`` converts,
and each conversion is a documented decision rather than a surprise:

* **grayscale** (``H x W`` or ``H x W x 1``): the gray value is copied into
  all three channels (``cv2.COLOR_GRAY2BGR``). Detectors then see a
  colourless but otherwise normal photo.
* **with alpha** (BGRA, e.g. a transparent PNG): composited **over white**,
  the way an image viewer shows it. Simply dropping alpha would expose
  whatever colour the transparent pixels happen to store (often black or
  garbage), which can create or hide "faces".
* **16-bit** (``uint16``, e.g. PNG/TIFF from a raw converter): scaled to
  8 bits with ``round(x * 255 / 65535)``, the full 16-bit range onto the full
  8-bit range (no auto-contrast).
* **floating point** (e.g. 32-bit TIFF): values are taken to lie in [0, 1],
  multiplied by 255 and clipped.
* **EXIF orientation** (phone JPEGs stored sideways with a "rotate me" tag):
  applied, so the image is upright as a viewer shows it and every
  coordinate refers to the upright image. PNG, TIFF and WebP files are read
  as stored (their rare orientation tags are ignored; OpenCV cannot apply
  them while keeping alpha and 16-bit depth).
* **huge images** (more than ``MAX_PIXELS`` = 40 megapixels): refused with
  an ``ImageReadError`` that says so, unless the caller asks for
  ``downscale_huge=True``, which shrinks the image (area interpolation) to at
  most ``max_pixels`` and logs a warning. Refusing is the default because
  every coordinate faceops returns is in pixels of the image it was given: a
  silent downscale would make boxes disagree with the file.

Unreadable input fails loudly: a missing file, an empty file, or bytes that
are not an image each raise ``ImageReadError`` naming the file.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

from faceops.errors import ImageReadError, VideoOpenError

log = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000  # 40 megapixels: well above any phone photo, far below what exhausts memory

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".jp2", ".pgm", ".ppm", ".pbm", ".pnm"}
)
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"})


def to_bgr_uint8(img: np.ndarray, source: str = "image") -> np.ndarray:
    """Convert a decoded array to ``(H, W, 3)`` uint8 BGR, following the module's rules.

    ``source`` only names the image in error messages.
    """
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise ImageReadError(f"{source}: unsupported image layout {img.shape}; expected H x W, H x W x 3 or H x W x 4")

    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f"{source}: unsupported pixel type {img.dtype}; expected 8-bit, 16-bit or float")

    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        alpha = img[:, :, 3:4].astype(np.float32) / 255.0
        white = np.float32(255.0)
        composited = img[:, :, :3].astype(np.float32) * alpha + white * (1.0 - alpha)
        return np.round(composited).astype(np.uint8)
    return np.ascontiguousarray(img)


def limit_size(img: np.ndarray, max_pixels: int | None, downscale_huge: bool, source: str = "image") -> np.ndarray:
    """Refuse (or, with ``downscale_huge``, shrink) an image above ``max_pixels``; ``None`` disables the limit."""
    h, w = img.shape[:2]
    if max_pixels is None or h * w <= max_pixels:
        return img
    if not downscale_huge:
        raise ImageReadError(
            f"{source}: {w}x{h} is {h * w / 1e6:.1f} megapixels, above the limit of {max_pixels / 1e6:.0f}; "
            "downscale it first, or pass downscale_huge=True (CLI: --downscale-huge) to let faceops shrink it "
            "(coordinates are then in the shrunken image's pixels)"
        )
    factor = math.sqrt(max_pixels / (h * w))
    new_w, new_h = max(1, int(w * factor)), max(1, int(h * factor))
    log.warning("%s: %dx%d is above %d pixels; downscaled to %dx%d", source, w, h, max_pixels, new_w, new_h)
    return cv2.resize(img, (new_w, new_h), interpolation=cv2.INTER_AREA)


def read_image(path: str | os.PathLike, max_pixels: int | None = MAX_PIXELS, downscale_huge: bool = False) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 BGR (see the module docstring for the conversions).

    Raises ``ImageReadError`` naming the file when it is missing, a
    directory, empty, not a decodable image, or too large.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, not an image file")
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode also copes with non-ASCII paths
    if data.size == 0:
        raise ImageReadError(f"{path}: the file is empty (0 bytes)")
    # JPEG has no alpha channel but often an EXIF orientation (phone photos): decode it with the flags that
    # apply the rotation. Other formats keep alpha and bit depth (IMREAD_UNCHANGED ignores EXIF orientation).
    is_jpeg = data[:3].tobytes() == b"\xff\xd8\xff"
    flags = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH if is_jpeg else cv2.IMREAD_UNCHANGED
    img = cv2.imdecode(data, flags)
    if img is None:
        raise ImageReadError(
            f"{path}: not a readable image (unknown format, truncated or corrupt file, "
            "or more pixels than OpenCV's decoder allows)"
        )
    img = to_bgr_uint8(img, source=str(path))
    return limit_size(img, max_pixels, downscale_huge, source=str(path))


def is_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file, judged by its extension."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def list_images(paths_or_dirs: Iterable[str | os.PathLike] | str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Expand files and directories into a list of image paths.

    A directory contributes its files whose extension is in
    ``IMAGE_EXTENSIONS``, sorted by name (subdirectories too when
    ``recursive``). A path given explicitly is kept whatever its extension,
    and even if it does not exist: reading it then reports the problem for
    that file, so a batch can say which inputs failed.
    """
    if isinstance(paths_or_dirs, (str, os.PathLike)):
        paths_or_dirs = [paths_or_dirs]
    out: list[Path] = []
    for item in paths_or_dirs:
        item = Path(item)
        if item.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(sorted(p for p in item.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS))
        else:
            out.append(item)
    return out


def iter_images(
    paths_or_dirs: Iterable[str | os.PathLike] | str | os.PathLike,
    recursive: bool = False,
    skip_unreadable: bool = False,
    **read_kwargs,
) -> Iterator[tuple[Path, np.ndarray]]:
    """Yield ``(path, image)`` for every image under ``paths_or_dirs`` (see ``list_images``).

    An unreadable file raises ``ImageReadError``; with ``skip_unreadable`` it
    is logged as a warning and skipped instead. ``read_kwargs`` go to
    ``read_image``.
    """
    for path in list_images(paths_or_dirs, recursive=recursive):
        try:
            img = read_image(path, **read_kwargs)
        except ImageReadError as exc:
            if not skip_unreadable:
                raise
            log.warning("skipping %s", exc)
            continue
        yield path, img


class VideoReader:
    """Frames of a video file as BGR uint8 arrays, with its frame rate and length.

    Opening fails with ``VideoOpenError`` (naming the file) when OpenCV cannot
    open it or it yields no frame. Iterate to get ``(index, frame)`` pairs;
    use it as a context manager to release the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.exists():
            raise VideoOpenError(f"{self.path}: no such file")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise VideoOpenError(f"{self.path}: cannot be opened as a video (unknown container/codec or corrupt file)")
        ok, first = self._capture.read()
        if not ok or first is None:
            self._capture.release()
            raise VideoOpenError(f"{self.path}: opened, but contains no readable frame")
        self._first = first
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS)) or 25.0  # some containers store no rate
        # Container metadata; may be 0 or approximate for streams, so only used for progress bars.
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.size = (first.shape[1], first.shape[0])  # (width, height)

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        if self._first is None:
            raise VideoOpenError(f"{self.path}: a VideoReader can be iterated only once; open the file again")
        index, frame = 0, self._first
        self._first = None
        while frame is not None:
            yield index, to_bgr_uint8(frame, source=f"{self.path} frame {index}")
            ok, frame = self._capture.read()
            index += 1
            if not ok:
                frame = None
        self.close()

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def iter_video_frames(path: str | os.PathLike) -> Iterator[tuple[int, np.ndarray]]:
    """An iterator of ``(frame_index, frame)`` over a video's frames (BGR uint8); see ``VideoReader``.

    The file is opened right away, so a video that cannot be opened raises
    ``VideoOpenError`` here, not at the first ``next()``.
    """
    return iter(VideoReader(path))
