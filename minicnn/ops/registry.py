"""The op registry: ONNX op type -> implementation, per backend.

Every op is a plain function named like the ONNX op. Its positional
parameters are the node's inputs in ONNX order (``None`` for an omitted
optional input); its keyword parameters are the node's attributes, spelled as
in the ONNX spec, with the spec's defaults. It returns one array, or a tuple
of arrays for an op with several outputs. An op whose meaning changed between
opsets (Softmax, Pad, Slice, Clip, ...) also declares a keyword ``opset``; the
session passes the model's opset to exactly those.

Two implementations may be registered under one op type:

* ``"numpy"``: the readable reference. Every op has one.
* ``"numba"``: a fast path with the *same signature*, validated against the
  reference (and onnxruntime) in the tests. Ops where NumPy is already as fast
  as it gets (Reshape, Concat, ...) have no fast path, and the ``numba``
  backend runs their reference: that is the design, not a fallback.

A fast path may also register a *preparer* (:func:`register_preparer`): the
part of the op that depends only on shapes and weights (parsing attributes,
checks, choosing a kernel, laying out weights), done once per input shape
instead of at every run. Sessions use it; calling the op itself never needs it.

The CUDA backend keeps its own table in ``minicnn.cuda_backend``.
"""

from __future__ import annotations

import functools
import inspect
from typing import Callable

BACKENDS = ("numpy", "numba")

# op_type -> {backend: function}
OPS: dict[str, dict[str, Callable]] = {}


def _registrar(tables: dict, op_type: str, backend: str, what: str) -> Callable[[Callable], Callable]:
    """A decorator that files a function in ``tables[op_type][backend]``, refusing a second one."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    def decorator(fn: Callable) -> Callable:
        table = tables.setdefault(op_type, {})
        if backend in table:
            raise ValueError(f"{op_type} already has a {backend} {what}: {table[backend].__qualname__}")
        table[backend] = fn
        return fn

    return decorator


def register(op_type: str, backend: str = "numpy") -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as the ``backend`` implementation of ``op_type``."""
    return _registrar(OPS, op_type, backend, "implementation")


# op_type -> {backend: preparer}
PREPARERS: dict[str, dict[str, Callable]] = {}


def register_preparer(op_type: str, backend: str = "numba") -> Callable[[Callable], Callable]:
    """Decorator: register ``prepare`` for the ``backend`` implementation of ``op_type``.

    A session's plan calls ``prepare(args, constant, **attributes)`` once, at
    the first run at a new input shape, right after the op itself ran on
    ``args``. ``constant[i]`` says whether input ``i`` is the same array at
    every run of the plan (a weight, or a tensor folded for this shape).
    ``prepare`` returns ``run(*args)``, which computes exactly what the op
    computes for inputs of the shapes and dtypes seen here and the same
    constant inputs, or None when there is nothing to prepare (the plan then
    calls the op as usual). The plan never calls ``run`` with other shapes.
    """
    return _registrar(PREPARERS, op_type, backend, "preparer")


def get_preparer(op_type: str, backend: str = "numpy") -> Callable | None:
    """The preparer registered for exactly this op type and backend, or None."""
    return PREPARERS.get(op_type, {}).get(backend)


def get_op(op_type: str, backend: str = "numpy") -> Callable | None:
    """The implementation of ``op_type`` for ``backend`` (the reference if no fast path), or None."""
    table = OPS.get(op_type)
    if table is None:
        return None
    return table.get(backend) or table["numpy"]


def supported_ops() -> list[str]:
    """Sorted list of every ONNX op type minicnn can run (internal fused ops excluded)."""
    return sorted(op for op in OPS if not op.startswith("_"))


@functools.lru_cache(maxsize=None)
def takes_opset(fn: Callable) -> bool:
    """Whether ``fn`` wants the model's opset passed as ``opset=`` (cached: asked for every node run)."""
    return "opset" in inspect.signature(fn).parameters
