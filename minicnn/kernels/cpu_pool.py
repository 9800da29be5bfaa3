"""Numba CPU kernels for 2-D max and average pooling (backend "numba").

The readable reference, which loops over output positions in Python, lives
in ``minicnn.ops.pool`` with the geometry (padding, ``ceil_mode``,
``auto_pad``) resolved there; these kernels receive the resolved numbers.
Both are checked against onnxruntime in ``tests/test_ops_pool.py``.

Each (image, channel) plane is independent, so the planes are split over
Numba's threads with ``prange``. Inside a plane, for every output pixel the
range of kernel taps that fall inside the image is computed once, so the
inner loops carry no bounds test: padding never enters a max, and for an
average it only counts in the divisor (``count_include_pad``).

Compiled for float32 (N, C, H, W) arrays only, cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np

from .. import threads  # noqa: F401  (first: chooses Numba's threading layer before numba is imported)
from numba import njit, prange  # noqa: E402


@njit(inline="always")
def _tap_range(start, k, d, size):
    """The taps ``t`` in [0, k) whose position ``start + t*d`` lies in [0, size)."""
    lo = 0
    if start < 0:
        lo = (-start + d - 1) // d
    hi = k
    last = size - 1 - start  # t*d <= last
    if last < 0:
        hi = 0
    elif (k - 1) * d > last:
        hi = last // d + 1
    return lo, max(lo, hi)


@njit(parallel=True, cache=True)
def max_pool2d(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left):
    """``out[n, c, i, j]`` = max of ``x[n, c]`` over the window of output pixel (i, j), padding excluded."""
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    lowest = np.float32(-3.4028234663852886e38)
    for plane in prange(n_img * channels):
        n = plane // channels
        c = plane % channels
        src = x[n, c]
        dst = out[n, c]
        for i in range(out_h):
            r0 = i * s_h - pad_top
            u_lo, u_hi = _tap_range(r0, k_h, d_h, height)
            for j in range(out_w):
                c0 = j * s_w - pad_left
                v_lo, v_hi = _tap_range(c0, k_w, d_w, width)
                best = lowest
                for u in range(u_lo, u_hi):
                    row = src[r0 + u * d_h]
                    for v in range(v_lo, v_hi):
                        value = row[c0 + v * d_w]
                        if value > best:
                            best = value
                dst[i, j] = best


@njit(parallel=True, cache=True)
def average_pool2d(x, out, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, pad_bottom, pad_right,
                   count_include_pad):
    """``out[n, c, i, j]`` = mean of ``x[n, c]`` over the window of output pixel (i, j).

    The divisor is the number of taps inside the image, or with
    ``count_include_pad`` the number inside the *padded* image (taps past
    the padding, which ``ceil_mode`` can create, never count).
    """
    n_img, channels, height, width = x.shape
    out_h, out_w = out.shape[2], out.shape[3]
    for plane in prange(n_img * channels):
        n = plane // channels
        c = plane % channels
        src = x[n, c]
        dst = out[n, c]
        for i in range(out_h):
            r0 = i * s_h - pad_top
            u_lo, u_hi = _tap_range(r0, k_h, d_h, height)
            if count_include_pad:
                pu_lo, pu_hi = _tap_range(r0 + pad_top, k_h, d_h, height + pad_top + pad_bottom)
            for j in range(out_w):
                c0 = j * s_w - pad_left
                v_lo, v_hi = _tap_range(c0, k_w, d_w, width)
                total = np.float32(0)
                for u in range(u_lo, u_hi):
                    row = src[r0 + u * d_h]
                    for v in range(v_lo, v_hi):
                        total += row[c0 + v * d_w]
                if count_include_pad:
                    pv_lo, pv_hi = _tap_range(c0 + pad_left, k_w, d_w, width + pad_left + pad_right)
                    count = (pu_hi - pu_lo) * (pv_hi - pv_lo)
                else:
                    count = (u_hi - u_lo) * (v_hi - v_lo)
                dst[i, j] = total / np.float32(count) if count > 0 else np.float32(np.nan)
