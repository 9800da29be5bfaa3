"""Shape ops: the plumbing real exports are full of.

None of these does arithmetic on the data; they move it (Transpose, Concat,
Pad, Slice, Gather) or only relabel it (Reshape, Flatten, Squeeze). PyTorch
exports also compute Reshape targets at run time with chains like
Shape -> Gather -> Unsqueeze -> Concat; the session folds those chains once
per input shape (see ``minicnn.executor``), so they cost nothing after the
first run.

Several of these changed between opsets: attributes became inputs (Slice at
10, Pad and Clip at 11, Squeeze/Unsqueeze at 13). Where that happened the
attribute and the input share one parameter name, so one body serves both.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from ..errors import InputError, UnsupportedOpError
from .registry import register

INT64_MAX = np.iinfo(np.int64).max


def _axis(axis: int, rank: int, op: str) -> int:
    a = int(axis)
    if not -rank <= a < rank:
        raise InputError(f"{op}: axis {a} is out of range for rank {rank}")
    return a + rank if a < 0 else a


@register("Identity")
def Identity(input):
    return input


@register("Dropout")
def Dropout(data, ratio=None, training_mode=None, *, seed=None):
    """Inference: the identity. (Only the first output; a model that reads the mask is refused by the session.)"""
    if training_mode is not None and bool(np.asarray(training_mode)):
        raise UnsupportedOpError("Dropout with training_mode=True is not supported (inference only)")
    return data


@register("Flatten")
def Flatten(input, *, axis=1):
    """To 2-D: [prod(shape[:axis]), prod(shape[axis:])]."""
    axis = int(axis) + input.ndim if axis < 0 else int(axis)
    if not 0 <= axis <= input.ndim:
        raise InputError(f"Flatten: axis {axis} out of range for rank {input.ndim}")
    return input.reshape(int(np.prod(input.shape[:axis], dtype=np.int64)), -1)


@register("Reshape")
def Reshape(data, shape, *, allowzero=0):
    """New shape, same data. In ``shape``, -1 is inferred and 0 copies the input's dim (unless allowzero)."""
    target = [int(d) for d in shape]
    if not allowzero:
        target = [data.shape[i] if d == 0 else d for i, d in enumerate(target)]
    known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
    if target.count(-1) > 1 or (target.count(-1) == 1 and (known == 0 or data.size % known)) or (
        -1 not in target and known != data.size
    ):
        raise InputError(f"Reshape: cannot view {data.size} elements of shape {list(data.shape)} as {list(shape)}")
    return data.reshape(target)


@register("Transpose")
def Transpose(data, *, perm=None):
    """Permute axes; default reverses them."""
    return np.transpose(data, perm if perm is not None else None)


@register("Concat")
def Concat(*inputs, axis):
    rank = inputs[0].ndim
    axis = _axis(axis, rank, "Concat")
    for x in inputs[1:]:
        if x.ndim != rank or any(a != b for i, (a, b) in enumerate(zip(x.shape, inputs[0].shape)) if i != axis):
            raise InputError(f"Concat on axis {axis}: shapes {[list(i.shape) for i in inputs]} differ elsewhere")
    return np.concatenate(inputs, axis=axis)


@register("Shape")
def Shape(data, *, start=0, end=None):
    """The shape as an int64 vector (opset 15 added start/end to take a slice of it)."""
    return np.array(data.shape[start:end], dtype=np.int64)


@register("Gather")
def Gather(data, indices, *, axis=0):
    """``np.take`` along ``axis``; negative indices count from the end."""
    axis = _axis(axis, data.ndim, "Gather")
    n = data.shape[axis]
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise InputError(f"Gather: indices {idx.min()}..{idx.max()} out of range for axis {axis} of size {n}")
    return np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)


@register("Unsqueeze")
def Unsqueeze(data, axes=None, *, opset=13):
    """Insert size-1 dims at ``axes`` (positions in the *output*). Attribute before opset 13, input since."""
    if axes is None:
        raise InputError("Unsqueeze needs axes")
    rank = data.ndim + len(axes)
    out = data
    for a in sorted(_axis(a, rank, "Unsqueeze") for a in axes):
        out = np.expand_dims(out, a)
    return out


@register("Squeeze")
def Squeeze(data, axes=None, *, opset=13):
    """Remove size-1 dims at ``axes`` (all of them when omitted)."""
    if axes is None or len(axes) == 0:
        return np.squeeze(data)
    axes = tuple(_axis(a, data.ndim, "Squeeze") for a in axes)
    bad = [a for a in axes if data.shape[a] != 1]
    if bad:
        raise InputError(f"Squeeze: axes {bad} of shape {list(data.shape)} are not of size 1")
    return np.squeeze(data, axis=axes)


@register("Slice")
def Slice(data, starts=None, ends=None, axes=None, steps=None, *, opset=13):
    """``data[start:end:step]`` along each listed axis, with ONNX's clamping rules.

    Out-of-range starts/ends are clamped (INT64_MAX means "to the end"); with
    a negative step, start is clamped to [0, dim-1] and end to [-1, dim-1],
    where -1 means "past the front". Before opset 10 these were attributes
    (no steps); since, inputs. Both arrive under the same names.
    """
    starts = [int(s) for s in starts]
    ends = [int(e) for e in ends]
    axes = list(range(len(starts))) if axes is None else [_axis(a, data.ndim, "Slice") for a in axes]
    steps = [1] * len(starts) if steps is None else [int(s) for s in steps]
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise InputError("Slice: step 0")
        dim = data.shape[axis]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            index[axis] = slice(start, end, step)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            index[axis] = slice(start, None if end < 0 else end, step)
    return data[tuple(index)]


@register("Cast")
def Cast(input, *, to, saturate=1):
    """Convert to the element type ``to`` (a TensorProto data type number, e.g. 1 = float32, 7 = int64)."""
    return input.astype(helper.tensor_dtype_to_np_dtype(int(to)))


@register("Constant")
def Constant(*, value=None, value_float=None, value_floats=None, value_int=None, value_ints=None, **other):
    """A tensor stored in the node itself."""
    if other:
        raise UnsupportedOpError(f"Constant with attribute(s) {sorted(other)} is not supported")
    if value is not None:
        return np.asarray(value)
    if value_float is not None:
        return np.array(value_float, dtype=np.float32)
    if value_floats is not None:
        return np.array(value_floats, dtype=np.float32)
    if value_int is not None:
        return np.array(value_int, dtype=np.int64)
    if value_ints is not None:
        return np.array(value_ints, dtype=np.int64)
    raise InputError("Constant node has no value attribute")


@register("ConstantOfShape")
def ConstantOfShape(input, *, value=None):
    """A tensor of shape ``input`` filled with ``value`` (a 1-element tensor; default float32 0)."""
    fill = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    return np.full([int(d) for d in input], fill[0], dtype=fill.dtype)


@register("Expand")
def Expand(input, shape):
    """Broadcast ``input`` to ``shape`` (NumPy broadcasting both ways)."""
    try:
        target = np.broadcast_shapes(input.shape, tuple(int(d) for d in shape))
    except ValueError:
        raise InputError(f"Expand: {list(input.shape)} does not broadcast to {list(shape)}") from None
    return np.array(np.broadcast_to(input, target))


@register("Tile")
def Tile(input, repeats):
    return np.tile(input, [int(r) for r in repeats])


@register("Range")
def Range(start, limit, delta):
    return np.arange(start, limit, delta, dtype=np.asarray(start).dtype)


@register("Pad")
def Pad(data, pads=None, constant_value=None, axes=None, *, mode="constant", value=0.0, opset=13):
    """Pad (or, with negative amounts, crop) each axis.

    ``pads`` is [x1_begin, x2_begin, ..., x1_end, x2_end, ...]. Before opset 11
    pads and value were attributes; since, inputs (opset 18 added ``axes``).
    Modes: constant, reflect (mirror without repeating the edge), edge.
    """
    pads = [int(p) for p in pads]
    axes = list(range(data.ndim)) if axes is None else [_axis(a, data.ndim, "Pad") for a in axes]
    if len(pads) != 2 * len(axes):
        raise InputError(f"Pad: {len(pads)} pad values for {len(axes)} axes (need {2 * len(axes)})")
    begin, end = [0] * data.ndim, [0] * data.ndim
    for i, a in enumerate(axes):
        begin[a], end[a] = pads[i], pads[i + len(axes)]
    # negative pads crop first
    crop = tuple(slice(-b if b < 0 else 0, data.shape[k] + e if e < 0 else None) for k, (b, e) in
                 enumerate(zip(begin, end)))
    data = data[crop]
    widths = [(max(b, 0), max(e, 0)) for b, e in zip(begin, end)]
    if mode == "constant":
        fill = value if constant_value is None or np.asarray(constant_value).size == 0 else constant_value
        return np.pad(data, widths, mode="constant", constant_values=np.asarray(fill).reshape(-1)[0]
                      if np.ndim(fill) else fill)
    if mode == "reflect":
        return np.pad(data, widths, mode="reflect")
    if mode == "edge":
        return np.pad(data, widths, mode="edge")
    raise UnsupportedOpError(f"Pad mode {mode!r} is not supported (constant, reflect, edge)")
