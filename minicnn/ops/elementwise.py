"""Element-wise arithmetic, comparisons and reductions.

ONNX's "multidirectional broadcasting" is exactly NumPy's: shapes are lined
up at their last dims, and a dim of 1 stretches to match the other. So
``Add`` of an (N, C, H, W) tensor and a (C, 1, 1) bias is ``X + B``. The
only care needed is dtype: ONNX requires both inputs to have the same type
and keeps it, while NumPy would promote (int32 / int32 to float64, say).
Integer ``Div`` truncates toward zero as C does (onnxruntime computes
``-7 / 2 = -3``), not toward minus infinity as NumPy's ``//`` does.

The reductions (ReduceMean, ReduceSum, ReduceMax) took their ``axes`` as an
attribute before, and as an optional second input after, a certain opset
(13 for ReduceSum, 18 for the others). The parameter is named ``axes`` either
way, so both forms arrive in the same place.

None of these ops has a Numba fast path: NumPy's ufuncs already make one
pass over memory, and in the face models these ops run on small tensors or
are folded away at load time (the pre-processing ``Sub``/``Mul`` of a
constant run once per image).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from .registry import register


def _broadcast_check(op: str, *arrays) -> None:
    """Raise InputError naming every shape when the inputs do not broadcast."""
    try:
        np.broadcast_shapes(*(np.shape(a) for a in arrays))
    except ValueError:
        shapes = " and ".join(str(list(np.shape(a))) for a in arrays)
        raise InputError(f"{op}: shapes {shapes} do not broadcast (trailing dims must be equal or 1)") from None


def _same_dtype(op: str, A, B) -> np.dtype:
    a, b = np.asarray(A).dtype, np.asarray(B).dtype
    if a != b:
        raise InputError(f"{op}: both inputs must have the same dtype (ONNX does not promote), got {a} and {b}")
    return a


def _binary(op: str, A, B, fn):
    _broadcast_check(op, A, B)
    dtype = _same_dtype(op, A, B)
    return np.asarray(fn(A, B)).astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# Arithmetic
# ---------------------------------------------------------------------------
@register("Add")
def Add(A, B):
    return _binary("Add", A, B, np.add)


@register("Sub")
def Sub(A, B):
    return _binary("Sub", A, B, np.subtract)


@register("Mul")
def Mul(A, B):
    return _binary("Mul", A, B, np.multiply)


def _truncating_divide(A, B):
    """Integer division rounding toward zero (C semantics): -7 / 2 = -3, 7 / -2 = -3."""
    if np.any(np.asarray(B) == 0):
        raise InputError("Div: integer division by zero")
    quotient = np.abs(A) // np.abs(B)
    return np.where((np.asarray(A) < 0) != (np.asarray(B) < 0), -quotient, quotient)


@register("Div")
def Div(A, B):
    """``A / B``; for integer tensors the quotient is truncated toward zero."""
    if np.issubdtype(np.asarray(A).dtype, np.integer):
        return _binary("Div", A, B, _truncating_divide)
    return _binary("Div", A, B, np.divide)


@register("Pow")
def Pow(X, Y):
    """``X ** Y``. Since opset 12 Y may have another dtype than X; the result has X's dtype."""
    _broadcast_check("Pow", X, Y)
    X = np.asarray(X)
    Y = np.asarray(Y)
    if np.issubdtype(X.dtype, np.integer) and np.issubdtype(Y.dtype, np.integer):
        if np.any(Y < 0):
            raise InputError("Pow: an integer base with a negative integer exponent is not an integer")
        return np.power(X, Y).astype(X.dtype, copy=False)
    return np.power(X, Y.astype(X.dtype) if np.issubdtype(X.dtype, np.floating) else Y).astype(X.dtype, copy=False)


@register("Sqrt")
def Sqrt(X):
    with np.errstate(invalid="ignore"):  # sqrt of a negative number is NaN, as in onnxruntime
        return np.sqrt(X)


@register("Neg")
def Neg(X):
    return np.negative(X)


@register("Reciprocal")
def Reciprocal(X):
    with np.errstate(divide="ignore"):  # 1/0 = inf
        return np.reciprocal(X)


# ---------------------------------------------------------------------------
# Variadic: any number of inputs, all broadcast together
# ---------------------------------------------------------------------------
def _variadic(op: str, inputs, fn):
    if not inputs:
        raise InputError(f"{op} needs at least one input")
    _broadcast_check(op, *inputs)
    dtype = np.asarray(inputs[0]).dtype
    for other in inputs[1:]:
        _same_dtype(op, inputs[0], other)
    result = np.broadcast_to(inputs[0], np.broadcast_shapes(*(np.shape(a) for a in inputs)))
    for other in inputs[1:]:
        result = fn(result, other)
    return np.array(result, dtype=dtype)  # a fresh array (the broadcast view is read-only)


@register("Max")
def Max(*data_0):
    return _variadic("Max", data_0, np.maximum)


@register("Min")
def Min(*data_0):
    return _variadic("Min", data_0, np.minimum)


@register("Sum")
def Sum(*data_0):
    return _variadic("Sum", data_0, np.add)


@register("Mean")
def Mean(*data_0):
    total = _variadic("Mean", data_0, np.add)
    return (total / total.dtype.type(len(data_0))).astype(total.dtype, copy=False)


# ---------------------------------------------------------------------------
# Comparisons and selection (the small shape-computing subgraphs use these)
# ---------------------------------------------------------------------------
@register("Equal")
def Equal(A, B):
    _broadcast_check("Equal", A, B)
    return np.equal(A, B)


@register("Less")
def Less(A, B):
    _broadcast_check("Less", A, B)
    return np.less(A, B)


@register("Greater")
def Greater(A, B):
    _broadcast_check("Greater", A, B)
    return np.greater(A, B)


@register("Not")
def Not(X):
    return np.logical_not(X)


@register("Where")
def Where(condition, X, Y):
    """``X`` where ``condition`` is true, ``Y`` elsewhere (all three broadcast together)."""
    _broadcast_check("Where", condition, X, Y)
    dtype = _same_dtype("Where", X, Y)
    return np.where(np.asarray(condition, dtype=bool), X, Y).astype(dtype, copy=False)


# ---------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------
def _reduce(op: str, fn, data, axes, keepdims, noop_with_empty_axes):
    """Shared logic: resolve ``axes`` (attribute list or int64 tensor), then reduce.

    No axes means "every axis", unless ``noop_with_empty_axes=1``, in which
    case the input is returned unchanged.
    """
    x = np.asarray(data)
    axes_list = [] if axes is None else [int(a) for a in np.asarray(axes).reshape(-1)]
    if not axes_list:
        if noop_with_empty_axes:
            return x.copy()
        axes_tuple = tuple(range(x.ndim))
    else:
        for a in axes_list:
            if not -x.ndim <= a < max(x.ndim, 1):
                raise InputError(f"{op}: axis {a} is out of range for an input of shape {list(x.shape)}")
        axes_tuple = tuple(sorted({a % max(x.ndim, 1) for a in axes_list}))
    if x.size == 0 and op == "ReduceMax":
        raise InputError(f"{op}: cannot take the maximum over an empty tensor of shape {list(x.shape)}")
    return np.asarray(fn(x, axis=axes_tuple, keepdims=bool(keepdims))).astype(x.dtype, copy=False)


@register("ReduceSum")
def ReduceSum(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
    """Sum over ``axes`` (an attribute before opset 13, an optional input from 13 on)."""
    return _reduce("ReduceSum", np.sum, data, axes, keepdims, noop_with_empty_axes)


@register("ReduceMean")
def ReduceMean(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
    """Mean over ``axes`` (an attribute before opset 18, an optional input from 18 on)."""
    return _reduce("ReduceMean", np.mean, data, axes, keepdims, noop_with_empty_axes)


@register("ReduceMax")
def ReduceMax(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
    """Maximum over ``axes`` (an attribute before opset 18, an optional input from 18 on)."""
    return _reduce("ReduceMax", np.max, data, axes, keepdims, noop_with_empty_axes)
