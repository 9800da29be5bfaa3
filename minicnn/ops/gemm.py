"""Dense layers: Gemm (the fully connected layer of ONNX exports) and MatMul.

Both are one BLAS call; NumPy's ``@`` already is the fast path.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .registry import register


@register("Gemm")
def Gemm(A, B, C=None, *, alpha=1.0, beta=1.0, transA=0, transB=0):
    """Y = alpha * A' @ B' + beta * C, where A' = A.T if transA (likewise B); C broadcasts to Y."""
    a = A.T if transA else A
    b = B.T if transB else B
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
        raise InputError(f"Gemm: A' {list(a.shape)} @ B' {list(b.shape)} do not multiply "
                         f"(transA={transA}, transB={transB})")
    y = a @ b
    if alpha != 1.0:
        y = y * y.dtype.type(alpha)
    if C is not None:
        y = y + (C * C.dtype.type(beta) if beta != 1.0 else C)
    return y.astype(A.dtype, copy=False)


@register("MatMul")
def MatMul(A, B):
    """NumPy matmul semantics: batched over leading dims, 1-D operands promoted."""
    try:
        return np.matmul(A, B)
    except ValueError:
        raise InputError(f"MatMul: shapes {list(A.shape)} and {list(B.shape)} do not multiply") from None
