"""Activations: element-wise non-linearities, and Softmax.

Each is one line of NumPy, written the way the ONNX spec defines it. In the
zoo models almost every activation directly follows a convolution, where the
session fuses it into the convolution's epilogue (``FusedConv``), so these
standalone versions are rarely on the hot path.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .registry import register


@register("Relu")
def Relu(X):
    """max(x, 0)."""
    return np.maximum(X, X.dtype.type(0))


@register("LeakyRelu")
def LeakyRelu(X, *, alpha=0.01):
    """x for x >= 0, alpha * x below: a small slope keeps negative units alive."""
    return np.where(X >= 0, X, X * X.dtype.type(alpha))


@register("PRelu")
def PRelu(X, slope):
    """LeakyRelu with a learned slope, broadcast against X (typically one value per channel, shape (C,1,1))."""
    try:
        np.broadcast_shapes(slope.shape, X.shape)
    except ValueError:
        raise InputError(f"PRelu slope of shape {list(slope.shape)} does not broadcast to X {list(X.shape)}")
    return np.where(X >= 0, X, X * slope.astype(X.dtype))


@register("Sigmoid")
def Sigmoid(X):
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    e = np.exp(-np.abs(X))
    return np.where(X >= 0, 1 / (1 + e), e / (1 + e)).astype(X.dtype)


@register("Tanh")
def Tanh(X):
    return np.tanh(X)


@register("Exp")
def Exp(X):
    return np.exp(X)


@register("Abs")
def Abs(X):
    return np.abs(X)


@register("HardSigmoid")
def HardSigmoid(X, *, alpha=0.2, beta=0.5):
    """max(0, min(1, alpha * x + beta)): a piecewise-linear sigmoid."""
    return np.clip(X * X.dtype.type(alpha) + X.dtype.type(beta), 0, 1).astype(X.dtype)


@register("HardSwish")
def HardSwish(X):
    """x * HardSigmoid(x) with alpha = 1/6, beta = 0.5 (MobileNetV3)."""
    return X * HardSigmoid(X, alpha=1 / 6, beta=0.5)


@register("Clip")
def Clip(X, min=None, max=None, *, opset=13):
    """Clamp to [min, max] (either bound optional).

    Before opset 11 the bounds were attributes ``min``/``max``; since, they are
    optional inputs. Both arrive here under the same names, so one body serves.
    """
    lo = -np.inf if min is None else min
    hi = np.inf if max is None else max
    return np.clip(X, lo, hi).astype(X.dtype)


@register("Softmax")
def Softmax(X, *, axis=None, opset=13):
    """exp(x) / sum(exp(x)), the max subtracted first so exp never overflows.

    The axis rule changed at opset 13. Before: X is viewed as a 2-D matrix
    [prod(shape[:axis]), prod(shape[axis:])] (axis default 1) and each row is
    normalised, so the sum runs over *all* trailing dims. Since 13: the sum
    runs over the one dimension ``axis`` (default -1), like ``torch.softmax``.
    """
    if opset < 13:
        axis = 1 if axis is None else axis
        axis = axis + X.ndim if axis < 0 else axis
        rows = X.reshape(int(np.prod(X.shape[:axis], dtype=np.int64)), -1)
        return Softmax(rows, axis=-1, opset=13).reshape(X.shape)
    axis = -1 if axis is None else axis
    e = np.exp(X - X.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)
