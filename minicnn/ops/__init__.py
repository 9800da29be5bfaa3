"""minicnn's ops, one module per family.

Importing this package registers every op in ``registry.OPS``. Each module
holds the readable NumPy reference of its ops and, where time is spent, the
fast path beside it (the Numba kernels themselves live in ``minicnn.kernels``).
"""

from . import (  # noqa: F401  (imported for their registrations)
    activation,
    blocked,
    conv,
    elementwise,
    gemm,
    normalization,
    pool,
    resize,
    shape,
)
from .registry import OPS, get_op, register, supported_ops

__all__ = ["OPS", "get_op", "register", "supported_ops"]
