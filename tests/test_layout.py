"""The NCHW16c layout: its kernels, its ops, the layout pass and the sessions that use it.

Tolerances: the reorders and max pooling only move values, so they are
compared bit for bit. The blocked convolutions sum in another order than
the references (and use fused multiply-adds): their real channels are
within 1e-5 of the output's range (at least 1) of minicnn's float64
reference and of onnxruntime; the dense convolution's, with up to 900
products per sum, within 1e-5 of the range before the activation. Whole
graphs: within 1e-5 of the output's range of the same session's NCHW plan
and of onnxruntime. Padding channels are not compared
(``minicnn.ops.blocked`` says what they hold).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import minicnn
from minicnn import layout
from minicnn.kernels import cpu_blocked
from minicnn.kernels.cpu_conv import ACTIVATION_CODES
from minicnn.layout import SUFFIX, block_graph
from minicnn.ops.blocked import (AveragePool_NCHW16c, AveragePool_NCHW16c_numba, Conv_NCHW16c, Conv_NCHW16c_numba,
                                 GlobalAveragePool_NCHW16c, GlobalAveragePool_NCHW16c_numba, MaxPool_NCHW16c,
                                 MaxPool_NCHW16c_numba, PadChannels_NCHW16c, PadChannels_NCHW16c_numba,
                                 Resize_NCHW16c, Resize_NCHW16c_numba, blocked_conv_kind)
from minicnn.ops.conv import FusedConv
from minicnn.ops.pool import AveragePool, GlobalAveragePool, MaxPool
from onnx_util import one_node_model, run_ort


def _close(actual, expected, what="", scale=None):
    scale = max(1.0, float(np.abs(expected).max() if scale is None else scale))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5 * scale, err_msg=what)


# ---------------------------------------------------------------------------
# Kernels and ops against their references
# ---------------------------------------------------------------------------
@given(n=st.integers(1, 2), channels=st.integers(1, 40), height=st.integers(1, 9), width=st.integers(1, 11),
       seed=st.integers(0, 99))
@settings(max_examples=30, deadline=None)
def test_numba_reorders_are_bitwise_the_numpy_ones(n, channels, height, width, seed):
    x = np.random.default_rng(seed).standard_normal((n, channels, height, width)).astype(np.float32)
    xb = cpu_blocked.to_blocked_fast(x)
    np.testing.assert_array_equal(xb, cpu_blocked.to_blocked(x))
    np.testing.assert_array_equal(cpu_blocked.from_blocked_fast(xb, channels), x)
    first = seed % channels  # a channel range, as a Split of a blocked tensor takes it
    np.testing.assert_array_equal(cpu_blocked.from_blocked_fast(xb, channels - first, first), x[:, first:])
    np.testing.assert_array_equal(cpu_blocked.from_blocked(xb, channels - first, first), x[:, first:])


@given(channels=st.integers(1, 40), height=st.integers(1, 14), width=st.integers(1, 23), kernel=st.integers(1, 5),
       stride=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 2)] * 4),
       activation=st.sampled_from(sorted(ACTIVATION_CODES)), with_residual=st.booleans(), seed=st.integers(0, 999))
@settings(max_examples=80, deadline=None)
def test_blocked_depthwise_matches_the_reference(channels, height, width, kernel, stride, pads, activation,
                                                 with_residual, seed):
    top, left, bottom, right = pads
    if height + top + bottom < kernel or width + left + right < kernel:
        return  # no output pixel
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((channels, 1, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    slope = rng.standard_normal((channels, 1, 1)).astype(np.float32)
    attrs = dict(group=channels, strides=[stride, stride], pads=list(pads), activation=activation, alpha=0.1,
                 clip_min=-0.5, clip_max=0.7)
    expected = FusedConv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                         slope.astype(np.float64), None, **attrs)
    residual = rng.standard_normal(expected.shape).astype(np.float32) if with_residual else None
    if residual is not None:
        expected = FusedConv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                             slope.astype(np.float64), residual.astype(np.float64), **attrs)
    # One channel is one group: a 1-channel layer is pointwise (unpadded 1x1) or dense.
    one_by_one = kernel == 1 and pads == (0, 0, 0, 0)
    kind = blocked_conv_kind(x.shape, w.shape, group=channels, strides=[stride] * 2, pads=list(pads))
    assert kind == ("depthwise" if channels > 1 else "pointwise" if one_by_one else "dense")
    res_b = None if residual is None else cpu_blocked.to_blocked(residual)
    xb = cpu_blocked.to_blocked(x)
    for op in (Conv_NCHW16c, Conv_NCHW16c_numba):
        y = cpu_blocked.from_blocked(op(xb, w, b, slope, res_b, **attrs), channels)
        _close(y, expected, op.__name__)


@given(channels=st.integers(1, 40), c_out=st.integers(1, 36), height=st.integers(1, 9), width=st.integers(1, 11),
       stride=st.integers(1, 3), activation=st.sampled_from(sorted(ACTIVATION_CODES)), seed=st.integers(0, 999))
@settings(max_examples=40, deadline=None)
def test_blocked_pointwise_op_with_strides_matches_the_reference(channels, c_out, height, width, stride, activation,
                                                                 seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((c_out, channels, 1, 1)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    slope = rng.standard_normal(1).astype(np.float32)  # one slope shared by every channel
    attrs = dict(strides=[stride, stride], activation=activation, alpha=0.1, clip_min=-0.5, clip_max=0.7)
    expected = FusedConv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                         slope.astype(np.float64), **attrs)
    for op in (Conv_NCHW16c, Conv_NCHW16c_numba):
        _close(cpu_blocked.from_blocked(op(cpu_blocked.to_blocked(x), w, b, slope, **attrs), c_out), expected,
               op.__name__)


# c_out up to 80: five output blocks, so a leftover pixel is computed 4 blocks at a time and then 1 (_dense_pixel).
@given(channels=st.integers(1, 36), c_out=st.integers(1, 80), height=st.integers(1, 13), width=st.integers(1, 17),
       kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), pads=st.tuples(*[st.integers(0, 2)] * 4),
       activation=st.sampled_from(sorted(ACTIVATION_CODES)), with_residual=st.booleans(), nchw_input=st.booleans(),
       seed=st.integers(0, 999))
@settings(max_examples=80, deadline=None)
def test_blocked_dense_conv_matches_the_reference(channels, c_out, height, width, kernel, stride, dilation, pads,
                                                  activation, with_residual, nchw_input, seed):
    top, left, bottom, right = pads
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    if height + top + bottom < span[0] or width + left + right < span[1]:
        return  # no output pixel
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((c_out, channels) + kernel).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    slope = rng.standard_normal((c_out, 1, 1)).astype(np.float32)
    attrs = dict(strides=list(stride), dilations=list(dilation), pads=list(pads), activation=activation, alpha=0.1,
                 clip_min=-0.5, clip_max=0.7)
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    out_shape = FusedConv(f64(x), f64(w), f64(b), f64(slope), **attrs).shape
    residual = rng.standard_normal(out_shape).astype(np.float32) if with_residual else None
    expected = FusedConv(f64(x), f64(w), f64(b), f64(slope), f64(residual), **attrs)
    # Up to 36 x 25 products per sum: round-off scales with the sum before Clip or Sigmoid squeezes it.
    before = FusedConv(f64(x), f64(w), f64(b), None, f64(residual), **dict(attrs, activation=""))
    if (kernel, pads) != ((1, 1), (0, 0, 0, 0)):
        assert blocked_conv_kind(x.shape, w.shape, strides=list(stride), dilations=list(dilation),
                                 pads=list(pads)) == "dense"
    res_b = None if residual is None else cpu_blocked.to_blocked(residual)
    xin = x if nchw_input else cpu_blocked.to_blocked(x)
    for op in (Conv_NCHW16c, Conv_NCHW16c_numba):
        if nchw_input and (kernel, pads) == ((1, 1), (0, 0, 0, 0)):
            continue  # pointwise: reads NCHW16c only
        y = cpu_blocked.from_blocked(op(xin, w, b, slope, res_b, **attrs), c_out)
        _close(y, expected, op.__name__, scale=np.abs(before).max())


@given(channels=st.integers(1, 40), height=st.integers(1, 12), width=st.integers(1, 12), kernel=st.integers(1, 4),
       stride=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 3)] * 4), ceil_mode=st.integers(0, 1),
       seed=st.integers(0, 99))
@settings(max_examples=60, deadline=None)
def test_blocked_maxpool_is_bitwise_the_reference(channels, height, width, kernel, stride, pads, ceil_mode, seed):
    if max(pads) >= kernel or height + pads[0] + pads[2] < kernel or width + pads[1] + pads[3] < kernel:
        return  # not a valid MaxPool
    x = np.random.default_rng(seed).standard_normal((2, channels, height, width)).astype(np.float32)
    attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=list(pads), ceil_mode=ceil_mode)
    expected = MaxPool(x, **attrs)
    xb = cpu_blocked.to_blocked(x)
    for op in (MaxPool_NCHW16c, MaxPool_NCHW16c_numba):
        np.testing.assert_array_equal(cpu_blocked.from_blocked(op(xb, **attrs), channels), expected, op.__name__)


@given(channels=st.integers(1, 40), height=st.integers(1, 12), width=st.integers(1, 12), kernel=st.integers(1, 4),
       stride=st.integers(1, 3), pads=st.tuples(*[st.integers(0, 3)] * 4), ceil_mode=st.integers(0, 1),
       count_include_pad=st.integers(0, 1), seed=st.integers(0, 99))
@settings(max_examples=60, deadline=None)
def test_blocked_average_pool_matches_the_reference(channels, height, width, kernel, stride, pads, ceil_mode,
                                                    count_include_pad, seed):
    if max(pads) >= kernel or height + pads[0] + pads[2] < kernel or width + pads[1] + pads[3] < kernel:
        return  # not a valid AveragePool
    x = np.random.default_rng(seed).standard_normal((2, channels, height, width)).astype(np.float32)
    attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=list(pads), ceil_mode=ceil_mode,
                 count_include_pad=count_include_pad)
    expected = AveragePool(x.astype(np.float64), **attrs)
    xb = cpu_blocked.to_blocked(x)
    for op in (AveragePool_NCHW16c, AveragePool_NCHW16c_numba):
        _close(cpu_blocked.from_blocked(op(xb, **attrs), channels), expected, op.__name__)


@pytest.mark.parametrize("shape", [(1, 7, 1, 1), (2, 40, 5, 3), (1, 16, 12, 12)])
def test_blocked_global_average_pool_writes_nchw(shape):
    x = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    expected = GlobalAveragePool(x.astype(np.float64))
    for op in (GlobalAveragePool_NCHW16c, GlobalAveragePool_NCHW16c_numba):
        y = op(cpu_blocked.to_blocked(x), channels=shape[1])
        assert y.shape == shape[:2] + (1, 1) and y.dtype == np.float32
        _close(y, expected, op.__name__)


@given(channels=st.integers(1, 40), height=st.integers(1, 9), width=st.integers(1, 9), out_h=st.integers(1, 19),
       out_w=st.integers(1, 19), mode=st.sampled_from(["nearest", "linear"]),
       coordinate_mode=st.sampled_from(["asymmetric", "half_pixel", "align_corners"]),
       nearest_mode=st.sampled_from(["floor", "round_prefer_floor", "round_prefer_ceil"]), seed=st.integers(0, 99))
@settings(max_examples=60, deadline=None)
def test_blocked_resize_is_bitwise_the_reference(channels, height, width, out_h, out_w, mode, coordinate_mode,
                                                 nearest_mode, seed):
    x = np.random.default_rng(seed).standard_normal((2, channels, height, width)).astype(np.float32)
    attrs = dict(out_hw=[out_h, out_w], scales=[out_h / height, out_w / width], mode=mode,
                 coordinate_transformation_mode=coordinate_mode, nearest_mode=nearest_mode)
    from minicnn.ops.resize import resize

    expected = resize(x, [2, channels, out_h, out_w], [np.float32(1), np.float32(1)] + [np.float32(v) for v in
                      attrs["scales"]], mode, coordinate_mode, nearest_mode)
    xb = cpu_blocked.to_blocked(x)
    for op in (Resize_NCHW16c, Resize_NCHW16c_numba):
        np.testing.assert_array_equal(cpu_blocked.from_blocked(op(xb, **attrs), channels), expected, op.__name__)


@pytest.mark.parametrize("channels, extra", [(24, 4), (16, 16), (3, 30), (32, 1)])
def test_channel_padding_keeps_the_layout(channels, extra):
    x = np.random.default_rng(0).standard_normal((1, channels, 5, 6)).astype(np.float32)
    xb = cpu_blocked.to_blocked(x)
    xb[:, -1, :, :, channels % 16 or 16:] = 0.5  # what padding lanes may hold after a Sigmoid: must not leak
    expected = np.pad(x, ((0, 0), (0, extra), (0, 0), (0, 0)))
    for op in (PadChannels_NCHW16c, PadChannels_NCHW16c_numba):
        np.testing.assert_array_equal(cpu_blocked.from_blocked(op(xb, channels=channels, extra=extra),
                                                               channels + extra), expected, op.__name__)


@pytest.mark.parametrize("op, attrs, w_shape", [
    ("depthwise", dict(group=24, strides=[2, 2], pads=[1, 1, 1, 1]), (24, 1, 3, 3)),
    ("depthwise", dict(group=40, pads=[2, 2, 2, 2]), (40, 1, 5, 5)),
    ("pointwise", dict(strides=[2, 2]), (20, 36, 1, 1)),
    ("dense", dict(strides=[2, 2], pads=[1, 1, 1, 1]), (16, 3, 3, 3)),   # a stem: reads NCHW
    ("dense", dict(strides=[2, 2], pads=[1, 1, 2, 2]), (24, 3, 5, 5)),   # BlazeFace's stem
    ("dense", dict(pads=[1, 1, 1, 1]), (64, 48, 3, 3)),                 # reads NCHW16c
    ("dense", dict(strides=[2, 1], dilations=[1, 2], pads=[0, 2, 1, 0]), (20, 20, 3, 2)),
])
def test_blocked_convolutions_match_onnxruntime(op, attrs, w_shape):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, w_shape[1] * attrs.get("group", 1), 17, 19)).astype(np.float32)
    w = (rng.standard_normal(w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rng.standard_normal(w_shape[0]).astype(np.float32)
    (expected,) = run_ort(one_node_model("Conv", [x, w, b], attrs), [x, w, b])
    assert blocked_conv_kind(x.shape, w.shape, **attrs) == op
    inputs = [cpu_blocked.to_blocked(x)] + ([x] if op == "dense" else [])
    for xin in inputs:
        y = cpu_blocked.from_blocked(Conv_NCHW16c_numba(xin, w, b, **attrs), w_shape[0])
        _close(y, expected)


def test_conv_kinds():
    assert blocked_conv_kind((1, 8, 9, 9), (16, 8, 3, 3)) == "dense"
    assert blocked_conv_kind((1, 8, 9, 9), (16, 8, 1, 1), pads=[1, 1, 1, 1]) == "dense"  # padded 1x1
    assert blocked_conv_kind((1, 8, 9, 9), (16, 8, 1, 1), strides=[2, 2]) == "pointwise"
    assert blocked_conv_kind((1, 8, 9, 9), (8, 1, 3, 3), group=8) == "depthwise"
    assert blocked_conv_kind((1, 8, 9, 9), (8, 1, 3, 3), group=8, dilations=[2, 2]) is None  # dilated depthwise
    assert blocked_conv_kind((1, 8, 9, 9), (8, 2, 3, 3), group=4) is None  # groups of 2 channels
    assert blocked_conv_kind((1, 8, 9), (16, 8, 1)) is None  # 1-D


def test_blocked_ops_name_the_layout_they_expect():
    with pytest.raises(minicnn.InputError, match=r"NCHW16c tensor .* got \[1, 8, 4\]"):
        Conv_NCHW16c_numba(np.zeros((1, 8, 4), np.float32), np.zeros((8, 8, 1, 1), np.float32))
    with pytest.raises(minicnn.InputError, match=r"an NCHW input \[1, 8, 4, 4\] is read only by a dense"):
        Conv_NCHW16c_numba(np.zeros((1, 8, 4, 4), np.float32), np.zeros((8, 8, 1, 1), np.float32))
    with pytest.raises(minicnn.InputError, match=r"read 40 channels, the input has 2 blocks"):
        Conv_NCHW16c(np.zeros((1, 2, 4, 4, 16), np.float32), np.zeros((8, 40, 3, 3), np.float32))
    from minicnn.ops.blocked import FromNCHW16c_numba

    with pytest.raises(minicnn.InputError, match=r"channels 0:40 do not fit \[1, 2, 3, 3, 16\]"):
        FromNCHW16c_numba(np.zeros((1, 2, 3, 3, 16), np.float32), channels=40)
    with pytest.raises(minicnn.InputError, match=r"channels 20:32 do not fit \[1, 1, 3, 3, 16\]"):
        FromNCHW16c_numba(np.zeros((1, 1, 3, 3, 16), np.float32), channels=12, first=20)


# ---------------------------------------------------------------------------
# The layout pass on small graphs
# ---------------------------------------------------------------------------
def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _chain_model(seed=0) -> onnx.ModelProto:
    """Every rule of the pass in one graph.

    x(3ch) -> Conv 3x3 (dense, reads the NCHW image) -> Relu -> depthwise -> 1x1 (24) -> Add(residual: Pad of
    a 1x1 (20)) (the optimiser fuses that Add into the 1x1) -> MaxPool -> m; h = Add(Sigmoid(m), m) -> strided
    1x1 -> outputs: that tensor, and its Softmax (NCHW again); a dilated 3x3 of h (32: blocked) and a 3x3 of h
    with 2 output channels (blocked only as a small layer) are outputs too.
    """
    rng = np.random.default_rng(seed)
    w = lambda *s: _init(f"w{len(inits)}", rng.standard_normal(s) * 0.3)  # noqa: E731
    inits = []
    inits.append(w(16, 3, 3, 3)); stem = inits[-1].name          # noqa: E702
    inits.append(w(16, 1, 3, 3)); dw = inits[-1].name            # noqa: E702
    inits.append(w(24, 16, 1, 1)); pw = inits[-1].name           # noqa: E702
    inits.append(w(20, 16, 1, 1)); side = inits[-1].name         # noqa: E702
    inits.append(w(40, 24, 1, 1)); last = inits[-1].name         # noqa: E702
    inits.append(w(32, 24, 3, 3)); wide = inits[-1].name         # noqa: E702
    inits.append(w(2, 24, 3, 3)); narrow = inits[-1].name        # noqa: E702
    inits.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 4, 0, 0], np.int64), "pads"))
    nodes = [
        helper.make_node("Conv", ["in0", stem], ["s"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["s"], ["r"]),
        helper.make_node("Conv", ["r", dw], ["d"], group=16, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", pw], ["p"]),
        helper.make_node("Conv", ["r", side], ["q"]),
        helper.make_node("Pad", ["q", "pads"], ["qp"], mode="constant"),
        helper.make_node("Add", ["p", "qp"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["m"], ["g"]),
        helper.make_node("Add", ["g", "m"], ["h"]),
        helper.make_node("Conv", ["h", last], ["y"], strides=[2, 2]),
        helper.make_node("Softmax", ["y"], ["z"], axis=1),
        helper.make_node("Conv", ["h", wide], ["k"], pads=[2, 1, 2, 0], dilations=[2, 1]),
        helper.make_node("Conv", ["h", narrow], ["e"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [1, 3, 22, 26])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "yzke"],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # what the installed onnxruntime reads
    return model


# The 2-channel 3x3 at the end is 11 x 13 x 16 x 32 x 9 = 0.66M multiply-adds with its padding lanes: blocked as a
# small layer (layout.SMALL_DENSE_LANE_MACS); with that threshold at 0, MIN_LANES_USED keeps it in NCHW.
@pytest.mark.parametrize("small_macs, last_ops", [
    (None, ["Conv_NCHW16c", "Conv_NCHW16c", "FromNCHW16c", "FromNCHW16c"]),
    (0, ["Conv_NCHW16c", "FromNCHW16c", "Conv", "FromNCHW16c"]),
])
def test_the_pass_blocks_the_chain_and_converts_at_its_ends(monkeypatch, small_macs, last_ops):
    if small_macs is not None:
        monkeypatch.setattr(layout, "SMALL_DENSE_LANE_MACS", small_macs)
    model = _chain_model()
    sess = minicnn.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(1).standard_normal((1, 3, 22, 26)).astype(np.float32)
    sess.run(None, {"in0": x})
    blocked = next(iter(sess._plans.values())).blocked
    ops = [s.node.op_type for s in blocked.steps]
    assert ops == ["Conv_NCHW16c", "Conv_NCHW16c", "Conv_NCHW16c", "PadChannels_NCHW16c", "Conv_NCHW16c",
                   "MaxPool_NCHW16c", "Sigmoid", "Add", "Conv_NCHW16c", "FromNCHW16c", "Softmax"] + last_ops, ops
    assert blocked.steps[0].node.inputs[0] == "in0"  # the stem reads the 3-channel image in NCHW: no ToNCHW16c
    outputs = {n for s in blocked.steps for n in s.node.outputs}
    assert set("yzke") <= outputs and "g" + SUFFIX in outputs and "g" not in outputs


def _blocked_matches_nchw_and_onnxruntime(model: onnx.ModelProto, x: np.ndarray):
    """Sessions with and without the layout pass on ``x`` (fed as ``in0``): every output of the blocked one within
    tolerance of the NCHW one and of onnxruntime, on the first run (which builds the plans) and the second (which
    runs the prepared NCHW16c plan). Returns both sessions."""
    expected = run_ort(model, [x])
    blocked = minicnn.InferenceSession(model.SerializeToString())
    nchw = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    for _ in range(2):
        got, plain = blocked.run(None, {"in0": x}), nchw.run(None, {"in0": x})
        assert len(got) == len(plain) == len(expected)
        for k, (a, b, e) in enumerate(zip(got, plain, expected)):
            _close(a, b, f"output {k}")
            _close(a, e, f"output {k}")
    return blocked, nchw


def test_blocked_runs_match_the_nchw_plan_and_onnxruntime():
    x = np.random.default_rng(2).standard_normal((1, 3, 22, 26)).astype(np.float32)
    blocked, nchw = _blocked_matches_nchw_and_onnxruntime(_chain_model(), x)
    assert next(iter(blocked._plans.values())).blocked is not None
    assert next(iter(nchw._plans.values())).blocked is None


@pytest.mark.parametrize("op, attrs, constants, opset", [
    ("Resize", dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     [np.zeros(0, np.float32), np.array([1, 1, 2, 2], np.float32)], 13),            # the detectors' upsampling
    ("Resize", dict(mode="linear", coordinate_transformation_mode="half_pixel"),
     [np.zeros(0, np.float32), np.zeros(0, np.float32), np.array([1, 20, 14, 22], np.int64)], 13),  # BlazeFace
    ("Resize", dict(mode="nearest", coordinate_transformation_mode="half_pixel"),
     [np.zeros(0, np.float32), np.array([1, 1, 1.5, 0.5], np.float32)], 13),
    ("Upsample", dict(mode="nearest"), [np.array([1, 1, 2, 3], np.float32)], 9),
])
def test_the_pass_runs_resizes_blocked(op, attrs, constants, opset):
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array((rng.standard_normal((20, 3, 1, 1)) * 0.5).astype(np.float32), "w")
    names = [f"c{i}" if c.size else "" for i, c in enumerate(constants)]
    inits = [w] + [numpy_helper.from_array(c, n) for c, n in zip(constants, names) if n]
    nodes = [helper.make_node("Conv", ["in0", "w"], ["a"]), helper.make_node(op, ["a"] + names, ["r"], **attrs),
             helper.make_node("Relu", ["r"], ["y"])]
    graph = helper.make_graph(nodes, "resize", [helper.make_tensor_value_info("in0", TensorProto.FLOAT,
                                                                              [1, 3, 7, 11])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    x = rng.standard_normal((1, 3, 7, 11)).astype(np.float32)
    (expected,) = run_ort(model, [x])
    sess = minicnn.InferenceSession(model.SerializeToString())
    nchw = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    for _ in range(2):
        (got,), (plain,) = sess.run(None, {"in0": x}), nchw.run(None, {"in0": x})
        _close(got, expected)
        _close(got, plain)
    ops = [s.node.op_type for s in next(iter(sess._plans.values())).blocked.steps]
    assert ops == ["ToNCHW16c", "Conv_NCHW16c", "Resize_NCHW16c", "Relu", "FromNCHW16c"], ops


def test_the_pass_runs_pools_blocked_and_ends_with_a_global_mean_in_nchw():
    rng = np.random.default_rng(7)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
             for n, s in (("w0", (32, 3, 3, 3)), ("w1", (24, 32, 1, 1)))]
    nodes = [helper.make_node("Conv", ["in0", "w0"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("AveragePool", ["a"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                              count_include_pad=1),
             helper.make_node("Conv", ["p", "w1"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "pools", [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [1, 3, 13, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    x = rng.standard_normal((1, 3, 13, 10)).astype(np.float32)
    (expected,) = run_ort(model, [x])
    sess = minicnn.InferenceSession(model.SerializeToString())
    for _ in range(2):
        _close(sess.run(None, {"in0": x})[0], expected)
    ops = [s.node.op_type for s in next(iter(sess._plans.values())).blocked.steps]
    assert ops == ["Conv_NCHW16c", "AveragePool_NCHW16c", "Conv_NCHW16c", "GlobalAveragePool_NCHW16c", "Flatten"], ops


def _heads_model() -> onnx.ModelProto:
    """A detector head: a 1x1 layer's output ``t`` read by sibling convolutions.

    Three 3x3 ones with 2, 8 and 20 outputs (stacked: 2 blocks instead of
    4), two 1x1 ones with a Relu and 4 and 10 outputs (1 block instead of
    2), a 3x3 with 20 outputs and a Relu (its activation differs from the
    first group's: not stacked with it), and two 1x1 ones with 16 outputs
    each (2 blocks either way: not stacked). Each output is transposed to
    NHWC, as the detectors do.
    """
    rng = np.random.default_rng(7)
    inits = [_init("w_t", rng.standard_normal((24, 16, 1, 1)) * 0.3)]
    nodes = [helper.make_node("Conv", ["in0", "w_t"], ["t"])]
    heads = [("a", 2, 3, None), ("b", 8, 3, None), ("c", 20, 3, None), ("d", 4, 1, "Relu"), ("e", 10, 1, "Relu"),
             ("f", 20, 3, "Relu"), ("g", 16, 1, None), ("h", 16, 1, None)]
    for name, m, k, act in heads:
        inits += [_init(f"w_{name}", rng.standard_normal((m, 24, k, k)) * 0.2),
                  _init(f"b_{name}", rng.standard_normal(m))]
        pads = [k // 2] * 4
        conv_out = f"{name}_conv" if act else f"{name}_pre"
        nodes.append(helper.make_node("Conv", ["t", f"w_{name}", f"b_{name}"], [conv_out], pads=pads,
                                      name=f"{name}_head"))
        if act:
            nodes.append(helper.make_node(act, [conv_out], [f"{name}_pre"]))
        nodes.append(helper.make_node("Transpose", [f"{name}_pre"], [name], perm=[0, 2, 3, 1]))
    graph = helper.make_graph(nodes, "heads", [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [1, 16, 9, 11])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n, *_ in heads],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_sibling_convolutions_are_stacked_and_split_back():
    """``layout.merge_sibling_convs``: fewer blocks, the same outputs (each channel has the same weights and inputs)."""
    x = np.random.default_rng(8).standard_normal((1, 16, 9, 11)).astype(np.float32)
    fast, _ = _blocked_matches_nchw_and_onnxruntime(_heads_model(), x)
    steps = next(iter(fast._plans.values())).blocked.steps
    stacked = sorted(s.node.name for s in steps if s.node.op_type == "Conv_NCHW16c" and " + " in s.node.name)
    assert stacked == ["a_head + b_head + c_head", "d_head + e_head"], stacked
    pieces = {s.node.outputs[0]: (s.node.attrs["first"], s.node.attrs["channels"]) for s in steps
              if s.node.op_type == "FromNCHW16c" and s.node.attrs.get("first", 0) > 0}
    assert pieces == {"b_pre": (2, 8), "c_pre": (10, 20), "e_pre": (4, 10)}, pieces
    assert not any("Split" == s.node.op_type for s in steps)  # each piece went straight to NCHW


def test_intermediates_and_steps_stay_in_nchw():
    model = _chain_model()
    sess = minicnn.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(2).standard_normal((1, 3, 22, 26)).astype(np.float32)
    sess.run(None, {"in0": x})
    _, tensors = sess.run(None, {"in0": x}, intermediates=True)
    assert not any(name.endswith(SUFFIX) for name in tensors)
    assert tensors["g"].shape == (1, 24, 11, 13)
    assert [s.node.op_type for s in sess.steps({"in0": x})][-3:] == ["Softmax", "Conv", "Conv"]


def test_nothing_to_block_gives_no_blocked_plan():
    sess = minicnn.InferenceSession(one_node_model("Relu", [np.zeros((1, 4, 3, 3), np.float32)]).SerializeToString())
    sess.run(None, {"in0": np.ones((1, 4, 3, 3), np.float32)})
    assert next(iter(sess._plans.values())).blocked is None
    graph = sess._plans[next(iter(sess._plans))].plan.graph
    assert block_graph(graph, {"in0": (1, 4, 3, 3), "out0": (1, 4, 3, 3)}) is None


def test_an_unknown_layout_is_refused():
    with pytest.raises(ValueError, match="unknown layout 'NHWC'"):
        minicnn.InferenceSession(_chain_model().SerializeToString(), layout="NHWC")


@pytest.mark.parametrize("channels", [16, 40])  # one block per image, three
def test_threads_split_the_kernels_without_changing_a_bit(channels, monkeypatch):
    from minicnn import threads

    for threshold in ("MIN_PARALLEL_MACS", "MIN_PARALLEL_DEPTHWISE_MACS", "MIN_PARALLEL_VALUES"):
        monkeypatch.setattr(cpu_blocked, threshold, 0)  # split even these small layers
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, channels, 30, 35)).astype(np.float32)
    w_dw = rng.standard_normal((channels, 1, 3, 3)).astype(np.float32)
    w_pw = rng.standard_normal((24, channels, 1, 1)).astype(np.float32)
    w_dense = rng.standard_normal((40, channels, 3, 3)).astype(np.float32)
    w_wide = rng.standard_normal((80, channels, 3, 3)).astype(np.float32)  # 5 blocks: leftover pixels 4 + 1 at a time
    xb = cpu_blocked.to_blocked_fast(x)

    def everything():
        return [cpu_blocked.to_blocked_fast(x), cpu_blocked.from_blocked_fast(xb, channels),
                Conv_NCHW16c_numba(xb, w_dw, group=channels, pads=[1, 1, 1, 1], activation="Relu"),
                Conv_NCHW16c_numba(xb, w_pw),
                Conv_NCHW16c_numba(xb, w_dense, pads=[1, 1, 1, 1]), Conv_NCHW16c_numba(x, w_dense, strides=[2, 2]),
                Conv_NCHW16c_numba(xb, w_wide, strides=[10, 12], pads=[1, 1, 1, 1]),  # 3x3 pixels: a tile + 1
                MaxPool_NCHW16c_numba(xb, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
                AveragePool_NCHW16c_numba(xb, kernel_shape=[2, 2], strides=[2, 2]),
                Resize_NCHW16c_numba(xb, out_hw=[60, 70], scales=[2.0, 2.0], mode="nearest",
                                     coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                Resize_NCHW16c_numba(xb, out_hw=[45, 52], scales=[1.5, 1.5], mode="linear",
                                     coordinate_transformation_mode="half_pixel", nearest_mode="floor")]

    with threads.limit(1):
        one = everything()
    with threads.limit(2):
        assert len(cpu_blocked._plane_chunks(1, 96, True)) == 4
        assert len(cpu_blocked._pixel_and_block_chunks(64, 3, True)) == 4  # 2 pixel ranges x 2 groups of blocks
        two = everything()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
