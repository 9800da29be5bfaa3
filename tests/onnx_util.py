"""Helpers for op tests: build a one-node ONNX model and run it in onnxruntime.

The pattern (borrowed from tinygrad's op tests): write the op once with
``onnx.helper.make_node``, run it in onnxruntime (the reference), run the same
node through minicnn's registry, and compare.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_NP_TO_ONNX = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.bool_): TensorProto.BOOL,
}


def onnx_dtype(arr: np.ndarray) -> int:
    return _NP_TO_ONNX[np.asarray(arr).dtype]


def one_node_model(
    op_type: str,
    inputs: list[np.ndarray | None],
    attrs: dict | None = None,
    n_outputs: int = 1,
    opset: int = 13,
    initializer_inputs: tuple[int, ...] = (),
) -> onnx.ModelProto:
    """A model with a single ``op_type`` node.

    ``inputs[i] is None`` leaves that optional input empty (name ""). Indices in
    ``initializer_inputs`` become initializers instead of graph inputs (needed
    where ORT wants a constant, e.g. Reshape's shape is fine either way).
    """
    names, graph_inputs, inits = [], [], []
    for i, arr in enumerate(inputs):
        if arr is None:
            names.append("")
            continue
        name = f"in{i}"
        names.append(name)
        arr = np.asarray(arr)
        if i in initializer_inputs:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, onnx_dtype(arr), list(arr.shape)))
    out_names = [f"out{k}" for k in range(n_outputs)]
    node = helper.make_node(op_type, names, out_names, **(attrs or {}))
    # An output with no type info: onnxruntime infers it (TensorProto.UNDEFINED would be rejected).
    outputs = [onnx.ValueInfoProto(name=n) for n in out_names]
    graph = helper.make_graph([node], f"one_{op_type}", graph_inputs, outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def run_ort(model: onnx.ModelProto, inputs: list[np.ndarray | None], initializer_inputs=()) -> list[np.ndarray]:
    """Run ``model`` (from ``one_node_model``) in onnxruntime on one thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {
        f"in{i}": np.asarray(a)
        for i, a in enumerate(inputs)
        if a is not None and i not in initializer_inputs
    }
    return sess.run(None, feeds)
