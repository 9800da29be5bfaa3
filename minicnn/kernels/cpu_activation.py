"""Numba CPU kernels for the element-wise activations (backend "numba").

The readable references live in ``minicnn.ops.activation``; each kernel here
computes the same formula and is checked against the reference and
onnxruntime in ``tests/test_ops_activation.py``.

An activation reads one value and writes one value: it is limited by memory
bandwidth, not arithmetic. NumPy already streams through memory, so a kernel
only wins where NumPy makes *several* passes (``np.where(x >= 0, x, x *
alpha)`` reads ``x`` twice and allocates two temporaries) or where it can
split the work over cores. Each kernel is one pass over a flat float32 array,
split over Numba's threads with ``prange`` (how many: ``minicnn.threads``).

There is deliberately no Sigmoid kernel: without Intel's SVML library Numba
calls a scalar ``exp`` per value, and NumPy's vectorised ``exp`` was 2.5x
faster (measured on 1x64x160x160, see ``docs/ops.md``).

Only float32 is compiled (one signature per kernel, cached on disk with
``cache=True``): the ops call these kernels for float32 inputs only and run
the NumPy reference for anything else.
"""

from __future__ import annotations

import numpy as np

from .. import threads  # noqa: F401  (first: chooses Numba's threading layer before numba is imported)
from numba import njit, prange  # noqa: E402

# A flat array is cut into blocks of this many values; each block is one
# prange iteration (fine enough to balance 2-16 threads, coarse enough that
# scheduling costs nothing next to the work).
BLOCK = 16384


@njit(parallel=True, cache=True)
def leaky_relu(x, alpha, out):
    """``out = x if x >= 0 else alpha * x`` over flat arrays (alpha = 0 is Relu)."""
    n = x.size
    for b in prange((n + BLOCK - 1) // BLOCK):
        # Slices indexed from 0 let LLVM drop Numba's negative-index checks and vectorise the loop.
        src = x[b * BLOCK:min(n, (b + 1) * BLOCK)]
        dst = out[b * BLOCK:min(n, (b + 1) * BLOCK)]
        for i in range(src.size):
            v = src[i]
            dst[i] = v if v >= 0 else v * alpha


@njit(parallel=True, cache=True)
def relu(x, out):
    """``out = max(x, 0)`` over flat arrays."""
    n = x.size
    zero = np.float32(0)
    for b in prange((n + BLOCK - 1) // BLOCK):
        src = x[b * BLOCK:min(n, (b + 1) * BLOCK)]
        dst = out[b * BLOCK:min(n, (b + 1) * BLOCK)]
        for i in range(src.size):
            v = src[i]
            dst[i] = zero if v < zero else v  # written so that NaN stays NaN, as in np.maximum


@njit(parallel=True, cache=True)
def prelu_channels(x, slope, out):
    """PRelu with one slope per channel: ``x``/``out`` are (N*C, H*W), ``slope`` has C values."""
    rows, cols = x.shape
    channels = slope.size
    for r in prange(rows):
        s = slope[r % channels]
        src = x[r]
        dst = out[r]
        for j in range(cols):
            v = src[j]
            dst[j] = v if v >= 0 else v * s
