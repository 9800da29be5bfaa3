"""Max and average pooling on the GPU (2-D, NCHW), and global average pooling.

A pooling window of ``kh x kw`` slides over each channel with strides
``(sh, sw)`` over an input padded by ``(top, left, bottom, right)``; the output
is the window's maximum or mean. ONNX details that decide the numbers:

* ``ceil_mode``: round the number of windows up, but never start a window
  in the bottom/right padding (PyTorch's and onnxruntime's rule);
* average pooling divides by the window's size clipped to the padded extent
  (``count_include_pad=1``) or to the real image (``count_include_pad=0``);
* max pooling ignores padding (it is -inf) and may be dilated.

Versions:

1. one thread per output value, max or average (``is_max`` flag), any
   window, stride, padding and dilation.
2. global average pooling (the window is the whole plane): one block per
   (n, c) plane; its threads each sum a strided part of the plane, then a
   shared-memory tree reduction adds the partial sums. Version 1 would give
   the whole plane to one thread.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .cuda_common import THREADS, blocks_for, check_close, validation_main

VERSIONS = (1, 2)
DEFAULT_VERSION = 1
REDUCE_THREADS = 128  # power of two, for the tree reduction of version 2


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """Number of windows along one axis (ONNX MaxPool/AveragePool rules)."""
    span = size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1  # the last window would start inside the end padding
    return out


def pool_reference(x: np.ndarray, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                   ceil_mode: bool = False, is_max: bool = True, count_include_pad: bool = False) -> np.ndarray:
    """NumPy 2-D pooling of ``x[N, C, H, W]`` by explicit window loops (slow, obvious)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    sh, sw = strides
    dh, dw = (dilations if is_max else (1, 1))
    pt, pl, pb, pr = pads
    oh = pool_output_size(h, kh, sh, pt, pb, dh, ceil_mode)
    ow = pool_output_size(w, kw, sw, pl, pr, dw, ceil_mode)
    y = np.empty((n, c, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            ys = [oy * sh - pt + i * dh for i in range(kh)]
            xs = [ox * sw - pl + j * dw for j in range(kw)]
            inside_y = [v for v in ys if 0 <= v < h]
            inside_x = [v for v in xs if 0 <= v < w]
            window = x[:, :, inside_y][:, :, :, inside_x].astype(np.float64)
            if is_max:
                y[:, :, oy, ox] = window.max(axis=(2, 3))
            else:
                if count_include_pad:  # positions inside the padded extent, image or padding
                    count = (sum(-pt <= v < h + pb for v in ys)) * (sum(-pl <= v < w + pr for v in xs))
                else:
                    count = len(inside_y) * len(inside_x)
                y[:, :, oy, ox] = window.sum(axis=(2, 3)) / count
    return y


@cuda.jit
def pool_v1(x, y, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw, is_max, count_include_pad):
    """Version 1: one thread per output value."""
    n, c, h, w = x.shape
    _, _, oh, ow = y.shape
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, y.size, step):
        ox = e % ow
        oy = (e // ow) % oh
        ch = (e // (ow * oh)) % c
        b = e // (ow * oh * c)
        y0 = oy * sh - pt
        x0 = ox * sw - pl
        best = float32(-math.inf)
        total = float32(0.0)
        count = 0
        for i in range(kh):
            yy = y0 + i * dh
            if 0 <= yy < h:
                for j in range(kw):
                    xx = x0 + j * dw
                    if 0 <= xx < w:
                        v = x[b, ch, yy, xx]
                        best = max(best, v)
                        total += v
                        count += 1
        if is_max:
            y[b, ch, oy, ox] = best
        else:
            if count_include_pad:
                # Window clipped to the padded extent [-pad_begin, size + pad_end).
                rows = min(y0 + kh, h + pb) - max(y0, -pt)
                cols = min(x0 + kw, w + pr) - max(x0, -pl)
                count = rows * cols
            y[b, ch, oy, ox] = total / count


@cuda.jit
def global_avg_pool_v2(x, y, plane_size):
    """Version 2: one block per (n, c) plane, shared-memory tree reduction; x, y flat."""
    partial = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    for plane in range(cuda.blockIdx.x, y.size, cuda.gridDim.x):
        base = plane * plane_size
        acc = float32(0.0)
        for p in range(tid, plane_size, REDUCE_THREADS):
            acc += x[base + p]
        partial[tid] = acc
        cuda.syncthreads()
        half = REDUCE_THREADS // 2
        while half > 0:
            if tid < half:
                partial[tid] += partial[tid + half]
            cuda.syncthreads()
            half //= 2
        if tid == 0:
            y[plane] = partial[0] / plane_size
        cuda.syncthreads()  # partial[0] is read before the next plane overwrites it


def run_pool(x, y, kernel, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), is_max: bool = True,
             count_include_pad: bool = False) -> None:
    """Version 1 on device arrays ``x[N, C, H, W]`` -> ``y[N, C, OH, OW]`` (``y`` sized by the caller)."""
    dh, dw = dilations if is_max else (1, 1)
    pool_v1[blocks_for(y.size), THREADS](x, y, kernel[0], kernel[1], strides[0], strides[1], pads[0], pads[1],
                                        pads[2], pads[3], dh, dw, is_max, count_include_pad)


def run_global_avg_pool(x, y, version: int = 2) -> None:
    """``y[N, C, 1, 1]`` = mean of each plane of ``x[N, C, H, W]``, by version 1 (one window) or 2."""
    n, c, h, w = x.shape
    if version == 1:
        run_pool(x, y, (h, w), is_max=False)
    elif version == 2:
        planes = n * c
        global_avg_pool_v2[min(planes, 65535), REDUCE_THREADS](x.reshape(x.size), y.reshape(planes), h * w)
    else:
        raise ValueError(f"global average pooling has versions {VERSIONS}, not {version!r}")


# (shape, kernel, strides, pads, dilations, ceil_mode)
VALIDATION_CASES = (
    ((1, 2, 7, 7), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),
    ((2, 2, 8, 7), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), True),
    ((1, 1, 9, 9), (3, 2), (2, 1), (1, 0, 1, 1), (2, 1), True),
)


def validate(cases=VALIDATION_CASES, seed: int = 0) -> dict[str, float]:
    """Max, average (both padding counts) and global average, every version; tolerance 1e-5."""
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}

    def record(key, err):
        worst[key] = max(worst.get(key, 0.0), err)

    for shape, kernel, strides, pads, dilations, ceil_mode in cases:
        x = rng.standard_normal(shape).astype(np.float32)
        dx = cuda.to_device(x)
        for is_max, include in ((True, False), (False, False), (False, True)):
            want = pool_reference(x, kernel, strides, pads, dilations, ceil_mode, is_max, include)
            dy = cuda.device_array(want.shape, dtype=np.float32)
            run_pool(dx, dy, kernel, strides, pads, dilations, is_max, include)
            name = "max" if is_max else f"avg(count_include_pad={int(include)})"
            label = f"pool v1 {name} x{list(shape)} k={kernel} s={strides} p={pads} d={dilations} ceil={ceil_mode}"
            record("v1 " + name, check_close(label, dy.copy_to_host(), want, 1e-5, 1e-5))
        want = x.astype(np.float64).mean(axis=(2, 3), keepdims=True)
        for v in VERSIONS:
            dy = cuda.device_array(want.shape, dtype=np.float32)
            run_global_avg_pool(dx, dy, version=v)
            record(f"v{v} global avg", check_close(f"global avg pool v{v} x{list(shape)}", dy.copy_to_host(),
                                                   want, 1e-5, 1e-5))
    return worst


if __name__ == "__main__":
    validation_main("pool", validate)
