"""Resize (opsets 10, 11, 13, 18) and Upsample (opset 9) against onnxruntime.

Tolerances: nearest copies values (exact); linear interpolation in float32
atol 1e-5, rtol 1e-5. Coordinates are computed in float32 as in onnxruntime,
so ties in nearest rounding fall the same way.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import UnsupportedOpError
from minicnn.ops.registry import OPS
from ops_strategies import check_op, floats, seeds

EXACT = dict(atol=0, rtol=0)
LINEAR = dict(atol=1e-5, rtol=1e-5)

nchw = st.tuples(st.integers(1, 2), st.integers(1, 3), st.integers(1, 7), st.integers(1, 7))
scale_values = st.sampled_from([0.5, 0.6, 1.0, 1.5, 2.0, 3.0, 0.75, 1.25])
# onnxruntime 1.31 no longer accepts tf_half_pixel_for_nearest; it is checked by hand below.
coordinate_modes = st.sampled_from(["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"])
nearest_modes = st.sampled_from(["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])


def _asymmetric_tie(in_hw, sizes, scales) -> bool:
    """Whether an asymmetric coordinate x_out / scale is, in exact arithmetic, within 1e-4 of k + 0.5."""
    for axis, n in enumerate(in_hw):
        if scales is not None:
            out = int(np.floor(np.float32(n) * scales[axis]))
            coords = np.arange(out) / np.float64(scales[axis])
        else:
            coords = np.arange(sizes[axis]) * n / sizes[axis]
        if np.any(np.abs(coords - np.floor(coords) - 0.5) < 1e-4):
            return True
    return False


def _out_nonempty(shape, scales) -> bool:
    return all(int(np.floor(np.float32(n) * np.float32(s))) >= 1 for n, s in zip(shape, scales))


@settings(max_examples=300, deadline=None)
@given(shape=nchw, seed=seeds, data=st.data(), mode=st.sampled_from(["nearest", "linear"]),
       coord=coordinate_modes, nearest_mode=nearest_modes, opset=st.sampled_from([11, 13, 18]))
def test_resize_scales_and_sizes(shape, seed, data, mode, coord, nearest_mode, opset):
    x = floats(shape, seed)
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = nearest_mode
    roi = np.array([], np.float32)
    if data.draw(st.booleans()):
        scales = [1.0, 1.0, data.draw(scale_values), data.draw(scale_values)]
        if not _out_nonempty(shape, scales):
            return
        inputs = [x, roi, np.array(scales, np.float32)]
    else:
        sizes = [shape[0], shape[1], data.draw(st.integers(1, 12)), data.draw(st.integers(1, 12))]
        inputs = [x, roi, np.array([], np.float32), np.array(sizes, np.int64)]
        if opset >= 13:
            inputs[2] = None  # from opset 13 an omitted input may simply be left out
    if coord == "asymmetric" and mode == "nearest" and nearest_mode == "round_prefer_ceil":
        # onnxruntime rounds exact ties up even where float32 lands one bit below them (documented in
        # minicnn/ops/resize.py); compare only where no coordinate is within float32 noise of a tie.
        assume(not _asymmetric_tie(shape[2:], inputs[3][2:] if len(inputs) == 4 else None,
                                   inputs[2][2:] if len(inputs) == 3 else None))
    check_op("Resize", inputs, attrs, opset=opset, initializer_inputs=(1, 2, 3),
             **(EXACT if mode == "nearest" else LINEAR))


@settings(max_examples=20, deadline=None)
@given(shape=nchw, seed=seeds, data=st.data(), mode=st.sampled_from(["nearest", "linear"]))
def test_resize_opset10_and_upsample(shape, seed, data, mode):
    """Resize-10 and Upsample-9 take (X, scales) and use asymmetric coordinates."""
    x = floats(shape, seed)
    scales = [1.0, 1.0, data.draw(scale_values), data.draw(scale_values)]
    if not _out_nonempty(shape, scales):
        return
    tol = EXACT if mode == "nearest" else LINEAR
    check_op("Resize", [x, np.array(scales, np.float32)], {"mode": mode}, opset=10, initializer_inputs=(1,), **tol)
    up = [1.0, 1.0, data.draw(st.sampled_from([1.0, 2.0, 3.0, 1.5])), data.draw(st.sampled_from([1.0, 2.0, 2.5]))]
    check_op("Upsample", [x, np.array(up, np.float32)], {"mode": mode}, opset=9, initializer_inputs=(1,), **tol)


@settings(max_examples=15, deadline=None)
@given(shape=nchw, seed=seeds, data=st.data(), policy=st.sampled_from(["stretch", "not_larger", "not_smaller"]))
def test_resize_opset18_axes_and_aspect_ratio(shape, seed, data, policy):
    x = floats(shape, seed)
    sizes = np.array([data.draw(st.integers(2, 10)), data.draw(st.integers(2, 10))], np.int64)
    check_op("Resize", [x, None, None, sizes], {"axes": [2, 3], "keep_aspect_ratio_policy": policy,
                                                 "mode": "nearest"}, opset=18, initializer_inputs=(3,), **EXACT)


def test_nearest_2x_upsample_of_a_detector_neck():
    """The zoo's case: Resize nearest x2 of a feature map (SCRFD/RetinaFace FPN)."""
    x = floats((1, 8, 10, 10), 0)
    check_op("Resize", [x, None, np.array([1, 1, 2, 2], np.float32)], {"mode": "nearest"}, opset=13,
             initializer_inputs=(2,), **EXACT)


def test_bilinear_2x_upsample_of_blazeface():
    """BlazeFace's decoder: Resize linear (half_pixel) of 6x6 maps to 12x12, by sizes, against onnxruntime."""
    x = floats((1, 96, 6, 6), 0)
    check_op("Resize", [x, None, None, np.array([1, 96, 12, 12], np.int64)], {"mode": "linear"}, opset=13,
             initializer_inputs=(3,), **LINEAR)


@settings(max_examples=60, deadline=None)
@given(shape=nchw, seed=seeds, data=st.data(), coord=coordinate_modes)
def test_linear_fast_path_is_the_reference_bit_for_bit(shape, seed, data, coord):
    """The numba kernel interpolates along H then W with the reference's cells, weights and float32 steps."""
    from minicnn.ops.resize import Resize, Resize_numba

    x = floats(shape, seed)
    scales = np.array([1.0, 1.0, data.draw(scale_values), data.draw(scale_values)], np.float32)
    if not _out_nonempty(shape, scales):
        return
    args = dict(mode="linear", coordinate_transformation_mode=coord, opset=13)
    np.testing.assert_array_equal(Resize_numba(x, None, scales, **args), Resize(x, None, scales, **args))


def test_tf_half_pixel_for_nearest_by_hand():
    """x_in = (x_out + 0.5) / scale: shrinking [0..5] by 0.5 reads cells 1, 3, 5 (TensorFlow's nearest)."""
    x = np.arange(6, dtype=np.float32).reshape(1, 1, 1, 6)
    for fn in OPS["Resize"].values():
        y = fn(x, None, np.array([1, 1, 1, 0.5], np.float32), mode="nearest",
               coordinate_transformation_mode="tf_half_pixel_for_nearest", opset=13)
        assert y.ravel().tolist() == [1, 3, 5]


@pytest.mark.parametrize("attrs,match", [({"mode": "cubic"}, "cubic"),
                                         ({"coordinate_transformation_mode": "tf_crop_and_resize"},
                                          "tf_crop_and_resize"),
                                         ({"antialias": 1}, "antialias")])
def test_unsupported_modes_are_named(attrs, match):
    with pytest.raises(UnsupportedOpError, match=match):
        OPS["Resize"]["numpy"](floats((1, 1, 2, 2), 0), None, np.array([1, 1, 2, 2], np.float32), opset=13, **attrs)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(shape=nchw, seed=seeds, data=st.data(), mode=st.sampled_from(["nearest", "linear"]),
       coord=coordinate_modes, nearest_mode=nearest_modes, opset=st.sampled_from([11, 13, 18]))
def test_resize_sweep(shape, seed, data, mode, coord, nearest_mode, opset):
    """``test_resize_scales_and_sizes`` with ten times the examples (run with -m slow)."""
    test_resize_scales_and_sizes.hypothesis.inner_test(shape, seed, data, mode, coord, nearest_mode, opset)
