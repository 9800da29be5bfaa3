"""Shape and data-movement ops: they rearrange or select values without computing new ones.

Exports are full of these, often in small subgraphs that *compute a shape*
(``Shape -> Gather -> Unsqueeze -> Concat -> Reshape``). With the input size
fixed those subgraphs are constant, and the session computes them once per
input shape (``minicnn.executor``), so they are written for clarity only;
NumPy's views and copies are as fast as they get and none of these ops has
a Numba fast path.

Several of them moved an attribute to an input at some opset (Slice at 10,
Pad and Clip at 11, Split/Squeeze/Unsqueeze at 13). Each function names the
parameter like both the attribute and the input, so the old and the new
form land in the same place; where the two forms also *mean* different
things, the function takes ``opset``.

Outputs may share memory with inputs (Reshape returns a view, Identity
returns its input): no minicnn op ever modifies its inputs, so that is safe.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from onnx import helper

from ..errors import InputError, UnsupportedOpError
from .registry import register, register_preparer

INT32_MAX = np.iinfo(np.int32).max
INT64_MAX = np.iinfo(np.int64).max


def _ints(value, what: str) -> list[int]:
    """An attribute list or a 1-D int tensor as a list of Python ints."""
    arr = np.asarray(value)
    if arr.ndim > 1:
        raise InputError(f"{what} must be 1-D, got shape {list(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must hold integers, got dtype {arr.dtype}")
    return [int(v) for v in arr.reshape(-1)]


def _axis(axis: int, rank: int, op: str) -> int:
    """``axis`` in ``[-rank, rank)`` made non-negative, or an InputError naming the op."""
    if not -rank <= axis < rank:
        raise InputError(f"{op}: axis {axis} is out of range for rank {rank}")
    return axis % rank


# ---------------------------------------------------------------------------
# Reshaping
# ---------------------------------------------------------------------------
@register("Reshape")
def Reshape(data, shape, *, allowzero=0):
    """``data`` with a new shape holding the same number of values.

    In ``shape``, -1 (at most once) means "whatever makes the sizes match",
    and 0 means "keep this dim of the input" (unless ``allowzero=1``, where
    0 is a real zero-size dim).
    """
    x = np.asarray(data)
    target = _ints(shape, "Reshape: shape")
    if target.count(-1) > 1:
        raise InputError(f"Reshape: shape {target} has more than one -1")
    resolved = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= x.ndim:
                raise InputError(f"Reshape: shape {target} copies dim {i} (0) but the input {list(x.shape)} "
                                 f"has only {x.ndim} dims")
            d = x.shape[i]
        elif d < -1:
            raise InputError(f"Reshape: shape {target} has a negative dim {d}")
        resolved.append(d)
    if -1 in resolved:
        known = math.prod([d for d in resolved if d != -1])
        if known == 0 or x.size % known:
            raise InputError(f"Reshape: cannot reshape input of shape {list(x.shape)} ({x.size} values) to {target}")
        resolved[resolved.index(-1)] = x.size // known
    if math.prod(resolved) != x.size:
        raise InputError(f"Reshape: cannot reshape input of shape {list(x.shape)} ({x.size} values) to "
                         f"{target} (= {resolved}, {math.prod(resolved)} values)")
    return x.reshape(resolved)


@register("Flatten")
def Flatten(input, *, axis=1):
    """A 2-D matrix: dims before ``axis`` multiplied into rows, the rest into columns."""
    x = np.asarray(input)
    if not -x.ndim <= axis <= x.ndim:
        raise InputError(f"Flatten: axis {axis} is out of range for an input of shape {list(x.shape)}")
    axis = axis + x.ndim if axis < 0 else axis
    rows = math.prod(x.shape[:axis])
    return x.reshape(rows, math.prod(x.shape[axis:]))


@register("Squeeze")
def Squeeze(data, axes=None):
    """Remove dims of size 1: those in ``axes`` (attribute before opset 13, input after), or all of them."""
    x = np.asarray(data)
    if axes is None or np.asarray(axes).size == 0:
        return x.reshape([d for d in x.shape if d != 1])
    picked = sorted({_axis(a, x.ndim, "Squeeze") for a in _ints(axes, "Squeeze: axes")})
    bad = [a for a in picked if x.shape[a] != 1]
    if bad:
        raise InputError(f"Squeeze: axis {bad[0]} of input {list(x.shape)} has size {x.shape[bad[0]]}, not 1")
    return x.reshape([d for i, d in enumerate(x.shape) if i not in picked])


@register("Unsqueeze")
def Unsqueeze(data, axes=None):
    """Insert dims of size 1 at ``axes``, positions in the *output* (negative counts from its end)."""
    x = np.asarray(data)
    if axes is None:
        raise InputError("Unsqueeze needs axes (an attribute before opset 13, the second input from 13 on)")
    raw = _ints(axes, "Unsqueeze: axes")
    out_rank = x.ndim + len(raw)
    picked = [_axis(a, out_rank, "Unsqueeze") for a in raw]
    if len(set(picked)) != len(picked):
        raise InputError(f"Unsqueeze: axes {raw} name the same output dim twice (output rank {out_rank})")
    dims = iter(x.shape)
    return x.reshape([1 if i in picked else next(dims) for i in range(out_rank)])


@register("Transpose")
def Transpose(data, *, perm=None):
    """Permute the dims: output dim ``i`` is input dim ``perm[i]`` (default: reverse them)."""
    x = np.asarray(data)
    if perm is None:
        return x.transpose()
    perm = [int(p) for p in perm]
    if sorted(p % max(x.ndim, 1) for p in perm) != list(range(x.ndim)):
        raise InputError(f"Transpose: perm {perm} is not a permutation of the {x.ndim} dims of {list(x.shape)}")
    return x.transpose(perm)


# ---------------------------------------------------------------------------
# Joining and splitting
# ---------------------------------------------------------------------------
@register("Concat")
def Concat(*inputs, axis):
    """Join the inputs along ``axis``; every other dim must agree."""
    arrays = [np.asarray(a) for a in inputs]
    if not arrays:
        raise InputError("Concat needs at least one input")
    rank = arrays[0].ndim
    ax = _axis(axis, rank, "Concat")
    for a in arrays:
        if a.ndim != rank or a.shape[:ax] + a.shape[ax + 1:] != arrays[0].shape[:ax] + arrays[0].shape[ax + 1:]:
            raise InputError(f"Concat along axis {axis}: shapes {[list(b.shape) for b in arrays]} "
                             "differ in a dim other than the axis")
    return np.concatenate(arrays, axis=ax)


@register("Split")
def Split(input, split=None, *, axis=0, num_outputs=None):
    """Cut ``input`` along ``axis`` into pieces; returns a tuple.

    Piece sizes come from ``split`` (an attribute before opset 13, an input
    from 13 on). Without it, the axis is cut into ``num_outputs`` equal
    pieces (opset 18 allows a smaller last piece: size ``ceil(dim / n)``).
    Before opset 18 the number of pieces is the node's number of outputs,
    which the session passes as ``num_outputs`` too.
    """
    x = np.asarray(input)
    ax = _axis(axis, x.ndim, "Split")
    dim = x.shape[ax]
    if split is not None and np.asarray(split).size:
        sizes = _ints(split, "Split: split")
        if sum(sizes) != dim or min(sizes) < 0:
            raise InputError(f"Split: sizes {sizes} do not add up to dim {ax} of input {list(x.shape)} ({dim})")
    elif num_outputs is not None:
        n = int(num_outputs)
        if n < 1 or n > max(dim, 1):
            raise InputError(f"Split: cannot cut dim {ax} of size {dim} into {n} pieces")
        chunk = -(-dim // n)
        sizes = [chunk] * (n - 1) + [dim - chunk * (n - 1)]
        if sizes[-1] <= 0:
            raise InputError(f"Split: cannot cut dim {ax} of size {dim} into {n} pieces")
    else:
        raise UnsupportedOpError("Split without a 'split' input needs the number of outputs (num_outputs)")
    bounds = np.cumsum(sizes)[:-1]
    return tuple(np.split(x, bounds, axis=ax))


# ---------------------------------------------------------------------------
# Selecting
# ---------------------------------------------------------------------------
@register("Shape")
def Shape(data, *, start=0, end=None):
    """The input's shape as an int64 vector; opset 15 added ``start``/``end`` to keep a slice of it."""
    shape = np.asarray(data).shape
    return np.array(shape[slice(start, end)], dtype=np.int64)


@register("Gather")
def Gather(data, indices, *, axis=0):
    """Pick entries along ``axis`` by index: ``out = data.take(indices, axis)``.

    Negative indices count from the end. The output's shape is ``data``'s
    with dim ``axis`` replaced by ``indices``' shape (so a scalar index
    removes the dim).
    """
    x = np.asarray(data)
    ax = _axis(axis, x.ndim, "Gather")
    idx = np.asarray(indices)
    if not np.issubdtype(idx.dtype, np.integer):
        raise InputError(f"Gather: indices must be integers, got {idx.dtype}")
    dim = x.shape[ax]
    if idx.size and (idx.min() < -dim or idx.max() >= dim):
        raise InputError(f"Gather: index out of range [{-dim}, {dim - 1}] for axis {ax} of input {list(x.shape)}")
    return np.take(x, np.where(idx < 0, idx + dim, idx), axis=ax)


def _slice_bounds(start: int, end: int, step: int, dim: int) -> slice:
    """One axis of ONNX Slice as a Python slice, with the spec's clamping.

    Negative starts/ends count from the end. Then, for a positive step,
    start and end are clamped to [0, dim]; for a negative step start is
    clamped to [0, dim - 1] and end to [-1, dim - 1], where -1 means "past
    the first element" (a Python slice spells that ``None``). An end of
    INT32_MAX or INT64_MAX means "as far as the step goes" in either
    direction, as in onnxruntime (NumPy's ``None``).
    """
    if end in (INT32_MAX, INT64_MAX):
        end = dim if step > 0 else -1
    elif end < 0:
        end += dim
    if start < 0:
        start += dim
    if step > 0:
        start = min(max(start, 0), dim)
        end = min(max(end, 0), dim)
        return slice(start, end, step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@register("Slice")
def Slice(data, starts=None, ends=None, axes=None, steps=None):
    """``data[starts:ends:steps]`` along ``axes`` (default: the first len(starts) axes).

    Before opset 10 starts/ends/axes are attributes (and steps are all 1);
    from 10 on they are inputs. Out-of-range bounds are clamped (an end of
    INT64_MAX means "to the end"), never an error.
    """
    x = np.asarray(data)
    if starts is None or ends is None:
        raise InputError("Slice needs starts and ends")
    starts_l, ends_l = _ints(starts, "Slice: starts"), _ints(ends, "Slice: ends")
    if len(starts_l) != len(ends_l):
        raise InputError(f"Slice: starts {starts_l} and ends {ends_l} differ in length")
    axes_l = list(range(len(starts_l))) if axes is None else _ints(axes, "Slice: axes")
    steps_l = [1] * len(starts_l) if steps is None else _ints(steps, "Slice: steps")
    if not len(axes_l) == len(steps_l) == len(starts_l):
        raise InputError(f"Slice: starts, ends, axes {axes_l} and steps {steps_l} must have the same length")
    index = [slice(None)] * x.ndim
    seen = set()
    for start, end, ax, step in zip(starts_l, ends_l, axes_l, steps_l):
        ax = _axis(ax, x.ndim, "Slice")
        if ax in seen:
            raise InputError(f"Slice: axis {ax} appears twice in axes {axes_l}")
        seen.add(ax)
        if step == 0:
            raise InputError("Slice: a step of 0 is not allowed")
        index[ax] = _slice_bounds(start, end, step, x.shape[ax])
    return x[tuple(index)]


@register("Identity")
def Identity(input):
    return input


@register("Dropout")
def Dropout(data, ratio=None, training_mode=None, *, seed=None, is_test=None):
    """Inference: the identity. Dropout only does something while training.

    Only the first output is produced; a node that also asks for the mask is
    reported as unsupported by the session. ``ratio`` is an attribute before
    opset 12 and an input after; either way it is ignored at inference.
    """
    if training_mode is not None and bool(np.asarray(training_mode).reshape(-1)[0]):
        raise UnsupportedOpError("Dropout with training_mode=True (random masking) is not supported; "
                                 "minicnn runs inference only")
    return data


@register("Cast")
def Cast(input, *, to, saturate=1):
    """Convert to the dtype numbered ``to`` (ONNX TensorProto codes: 1 float32, 7 int64, 9 bool, ...).

    Float to int truncates toward zero, as C does. ``saturate`` only matters
    for float8 types, which minicnn does not support.
    """
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(int(to)))
    except (KeyError, TypeError, ValueError):
        raise UnsupportedOpError(f"Cast: unknown target type to={to}") from None
    if dtype.kind not in "biuf":
        raise UnsupportedOpError(f"Cast: target type to={to} ({dtype}) is not supported (numeric and bool only)")
    x = np.asarray(input)
    if dtype.kind in "iu" and x.dtype.kind == "f":
        x = np.trunc(x)
    with np.errstate(invalid="ignore", over="ignore"):
        return x.astype(dtype)


# ---------------------------------------------------------------------------
# Making tensors
# ---------------------------------------------------------------------------
@register("Constant")
def Constant(*, value=None, value_float=None, value_floats=None, value_int=None, value_ints=None,
             sparse_value=None, value_string=None, value_strings=None):
    """The tensor held in whichever ``value*`` attribute is set (exactly one must be)."""
    given = {k: v for k, v in dict(value=value, value_float=value_float, value_floats=value_floats,
                                   value_int=value_int, value_ints=value_ints, sparse_value=sparse_value,
                                   value_string=value_string, value_strings=value_strings).items()
             if v is not None}
    if len(given) != 1:
        raise InputError(f"Constant needs exactly one value attribute, got {sorted(given) or 'none'}")
    (kind, v), = given.items()
    if kind == "value":
        return np.asarray(v)
    if kind == "value_float":
        return np.array(v, dtype=np.float32)
    if kind == "value_floats":
        return np.array(v, dtype=np.float32).reshape(-1)
    if kind == "value_int":
        return np.array(v, dtype=np.int64)
    if kind == "value_ints":
        return np.array(v, dtype=np.int64).reshape(-1)
    raise UnsupportedOpError(f"Constant: attribute {kind!r} (sparse or string tensors) is not supported")


@register("ConstantOfShape")
def ConstantOfShape(input, *, value=None):
    """A tensor of shape ``input`` filled with the single value of ``value`` (default float32 0)."""
    shape = _ints(input, "ConstantOfShape: shape")
    if any(d < 0 for d in shape):
        raise InputError(f"ConstantOfShape: shape {shape} has a negative dim")
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    if fill.size != 1:
        raise InputError(f"ConstantOfShape: value must hold one element, got {fill.size}")
    return np.full(shape, fill[0], dtype=fill.dtype)


@register("Range")
def Range(start, limit, delta):
    """``start, start + delta, ...`` up to (not including) ``limit``; ``max(ceil((limit - start) / delta), 0)`` values."""
    s, lim, d = (np.asarray(v).reshape(()) for v in (start, limit, delta))
    if d == 0:
        raise InputError("Range: delta must not be 0")
    count = max(int(np.ceil((float(lim) - float(s)) / float(d))), 0)
    return (s + np.arange(count, dtype=s.dtype) * d).astype(s.dtype)


@register("Expand")
def Expand(input, shape):
    """Broadcast ``input`` to ``shape`` (both ways: a 1 in ``shape`` keeps the input's dim)."""
    x = np.asarray(input)
    target = _ints(shape, "Expand: shape")
    try:
        out_shape = np.broadcast_shapes(x.shape, tuple(target))
    except ValueError:
        raise InputError(f"Expand: input {list(x.shape)} does not broadcast with shape {target}") from None
    return np.array(np.broadcast_to(x, out_shape))


@register("Tile")
def Tile(input, repeats):
    """Repeat the whole input ``repeats[i]`` times along each dim ``i``."""
    x = np.asarray(input)
    reps = _ints(repeats, "Tile: repeats")
    if len(reps) != x.ndim or min(reps, default=0) < 0:
        raise InputError(f"Tile: repeats {reps} must hold {x.ndim} non-negative values for input {list(x.shape)}")
    return np.tile(x, reps)


# ---------------------------------------------------------------------------
# Pad
# ---------------------------------------------------------------------------
PAD_MODES = ("constant", "reflect", "edge")


def _pad_geometry(shape: tuple, pads, axes, mode: str) -> tuple[tuple, list]:
    """Check a Pad and resolve it: the crop of the input (negative pads) and the (begin, end) widths to add."""
    if mode not in PAD_MODES:
        raise UnsupportedOpError(f"Pad: mode={mode!r} is not supported (supported: {', '.join(PAD_MODES)})")
    if pads is None:
        raise InputError("Pad needs pads")
    rank = len(shape)
    amounts = _ints(pads, "Pad: pads")
    axes_l = list(range(rank)) if axes is None else [_axis(a, rank, "Pad") for a in _ints(axes, "Pad: axes")]
    if len(amounts) != 2 * len(axes_l):
        raise InputError(f"Pad: pads {amounts} should hold 2 values per padded axis ({len(axes_l)} axes, "
                         f"input {list(shape)})")
    begin = dict(zip(axes_l, amounts[:len(axes_l)]))
    end = dict(zip(axes_l, amounts[len(axes_l):]))
    # First crop the negative pads, then pad the positive ones.
    crop = tuple(slice(max(-begin.get(a, 0), 0), shape[a] - max(-end.get(a, 0), 0)) for a in range(rank))
    if any(s.start > s.stop for s in crop):
        raise InputError(f"Pad: negative pads {amounts} remove more than the whole input {list(shape)}")
    widths = [(max(begin.get(a, 0), 0), max(end.get(a, 0), 0)) for a in range(rank)]
    if mode != "constant":
        cropped = [s.stop - s.start for s in crop]
        for a, (b, e) in enumerate(widths):
            if (b or e) and cropped[a] == 0:
                raise InputError(f"Pad: mode={mode!r} cannot pad an empty dim {a}")
            if mode == "reflect" and max(b, e) >= cropped[a] and (b or e):
                raise InputError(f"Pad: reflect pads ({b}, {e}) on dim {a} of size {cropped[a]} must be smaller "
                                 "than the dim")
    return crop, widths


def _constant_pad_runner(crop: tuple, widths: list, cropped_shape: tuple, fill) -> Callable:
    """``run(x)`` for a constant-mode Pad: a new array of the fill value, the (cropped) input copied into it.

    (np.pad does the same in several passes and costs ~100 microseconds on
    BlazeFace's small channel pads.) ``fill`` is already of the data's type.
    """
    out_shape = tuple(b + n + e for n, (b, e) in zip(cropped_shape, widths))
    middle = tuple(slice(b, b + n) for n, (b, _) in zip(cropped_shape, widths))

    def run(x: np.ndarray) -> np.ndarray:
        out = np.full(out_shape, fill, dtype=x.dtype)
        out[middle] = x[crop]
        return out

    return run


def _pad_fill(x: np.ndarray, constant_value, value):
    """The constant-mode fill: the ``constant_value`` input (opset >= 11) or the ``value`` attribute, as x's type."""
    fill = value if constant_value is None else np.asarray(constant_value).reshape(-1)[0]
    return x.dtype.type(fill)


@register("Pad")
def Pad(data, pads=None, constant_value=None, axes=None, *, mode="constant", value=0.0):
    """Grow (or, with negative pads, shrink) each dim at both ends.

    ``pads`` lists all the begin amounts, then all the end amounts:
    ``[x1_begin, x2_begin, ..., x1_end, x2_end, ...]`` for the dims in
    ``axes`` (opset 18; default every dim). Before opset 11 ``pads`` and the
    fill ``value`` are attributes; from 11 on ``pads`` and
    ``constant_value`` are inputs. Modes: ``constant`` fills with the value,
    ``edge`` repeats the border value, ``reflect`` mirrors the values next to
    the border (without repeating the border itself). A negative pad removes
    that many values from that end.
    """
    x = np.asarray(data)
    crop, widths = _pad_geometry(x.shape, pads, axes, mode)
    if mode == "constant":
        cropped = x[crop]
        return _constant_pad_runner(crop, widths, cropped.shape, _pad_fill(x, constant_value, value))(x)
    return np.pad(x[crop], widths, mode=mode)


@register_preparer("Pad", backend="numba")
def prepare_Pad(args, constant, *, mode="constant", value=0.0, pads=None):
    """A session's prepared constant-mode Pad: shapes, slices and fill worked out once, when pads are constant.

    Before opset 11 ``pads`` is an attribute (``args`` is just the data);
    from 11 on it is an input, with the fill and (opset 18) the axes.
    """
    data, pads_in, constant_value, axes = (list(args) + [None] * 4)[:4]
    if mode != "constant" or not all(constant[1:]):
        return None
    x = np.asarray(data)
    crop, widths = _pad_geometry(x.shape, pads if len(args) == 1 else pads_in, axes, mode)
    run = _constant_pad_runner(crop, widths, x[crop].shape, _pad_fill(x, constant_value, value))
    return lambda X, *_constant_inputs: run(X)
