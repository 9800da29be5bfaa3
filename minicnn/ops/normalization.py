"""Normalisation layers, inference form: BatchNormalization and InstanceNormalization.

At inference ``BatchNormalization`` uses the mean and variance stored
during training, so per channel ``c`` it is a fixed affine map::

    y = scale[c] * (x - mean[c]) / sqrt(var[c] + epsilon) + B[c]
      = a[c] * x + b[c]   with a = scale / sqrt(var + epsilon), b = B - mean * a

which is why the optimiser can fold it into the preceding convolution
(``minicnn.optimize.fold_batchnorm``); the op here runs only where nothing
precedes it to fold into. Training mode (which updates the running
statistics and has extra outputs) is not supported.

``InstanceNormalization`` normalises each (image, channel) plane by its own
mean and variance, computed on the fly, then scales and shifts per channel.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register


def _channel_params(X: np.ndarray, op: str, **params) -> list[np.ndarray]:
    """Each parameter as a float64 vector of C values, reshaped to broadcast over (N, C, spatial...)."""
    if X.ndim < 2:
        raise InputError(f"{op}: input {list(X.shape)} should be (N, C, ...)")
    channels = X.shape[1]
    shaped = []
    for name, p in params.items():
        p = np.asarray(p)
        if p.size != channels:
            raise InputError(f"{op}: {name}{list(p.shape)} should hold one value per channel ({channels}, "
                             f"input {list(X.shape)})")
        shaped.append(p.astype(np.float64).reshape((channels,) + (1,) * (X.ndim - 2)))
    return shaped


@register("BatchNormalization")
def BatchNormalization(X, scale, B, input_mean, input_var, *, epsilon=1e-5, momentum=0.9, training_mode=0,
                       spatial=1):
    """``a[c] * x + b[c]`` with the stored statistics (see the module docstring); only output Y.

    ``momentum`` only matters in training; ``spatial`` (opset < 9) must be 1.
    """
    if training_mode:
        raise UnsupportedOpError("BatchNormalization with training_mode=1 is not supported (inference only)")
    if not spatial:
        raise UnsupportedOpError("BatchNormalization with spatial=0 (per-activation statistics) is not supported")
    X = np.asarray(X)
    gamma, beta, mean, var = _channel_params(X, "BatchNormalization", scale=scale, B=B, input_mean=input_mean,
                                             input_var=input_var)
    a = gamma / np.sqrt(var + epsilon)
    b = beta - mean * a
    return X * a.astype(X.dtype) + b.astype(X.dtype)


@register("InstanceNormalization")
def InstanceNormalization(input, scale, B, *, epsilon=1e-5):
    """Normalise each (image, channel) plane by its own mean and variance, then ``scale * x + B`` per channel."""
    X = np.asarray(input)
    if X.ndim < 3:
        raise InputError(f"InstanceNormalization: input {list(X.shape)} should be (N, C, spatial...)")
    gamma, beta = _channel_params(X, "InstanceNormalization", scale=scale, B=B)
    axes = tuple(range(2, X.ndim))
    x64 = X.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    return ((x64 - mean) / np.sqrt(var + epsilon) * gamma + beta).astype(X.dtype)
