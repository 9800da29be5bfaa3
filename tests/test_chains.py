"""Chains (``minicnn.chains``): runs of blocked layers executed as one compiled program.

A chain runs the same kernels on the same chunks as its layers run one by
one, so its outputs are compared bit for bit with ``chains=False``. A
chain reuses its arena from run to run: the tests fill it with NaN
between runs, and every array a chain allocates (its outputs, a new
arena) starts as NaN too, so a job that skipped part of its output, or
read a tensor whose place another tensor had taken, would show.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import minicnn
from minicnn import chains, threads
from minicnn.kernels import cpu_blocked, jobs
from test_layout import _chain_model


class _NumpyWithNanEmpty:
    """``numpy`` as ``minicnn.chains`` sees it in these tests: ``empty`` hands out arrays full of NaN."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def empty(shape, dtype=float):
        return np.full(shape, np.nan, dtype=dtype)


@pytest.fixture(autouse=True)
def _nan_empty(monkeypatch):
    monkeypatch.setattr(chains, "np", _NumpyWithNanEmpty())


def _split_everything(monkeypatch) -> None:
    """Split thresholds at 0: every job is cut into chunks (and shared, on 2 threads)."""
    for name in ("MIN_PARALLEL_MACS", "MIN_PARALLEL_DEPTHWISE_MACS", "MIN_PARALLEL_POOL_VALUES"):
        monkeypatch.setattr(cpu_blocked, name, 0)


def _plans(sess):
    return next(iter(sess._plans.values()))


def _chains(sess) -> list[chains.Chain]:
    found = sess.run_chains()
    assert found == [s.prepared for s in _plans(sess).fused.steps if isinstance(s.prepared, chains.Chain)]
    return found


def _poison(sess) -> None:
    """Fill every arena the session's chains keep with NaN."""
    for chain in _chains(sess) if sess._plans else []:
        for arena in chain._arenas:
            arena.fill(np.nan)


def _same_bits(model_bytes, x: np.ndarray, n_threads: int, runs: int = 3) -> list[chains.Chain]:
    """Run ``model_bytes`` on ``x`` with and without chains; every output must be the same bits on every run.

    (A session's first run at a new shape builds its plans on the NCHW
    graph: the runs compared are the later ones.)
    """
    feeds = {"in0": x}
    with threads.limit(n_threads):
        plain = minicnn.InferenceSession(model_bytes, chains=False)
        fused = minicnn.InferenceSession(model_bytes)
        plain.run(None, feeds)
        fused.run(None, feeds)
        expected = plain.run(None, feeds)
        for _ in range(runs):
            _poison(fused)
            got = fused.run(None, feeds)
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)
    return _chains(fused)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32), name)


def _ladder_model(rungs: int, channels: int = 16, size: int = 12) -> onnx.ModelProto:
    """x -> ``rungs`` 3x3 convolutions in a row, each one's output also a graph output (Sigmoid of it).

    Every layer's output is read after it, so a chain of them needs an
    outside array per layer: the chains must be cut at ``jobs.OUTSIDE_SLOTS``.
    """
    rng = np.random.default_rng(0)
    inits, nodes, outputs = [], [], []
    previous = "in0"
    for k in range(rungs):
        inits.append(_init(f"w{k}", rng.standard_normal((channels, channels, 3, 3)) * 0.2))
        nodes.append(helper.make_node("Conv", [previous, f"w{k}"], [f"c{k}"], pads=[1, 1, 1, 1]))
        previous = f"c{k}"
    for k in range(rungs):  # after every convolution: the convolutions are consecutive steps
        nodes.append(helper.make_node("Sigmoid", [f"c{k}"], [f"s{k}"]))
        outputs.append(f"s{k}")
    graph = helper.make_graph(nodes, "ladder",
                              [helper.make_tensor_value_info("in0", TensorProto.FLOAT, [None, channels, size, size])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("n_threads", [1, 2])
def test_a_chain_gives_the_same_bits_as_its_layers(n_threads):
    x = np.random.default_rng(1).standard_normal((1, 3, 22, 26)).astype(np.float32)
    found = _same_bits(_chain_model().SerializeToString(), x, n_threads)
    assert found, "the layout test model has runs of blocked layers: it should have a chain"


@pytest.mark.parametrize("n_threads", [1, 2])
def test_shared_jobs_inside_a_program_give_the_same_bits(n_threads, monkeypatch):
    """With the split thresholds at 0 every job of the program is cut into chunks and, on 2 threads, shared."""
    _split_everything(monkeypatch)
    x = np.random.default_rng(2).standard_normal((1, 3, 22, 26)).astype(np.float32)
    found = _same_bits(_chain_model().SerializeToString(), x, n_threads, runs=20)
    if n_threads == 2:
        with threads.limit(2):
            assert any(int(d[jobs.N_CHUNKS]) > 1 for c in found for d in c.descriptors())


def _zoo_model_same_bits(path: str, shape: tuple, seed: int) -> minicnn.InferenceSession:
    """A zoo model with and without chains at 1 and 2 threads: every output the same bits; the last chained session."""
    x = np.random.default_rng(seed).random(shape).astype(np.float32)
    for n_threads in (1, 2):
        with threads.limit(n_threads):
            plain = minicnn.InferenceSession(path, chains=False)
            fused = minicnn.InferenceSession(path)
            feeds = {plain.get_inputs()[0].name: x}
            plain.run(None, feeds)
            expected = plain.run(None, feeds)
            fused.run(None, feeds)
            _poison(fused)
            for a, b in zip(fused.run(None, feeds), expected):
                np.testing.assert_array_equal(a, b)
    return fused


def test_the_expression_model_runs_as_one_chain(model_path):
    """FER: every layer from its second convolution to its last is blocked, and all of them make one chain."""
    fused = _zoo_model_same_bits(str(model_path("fer_mini_xception")), (1, 1, 64, 64), seed=3)
    ops = [s.node.op_type for s in _plans(fused).fused.steps]
    assert ops.count("Chain") == 1 and len(ops) <= 6, ops
    assert len(_chains(fused)[0].members) >= 25


def test_channel_padding_runs_inside_chains(model_path):
    """BlazeFace's shortcuts append zero channels (``PadChannels_NCHW16c``): a compiled job, so no chain ends there.

    Before it was one, each of the short-range model's 11 paddings ended a
    chain: 14 chains of 2-9 layers, against 2 now.
    """
    fused = _zoo_model_same_bits(str(model_path("blazeface_short")), (1, 3, 128, 128), seed=6)
    ops = [s.node.op_type for s in _plans(fused).fused.steps]
    assert "PadChannels_NCHW16c" not in ops and ops.count("Chain") <= 3, ops
    padded = [m for c in _chains(fused) for m in c.members if m.step.node.op_type == "PadChannels_NCHW16c"]
    assert len(padded) == 11


def test_chains_are_cut_where_they_would_need_more_than_four_outside_arrays():
    model = _ladder_model(rungs=6)
    x = np.random.default_rng(4).standard_normal((2, 16, 12, 12)).astype(np.float32)
    found = _same_bits(model.SerializeToString(), x, 1)
    assert len(found) >= 2
    for chain in found:
        assert len(chain.inputs) + len(chain.outputs) <= jobs.OUTSIDE_SLOTS
    assert sum(len(c.members) for c in found) == 6  # every layer is in one


def test_no_two_live_tensors_share_arena_space(model_path):
    """Checked on every chain of three zoo models, the synthetic ones, and a batch of two images."""
    cases = [(str(model_path("fer_mini_xception")), (1, 1, 64, 64)), (str(model_path("age_cydral")), (1, 3, 64, 64)),
             (str(model_path("blazeface_short")), (1, 3, 128, 128)),
             (_any_batch(_chain_model()).SerializeToString(), (2, 3, 22, 26)),
             (_ladder_model(5).SerializeToString(), (1, 16, 12, 12))]
    checked = 0
    for model, shape in cases:
        sess = minicnn.InferenceSession(model)
        sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.float32)})
        for chain in _chains(sess):
            born, last = {}, {}
            for t, (_, x, y, residual) in enumerate(chain.rows):
                for name in (x, residual):
                    if name:
                        last[name] = t
                born.setdefault(y, t)
            inner = [n for n, (slot, _, _) in chain.places.items() if slot == jobs.ARENA]
            for i, a in enumerate(inner):
                for b in inner[i + 1:]:
                    live_a = (born[a], last.get(a, born[a]))
                    live_b = (born[b], last.get(b, born[b]))
                    if live_a[0] <= live_b[1] and live_b[0] <= live_a[1]:  # alive at one job at once
                        (_, oa, sa), (_, ob, sb) = chain.places[a], chain.places[b]
                        assert oa + sa <= ob or ob + sb <= oa, f"{chain}: {a} and {b} overlap"
            assert all(o + s <= chain.arena_size for slot, o, s in chain.places.values() if slot == jobs.ARENA)
            checked += 1
    assert checked >= 5


def _any_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    return model


def test_a_batch_runs_image_by_image_inside_the_program():
    x = np.random.default_rng(5).standard_normal((3, 3, 22, 26)).astype(np.float32)
    for n_threads in (1, 2):
        found = _same_bits(_any_batch(_chain_model()).SerializeToString(), x, n_threads)
        assert any(row[jobs.CALLS] == 3 for c in found for row in c.table)


def test_two_python_threads_can_run_one_session_at_once():
    """Each run takes an arena of its own: outputs stay right when two threads share the chains."""
    model = _chain_model().SerializeToString()
    rng = np.random.default_rng(6)
    inputs = [rng.standard_normal((1, 3, 22, 26)).astype(np.float32) for _ in range(2)]
    plain = minicnn.InferenceSession(model, chains=False)
    plain.run(None, {"in0": inputs[0]})
    expected = [plain.run(None, {"in0": x}) for x in inputs]
    sess = minicnn.InferenceSession(model)
    sess.run(None, {"in0": inputs[0]})
    failures = []

    def worker(k):
        for _ in range(100):
            got = sess.run(None, {"in0": inputs[k]})
            if not all(np.array_equal(a, b) for a, b in zip(got, expected[k])):
                failures.append(k)

    with threads.limit(2):
        workers = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    assert failures == []


def test_a_chain_wakes_sleeping_helpers(monkeypatch):
    """After the helpers have gone to sleep, a chain on 2 threads wakes them first, and still runs right."""
    _split_everything(monkeypatch)
    model = _chain_model().SerializeToString()
    x = np.random.default_rng(7).standard_normal((1, 3, 22, 26)).astype(np.float32)
    plain = minicnn.InferenceSession(model, chains=False)
    plain.run(None, {"in0": x})
    expected = plain.run(None, {"in0": x})
    sess = minicnn.InferenceSession(model)
    with threads.limit(2):
        sess.run(None, {"in0": x})
        helpers = threads._helpers
        deadline = time.monotonic() + 5
        while helpers.sleeping == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # an idle helper sleeps after about a millisecond of spinning
        assert helpers.sleeping > 0
        wakes = []
        notify_all = helpers.wake.notify_all
        monkeypatch.setattr(helpers.wake, "notify_all", lambda: wakes.append(1) or notify_all())
        _poison(sess)
        for a, b in zip(sess.run(None, {"in0": x}), expected):
            np.testing.assert_array_equal(a, b)
        assert wakes


def test_inputs_of_another_shape_run_the_layers_one_by_one():
    sess = minicnn.InferenceSession(_chain_model().SerializeToString())
    x = np.random.default_rng(8).standard_normal((1, 3, 22, 26)).astype(np.float32)
    sess.run(None, {"in0": x})
    chain = _chains(sess)[0]
    args = [np.random.default_rng(9).standard_normal(s).astype(np.float32) for s in chain.input_shapes]
    prepared = chain(*args)
    one_by_one = chain._run_steps(args)
    for a, b in zip(prepared, one_by_one):
        np.testing.assert_array_equal(a, b)
    # A float64 input is not what the chain was made for: the layers run unprepared (and say so in errors).
    with pytest.raises(minicnn.MiniCNNError, match="Conv_NCHW16c"):
        chain(*[a.astype(np.float64) for a in args])


def test_chains_can_be_turned_off_and_leave_steps_and_intermediates_alone():
    model = _chain_model().SerializeToString()
    x = np.random.default_rng(10).standard_normal((1, 3, 22, 26)).astype(np.float32)
    off = minicnn.InferenceSession(model, chains=False)
    off.run(None, {"in0": x})
    assert _plans(off).fused is _plans(off).blocked
    on = minicnn.InferenceSession(model)
    on.run(None, {"in0": x})
    assert "Chain" not in [s.node.op_type for s in _plans(on).blocked.steps]  # the blocked plan is left as it was
    _, tensors = on.run(None, {"in0": x}, intermediates=True)
    assert "r" in tensors and not any(name.startswith("chain[") for name in tensors)
    assert "Chain" not in [step.node.op_type for step in on.steps({"in0": x})]


def test_a_chain_whose_input_shape_depends_on_the_data_runs_its_layers_unprepared():
    """A Reshape to a shape given as data: the chain was made for the first shape and must not be used for others."""
    rng = np.random.default_rng(11)
    inits = [_init("w0", rng.standard_normal((16, 4, 3, 3)) * 0.3), _init("w1", rng.standard_normal((16, 16, 1, 1)))]
    nodes = [helper.make_node("Reshape", ["flat", "shape"], ["x"]),
             helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Conv", ["r", "w1"], ["y"])]
    graph = helper.make_graph(nodes, "reshaped", [helper.make_tensor_value_info("flat", TensorProto.FLOAT, [1, 4, 48]),
                                                  helper.make_tensor_value_info("shape", TensorProto.INT64, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = minicnn.InferenceSession(model.SerializeToString())
    nchw = minicnn.InferenceSession(model.SerializeToString(), layout="NCHW")
    flat = rng.standard_normal((1, 4, 48)).astype(np.float32)
    for hw in ((6, 8), (6, 8), (4, 12), (6, 8)):
        feeds = {"flat": flat, "shape": np.array([1, 4, *hw], np.int64)}
        (y,) = sess.run(None, feeds)
        assert y.shape == (1, 16, *hw)
        np.testing.assert_allclose(y, nchw.run(None, feeds)[0], rtol=0, atol=1e-5 * max(1.0, np.abs(y).max()))
    assert len(_chains(sess)) == 1 and len(sess._plans) == 1
