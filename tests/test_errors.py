"""Every user mistake gets its own clear error, never a bare traceback from deep inside NumPy."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import minicnn
from minicnn import InputError, ModelLoadError, UnsupportedOpError
from tiny_models import tiny_cnn


@pytest.fixture(scope="module")
def model_bytes():
    return tiny_cnn().SerializeToString()


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="no such file"):
        minicnn.InferenceSession(tmp_path / "nope.onnx")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        minicnn.InferenceSession(p)


@pytest.mark.parametrize("cut", [0.5, 0.9])
def test_truncated_model(tmp_path, model_bytes, cut):
    p = tmp_path / "cut.onnx"
    p.write_bytes(model_bytes[: int(len(model_bytes) * cut)])
    with pytest.raises(ModelLoadError, match=r"cut\.onnx"):
        minicnn.InferenceSession(p)


def test_not_onnx(tmp_path):
    p = tmp_path / "photo.onnx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelLoadError, match="photo.onnx"):
        minicnn.InferenceSession(p)


def _one(op_type, domain=""):
    node = helper.make_node(op_type, ["x"], ["y"], name="the_node", domain=domain)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=opsets)


def test_unsupported_op_names_op_node_opset_and_lists_supported():
    with pytest.raises(UnsupportedOpError) as info:
        minicnn.InferenceSession(_one("Hardmax"))
    msg = str(info.value)
    assert "'Hardmax'" in msg and "'the_node'" in msg and "opset 13" in msg
    assert "Supported ops:" in msg and "Conv" in msg


def test_foreign_domain_op():
    with pytest.raises(UnsupportedOpError, match="com.microsoft"):
        minicnn.InferenceSession(_one("FusedGemm", domain="com.microsoft"))


@pytest.fixture(scope="module")
def sess(model_bytes):
    return minicnn.InferenceSession(model_bytes)


def test_missing_input(sess):
    with pytest.raises(InputError, match=r"missing input\(s\) \['x'\]"):
        sess.run(None, {})


def test_unknown_input(sess):
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(InputError, match="'y' is not an input"):
        sess.run(None, {"x": x, "y": x})


def test_initializer_is_not_a_feed(sess):
    with pytest.raises(InputError, match="weight"):
        sess.run(None, {"x": np.zeros((1, 3, 8, 8), np.float32), "conv1.W": np.zeros((8, 3, 3, 3), np.float32)})


def test_wrong_dtype(sess):
    with pytest.raises(InputError, match=r"dtype float64.*float32.*astype"):
        sess.run(None, {"x": np.zeros((1, 3, 8, 8))})


def test_wrong_rank(sess):
    with pytest.raises(InputError, match=r"rank 3.*rank 4"):
        sess.run(None, {"x": np.zeros((3, 8, 8), np.float32)})


def test_wrong_fixed_dim(sess):
    with pytest.raises(InputError, match="dimension 1 must be 3, got 4"):
        sess.run(None, {"x": np.zeros((1, 4, 8, 8), np.float32)})


def test_not_an_array(sess):
    with pytest.raises(InputError, match="numpy array"):
        sess.run(None, {"x": [[1.0]]})


def test_unknown_output_name(sess):
    with pytest.raises(InputError, match="unknown output"):
        sess.run(["nope"], {"x": np.zeros((1, 3, 8, 8), np.float32)})


def test_unknown_backend(model_bytes):
    with pytest.raises(ValueError, match="unknown backend"):
        minicnn.InferenceSession(model_bytes, backend="tpu")


def test_node_failure_names_the_node():
    # A Reshape whose target cannot hold the data: the error names the node and the shapes.
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="bad_reshape")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(np.array([4, 2], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    sess = minicnn.InferenceSession(model)
    with pytest.raises(minicnn.MiniCNNError, match=r"bad_reshape.*Reshape.*float32\[2, 3\]"):
        sess.run(None, {"x": np.zeros((2, 3), np.float32)})
