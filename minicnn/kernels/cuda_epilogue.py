"""The convolution epilogue on the GPU: bias, optional residual, activation, in one pass.

After the matrix product of a convolution, every output value still needs
its channel's bias, perhaps a skip connection, and the activation. Doing the
three in one kernel reads and writes the tensor once instead of three times:

    y[n, c, p] = act(x[n, c, p] + bias[c] + residual[n, c, p])

with ``act`` one of Relu, LeakyRelu(alpha), PRelu(slope[c]), Sigmoid,
Clip(lo, hi) or none (codes in ``cuda_common``). The residual is added
*before* the activation, as onnxruntime's FusedConv does with its ``Z`` input.
Without bias and residual the same kernel is a standalone activation, which is
how the backend runs a Relu or PRelu that follows something other than a Conv.
``x`` and ``y`` may be the same array (in place).

Versions:

1. one thread per element over the flat tensor; each thread recovers its
   channel with a division, ``c = (e // inner) % C``.
2. a 2-D grid: ``blockIdx.y`` walks the (n, c) planes, so the channel is
   known per block and bias/slope are read once per thread, not per element;
   no division in the loop.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32

from .cuda_common import (ACT_PRELU, ACTIVATION_CODES, MAX_BLOCKS, THREADS, activate, activate_reference,
                          blocks_for, check_close, placeholder, validation_main)

VERSIONS = (1, 2)
DEFAULT_VERSION = 2


def epilogue_reference(x: np.ndarray, bias: np.ndarray | None = None, residual: np.ndarray | None = None,
                       activation: str = "", alpha: float = 0.01, slope: np.ndarray | None = None,
                       lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """NumPy reference for ``x[N, C, ...]``; ``bias`` and ``slope`` have one value per channel (or one)."""
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    y = x.astype(np.float64)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    if residual is not None:
        y = y + residual
    if slope is not None:
        slope = np.asarray(slope, dtype=np.float64).reshape(per_channel if np.size(slope) > 1 else ())
    return activate_reference(y, activation, alpha, slope, lo, hi)


@cuda.jit
def epilogue_v1(x, y, channels, inner, bias, has_bias, residual, has_residual,
                code, alpha, slope, per_channel_slope, lo, hi):
    """Version 1: flat grid-stride loop, channel recovered by division."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, x.size, step):
        c = (e // inner) % channels
        v = x[e]
        if has_bias:
            v += bias[c]
        if has_residual:
            v += residual[e]
        s = slope[c] if per_channel_slope else slope[0]
        y[e] = activate(v, code, alpha, s, lo, hi)


@cuda.jit
def epilogue_v2(x, y, channels, inner, bias, has_bias, residual, has_residual,
                code, alpha, slope, per_channel_slope, lo, hi):
    """Version 2: blockIdx.y = (n, c) plane, so per-channel values are loaded once."""
    plane_start = cuda.blockIdx.y
    for plane in range(plane_start, x.size // inner, cuda.gridDim.y):
        c = plane % channels
        b = bias[c] if has_bias else float32(0.0)
        s = slope[c] if per_channel_slope else slope[0]
        base = plane * inner
        for p in range(cuda.grid(1), inner, cuda.gridsize(1)):
            v = x[base + p] + b
            if has_residual:
                v += residual[base + p]
            y[base + p] = activate(v, code, alpha, s, lo, hi)


def run_epilogue(x, y, channels: int, bias=None, residual=None, activation: str = "", alpha: float = 0.01,
                 slope=None, lo: float = -np.inf, hi: float = np.inf, inner: int | None = None,
                 version: int = DEFAULT_VERSION) -> None:
    """``y = act(x + bias + residual)`` on contiguous device arrays viewed as ``(outer, channels, inner)``.

    ``slope`` (device array) has ``channels`` values or one; ``bias`` has
    ``channels`` values; ``residual`` has the shape of ``x``. ``inner``
    defaults to the size of the dims after axis 1 (NCHW: channels on axis 1).
    """
    if activation not in ACTIVATION_CODES:
        raise ValueError(f"epilogue: unknown activation {activation!r}; expected one of {list(ACTIVATION_CODES)}")
    code = ACTIVATION_CODES[activation]
    if code == ACT_PRELU and slope is None:
        raise ValueError("epilogue: PRelu needs a slope")
    size = x.size
    if size == 0:
        return
    if inner is None:
        inner = size // (x.shape[0] * channels)
    flat_x, flat_y = x.reshape(size), y.reshape(size)
    dummy = placeholder()
    bias_arg = bias if bias is not None else dummy
    residual_arg = residual.reshape(size) if residual is not None else dummy
    slope_arg = slope if slope is not None else dummy
    args = (flat_x, flat_y, channels, inner, bias_arg, bias is not None, residual_arg, residual is not None,
            code, np.float32(alpha), slope_arg, slope is not None and slope.size > 1,
            np.float32(lo), np.float32(hi))
    if version == 1:
        epilogue_v1[blocks_for(size), THREADS](*args)
    elif version == 2:
        planes = size // inner
        grid = (blocks_for(inner), min(planes, 65535, MAX_BLOCKS))
        epilogue_v2[grid, THREADS](*args)
    else:
        raise ValueError(f"epilogue has versions {VERSIONS}, not {version!r}")


def validate(shape=(2, 3, 5, 7), versions=VERSIONS, seed: int = 0) -> dict[int, float]:
    """Every version, every activation, with and without bias/residual; tolerance 1e-5 abs + 1e-5 rel."""
    rng = np.random.default_rng(seed)
    c = shape[1]
    x = rng.standard_normal(shape).astype(np.float32)
    bias = rng.standard_normal(c).astype(np.float32)
    residual = rng.standard_normal(shape).astype(np.float32)
    slope = (0.1 * rng.standard_normal(c)).astype(np.float32)
    cases = [
        dict(activation="Relu", bias=bias),
        dict(activation="LeakyRelu", alpha=0.1, bias=bias, residual=residual),
        dict(activation="PRelu", slope=slope, bias=bias),
        dict(activation="PRelu", slope=slope[:1]),
        dict(activation="Sigmoid", residual=residual),
        dict(activation="Clip", lo=0.0, hi=0.5, bias=bias),
        dict(activation="", bias=bias, residual=residual),
    ]
    dx = cuda.to_device(x)
    worst = {v: 0.0 for v in versions}
    for case in cases:
        want = epilogue_reference(x, **case)
        device_case = {k: cuda.to_device(v) if isinstance(v, np.ndarray) else v for k, v in case.items()}
        for v in versions:
            dy = cuda.device_array(shape, dtype=np.float32)
            run_epilogue(dx, dy, c, version=v, **device_case)
            label = f"epilogue v{v} {case['activation'] or 'identity'} " + ",".join(
                k for k in ("bias", "residual", "slope") if k in case)
            worst[v] = max(worst[v], check_close(label, dy.copy_to_host(), want, 1e-5, 1e-5))
    return worst


if __name__ == "__main__":
    validation_main("epilogue", validate)
