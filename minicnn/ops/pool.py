"""Pooling: summarise each window of an image by its maximum or its mean.

A pooling layer slides a ``kernel_shape`` window over every channel
separately, moving ``strides`` pixels at a time, and writes one value per
window position: the largest value in the window (``MaxPool``) or their mean
(``AveragePool``). ``Global*Pool`` uses one window covering the whole image,
leaving one value per channel.

The geometry follows the ONNX spec and onnxruntime exactly:

* ``pads`` are (begin of each spatial dim..., end of each spatial dim...);
  ``auto_pad`` SAME_UPPER / SAME_LOWER instead pads so that the output has
  ``ceil(size / stride)`` values (the odd pixel of padding goes at the end
  for SAME_UPPER, at the beginning for SAME_LOWER); VALID means no padding.
* Padding never wins a max (padded cells are simply not in the window), and
  for an average it counts in the divisor only with ``count_include_pad=1``.
* The output has ``floor((size + pads - dilated_kernel) / stride) + 1``
  values, or ``ceil(...)`` with ``ceil_mode=1`` (which gives one window even
  when the kernel is larger than the padded input); in ceil mode a last window
  that would *start* past the image and its begin padding is dropped (the
  rule PyTorch uses and onnxruntime follows). Such a ceil-mode window may
  also reach past the end padding; those cells count for nothing, not even
  with ``count_include_pad``.

The reference (:func:`pool_reference`) loops over output positions and takes
the max or mean of each window with NumPy: slow but literally the
definition, for any number of spatial dims. The fast path runs the Numba
kernels of ``minicnn.kernels.cpu_pool`` for float32 1-D and 2-D pooling.
Only the first output of MaxPool (the values, not ``Indices``) is produced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register, register_preparer

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


@dataclass(frozen=True)
class PoolGeometry:
    """Every pooling attribute resolved for one input shape, one entry per spatial dim."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out: tuple[int, ...]


def _per_dim(value, n: int, name: str, default: int, op: str) -> list[int]:
    if value is None:
        return [default] * n
    value = [int(v) for v in value]
    if len(value) != n:
        raise InputError(f"{op}: {name}={value} should have {n} values for {n} spatial dims")
    return value


def pool_geometry(x_shape, op: str, *, kernel_shape, strides=None, pads=None, dilations=None,
                  auto_pad="NOTSET", ceil_mode=0) -> PoolGeometry:
    """Resolve the pooling attributes for an input of shape ``x_shape`` (N, C, spatial...)."""
    if len(x_shape) < 3:
        raise InputError(f"{op}: input {list(x_shape)} should be (N, C, spatial...), at least 3-D")
    sizes = list(x_shape[2:])
    nd = len(sizes)
    if kernel_shape is None:
        raise InputError(f"{op} needs kernel_shape")
    kernel = _per_dim(kernel_shape, nd, "kernel_shape", 1, op)
    strides = _per_dim(strides, nd, "strides", 1, op)
    dilations = _per_dim(dilations, nd, "dilations", 1, op)
    if min(kernel) < 1 or min(strides) < 1 or min(dilations) < 1:
        raise InputError(f"{op}: kernel_shape {kernel}, strides {strides} and dilations {dilations} must be >= 1")
    if auto_pad not in AUTO_PADS:
        raise UnsupportedOpError(f"{op}: auto_pad={auto_pad!r} is not one of {', '.join(AUTO_PADS)}")
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = [-(-n // s) for n, s in zip(sizes, strides)]
        totals = [max((o - 1) * s + span - n, 0) for o, s, span, n in zip(out, strides, spans, sizes)]
        small = [t // 2 for t in totals]
        big = [t - t // 2 for t in totals]
        begin, end = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
        return PoolGeometry(*map(tuple, (kernel, strides, dilations, begin, end, out)))
    if auto_pad == "VALID":
        begin = end = [0] * nd
    else:
        all_pads = _per_dim(pads, 2 * nd, "pads", 0, op)
        begin, end = all_pads[:nd], all_pads[nd:]
        if min(all_pads) < 0:
            raise InputError(f"{op}: pads {all_pads} must not be negative")
        if any(p >= k for p, k in zip(begin + end, kernel + kernel)):
            raise InputError(f"{op}: pads {all_pads} must be smaller than the kernel {kernel}")
    out = []
    for n, k_span, s, b, e in zip(sizes, spans, strides, begin, end):
        room = n + b + e - k_span  # how far the window can slide; negative if it does not fit at all
        count = (-(-room // s) if ceil_mode else room // s) + 1
        if ceil_mode and (count - 1) * s >= n + b:
            count -= 1  # the last window would start beyond the image: drop it
        if count < 1:
            raise InputError(f"{op}: the kernel {kernel} (dilations {dilations}) is larger than the padded "
                             f"input {list(x_shape)} with pads {list(begin) + list(end)}")
        out.append(count)
    return PoolGeometry(*map(tuple, (kernel, strides, dilations, begin, end, out)))


# ---------------------------------------------------------------------------
# The reference: one window at a time
# ---------------------------------------------------------------------------
def pool_reference(X: np.ndarray, geometry: PoolGeometry, kind: str, count_include_pad: int = 0) -> np.ndarray:
    """Max (``kind="max"``) or average (``kind="avg"``) pooling, looping over output positions.

    For each output position, the window's taps along each spatial dim are
    ``start + t * dilation`` (``start = position * stride - pad_begin``);
    the taps inside the image are picked with ``np.ix_`` and reduced over.
    """
    spatial_axes = tuple(range(2, X.ndim))
    Y = np.empty(X.shape[:2] + geometry.out, dtype=X.dtype)
    for position in np.ndindex(*geometry.out):
        inside, padded_count = [], 1
        for dim, o in enumerate(position):
            start = o * geometry.strides[dim] - geometry.pads_begin[dim]
            taps = start + np.arange(geometry.kernel[dim]) * geometry.dilations[dim]
            inside.append(taps[(taps >= 0) & (taps < X.shape[2 + dim])])
            # Taps within the padded image (ceil_mode can reach past it): count_include_pad's divisor.
            end = X.shape[2 + dim] + geometry.pads_end[dim]
            padded_count *= int(np.count_nonzero(taps < end))
        window = X[(slice(None), slice(None)) + np.ix_(*inside)]
        where = (slice(None), slice(None)) + position
        if kind == "max":
            # A window with no cell inside the image (possible only with large dilations) gives the
            # lowest float, as in onnxruntime.
            Y[where] = window.max(axis=spatial_axes) if all(len(t) for t in inside) else np.finfo(X.dtype).min
        else:
            divisor = padded_count if count_include_pad else int(np.prod([len(t) for t in inside]))
            with np.errstate(invalid="ignore"):  # 0 / 0 = NaN for an empty window
                Y[where] = window.sum(axis=spatial_axes) / X.dtype.type(divisor)
    return Y


def _check_input(X, op: str) -> np.ndarray:
    X = np.asarray(X)
    if not np.issubdtype(X.dtype, np.floating):
        raise InputError(f"{op}: input must be a float tensor, got {X.dtype}")
    return X


@register("MaxPool")
def MaxPool(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
            storage_order=0, strides=None):
    """The maximum of each window. ``storage_order`` only affects the Indices output, which is not produced."""
    X = _check_input(X, "MaxPool")
    geometry = pool_geometry(X.shape, "MaxPool", kernel_shape=kernel_shape, strides=strides, pads=pads,
                             dilations=dilations, auto_pad=auto_pad, ceil_mode=ceil_mode)
    return pool_reference(X, geometry, "max")


@register("AveragePool")
def AveragePool(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                pads=None, strides=None):
    """The mean of each window; padded cells count in the divisor only with ``count_include_pad=1``."""
    X = _check_input(X, "AveragePool")
    geometry = pool_geometry(X.shape, "AveragePool", kernel_shape=kernel_shape, strides=strides, pads=pads,
                             dilations=dilations, auto_pad=auto_pad, ceil_mode=ceil_mode)
    return pool_reference(X, geometry, "avg", count_include_pad)


# ---------------------------------------------------------------------------
# The fast path: Numba kernels on (N, C, H, W) float32
# ---------------------------------------------------------------------------
def _as_4d(X: np.ndarray, geometry: PoolGeometry) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]] | None:
    """X's shape as 4-D and the geometry as 2-D tuples (a 1-D pool is a 2-D one of height 1), or None if not float32."""
    if X.dtype != np.float32 or X.ndim not in (3, 4):
        return None
    g = geometry
    if X.ndim == 3:
        return (X.shape[:2] + (1,) + X.shape[2:],
                ((1,) + g.kernel, (1,) + g.strides, (1,) + g.dilations, (0,) + g.pads_begin, (0,) + g.pads_end,
                 (1,) + g.out))
    return X.shape, (g.kernel, g.strides, g.dilations, g.pads_begin, g.pads_end, g.out)


def _pool_runner(X, op: str, attrs: dict, count_include_pad: int = 0):
    """The numba pool for inputs of ``X``'s shape, its geometry worked out once: ``run(X)``, or None.

    None when the kernels do not apply (not float32, or not 1-D/2-D): the
    caller runs the reference. A session keeps ``run`` per input shape (the
    preparers below); the ops call it once.
    """
    geometry = pool_geometry(X.shape, op, **attrs)
    as4 = _as_4d(X, geometry)
    if as4 is None:
        return None
    from ..kernels import cpu_pool

    x4_shape, ((k_h, k_w), (s_h, s_w), (d_h, d_w), (top, left), (bottom, right), out) = as4
    y_shape = x4_shape[:2] + out
    out_shape = X.shape[:2] + geometry.out
    if op == "MaxPool":
        def pool(x4, y):
            cpu_pool.max_pool2d(x4, y, k_h, k_w, s_h, s_w, d_h, d_w, top, left)
    else:
        def pool(x4, y):
            cpu_pool.average_pool2d(x4, y, k_h, k_w, s_h, s_w, d_h, d_w, top, left, bottom, right,
                                    bool(count_include_pad))

    def run(X):
        y = np.empty(y_shape, dtype=np.float32)
        pool(np.ascontiguousarray(X).reshape(x4_shape), y)
        return y.reshape(out_shape)

    return run


@register("MaxPool", backend="numba")
def MaxPool_numba(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                  storage_order=0, strides=None):
    X = _check_input(X, "MaxPool")
    attrs = dict(kernel_shape=kernel_shape, strides=strides, pads=pads, dilations=dilations, auto_pad=auto_pad,
                 ceil_mode=ceil_mode)
    run = _pool_runner(X, "MaxPool", attrs)
    return run(X) if run is not None else pool_reference(X, pool_geometry(X.shape, "MaxPool", **attrs), "max")


@register("AveragePool", backend="numba")
def AveragePool_numba(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                      kernel_shape=None, pads=None, strides=None):
    X = _check_input(X, "AveragePool")
    attrs = dict(kernel_shape=kernel_shape, strides=strides, pads=pads, dilations=dilations, auto_pad=auto_pad,
                 ceil_mode=ceil_mode)
    run = _pool_runner(X, "AveragePool", attrs, count_include_pad)
    if run is None:
        return pool_reference(X, pool_geometry(X.shape, "AveragePool", **attrs), "avg", count_include_pad)
    return run(X)


@register_preparer("MaxPool", backend="numba")
def prepare_MaxPool(args, constant, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                    storage_order=0, strides=None):
    return _pool_runner(args[0], "MaxPool", dict(kernel_shape=kernel_shape, strides=strides, pads=pads,
                                                 dilations=dilations, auto_pad=auto_pad, ceil_mode=ceil_mode))


@register_preparer("AveragePool", backend="numba")
def prepare_AveragePool(args, constant, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                        kernel_shape=None, pads=None, strides=None):
    return _pool_runner(args[0], "AveragePool", dict(kernel_shape=kernel_shape, strides=strides, pads=pads,
                                                     dilations=dilations, auto_pad=auto_pad, ceil_mode=ceil_mode),
                        count_include_pad)


# ---------------------------------------------------------------------------
# Global pooling: one window per channel
# ---------------------------------------------------------------------------
@register("GlobalAveragePool")
def GlobalAveragePool(X):
    """The mean of each channel: (N, C, H, W) -> (N, C, 1, 1)."""
    X = _check_input(X, "GlobalAveragePool")
    if X.ndim < 3:
        raise InputError(f"GlobalAveragePool: input {list(X.shape)} should be (N, C, spatial...)")
    return X.mean(axis=tuple(range(2, X.ndim)), keepdims=True, dtype=X.dtype)


@register("GlobalAveragePool", backend="numba")
def GlobalAveragePool_numba(X):
    """The mean of each channel, by ``cpu_pool.plane_means`` (float32; other dtypes and empty inputs: the reference)."""
    X = _check_input(X, "GlobalAveragePool")
    if X.ndim < 3 or X.dtype != np.float32 or X.size == 0:
        return GlobalAveragePool(X)
    from ..kernels import cpu_pool

    out = np.empty(X.shape[:2] + (1,) * (X.ndim - 2), dtype=np.float32)
    cpu_pool.plane_means(np.ascontiguousarray(X).reshape(X.shape[0] * X.shape[1], -1), out.reshape(-1))
    return out


@register("GlobalMaxPool")
def GlobalMaxPool(X):
    """The maximum of each channel: (N, C, H, W) -> (N, C, 1, 1)."""
    X = _check_input(X, "GlobalMaxPool")
    if X.ndim < 3:
        raise InputError(f"GlobalMaxPool: input {list(X.shape)} should be (N, C, spatial...)")
    return X.max(axis=tuple(range(2, X.ndim)), keepdims=True)
