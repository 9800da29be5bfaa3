"""Pooling: summarise each window of a feature map by its max or its mean.

The reference builds every window at once as a strided *view* of the padded
input (``sliding_window_view``: no data is copied) and reduces over the
window axes. Two details decide whether results match onnxruntime:

* **Padding never wins a max**: MaxPool pads with -inf.
* **What an average divides by**: with ``count_include_pad=0`` (default) only
  real input cells count; with 1, the explicit padding counts too, but never
  the extra cells ``ceil_mode`` may add past the padding.

``ceil_mode=1`` rounds the output size up, so the last window may hang over
the edge; a window that would *start* beyond the input and the head padding
is dropped (the rule PyTorch and onnxruntime share).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError, UnsupportedOpError
from .conv import _same_pads
from .registry import register


def pool_geometry(in_sizes, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode):
    """Output sizes and (begin, end) padding per spatial axis, as onnxruntime computes them."""
    n = len(in_sizes)
    k = list(kernel_shape)
    s = list(strides) if strides else [1] * n
    d = list(dilations) if dilations else [1] * n
    p = list(pads) if pads else [0] * (2 * n)
    out, begin, end = [], [], []
    for i in range(n):
        span = (k[i] - 1) * d[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            b, e = _same_pads(in_sizes[i], k[i], s[i], d[i], auto_pad == "SAME_UPPER")
            o = -(-in_sizes[i] // s[i])
        elif auto_pad == "VALID":
            b, e = 0, 0
            o = (in_sizes[i] - span) // s[i] + 1
        elif auto_pad in ("NOTSET", "", None):
            b, e = p[i], p[i + n]
            total = in_sizes[i] + b + e - span
            o = (math.ceil(total / s[i]) if ceil_mode else total // s[i]) + 1
            if ceil_mode and (o - 1) * s[i] >= in_sizes[i] + b:
                o -= 1  # the last window would start past the input: drop it
        else:
            raise UnsupportedOpError(f"unknown auto_pad {auto_pad!r}")
        if o < 1:
            raise InputError(f"pooling window {span} larger than padded input {in_sizes[i] + b + e} on axis {i + 2}")
        out.append(o)
        begin.append(b)
        end.append(e)
    return out, begin, end, k, s, d


def _windows(Xp: np.ndarray, out, k, s, d) -> np.ndarray:
    """View of shape (..., *out, *k): every window of the padded spatial axes."""
    n = len(out)
    spans = [(k[i] - 1) * d[i] + 1 for i in range(n)]
    axes = tuple(range(Xp.ndim - n, Xp.ndim))
    view = sliding_window_view(Xp, spans, axis=axes)
    lead = (slice(None),) * (Xp.ndim - n)
    index = lead + tuple(slice(0, (out[i] - 1) * s[i] + 1, s[i]) for i in range(n)) \
        + tuple(slice(None, None, d[i]) for i in range(n))
    return view[index]


def _pad_for(out, begin, end, k, s, d, in_sizes):
    """Padding per axis, plus any extra cells ceil_mode needs at the end."""
    widths = []
    for i in range(len(out)):
        needed = (out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1
        extra = max(needed - (in_sizes[i] + begin[i] + end[i]), 0)
        widths.append((begin[i], end[i] + extra, extra))
    return widths


def _check(X, kernel_shape, op):
    if kernel_shape is None:
        raise InputError(f"{op} needs kernel_shape")
    if X.ndim != len(kernel_shape) + 2:
        raise InputError(f"{op}: input {list(X.shape)} has rank {X.ndim}, kernel_shape {list(kernel_shape)} "
                         f"needs rank {len(kernel_shape) + 2} (N, C, spatial...)")


@register("MaxPool")
def MaxPool(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
            storage_order=0, strides=None):
    """Max over each window (only the first output; the Indices output is not supported)."""
    _check(X, kernel_shape, "MaxPool")
    in_sizes = X.shape[2:]
    out, begin, end, k, s, d = pool_geometry(in_sizes, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    widths = _pad_for(out, begin, end, k, s, d, in_sizes)
    lowest = -np.inf if X.dtype.kind == "f" else np.iinfo(X.dtype).min
    Xp = np.pad(X, [(0, 0), (0, 0)] + [(b, e) for b, e, _ in widths], constant_values=lowest)
    win = _windows(Xp, out, k, s, d)
    return win.max(axis=tuple(range(-len(out), 0)))


@register("AveragePool")
def AveragePool(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                pads=None, strides=None):
    """Mean over each window; see the module docstring for what counts as a cell."""
    _check(X, kernel_shape, "AveragePool")
    in_sizes = X.shape[2:]
    out, begin, end, k, s, d = pool_geometry(in_sizes, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode)
    widths = _pad_for(out, begin, end, k, s, d, in_sizes)
    Xp = np.pad(X, [(0, 0), (0, 0)] + [(b, e) for b, e, _ in widths])
    sums = _windows(Xp, out, k, s, d).sum(axis=tuple(range(-len(out), 0)), dtype=np.float64)
    # The divisor, per output cell: how many window cells are real input (or explicit padding).
    counted = np.ones(in_sizes, dtype=np.float64)
    if count_include_pad:
        counted = np.pad(counted, [(b, e - extra) for b, e, extra in widths], constant_values=1.0)
        counted = np.pad(counted, [(0, extra) for _, _, extra in widths])
    else:
        counted = np.pad(counted, [(b, e) for b, e, _ in widths])
    counts = _windows(counted, out, k, s, d).sum(axis=tuple(range(-len(out), 0)))
    return (sums / np.maximum(counts, 1)).astype(X.dtype)


# -- fast paths (Numba kernels in minicnn/kernels/cpu_pool.py), same signatures ------------------------

def _fast_2d(X, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, op):
    """Geometry for the 2-D float32 kernels, or None when the reference must run."""
    if X.ndim != 4 or X.dtype != np.float32 or kernel_shape is None or len(kernel_shape) != 2:
        return None
    out, begin, end, k, s, d = pool_geometry(X.shape[2:], kernel_shape, strides, pads, dilations, auto_pad,
                                             ceil_mode)
    return np.empty((X.shape[0], X.shape[1], *out), np.float32), begin, end, k, s, d


@register("MaxPool", backend="numba")
def MaxPool_numba(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                  storage_order=0, strides=None):
    geo = _fast_2d(X, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, "MaxPool")
    if geo is None:
        return MaxPool(X, auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations, kernel_shape=kernel_shape,
                       pads=pads, storage_order=storage_order, strides=strides)
    from ..kernels.cpu_pool import max_pool_2d

    Y, begin, end, k, s, d = geo
    max_pool_2d(np.ascontiguousarray(X), Y, k[0], k[1], s[0], s[1], d[0], d[1], begin[0], begin[1])
    return Y


@register("AveragePool", backend="numba")
def AveragePool_numba(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                      kernel_shape=None, pads=None, strides=None):
    geo = _fast_2d(X, kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, "AveragePool")
    if geo is None:
        return AveragePool(X, auto_pad=auto_pad, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                           dilations=dilations, kernel_shape=kernel_shape, pads=pads, strides=strides)
    from ..kernels.cpu_pool import avg_pool_2d

    Y, begin, end, k, s, d = geo
    avg_pool_2d(np.ascontiguousarray(X), Y, k[0], k[1], s[0], s[1], d[0], d[1], begin[0], begin[1], end[0], end[1],
                bool(count_include_pad))
    return Y


@register("GlobalAveragePool")
def GlobalAveragePool(X):
    """Mean over all spatial positions: (N, C, H, W) -> (N, C, 1, 1)."""
    return X.mean(axis=tuple(range(2, X.ndim)), keepdims=True, dtype=np.float64).astype(X.dtype)


@register("GlobalMaxPool")
def GlobalMaxPool(X):
    return X.max(axis=tuple(range(2, X.ndim)), keepdims=True)
