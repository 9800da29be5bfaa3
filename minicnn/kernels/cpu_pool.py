"""Numba CPU kernels for 2-D max and average pooling (NCHW).

Validated against the NumPy references in ``minicnn.ops.pool`` (and through
them against onnxruntime) in tests/test_ops_pool.py. One output cell = one
loop over its window, skipping cells outside the input; the planes
(sample, channel) run in parallel. Geometry (output size, padding) is
computed once by ``minicnn.ops.pool.pool_geometry``, so the kernels only
ever see explicit numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True, nogil=True)
def max_pool_2d(x, out, kh, kw, sh, sw, dh, dw, pad_top, pad_left):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for plane in prange(n_ * c_):
        n = plane // c_
        c = plane % c_
        for oh in range(oh_):
            h0 = oh * sh - pad_top
            for ow in range(ow_):
                w0 = ow * sw - pad_left
                m = -np.inf
                for i in range(kh):
                    h = h0 + i * dh
                    if h < 0 or h >= h_:
                        continue
                    for j in range(kw):
                        w = w0 + j * dw
                        if w >= 0 and w < w_ and x[n, c, h, w] > m:
                            m = x[n, c, h, w]
                out[n, c, oh, ow] = m


@njit(parallel=True, cache=True, nogil=True)
def avg_pool_2d(x, out, kh, kw, sh, sw, dh, dw, pad_top, pad_left, pad_bottom, pad_right, include_pad):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for plane in prange(n_ * c_):
        n = plane // c_
        c = plane % c_
        for oh in range(oh_):
            h0 = oh * sh - pad_top
            for ow in range(ow_):
                w0 = ow * sw - pad_left
                total = 0.0
                count = 0
                for i in range(kh):
                    h = h0 + i * dh
                    in_h = h >= 0 and h < h_
                    pad_h = h >= -pad_top and h < h_ + pad_bottom
                    for j in range(kw):
                        w = w0 + j * dw
                        if in_h and w >= 0 and w < w_:
                            total += x[n, c, h, w]
                            count += 1
                        elif include_pad and pad_h and w >= -pad_left and w < w_ + pad_right:
                            count += 1
                out[n, c, oh, ow] = total / max(count, 1)
