"""Convolution in the channel-blocked NCHW16c layout, with explicit vectors (``minicnn.kernels.simd``).

**Not yet used by sessions.** This is the first kernel of a layout pass to
come; it is tested (``tests/test_simd.py``) and timed
(``benchmarks/bench_blocked.py``) so that the layout's benefit is measured
before the executor is taught to keep whole chains of layers in it.

Why the layout. In NCHW a 1x1 convolution reads C input rows and writes M
output rows, each a separate stream through memory H*W floats apart; with
16-64 channels on large planes those streams, not the arithmetic, set the
speed: ``cpu_conv``'s direct kernel and BLAS both reach 25-65 GFLOP/s on
YuNet's and RetinaFace's 1x1 layers, far below what the same multiply-adds
reach on cached data. onnxruntime keeps the whole graph in NCHWc, where a
pixel's 16 channels are contiguous: an image is ``(C/16, H, W, 16)``, a
1x1 layer reads one stream per 16 input channels and writes one per 16
output channels, and one AVX-512 register holds one pixel's 16 channels.
Measured inside YuNet at 1 thread, its 1x1 layers run 2.5-3.5x faster than
minicnn's NCHW kernels there (16x320x320 -> 16: 618 against 2143
microseconds).

The layout (:func:`to_blocked`): channel ``c`` of pixel ``(i, j)`` of image
``n`` is at ``[n, c // 16, i, j, c % 16]``; channel counts are padded with
zero channels to a multiple of 16. A layer's padding output channels have
zero weights and bias, so they hold its activation of 0 (0, or 0.5 after a
Sigmoid): finite values, which the next layer's zero weights for those
channels cancel.

:func:`pointwise_nchw16c` computes, for one block of 16 output channels at
a time, 8 pixels at once: 8 accumulator vectors (one per pixel, its 16
output channels), and for each input channel one vector of 16 weights
(that input channel's weight in each of the 16 output channels) times the
pixel's input value broadcast to all lanes. Per input channel: 1 weight
load, 8 broadcasts, 8 fused multiply-adds, all accumulators in registers;
bias, residual and activation are applied to the vectors before the one
store. First measurements (``benchmarks/bench_blocked.py``, 1 thread) are
in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import numpy as np

from .. import threads  # noqa: F401  (first: chooses Numba's threading layer before numba is imported)
from numba import njit  # noqa: E402

from .cpu_conv import ACTIVATION_CODES  # noqa: E402
from .simd import LANES, add, broadcast, fma, load, maximum, minimum, mul, splat, store, where_positive  # noqa: E402

BLOCK = LANES  # channels per block: one vector register of float32
PIXELS = 8     # pixels per tile of pointwise_nchw16c: 8 accumulator registers


def blocks(channels: int) -> int:
    """Number of 16-channel blocks that hold ``channels`` channels."""
    return -(-channels // BLOCK)


def to_blocked(x: np.ndarray) -> np.ndarray:
    """NCHW ``x`` -> NCHW16c ``(N, ceil(C/16), H, W, 16)``, the missing channels zero (the reference reorder)."""
    n, c, h, w = x.shape
    padded = np.zeros((n, blocks(c) * BLOCK, h, w), dtype=np.float32)
    padded[:, :c] = x
    return np.ascontiguousarray(padded.reshape(n, blocks(c), BLOCK, h, w).transpose(0, 1, 3, 4, 2))


def from_blocked(xb: np.ndarray, channels: int) -> np.ndarray:
    """NCHW16c ``(N, CB, H, W, 16)`` -> NCHW ``(N, channels, H, W)``: :func:`to_blocked` undone."""
    n, cb, h, w, _ = xb.shape
    return np.ascontiguousarray(xb.transpose(0, 1, 4, 2, 3).reshape(n, cb * BLOCK, h, w)[:, :channels])


def blocked_pointwise_weights(w: np.ndarray, bias: np.ndarray, slope: np.ndarray | None = None):
    """1x1 weights (M, C, 1, 1) and per-channel (M,) arrays in :func:`pointwise_nchw16c`'s layout.

    Returns ``(wb, bias16, slope16)``: ``wb[ob, c, j]`` is the weight of
    input channel ``c`` in output channel ``16 * ob + j``, shape
    ``(ceil(M/16), 16 * ceil(C/16), 16)``; bias and slope padded with zeros
    to ``16 * ceil(M/16)``.
    """
    m, c = w.shape[:2]
    mb, cb = blocks(m), blocks(c)
    full = np.zeros((mb * BLOCK, cb * BLOCK), dtype=np.float32)
    full[:m, :c] = w.reshape(m, c)
    wb = np.ascontiguousarray(full.reshape(mb, BLOCK, cb * BLOCK).transpose(0, 2, 1))

    def padded(v):
        out = np.zeros(mb * BLOCK, dtype=np.float32)
        if v is not None:
            out[:m] = v
        return out

    return wb, padded(bias), padded(slope)


@njit(inline="always")
def _epilogue(y, o0, o1, residual, has_residual, code, alpha, slope, lo, hi):
    """Residual (same offsets) and activation (``cpu_conv.ACTIVATION_CODES``) on the vectors ``y[o0:o1]``, in place.

    Called on a tile just stored, still in L1. Each case is its own loop, with
    the tests outside them: a first version applied one vector epilogue with
    all the cases as branches to each accumulator before its store, and ran
    the whole kernel 3x slower with Relu than a kernel with Relu alone
    (presumably LLVM turning the branches into selects, computing them all).
    """
    if has_residual:
        for o in range(o0, o1, BLOCK):
            store(y, o, add(load(y, o), load(residual, o)))
    if code == 1:    # Relu
        zero = splat(0.0)
        for o in range(o0, o1, BLOCK):
            store(y, o, maximum(load(y, o), zero))
    elif code == 2:  # LeakyRelu
        a = splat(alpha)
        for o in range(o0, o1, BLOCK):
            v = load(y, o)
            store(y, o, where_positive(v, mul(v, a)))
    elif code == 3:  # PRelu: one slope per output channel, i.e. per lane
        for o in range(o0, o1, BLOCK):
            v = load(y, o)
            store(y, o, where_positive(v, mul(v, slope)))
    elif code == 4:  # Sigmoid: no vector exp here; value by value
        for o in range(o0, o1):
            y[o] = 1.0 / (1.0 + np.exp(-y[o]))
    elif code == 5:  # Clip
        low, high = splat(lo), splat(hi)
        for o in range(o0, o1, BLOCK):
            store(y, o, minimum(maximum(load(y, o), low), high))


@njit(nogil=True, cache=True, fastmath=True)
def pointwise_nchw16c(x, wb, bias, slope, y, pixels, code, alpha, lo, hi, residual, has_residual, ob0, ob1):
    """1x1 convolution of one image in NCHW16c, output channel blocks ``ob0:ob1``, epilogue fused.

    ``x`` is the image's ``(CB, H, W, 16)`` input flattened, ``pixels`` =
    H * W; ``wb``, ``bias`` and ``slope`` come from
    :func:`blocked_pointwise_weights`; ``y`` (and ``residual``, when
    ``has_residual``) is the ``(MB, H, W, 16)`` output flattened. Pixels
    in tiles of :data:`PIXELS` (see the module docstring); the last
    ``pixels % 8`` one at a time.
    """
    in_blocks = x.size // (pixels * BLOCK)
    channels = in_blocks * BLOCK
    w = wb.reshape(wb.size)
    full = pixels - pixels % PIXELS
    for ob in range(ob0, ob1):
        b = load(bias, ob * BLOCK)
        s = load(slope, ob * BLOCK)
        w_ob = ob * channels * BLOCK
        out = ob * pixels * BLOCK
        for p in range(0, full, PIXELS):
            a0 = b
            a1 = b
            a2 = b
            a3 = b
            a4 = b
            a5 = b
            a6 = b
            a7 = b
            for cb in range(in_blocks):
                pixel = (cb * pixels + p) * BLOCK  # input pixel p's 16 channels of block cb
                for k in range(BLOCK):
                    wv = load(w, w_ob + (cb * BLOCK + k) * BLOCK)  # input channel 16*cb+k -> the 16 outputs
                    i = pixel + k
                    a0 = fma(broadcast(x, i), wv, a0)
                    a1 = fma(broadcast(x, i + BLOCK), wv, a1)
                    a2 = fma(broadcast(x, i + 2 * BLOCK), wv, a2)
                    a3 = fma(broadcast(x, i + 3 * BLOCK), wv, a3)
                    a4 = fma(broadcast(x, i + 4 * BLOCK), wv, a4)
                    a5 = fma(broadcast(x, i + 5 * BLOCK), wv, a5)
                    a6 = fma(broadcast(x, i + 6 * BLOCK), wv, a6)
                    a7 = fma(broadcast(x, i + 7 * BLOCK), wv, a7)
            o = out + p * BLOCK
            store(y, o, a0)
            store(y, o + BLOCK, a1)
            store(y, o + 2 * BLOCK, a2)
            store(y, o + 3 * BLOCK, a3)
            store(y, o + 4 * BLOCK, a4)
            store(y, o + 5 * BLOCK, a5)
            store(y, o + 6 * BLOCK, a6)
            store(y, o + 7 * BLOCK, a7)
            _epilogue(y, o, o + PIXELS * BLOCK, residual, has_residual, code, alpha, s, lo, hi)
        for p in range(full, pixels):
            a = b
            for cb in range(in_blocks):
                pixel = (cb * pixels + p) * BLOCK
                for k in range(BLOCK):
                    a = fma(broadcast(x, pixel + k), load(w, w_ob + (cb * BLOCK + k) * BLOCK), a)
            store(y, out + p * BLOCK, a)
            _epilogue(y, out + p * BLOCK, out + (p + 1) * BLOCK, residual, has_residual, code, alpha, s, lo, hi)


def pointwise_conv_blocked(xb: np.ndarray, wb: np.ndarray, bias16: np.ndarray, slope16: np.ndarray | None = None,
                           activation: str = "", alpha: float = 0.01, lo: float = -np.inf, hi: float = np.inf,
                           residual: np.ndarray | None = None) -> np.ndarray:
    """``activation(conv1x1(xb) + bias + residual)`` in NCHW16c: ``(N, CB, H, W, 16)`` -> ``(N, MB, H, W, 16)``.

    ``wb, bias16, slope16`` as returned by :func:`blocked_pointwise_weights`;
    ``residual`` None or of the output's blocked shape. One thread.
    """
    n, cb, h, w_, _ = xb.shape
    if wb.shape[1] != cb * BLOCK:
        raise ValueError(f"pointwise_conv_blocked: weights for {wb.shape[1]} input channels, input has {cb * BLOCK}")
    mb = wb.shape[0]
    pixels = h * w_
    y = np.empty((n, mb, h, w_, BLOCK), dtype=np.float32)
    slope16 = bias16 if slope16 is None else slope16
    has_res = residual is not None
    for i in range(n):
        res = residual[i].reshape(-1) if has_res else y[i].reshape(-1)  # never read without a residual
        pointwise_nchw16c(xb[i].reshape(-1), wb, bias16, slope16, y[i].reshape(-1), pixels,
                          ACTIVATION_CODES[activation], np.float32(alpha), np.float32(lo), np.float32(hi), res, has_res,
                          0, mb)
    return y
