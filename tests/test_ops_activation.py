"""Activations against onnxruntime, numpy reference and numba fast path alike.

Tolerances: float32 formulas without exp (Relu, LeakyRelu, PRelu, Clip,
Abs, HardSigmoid, HardSwish) match to atol 1e-6; exp-based ones (Sigmoid,
Exp, Tanh, Softmax) to rtol 1e-5, atol 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops_strategies import check_op, floats, seeds, small_shapes

EXACTISH = dict(atol=1e-6, rtol=1e-6)
EXP_BASED = dict(atol=1e-6, rtol=1e-5)

nchw = st.tuples(st.integers(1, 2), st.integers(1, 6), st.integers(1, 9), st.integers(1, 9))


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds)
def test_relu_sigmoid_tanh_exp_abs(shape, seed):
    x = floats(shape, seed, -10, 10)
    check_op("Relu", [x], **EXACTISH)
    check_op("Abs", [x], **EXACTISH)
    check_op("Sigmoid", [x], **EXP_BASED)
    check_op("Tanh", [x], **EXP_BASED)
    check_op("Exp", [x], **EXP_BASED)


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, alpha=st.floats(0.0, 1.0, width=32))
def test_leaky_relu(shape, seed, alpha):
    x = floats(shape, seed)
    check_op("LeakyRelu", [x], {"alpha": alpha}, **EXACTISH)


def test_leaky_relu_default_alpha_is_001():
    check_op("LeakyRelu", [np.array([-100.0, 0.0, 5.0], np.float32)], **EXACTISH)


@settings(max_examples=25, deadline=None)
@given(shape=nchw, seed=seeds, form=st.sampled_from(["C11", "1C11", "scalar", "W", "HW"]))
def test_prelu_slope_shapes(shape, seed, form):
    """The (C, 1, 1) slope of exports (the fast path), and the other broadcastable forms (the reference)."""
    n, c, h, w = shape
    slope_shape = {"C11": (c, 1, 1), "1C11": (1, c, 1, 1), "scalar": (1,), "W": (w,), "HW": (h, w)}[form]
    x = floats(shape, seed)
    slope = floats(slope_shape, seed + 1, 0.0, 1.0)
    check_op("PRelu", [x, slope], initializer_inputs=(1,), **EXACTISH)


def test_sigmoid_extremes():
    """exp overflows for large negative inputs; the result must still be exactly 0, without a warning."""
    x = np.array([-1000.0, -89.0, 0.0, 89.0, 1000.0], np.float32)
    check_op("Sigmoid", [x], **EXP_BASED)


def test_nan_and_inf_pass_through_like_onnxruntime():
    x = np.array([np.nan, -np.inf, np.inf, -1.0, 0.0, 2.0], np.float32)
    for op in ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "Abs"):
        check_op(op, [x], **EXP_BASED)
    check_op("PRelu", [x, np.array([0.25], np.float32)], initializer_inputs=(1,), **EXACTISH)


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, opset=st.sampled_from([11, 13]), data=st.data())
def test_softmax_opsets(shape, seed, opset, data):
    """Opset < 13 flattens the dims from ``axis`` on (default 1); opset 13 normalises along ``axis`` (default -1)."""
    axis = data.draw(st.none() | st.integers(-len(shape), len(shape) - 1))
    if opset < 13 and axis is None and len(shape) < 2:
        axis = 0  # the default axis 1 does not exist for a 1-D input
    x = floats(shape, seed, -20, 20)
    check_op("Softmax", [x], {} if axis is None else {"axis": axis}, opset=opset, **EXP_BASED)


def test_softmax_opset11_is_not_per_channel():
    """At opset 11 an (N, C, H, W) softmax with axis=1 normalises over C*H*W values together."""
    x = floats((1, 3, 2, 2), 0)
    (y,) = check_op("Softmax", [x], {"axis": 1}, opset=11, **EXP_BASED)
    assert np.isclose(y.sum(), 1.0)


@settings(max_examples=20, deadline=None)
@given(rows=st.integers(1, 400), n=st.integers(1, 40), seed=seeds, opset=st.sampled_from([11, 13]))
def test_softmax_short_rows_fast_path(rows, n, seed, opset):
    """The numba fast path's case (a detector's (1, anchors, 2) scores), rows up to 32 long and past it.

    Against onnxruntime (rtol 1e-5) and against the NumPy reference to rtol 1e-6: the same three steps
    (max-subtract, NumPy's exp, divide by the row sum), but the kernel adds a row's (up to 32) values in
    order where NumPy adds them pairwise, so the sums differ by a few float32 ulps (2.4e-7 seen).
    """
    from minicnn.ops.activation import Softmax, Softmax_numba

    x = floats((1, rows, n), seed, -20, 20)
    check_op("Softmax", [x], {"axis": 2}, opset=opset, **EXP_BASED)  # at opset 11 the 2-D view from axis 2
    np.testing.assert_allclose(Softmax_numba(x, axis=2, opset=opset), Softmax(x, axis=2, opset=opset),
                               rtol=1e-6, atol=1e-9)


def test_softmax_fast_path_special_values_match_reference():
    """inf, -inf and NaN in a row give the same NaNs, zeros and ones in the fast path as in the reference."""
    from minicnn.ops.activation import Softmax, Softmax_numba

    x = np.array([[np.inf, 1.0], [-np.inf, 1.0], [-np.inf, -np.inf], [np.nan, 1.0], [1.0, np.nan],
                  [1000.0, -1000.0], [0.0, 0.0]], np.float32)[None]
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(Softmax_numba(x), Softmax(x))


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, lo=st.none() | st.floats(-2, 0, width=32),
       hi=st.none() | st.floats(0, 2, width=32))
def test_clip_as_inputs_opset13(shape, seed, lo, hi):
    x = floats(shape, seed)
    inputs = [x, None if lo is None else np.float32(lo), None if hi is None else np.float32(hi)]
    while inputs[-1] is None:
        inputs.pop()
    check_op("Clip", inputs, opset=13, **EXACTISH)


@settings(max_examples=10, deadline=None)
@given(shape=small_shapes, seed=seeds, lo=st.none() | st.floats(-2, 0, width=32),
       hi=st.none() | st.floats(0, 2, width=32))
def test_clip_as_attributes_opset6(shape, seed, lo, hi):
    x = floats(shape, seed)
    attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    check_op("Clip", [x], attrs, opset=9, **EXACTISH)


@settings(max_examples=10, deadline=None)
@given(shape=small_shapes, seed=seeds, alpha=st.floats(0.0625, 1, width=32), beta=st.floats(-1, 1, width=32))
def test_hard_sigmoid_and_swish(shape, seed, alpha, beta):
    x = floats(shape, seed, -6, 6)
    check_op("HardSigmoid", [x], {"alpha": alpha, "beta": beta}, **EXACTISH)
    check_op("HardSwish", [x], opset=14, **EXACTISH)


@pytest.mark.parametrize("op", ["Relu", "LeakyRelu", "PRelu"])
def test_fast_path_on_a_non_contiguous_input(op):
    """The numba kernels flatten their input; a transposed view must still give the right layout."""
    from minicnn.ops.registry import OPS

    x = floats((2, 3, 4, 5), 3).transpose(0, 2, 3, 1)  # (2, 4, 5, 3), not C-contiguous
    args = (x, floats((4, 1, 1), 4, 0, 1)) if op == "PRelu" else (x,)
    np.testing.assert_allclose(OPS[op]["numba"](*args), OPS[op]["numpy"](*args), rtol=1e-6, atol=1e-7)


def test_prelu_bad_slope_is_an_input_error():
    from minicnn import InputError
    from minicnn.ops.registry import OPS

    for fn in OPS["PRelu"].values():
        with pytest.raises(InputError, match="slope"):
            fn(floats((1, 3, 4, 4), 0), floats((3,), 1))  # (3,) lines up with W=4, not C


@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=20, deadline=None)
@given(shape=nchw, seed=seeds, alpha=st.floats(0.0, 1.0, width=32))
def test_activations_split_between_threads(n_threads, shape, seed, alpha):
    """Large tensors are split into ranges run by several threads (``cpu_activation.MIN_PARALLEL_VALUES``); forced
    here on small ones: the same results."""
    from minicnn import threads
    from minicnn.kernels import cpu_activation

    x = floats(shape, seed)
    slope = floats((shape[1], 1, 1), seed + 1, 0, 1)
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_activation, "MIN_PARALLEL_VALUES", 0)
        check_op("Relu", [x], **EXACTISH)
        check_op("LeakyRelu", [x], {"alpha": alpha}, **EXACTISH)
        check_op("PRelu", [x, slope], **EXACTISH)
