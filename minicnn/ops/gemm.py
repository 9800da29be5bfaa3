"""Matrix products: ``Gemm`` (a fully connected layer) and ``MatMul``.

``Gemm`` computes ``alpha * A' @ B' + beta * C`` where ``A'`` is ``A`` or its
transpose (``transA``), likewise ``B'``, and ``C`` (optional) broadcasts to
the (M, N) result. A classifier's last layer is ``Gemm(features, W, b,
transB=1)``: ``W`` is stored (out_features, in_features).

``MatMul`` is NumPy's ``matmul``: 1-D operands are promoted to a matrix and
the added dim removed again; leading dims are batch dims and broadcast.

Both hand the product to BLAS through ``np.matmul``, which is as fast as a
CPU gets, so there is no separate fast path.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .registry import register


@register("Gemm")
def Gemm(A, B, C=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """``alpha * op(A) @ op(B) + beta * C``; A and B must be 2-D."""
    A, B = np.asarray(A), np.asarray(B)
    if A.ndim != 2 or B.ndim != 2:
        raise InputError(f"Gemm: A{list(A.shape)} and B{list(B.shape)} must both be 2-D")
    a = A.T if transA else A
    b = B.T if transB else B
    if a.shape[1] != b.shape[0]:
        raise InputError(f"Gemm: inner dims differ: A{list(A.shape)} (transA={transA}) and "
                         f"B{list(B.shape)} (transB={transB}) give {list(a.shape)} @ {list(b.shape)}")
    dtype = A.dtype.type
    Y = a @ b
    if alpha != 1.0:
        Y = Y * dtype(alpha)
    if C is not None:
        C = np.asarray(C)
        try:
            np.broadcast_shapes(C.shape, Y.shape)
        except ValueError:
            raise InputError(f"Gemm: C{list(C.shape)} does not broadcast to the result {list(Y.shape)}") from None
        Y = Y + (C * dtype(beta) if beta != 1.0 else C).astype(Y.dtype, copy=False)
    return Y


@register("MatMul")
def MatMul(A, B):
    """``A @ B`` with NumPy's rules (batched over leading dims, 1-D operands promoted)."""
    A, B = np.asarray(A), np.asarray(B)
    if A.ndim == 0 or B.ndim == 0:
        raise InputError(f"MatMul: operands must have at least 1 dim, got A{list(A.shape)} and B{list(B.shape)}")
    k_a = A.shape[-1]
    k_b = B.shape[0] if B.ndim == 1 else B.shape[-2]
    if k_a != k_b:
        raise InputError(f"MatMul: inner dims differ: A{list(A.shape)} has {k_a} columns, B{list(B.shape)} has "
                         f"{k_b} rows")
    try:
        return np.matmul(A, B)
    except ValueError:
        raise InputError(f"MatMul: the batch dims of A{list(A.shape)} and B{list(B.shape)} do not broadcast") from None
