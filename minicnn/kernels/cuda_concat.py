"""Concat on the GPU: copy each input into its slab of the output.

For ``Concat(axis)`` view every C-contiguous tensor as ``(outer, axis_len * inner)``:
input ``k`` then fills columns ``[offset_k, offset_k + its width)`` of every
row of the output, a strided 2-D copy. Detection heads concatenate their
per-stride outputs this way, so doing it on the device keeps the whole
network there.

Versions:

1. one launch per input, one thread per copied element (grid-stride).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .cuda_common import THREADS, blocks_for, check_close, validation_main

VERSIONS = (1,)


@cuda.jit
def copy_into_columns_v1(src, dst, rows, width, dst_width, offset):
    """Version 1: ``dst[r, offset + c] = src[r, c]`` for flat arrays seen as 2-D."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, rows * width, step):
        r = e // width
        dst[r * dst_width + offset + e % width] = src[e]


def run_concat(inputs: list, y, axis: int) -> None:
    """Concatenate device arrays ``inputs`` along ``axis`` (non-negative) into ``y``."""
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
    dst_width = y.shape[axis] * inner
    flat_y = y.reshape(y.size)
    offset = 0
    for x in inputs:
        width = x.shape[axis] * inner
        if x.size:
            copy_into_columns_v1[blocks_for(x.size), THREADS](x.reshape(x.size), flat_y, outer, width,
                                                             dst_width, offset)
        offset += width


def validate(seed: int = 0) -> dict[int, float]:
    """Concat along every axis of small tensors; a copy must be exact."""
    rng = np.random.default_rng(seed)
    err = 0.0
    for axis in range(3):
        parts = []
        for size in (2, 3, 1):
            shape = [2, 3, 4]
            shape[axis] = size
            parts.append(rng.standard_normal(shape).astype(np.float32))
        want = np.concatenate(parts, axis=axis)
        dy = cuda.device_array(want.shape, dtype=np.float32)
        run_concat([cuda.to_device(p) for p in parts], dy, axis)
        err = max(err, check_close(f"concat v1 axis={axis}", dy.copy_to_host(), want.astype(np.float64), 0, 0))
    return {1: err}


if __name__ == "__main__":
    validation_main("concat", validate)
