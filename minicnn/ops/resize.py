"""Resize (and its ancestor Upsample): change the spatial size of a tensor.

Resizing is separable: scale one axis at a time. For each output index ``x``
along an axis, a *coordinate transformation* says where it falls in the input
(``x_original``), then the *mode* says how to read a value there:

* nearest: take one input cell (rounded per ``nearest_mode``);
* linear: mix the two neighbouring cells by distance (bilinear over two axes).

The coordinate transformations (scale = output length / input length)::

    half_pixel            (x + 0.5) / scale - 0.5        (default; pixel centres line up)
    pytorch_half_pixel    same, but 0 when the output length is 1
    align_corners         x * (in - 1) / (out - 1)       (corner pixels line up)
    asymmetric            x / scale                      (opset 10 and Upsample)
    tf_half_pixel_for_nearest  (x + 0.5) / scale

Upsampling FPN features (SCRFD, RetinaFace, YuNet) uses nearest with
integer scales, where every mode agrees.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register

TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nearest")


def source_coordinates(out_len: int, in_len: int, scale: float, mode: str) -> np.ndarray:
    """Where each output index falls on the input axis (float coordinates)."""
    x = np.arange(out_len, dtype=np.float64)
    if mode == "half_pixel":
        return (x + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (x + 0.5) / scale - 0.5 if out_len > 1 else np.zeros(out_len)
    if mode == "align_corners":
        return x * (in_len - 1) / (out_len - 1) if out_len > 1 else np.zeros(out_len)
    if mode == "asymmetric":
        return x / scale
    if mode == "tf_half_pixel_for_nearest":
        return (x + 0.5) / scale
    raise UnsupportedOpError(f"Resize coordinate_transformation_mode {mode!r} (supported: {', '.join(TRANSFORMS)})")


def nearest_index(coords: np.ndarray, in_len: int, nearest_mode: str) -> np.ndarray:
    if nearest_mode == "round_prefer_floor":
        idx = np.where(coords - np.floor(coords) == 0.5, np.floor(coords), np.round(coords))
    elif nearest_mode == "round_prefer_ceil":
        idx = np.where(coords - np.floor(coords) == 0.5, np.ceil(coords), np.round(coords))
    elif nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    else:
        raise UnsupportedOpError(f"Resize nearest_mode {nearest_mode!r}")
    return np.clip(idx, 0, in_len - 1).astype(np.int64)


def resize_axis(X: np.ndarray, axis: int, out_len: int, scale: float, mode: str, transform: str,
                nearest_mode: str) -> np.ndarray:
    """Resize one axis of X."""
    in_len = X.shape[axis]
    coords = source_coordinates(out_len, in_len, scale, transform)
    if mode == "nearest":
        index = nearest_index(coords, in_len, nearest_mode)
        factor = out_len // in_len
        if factor * in_len == out_len and np.array_equal(index, np.repeat(np.arange(in_len), factor)):
            return np.repeat(X, factor, axis=axis)  # same result, a contiguous copy instead of a gather
        return np.take(X, index, axis=axis)
    if mode == "linear":
        coords = np.clip(coords, 0, in_len - 1)
        lo = np.floor(coords).astype(np.int64)
        hi = np.minimum(lo + 1, in_len - 1)
        w = (coords - lo).astype(X.dtype)
        shape = [1] * X.ndim
        shape[axis] = out_len
        w = w.reshape(shape)
        return np.take(X, lo, axis=axis) * (1 - w) + np.take(X, hi, axis=axis) * w
    raise UnsupportedOpError(f"Resize mode {mode!r} is not supported (nearest, linear)")


def _resize(X, scales, sizes, mode, transform, nearest_mode):
    if sizes is not None and np.asarray(sizes).size:
        sizes = [int(v) for v in sizes]
        if len(sizes) != X.ndim:
            raise InputError(f"Resize: {len(sizes)} sizes for a rank-{X.ndim} input")
        scales = [o / i for o, i in zip(sizes, X.shape)]
    elif scales is not None and np.asarray(scales).size:
        scales = [float(v) for v in scales]
        if len(scales) != X.ndim:
            raise InputError(f"Resize: {len(scales)} scales for a rank-{X.ndim} input")
        sizes = [int(np.floor(i * s)) for i, s in zip(X.shape, scales)]
    else:
        raise InputError("Resize needs scales or sizes")
    out = X
    for axis, (size, scale) in enumerate(zip(sizes, scales)):
        if size != X.shape[axis] or scale != 1.0:
            out = resize_axis(out, axis, size, scale, mode, transform, nearest_mode)
    return out.astype(X.dtype, copy=False)


@register("Resize")
def Resize(X, roi=None, scales=None, sizes=None, *, antialias=0, axes=None, coordinate_transformation_mode="half_pixel",
           cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0, keep_aspect_ratio_policy="stretch",
           mode="nearest", nearest_mode="round_prefer_floor", opset=13):
    """Resize by ``scales`` or to ``sizes``. At opset 10 the second input is ``scales`` and the
    transformation is asymmetric with floor rounding (Upsample's behaviour)."""
    if antialias or axes is not None or keep_aspect_ratio_policy != "stretch":
        raise UnsupportedOpError("Resize: antialias, axes and keep_aspect_ratio_policy are not supported")
    if coordinate_transformation_mode == "tf_crop_and_resize":
        raise UnsupportedOpError("Resize coordinate_transformation_mode 'tf_crop_and_resize' is not supported")
    if opset < 11:
        return _resize(X, roi, None, mode, "asymmetric", "floor")
    return _resize(X, scales, sizes, mode, coordinate_transformation_mode, nearest_mode)


@register("Upsample")
def Upsample(X, scales=None, *, mode="nearest"):
    """Opset 7-9 Resize: asymmetric coordinates, nearest rounds down (scales: input at 9, attribute before)."""
    return _resize(X, scales, None, mode, "asymmetric", "floor")
