"""Normalisation layers in their inference form.

At inference BatchNormalization is a fixed per-channel affine map,
y = (x - mean) / sqrt(var + eps) * scale + B; the session folds it into the
preceding convolution's weights whenever one precedes it (``minicnn.optimize``),
so this function only runs for a BatchNorm that follows something else.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register


def _per_channel(v: np.ndarray, ndim: int) -> np.ndarray:
    return v.reshape(1, -1, *([1] * (ndim - 2)))


@register("BatchNormalization")
def BatchNormalization(X, scale, B, input_mean, input_var, *, epsilon=1e-5, momentum=0.9, spatial=1,
                       training_mode=0):
    """Normalise each channel with the stored statistics (first output only)."""
    if training_mode:
        raise UnsupportedOpError("BatchNormalization with training_mode=1 is not supported (inference only)")
    if not spatial:
        raise UnsupportedOpError("BatchNormalization with spatial=0 (opset < 9) is not supported")
    c = X.shape[1] if X.ndim > 1 else 1
    for name, v in (("scale", scale), ("B", B), ("mean", input_mean), ("var", input_var)):
        if v.size != c:
            raise InputError(f"BatchNormalization: {name} has {v.size} values for {c} channels")
    def ch(v):
        return _per_channel(v, X.ndim)

    # The definition, in this order: rewriting it as x * a + (B - mean * a) would cancel digits near zero.
    return ((X - ch(input_mean)) / np.sqrt(ch(input_var) + X.dtype.type(epsilon)) * ch(scale) + ch(B)).astype(X.dtype)


@register("InstanceNormalization")
def InstanceNormalization(input, scale, B, *, epsilon=1e-5):
    """Normalise each (sample, channel) plane by its own mean and variance."""
    axes = tuple(range(2, input.ndim))
    mean = input.mean(axis=axes, keepdims=True)
    var = input.var(axis=axes, keepdims=True)
    y = (input - mean) / np.sqrt(var + epsilon)
    return (y * _per_channel(scale, input.ndim) + _per_channel(B, input.ndim)).astype(input.dtype)
