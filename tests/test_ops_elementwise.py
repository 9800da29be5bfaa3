"""Element-wise ops and reductions against onnxruntime.

Tolerances: float32 arithmetic is exact up to rounding (atol 1e-6, rtol
1e-6); Pow/Sqrt/Mean and the reductions rtol 1e-5 (summation order differs);
integer and bool results must be equal.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import InputError
from minicnn.ops.registry import OPS
from ops_strategies import broadcast_pair, check_op, floats, seeds, small_shapes

EXACTISH = dict(atol=1e-6, rtol=1e-6)
LOOSE = dict(atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(shapes=broadcast_pair(), seed=seeds, op=st.sampled_from(["Add", "Sub", "Mul", "Div"]))
def test_binary_arithmetic_broadcasting(shapes, seed, op):
    a = floats(shapes[0], seed)
    b = floats(shapes[1], seed + 1, 0.5, 3.0)  # away from 0 for Div
    check_op(op, [a, b], **EXACTISH)


@settings(max_examples=15, deadline=None)
@given(shapes=broadcast_pair(), seed=seeds, op=st.sampled_from(["Add", "Sub", "Mul", "Div"]),
       dtype=st.sampled_from([np.int64, np.int32]))
def test_integer_arithmetic_keeps_dtype(shapes, seed, op, dtype):
    """Integer Div truncates toward zero, as onnxruntime (C) does: -7 / 2 = -3."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-50, 50, size=shapes[0]).astype(dtype)
    b = rng.integers(1, 7, size=shapes[1]).astype(dtype) * rng.choice([-1, 1], size=shapes[1]).astype(dtype)
    check_op(op, [a, b])


def test_integer_division_truncates_toward_zero():
    a = np.array([-7, 7, -7, 7, -6], np.int64)
    b = np.array([2, -2, -2, 2, 3], np.int64)
    (y,) = check_op("Div", [a, b])
    assert y.tolist() == [-3, -3, 3, 3, -2]


def test_integer_division_by_zero_is_an_input_error():
    with pytest.raises(InputError, match="division by zero"):
        OPS["Div"]["numpy"](np.array([1], np.int64), np.array([0], np.int64))


@settings(max_examples=15, deadline=None)
@given(shapes=broadcast_pair(), seed=seeds)
def test_pow(shapes, seed):
    x = floats(shapes[0], seed, 0.1, 3.0)
    y = floats(shapes[1], seed + 1, -2.0, 2.0)
    check_op("Pow", [x, y], **LOOSE)
    check_op("Pow", [x, np.array(2, np.int64)], **LOOSE)  # opset 12+: the exponent's dtype may differ


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds)
def test_unary(shape, seed):
    x = floats(shape, seed, 0.1, 5.0)
    check_op("Sqrt", [x], **LOOSE)
    check_op("Neg", [x], **EXACTISH)
    check_op("Reciprocal", [x], **LOOSE)
    check_op("Not", [x > 1])


@settings(max_examples=20, deadline=None)
@given(data=st.data(), seed=seeds, n=st.integers(1, 4), op=st.sampled_from(["Max", "Min", "Sum", "Mean"]))
def test_variadic(data, seed, n, op):
    full = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    shapes = [tuple(d if data.draw(st.booleans()) else 1 for d in full) for _ in range(n)]
    inputs = [floats(s, seed + k) for k, s in enumerate(shapes)]
    check_op(op, inputs, **LOOSE)


@settings(max_examples=15, deadline=None)
@given(shapes=broadcast_pair(), seed=seeds)
def test_comparisons_and_where(shapes, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, size=shapes[0]).astype(np.float32)  # small integers so that ties occur
    b = rng.integers(0, 3, size=shapes[1]).astype(np.float32)
    check_op("Equal", [a, b])
    check_op("Less", [a, b])
    check_op("Greater", [a, b])
    cond = rng.integers(0, 2, size=shapes[0]).astype(bool)
    check_op("Where", [cond, a, b])
    check_op("Equal", [a.astype(np.int64), b.astype(np.int64)])


@settings(max_examples=25, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), keepdims=st.sampled_from([0, 1]),
       op=st.sampled_from(["ReduceSum", "ReduceMean", "ReduceMax"]), new_form=st.booleans())
def test_reductions(shape, seed, data, keepdims, op, new_form):
    """Axes as an attribute (opset 11/13) and as an input (opset 13 for ReduceSum, 18 for the others)."""
    axes = data.draw(st.none() | st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1,
                                          max_size=len(shape), unique_by=lambda a: a % len(shape)))
    x = floats(shape, seed)
    attrs = {"keepdims": keepdims}
    input_opset = 13 if op == "ReduceSum" else 18
    if new_form:
        inputs = [x] if axes is None else [x, np.array(axes, np.int64)]
        check_op(op, inputs, attrs, opset=input_opset, initializer_inputs=(1,) if axes else (), **LOOSE)
    else:
        if axes is not None:
            attrs["axes"] = axes
        check_op(op, [x], attrs, opset=input_opset - 2, **LOOSE)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax"])
def test_reduction_noop_with_empty_axes(op):
    x = floats((2, 3), 0)
    opset = 13 if op == "ReduceSum" else 18
    check_op(op, [x], {"noop_with_empty_axes": 1}, opset=opset, **LOOSE)


def test_mismatched_shapes_name_both():
    with pytest.raises(InputError, match=r"\[2, 3\] and \[4\]"):
        OPS["Add"]["numpy"](floats((2, 3), 0), floats((4,), 1))
