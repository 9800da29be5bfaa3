"""Binary elementwise ops on the GPU: Add, Sub, Mul, Div with NumPy broadcasting.

``y = a (op) b`` where ``a`` and ``b`` broadcast to ``y``'s shape as in NumPy
(and ONNX): align shapes on the right, a dimension of 1 repeats. The zoo
needs three cases in practice: two tensors of the same shape (residual
additions), a tensor and a scalar (``x - 127.5``, ``x * 0.0078125``), and a
tensor and a per-channel constant of shape ``(1, C, 1, 1)`` or ``(C, 1, 1)``.

Versions:

1. general broadcasting, rank <= 6: both operands carry strides with 0 on
   broadcast dimensions; each thread turns its flat output index into
   coordinates (one division per dimension) and each coordinate into two
   offsets. Handles any shapes NumPy would.
2. the three common cases without any coordinate arithmetic: same shape
   (``b[e]``), scalar (``b[0]``) and per-channel (``b[(e // inner) % C]``).
   ``run_binary`` picks version 2 when ``b`` has one of these forms relative
   to ``a`` (``a`` having the output's shape), version 1 otherwise.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .cuda_common import THREADS, blocks_for, check_close, validation_main

VERSIONS = (1, 2)
MAX_RANK = 6
OPS = {"Add": 0, "Sub": 1, "Mul": 2, "Div": 3}
SAME_SHAPE, SCALAR, PER_CHANNEL = 0, 1, 2


def binary_reference(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NumPy's own broadcasting, the definition the kernels must follow."""
    return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](a, b)


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Element strides of a C-contiguous ``shape`` read as ``out_shape``, left-padded to MAX_RANK.

    A dimension that broadcasts (size 1, or missing on the left) gets stride 0.
    """
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step if size != 1 else 0)
        step *= size
    strides += [0] * (MAX_RANK - len(strides))
    return tuple(reversed(strides))


@cuda.jit(device=True)
def _apply(op, x, y):
    if op == 0:
        return x + y
    if op == 1:
        return x - y
    if op == 2:
        return x * y
    return x / y


@cuda.jit
def binary_v1(a, b, y, op, out_shape, a_strides, b_strides):
    """Version 1: general broadcasting through per-operand strides (flat arrays, rank padded to 6)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, y.size, step):
        rest = e
        a_off = 0
        b_off = 0
        for d in range(MAX_RANK - 1, -1, -1):
            coord = rest % out_shape[d]
            rest //= out_shape[d]
            a_off += coord * a_strides[d]
            b_off += coord * b_strides[d]
        y[e] = _apply(op, a[a_off], b[b_off])


@cuda.jit
def binary_v2(a, b, y, op, mode, channels, inner):
    """Version 2: ``a`` has the output's shape; ``b`` is same-shape, scalar or per-channel (flat arrays)."""
    start, step = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, y.size, step):
        if mode == SAME_SHAPE:
            other = b[e]
        elif mode == SCALAR:
            other = b[0]
        else:
            other = b[(e // inner) % channels]
        y[e] = _apply(op, a[e], other)


def fast_case(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> tuple[int, int, int] | None:
    """``(mode, channels, inner)`` if version 2 handles ``a (op) b``, else None.

    Per-channel means ``b`` is all ones but for one dimension ``d`` (after right
    alignment) matching ``a``'s: then ``b`` is indexed by ``(e // inner) % C``
    with ``C = a_shape[d]`` and ``inner`` the product of ``a``'s later dims.
    """
    if len(b_shape) > len(a_shape):
        return None
    if tuple(b_shape) == tuple(a_shape):
        return SAME_SHAPE, 1, 1
    if int(np.prod(b_shape)) == 1:
        return SCALAR, 1, 1
    aligned = (1,) * (len(a_shape) - len(b_shape)) + tuple(b_shape)
    big = [d for d, size in enumerate(aligned) if size != 1]
    if len(big) == 1 and aligned[big[0]] == a_shape[big[0]]:
        d = big[0]
        return PER_CHANNEL, a_shape[d], int(np.prod(a_shape[d + 1:], dtype=np.int64))
    return None


def run_binary(op: str, a, b, y, version: int | None = None) -> None:
    """``y = a (op) b`` on device arrays; ``version=None`` picks 2 where it applies, else 1."""
    if op not in OPS:
        raise ValueError(f"unknown elementwise op {op!r}; expected one of {list(OPS)}")
    out_shape = tuple(y.shape)
    if len(out_shape) > MAX_RANK:
        raise ValueError(f"{op}: rank {len(out_shape)} exceeds the kernel's limit of {MAX_RANK}")
    fast = fast_case(tuple(a.shape), tuple(b.shape)) if tuple(a.shape) == out_shape else None
    if version is None:
        version = 2 if fast is not None else 1
    flat_a, flat_b, flat_y = a.reshape(a.size), b.reshape(b.size), y.reshape(y.size)
    launch = (blocks_for(y.size), THREADS)
    if version == 1:
        padded = (1,) * (MAX_RANK - len(out_shape)) + out_shape
        binary_v1[launch](flat_a, flat_b, flat_y, OPS[op], padded,
                          broadcast_strides(tuple(a.shape), out_shape), broadcast_strides(tuple(b.shape), out_shape))
    elif version == 2:
        if fast is None:
            raise ValueError(f"{op} v2 handles same-shape, scalar or per-channel b; got {a.shape} and {b.shape}")
        binary_v2[launch](flat_a, flat_b, flat_y, OPS[op], *fast)
    else:
        raise ValueError(f"elementwise has versions {VERSIONS}, not {version!r}")


# (a shape, b shape): same shape, scalar, per-channel (two spellings), and general broadcasts.
VALIDATION_CASES = (
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((2, 3, 4, 5), ()),
    ((2, 3, 4, 5), (1, 3, 1, 1)),
    ((2, 3, 4, 5), (3, 1, 1)),
    ((2, 3, 4, 5), (5,)),
    ((3, 1, 5), (1, 4, 1)),
    ((1, 4), (3, 1, 1)),
)


def validate(cases=VALIDATION_CASES, seed: int = 0) -> dict[int, float]:
    """Every op on every case, version 1 always and version 2 where it applies; tolerance 1e-6 rel."""
    rng = np.random.default_rng(seed)
    worst = {v: 0.0 for v in VERSIONS}
    for a_shape, b_shape in cases:
        a = rng.standard_normal(a_shape).astype(np.float32)
        b = (rng.random(b_shape) + 0.5).astype(np.float32)  # away from 0, for Div
        out_shape = np.broadcast_shapes(a_shape, b_shape)
        da, db = cuda.to_device(a), cuda.to_device(b.reshape(b_shape) if b_shape else b.reshape(1))
        for op in OPS:
            want = binary_reference(op, a.astype(np.float64), b.astype(np.float64))
            versions = [1] + ([2] if out_shape == a_shape and fast_case(a_shape, b_shape) is not None else [])
            for v in versions:
                dy = cuda.device_array(out_shape, dtype=np.float32)
                run_binary(op, da, db, dy, version=v)
                label = f"{op} v{v} {list(a_shape)} with {list(b_shape)}"
                worst[v] = max(worst[v], check_close(label, dy.copy_to_host(), want, 1e-6, 1e-6))
    return worst


if __name__ == "__main__":
    validation_main("elementwise", validate)
