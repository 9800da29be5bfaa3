"""Numba CPU kernels for the element-wise activations (backend "numba").

The readable references live in ``minicnn.ops.activation``; each kernel here
computes the same formula and is checked against the reference and
onnxruntime in ``tests/test_ops_activation.py``.

An activation reads one value and writes one value: it is limited by memory
bandwidth, not arithmetic. NumPy already streams through memory, so a kernel
only wins where NumPy makes *several* passes (``np.where(x >= 0, x, x *
alpha)`` reads ``x`` twice and allocates two temporaries) or where it can
split the work over cores. Each kernel is one pass over a range of a flat
float32 array; large arrays are split into ranges run by minicnn's threads
(``minicnn.threads.run_ranges``). An earlier version split them with
Numba's ``prange``; with the ``workqueue`` threading layer a ``prange``
launch costs about 90 microseconds even on one thread (measured), more than
the whole activation of a small model's layer.

There is deliberately no Sigmoid kernel: without Intel's SVML library Numba
calls a scalar ``exp`` per value, and NumPy's vectorised ``exp`` was 2.5x
faster (measured on 1x64x160x160, see ``docs/ops.md``).

Softmax along a short last axis (a detector's 2 class scores per anchor:
16800 rows of 2) is a kernel pair around NumPy's ``exp``: NumPy's
reductions over a 2-value axis pay their per-row set-up 16800 times
(``max``, ``sum``), so :func:`subtract_row_max` and :func:`divide_by_row_sum`
do those passes row by row, and NumPy's vectorised ``exp`` runs in place in
between. Long rows (a classifier's 1000 classes) stay with NumPy, whose
reductions vectorise.

Only float32 is compiled (one signature per kernel, cached on disk with
``cache=True``): the ops call these kernels for float32 inputs only and run
the NumPy reference for anything else.
"""

from __future__ import annotations

import numpy as np

from .. import threads  # (first: chooses Numba's threading layer before numba is imported)
from numba import njit  # noqa: E402

# Below this many values an activation runs on the calling thread alone;
# above it, in ranges split between minicnn's threads (threads.run_ranges).
# An activation streams through memory, so a second core only pays off on
# large tensors. (1 MiB of float32: a round number, not tuned.)
MIN_PARALLEL_VALUES = 1 << 18


@njit(nogil=True, cache=True)
def _leaky_relu_range(x, alpha, out, lo, hi):
    # Slices indexed from 0 let LLVM drop Numba's negative-index checks and vectorise the loop.
    src = x[lo:hi]
    dst = out[lo:hi]
    for i in range(src.size):
        v = src[i]
        dst[i] = v if v >= 0 else v * alpha


@njit(nogil=True, cache=True)
def _relu_range(x, out, lo, hi):
    zero = np.float32(0)
    src = x[lo:hi]
    dst = out[lo:hi]
    for i in range(src.size):
        v = src[i]
        dst[i] = zero if v < zero else v  # written so that NaN stays NaN, as in np.maximum


@njit(nogil=True, cache=True)
def _prelu_rows(x, slope, out, lo, hi):
    channels = slope.size
    for r in range(lo, hi):
        s = slope[r % channels]
        src = x[r]
        dst = out[r]
        for j in range(src.size):
            v = src[j]
            dst[j] = v if v >= 0 else v * s


@njit(nogil=True, cache=True)
def subtract_row_max(x, out):
    """``out[r] = x[r] - max(x[r])`` for each row of a (rows, n) float32 matrix (n >= 1)."""
    # 2-D indexing, not a view per row: a view's reference counting costs more than a 2-value row.
    rows, n = x.shape
    for r in range(rows):
        top = x[r, 0]
        for k in range(1, n):
            if x[r, k] > top:
                top = x[r, k]
        for k in range(n):
            out[r, k] = x[r, k] - top


@njit(nogil=True, cache=True)
def divide_by_row_sum(e):
    """``e[r] /= sum(e[r])`` in place, for each row of a (rows, n) float32 matrix."""
    rows, n = e.shape
    for r in range(rows):
        total = np.float32(0)
        for k in range(n):
            total += e[r, k]
        for k in range(n):
            e[r, k] = e[r, k] / total


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """Softmax of each row of a C-contiguous (rows, n) float32 matrix: max-subtract, ``np.exp``, normalise."""
    out = np.empty_like(x)
    subtract_row_max(x, out)
    np.exp(out, out=out)
    divide_by_row_sum(out)
    return out


def leaky_relu(x: np.ndarray, alpha: np.float32, out: np.ndarray) -> None:
    """``out = x if x >= 0 else alpha * x`` over flat float32 arrays (alpha = 0 is Relu)."""
    threads.run_ranges(lambda lo, hi: _leaky_relu_range(x, alpha, out, lo, hi), x.size,
                       x.size >= MIN_PARALLEL_VALUES)


def relu(x: np.ndarray, out: np.ndarray) -> None:
    """``out = max(x, 0)`` over flat float32 arrays."""
    threads.run_ranges(lambda lo, hi: _relu_range(x, out, lo, hi), x.size, x.size >= MIN_PARALLEL_VALUES)


def prelu_channels(x: np.ndarray, slope: np.ndarray, out: np.ndarray) -> None:
    """PRelu with one slope per channel: ``x``/``out`` are (N*C, H*W) float32, ``slope`` has C values."""
    threads.run_ranges(lambda lo, hi: _prelu_rows(x, slope, out, lo, hi), x.shape[0],
                       x.size >= MIN_PARALLEL_VALUES)
