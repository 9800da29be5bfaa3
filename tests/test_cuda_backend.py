"""The CUDA backend end to end: CudaExecutor on small ONNX graphs vs onnxruntime.

Runs on numba's CUDA simulator (switched on before ``numba.cuda`` is first
imported); the ``gpu`` test repeats an end-to-end run on a real device in a
subprocess. Tolerance against onnxruntime: 1e-4 absolute and relative (float32
convolutions of a few hundred terms, different summation orders).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from minicnn import cuda_backend

from cuda_mode import driver_present, use_simulator_or_device

use_simulator_or_device()

from minicnn.graph import MINICNN_DOMAIN, Graph, Node, ValueInfo, load_model  # noqa: E402
from minicnn.kernels.cuda_conv import conv_reference  # noqa: E402
from minicnn.optimize import optimize  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOL = dict(rtol=1e-4, atol=1e-4)


def _model(nodes, inits: dict, x_shape, opset: int = 13) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "cuda_test", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
        [onnx.ValueInfoProto(name="y")],  # shape and type left to inference
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _w(rng, *shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def conv_relu_pool_gemm_softmax(seed: int = 0) -> onnx.ModelProto:
    """The issue's tiny network: Conv -> Relu -> MaxPool -> Flatten -> Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    inits = {"conv.W": _w(rng, 4, 3, 3, 3), "conv.B": _w(rng, 4), "fc.W": _w(rng, 5, 36), "fc.B": _w(rng, 5)}
    nodes = [
        helper.make_node("Conv", ["x", "conv.W", "conv.B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc.W", "fc.B"], ["g"], name="fc", transB=1),
        helper.make_node("Softmax", ["g"], ["y"], name="softmax", axis=1),
    ]
    return _model(nodes, inits, (2, 3, 6, 6))


def detector_head(seed: int = 0) -> onnx.ModelProto:
    """Preprocessing arithmetic, a depthwise + pointwise block with a residual Add, a LeakyRelu,
    average pooling, two branches concatenated, Reshape/Unsqueeze/Squeeze views and a last-axis Softmax."""
    rng = np.random.default_rng(seed)
    inits = {
        "scale": np.array(0.5, np.float32), "mean": _w(rng, 1, 4, 1, 1), "dw.W": _w(rng, 4, 1, 3, 3),
        "dw.B": _w(rng, 4), "pw.W": _w(rng, 4, 4, 1, 1), "one": np.array([1.0], np.float32),
        "head.W": _w(rng, 6, 4, 1, 1), "prelu": (0.2 * rng.random((4, 1, 1))).astype(np.float32),
        "shape": np.array([1, -1, 2], np.int64), "axes": np.array([0], np.int64),
    }
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["s"], name="scale"),
        helper.make_node("Sub", ["s", "mean"], ["m"], name="sub_mean"),
        helper.make_node("Sub", ["one", "m"], ["m2"], name="one_minus"),  # broadcast on the left operand
        helper.make_node("Conv", ["m2", "dw.W", "dw.B"], ["d"], name="dw", group=4, pads=[1, 1, 1, 1]),
        helper.make_node("PRelu", ["d", "prelu"], ["dp"], name="prelu"),
        helper.make_node("Conv", ["dp", "pw.W"], ["pc"], name="pw"),
        helper.make_node("Add", ["pc", "m2"], ["res"], name="residual"),
        helper.make_node("LeakyRelu", ["res"], ["lr"], name="leaky", alpha=0.2),
        helper.make_node("AveragePool", ["lr"], ["ap"], name="avg", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["ap", "head.W"], ["h1"], name="head1"),
        helper.make_node("Div", ["h1", "scale"], ["h2"], name="div"),
        helper.make_node("Concat", ["h1", "h2"], ["cat"], name="concat", axis=1),
        helper.make_node("Reshape", ["cat", "shape"], ["rs"], name="reshape"),
        helper.make_node("Unsqueeze", ["rs", "axes"], ["us"], name="unsqueeze"),
        helper.make_node("Squeeze", ["us", "axes"], ["sq"], name="squeeze"),
        helper.make_node("Softmax", ["sq"], ["y"], name="softmax", axis=-1),
    ]
    return _model(nodes, inits, (1, 4, 6, 6))


def classifier_head(seed: int = 0) -> onnx.ModelProto:
    """Opset 11 forms: padded AveragePool counting the padding, GlobalAveragePool, MatMul, Gemm with
    alpha/beta and a scalar C, Clip with bound inputs, Identity, and the flattening (coerced) Softmax."""
    rng = np.random.default_rng(seed)
    inits = {"mm.W": _w(rng, 3, 8), "fc.W": _w(rng, 8, 6), "fc.C": np.array([0.25], np.float32),
             "lo": np.array(-0.3, np.float32), "hi": np.array(0.4, np.float32)}
    nodes = [
        helper.make_node("AveragePool", ["x"], ["ap"], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["f"], name="flatten"),
        helper.make_node("MatMul", ["f", "mm.W"], ["mm"], name="matmul"),
        helper.make_node("Gemm", ["mm", "fc.W", "fc.C"], ["g"], name="fc", alpha=0.5, beta=2.0),
        helper.make_node("Clip", ["g", "lo", "hi"], ["cl"], name="clip"),
        helper.make_node("Identity", ["cl"], ["id"], name="identity"),
        helper.make_node("Softmax", ["id"], ["y"], name="softmax", axis=1),
    ]
    return _model(nodes, inits, (2, 3, 5, 5), opset=11)


def test_check_available_passes_here():
    # Under the simulator, or on a real GPU when NUMBA_ENABLE_CUDASIM=0 (else the module was skipped).
    cuda_backend.check_available()


def test_issue_network_matches_onnxruntime():
    model = conv_relu_pool_gemm_softmax()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    executor = cuda_backend.CudaExecutor(optimize(load_model(model)))
    (y,) = executor.run({"x": x}, ["y"])
    np.testing.assert_allclose(y, _ort(model, x), **TOL)
    assert executor.fallback_ops == set()


@pytest.mark.parametrize("optimized", [True, False], ids=["optimized", "as-exported"])
def test_detector_head_runs_entirely_on_the_device(optimized):
    # Optimised, the depthwise Conv + PRelu become one FusedConv; as exported, PRelu runs standalone.
    model = detector_head()
    x = np.random.default_rng(2).standard_normal((1, 4, 6, 6)).astype(np.float32)
    graph = load_model(model)
    executor = cuda_backend.CudaExecutor(optimize(graph) if optimized else graph)
    (y,) = executor.run({"x": x}, ["y"])
    np.testing.assert_allclose(y, _ort(model, x), **TOL)
    assert executor.fallback_ops == set()


def test_classifier_head_opset11_forms_match_onnxruntime():
    model = classifier_head()
    x = np.random.default_rng(8).standard_normal((2, 3, 5, 5)).astype(np.float32)
    executor = cuda_backend.CudaExecutor(optimize(load_model(model)))
    (y,) = executor.run({"x": x}, ["y"])
    np.testing.assert_allclose(y, _ort(model, x), **TOL)
    assert executor.fallback_ops == set()


def test_buffers_are_reused_within_and_across_runs():
    model = detector_head()
    x = np.random.default_rng(3).standard_normal((1, 4, 6, 6)).astype(np.float32)
    executor = cuda_backend.CudaExecutor(optimize(load_model(model)))
    first = executor.run({"x": x}, ["y"])[0]
    allocated = executor.pool.allocations
    second = executor.run({"x": x}, ["y"])[0]
    assert executor.pool.allocations == allocated  # the second run allocates nothing
    assert executor.pool.reuses > 0
    np.testing.assert_array_equal(first, second)


def test_fused_conv_with_residual_and_prelu():
    # The optimiser's internal node, built by hand: FusedConv(X, W, B, slope, residual).
    rng = np.random.default_rng(4)
    x, w, b = _w(rng, 1, 3, 7, 7, scale=1), _w(rng, 5, 3, 3, 3), _w(rng, 5)
    slope, residual = (0.1 * rng.random(5)).astype(np.float32), _w(rng, 1, 5, 4, 4, scale=1)
    attrs = dict(strides=[2, 2], pads=[1, 1, 1, 1], activation="PRelu")
    graph = Graph(
        nodes=[Node("fused", "FusedConv", ["x", "W", "B", "slope", "res"], ["y"], attrs, MINICNN_DOMAIN)],
        initializers={"W": w, "B": b, "slope": slope},
        inputs=[ValueInfo("x", x.shape, np.dtype(np.float32)), ValueInfo("res", residual.shape, np.dtype(np.float32))],
        outputs=[ValueInfo("y", None, np.dtype(np.float32))], opset=13)
    (y,) = cuda_backend.CudaExecutor(graph).run({"x": x, "res": residual}, ["y"])
    want = conv_reference(x, w, b, (2, 2), (1, 1, 1, 1), residual=residual, activation="PRelu", slope=slope)
    np.testing.assert_allclose(y, want, **TOL)


def test_same_upper_padding_and_clip():
    rng = np.random.default_rng(5)
    inits = {"W": _w(rng, 2, 2, 3, 3)}
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", strides=[2, 2], auto_pad="SAME_UPPER"),
             helper.make_node("Clip", ["c"], ["y"], name="clip", min=-0.1, max=0.2)]
    model = _model(nodes, inits, (1, 2, 6, 5), opset=10)
    x = _w(rng, 1, 2, 6, 5, scale=1)
    (y,) = cuda_backend.CudaExecutor(load_model(model)).run({"x": x}, ["y"])
    np.testing.assert_allclose(y, _ort(model, x), **TOL)


def test_op_without_kernel_falls_back_to_the_numpy_reference(caplog):
    rng = np.random.default_rng(6)
    inits = {"W": _w(rng, 3, 2, 1, 1)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], name="transpose", perm=[0, 1, 3, 2]),
             helper.make_node("Conv", ["t", "W"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    model = _model(nodes, inits, (1, 2, 3, 4))
    x = _w(rng, 1, 2, 3, 4, scale=1)
    executor = cuda_backend.CudaExecutor(load_model(model))
    cuda_backend._warned_fallbacks.discard("Transpose")
    with caplog.at_level(logging.WARNING, logger="minicnn.cuda_backend"):
        (y,) = executor.run({"x": x}, ["y"])
        executor.run({"x": x}, ["y"])
    np.testing.assert_allclose(y, _ort(model, x), **TOL)
    assert executor.fallback_ops == {"Transpose"}
    warnings = [r for r in caplog.records if "Transpose runs on the host" in r.getMessage()]
    assert len(warnings) == 1  # once per op type, not per run


def test_op_minicnn_does_not_know_is_an_error():
    graph = Graph(nodes=[Node("n", "NoSuchOp", ["x"], ["y"])], initializers={},
                  inputs=[ValueInfo("x", (1,), np.dtype(np.float32))],
                  outputs=[ValueInfo("y", None, np.dtype(np.float32))], opset=13)
    from minicnn.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError, match="NoSuchOp"):
        cuda_backend.CudaExecutor(graph).run({"x": np.zeros(1, np.float32)}, ["y"])


def test_session_backend_cuda_matches_onnxruntime():
    from minicnn.session import InferenceSession

    from tiny_models import tiny_cnn  # an exported-style CNN: Conv-BN-Relu, MaxPool(ceil), PRelu, Shape chain, Gemm

    proto = tiny_cnn()
    x = np.random.default_rng(7).standard_normal((2, 3, 9, 11)).astype(np.float32)
    want = _ort(proto, x)
    sess = InferenceSession(proto.SerializeToString(), backend="cuda")
    for _ in range(2):  # the first run builds the shape plan on the CPU, the second runs the device executor
        (got,) = sess.run(None, {"x": x})
        np.testing.assert_allclose(got, want, **TOL)


def test_import_minicnn_does_not_import_numba_cuda():
    code = "import sys, minicnn, minicnn.cuda_backend; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "False", result.stderr


@pytest.mark.skipif(driver_present(), reason="a CUDA driver is present: the no-GPU message cannot be provoked")
def test_without_gpu_the_error_says_what_is_missing():
    env = dict(os.environ, **{cuda_backend.SIMULATOR_ENV: "0"})
    code = ("from minicnn import cuda_backend\n"
            "try:\n    cuda_backend.check_available()\nexcept Exception as e:\n"
            "    print(type(e).__name__, '|', e)\n")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=300)
    assert result.stdout.startswith("BackendUnavailableError |"), result.stdout + result.stderr
    assert "NVIDIA GPU" in result.stdout and "NUMBA_ENABLE_CUDASIM=1" in result.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not driver_present(), reason="no CUDA driver on this machine")
def test_issue_networks_on_real_gpu():
    # This process is committed to the simulator: rerun the end-to-end tests in one that is not.
    env = dict(os.environ, **{cuda_backend.SIMULATOR_ENV: "0"})
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not gpu",
                             str(Path(__file__)), "-k", "onnxruntime or device or reuse or fused or padding"],
                            env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    if "no usable GPU" in result.stdout:
        pytest.skip("a CUDA driver is present but numba.cuda sees no usable GPU")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
