"""Conv, FusedConv and ConvTranspose: every implementation against onnxruntime on the same random cases.

The three convolutions of ``minicnn.ops.conv`` (``conv_direct`` on small
shapes, ``conv_im2col`` = the registered reference, and the numba fast path)
each compute the output of the same one-node model that onnxruntime runs.

Tolerance. Inputs and weights are standard normal, so every output is a
float32 sum of K = C/group * kH * kW products of magnitude ~1, and partial
sums grow like sqrt(K). Each addition rounds with relative error <= 2^-24
(6e-8); onnxruntime, BLAS and our loops add in different orders, so two
correct results differ by about 6e-8 * K in the worst random-walk case
(1e-5 for the largest K = 3*5*5*3 = 225 drawn here). We allow
``atol = 1e-4 * sqrt(K)`` plus ``rtol = 1e-4``: ten times that margin, and
still a thousand times smaller than any indexing mistake (which moves an
output by ~1).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from minicnn import InputError, UnsupportedOpError, threads
from minicnn.ops import conv as conv_ops
from minicnn.ops.registry import get_op
from onnx_util import one_node_model, run_ort

RTOL = 1e-4
DIRECT_MAX_MACS = 20_000  # conv_direct is pure Python: only on shapes this small

numba_conv = get_op("Conv", "numba")
numba_fused = get_op("FusedConv", "numba")
numpy_fused = get_op("FusedConv", "numpy")


def atol_for(W: np.ndarray) -> float:
    """Absolute tolerance for sums of K = prod(W.shape[1:]) products (see the module docstring)."""
    return 1e-4 * np.sqrt(np.prod(W.shape[1:]))


def assert_close(got, expected, W, what: str):
    assert got.shape == expected.shape, f"{what}: shape {got.shape}, onnxruntime {expected.shape}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol_for(W), err_msg=what)


# ---------------------------------------------------------------------------
# Random convolution cases
# ---------------------------------------------------------------------------
@st.composite
def conv_cases(draw, spatial_dims: int = 2, max_side: int = 9):
    """(X, W, B or None, attrs) for a valid ONNX Conv: any kernel, stride, dilation, padding and grouping."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    groups = 1 if kind == "dense" else draw(st.integers(2, 4))
    c_per_group = 1 if kind == "depthwise" else draw(st.integers(1, 3))
    m_per_group = draw(st.integers(1, 2)) if kind == "depthwise" else draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    kernel = [draw(st.integers(1, 5)) for _ in range(spatial_dims)]
    strides = [draw(st.integers(1, 3)) for _ in range(spatial_dims)]
    dilations = [draw(st.integers(1, 3)) for _ in range(spatial_dims)]
    auto_pad = draw(st.sampled_from(["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if auto_pad.startswith("SAME"):
        dilations = [1] * spatial_dims  # onnxruntime refuses dilated SAME; test_same_with_dilation covers it
    pads = [draw(st.integers(0, 2)) for _ in range(2 * spatial_dims)]
    # Sizes from "just fits" to a few pixels more, or 1 pixel (1x1 spatial inputs) when the kernel allows it.
    sizes = []
    for i, (k, d) in enumerate(zip(kernel, dilations)):
        extent = (k - 1) * d + 1
        padded = pads[i] + pads[i + spatial_dims] if auto_pad == "NOTSET" else 0
        smallest = max(1, extent - padded) if auto_pad in ("NOTSET", "VALID") else 1
        sizes.append(draw(st.integers(smallest, max(smallest, max_side))))
    c_in, c_out = groups * c_per_group, groups * m_per_group
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, c_in, *sizes), dtype=np.float32)
    W = rng.standard_normal((c_out, c_per_group, *kernel), dtype=np.float32)
    B = rng.standard_normal(c_out, dtype=np.float32) if draw(st.booleans()) else None
    attrs = dict(kernel_shape=kernel, strides=strides, dilations=dilations, group=groups)
    if auto_pad == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = auto_pad
    return X, W, B, attrs


def ort_conv(X, W, B, attrs, op="Conv"):
    inputs = [X, W] if B is None else [X, W, B]
    return run_ort(one_node_model(op, inputs, attrs), inputs)[0]


def check_conv(X, W, B, attrs):
    expected = ort_conv(X, W, B, attrs)
    assert_close(conv_ops.Conv(X, W, B, **attrs), expected, W, "im2col reference")
    assert_close(numba_conv(X, W, B, **attrs), expected, W, "numba fast path")
    macs = expected.size * np.prod(W.shape[1:])
    if X.ndim == 4 and macs <= DIRECT_MAX_MACS:
        geometry = conv_ops.conv_geometry(X.shape, W.shape, **attrs)
        assert_close(conv_ops.conv_direct(X, W, B, geometry), expected, W, "direct loops")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases())
def test_conv_2d_matches_onnxruntime(case):
    check_conv(*case)


@settings(max_examples=15, deadline=None)
@given(conv_cases(spatial_dims=1, max_side=16))
def test_conv_1d_matches_onnxruntime(case):
    check_conv(*case)


@pytest.mark.slow
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_cases(max_side=20))
def test_conv_2d_matches_onnxruntime_sweep(case):
    check_conv(*case)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_same_with_dilation(auto_pad):
    """onnxruntime does not run dilated SAME convolutions; the spec defines them, so check against the loops."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1, 2, 7, 6), dtype=np.float32)
    W = rng.standard_normal((3, 2, 3, 2), dtype=np.float32)
    attrs = dict(auto_pad=auto_pad, dilations=[2, 3], strides=[2, 1])
    geometry = conv_ops.conv_geometry(X.shape, W.shape, **attrs)
    assert geometry.out_hw == (4, 6)  # SAME: ceil(size / stride)
    expected = conv_ops.conv_direct(X, W, None, geometry)
    assert_close(conv_ops.Conv(X, W, **attrs), expected, W, "im2col reference")
    assert_close(numba_conv(X, W, **attrs), expected, W, "numba fast path")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("x_shape,w_shape,group,strides", [
    ((1, 16, 64, 64), (32, 16, 3, 3), 1, (1, 1)),    # bands of output rows, im2col per band
    ((1, 64, 64, 48), (48, 64, 1, 1), 1, (1, 1)),    # bands, pointwise (no im2col)
    ((1, 3, 130, 128), (16, 3, 3, 3), 1, (2, 2)),    # bands, strided stem convolution
    ((2, 128, 5, 7), (256, 128, 3, 3), 1, (2, 1)),   # small image: output channels split
    ((1, 96, 50, 50), (96, 1, 3, 3), 96, (2, 2)),    # depthwise, channels split, strided
    ((1, 64, 30, 30), (64, 2, 3, 3), 32, (1, 1)),    # grouped: batched GEMM
])
def test_convs_split_between_threads(monkeypatch, n_threads, x_shape, w_shape, group, strides):
    """The fast path split into many chunks (thresholds lowered): every chunk must land in its place."""
    from minicnn.kernels import cpu_conv

    monkeypatch.setattr(cpu_conv, "MIN_PARALLEL_MACS", 0)
    monkeypatch.setattr(cpu_conv, "CHUNK_MACS", 100_000)
    monkeypatch.setattr(cpu_conv, "BAND_BYTES", 20_000)
    rng = np.random.default_rng(1)
    X = rng.standard_normal(x_shape, dtype=np.float32)
    W = rng.standard_normal(w_shape, dtype=np.float32)
    B = rng.standard_normal(w_shape[0], dtype=np.float32)
    attrs = dict(group=group, strides=list(strides), pads=[1, 1, 1, 1] if w_shape[2] == 3 else [0, 0, 0, 0])
    expected = ort_conv(X, W, B, attrs)
    with threads.limit(n_threads):
        assert_close(numba_conv(X, W, B, **attrs), expected, W, f"numba on {n_threads} threads")


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_run_parallel_runs_every_chunk_once(n_threads):
    done = []
    with threads.limit(n_threads):
        threads.run_parallel(done.append, 17)
    assert sorted(done) == list(range(17))


def test_run_parallel_reraises_a_chunk_error():
    def task(k):
        if k == 3:
            raise ValueError("chunk 3 failed")

    with threads.limit(2), pytest.raises(ValueError, match="chunk 3"):
        threads.run_parallel(task, 8)


def test_run_parallel_after_the_helpers_went_to_sleep(monkeypatch):
    """Helpers that spun out (SPIN_READS) sleep; the next job must wake them, and finish."""
    monkeypatch.setattr(threads, "SPIN_READS", 1000)  # ~1 us of spinning: they sleep between jobs
    with threads.limit(2):
        for _ in range(20):
            done = []
            threads.run_parallel(lambda k: (time.sleep(0.001), done.append(k)), 4)
            assert sorted(done) == [0, 1, 2, 3]
            time.sleep(0.002)


def test_run_parallel_from_several_python_threads_at_once():
    """A second caller while a job runs does its own job itself; every chunk of every job runs once."""
    results: dict[tuple[int, int], list] = {}

    def caller(c):
        for rep in range(30):
            got = []
            threads.run_parallel(got.append, 5)
            results[(c, rep)] = sorted(got)

    with threads.limit(2):
        workers = [threading.Thread(target=caller, args=(c,)) for c in range(3)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
    assert len(results) == 90 and all(v == list(range(5)) for v in results.values())


def test_run_parallel_uses_at_most_the_thread_limit():
    lock = threading.Lock()

    def task(names, k):
        with lock:
            names.add(threading.current_thread().name)
        time.sleep(0.002)  # long enough for every helper that may join to join

    with threads.limit(3):
        threads.run_parallel(lambda k: None, 8)  # two helper threads exist now
    with threads.limit(2):
        for _ in range(5):
            names: set[str] = set()
            threads.run_parallel(lambda k: task(names, k), 8)
            assert len(names) <= 2, names


def test_spin_waits_see_a_change_and_time_out():
    from minicnn.kernels import spin

    flags = np.zeros(16, dtype=np.int64)
    assert not spin.wait_while_equal(flags, 0, 0, 1000)
    assert not spin.wait_until_at_least(flags, 8, 1, 1000, 10)
    flags[0], flags[8] = 5, 3
    assert spin.wait_while_equal(flags, 0, 0, 1000, 10)
    assert spin.wait_until_at_least(flags, 8, 3, 1000)
    # A change made by another thread while one spins (the flag is read from memory on every pass).
    flags[:] = 0
    timer = threading.Timer(0.01, lambda: flags.__setitem__(0, 7))
    timer.start()
    assert spin.wait_while_equal(flags, 0, 0, 10**11)
    timer.join()


def test_a_helper_says_when_it_is_out_of_its_spin():
    """``wait_while_equal(..., busy)`` marks ``busy[0]``: 0 while it spins, 1 once it has seen the job."""
    from minicnn.kernels import spin

    flags, busy = np.zeros(16, dtype=np.int64), np.ones(8, dtype=np.int64)
    assert not spin.wait_while_equal(flags, 0, 0, 1000, 0, busy)
    assert busy[0] == 0  # timed out while spinning: not busy
    flags[0] = 1
    assert spin.wait_while_equal(flags, 0, 0, 1000, 10, busy)
    assert busy[0] == 1  # saw the job: out of its spin until it spins again
    with threads.limit(2):  # jobs still finish now that the caller waits for its helpers to spin again
        for _ in range(50):
            threads.run_parallel(lambda k: None, 4)


def test_registry_has_both_backends():
    for op in ("Conv", "FusedConv"):
        assert get_op(op, "numpy") is not get_op(op, "numba")
    assert get_op("ConvTranspose", "numba") is get_op("ConvTranspose", "numpy")


def test_float64_runs_in_float64():
    """The kernels are float32; a float64 model gets the reference's float64 result from the numba backend too."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((1, 2, 5, 5))
    W = rng.standard_normal((3, 2, 3, 3))
    got = numba_conv(X, W, None, pads=[1, 1, 1, 1])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, conv_ops.Conv(X, W, None, pads=[1, 1, 1, 1]), rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------
# FusedConv: Conv (+ residual) + activation, against onnxruntime running the unfused nodes
# ---------------------------------------------------------------------------
ACTIVATION_NODES = {
    "": None,
    "Relu": ("Relu", {}),
    "LeakyRelu": ("LeakyRelu", {"alpha": 0.2}),
    "PRelu": ("PRelu", {}),
    "Sigmoid": ("Sigmoid", {}),
    "Clip": ("Clip", {}),
}


def ort_conv_chain(X, W, B, attrs, activation, slope=None, residual=None, clip=(-0.5, 0.7)):
    """onnxruntime on Conv -> [Add residual] -> activation, the pattern FusedConv replaces."""
    inits = [numpy_helper.from_array(W, "W")]
    conv_inputs = ["x", "W"]
    if B is not None:
        inits.append(numpy_helper.from_array(B, "B"))
        conv_inputs.append("B")
    nodes = [helper.make_node("Conv", conv_inputs, ["conv"], **attrs)]
    feeds = {"x": X}
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X.shape))]
    last = "conv"
    if residual is not None:
        graph_inputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, list(residual.shape)))
        feeds["r"] = residual
        nodes.append(helper.make_node("Add", ["conv", "r"], ["sum"]))
        last = "sum"
    if activation:
        op, act_attrs = ACTIVATION_NODES[activation]
        act_inputs = [last]
        if op == "PRelu":
            inits.append(numpy_helper.from_array(slope, "slope"))
            act_inputs.append("slope")
        elif op == "Clip":
            inits += [numpy_helper.from_array(np.float32(clip[0]), "lo"),
                      numpy_helper.from_array(np.float32(clip[1]), "hi")]
            act_inputs += ["lo", "hi"]
        nodes.append(helper.make_node(op, act_inputs, ["y"], **act_attrs))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(nodes, "chain", graph_inputs, [onnx.ValueInfoProto(name="y")], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    # Disable ORT's own fusions so the reference really runs the nodes one by one.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def chain_case(X, W, B, attrs, activation: str, with_residual: bool, seed: int):
    """A per-channel PRelu slope, a residual of the output's shape (or None), and onnxruntime's
    Conv -> [Add residual] -> activation on them: what a FusedConv test compares with."""
    rng = np.random.default_rng(seed)
    slope = rng.uniform(-0.5, 0.5, (W.shape[0], 1, 1)).astype(np.float32)
    out_shape = ort_conv(X, W, B, attrs).shape
    residual = rng.standard_normal(out_shape, dtype=np.float32) if with_residual else None
    return slope, residual, ort_conv_chain(X, W, B, attrs, activation, slope, residual)


@pytest.mark.parametrize("with_residual", [False, True], ids=["plain", "residual"])
@pytest.mark.parametrize("activation", list(ACTIVATION_NODES), ids=lambda a: a or "none")
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases(), data=st.data())
def test_fused_conv_matches_onnxruntime(activation, with_residual, case, data):
    X, W, B, attrs = case
    c_out = W.shape[0]
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    slope_shape = data.draw(st.sampled_from([(c_out, 1, 1), (1,), (1, 1, 1)]))
    slope = rng.uniform(-0.5, 0.5, slope_shape).astype(np.float32)
    out_shape = ort_conv(X, W, B, attrs).shape
    residual = rng.standard_normal(out_shape, dtype=np.float32) if with_residual else None
    expected = ort_conv_chain(X, W, B, attrs, activation, slope, residual)
    kwargs = dict(attrs, activation=activation, alpha=0.2, clip_min=-0.5, clip_max=0.7, residual=residual)
    for name, fused in (("numpy", numpy_fused), ("numba", numba_fused)):
        got = fused(X, W, B, slope if activation == "PRelu" else None, **kwargs)
        assert_close(got, expected, W, f"FusedConv {activation or 'none'} ({name})")


@st.composite
def direct_3x3_cases(draw):
    """Dense 3x3 convolutions that take the direct kernel (``cpu_conv.conv3x3_direct``): stride 1 or 2, any pads.

    Output channels run across multiples of 4 (the kernel's block, padded
    with zero filters), widths and pads across both column parities (stride
    2 splits columns into even and odd), outputs from the kernel's minimum
    of ``DIRECT_MIN_PIXELS`` = 16 pixels to several runs of
    ``DIRECT_PIXELS`` = 512 positions (a run may end mid-row).
    """
    from minicnn.kernels import cpu_conv

    stride = draw(st.sampled_from([1, 2]))
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    sizes = [draw(st.integers(max(1, 3 - pads[i] - pads[i + 2]), 40)) for i in range(2)]
    out_pixels = np.prod([(sizes[i] + pads[i] + pads[i + 2] - 3) // stride + 1 for i in range(2)])
    assume(out_pixels >= cpu_conv.DIRECT_MIN_PIXELS)
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 10))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, c_in, *sizes), dtype=np.float32)
    W = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
    B = rng.standard_normal(c_out, dtype=np.float32) if draw(st.booleans()) else None
    return X, W, B, dict(strides=[stride, stride], pads=pads)


@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=direct_3x3_cases(), activation=st.sampled_from(["", "Relu", "PRelu"]), with_residual=st.booleans(),
       data=st.data())
def test_direct_3x3_matches_onnxruntime(n_threads, case, activation, with_residual, data):
    """The direct 3x3 kernel, split into bands of rows between threads, with bias, residual and activation."""
    from minicnn.kernels import cpu_conv

    X, W, B, attrs = case
    slope, residual, expected = chain_case(X, W, B, attrs, activation, with_residual,
                                           data.draw(st.integers(0, 2**32 - 1)))
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_conv, "MIN_PARALLEL_MACS", 0)  # split even these small convolutions into bands
        patch.setattr(cpu_conv, "CHUNK_MACS", 2_000)
        got = numba_fused(X, W, B, slope if activation == "PRelu" else None, residual=residual, **attrs,
                          activation=activation)
    assert_close(got, expected, W, f"direct 3x3 kernel, stride {attrs['strides'][0]}, {n_threads} threads")


@st.composite
def depthwise_3x3_cases(draw):
    """Depthwise 3x3 convolutions (``cpu_conv.depthwise_conv3x3``, and ``depthwise_conv3x3_flat`` at stride 1
    on outputs up to FLAT_MAX_WIDTH = 32 wide): strides 1 or 2 in each direction (stride 2 along rows splits the
    window's rows into even and odd columns), asymmetric pads, odd and even sizes from 1 to 48, depth multiplier
    1 or 2."""
    strides = [draw(st.sampled_from([1, 2])) for _ in range(2)]
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    sizes = [draw(st.integers(max(1, 3 - pads[i] - pads[i + 2]), 48)) for i in range(2)]
    n, channels, multiplier = draw(st.integers(1, 2)), draw(st.integers(1, 5)), draw(st.integers(1, 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, channels, *sizes), dtype=np.float32)
    W = rng.standard_normal((channels * multiplier, 1, 3, 3), dtype=np.float32)
    B = rng.standard_normal(channels * multiplier, dtype=np.float32) if draw(st.booleans()) else None
    return X, W, B, dict(strides=strides, pads=pads, group=channels)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=depthwise_3x3_cases(), activation=st.sampled_from(["", "Relu", "PRelu"]), with_residual=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_depthwise_3x3_matches_onnxruntime(case, activation, with_residual, seed):
    X, W, B, attrs = case
    slope, residual, expected = chain_case(X, W, B, attrs, activation, with_residual, seed)
    got = numba_fused(X, W, B, slope if activation == "PRelu" else None, residual=residual, **attrs,
                      activation=activation)
    assert_close(got, expected, W, f"depthwise 3x3 kernel, strides {attrs['strides']}, pads {attrs['pads']}")


@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c_in=st.integers(1, 6), c_out=st.integers(1, 9), h=st.integers(1, 13),
       w=st.integers(1, 13), pads=st.lists(st.integers(0, 2), min_size=4, max_size=4),
       activation=st.sampled_from(["", "Relu", "PRelu"]), with_residual=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_winograd_matches_onnxruntime(n_threads, n, c_in, c_out, h, w, pads, activation, with_residual, seed):
    """Winograd F(2x2, 3x3) (``cpu_conv._winograd_runner``), forced on every 3x3 stride-1 shape: odd and even
    output sizes (the last tile row and column cut), 1x1 outputs, asymmetric pads, the 16 GEMMs split between
    threads, with bias, residual and activation. Its transforms only add and halve: the same tolerance as every
    other path."""
    from minicnn.kernels import cpu_conv

    assume(h + pads[0] + pads[2] >= 3 and w + pads[1] + pads[3] >= 3)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, c_in, h, w), dtype=np.float32)
    W = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
    B = rng.standard_normal(c_out, dtype=np.float32)
    attrs = dict(pads=pads)
    slope, residual, expected = chain_case(X, W, B, attrs, activation, with_residual, seed + 1)
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_conv, "WINOGRAD_MIN_CHANNELS", 1)
        patch.setattr(cpu_conv, "WINOGRAD_MIN_PIXELS", 1)
        patch.setattr(cpu_conv, "WINOGRAD_MIN_OUT_CHANNELS", 1)
        patch.setattr(cpu_conv, "WINOGRAD_MAX_PIXELS", 10**9)
        patch.setattr(cpu_conv, "MIN_PARALLEL_MACS", 0)
        got = numba_fused(X, W, B, slope if activation == "PRelu" else None, residual=residual, **attrs,
                          activation=activation)
    assert_close(got, expected, W, f"Winograd F(2x2, 3x3), {n_threads} threads")


def test_winograd_weights_transform_a_filter_exactly():
    """``U = G g G^T``: for a filter of ones, U's corners and edges follow from G's rows (1, 0, 0), (.5, .5, .5),
    (.5, -.5, .5), (0, 0, 1): row sums 1, 1.5, 0.5, 1."""
    from minicnn.kernels import cpu_conv

    u = cpu_conv.winograd_weights(np.ones((1, 1, 3, 3), np.float32)).reshape(4, 4)
    sums = np.array([1, 1.5, 0.5, 1])
    np.testing.assert_array_equal(u, np.outer(sums, sums).astype(np.float32))


@st.composite
def dense_gemm_cases(draw):
    """Dense convolutions that go through BLAS: any kernel, stride 1-3, dilation 1-2, asymmetric pads, outputs
    from 1 pixel to a few hundred (``cpu_conv.im2row`` below ``IM2ROW_MAX_PIXELS`` = 64, ``im2col_rows`` above),
    more than 64 output channels sometimes (the direct 3x3 kernel takes 3x3 convolutions with fewer)."""
    k_h, k_w = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    s_h, s_w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    d_h, d_w = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pads = [draw(st.integers(0, 2)) for _ in range(4)]
    h = draw(st.integers(max(1, (k_h - 1) * d_h + 1 - pads[0] - pads[2]), 24))
    w = draw(st.integers(max(1, (k_w - 1) * d_w + 1 - pads[1] - pads[3]), 24))
    n, c_in, c_out = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.sampled_from([1, 5, 17, 70]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, c_in, h, w), dtype=np.float32)
    W = rng.standard_normal((c_out, c_in, k_h, k_w), dtype=np.float32)
    B = rng.standard_normal(c_out, dtype=np.float32)
    return X, W, B, dict(strides=[s_h, s_w], dilations=[d_h, d_w], pads=pads)


@pytest.mark.parametrize("builder", ["im2row", "im2col"])
@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=dense_gemm_cases(), activation=st.sampled_from(["", "Relu", "PRelu"]), with_residual=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_im2row_and_im2col_match_onnxruntime(builder, n_threads, case, activation, with_residual, seed):
    """Both builders of the GEMM operand, forced on every output size, each output split into blocks of
    channels (or bands of rows) between threads, with bias, residual and activation."""
    from minicnn.kernels import cpu_conv

    X, W, B, attrs = case
    slope, residual, expected = chain_case(X, W, B, attrs, activation, with_residual, seed)
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_conv, "IM2ROW_MAX_PIXELS", 10**9 if builder == "im2row" else 0)
        patch.setattr(cpu_conv, "MIN_PARALLEL_MACS", 0)  # split even these small convolutions
        patch.setattr(cpu_conv, "CHUNK_MACS", 2_000)
        patch.setattr(cpu_conv, "MIN_BLOCK_CHANNELS", 4)
        got = numba_fused(X, W, B, slope if activation == "PRelu" else None, residual=residual, **attrs,
                          activation=activation)
    assert_close(got, expected, W, f"{builder} + GEMM, {n_threads} threads")


def test_im2row_is_im2col_transposed():
    """``im2row`` holds the same values as ``im2col_rows``, with K in (tap, channel) order instead of
    (channel, tap): a strided, dilated, asymmetrically padded case, compared exactly (both only copy)."""
    from minicnn.kernels import cpu_conv
    from minicnn.ops.conv import conv_geometry

    rng = np.random.default_rng(11)
    c, h, w, k_h, k_w = 3, 7, 9, 3, 2
    x = rng.standard_normal((c, h, w), dtype=np.float32)
    geometry = conv_geometry((1, c, h, w), (4, c, k_h, k_w), strides=[2, 1], dilations=[1, 2], pads=[2, 0, 1, 1])
    (out_h, out_w), (s_h, s_w), (d_h, d_w) = geometry.out_hw, geometry.strides, geometry.dilations
    pad_top, pad_left = geometry.pads[:2]
    cols = np.empty((c * k_h * k_w, out_h * out_w), np.float32)
    cpu_conv.im2col_rows(x, cols, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left, out_w, 0, out_h)
    rows = np.full((out_h * out_w, k_h * k_w * c), np.nan, np.float32)
    cpu_conv.im2row(x, np.empty((h, w, c), np.float32), rows, k_h, k_w, s_h, s_w, d_h, d_w, pad_top, pad_left,
                    out_w)
    as_cols = rows.reshape(out_h * out_w, k_h, k_w, c).transpose(3, 1, 2, 0).reshape(c * k_h * k_w, -1)
    np.testing.assert_array_equal(as_cols, cols)


@pytest.mark.parametrize("size, pads, multiplier", [((8, 8), (1, 1, 1, 1), 1), ((15, 15), (1, 1, 1, 1), 2),
                                                     ((5, 12), (0, 2, 1, 0), 1), ((1, 3), (1, 0, 1, 0), 1),
                                                     ((30, 31), (2, 1, 0, 2), 1)])
@pytest.mark.parametrize("activation, with_residual", [("", False), ("Relu", True), ("PRelu", True)])
def test_flat_and_row_depthwise_kernels_agree(size, pads, multiplier, activation, with_residual):
    """The two stride-1 depthwise 3x3 kernels on the same small planes, called directly (atol/rtol 1e-5: the
    same 9-term sums, which fastmath lets LLVM associate differently)."""
    from minicnn.kernels import cpu_conv
    from minicnn.ops.conv import conv_geometry

    rng = np.random.default_rng(sum(size) + multiplier)
    channels = 3
    X = rng.standard_normal((2, channels, *size), dtype=np.float32)
    W = rng.standard_normal((channels * multiplier, 3, 3), dtype=np.float32)
    B = rng.standard_normal(channels * multiplier, dtype=np.float32)
    slope = rng.uniform(-0.5, 0.5, channels * multiplier).astype(np.float32)
    geometry = conv_geometry(X.shape, (channels * multiplier, 1, 3, 3), group=channels, pads=list(pads))
    out_shape = (2, channels * multiplier, *geometry.out_hw)
    residual = rng.standard_normal(out_shape, dtype=np.float32) if with_residual else cpu_conv._NO_RESIDUAL4
    code = cpu_conv.ACTIVATION_CODES[activation]
    common = (code, np.float32(0.01), slope, np.float32(-np.inf), np.float32(np.inf), residual, with_residual, 0,
              out_shape[0] * out_shape[1])
    rows, flat = np.empty(out_shape, np.float32), np.empty(out_shape, np.float32)
    cpu_conv.depthwise_conv3x3(X, W, B, rows, 1, 1, pads[0], pads[1], *common)
    cpu_conv.depthwise_conv3x3_flat(X, W, B, flat, pads[0], pads[1], *common)
    np.testing.assert_allclose(flat, rows, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_threads", [1, 2])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 2), c_in=st.integers(1, 11), c_out=st.integers(1, 10), h=st.integers(4, 30),
       w=st.integers(4, 40), activation=st.sampled_from(["", "Relu", "PRelu"]), with_residual=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_pointwise_direct_matches_onnxruntime(n_threads, n, c_in, c_out, h, w, activation, with_residual, seed):
    """1x1 convolutions with small weight matrices take ``cpu_conv.pointwise_direct``.

    Input channels run across multiples of 3 (the kernel adds 3 per pass,
    then the rest one by one), output channels across multiples of 4, and
    images up to 1200 pixels, several runs of ``DIRECT_PIXELS`` = 512.
    """
    from minicnn.kernels import cpu_conv

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, c_in, h, w), dtype=np.float32)
    W = rng.standard_normal((c_out, c_in, 1, 1), dtype=np.float32)
    B = rng.standard_normal(c_out, dtype=np.float32)
    slope = rng.uniform(-0.5, 0.5, (c_out, 1, 1)).astype(np.float32)
    residual = rng.standard_normal((n, c_out, h, w), dtype=np.float32) if with_residual else None
    expected = ort_conv_chain(X, W, B, {}, activation, slope, residual)
    with pytest.MonkeyPatch.context() as patch, threads.limit(n_threads):
        patch.setattr(cpu_conv, "MIN_PARALLEL_MACS", 0)  # split even these small convolutions into pixel ranges
        patch.setattr(cpu_conv, "CHUNK_MACS", 2_000)
        got = numba_fused(X, W, B, slope if activation == "PRelu" else None, residual=residual,
                          activation=activation)
    assert_close(got, expected, W, f"direct 1x1 kernel, {n_threads} threads")


def test_fused_conv_takes_residual_positionally():
    """The executor passes a node's inputs in order: X, W, B, slope, residual."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((1, 4, 6, 6), dtype=np.float32)
    W = rng.standard_normal((4, 4, 3, 3), dtype=np.float32)
    residual = rng.standard_normal((1, 4, 6, 6), dtype=np.float32)
    expected = numpy_fused(X, W, None, None, residual=residual, pads=[1, 1, 1, 1], activation="Relu")
    for fused in (numpy_fused, numba_fused):
        got = fused(X, W, None, None, residual, pads=[1, 1, 1, 1], activation="Relu")
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=atol_for(W))


# ---------------------------------------------------------------------------
# ConvTranspose
# ---------------------------------------------------------------------------
@st.composite
def conv_transpose_cases(draw):
    groups = draw(st.integers(1, 3))
    c_per_group, m_per_group = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 4)) for _ in range(2)]
    strides = [draw(st.integers(1, 3)) for _ in range(2)]
    dilations = [draw(st.integers(1, 2)) for _ in range(2)]
    sizes = [draw(st.integers(1, 6)) for _ in range(2)]
    attrs = dict(strides=strides, dilations=dilations, group=groups)
    mode = draw(st.sampled_from(["pads", "output_padding", "output_shape", "SAME_UPPER", "SAME_LOWER"]))
    full = [s * (n - 1) + (k - 1) * d + 1 for n, k, s, d in zip(sizes, kernel, strides, dilations)]
    if mode == "pads":
        pads = [draw(st.integers(0, 2)) for _ in range(4)]
        assume(all(full[i] - pads[i] - pads[i + 2] >= 1 for i in range(2)))
        attrs["pads"] = pads
    elif mode == "output_padding":
        # output_padding < stride: what onnxruntime accepts (the spec also allows < dilation).
        attrs["output_padding"] = [draw(st.integers(0, s - 1)) for s in strides]
    elif mode == "output_shape":
        attrs["output_shape"] = [f - draw(st.integers(0, min(2, f - 1))) for f in full]
    else:
        attrs["auto_pad"] = mode
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((draw(st.integers(1, 2)), groups * c_per_group, *sizes), dtype=np.float32)
    W = rng.standard_normal((groups * c_per_group, m_per_group, *kernel), dtype=np.float32)
    B = rng.standard_normal(groups * m_per_group, dtype=np.float32) if draw(st.booleans()) else None
    return X, W, B, attrs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conv_transpose_cases())
def test_conv_transpose_matches_onnxruntime(case):
    X, W, B, attrs = case
    expected = ort_conv(X, W, B, attrs, op="ConvTranspose")
    # Each output sums at most C/group * kH * kW products, like a convolution with W's first axis as input.
    tol_w = W.transpose(1, 0, 2, 3)
    assert_close(conv_ops.ConvTranspose(X, W, B, **attrs), expected, tol_w, "GEMM + col2im")
    geometry = conv_ops.conv_transpose_geometry(X.shape, W.shape, **attrs)
    assert_close(conv_ops.conv_transpose_direct(X, W, B, geometry), expected, tol_w, "direct loops")


def test_conv_transpose_1d():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1, 2, 7), dtype=np.float32)
    W = rng.standard_normal((2, 3, 3), dtype=np.float32)
    attrs = dict(strides=[2], pads=[1, 0], output_padding=[1])
    assert_close(conv_ops.ConvTranspose(X, W, None, **attrs), ort_conv(X, W, None, attrs, "ConvTranspose"), W,
                 "1-D ConvTranspose")


# ---------------------------------------------------------------------------
# Errors a user can cause
# ---------------------------------------------------------------------------
CONVS = [conv_ops.Conv, numba_conv, numpy_fused, numba_fused]


@pytest.mark.parametrize("fn", CONVS)
def test_channel_mismatch_names_both_shapes(fn):
    X = np.zeros((1, 3, 8, 8), np.float32)
    W = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(InputError, match=r"X\[1, 3, 8, 8\].*W\[4, 2, 3, 3\]"):
        fn(X, W)


@pytest.mark.parametrize("fn", CONVS)
def test_group_must_divide_channels(fn):
    X = np.zeros((1, 6, 8, 8), np.float32)
    W = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(InputError, match="group=4 must divide"):
        fn(X, W, group=4)


@pytest.mark.parametrize("fn", CONVS + [conv_ops.ConvTranspose])
def test_3d_convolution_is_unsupported(fn):
    X = np.zeros((1, 2, 4, 4, 4), np.float32)
    W = np.zeros((2, 2, 3, 3, 3), np.float32)
    with pytest.raises(UnsupportedOpError, match="1-D and 2-D"):
        fn(X, W)


def test_other_bad_inputs():
    X = np.zeros((1, 2, 5, 5), np.float32)
    W = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(InputError, match="bias"):
        numba_conv(X, W, np.zeros(4, np.float32))
    with pytest.raises(InputError, match="does not fit"):
        conv_ops.Conv(X, np.zeros((3, 2, 7, 7), np.float32))
    with pytest.raises(InputError, match="kernel_shape"):
        conv_ops.Conv(X, W, kernel_shape=[5, 5])
    with pytest.raises(InputError, match="auto_pad"):
        conv_ops.Conv(X, W, auto_pad="SAME")
    with pytest.raises(InputError, match="residual"):
        numba_fused(X, W, residual=np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(InputError, match="slope"):
        numpy_fused(X, W, None, np.zeros(2, np.float32), activation="PRelu")
    with pytest.raises(UnsupportedOpError, match="Tanh"):
        numba_fused(X, W, activation="Tanh")
    with pytest.raises(InputError, match="ConvTranspose.*channels"):
        conv_ops.ConvTranspose(X, np.zeros((3, 2, 3, 3), np.float32))
