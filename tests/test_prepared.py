"""Prepared steps (``minicnn.ops.registry.register_preparer``) compute exactly what the ops compute.

A plan prepares its convolutions and pools during the first run at an input
shape; later runs call the prepared form. Both drive the same kernels with
the same chunks, so at one thread count the outputs must be *identical*
(compared bit for bit, no tolerance). Across thread counts the chunks differ
and BLAS may sum in another order: atol=1e-5, rtol=1e-5 there.

These tests are about the NCHW plan, so their sessions use ``layout="NCHW"``
(the NCHW16c plan's ops sum in another order; ``tests/test_layout.py``
checks it against the NCHW plan and onnxruntime with a tolerance).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import minicnn
from minicnn import threads
from minicnn.executor import run_node
from tiny_models import tiny_cnn

rng = np.random.default_rng(0)


def _w(*shape):
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def _model(nodes, inputs, inits, outputs=("y",), opset=13):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [onnx.ValueInfoProto(name=o) for o in outputs],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _unprepared(sess, feeds):
    """Every node through its op function (``steps`` never uses prepared forms)."""
    env = {}
    for step in sess.steps(feeds):
        env.update(step.outputs)
    return [env[o.name] for o in sess.get_outputs()]


def _every_prepared_kind():
    """Depthwise, dense 3x3 (direct), 1x1, 5x5 (im2col), 3x3 stride 3 (im2row), residual + PRelu, 1-D conv,
    max and average pools."""
    F = TensorProto.FLOAT
    nodes = [
        helper.make_node("Conv", ["x", "dw.W", "dw.B"], ["dw"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["dw", "d3.W", "d3.B"], ["d3"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["d3"], ["r3"]),
        helper.make_node("Conv", ["r3", "pw.W"], ["pw"]),
        helper.make_node("MaxPool", ["x"], ["mp"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["mp", "g5.W", "g5.B"], ["g5"], pads=[2, 2, 2, 2]),
        helper.make_node("Add", ["pw", "g5"], ["sum"]),
        helper.make_node("PRelu", ["sum", "slope"], ["act"]),
        helper.make_node("AveragePool", ["act"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
        helper.make_node("Conv", ["seq", "c1.W", "c1.B"], ["y1"], pads=[1, 1], strides=[2]),
        helper.make_node("Conv", ["mp", "s3.W"], ["y2"], pads=[1, 0, 0, 1], strides=[3, 3]),  # 12 pixels: im2row
    ]
    inits = {"dw.W": _w(8, 1, 3, 3), "dw.B": _w(8), "d3.W": _w(12, 8, 3, 3), "d3.B": _w(12), "pw.W": _w(6, 12, 1, 1),
             "g5.W": _w(6, 8, 5, 5), "g5.B": _w(6), "slope": np.abs(_w(6, 1, 1)), "c1.W": _w(5, 4, 3), "c1.B": _w(5),
             "s3.W": _w(5, 8, 3, 3)}
    return _model(nodes, [("x", F, [1, 8, 19, 22]), ("seq", F, [2, 4, 31])], inits, outputs=("y", "y1", "y2"))


def test_prepared_runs_are_bitwise_the_ops_results():
    model = _every_prepared_kind()
    sess = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    feeds = {"x": rng.standard_normal((1, 8, 19, 22)).astype(np.float32),
             "seq": rng.standard_normal((2, 4, 31)).astype(np.float32)}
    first = sess.run(None, feeds)  # builds and prepares the plan
    plan = next(iter(sess._plans.values())).plan
    prepared = sorted(s.node.op_type for s in plan.steps if s.prepared is not None)
    assert prepared == ["AveragePool", "Conv", "Conv", "Conv", "Conv", "FusedConv", "FusedConv", "MaxPool"], prepared
    again = sess.run(None, feeds)  # runs the prepared forms
    for a, b, c in zip(first, again, _unprepared(sess, feeds)):
        assert np.array_equal(a, b) and np.array_equal(b, c)


def _check_one_prepared_node(node, inits, opset):
    """A one-node model on a (1, 3, 7, 5) input: the node is prepared, and the prepared run, the first run and
    the op through ``steps`` agree bit for bit."""
    model = _model([node], [("x", TensorProto.FLOAT, [1, 3, 7, 5])], inits, opset=opset)
    sess = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    x = rng.standard_normal((1, 3, 7, 5)).astype(np.float32)
    first = sess.run(None, {"x": x})[0]
    plan = next(iter(sess._plans.values())).plan
    assert plan.steps[0].prepared is not None
    again = sess.run(None, {"x": x})[0]
    assert np.array_equal(first, again) and np.array_equal(again, _unprepared(sess, {"x": x})[0])


@pytest.mark.parametrize("opset, node, inits", [
    (13, helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear"),
     {"sizes": np.array([1, 3, 14, 10], np.int64)}),
    (13, helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest"),
     {"scales": np.array([1, 1, 2, 2], np.float32)}),
    (10, helper.make_node("Resize", ["x", "scales"], ["y"], mode="linear"),
     {"scales": np.array([1, 1, 1.5, 2], np.float32)}),
    (9, helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest"),
     {"scales": np.array([1, 1, 2, 3], np.float32)}),
    (7, helper.make_node("Upsample", ["x"], ["y"], mode="linear", scales=[1.0, 1.0, 2.0, 2.0]), {}),
])
def test_prepared_resize_is_bitwise_the_op(opset, node, inits):
    """Resize and Upsample keep their index and weight arrays per input shape (scales or sizes constant)."""
    _check_one_prepared_node(node, inits, opset)


@pytest.mark.parametrize("opset, node, inits", [
    (2, helper.make_node("Pad", ["x"], ["y"], pads=[0, 2, 1, 0, 0, 1, 0, 3], value=1.5), {}),
    (11, helper.make_node("Pad", ["x", "pads", "value"], ["y"]),
     {"pads": np.array([0, 4, 0, 0, 0, 4, 0, 0], np.int64), "value": np.array(0, np.float32)}),
    (13, helper.make_node("Pad", ["x", "pads"], ["y"]), {"pads": np.array([0, -1, 2, 1, 0, 0, -3, 1], np.int64)}),
    (18, helper.make_node("Pad", ["x", "pads", "", "axes"], ["y"]),
     {"pads": np.array([1, 2, 0, 1], np.int64), "axes": np.array([-1, 1], np.int64)}),
])
def test_prepared_pad_is_bitwise_the_op(opset, node, inits):
    """A constant-mode Pad with constant pads keeps its output shape and slices (attribute and input forms,
    channel pads like age_cydral's shortcuts, negative pads, axes)."""
    _check_one_prepared_node(node, inits, opset)


def test_a_pad_with_pads_from_the_data_runs_unprepared():
    """Pads computed from a graph input cannot be prepared: every run pads by that run's amounts."""
    model = _model([helper.make_node("Pad", ["x", "pads"], ["y"])],
                   [("x", TensorProto.FLOAT, [1, 2, 3]), ("pads", TensorProto.INT64, [6])], {}, opset=13)
    sess = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    x = np.ones((1, 2, 3), np.float32)
    assert sess.run(None, {"x": x, "pads": np.array([0, 0, 1, 0, 0, 2], np.int64)})[0].shape == (1, 2, 6)
    plan = next(iter(sess._plans.values())).plan
    assert plan.steps[0].prepared is None
    assert sess.run(None, {"x": x, "pads": np.array([0, 1, 0, 0, 0, 0], np.int64)})[0].shape == (1, 3, 3)


def test_thread_count_can_change_between_runs():
    # Large enough (>= MIN_PARALLEL_MACS) for the chunking to depend on the thread count.
    model = _model([helper.make_node("Conv", ["x", "W", "B"], ["y"], pads=[1, 1, 1, 1])],
                   [("x", TensorProto.FLOAT, [1, 32, 64, 64])], {"W": _w(96, 32, 3, 3), "B": _w(96)})
    sess = minicnn.InferenceSession(model.SerializeToString(), num_threads=2, layout="NCHW")
    x = rng.standard_normal((1, 32, 64, 64)).astype(np.float32)
    results = []
    for n in (1, 2, 1, 2):
        with threads.limit(n):
            results.append(sess.run(None, {"x": x})[0])
    reference = _unprepared(sess, {"x": x})[0]
    for r in results:
        np.testing.assert_allclose(r, reference, atol=1e-5, rtol=1e-5)
    assert np.array_equal(results[0], results[2]) and np.array_equal(results[1], results[3])


def test_a_session_keeps_the_thread_count_already_set():
    """Made without ``num_threads``, a session leaves the count of an enclosing ``limit`` or of ``configure``."""
    model = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.FLOAT, [1, 2])], {})
    with threads.limit(1):
        minicnn.InferenceSession(model.SerializeToString())
        assert threads.num_threads() == 1
    threads.configure(1)
    try:
        minicnn.InferenceSession(model.SerializeToString())
        assert threads.num_threads() == 1
        minicnn.InferenceSession(model.SerializeToString(), num_threads=2)
        assert threads.num_threads() == 2
    finally:
        threads.configure(None)


def test_a_shape_that_depends_on_the_data_runs_the_op_unprepared():
    # Same feed shapes, so the same plan; but the Reshape target is data, so the Conv sees another shape.
    model = _model([helper.make_node("Reshape", ["flat", "shape"], ["x"]),
                    helper.make_node("Conv", ["x", "W", "B"], ["y"], pads=[1, 1, 1, 1])],
                   [("flat", TensorProto.FLOAT, [1, 4, 48]), ("shape", TensorProto.INT64, [4])],
                   {"W": _w(3, 4, 3, 3), "B": _w(3)})
    sess = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    flat = rng.standard_normal((1, 4, 48)).astype(np.float32)
    for hw in ((6, 8), (4, 12), (6, 8)):
        shape = np.array([1, 4, *hw], np.int64)
        (y,) = sess.run(None, {"flat": flat, "shape": shape})
        assert y.shape == (1, 3, *hw)
        np.testing.assert_array_equal(y, _unprepared(sess, {"flat": flat, "shape": shape})[0])
    assert len(sess._plans) == 1


def test_a_real_export_prepares_and_matches_the_unprepared_run():
    sess = minicnn.InferenceSession(tiny_cnn(), layout="NCHW")
    x = rng.standard_normal((2, 3, 17, 23)).astype(np.float32)
    sess.run(None, {"x": x})
    plan = next(iter(sess._plans.values())).plan
    assert any(s.prepared is not None for s in plan.steps)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], _unprepared(sess, {"x": x})[0])


@pytest.mark.parametrize("backend", ["numpy"])
def test_the_reference_backend_prepares_nothing(backend):
    sess = minicnn.InferenceSession(tiny_cnn(), backend=backend, layout="NCHW")
    sess.run(None, {"x": rng.standard_normal((1, 3, 9, 9)).astype(np.float32)})
    plan = next(iter(sess._plans.values())).plan
    assert all(s.prepared is None for s in plan.steps)


def test_run_node_is_untouched_by_preparing():
    # The op function itself stays the whole op: calling it directly needs no plan.
    sess = minicnn.InferenceSession(tiny_cnn(), layout="NCHW")
    node = next(n for n in sess.graph.nodes if n.op_type == "FusedConv")
    args = [rng.standard_normal((1, 3, 8, 8)).astype(np.float32)] + [sess.graph.initializers[n] if n else None
                                                                    for n in node.inputs[1:]]
    (y,) = run_node(node, sess._fns["FusedConv"], args, sess.graph.opset)
    assert y.shape[:2] == (1, 8)
