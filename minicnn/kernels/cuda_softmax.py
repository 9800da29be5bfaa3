"""Softmax along one axis on the GPU.

View the tensor as ``(outer, L, inner)`` with ``L`` the axis being normalised;
each of the ``outer*inner`` rows of length ``L`` becomes

    y[o, l, i] = exp(x[o, l, i] - max_l x[o, :, i]) / sum_l exp(x[o, l, i] - max)

Subtracting the row maximum first keeps ``exp`` from overflowing and does
not change the result. (Softmax before opset 13 normalises over *all* axes
from ``axis`` on: that is ``inner = 1`` and ``L`` = their product; the caller
chooses the view.)

Versions:

1. one thread per row: three passes over the row (max, sum, write). Good
   when there are many short rows (class scores per anchor).
2. one block per row (``inner == 1``): the threads split the row, then reduce
   the maximum and the sum in shared memory. Good for few long rows.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32

from .cuda_common import THREADS, blocks_for, check_close, validation_main

VERSIONS = (1, 2)
REDUCE_THREADS = 128  # power of two, for the tree reductions of version 2


def softmax_reference(x: np.ndarray, outer: int, length: int, inner: int) -> np.ndarray:
    """NumPy softmax of ``x`` viewed as ``(outer, length, inner)`` along the middle axis."""
    v = x.astype(np.float64).reshape(outer, length, inner)
    e = np.exp(v - v.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).reshape(x.shape)


@cuda.jit
def softmax_v1(x, y, outer, length, inner):
    """Version 1: one thread per row, flat arrays."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for row in range(start, outer * inner, step):
        base = (row // inner) * length * inner + row % inner
        biggest = float32(-math.inf)
        for l in range(length):
            biggest = max(biggest, x[base + l * inner])
        total = float32(0.0)
        for l in range(length):
            total += math.exp(x[base + l * inner] - biggest)
        for l in range(length):
            y[base + l * inner] = math.exp(x[base + l * inner] - biggest) / total


@cuda.jit(device=True)
def _block_reduce(values, tid, take_max):
    """Tree-reduce ``values[0:REDUCE_THREADS]`` in shared memory; every thread gets the result."""
    half = REDUCE_THREADS // 2
    while half > 0:
        if tid < half:
            if take_max:
                values[tid] = max(values[tid], values[tid + half])
            else:
                values[tid] += values[tid + half]
        cuda.syncthreads()
        half //= 2
    result = values[0]
    cuda.syncthreads()  # everyone has read values[0] before the array is reused
    return result


@cuda.jit
def softmax_v2(x, y, rows, length):
    """Version 2: one block per row of a ``(rows, length)`` array (``inner == 1``), flat arrays."""
    scratch = cuda.shared.array(REDUCE_THREADS, float32)
    tid = cuda.threadIdx.x
    for row in range(cuda.blockIdx.x, rows, cuda.gridDim.x):
        base = row * length
        local = float32(-math.inf)
        for l in range(tid, length, REDUCE_THREADS):
            local = max(local, x[base + l])
        scratch[tid] = local
        cuda.syncthreads()
        biggest = _block_reduce(scratch, tid, True)
        local = float32(0.0)
        for l in range(tid, length, REDUCE_THREADS):
            local += math.exp(x[base + l] - biggest)
        scratch[tid] = local
        cuda.syncthreads()
        total = _block_reduce(scratch, tid, False)
        for l in range(tid, length, REDUCE_THREADS):
            y[base + l] = math.exp(x[base + l] - biggest) / total


def run_softmax(x, y, outer: int, length: int, inner: int, version: int | None = None) -> None:
    """Softmax of device array ``x`` viewed as ``(outer, length, inner)`` into ``y``.

    ``version=None`` picks version 2 for a few long rows (``inner == 1`` and
    ``length >= 256``), else version 1.
    """
    if version is None:
        version = 2 if inner == 1 and length >= 256 else 1
    flat_x, flat_y = x.reshape(x.size), y.reshape(y.size)
    if version == 1:
        softmax_v1[blocks_for(outer * inner), THREADS](flat_x, flat_y, outer, length, inner)
    elif version == 2:
        if inner != 1:
            raise ValueError(f"softmax v2 normalises contiguous rows (inner == 1), got inner={inner}")
        softmax_v2[min(outer, 65535), REDUCE_THREADS](flat_x, flat_y, outer, length)
    else:
        raise ValueError(f"softmax has versions {VERSIONS}, not {version!r}")


# (outer, length, inner): class scores per anchor, a spatial-channel softmax, a long row.
VALIDATION_CASES = ((6, 2, 1), (2, 5, 7), (2, 300, 1))


def validate(cases=VALIDATION_CASES, seed: int = 0) -> dict[int, float]:
    """Each version on the cases it handles; inputs scaled by 10 so the max-shift matters; tol 1e-6."""
    rng = np.random.default_rng(seed)
    worst = {v: 0.0 for v in VERSIONS}
    for outer, length, inner in cases:
        x = (10 * rng.standard_normal(outer * length * inner)).astype(np.float32)
        want = softmax_reference(x, outer, length, inner)
        dx = cuda.to_device(x)
        for v in VERSIONS:
            if v == 2 and inner != 1:
                continue
            dy = cuda.device_array(x.shape, dtype=np.float32)
            run_softmax(dx, dy, outer, length, inner, version=v)
            label = f"softmax v{v} (outer={outer}, L={length}, inner={inner})"
            worst[v] = max(worst[v], check_close(label, dy.copy_to_host(), want, 1e-6, 1e-5))
    return worst


if __name__ == "__main__":
    validation_main("softmax", validate)
