"""Depthwise convolution on the GPU, computed directly (no im2col).

A depthwise convolution (``group == C_in``) filters each input channel with
its own small kernel: output channel ``oc`` reads only input channel
``oc // m`` (``m = C_out / C_in``, the channel multiplier, usually 1):

    y[n, oc, oy, ox] = sum_{i, j} x[n, oc // m, oy*sh - pt + i*dh, ox*sw - pl + j*dw] * w[oc, 0, i, j]

It does ``kh*kw`` multiply-adds per output value, so im2col + GEMM would
spend far more time moving the unfolded input than computing: it is
memory-bound, and the fastest kernel is the one that touches memory least.

Versions:

1. one thread per output value; reads its window from global memory (the
   caches catch the overlap between neighbouring windows) and writes the raw
   sum. Bias and activation then need a second pass (``cuda_epilogue``).
2. version 1 with the epilogue fused: bias, residual and activation are
   applied before the single write, so the output crosses memory once.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from .cuda_common import (ACTIVATION_CODES, THREADS, activate, blocks_for, check_close, placeholder,
                          validation_main)
from .cuda_epilogue import epilogue_reference
from .cuda_im2col import output_size

VERSIONS = (1, 2)
DEFAULT_VERSION = 2


def depthwise_reference(x: np.ndarray, w: np.ndarray, strides=(1, 1), pads=(0, 0, 0, 0),
                        dilations=(1, 1)) -> np.ndarray:
    """NumPy depthwise convolution (no bias), float64 accumulation; ``pads`` = (top, left, bottom, right)."""
    n, c, h, wd = x.shape
    c_out, _, kh, kw = w.shape
    m = c_out // c
    sh, sw = strides
    dh, dw = dilations
    pt, pl, pb, pr = pads
    oh = output_size(h, kh, sh, pt, pb, dh)
    ow = output_size(wd, kw, sw, pl, pr, dw)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    padded = np.repeat(padded, m, axis=1)  # output channel oc reads input channel oc // m
    y = np.zeros((n, c_out, oh, ow))
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
            y += window * w[:, 0, i, j].reshape(1, -1, 1, 1)
    return y


@cuda.jit
def depthwise_v1(x, w, y, m, sh, sw, pt, pl, dh, dw):
    """Version 1: one thread per output value, raw sum."""
    n, c_in, h, wd = x.shape
    _, c_out, oh, ow = y.shape
    kh, kw = w.shape[2], w.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, y.size, step):
        ox = e % ow
        oy = (e // ow) % oh
        oc = (e // (ow * oh)) % c_out
        b = e // (ow * oh * c_out)
        ic = oc // m
        acc = float32(0.0)
        for i in range(kh):
            yy = oy * sh - pt + i * dh
            if 0 <= yy < h:
                for j in range(kw):
                    xx = ox * sw - pl + j * dw
                    if 0 <= xx < wd:
                        acc += x[b, ic, yy, xx] * w[oc, 0, i, j]
        y[b, oc, oy, ox] = acc


@cuda.jit
def depthwise_v2(x, w, y, m, sh, sw, pt, pl, dh, dw, bias, has_bias, residual, has_residual,
                 code, alpha, slope, per_channel_slope, lo, hi):
    """Version 2: version 1 plus the fused epilogue ``act(sum + bias + residual)``."""
    n, c_in, h, wd = x.shape
    _, c_out, oh, ow = y.shape
    kh, kw = w.shape[2], w.shape[3]
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, y.size, step):
        ox = e % ow
        oy = (e // ow) % oh
        oc = (e // (ow * oh)) % c_out
        b = e // (ow * oh * c_out)
        ic = oc // m
        acc = float32(0.0)
        for i in range(kh):
            yy = oy * sh - pt + i * dh
            if 0 <= yy < h:
                for j in range(kw):
                    xx = ox * sw - pl + j * dw
                    if 0 <= xx < wd:
                        acc += x[b, ic, yy, xx] * w[oc, 0, i, j]
        if has_bias:
            acc += bias[oc]
        if has_residual:
            acc += residual[b, oc, oy, ox]
        s = slope[oc] if per_channel_slope else slope[0]
        y[b, oc, oy, ox] = activate(acc, code, alpha, s, lo, hi)


def run_depthwise(x, w, y, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), bias=None, residual=None,
                  activation: str = "", alpha: float = 0.01, slope=None, lo: float = -np.inf,
                  hi: float = np.inf, version: int = DEFAULT_VERSION) -> None:
    """Depthwise convolution of device arrays ``x[N, C, H, W]`` with ``w[C*m, 1, kh, kw]`` into ``y``.

    Version 1 computes the raw sum only: asking it for a bias, residual or
    activation is an error (run ``cuda_epilogue`` after it).
    """
    m = w.shape[0] // x.shape[1]
    geometry = (m, strides[0], strides[1], pads[0], pads[1], dilations[0], dilations[1])
    launch = (blocks_for(y.size), THREADS)
    if version == 1:
        if bias is not None or residual is not None or activation:
            raise ValueError("depthwise v1 writes the raw sum; apply bias/activation with cuda_epilogue")
        depthwise_v1[launch](x, w, y, *geometry)
    elif version == 2:
        dummy = placeholder()
        depthwise_v2[launch](
            x, w, y, *geometry,
            bias if bias is not None else dummy, bias is not None,
            residual if residual is not None else placeholder(4),
            residual is not None,
            ACTIVATION_CODES[activation], np.float32(alpha),
            slope if slope is not None else dummy, slope is not None and slope.size > 1,
            np.float32(lo), np.float32(hi))
    else:
        raise ValueError(f"depthwise has versions {VERSIONS}, not {version!r}")


# (N, C, H, W, multiplier, kh, kw, strides, pads, dilations)
VALIDATION_CASES = (
    (1, 3, 7, 6, 1, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1)),
    (2, 2, 8, 9, 2, 3, 3, (2, 2), (0, 1, 1, 0), (1, 1)),
    (1, 2, 9, 9, 1, 5, 5, (1, 1), (2, 2, 2, 2), (1, 1)),
    (1, 2, 8, 8, 1, 3, 3, (1, 1), (2, 2, 2, 2), (2, 2)),
)


def validate(cases=VALIDATION_CASES, versions=VERSIONS, seed: int = 0) -> dict[int, float]:
    """Version 1 raw, version 2 with bias + LeakyRelu + residual; tolerance 1e-5 abs + 1e-5 rel."""
    rng = np.random.default_rng(seed)
    worst = {v: 0.0 for v in versions}
    for n, c, h, wd, m, kh, kw, strides, pads, dilations in cases:
        x = rng.standard_normal((n, c, h, wd)).astype(np.float32)
        w = rng.standard_normal((c * m, 1, kh, kw)).astype(np.float32)
        bias = rng.standard_normal(c * m).astype(np.float32)
        raw = depthwise_reference(x, w, strides, pads, dilations)
        residual = rng.standard_normal(raw.shape).astype(np.float32)
        fused = epilogue_reference(raw, bias, residual, "LeakyRelu", alpha=0.1)
        dx, dw_ = cuda.to_device(x), cuda.to_device(w)
        label = f"x{list(x.shape)} w{list(w.shape)} s={strides} p={pads} d={dilations}"
        for v in versions:
            dy = cuda.device_array(raw.shape, dtype=np.float32)
            if v == 1:
                run_depthwise(dx, dw_, dy, strides, pads, dilations, version=1)
                want = raw
            else:
                run_depthwise(dx, dw_, dy, strides, pads, dilations, bias=cuda.to_device(bias),
                              residual=cuda.to_device(residual), activation="LeakyRelu", alpha=0.1, version=v)
                want = fused
            worst[v] = max(worst[v], check_close(f"depthwise v{v} {label}", dy.copy_to_host(), want, 1e-5, 1e-5))
    return worst


if __name__ == "__main__":
    validation_main("depthwise", validate)
