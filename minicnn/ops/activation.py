"""Activations: the non-linear functions applied to every value of a tensor.

Each one maps a value to a value (Softmax, which normalises along an axis,
is the exception). The NumPy reference is the formula itself; dtype is kept
(float32 in, float32 out).

Fast paths (backend "numba") exist for Relu, LeakyRelu and PRelu on float32,
the activations the face models apply after nearly every convolution that
the optimiser could not fuse, and for Softmax over short float32 rows (a
detector's per-anchor class scores). They run the one-pass kernels of
``minicnn.kernels.cpu_activation`` and use the reference for other dtypes or
slope shapes (the reference *is* the numba backend's implementation there,
by design). Sigmoid has no fast path: NumPy's vectorised ``exp`` beat a Numba
loop. ``docs/ops.md`` lists the measured speedups.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from .registry import register


def _is_float32(x) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.float32


def _flat_output(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A C-contiguous flat view of ``x`` and a fresh flat output of the same size."""
    flat = np.ascontiguousarray(x).reshape(-1)
    return flat, np.empty_like(flat)


# ---------------------------------------------------------------------------
# Relu, LeakyRelu, PRelu
# ---------------------------------------------------------------------------
@register("Relu")
def Relu(X):
    """``max(x, 0)``: negative values become zero."""
    return np.maximum(X, np.zeros((), dtype=X.dtype))


@register("Relu", backend="numba")
def Relu_numba(X):
    if not _is_float32(X):
        return Relu(X)
    from ..kernels import cpu_activation

    flat, out = _flat_output(X)
    cpu_activation.relu(flat, out)
    return out.reshape(X.shape)


@register("LeakyRelu")
def LeakyRelu(X, *, alpha=0.01):
    """``x`` where ``x >= 0``, ``alpha * x`` elsewhere: negatives are scaled down, not zeroed."""
    return np.where(X >= 0, X, X * X.dtype.type(alpha))


@register("LeakyRelu", backend="numba")
def LeakyRelu_numba(X, *, alpha=0.01):
    if not _is_float32(X):
        return LeakyRelu(X, alpha=alpha)
    from ..kernels import cpu_activation

    flat, out = _flat_output(X)
    cpu_activation.leaky_relu(flat, np.float32(alpha), out)
    return out.reshape(X.shape)


def _check_slope(X, slope) -> None:
    try:
        np.broadcast_shapes(slope.shape, X.shape)
    except ValueError:
        raise InputError(
            f"PRelu: slope{list(slope.shape)} does not broadcast to X{list(X.shape)} "
            "(slope's dims align with X's last dims; one slope per channel of an NCHW tensor is (C, 1, 1))"
        ) from None
    if np.broadcast_shapes(slope.shape, X.shape) != X.shape:
        raise InputError(f"PRelu: slope{list(slope.shape)} would enlarge X{list(X.shape)}; it must broadcast to X")


@register("PRelu")
def PRelu(X, slope):
    """LeakyRelu with a learned ``slope``, broadcast to X (unidirectionally).

    Exports store one slope per channel as shape (C, 1, 1), which lines up
    with the C of an (N, C, H, W) tensor. A plain (C,) would line up with the
    *last* axis (W), as in NumPy broadcasting.
    """
    _check_slope(X, slope)
    return np.where(X >= 0, X, X * slope.astype(X.dtype, copy=False))


def _channel_slope(X: np.ndarray, slope: np.ndarray) -> np.ndarray | None:
    """The slope as one value per channel of an (N, C, ...) tensor, or None if it is not of that form."""
    if X.ndim < 2 or slope.size not in (1, X.shape[1]):
        return None
    if slope.size == 1:
        return np.full(X.shape[1], slope.reshape(-1)[0], dtype=np.float32)
    # (C, 1, ..., 1) with as many trailing ones as X has spatial dims, optionally with a leading 1.
    trailing = X.ndim - 2
    if slope.shape in ((X.shape[1],) + (1,) * trailing, (1, X.shape[1]) + (1,) * trailing):
        return slope.reshape(-1).astype(np.float32)
    return None


@register("PRelu", backend="numba")
def PRelu_numba(X, slope):
    per_channel = _channel_slope(X, slope) if _is_float32(X) else None
    if per_channel is None:
        return PRelu(X, slope)
    from ..kernels import cpu_activation

    rows = np.ascontiguousarray(X).reshape(X.shape[0] * X.shape[1], -1)
    out = np.empty_like(rows)
    cpu_activation.prelu_channels(rows, per_channel, out)
    return out.reshape(X.shape)


# ---------------------------------------------------------------------------
# Sigmoid and other smooth functions
# ---------------------------------------------------------------------------
@register("Sigmoid")
def Sigmoid(X):
    """``1 / (1 + exp(-x))``, squashing any value into (0, 1)."""
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88 (float32); 1/inf = 0 is right
        return np.reciprocal(1 + np.exp(-X))


@register("Tanh")
def Tanh(input):
    return np.tanh(input)


@register("Exp")
def Exp(input):
    with np.errstate(over="ignore"):  # large inputs give inf, as in onnxruntime
        return np.exp(input)


@register("Abs")
def Abs(X):
    return np.abs(X)


@register("HardSigmoid")
def HardSigmoid(X, *, alpha=0.2, beta=0.5):
    """``clip(alpha * x + beta, 0, 1)``: a piecewise-linear sigmoid."""
    t = X.dtype.type
    return np.clip(X * t(alpha) + t(beta), t(0), t(1))


@register("HardSwish")
def HardSwish(X):
    """``x * HardSigmoid(x)`` with alpha = 1/6, beta = 0.5 (MobileNetV3's cheap swish)."""
    return X * HardSigmoid(X, alpha=1 / 6, beta=0.5)


# ---------------------------------------------------------------------------
# Softmax and Clip: their meaning depends on the opset
# ---------------------------------------------------------------------------
@register("Softmax")
def Softmax(input, *, axis=None, opset=13):
    """``exp(x) / sum(exp(x))`` along an axis, so the values there are positive and sum to 1.

    Opset 13 and later: along ``axis`` (default -1). Before opset 13 the
    input is first viewed as a 2-D matrix (dims before ``axis`` times dims
    from ``axis`` on, default axis 1) and each *row* is normalised: for an
    (N, C, H, W) tensor with axis=1 that is a softmax over all C*H*W values,
    not over C. Subtracting the maximum first changes nothing mathematically
    and keeps ``exp`` from overflowing.
    """
    x = np.asarray(input)
    ndim = max(x.ndim, 1)
    if axis is None:
        axis = -1 if opset >= 13 else 1
    if not -ndim <= axis < ndim:
        raise InputError(f"Softmax: axis={axis} is out of range for an input of shape {list(x.shape)}")
    axis %= ndim
    if opset >= 13:
        shifted = x - x.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=axis, keepdims=True)
    rows = math.prod(x.shape[:axis])
    matrix = x.reshape(rows, -1)
    return Softmax(matrix, axis=1, opset=13).reshape(x.shape)


# Rows up to this long take the kernel pair; longer ones NumPy's vectorised reductions (see cpu_activation).
SOFTMAX_ROW_MAX = 32


@register("Softmax", backend="numba")
def Softmax_numba(input, *, axis=None, opset=13):
    x = input
    if not _is_float32(x) or x.ndim == 0 or x.size == 0:
        return Softmax(x, axis=axis, opset=opset)
    ndim = x.ndim
    if axis is None:
        axis = -1 if opset >= 13 else 1
    if not -ndim <= axis < ndim:
        return Softmax(x, axis=axis, opset=opset)  # the reference raises the error
    axis %= ndim
    # Rows are the last axis (opset 13+) or everything from ``axis`` on (before 13, the 2-D view).
    if opset >= 13 and axis != ndim - 1:
        return Softmax(x, axis=axis, opset=opset)
    row = math.prod(x.shape[axis:])
    if row > SOFTMAX_ROW_MAX:
        return Softmax(x, axis=axis, opset=opset)
    from ..kernels import cpu_activation

    matrix = np.ascontiguousarray(x).reshape(-1, row)
    return cpu_activation.softmax_rows(matrix).reshape(x.shape)


@register("Clip")
def Clip(input, min=None, max=None):
    """Limit every value to ``[min, max]``; a missing bound means no limit on that side.

    Before opset 11 the bounds are attributes (floats, defaults -/+ the
    largest float); from opset 11 on they are optional scalar inputs. The
    parameters are named like both, so either form lands in ``min``/``max``
    and no ``opset`` is needed. (ReLU6 exports as ``Clip(x, 0, 6)``.)
    """
    x = np.asarray(input)
    bounds = []
    for name, bound in (("min", min), ("max", max)):
        if bound is not None:
            bound = np.asarray(bound)
            if bound.size != 1:
                raise InputError(f"Clip: {name} must be a scalar, got shape {list(bound.shape)}")
            bound = bound.reshape(()).astype(x.dtype)
        bounds.append(bound)
    lo, hi = bounds
    out = x
    if lo is not None:
        out = np.maximum(out, lo)
    if hi is not None:
        out = np.minimum(out, hi)
    return out.copy() if out is x else out
