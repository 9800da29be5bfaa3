"""Small, fully-specified ONNX models for engine tests (no downloads needed).

``tiny_cnn`` has the shape of a real export: Conv -> BatchNormalization ->
Relu -> MaxPool, a second Conv -> PRelu, a Shape/Gather/Unsqueeze/Concat chain
that builds the Reshape target from the runtime batch size (as PyTorch
exports do), then Gemm -> Softmax. Height and width are dynamic.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_cnn(seed: int = 0, opset: int = 13, hw: tuple[int | str, int | str] = ("H", "W")) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)

    def w(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    inits = {
        "conv1.W": w(8, 3, 3, 3), "conv1.B": w(8),
        "bn.scale": (1 + 0.1 * rng.standard_normal(8)).astype(np.float32), "bn.B": w(8),
        "bn.mean": w(8), "bn.var": (0.5 + rng.random(8)).astype(np.float32),
        "conv2.W": w(4, 8, 1, 1), "conv2.B": w(4),
        "prelu.slope": (0.1 * rng.random((4, 1, 1))).astype(np.float32),
        "fc.W": w(5, 4), "fc.B": w(5),
        "gather_idx": np.array(0, dtype=np.int64), "minus_one": np.array([-1], dtype=np.int64),
    }
    nodes = [
        helper.make_node("Conv", ["x", "conv1.W", "conv1.B"], ["c1"], name="conv1", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("BatchNormalization", ["c1", "bn.scale", "bn.B", "bn.mean", "bn.var"], ["bn1"], name="bn1",
                         epsilon=1e-5),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Conv", ["p1", "conv2.W", "conv2.B"], ["c2"], name="conv2"),
        helper.make_node("PRelu", ["c2", "prelu.slope"], ["pr2"], name="prelu2"),
        helper.make_node("GlobalAveragePool", ["pr2"], ["gap"], name="gap"),
        helper.make_node("Shape", ["gap"], ["gap_shape"], name="shape"),
        helper.make_node("Gather", ["gap_shape", "gather_idx"], ["batch"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["batch", "axes0"] if opset >= 13 else ["batch"], ["batch1"], name="unsq",
                         **({} if opset >= 13 else {"axes": [0]})),
        helper.make_node("Concat", ["batch1", "minus_one"], ["target"], name="concat", axis=0),
        helper.make_node("Reshape", ["gap", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "fc.W", "fc.B"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["prob"], name="softmax", axis=1),
    ]
    if opset >= 13:
        inits["axes0"] = np.array([0], dtype=np.int64)
    graph = helper.make_graph(
        nodes, "tiny_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, *hw])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", 5])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
