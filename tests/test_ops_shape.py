"""Shape and data-movement ops against onnxruntime, at old and new opsets.

These ops copy values without arithmetic, so results must be *equal*
(tolerance 0), dtype included.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minicnn import InputError, UnsupportedOpError
from minicnn.ops.registry import OPS
from ops_strategies import check_op, floats, seeds, small_shapes

EXACT = dict(atol=0, rtol=0)
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN = np.iinfo(np.int64).min


def ints(values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), allowzero=st.sampled_from([0, 1]))
def test_reshape(shape, seed, data, allowzero):
    """Target shapes using -1 (inferred) and 0 (copy the input's dim)."""
    x = floats(shape, seed)
    target = list(data.draw(st.permutations(list(shape))))
    if data.draw(st.booleans()):
        target[data.draw(st.integers(0, len(target) - 1))] = -1
    if not allowzero and len(target) <= len(shape):
        i = data.draw(st.integers(0, len(target) - 1))
        if target[i] == shape[i] or target[i] == -1 and -1 not in target[:i] + target[i + 1:]:
            target[i] = 0 if target[i] == shape[i] else target[i]
    assume(int(np.prod([d for d in target if d > 0])) > 0)
    check_op("Reshape", [x, ints(target)], {"allowzero": allowzero} if allowzero else {}, opset=14, **EXACT)


def test_reshape_size_mismatch_names_both_shapes():
    with pytest.raises(InputError, match=r"\[2, 3\].*\[4, 2\]"):
        OPS["Reshape"]["numpy"](floats((2, 3), 0), ints([4, 2]))


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_flatten_transpose(shape, seed, data):
    x = floats(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape)))
    check_op("Flatten", [x], {"axis": axis}, **EXACT)
    perm = data.draw(st.none() | st.permutations(list(range(len(shape)))))
    check_op("Transpose", [x], {} if perm is None else {"perm": list(perm)}, **EXACT)


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), n=st.integers(1, 3))
def test_concat(shape, seed, data, n):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    inputs = []
    for k in range(n):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        inputs.append(floats(tuple(s), seed + k))
    check_op("Concat", inputs, {"axis": axis}, **EXACT)


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), opset=st.sampled_from([11, 13, 18]))
def test_split(shape, seed, data, opset):
    """``split`` as attribute (11), as input (13), equal pieces by output count, ``num_outputs`` (18)."""
    x = floats(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    explicit = data.draw(st.booleans())
    if explicit:
        cuts = sorted(data.draw(st.lists(st.integers(0, dim), max_size=2)))
        sizes = np.diff([0] + cuts + [dim]).tolist()
        n = len(sizes)
        if opset < 13:
            check_op("Split", [x], {"axis": axis, "split": sizes}, opset=opset, n_outputs=n, **EXACT)
        else:
            check_op("Split", [x, ints(sizes)], {"axis": axis}, opset=opset, n_outputs=n, initializer_inputs=(1,),
                     **EXACT)
    elif opset == 18:
        n = data.draw(st.integers(1, dim))
        assume((n - 1) * -(-dim // n) < dim)  # onnxruntime needs every piece non-empty
        check_op("Split", [x], {"axis": axis, "num_outputs": n}, opset=18, n_outputs=n, **EXACT)
    else:
        n = data.draw(st.sampled_from([d for d in range(1, dim + 1) if dim % d == 0]))
        check_op("Split", [x], {"axis": axis}, opset=opset, n_outputs=n, pass_num_outputs=True, **EXACT)


def test_split_without_sizes_or_count_is_unsupported():
    with pytest.raises(UnsupportedOpError, match="num_outputs"):
        OPS["Split"]["numpy"](floats((4,), 0))


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), opset=st.sampled_from([11, 13]))
def test_squeeze_unsqueeze(shape, seed, data, opset):
    """Axes as attribute (opset 11) and input (13), negative axes included."""
    x = floats(shape, seed)
    ones = [i for i, d in enumerate(shape) if d == 1]
    squeeze_axes = data.draw(st.none() | st.lists(st.sampled_from(ones), min_size=1, unique=True) if ones
                             else st.none())
    if squeeze_axes is not None:
        squeeze_axes = [a - len(shape) if data.draw(st.booleans()) else a for a in squeeze_axes]
    out_rank = len(shape) + data.draw(st.integers(1, 2))
    unsq = data.draw(st.lists(st.integers(-out_rank, out_rank - 1), min_size=out_rank - len(shape),
                              max_size=out_rank - len(shape), unique_by=lambda a: a % out_rank))
    if opset < 13:
        check_op("Squeeze", [x], {} if squeeze_axes is None else {"axes": squeeze_axes}, opset=opset, **EXACT)
        check_op("Unsqueeze", [x], {"axes": unsq}, opset=opset, **EXACT)
    else:
        sq_inputs = [x] if not squeeze_axes else [x, ints(squeeze_axes)]
        check_op("Squeeze", sq_inputs, opset=opset, initializer_inputs=(1,), **EXACT)
        check_op("Unsqueeze", [x, ints(unsq)], opset=opset, initializer_inputs=(1,), **EXACT)


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_shape_with_start_end(shape, seed, data):
    x = floats(shape, seed)
    check_op("Shape", [x], opset=13, **EXACT)
    attrs = {}
    if data.draw(st.booleans()):
        attrs["start"] = data.draw(st.integers(-6, 6))
    if data.draw(st.booleans()):
        attrs["end"] = data.draw(st.integers(-6, 6))
    check_op("Shape", [x], attrs, opset=15, **EXACT)


@settings(max_examples=20, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_gather(shape, seed, data):
    """Negative indices, scalar and 2-D index tensors, negative axis."""
    x = floats(shape, seed)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    dim = shape[axis]
    idx_shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
    idx = np.random.default_rng(seed).integers(-dim, dim, size=idx_shape).astype(np.int64)
    check_op("Gather", [x, idx], {"axis": axis}, **EXACT)


bound = st.integers(-7, 7) | st.sampled_from([INT64_MAX, INT64_MIN, -INT64_MAX, 2**31 - 1])


@settings(max_examples=100, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_slice_opset13(shape, seed, data):
    """Inputs starts/ends/axes/steps; clamping of huge and negative bounds; negative steps."""
    x = floats(shape, seed)
    axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                              unique_by=lambda a: a % len(shape)))
    k = len(axes)
    starts = data.draw(st.lists(bound, min_size=k, max_size=k))
    ends = data.draw(st.lists(bound, min_size=k, max_size=k))
    steps = data.draw(st.lists(st.sampled_from([-3, -2, -1, 1, 2, 3]), min_size=k, max_size=k))
    with_axes = data.draw(st.booleans()) or axes != list(range(k))
    inputs = [x, ints(starts), ints(ends)] + ([ints(axes), ints(steps)] if with_axes else [])
    check_op("Slice", inputs, opset=13, initializer_inputs=(1, 2, 3, 4), **EXACT)


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_slice_opset9_attributes(shape, seed, data):
    x = floats(shape, seed)
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True))
    k = len(axes)
    starts = data.draw(st.lists(st.integers(-7, 7), min_size=k, max_size=k))
    ends = data.draw(st.lists(st.integers(-7, 7) | st.just(INT64_MAX), min_size=k, max_size=k))
    check_op("Slice", [x], {"starts": starts, "ends": ends, "axes": axes}, opset=9, **EXACT)


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds,
       pair=st.sampled_from([(np.float32, 7), (np.float32, 6), (np.float32, 9), (np.int64, 1), (np.float32, 10),
                             (np.int32, 7), (np.float32, 2), (np.bool_, 1), (np.float32, 11)]))
def test_cast(shape, seed, pair):
    """Float to int truncates toward zero; TensorProto codes 1 float, 2 uint8, 6 int32, 7 int64, 9 bool,
    10 float16, 11 double."""
    src, to = pair
    x = floats(shape, seed, -100, 200) if src == np.float32 else np.random.default_rng(seed).integers(
        0, 100, size=shape).astype(src)
    if to == 2:
        x = np.abs(x)  # float -> uint8 of a negative value is undefined
    check_op("Cast", [x], {"to": to}, **EXACT)


def test_constant_forms():
    from onnx import numpy_helper

    value = floats((2, 3), 0)
    check_op("Constant", [], {"value": numpy_helper.from_array(value)}, **EXACT)
    check_op("Constant", [], {"value_float": 1.5}, **EXACT)
    check_op("Constant", [], {"value_floats": [1.5, 2.5]}, **EXACT)
    check_op("Constant", [], {"value_int": 7}, **EXACT)
    check_op("Constant", [], {"value_ints": [7, -1]}, **EXACT)


@pytest.mark.parametrize("value", [None, np.array([3.5], np.float32), np.array([4], np.int64),
                                   np.array([1], np.int32)])
def test_constant_of_shape(value):
    from onnx import numpy_helper

    attrs = {} if value is None else {"value": numpy_helper.from_array(value)}
    check_op("ConstantOfShape", [ints([2, 3])], attrs, **EXACT)
    check_op("ConstantOfShape", [ints([0])], attrs, **EXACT)


def test_identity_and_dropout():
    x = floats((2, 3), 0)
    check_op("Identity", [x], **EXACT)
    check_op("Dropout", [x], opset=13, **EXACT)
    check_op("Dropout", [x], {"ratio": 0.3}, opset=10, **EXACT)
    check_op("Dropout", [x, np.array(0.3, np.float32)], opset=13, initializer_inputs=(1,), **EXACT)


def test_dropout_training_mode_is_unsupported():
    with pytest.raises(UnsupportedOpError, match="training_mode"):
        OPS["Dropout"]["numpy"](floats((2,), 0), None, np.array(True))


@settings(max_examples=80, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), opset=st.sampled_from([9, 11, 13, 18]),
       mode=st.sampled_from(["constant", "reflect", "edge"]))
def test_pad(shape, seed, data, opset, mode):
    """Pads as attribute (opset 9) and input (11+), an ``axes`` input (18), negative pads (crop), every mode."""
    x = floats(shape, seed)
    axes = None
    if opset >= 18 and data.draw(st.booleans()):
        axes = data.draw(st.lists(st.integers(-len(shape), len(shape) - 1), min_size=1, max_size=len(shape),
                                  unique_by=lambda a: a % len(shape)))
    dims = [shape[a] for a in axes] if axes is not None else list(shape)
    begin, end = [], []
    for d in dims:
        if mode == "constant":
            lo = -(d - 1)  # cropping, but never the whole dim
            b = data.draw(st.integers(max(lo, -2), 3))
            e = data.draw(st.integers(max(lo + max(-b, 0), -2) if b < 0 else max(lo, -2), 3))
        else:
            limit = d - 1 if mode == "reflect" else 3
            b = data.draw(st.integers(0, min(limit, 3)))
            e = data.draw(st.integers(0, min(limit, 3)))
        begin.append(b)
        end.append(e)
    pads = begin + end
    value = float(data.draw(st.sampled_from([0.0, 1.5])))
    if opset < 11:
        check_op("Pad", [x], {"pads": pads, "mode": mode, "value": value}, opset=opset, **EXACT)
        return
    inputs = [x, ints(pads)]
    if mode == "constant" or axes is not None:
        inputs.append(np.array(value, np.float32) if mode == "constant" else None)
    if axes is not None:
        inputs.append(ints(axes))
    check_op("Pad", inputs, {"mode": mode}, opset=opset, initializer_inputs=(1, 2, 3), **EXACT)


@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_expand_tile(shape, seed, data):
    x = floats(shape, seed)
    extra = data.draw(st.lists(st.integers(1, 3), max_size=2))
    target = extra + [d if d != 1 else data.draw(st.integers(1, 3)) for d in shape]
    target = [1 if (data.draw(st.booleans()) and i >= len(extra)) else t for i, t in enumerate(target)]
    check_op("Expand", [x, ints(target)], initializer_inputs=(1,), **EXACT)
    reps = data.draw(st.lists(st.integers(0, 3), min_size=len(shape), max_size=len(shape)))
    check_op("Tile", [x, ints(reps)], initializer_inputs=(1,), **EXACT)


@pytest.mark.parametrize("start,limit,delta,dtype", [
    (0, 10, 3, np.int64), (10, 0, -3, np.int64), (5, 5, 1, np.int32), (1, 0, 1, np.int64),
    (0.0, 1.0, 0.25, np.float32), (2.5, -1.0, -0.75, np.float32),
])
def test_range(start, limit, delta, dtype):
    inputs = [np.array(v, dtype) for v in (start, limit, delta)]
    check_op("Range", inputs, initializer_inputs=(0, 1, 2), atol=1e-6, rtol=1e-6)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data())
def test_slice_sweep(shape, seed, data):
    """``test_slice_opset13`` with many times the examples (run with -m slow)."""
    test_slice_opset13.hypothesis.inner_test(shape, seed, data)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(shape=small_shapes, seed=seeds, data=st.data(), opset=st.sampled_from([9, 11, 13, 18]),
       mode=st.sampled_from(["constant", "reflect", "edge"]))
def test_pad_sweep(shape, seed, data, opset, mode):
    """``test_pad`` with many times the examples (run with -m slow)."""
    test_pad.hypothesis.inner_test(shape, seed, data, opset, mode)
