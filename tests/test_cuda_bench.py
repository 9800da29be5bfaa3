"""The convolution benchmark's own logic: shape extraction, FLOP counts, tiny geometries, a smoke run.

The benchmark's numbers are not asserted (timings never are); what is tested
is that it measures the right shapes and that its simulator mode validates the
CUDA variants end to end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from minicnn import cuda_backend
from minicnn.errors import BackendUnavailableError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import zoo_shapes  # noqa: E402
from zoo_shapes import ConvShape  # noqa: E402


def _two_conv_model() -> onnx.ModelProto:
    """Conv (SAME_UPPER, stride 2) -> Resize x2 (scales computed at run time) -> depthwise Conv."""
    rng = np.random.default_rng(0)
    inits = {
        "w1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "w2": rng.standard_normal((8, 1, 3, 3)).astype(np.float32),
        "scales": np.array([1, 1, 2, 2], np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Shape", ["c1"], ["s"]),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["sf", "sf"], ["ones"]),
        helper.make_node("Mul", ["ones", "scales"], ["dyn_scales"]),  # defeats static shape inference
        helper.make_node("Resize", ["c1", "", "dyn_scales"], ["r"], mode="nearest"),
        helper.make_node("Conv", ["r", "w2"], ["y"], group=8, pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(nodes, "two_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_conv_shape_arithmetic():
    shape = ConvShape((1, 16, 160, 160), (32, 16, 3, 3), (2, 2), (1, 1, 1, 1))
    assert shape.output == (1, 32, 80, 80)
    assert shape.flops == 2 * 32 * 80 * 80 * 16 * 9
    assert shape.kind == "dense"
    depthwise = ConvShape((1, 16, 20, 20), (16, 1, 3, 3), group=16)
    assert depthwise.depthwise and depthwise.kind == "depthwise" and depthwise.output == (1, 16, 18, 18)
    assert ConvShape((1, 8, 4, 4), (8, 8, 1, 1)).kind == "pointwise"
    assert depthwise.label() == "1x16x20x20 k3x3 ->16 dw"


def test_conv_shapes_resolve_auto_pad_and_follow_runtime_resizes():
    found = dict(zoo_shapes.conv_shapes(_two_conv_model()))
    first, second = (found[name] for name in sorted(found))
    # 640x640 input (the detector size for dynamic dims); SAME_UPPER with stride 2 pads 0 before, 1 after.
    assert first == ConvShape((1, 3, 640, 640), (8, 3, 3, 3), (2, 2), (0, 0, 1, 1))
    # The Resize scales are computed at run time: the shape comes from running the model once.
    assert second == ConvShape((1, 8, 640, 640), (8, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 8)


# -- the simulator validation mode ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench_conv():
    if os.environ.get(cuda_backend.SIMULATOR_ENV) == "0":
        pytest.skip("NUMBA_ENABLE_CUDASIM=0: the simulator mode is not wanted here")
    try:
        cuda_backend.enable_simulator()
    except BackendUnavailableError as exc:
        pytest.skip(f"cannot switch to the CUDA simulator: {exc}")
    import bench_conv

    return bench_conv


@pytest.mark.parametrize("shape", [
    ConvShape((1, 64, 80, 80), (64, 64, 3, 3), (1, 1), (1, 1, 1, 1)),
    ConvShape((1, 16, 320, 320), (16, 1, 3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 16),
    ConvShape((1, 32, 40, 40), (64, 16, 3, 3), (1, 1), (2, 2, 2, 2), (2, 2), 2),
    ConvShape((1, 3, 640, 640), (16, 3, 7, 7), (2, 2), (3, 3, 3, 3)),
])
def test_tiny_keeps_the_geometry(bench_conv, shape):
    small = bench_conv.tiny(shape)
    assert small.w[2:] == shape.w[2:] and small.strides == shape.strides and small.pads == shape.pads
    assert small.dilations == shape.dilations and small.kind == shape.kind
    assert min(small.output) >= 1 and small.flops < shape.flops


def test_simulate_mode_validates_every_cuda_variant(bench_conv):
    shapes = [ConvShape((1, 32, 40, 40), (32, 32, 3, 3), (2, 2), (1, 1, 1, 1)),
              ConvShape((1, 16, 20, 20), (16, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 16)]
    lines = bench_conv.simulate(shapes)
    variants = {line.split("|")[2].strip() for line in lines}
    assert variants == {"im2col + sgemm v1", "im2col + sgemm v2", "im2col + sgemm v3", "im2col + sgemm v4 fused",
                        "depthwise v1 + epilogue", "depthwise v2 fused"}
    assert all(line.rstrip().endswith("| ok |") for line in lines)


def test_script_run_writes_its_report(bench_conv, model_path, tmp_path):
    model_path("gender_cydral")  # fetched by the conftest fixture if missing (4 convolutions: quick)
    bench_conv.main(["--simulate", "--no-cpu", "--models", "gender_cydral", "--top", "2", "--out", str(tmp_path)])
    report = (tmp_path / "bench_conv.md").read_text()
    assert "CUDA columns skipped" in report and "simulator" in report
    assert report.count("| ok |") >= 2
