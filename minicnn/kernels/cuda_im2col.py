"""im2col on the GPU: unfold one image's sliding windows into the columns of a matrix.

For an image ``x[C, H, W]`` and a ``kh x kw`` window, row ``(c*kh + i)*kw + j``
and column ``oh*OW + ow`` of the result hold the input pixel the window at
output position ``(oh, ow)`` sees at offset ``(i, j)`` of channel ``c``
(zero where the window hangs over the padding):

    cols[(c*kh + i)*kw + j, oh*OW + ow] = x[c, oh*sh - pad_top + i*dh, ow*sw - pad_left + j*dw]

after which a convolution is one matrix product, ``W.reshape(C_out, -1) @ cols``
(see ``cuda_conv``). The price is memory: ``kh*kw`` copies of the input.

Versions:

1. one thread per element of ``cols``: a thread decodes its flat index into
   (c, i, j, oh, ow), reads one pixel, writes one value. Neighbouring threads
   write neighbouring addresses (coalesced).
2. one thread per (c, oh, ow): decode once, then write the ``kh*kw`` values of
   that window position. Same memory traffic, a fraction of the index
   arithmetic (divisions are slow on a GPU).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from .cuda_common import THREADS, blocks_for, check_close, validation_main

VERSIONS = (1, 2)
DEFAULT_VERSION = 2


def output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int) -> int:
    """Number of window positions along one axis."""
    return (size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)) // stride + 1


def im2col_reference(x: np.ndarray, kh: int, kw: int, strides=(1, 1), pads=(0, 0, 0, 0),
                     dilations=(1, 1)) -> np.ndarray:
    """NumPy im2col of one image ``x[C, H, W]``; ``pads`` in ONNX order (top, left, bottom, right)."""
    c, h, w = x.shape
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    oh = output_size(h, kh, sh, pt, pb, dh)
    ow = output_size(w, kw, sw, pl, pr, dw)
    padded = np.pad(x, ((0, 0), (pt, pb), (pl, pr)))
    cols = np.empty((c, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = padded[:, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
    return cols.reshape(c * kh * kw, oh * ow)


@cuda.jit
def im2col_v1(x, cols, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow):
    """Version 1: one thread per element of ``cols`` (grid-stride loop)."""
    c_in, h, w = x.shape
    total = cols.shape[0] * cols.shape[1]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, total, step):
        col = e % (oh * ow)
        row = e // (oh * ow)
        j = row % kw
        i = (row // kw) % kh
        c = row // (kw * kh)
        y = (col // ow) * sh - pt + i * dh
        xx = (col % ow) * sw - pl + j * dw
        value = float32(0.0)
        if 0 <= y < h and 0 <= xx < w:
            value = x[c, y, xx]
        cols[row, col] = value


@cuda.jit
def im2col_v2(x, cols, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow):
    """Version 2: one thread per (channel, output position), writing the whole window."""
    c_in, h, w = x.shape
    total = c_in * oh * ow
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, total, step):
        col = e % (oh * ow)
        c = e // (oh * ow)
        y0 = (col // ow) * sh - pt
        x0 = (col % ow) * sw - pl
        row = c * kh * kw
        for i in range(kh):
            y = y0 + i * dh
            for j in range(kw):
                xx = x0 + j * dw
                value = float32(0.0)
                if 0 <= y < h and 0 <= xx < w:
                    value = x[c, y, xx]
                cols[row, col] = value
                row += 1


def run_im2col(x, cols, kh: int, kw: int, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
               version: int = DEFAULT_VERSION) -> None:
    """Fill the device array ``cols[C*kh*kw, OH*OW]`` from the device image ``x[C, H, W]``."""
    c, h, w = x.shape
    oh = output_size(h, kh, strides[0], pads[0], pads[2], dilations[0])
    ow = output_size(w, kw, strides[1], pads[1], pads[3], dilations[1])
    if cols.shape != (c * kh * kw, oh * ow):
        raise ValueError(f"im2col: cols has shape {cols.shape}, expected {(c * kh * kw, oh * ow)}")
    args = (x, cols, kh, kw, strides[0], strides[1], pads[0], pads[1], dilations[0], dilations[1], oh, ow)
    if version == 1:
        im2col_v1[blocks_for(cols.size), THREADS](*args)
    elif version == 2:
        im2col_v2[blocks_for(c * oh * ow), THREADS](*args)
    else:
        raise ValueError(f"im2col has versions {VERSIONS}, not {version!r}")


# (C, H, W, kh, kw, strides, pads, dilations): padding, stride 2, dilation and a 1-wide window.
VALIDATION_CASES = (
    (2, 7, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (3, 9, 8, 3, 2, (2, 2), (0, 1, 1, 0), (1, 1)),
    (1, 8, 8, 3, 3, (1, 2), (2, 2, 2, 2), (2, 2)),
)


def validate(cases=VALIDATION_CASES, versions=VERSIONS, seed: int = 0) -> dict[int, float]:
    """Every version against ``im2col_reference``; it only copies values, so the match must be exact."""
    rng = np.random.default_rng(seed)
    worst = {v: 0.0 for v in versions}
    for c, h, w, kh, kw, strides, pads, dilations in cases:
        x = rng.standard_normal((c, h, w)).astype(np.float32)
        want = im2col_reference(x, kh, kw, strides, pads, dilations)
        dx = cuda.to_device(x)
        for v in versions:
            dcols = cuda.device_array(want.shape, dtype=np.float32)
            run_im2col(dx, dcols, kh, kw, strides, pads, dilations, version=v)
            err = check_close(f"im2col v{v} x{list(x.shape)} k={kh}x{kw} s={strides} p={pads} d={dilations}",
                              dcols.copy_to_host(), want.astype(np.float64), 0.0, 0.0)
            worst[v] = max(worst[v], err)
    return worst


if __name__ == "__main__":
    validation_main("im2col", validate)
