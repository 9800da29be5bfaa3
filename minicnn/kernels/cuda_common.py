"""What every ``cuda_*`` kernel file shares: launch sizes, activation codes, small helpers.

This module imports ``numba.cuda``, so (like every ``minicnn.kernels.cuda_*``
file) it is imported only by ``minicnn.cuda_backend`` and the benchmarks,
never when ``import minicnn`` runs: a machine without a GPU or the CUDA
toolkit must still load the package.

Conventions of the kernel files (borrowed from llm.c's ``dev/cuda``):

* a module docstring listing versions 1..N and what changed between them;
* a NumPy reference with the same arguments, the ground truth;
* the kernels, then ``run_*`` launchers taking device arrays;
* ``validate()``: runs every version on small random inputs and compares it
  with the reference, returning ``{version: max abs error}`` or raising
  ``KernelMismatchError``. ``python -m minicnn.kernels.cuda_sgemm`` runs it.

Everything works under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``),
which runs each GPU thread as a Python thread: correct but slow, so the
validation shapes are tiny.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from numba import cuda, float32

# Threads per block for the one-thread-per-element kernels. 128 keeps the
# simulator quick (each thread is a Python thread) and is a fine size on a GPU.
THREADS = 128
# Grid-stride loops let a kernel cover any size with a bounded grid; 4096 blocks
# of 128 threads fill every SM of an H100 (132 SMs) many times over.
MAX_BLOCKS = 4096

# Activation codes shared by the epilogue, the depthwise kernel and the backend.
ACT_NONE, ACT_RELU, ACT_LEAKY_RELU, ACT_PRELU, ACT_SIGMOID, ACT_CLIP = range(6)
ACTIVATION_CODES = {"": ACT_NONE, "Relu": ACT_RELU, "LeakyRelu": ACT_LEAKY_RELU, "PRelu": ACT_PRELU,
                    "Sigmoid": ACT_SIGMOID, "Clip": ACT_CLIP}


class KernelMismatchError(AssertionError):
    """A kernel version disagrees with its NumPy reference beyond the stated tolerance."""


def blocks_for(n: int, threads: int = THREADS) -> int:
    """Blocks for a grid-stride kernel over ``n`` elements (at least 1, at most MAX_BLOCKS)."""
    return max(1, min(MAX_BLOCKS, math.ceil(n / threads)))


@lru_cache(maxsize=None)
def placeholder(ndim: int = 1) -> object:
    """A one-element ``ndim``-D device array passed where an optional input (bias, slope, residual) is absent.

    Kernels take a flag saying whether to read it; numba still needs an array
    of the right type and rank in that argument slot.
    """
    return cuda.to_device(np.zeros((1,) * ndim, dtype=np.float32))


def check_close(name: str, got: np.ndarray, want: np.ndarray, atol: float, rtol: float) -> float:
    """Max abs error of ``got`` vs ``want``; raises KernelMismatchError beyond ``atol + rtol*|want|``."""
    got = np.asarray(got)
    if got.shape != want.shape:
        raise KernelMismatchError(f"{name}: shape {got.shape}, reference {want.shape}")
    err = np.abs(got.astype(np.float64) - want)
    if not np.all(np.isfinite(got)) or np.any(err > atol + rtol * np.abs(want)):
        bad = np.where(np.isfinite(err), err, np.inf)
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(bad), err.shape))
        raise KernelMismatchError(
            f"{name}: max abs error {float(bad[worst]):.3g} at {worst} "
            f"(got {float(got[worst]):.6g}, reference {float(want[worst]):.6g}; tolerance atol={atol}, rtol={rtol})"
        )
    return float(err.max()) if err.size else 0.0


def validation_main(kernel: str, validate) -> None:
    """What ``python -m minicnn.kernels.cuda_<kernel>`` runs: ``validate()``, one line per version.

    Says what is missing (and exits) when there is neither a GPU nor the simulator.
    """
    from ..cuda_backend import check_available
    from ..errors import BackendUnavailableError

    try:
        check_available()
    except BackendUnavailableError as exc:
        raise SystemExit(str(exc)) from exc
    for version, error in validate().items():
        name = f"v{version}" if isinstance(version, int) else version
        print(f"{kernel} {name}: OK, max abs error {error:.2e}")


@cuda.jit(device=True)
def activate(v, code, alpha, slope, lo, hi):
    """Apply the activation ``code`` to one value (``slope``: this element's PRelu slope)."""
    if code == ACT_RELU:
        return max(v, float32(0.0))
    if code == ACT_LEAKY_RELU:
        return v if v >= 0 else v * alpha
    if code == ACT_PRELU:
        return v if v >= 0 else v * slope
    if code == ACT_SIGMOID:
        return float32(1.0) / (float32(1.0) + math.exp(-v))
    if code == ACT_CLIP:
        return min(max(v, lo), hi)
    return v


def activate_reference(v: np.ndarray, activation: str, alpha: float = 0.01, slope: np.ndarray | None = None,
                       lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """NumPy twin of ``activate``; ``slope`` must broadcast against ``v``."""
    if activation == "Relu":
        return np.maximum(v, 0)
    if activation == "LeakyRelu":
        return np.where(v >= 0, v, v * alpha)
    if activation == "PRelu":
        return np.where(v >= 0, v, v * slope)
    if activation == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-v))
    if activation == "Clip":
        return np.clip(v, lo, hi)
    return v
