"""InferenceSession end to end on a small real-shaped CNN, against onnxruntime.

Tolerances: float32 through ~100-term sums and a softmax; minicnn and
onnxruntime accumulate in different orders, so outputs agree to ~1e-6
relative; we assert atol=1e-5, rtol=1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

import minicnn
from minicnn.executor import build_plan
from tiny_models import tiny_cnn

BACKENDS = ["numpy", "numba"]


def ort_run(model, feeds):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.fixture(scope="module")
def model():
    return tiny_cnn()


def x_of(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimize", [True, False])
@pytest.mark.parametrize("shape", [(1, 3, 17, 23), (2, 3, 8, 8), (1, 3, 1, 1)])
def test_matches_onnxruntime(model, backend, optimize, shape):
    x = x_of(shape)
    sess = minicnn.InferenceSession(model.SerializeToString(), backend=backend, optimize=optimize)
    (ours,) = sess.run(None, {"x": x})
    (ref,) = ort_run(model, {"x": x})
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=1e-4)


def test_onnxruntime_like_api(model):
    sess = minicnn.InferenceSession(model)
    (inp,) = sess.get_inputs()
    assert inp.name == "x" and inp.shape == ["N", 3, "H", "W"] and inp.type == "tensor(float)"
    assert [o.name for o in sess.get_outputs()] == ["prob"]
    out = sess.run(["prob"], {"x": x_of((1, 3, 9, 9))})
    assert isinstance(out, list) and out[0].shape == (1, 5)


def test_optimizer_folds_batchnorm_and_fuses_activations(model):
    sess = minicnn.InferenceSession(model, optimize=True)
    ops = [n.op_type for n in sess.graph.nodes]
    assert "BatchNormalization" not in ops and "Relu" not in ops and "PRelu" not in ops
    assert ops.count("FusedConv") == 2
    # the file's graph is untouched
    assert [n.op_type for n in sess.model_graph.nodes].count("BatchNormalization") == 1


def test_plan_per_shape_skips_shape_subgraph(model):
    sess = minicnn.InferenceSession(model, optimize=False)
    feeds = {"x": x_of((2, 3, 10, 12))}
    plan, env = build_plan(sess.graph, sess._fns, feeds)
    executed = {s.node.op_type for s in plan.steps}
    assert not executed & {"Shape", "Gather", "Unsqueeze", "Concat"}, executed
    assert list(plan.constants["target"]) == [2, -1]
    # a new shape gets its own plan, both results correct
    for shape in [(2, 3, 10, 12), (3, 3, 7, 5), (2, 3, 10, 12)]:
        x = x_of(shape)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0], atol=1e-5, rtol=1e-4)
    assert len(sess._plans) == 2


def test_steps_walk_every_node_and_agree_with_run(model):
    sess = minicnn.InferenceSession(model, optimize=False, backend="numpy")
    x = x_of((1, 3, 11, 11))
    steps = list(sess.steps({"x": x}))
    assert [s.node.name for s in steps] == [n.name for n in sess.model_graph.nodes]
    assert steps[0].inputs["x"] is x and steps[0].outputs["c1"].shape == (1, 8, 6, 6)
    np.testing.assert_array_equal(steps[-1].outputs["prob"], sess.run(None, {"x": x})[0])
    assert "conv1 (Conv)" in str(steps[0])


def test_intermediates_hold_every_tensor(model):
    sess = minicnn.InferenceSession(model, optimize=False)
    x = x_of((1, 3, 8, 8))
    for _ in range(2):  # first run builds the plan, second uses it: both must expose everything
        outputs, tensors = sess.run(None, {"x": x}, intermediates=True)
        every = {o for n in sess.model_graph.nodes for o in n.outputs}
        assert every <= set(tensors)
        np.testing.assert_array_equal(outputs[0], tensors["prob"])


def test_compare_reports_match_and_first_divergence(model, monkeypatch):
    from minicnn import compare as cmp
    from minicnn.ops import registry

    x = x_of((1, 3, 16, 16))
    report = cmp.compare(model, {"x": x}, optimize=True)
    assert report.outputs_match, cmp.format_report(report)
    assert {r.status for r in report.rows} == {"ok", "fused"}
    assert any(r.tensor == "c1" and r.status == "fused" for r in report.rows)

    # Break MaxPool on purpose: compare must point at it, not at anything earlier.
    real = registry.OPS["MaxPool"]
    monkeypatch.setitem(registry.OPS, "MaxPool", {"numpy": lambda X, **kw: real["numpy"](X, **kw) * 1.1})
    report = cmp.compare(model, {"x": x}, optimize=False, backend="numpy")
    assert report.first_divergence.node == "pool1"
    assert "FIRST DIVERGENCE: node 'pool1'" in cmp.format_report(report)


def test_summary_counts_params_and_flops(model):
    from minicnn.summary import format_summary, summarize

    rows = summarize(model, (1, 3, 16, 16))
    conv1 = rows[0]
    assert conv1.op == "Conv" and conv1.output_shape == [1, 8, 8, 8]
    assert conv1.params == 8 * 3 * 3 * 3 + 8
    assert conv1.flops == 2 * (8 * 8 * 8) * (3 * 3 * 3)
    text = format_summary(rows)
    assert f"{len(rows)} nodes" in text and "GFLOPs" in text


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_even_split_gets_its_piece_count_from_the_node(opset):
    """Before opset 18 an even Split says how many pieces only by its number of outputs."""
    from onnx import TensorProto, helper

    extra = {"num_outputs": 3} if opset >= 18 else {}
    node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=1, **extra)
    graph = helper.make_graph([node], "split", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in "abc"])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    for ours, ref in zip(minicnn.InferenceSession(model).run(None, {"x": x}), ort_run(model, {"x": x})):
        np.testing.assert_array_equal(ours, ref)
