"""Gemm and MatMul against onnxruntime.

Tolerance: float32 products of length <= 16 with values in [-3, 3]; BLAS and
onnxruntime sum in different orders: atol 1e-5, rtol 1e-5.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import InputError
from minicnn.ops.registry import OPS
from ops_strategies import check_op, floats, seeds

TOL = dict(atol=1e-5, rtol=1e-5)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(1, 6), k=st.integers(1, 16), n=st.integers(1, 6), seed=seeds, transA=st.sampled_from([0, 1]),
       transB=st.sampled_from([0, 1]), alpha=st.sampled_from([1.0, 0.5, -2.0]), beta=st.sampled_from([1.0, 0.25]),
       c_form=st.sampled_from([None, "MN", "N", "1N", "M1", "scalar"]))
def test_gemm(m, k, n, seed, transA, transB, alpha, beta, c_form):
    a = floats((k, m) if transA else (m, k), seed)
    b = floats((n, k) if transB else (k, n), seed + 1)
    inputs = [a, b]
    if c_form is not None:
        c_shape = {"MN": (m, n), "N": (n,), "1N": (1, n), "M1": (m, 1), "scalar": ()}[c_form]
        inputs.append(floats(c_shape, seed + 2))
    check_op("Gemm", inputs, {"alpha": alpha, "beta": beta, "transA": transA, "transB": transB},
             initializer_inputs=(1,), **TOL)


@settings(max_examples=30, deadline=None)
@given(data=st.data(), seed=seeds)
def test_matmul_batched_and_1d(data, seed):
    k = data.draw(st.integers(1, 8))
    a_rank = data.draw(st.integers(1, 4))
    b_rank = data.draw(st.integers(1, 4))
    batch = data.draw(st.lists(st.integers(1, 3), min_size=2, max_size=2))
    # Batch dims line up from the right, as in broadcasting.
    a_shape = (k,) if a_rank == 1 else tuple(batch[len(batch) - (a_rank - 2):]) + (data.draw(st.integers(1, 5)), k)
    b_batch = [d if data.draw(st.booleans()) else 1 for d in batch[len(batch) - (b_rank - 2):]]
    b_shape = (k,) if b_rank == 1 else tuple(b_batch) + (k, data.draw(st.integers(1, 5)))
    check_op("MatMul", [floats(a_shape, seed), floats(b_shape, seed + 1)], **TOL)


def test_inner_dim_mismatch_names_the_shapes():
    with pytest.raises(InputError, match=r"A\[2, 3\].*B\[4, 5\]"):
        OPS["Gemm"]["numpy"](floats((2, 3), 0), floats((4, 5), 1))
    with pytest.raises(InputError, match=r"A\[2, 3\].*B\[4, 5\]"):
        OPS["MatMul"]["numpy"](floats((2, 3), 0), floats((4, 5), 1))
