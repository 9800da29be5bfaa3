"""Every numba.cuda kernel version against its NumPy reference.

CI has no GPU, so these run on numba's CUDA simulator: the module switches
it on before anything imports ``numba.cuda`` (numba decides once per process).
The simulator runs each GPU thread as a Python thread: the shapes are tiny,
and the kernel files' ``validate()`` functions hold them.

The ``gpu``-marked tests run the same validations on a real device, in a
subprocess with the simulator off (this process is committed to the
simulator). They are skipped when no CUDA driver is present.

Tolerances are those stated in each kernel file's ``validate()``: exact for
copies (im2col, concat), 1e-5..1e-6 for elementwise work, ``1e-4*sqrt(K)``
for sums of K products.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from minicnn import cuda_backend

from cuda_mode import driver_present, use_simulator_or_device

use_simulator_or_device()

from numba import cuda  # noqa: E402  (after the simulator is on)

from minicnn.kernels import (cuda_concat, cuda_conv, cuda_depthwise, cuda_elementwise,  # noqa: E402
                             cuda_epilogue, cuda_im2col, cuda_pool, cuda_sgemm, cuda_softmax)

REPO = Path(__file__).resolve().parents[1]
KERNEL_FILES = [cuda_sgemm, cuda_im2col, cuda_epilogue, cuda_depthwise, cuda_pool, cuda_elementwise,
                cuda_softmax, cuda_concat, cuda_conv]


@pytest.mark.parametrize("version", cuda_sgemm.VERSIONS)
def test_sgemm_version_matches_reference(version):
    errors = cuda_sgemm.validate(versions=(version,))
    assert errors[version] < 1e-3


def test_sgemm_exact_tile_multiples_and_single_row():
    # Shapes on tile boundaries (64, 16) and degenerate ones (one row, one column, K=1).
    errors = cuda_sgemm.validate(shapes=((64, 64, 16), (1, 9, 1), (9, 1, 3)), versions=(1, 3))
    assert max(errors.values()) < 1e-3


@pytest.mark.parametrize("version", cuda_im2col.VERSIONS)
def test_im2col_version_is_exact(version):
    assert cuda_im2col.validate(versions=(version,))[version] == 0.0


@pytest.mark.parametrize("version", cuda_epilogue.VERSIONS)
def test_epilogue_version_matches_reference(version):
    assert cuda_epilogue.validate(versions=(version,))[version] < 1e-5


@pytest.mark.parametrize("version", cuda_depthwise.VERSIONS)
def test_depthwise_version_matches_reference(version):
    assert cuda_depthwise.validate(versions=(version,))[version] < 1e-4


def test_pooling_versions_match_reference():
    errors = cuda_pool.validate()
    assert set(errors) == {"v1 max", "v1 avg(count_include_pad=0)", "v1 avg(count_include_pad=1)",
                           "v1 global avg", "v2 global avg"}
    assert max(errors.values()) < 1e-5


def test_pool_output_size_follows_onnx_ceil_rule():
    # 7 wide, kernel 2, stride 2: floor gives 3 windows, ceil 4 (the last one half outside).
    assert cuda_pool.pool_output_size(7, 2, 2, 0, 0, 1, ceil_mode=False) == 3
    assert cuda_pool.pool_output_size(7, 2, 2, 0, 0, 1, ceil_mode=True) == 4
    # A window that would start inside the end padding is dropped: 5 wide, k=2, s=2, pads 1/1
    # (checked against onnxruntime: output 3, not 4).
    assert cuda_pool.pool_output_size(5, 2, 2, 1, 1, 1, ceil_mode=True) == 3


def test_elementwise_versions_match_reference():
    errors = cuda_elementwise.validate()
    assert max(errors.values()) < 1e-5


@pytest.mark.parametrize("a_shape, b_shape, expected", [
    ((2, 3, 4), (2, 3, 4), cuda_elementwise.SAME_SHAPE),
    ((2, 3, 4), (1,), cuda_elementwise.SCALAR),
    ((1, 8, 5, 5), (1, 8, 1, 1), cuda_elementwise.PER_CHANNEL),
    ((1, 8, 5, 5), (8, 1, 1), cuda_elementwise.PER_CHANNEL),
    ((3, 1, 5), (1, 4, 1), None),  # both sides broadcast: version 1 only
])
def test_elementwise_picks_the_fast_case(a_shape, b_shape, expected):
    case = cuda_elementwise.fast_case(a_shape, b_shape)
    assert (case[0] if case else None) == expected


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=4), st.data())
def test_elementwise_general_broadcast_property(a_shape, data):
    # b: a random broadcast-compatible shape (dims set to 1 or dropped from the left).
    keep = data.draw(st.integers(0, len(a_shape)))
    b_shape = [d if data.draw(st.booleans()) else 1 for d in a_shape[len(a_shape) - keep:]]
    rng = np.random.default_rng(len(a_shape) * 10 + keep)
    a = rng.standard_normal(a_shape).astype(np.float32)
    b = (rng.random(b_shape) + 0.5).astype(np.float32).reshape(b_shape or (1,))
    op = data.draw(st.sampled_from(sorted(cuda_elementwise.OPS)))
    y = cuda.device_array(np.broadcast_shapes(a.shape, b.shape), dtype=np.float32)
    cuda_elementwise.run_binary(op, cuda.to_device(a), cuda.to_device(b), y, version=1)
    want = cuda_elementwise.binary_reference(op, a.astype(np.float64), b.astype(np.float64))
    np.testing.assert_allclose(y.copy_to_host(), want, rtol=1e-6, atol=1e-6)


def test_softmax_versions_match_reference():
    errors = cuda_softmax.validate()
    assert max(errors.values()) < 1e-5


def test_concat_is_exact():
    assert cuda_concat.validate()[1] == 0.0


def test_conv_every_variant_matches_reference():
    errors = cuda_conv.validate()
    assert set(errors) == {"im2col + sgemm v1", "im2col + sgemm v2", "im2col + sgemm v3",
                           "im2col + sgemm v4 fused", "depthwise v1 + epilogue", "depthwise v2 fused"}
    assert max(errors.values()) < 1e-3


@settings(max_examples=6, deadline=None)
@given(c_in=st.integers(1, 4), c_out=st.integers(1, 5), size=st.integers(3, 7), k=st.sampled_from([1, 2, 3]),
       stride=st.integers(1, 2), pad=st.integers(0, 1), dilation=st.integers(1, 2), depthwise=st.booleans())
def test_conv_geometry_property(c_in, c_out, size, k, stride, pad, dilation, depthwise):
    # Random window geometry through every variant that applies.
    if (k - 1) * dilation + 1 > size + 2 * pad:
        return  # no window fits; ONNX would reject the model
    group = c_in if depthwise and c_in > 1 else 1
    w_shape = (c_in if group > 1 else c_out, 1 if group > 1 else c_in, k, k)
    case = ((1, c_in, size, size + 1), w_shape, (stride, stride), (pad, pad, pad, 0), (dilation, dilation),
            group, "Sigmoid")
    errors = cuda_conv.validate(cases=(case,))
    assert max(errors.values()) < 1e-3


def test_kernel_mismatch_is_reported_with_location():
    from minicnn.kernels.cuda_common import KernelMismatchError, check_close

    with pytest.raises(KernelMismatchError, match=r"max abs error 1 at \(1,\)"):
        check_close("demo", np.array([0.0, 1.0]), np.array([0.0, 0.0]), 1e-6, 0.0)


def test_unknown_version_is_an_error():
    a = cuda.to_device(np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="versions"):
        cuda_sgemm.run_sgemm(a, a, a, version=9)


def test_every_kernel_file_documents_its_versions():
    for module in KERNEL_FILES:
        doc = module.__doc__
        assert doc and ("Versions:" in doc or "variants" in doc), module.__name__
        assert callable(module.validate), module.__name__


# -- the same validations on a real GPU -------------------------------------------------------------------
@lru_cache(maxsize=None)
def _real_gpu() -> bool:
    env = dict(os.environ, **{cuda_backend.SIMULATOR_ENV: "0"})
    probe = subprocess.run([sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
                           env=env, capture_output=True, text=True, timeout=120)
    return probe.stdout.strip().endswith("True")


@pytest.mark.gpu
@pytest.mark.skipif(not driver_present(), reason="no CUDA driver on this machine")
@pytest.mark.parametrize("module", [m.__name__ for m in KERNEL_FILES])
def test_kernel_file_validates_on_real_gpu(module):
    if not _real_gpu():
        pytest.skip("a CUDA driver is present but numba.cuda sees no usable GPU")
    env = dict(os.environ, **{cuda_backend.SIMULATOR_ENV: "0"})
    result = subprocess.run([sys.executable, "-m", module], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not driver_present(), reason="no CUDA driver on this machine")
def test_sgemm_large_shapes_on_real_gpu():
    if not _real_gpu():
        pytest.skip("a CUDA driver is present but numba.cuda sees no usable GPU")
    code = ("from minicnn.kernels import cuda_sgemm; "
            "cuda_sgemm.validate(shapes=((512, 640, 288), (24, 12800, 216), (1000, 7, 512)))")
    env = dict(os.environ, **{cuda_backend.SIMULATOR_ENV: "0"})
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
