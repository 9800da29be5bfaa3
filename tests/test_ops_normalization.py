"""BatchNormalization (inference form) and InstanceNormalization against onnxruntime.

Tolerance: atol 1e-5, rtol 1e-5 (float32; variances drawn in [0.1, 2]).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import InputError, UnsupportedOpError
from minicnn.ops.registry import OPS
from ops_strategies import check_op, floats, seeds

TOL = dict(atol=1e-5, rtol=1e-5)

shapes = st.tuples(st.integers(1, 2), st.integers(1, 5)).flatmap(
    lambda nc: st.lists(st.integers(1, 6), min_size=0, max_size=2).map(lambda sp: nc + tuple(sp)))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=seeds, epsilon=st.sampled_from([1e-5, 1e-3]), opset=st.sampled_from([9, 14, 15]))
def test_batch_normalization(shape, seed, epsilon, opset):
    c = shape[1]
    params = [floats((c,), seed + 1, 0.5, 2), floats((c,), seed + 2), floats((c,), seed + 3),
              floats((c,), seed + 4, 0.1, 2)]
    check_op("BatchNormalization", [floats(shape, seed)] + params, {"epsilon": epsilon}, opset=opset,
             initializer_inputs=(1, 2, 3, 4), **TOL)


@settings(max_examples=15, deadline=None)
@given(shape=shapes.filter(lambda s: len(s) >= 3 and np.prod(s[2:]) >= 2), seed=seeds)
def test_instance_normalization(shape, seed):
    """Planes of at least 2 values: a 1-value plane has variance 0, where onnxruntime's float32
    round-off in ``x - mean`` is amplified by 1/sqrt(epsilon) and the result is noise around B."""
    c = shape[1]
    check_op("InstanceNormalization", [floats(shape, seed), floats((c,), seed + 1), floats((c,), seed + 2)],
             initializer_inputs=(1, 2), **TOL)


def test_training_mode_is_unsupported_and_wrong_sizes_are_input_errors():
    fn = OPS["BatchNormalization"]["numpy"]
    x, p = floats((1, 3, 2, 2), 0), floats((3,), 1, 0.5, 1)
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        fn(x, p, p, p, p, training_mode=1)
    with pytest.raises(InputError, match=r"scale\[4\].*3"):
        fn(x, floats((4,), 0), p, p, p)
