"""Shared helpers for the op tests: run one ONNX node in onnxruntime and in every minicnn backend.

``check_op`` builds a one-node model (``onnx_util.one_node_model``), runs it
in onnxruntime (the reference), loads the *same model* with minicnn's loader
(so attributes arrive exactly as a session passes them: tensors as arrays,
strings as str) and calls each registered implementation of the op (numpy
reference and numba fast path) through ``minicnn.executor.run_node``, the
function the session itself uses. Every output must match in shape, dtype
and value within the stated tolerance.

Also a few Hypothesis strategies used by several test files.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from minicnn.executor import run_node
from minicnn.graph import load_model
from minicnn.ops.registry import OPS
from onnx_util import one_node_model, run_ort


def check_op(op_type: str, inputs: list, attrs: dict | None = None, *, opset: int = 13, n_outputs: int = 1,
             atol: float = 1e-5, rtol: float = 1e-5, initializer_inputs: tuple[int, ...] = (),
             pass_num_outputs: bool = False) -> list[np.ndarray]:
    """Compare every backend of ``op_type`` with onnxruntime on ``inputs``; returns ORT's outputs.

    ``pass_num_outputs`` adds ``num_outputs=n_outputs`` to the node's
    attributes, as a session does for a Split whose piece count is its
    number of outputs.
    """
    model = one_node_model(op_type, inputs, attrs, n_outputs=n_outputs, opset=opset,
                           initializer_inputs=initializer_inputs)
    expected = run_ort(model, inputs, initializer_inputs)
    node = load_model(model).nodes[0]
    if pass_num_outputs:
        node.attrs.setdefault("num_outputs", n_outputs)
    args = [None if a is None else np.asarray(a) for a in inputs]
    copies = [None if a is None else a.copy() for a in args]
    for backend, fn in OPS[op_type].items():
        got = run_node(node, fn, args, opset)
        assert len(got) >= len(expected), f"{op_type}[{backend}]: {len(got)} outputs, expected {len(expected)}"
        for k, (g, e) in enumerate(zip(got, expected)):
            g = np.asarray(g)
            where = f"{op_type}[{backend}] output {k} (opset {opset}, attrs {attrs})"
            assert g.shape == e.shape, f"{where}: shape {g.shape}, onnxruntime {e.shape}"
            assert g.dtype == e.dtype, f"{where}: dtype {g.dtype}, onnxruntime {e.dtype}"
            if np.issubdtype(e.dtype, np.floating):
                np.testing.assert_allclose(g, e, atol=atol, rtol=rtol, err_msg=where)
            else:
                np.testing.assert_array_equal(g, e, err_msg=where)
        for a, c in zip(args, copies):  # ops must never modify their inputs
            if a is not None:
                np.testing.assert_array_equal(a, c, err_msg=f"{op_type}[{backend}] modified an input")
    return expected


def floats(shape, seed: int, low: float = -3.0, high: float = 3.0) -> np.ndarray:
    """A float32 array of ``shape`` with values uniform in [low, high)."""
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


seeds = st.integers(0, 2**31 - 1)

# Shapes of rank 1-4 with small dims (including 1).
small_shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple)


@st.composite
def broadcast_pair(draw, max_rank: int = 4):
    """Two shapes that broadcast together: each dim of one is the other's, or 1, and ranks may differ."""
    full = draw(st.lists(st.integers(1, 5), min_size=1, max_size=max_rank))
    a = [d if draw(st.booleans()) else 1 for d in full]
    b = [d if draw(st.booleans()) else 1 for d in full]
    a = a[draw(st.integers(0, len(a) - 1)):]
    b = b[draw(st.integers(0, len(b) - 1)):]
    return tuple(a), tuple(b)
