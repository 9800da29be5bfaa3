"""Pooling against onnxruntime: numpy reference (window loops) and numba kernels.

Tolerances: MaxPool picks an input value, so results are exactly equal;
average pooling sums in float32 in a possibly different order: atol 1e-6,
rtol 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import InputError
from minicnn.ops.registry import OPS
from ops_strategies import check_op, floats, seeds

EXACT = dict(atol=0, rtol=0)
AVERAGE = dict(atol=1e-6, rtol=1e-6)


def test_two_by_two_max_pooling_keeps_the_largest_value():
    """Teaching example: a 2x2 max pool over [[4, 8], [7, 1]] looks at all four values and keeps
    the largest, 8. Max pooling keeps the strongest response in each window and halves the
    resolution (stride 2), which is how a CNN becomes less sensitive to exactly where a feature is."""
    x = np.array([[[[4, 8], [7, 1]]]], dtype=np.float32)
    for backend, fn in OPS["MaxPool"].items():
        y = fn(x, kernel_shape=[2, 2], strides=[2, 2])
        assert y.shape == (1, 1, 1, 1), backend
        assert y.item() == 8, backend


@st.composite
def pool_case(draw, spatial_dims: int):
    """An input shape and pooling attributes, including the awkward corners of the spec."""
    kernel = [draw(st.integers(1, 4)) for _ in range(spatial_dims)]
    dilations = [draw(st.integers(1, 2)) for _ in range(spatial_dims)]
    spans = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    sizes = [draw(st.integers(1, 9)) for _ in range(spatial_dims)]
    strides = [draw(st.integers(1, 3)) for _ in range(spatial_dims)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    attrs = {"kernel_shape": kernel, "strides": strides}
    if auto_pad == "NOTSET":
        # Asymmetric pads, each smaller than the kernel (onnxruntime's rule).
        pads = [draw(st.integers(0, min(k - 1, 2))) for k in kernel + kernel]
        attrs["pads"] = pads
        room = [n + pads[i] + pads[i + spatial_dims] - s for i, (n, s) in enumerate(zip(sizes, spans))]
        attrs["ceil_mode"] = draw(st.sampled_from([0, 1]))
    else:
        attrs["auto_pad"] = auto_pad
        room = [n - s for n, s in zip(sizes, spans)] if auto_pad == "VALID" else [0] * spatial_dims
        if auto_pad != "VALID":
            # onnxruntime rejects SAME when the formula's padding is negative (minicnn pads 0 there).
            assume(all((-(-n // s) - 1) * s + k >= n for n, s, k in zip(sizes, strides, kernel)))
    assume(min(room) >= 0)
    # onnxruntime computes SAME padding as if the kernel were not dilated (its pool_attributes.h), which
    # disagrees with the spec's formula that minicnn follows; compare SAME only without dilations.
    if any(d > 1 for d in dilations) and not auto_pad.startswith("SAME"):
        attrs["dilations"] = dilations
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes)
    return shape, attrs


@settings(max_examples=300, deadline=None)
@given(case=pool_case(2), seed=seeds)
def test_max_pool_2d(case, seed):
    shape, attrs = case
    check_op("MaxPool", [floats(shape, seed)], attrs, opset=12, **EXACT)


@settings(max_examples=300, deadline=None)
@given(case=pool_case(2), seed=seeds, count_include_pad=st.sampled_from([0, 1]))
def test_average_pool_2d(case, seed, count_include_pad):
    """AveragePool has no dilations before opset 19; count_include_pad with ceil_mode windows that run
    past the padding divides by the cells inside the padded image only, as onnxruntime does."""
    shape, attrs = case
    assume("dilations" not in attrs)
    attrs = dict(attrs, count_include_pad=count_include_pad)
    check_op("AveragePool", [floats(shape, seed)], attrs, opset=11, **AVERAGE)


@settings(max_examples=20, deadline=None)
@given(case=pool_case(1), seed=seeds, op=st.sampled_from(["MaxPool", "AveragePool"]))
def test_pool_1d(case, seed, op):
    shape, attrs = case
    if op == "AveragePool":
        assume("dilations" not in attrs)
    check_op(op, [floats(shape, seed)], attrs, opset=12, **AVERAGE)


@settings(max_examples=20, deadline=None)
@given(shape=st.tuples(st.integers(1, 2), st.integers(1, 40), st.integers(1, 24), st.integers(1, 24)), seed=seeds)
def test_global_pools(shape, seed):
    x = floats(shape, seed)
    check_op("GlobalAveragePool", [x], **AVERAGE)
    check_op("GlobalMaxPool", [x], **EXACT)


def test_padding_never_wins_a_max():
    """All-negative input: a zero from the padding must not appear in the output."""
    x = -np.ones((1, 1, 3, 3), np.float32) - floats((1, 1, 3, 3), 0, 0, 1)
    (y,) = check_op("MaxPool", [x], {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, **EXACT)
    assert (y < 0).all()


def test_zoo_shapes_fast_path():
    """The shapes the face models use (3x3 stride 2 pad 1; 2x2 stride 2 with ceil_mode) at a realistic size."""
    x = floats((1, 16, 40, 40), 1)
    check_op("MaxPool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, **EXACT)
    x = floats((1, 8, 25, 25), 2)
    check_op("MaxPool", [x], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, **EXACT)
    check_op("AveragePool", [x], {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                                  "count_include_pad": 1}, **AVERAGE)
    # gender_cydral's first average pool (the one-pass 2x2/2 case); with ceil_mode the windows run past the
    # image and take the general two-pass path.
    check_op("AveragePool", [floats((1, 32, 32, 32), 3)], {"kernel_shape": [2, 2], "strides": [2, 2]}, **AVERAGE)
    check_op("AveragePool", [floats((2, 3, 7, 9), 4)], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
             **AVERAGE)


def test_ceil_mode_kernel_larger_than_input():
    """With ceil_mode=1 a 2x2 kernel on a 1x1 image still gives one window (onnxruntime agrees)."""
    x = floats((1, 2, 1, 1), 0)
    check_op("MaxPool", [x], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, **EXACT)
    check_op("AveragePool", [x], {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, **AVERAGE)


def test_kernel_larger_than_input_is_an_input_error():
    for fn in OPS["MaxPool"].values():
        with pytest.raises(InputError, match="larger than the padded input"):
            fn(floats((1, 1, 2, 2), 0), kernel_shape=[3, 3])


def test_three_d_pooling_runs_on_the_reference():
    """3-D pooling is not in the zoo; the window-loop reference handles it (the numba path defers to it)."""
    x = floats((1, 2, 3, 4, 5), 0)
    check_op("MaxPool", [x], {"kernel_shape": [2, 2, 2], "strides": [1, 2, 2]}, **EXACT)
    check_op("AveragePool", [x], {"kernel_shape": [2, 3, 2], "pads": [1, 1, 0, 0, 1, 1]}, **AVERAGE)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(case=pool_case(2), seed=seeds, op=st.sampled_from(["MaxPool", "AveragePool"]),
       count_include_pad=st.sampled_from([0, 1]))
def test_pool_2d_sweep(case, seed, op, count_include_pad):
    """The default tests' cases, ten times as many (run with -m slow)."""
    shape, attrs = case
    if op == "AveragePool":
        assume("dilations" not in attrs)
        attrs = dict(attrs, count_include_pad=count_include_pad)
    check_op(op, [floats(shape, seed)], attrs, opset=12, **(EXACT if op == "MaxPool" else AVERAGE))


@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=40, deadline=None)
@given(case=pool_case(2), seed=seeds)
def test_pools_split_between_threads(n_threads, case, seed):
    """Large inputs have their planes split between threads (``cpu_pool.MIN_PARALLEL_VALUES``, and
    ``MIN_PARALLEL_VALUES_2X2`` for the one-pass 2x2/2 case); forced here on small ones: the same exact results."""
    from minicnn import threads
    from minicnn.kernels import cpu_pool

    shape, attrs = case
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_pool, "MIN_PARALLEL_VALUES", 0)
        patch.setattr(cpu_pool, "MIN_PARALLEL_VALUES_2X2", 0)
        check_op("MaxPool", [floats(shape, seed)], attrs, opset=12, **EXACT)
        if "dilations" not in attrs:
            check_op("AveragePool", [floats(shape, seed)], attrs, opset=12, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (2, 2, 9, 7), (1, 1, 2, 2), (1, 2, 3, 5)])
def test_two_by_two_stride_two_pool_one_pass(shape):
    """2x2 stride-2 windows inside the image take their own one-pass kernels (YuNet's max pools, the classifiers'
    average pools); odd sizes leave a last row or column out."""
    check_op("MaxPool", [floats(shape, 7)], {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=12, **EXACT)
    check_op("AveragePool", [floats(shape, 7)], {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=12, **AVERAGE)
