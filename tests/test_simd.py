"""Explicit vectors (``minicnn.kernels.simd``) and the NCHW16c 1x1 kernel built on them (``cpu_blocked``).

Tolerances: the vector operations are exact against NumPy except ``fma``
(one rounding instead of two: within 1 ulp of the float32 result). The
blocked 1x1 convolution sums in another order than the references: its
outputs are within 1e-5 of the output's range of onnxruntime's Conv and
of minicnn's NumPy reference (float32 round-off over <= 128 terms).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from minicnn.kernels import cpu_blocked, simd
from minicnn.kernels.cpu_conv import ACTIVATION_CODES
from minicnn.ops.conv import conv_direct, conv_geometry
from onnx_util import one_node_model, run_ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@njit(cache=True)
def _vector_ops(a, b, c, out):
    """Each operation on a[i:i+16], b[i:i+16], c[i:i+16] into out's rows (flat): one row per operation."""
    n = a.size
    for i in range(0, n, 16):
        va, vb, vc = simd.load(a, i), simd.load(b, i), simd.load(c, i)
        simd.store(out, i, simd.add(va, vb))
        simd.store(out, n + i, simd.mul(va, vb))
        simd.store(out, 2 * n + i, simd.fma(va, vb, vc))
        simd.store(out, 3 * n + i, simd.maximum(va, vb))
        simd.store(out, 4 * n + i, simd.minimum(va, vb))
        simd.store(out, 5 * n + i, simd.where_positive(va, vb))
        simd.store(out, 6 * n + i, simd.splat(c[i]))
        simd.store(out, 7 * n + i, simd.broadcast(b, i + 3))


def test_vector_operations_match_numpy():
    rng = np.random.default_rng(1)
    a, b, c = (rng.standard_normal(64).astype(np.float32) for _ in range(3))
    out = np.zeros(8 * 64, np.float32)
    _vector_ops(a, b, c, out)
    rows = out.reshape(8, 64)
    np.testing.assert_array_equal(rows[0], a + b)
    np.testing.assert_array_equal(rows[1], a * b)
    exact = a.astype(np.float64) * b + c  # fma rounds once: the float64 result rounded to float32, within 1 ulp
    np.testing.assert_allclose(rows[2], exact, rtol=0, atol=float(np.spacing(np.float32(np.abs(exact).max()))))
    np.testing.assert_array_equal(rows[3], np.maximum(a, b))
    np.testing.assert_array_equal(rows[4], np.minimum(a, b))
    np.testing.assert_array_equal(rows[5], np.where(a > 0, a, b))
    np.testing.assert_array_equal(rows[6], np.repeat(c[::16], 16))
    np.testing.assert_array_equal(rows[7], np.repeat(b[3::16], 16))


def test_load_and_store_at_unaligned_offsets():
    @njit
    def shift(a, out, k):
        simd.store(out, k + 1, simd.load(a, k))

    a = np.arange(40, dtype=np.float32)
    out = np.zeros(40, np.float32)
    shift(a, out, 5)
    np.testing.assert_array_equal(out[6:22], a[5:21])
    assert not out[:6].any() and not out[22:].any()


def test_vector_operations_refuse_other_arrays():
    @njit
    def load_first(a):
        return simd.load(a, 0)

    with pytest.raises(Exception, match="1-D float32 array"):
        load_first(np.zeros(32, np.float64))
    with pytest.raises(Exception, match="1-D float32 array"):
        load_first(np.zeros((2, 16), np.float32))


@given(channels=st.integers(1, 40), height=st.integers(1, 7), width=st.integers(1, 9), seed=st.integers(0, 99))
@settings(max_examples=25, deadline=None)
def test_blocked_layout_round_trip(channels, height, width, seed):
    x = np.random.default_rng(seed).standard_normal((2, channels, height, width)).astype(np.float32)
    xb = cpu_blocked.to_blocked(x)
    assert xb.shape == (2, cpu_blocked.blocks(channels), height, width, 16)
    np.testing.assert_array_equal(cpu_blocked.from_blocked(xb, channels), x)
    # channel c of pixel (i, j) sits at [n, c // 16, i, j, c % 16]; the padding channels are zero
    c = channels - 1
    np.testing.assert_array_equal(xb[:, c // 16, :, :, c % 16], x[:, c])
    assert not xb.reshape(2, -1, height, width, 16).transpose(0, 1, 4, 2, 3).reshape(2, -1, height, width)[
        :, channels:].any()


def _reference(x, w, b, activation, alpha, slope, lo, hi, residual):
    """minicnn's NumPy reference convolution, then residual and activation in NumPy (float64)."""
    y = conv_direct(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                    conv_geometry(x.shape, w.shape))
    if residual is not None:
        y = y + residual
    s = slope[None, :, None, None]
    return {"": y, "Relu": np.maximum(y, 0), "LeakyRelu": np.where(y > 0, y, alpha * y),
            "PRelu": np.where(y > 0, y, s * y), "Sigmoid": 1 / (1 + np.exp(-y)), "Clip": np.clip(y, lo, hi)}[activation]


@given(channels=st.integers(1, 40), c_out=st.integers(1, 36), height=st.integers(1, 9), width=st.integers(1, 11),
       activation=st.sampled_from(sorted(ACTIVATION_CODES)), with_residual=st.booleans(), seed=st.integers(0, 999))
@settings(max_examples=60, deadline=None)
def test_blocked_pointwise_matches_reference(channels, c_out, height, width, activation, with_residual, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, height, width)).astype(np.float32)
    w = rng.standard_normal((c_out, channels, 1, 1)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    slope = rng.standard_normal(c_out).astype(np.float32)
    residual = rng.standard_normal((2, c_out, height, width)).astype(np.float32) if with_residual else None
    alpha, lo, hi = 0.1, -0.5, 0.7
    wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(w, b, slope)
    yb = cpu_blocked.pointwise_conv_blocked(cpu_blocked.to_blocked(x), wb, b16, s16, activation, alpha, lo, hi,
                                            None if residual is None else cpu_blocked.to_blocked(residual))
    y = cpu_blocked.from_blocked(yb, c_out)
    expected = _reference(x, w, b, activation, alpha, slope, lo, hi, residual)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("channels, c_out, size", [(16, 16, 40), (24, 40, 13), (64, 64, 20)])
def test_blocked_pointwise_matches_onnxruntime(channels, c_out, size):
    rng = np.random.default_rng(channels)
    x = rng.standard_normal((1, channels, size, size)).astype(np.float32)
    w = (rng.standard_normal((c_out, channels, 1, 1)) / np.sqrt(channels)).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    (expected,) = run_ort(one_node_model("Conv", [x, w, b]), [x, w, b])
    wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(w, b)
    y = cpu_blocked.from_blocked(cpu_blocked.pointwise_conv_blocked(cpu_blocked.to_blocked(x), wb, b16, s16), c_out)
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))


def test_blocked_pointwise_rejects_mismatched_weights():
    wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(np.ones((8, 20, 1, 1), np.float32), np.zeros(8, np.float32))
    with pytest.raises(ValueError, match="weights for 32 input channels, input has 16"):
        cpu_blocked.pointwise_conv_blocked(np.zeros((1, 1, 2, 2, 16), np.float32), wb, b16, s16)


def test_bench_blocked_measures_and_checks_every_way():
    import bench_blocked

    (result,) = bench_blocked.measure(rounds=1, shapes=[(24, 20, 9, 7)])
    assert set(result["us"]) == {"direct", "BLAS", "NCHW16c"}
    assert all(t > 0 for t in result["us"].values())
    assert all(e <= 1e-5 for e in result["max_rel_error"].values())
    assert result["direct_over_blocked"] == pytest.approx(result["us"]["direct"] / result["us"]["NCHW16c"])
