"""Element-wise arithmetic, comparisons and reductions.

ONNX's "multidirectional broadcasting" is exactly NumPy's broadcasting, so
``Add`` is ``A + B``. The two places where ONNX and NumPy differ are spelled
out: integer division truncates toward zero in ONNX (NumPy's ``//`` floors),
and reductions take their axes from an attribute in older opsets and from an
input in newer ones.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .registry import register


def _broadcast(op: str, A, B):
    try:
        np.broadcast_shapes(A.shape, B.shape)
    except ValueError:
        raise InputError(f"{op}: shapes {list(A.shape)} and {list(B.shape)} do not broadcast") from None


@register("Add")
def Add(A, B):
    _broadcast("Add", A, B)
    return A + B


@register("Sub")
def Sub(A, B):
    _broadcast("Sub", A, B)
    return A - B


@register("Mul")
def Mul(A, B):
    _broadcast("Mul", A, B)
    return A * B


@register("Div")
def Div(A, B):
    """A / B; for integers the quotient is truncated toward zero (C semantics), not floored."""
    _broadcast("Div", A, B)
    if np.issubdtype(A.dtype, np.integer):
        q = np.abs(A) // np.abs(B)
        return (np.sign(A) * np.sign(B) * q).astype(A.dtype)
    return A / B


@register("Pow")
def Pow(X, Y):
    """X ** Y; the result keeps X's type."""
    return np.power(X, Y).astype(X.dtype)


@register("Sqrt")
def Sqrt(X):
    return np.sqrt(X)


@register("Neg")
def Neg(X):
    return -X


@register("Reciprocal")
def Reciprocal(X):
    return (1 / X).astype(X.dtype)


def _variadic(fn, inputs):
    out = inputs[0]
    for x in inputs[1:]:
        out = fn(out, x)
    return out


@register("Max")
def Max(*inputs):
    return _variadic(np.maximum, inputs)


@register("Min")
def Min(*inputs):
    return _variadic(np.minimum, inputs)


@register("Sum")
def Sum(*inputs):
    return _variadic(np.add, inputs)


@register("Mean")
def Mean(*inputs):
    return (_variadic(np.add, inputs) / len(inputs)).astype(inputs[0].dtype)


@register("Equal")
def Equal(A, B):
    return np.equal(A, B)


@register("Less")
def Less(A, B):
    return np.less(A, B)


@register("Greater")
def Greater(A, B):
    return np.greater(A, B)


@register("Not")
def Not(X):
    return np.logical_not(X)


@register("Where")
def Where(condition, X, Y):
    return np.where(condition, X, Y)


def _reduce(fn, data, axes, keepdims, noop_with_empty_axes):
    if axes is None or len(axes) == 0:
        if noop_with_empty_axes:
            return data
        axes = tuple(range(data.ndim))
    axes = tuple(int(a) + data.ndim if a < 0 else int(a) for a in np.atleast_1d(axes))
    return fn(data, axis=axes, keepdims=bool(keepdims))


def _reduce_op(name: str, fn, axes_input_since: int):
    """Register ReduceX: axes an attribute before opset ``axes_input_since``, an input from it on."""

    def op(data, axes=None, *, keepdims=1, noop_with_empty_axes=0, opset=13):
        if opset < axes_input_since and axes is not None and isinstance(axes, np.ndarray):
            raise InputError(f"{name} at opset {opset} takes axes as an attribute, not an input")
        return _reduce(fn, data, axes, keepdims, noop_with_empty_axes).astype(data.dtype)

    op.__name__ = op.__qualname__ = name
    op.__doc__ = (f"{name} over ``axes`` (all axes when empty). ``axes`` is an attribute before opset "
                  f"{axes_input_since} and an optional input since; both arrive as the ``axes`` parameter.")
    return register(name)(op)


ReduceMean = _reduce_op("ReduceMean", np.mean, 18)
ReduceSum = _reduce_op("ReduceSum", np.sum, 13)
ReduceMax = _reduce_op("ReduceMax", np.max, 18)
