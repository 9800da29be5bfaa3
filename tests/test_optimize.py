"""The load-time rewrites of ``minicnn.optimize`` on small hand-built graphs, against onnxruntime.

Each test builds the pattern a real export contains, checks what the
optimiser turned it into (which nodes remain) and that the optimised session
still gives onnxruntime's answer. Folding a per-channel scale into the
weights changes the rounding (``conv(x) * s`` vs ``conv_{W*s}(x)``), so
outputs are compared with atol=1e-5, rtol=1e-4, as in test_session.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import minicnn

TOL = dict(atol=1e-5, rtol=1e-4)


def _model(nodes, inputs, initializers, output="y", opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [onnx.ValueInfoProto(name=output)],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8  # what onnxruntime 1.31 accepts
    return model


def _ort(model, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


def _check(model, feeds, backends=("numpy", "numba")):
    """The optimised graph's op types (per backend) after checking each backend against onnxruntime."""
    (ref,) = _ort(model, feeds)
    ops = None
    for backend in backends:
        sess = minicnn.InferenceSession(model.SerializeToString(), backend=backend)
        (ours,) = sess.run(None, feeds)
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, **TOL)
        ops = [n.op_type for n in sess.graph.nodes]
    return ops


rng = np.random.default_rng(0)
W = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
B = rng.standard_normal(6).astype(np.float32)
X = rng.standard_normal((1, 4, 9, 11)).astype(np.float32)
CONV = helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])


@pytest.mark.parametrize("scale_shape, offset_shape", [((1, 6, 1, 1), (6, 1, 1)), ((1,), ()), ((6, 1, 1), (1, 6, 1, 1))])
def test_per_channel_mul_add_fold_into_the_conv(scale_shape, offset_shape):
    # Conv -> Mul(scale) -> Add(offset) -> Relu, an inference BatchNorm as some exporters write it.
    model = _model([CONV, helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Add", ["o", "m"], ["a"]),
                    helper.make_node("Relu", ["a"], ["y"])],
                   [("x", list(X.shape))],
                   {"W": W, "B": B, "s": rng.uniform(0.5, 2, scale_shape), "o": rng.standard_normal(offset_shape)})
    assert _check(model, {"x": X}) == ["FusedConv"]


def test_sub_of_a_constant_folds_but_not_the_other_way_round():
    offset = rng.standard_normal((1, 6, 1, 1))
    folded = _model([CONV, helper.make_node("Sub", ["c", "o"], ["y"])], [("x", list(X.shape))],
                    {"W": W, "B": B, "o": offset})
    assert _check(folded, {"x": X}) == ["Conv"]
    kept = _model([CONV, helper.make_node("Sub", ["o", "c"], ["y"])], [("x", list(X.shape))],
                  {"W": W, "B": B, "o": offset})
    assert _check(kept, {"x": X}) == ["Conv", "Sub"]


@pytest.mark.parametrize("shape", [(1, 1, 1, 11), (1, 1, 9, 1), (2, 6, 1, 1), (1, 1, 6, 1, 1)])
def test_constants_that_are_not_per_channel_stay(shape):
    # A spatial pattern, a batch dim or a higher rank changes the output in ways the weights cannot carry.
    model = _model([CONV, helper.make_node("Mul", ["c", "s"], ["y"])], [("x", list(X.shape))],
                   {"W": W, "B": B, "s": rng.standard_normal(shape)})
    assert _check(model, {"x": X}) == ["Conv", "Mul"]


def test_conv_output_with_a_second_reader_is_not_folded():
    model = _model([CONV, helper.make_node("Mul", ["c", "s"], ["m"]), helper.make_node("Add", ["m", "c"], ["y"])],
                   [("x", list(X.shape))], {"W": W, "B": B, "s": rng.standard_normal((1, 6, 1, 1))})
    assert _check(model, {"x": X}) == ["Conv", "Mul", "Add"]


def test_residual_block_becomes_one_node_placed_after_its_shortcut():
    # Conv -> Add(shortcut) -> Relu where the shortcut (a channel Pad, as in BlazeFace) comes later in the file.
    pad = helper.make_node("Pad", ["x", "pads"], ["shortcut"], mode="constant")
    model = _model([CONV, pad, helper.make_node("Add", ["shortcut", "c"], ["a"]), helper.make_node("Relu", ["a"], ["y"])],
                   [("x", list(X.shape))],
                   {"W": W, "B": B})
    model.graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 2, 0, 0], np.int64), "pads"))
    ops = _check(model, {"x": X})
    assert ops == ["Pad", "FusedConv"]
    sess = minicnn.InferenceSession(model.SerializeToString())
    fused = sess.graph.nodes[1]
    assert fused.inputs[4] == "shortcut" and fused.attrs["activation"] == "Relu" and fused.outputs == ["y"]


@pytest.mark.parametrize("other_shape", [(1, 6, 1, 1), (3, 6, 9, 11), (1, 1, 9, 11)])
def test_residual_that_only_broadcasts_gives_the_unfused_answer(other_shape):
    # The optimiser cannot see shapes, so FusedConv must compute Add's broadcast exactly, even to a bigger result.
    model = _model([CONV, helper.make_node("Add", ["c", "r"], ["a"]), helper.make_node("LeakyRelu", ["a"], ["y"])],
                   [("x", list(X.shape)), ("r", list(other_shape))], {"W": W, "B": B})
    r = rng.standard_normal(other_shape).astype(np.float32)
    assert _check(model, {"x": X, "r": r}) == ["FusedConv"]


def test_residual_that_does_not_broadcast_names_both_shapes():
    model = _model([CONV, helper.make_node("Add", ["c", "r"], ["y"])], [("x", list(X.shape)), ("r", [1, 6, 2, 2])],
                   {"W": W, "B": B})
    sess = minicnn.InferenceSession(model.SerializeToString())
    with pytest.raises(minicnn.MiniCNNError, match=r"residual\[1, 6, 2, 2\].*\[1, 6, 9, 11\]"):
        sess.run(None, {"x": X, "r": np.zeros((1, 6, 2, 2), np.float32)})


def test_add_of_a_constant_that_is_not_per_channel_is_not_a_residual():
    model = _model([CONV, helper.make_node("Add", ["c", "k"], ["y"])], [("x", list(X.shape))],
                   {"W": W, "B": B, "k": rng.standard_normal((1, 1, 9, 11))})
    assert _check(model, {"x": X}) == ["Conv", "Add"]


def test_a_repeated_branch_is_computed_once():
    """RetinaFace's SSH pattern: the same convolution (weights stored twice) and activation applied twice to one input.

    The repeat goes; a convolution with the same shapes but other weights,
    and one with other attributes, stay.
    """
    other = rng.standard_normal(W.shape).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["r1"], alpha=0.1),
             helper.make_node("Conv", ["x", "W_copy", "B_copy"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c2"], ["r2"], alpha=0.1),
             helper.make_node("Conv", ["x", "W_other", "B"], ["c3"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "W", "B"], ["c4"], pads=[2, 2, 0, 0]),
             helper.make_node("Concat", ["r1", "r2", "c3", "c4"], ["y"], axis=1)]
    model = _model(nodes, [("x", list(X.shape))], {"W": W, "B": B, "W_copy": W.copy(), "B_copy": B.copy(),
                                                   "W_other": other})
    ops = _check(model, {"x": X})
    assert ops == ["FusedConv", "Conv", "Conv", "Concat"], ops
    sess = minicnn.InferenceSession(model.SerializeToString())
    assert sess.graph.nodes[-1].inputs == ["r1", "r1", "c3", "c4"]


def test_a_repeat_that_writes_a_graph_output_is_kept():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["x"], ["y"])]
    model = _model(nodes, [("x", list(X.shape))], {})
    model.graph.output.insert(0, onnx.ValueInfoProto(name="a"))
    sess = minicnn.InferenceSession(model.SerializeToString())
    assert [n.outputs for n in sess.graph.nodes] == [["a"], ["y"]]
    a, y = sess.run(None, {"x": X})
    np.testing.assert_array_equal(a, y)
