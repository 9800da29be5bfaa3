"""Property tests: every non-convolution op against onnxruntime, on one-node models.

Each test draws shapes and attributes with hypothesis, runs the op in
onnxruntime (the reference) and through every minicnn implementation
registered for it (the NumPy reference and, where one exists, the Numba fast
path), and compares.

Tolerances: ops that only move data (shape ops, max pooling, nearest resize)
must match exactly. Float arithmetic gets ``rtol=1e-5, atol=1e-6``: one or a
few float32 operations per element, whose rounding can differ from
onnxruntime's in the last bit; averages and softmax sum up to a few dozen
terms, still well inside that.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from onnx import numpy_helper

from minicnn.ops.registry import OPS, supported_ops
from onnx_util import one_node_model, run_ort

FLOAT = dict(rtol=1e-5, atol=1e-6)
SETTINGS = settings(max_examples=25, deadline=None)


def implementations(op):
    return list(OPS[op].items())


def check(op, inputs, attrs=None, opset=13, exact=False, initializer_inputs=(), n_outputs=1):
    model = one_node_model(op, inputs, attrs, opset=opset, initializer_inputs=initializer_inputs,
                           n_outputs=n_outputs)
    expected = run_ort(model, inputs, initializer_inputs)[0]
    for backend, fn in implementations(op):
        # the loader hands ops tensor attributes as arrays; onnx.helper wants TensorProto
        kwargs = {k: numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v
                  for k, v in (attrs or {}).items()}
        if "opset" in fn.__code__.co_varnames[: fn.__code__.co_argcount + fn.__code__.co_kwonlyargcount]:
            kwargs["opset"] = opset
        got = fn(*inputs, **kwargs)
        got = got[0] if isinstance(got, tuple) else got
        assert got.shape == expected.shape, (backend, got.shape, expected.shape)
        assert got.dtype == expected.dtype, (backend, got.dtype, expected.dtype)
        if exact:
            np.testing.assert_array_equal(got, expected, err_msg=f"{op} [{backend}]")
        else:
            np.testing.assert_allclose(got, expected, err_msg=f"{op} [{backend}]", **FLOAT)


def arrays(shape, seed, low=-3.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


seeds = st.integers(0, 2**16)
small = st.integers(1, 9)


# -- pooling ------------------------------------------------------------------------------------------------

@st.composite
def pool_case(draw):
    k = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    s = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pads = [draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1)),
            draw(st.integers(0, k[0] - 1)), draw(st.integers(0, k[1] - 1))]
    h, w = draw(st.integers(k[0], 13)), draw(st.integers(k[1], 13))
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"]))
    if auto_pad.startswith("SAME") and (s[0] > k[0] or s[1] > k[1]):
        auto_pad = "NOTSET"  # onnxruntime rejects SAME when stride > kernel (it computes negative padding)
    attrs = dict(kernel_shape=k, strides=s, ceil_mode=draw(st.integers(0, 1)))
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
        attrs["ceil_mode"] = 0
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), h, w), attrs


@SETTINGS
@given(pool_case(), seeds)
def test_maxpool(case, seed):
    shape, attrs = case
    check("MaxPool", [arrays(shape, seed)], attrs, opset=12, exact=True)


@SETTINGS
@given(pool_case(), seeds, st.integers(0, 1))
def test_averagepool(case, seed, include_pad):
    shape, attrs = case
    check("AveragePool", [arrays(shape, seed)], dict(attrs, count_include_pad=include_pad), opset=11)


@SETTINGS
@given(seeds, st.integers(1, 3), st.integers(1, 7), st.integers(1, 7), st.integers(2, 3))
def test_maxpool_dilated(seed, c, h, w, d):
    assume(h >= d + 1 and w >= d + 1)
    check("MaxPool", [arrays((1, c, h, w), seed)], dict(kernel_shape=[2, 2], dilations=[d, d]), opset=12,
          exact=True)


def test_teaching_max_pool():
    """2x2 max pooling of [[4, 8], [7, 1]] keeps the strongest response: 8."""
    x = np.array([[[[4, 8], [7, 1]]]], dtype=np.float32)
    for _, fn in implementations("MaxPool"):
        assert fn(x, kernel_shape=[2, 2]).item() == 8


@SETTINGS
@given(seeds, st.integers(1, 2), st.integers(1, 5), small, small)
def test_global_pools(seed, n, c, h, w):
    x = arrays((n, c, h, w), seed)
    check("GlobalAveragePool", [x])
    check("GlobalMaxPool", [x], exact=True)


# -- activations ----------------------------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=4).map(tuple)


@SETTINGS
@given(shapes, seeds)
def test_unary_activations(shape, seed):
    x = arrays(shape, seed, -20, 20)
    for op in ("Relu", "Sigmoid", "Tanh", "Abs", "HardSigmoid"):
        check(op, [x], opset=13 if op != "HardSigmoid" else 13)
    check("Exp", [arrays(shape, seed, -5, 5)])
    check("HardSwish", [x], opset=14)
    check("LeakyRelu", [x], {"alpha": 0.1})


@SETTINGS
@given(seeds, st.integers(1, 2), st.integers(1, 5), small, small, st.sampled_from(["channel", "scalar", "full"]))
def test_prelu(seed, n, c, h, w, kind):
    x = arrays((n, c, h, w), seed)
    slope = {"channel": (c, 1, 1), "scalar": (1,), "full": (c, h, w)}[kind]
    check("PRelu", [x, arrays(slope, seed + 1, 0, 0.5)])


@SETTINGS
@given(shapes, seeds, st.sampled_from([11, 13]), st.data())
def test_softmax_axis_rules(shape, seed, opset, data):
    x = arrays(shape, seed, -10, 10)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    check("Softmax", [x], {"axis": axis}, opset=opset)


@SETTINGS
@given(shapes, seeds)
def test_clip_both_opsets(shape, seed):
    x = arrays(shape, seed)
    check("Clip", [x], {"min": -1.0, "max": 0.5}, opset=9)
    check("Clip", [x, np.array(-0.5, np.float32), np.array(2.0, np.float32)], opset=13)
    check("Clip", [x, None, np.array(0.25, np.float32)], opset=13)


# -- element-wise with broadcasting -------------------------------------------------------------------------

@st.composite
def broadcast_pair(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    other = [d if draw(st.booleans()) else 1 for d in shape]
    other = other[draw(st.integers(0, len(other) - 1)):]
    if draw(st.booleans()):
        shape, other = other, shape
    return tuple(shape), tuple(other)


@SETTINGS
@given(broadcast_pair(), seeds)
def test_binary_broadcasting(shapes_, seed):
    a, b = arrays(shapes_[0], seed), arrays(shapes_[1], seed + 1)
    b = np.where(np.abs(b) < 0.1, 0.5, b).astype(np.float32)  # Div by ~0 is not the point here
    for op in ("Add", "Sub", "Mul", "Div", "Max", "Min"):
        check(op, [a, b])


def test_integer_div_truncates_toward_zero():
    a = np.array([7, -7, 7, -7], np.int64)
    b = np.array([2, 2, -2, -2], np.int64)
    check("Div", [a, b], exact=True)


@SETTINGS
@given(shapes, seeds, st.integers(0, 1))
def test_reductions(shape, seed, keepdims):
    x = arrays(shape, seed)
    axes = list(range(len(shape)))[-1:]
    check("ReduceMean", [x], {"axes": axes, "keepdims": keepdims}, opset=13)
    check("ReduceMax", [x], {"axes": axes, "keepdims": keepdims}, opset=13)
    check("ReduceSum", [x, np.array(axes, np.int64)], {"keepdims": keepdims}, opset=13)


# -- dense ---------------------------------------------------------------------------------------------------

@SETTINGS
@given(seeds, small, small, small, st.integers(0, 1), st.integers(0, 1), st.sampled_from(["none", "row", "full"]))
def test_gemm(seed, m, k, n, ta, tb, c_kind):
    a = arrays((k, m) if ta else (m, k), seed)
    b = arrays((n, k) if tb else (k, n), seed + 1)
    c = {"none": None, "row": arrays((n,), seed + 2), "full": arrays((m, n), seed + 2)}[c_kind]
    inputs = [a, b] + ([c] if c is not None else [])
    check("Gemm", inputs, {"alpha": 0.5, "beta": 2.0, "transA": ta, "transB": tb})


@SETTINGS
@given(seeds, st.integers(1, 3), small, small, small)
def test_matmul_batched(seed, batch, m, k, n):
    check("MatMul", [arrays((batch, m, k), seed), arrays((k, n), seed + 1)])


@SETTINGS
@given(seeds, st.integers(1, 2), st.integers(1, 5), small, small)
def test_batchnorm(seed, n, c, h, w):
    rng = np.random.default_rng(seed)
    x = arrays((n, c, h, w), seed)
    stats = [arrays((c,), seed + i) for i in range(3)] + [rng.uniform(0.1, 2, c).astype(np.float32)]
    check("BatchNormalization", [x, *stats], {"epsilon": 1e-3}, initializer_inputs=(1, 2, 3, 4))


# -- shape ops -----------------------------------------------------------------------------------------------

@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple), seeds, st.data())
def test_shape_ops(shape, seed, data):
    x = arrays(shape, seed)
    rank = len(shape)
    axis = data.draw(st.integers(-rank, rank - 1))
    check("Flatten", [x], {"axis": data.draw(st.integers(-rank, rank))}, exact=True)
    check("Transpose", [x], {"perm": data.draw(st.permutations(range(rank)))}, exact=True)
    check("Concat", [x, x * 2], {"axis": axis}, exact=True)
    check("Shape", [x], exact=True)
    check("Shape", [x], {"start": 1, "end": -1} if rank > 1 else {}, opset=15, exact=True)
    idx = np.array(data.draw(st.lists(st.integers(-shape[axis], shape[axis] - 1), min_size=1, max_size=3)), np.int64)
    check("Gather", [x, idx], {"axis": axis}, exact=True)
    check("Unsqueeze", [x, np.array([0, -1], np.int64)], opset=13, exact=True)
    check("Unsqueeze", [x], {"axes": [1]}, opset=11, exact=True)
    check("Reshape", [x, np.array([-1], np.int64)], exact=True)
    check("Reshape", [x, np.array([0] + [-1] * (rank > 1), np.int64)], exact=True)
    check("Cast", [x], {"to": 7}, exact=True)
    check("Identity", [x], exact=True)
    ones = tuple(1 if i % 2 else d for i, d in enumerate(shape))
    y = arrays(ones, seed)
    check("Squeeze", [y], opset=11, exact=True)
    check("Squeeze", [y, np.array([i for i, d in enumerate(ones) if d == 1], np.int64)], opset=13, exact=True)


@SETTINGS
@given(st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple), seeds, st.data())
def test_slice(shape, seed, data):
    x = arrays(shape, seed)
    axes = list(range(len(shape)))
    big = np.iinfo(np.int64).max
    starts = [data.draw(st.integers(-d - 2, d + 2)) for d in shape]
    ends = [data.draw(st.sampled_from([data.draw(st.integers(-d - 2, d + 2)), big, -big])) for d in shape]
    steps = [data.draw(st.sampled_from([1, 2, 3, -1, -2])) for _ in shape]
    check("Slice", [x, *(np.array(v, np.int64) for v in (starts, ends, axes, steps))], opset=13, exact=True)
    check("Slice", [x], {"starts": starts, "ends": [min(max(e, -2**31), 2**31 - 1) for e in ends]}, opset=9,
          exact=True)


@SETTINGS
@given(st.lists(st.integers(2, 5), min_size=2, max_size=4).map(tuple), seeds, st.data(),
       st.sampled_from(["constant", "reflect", "edge"]))
def test_pad(shape, seed, data, mode):
    x = arrays(shape, seed)
    low = 0 if mode != "constant" else -1
    pads = [data.draw(st.integers(low, 2 if mode != "reflect" else 1)) for _ in range(2 * len(shape))]
    check("Pad", [x, np.array(pads, np.int64), np.array(0.5, np.float32)], {"mode": mode}, opset=13, exact=True)
    check("Pad", [x], {"pads": pads, "mode": mode, "value": 1.5}, opset=10, exact=True)


@SETTINGS
@given(seeds, st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.sampled_from([0.5, 2.0, 3.0, 1.5]),
       st.sampled_from(["nearest", "linear"]),
       st.sampled_from(["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"]),
       st.sampled_from(["round_prefer_floor", "floor", "ceil", "round_prefer_ceil"]))
def test_resize(seed, c, h, w, scale, mode, transform, nearest_mode):
    x = arrays((1, c, h, w), seed)
    scales = np.array([1, 1, scale, scale], np.float32)
    attrs = dict(mode=mode, coordinate_transformation_mode=transform, nearest_mode=nearest_mode)
    assume(int(h * scale) > 0 and int(w * scale) > 0)
    check("Resize", [x, np.array([], np.float32), scales], attrs, opset=13)
    sizes = np.array([1, c, h * 2 + 1, max(w // 2, 1)], np.int64)
    check("Resize", [x, None, None, sizes], attrs, opset=13)


def test_resize_opset10_and_upsample():
    x = arrays((1, 2, 3, 4), 0)
    scales = np.array([1, 1, 2, 2], np.float32)
    check("Resize", [x, scales], {"mode": "nearest"}, opset=10, exact=True)
    check("Upsample", [x, scales], {"mode": "nearest"}, opset=9, exact=True)


def test_constants():
    check("ConstantOfShape", [np.array([2, 3], np.int64)], exact=True)
    check("ConstantOfShape", [np.array([2], np.int64)], {"value": numpy_helper.from_array(np.array([7], np.int64))}, exact=True)
    check("Range", [np.array(1, np.int64), np.array(10, np.int64), np.array(3, np.int64)], exact=True)
    check("Expand", [arrays((3, 1), 0), np.array([2, 3, 4], np.int64)], exact=True)
    check("Where", [np.array([True, False]), arrays((2,), 0), arrays((2,), 1)], exact=True)


def test_zoo_ops_are_all_supported():
    """Every op MODELS.md lists as used by the zoo has an implementation."""
    needed = ("Conv BatchNormalization Relu PRelu LeakyRelu Sigmoid Softmax MaxPool AveragePool GlobalAveragePool "
              "Gemm MatMul Flatten Reshape Transpose Concat Add Sub Mul Pad Resize Shape Gather Unsqueeze Slice "
              "Cast Constant Identity Dropout").split()
    assert not set(needed) - set(supported_ops())


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
def test_pool_fast_path_is_registered(op):
    assert "numba" in OPS[op]
