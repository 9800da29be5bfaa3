"""Resize and Upsample: change the spatial size of a tensor by interpolation.

For every output coordinate ``x_out`` along a resized axis, the op first
finds where it falls in the input (``x_in``, a real number), then reads the
input there:

* ``mode="nearest"``: the input cell ``x_in`` rounds to (``nearest_mode``
  says how: ``round_prefer_floor`` (default) rounds halves down,
  ``round_prefer_ceil`` up, ``floor``, ``ceil``);
* ``mode="linear"``: a mix of the two cells around ``x_in``, weighted by
  closeness. Applied along each resized axis in turn, that is bilinear
  interpolation over H and W.

``coordinate_transformation_mode`` says where ``x_in`` is, with
``scale = out_size / in_size``:

==========================  ==================================================
half_pixel (default)        ``(x_out + 0.5) / scale - 0.5`` (pixel centres line up)
pytorch_half_pixel          the same, but 0 when the output has one cell
align_corners               ``x_out * (in - 1) / (out - 1)`` (corner pixels line up)
asymmetric                  ``x_out / scale``
tf_half_pixel_for_nearest   ``(x_out + 0.5) / scale``
==========================  ==================================================

Coordinates are computed in float32, as onnxruntime does, so that halves
round the same way; ``x_in`` is clamped into the input. One known
difference: with ``asymmetric`` + ``round_prefer_ceil``, where the exact
coordinate is a tie (7 -> 2 cells: x_in = 1 / (2/7) = 3.5) but float32
lands one bit below it, onnxruntime 1.31 rounds up (the exact answer, cell
4) and minicnn's float32 rounds down (cell 3).

Opset differences: Resize-10 takes ``(X, scales)`` and behaves like the
older ``Upsample`` (opset 9: ``(X, scales)``; opset < 9: ``scales``
attribute): asymmetric coordinates, and for nearest onnxruntime rounds
*down* when enlarging and *up* when shrinking. Resize-11+ takes ``(X, roi,
scales, sizes)``; exactly one of scales and sizes is given (an empty
tensor counts as absent). Opset 18 adds ``axes`` and
``keep_aspect_ratio_policy``.

Not supported (``UnsupportedOpError``): ``mode="cubic"``,
``tf_crop_and_resize`` and ``antialias=1``. NumPy's fancy indexing is the
whole computation of the reference. The fast path (backend "numba") covers
the zoo's cases, nearest or linear over H and W of a float32 NCHW tensor:
the same index (and weight) arrays, then one pass per output row
(``minicnn.kernels.cpu_resize``).
"""

from __future__ import annotations

import inspect
from typing import Callable

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register, register_preparer

MODES = ("nearest", "linear")
COORDINATE_MODES = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nearest")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


def _given(t) -> np.ndarray | None:
    """An optional input as an array, or None when omitted or empty (how opset 11 exports omit one)."""
    if t is None:
        return None
    t = np.asarray(t)
    return t if t.size else None


def source_coordinates(out_size: int, in_size: int, scale: np.float32, mode: str) -> np.ndarray:
    """Where each output cell along one axis falls in the input (before clamping).

    Computed in float32, as onnxruntime does, so that rounding ties fall the
    same way.
    """
    t = np.float32
    x = np.arange(out_size, dtype=t)
    half = t(0.5)
    if mode == "half_pixel":
        return (x + half) / scale - half
    if mode == "pytorch_half_pixel":
        return (x + half) / scale - half if out_size > 1 else np.zeros(out_size, t)
    if mode == "align_corners":
        if out_size == 1:
            return np.zeros(1, t)
        return x * t(in_size - 1) / t(out_size - 1)
    if mode == "asymmetric":
        return x / scale
    return (x + half) / scale  # tf_half_pixel_for_nearest


def nearest_indices(coords: np.ndarray, in_size: int, nearest_mode: str, scale: float) -> np.ndarray:
    """The input cell each coordinate rounds to, clamped into [0, in_size - 1].

    ``nearest_mode="simple"`` is onnxruntime's rule for Resize-10 and
    Upsample: floor when enlarging, ceil when shrinking.
    """
    if nearest_mode == "round_prefer_floor":
        idx = np.ceil(coords - 0.5)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(coords + 0.5)
    elif nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    else:
        idx = np.ceil(coords) if scale < 1 else np.floor(coords)
    return np.clip(idx.astype(np.int64), 0, in_size - 1)


def linear_weights(coords: np.ndarray, in_size: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each coordinate, the two input cells around it and the weight of the upper one: ``(lo, hi, w_hi)``.

    The coordinate is clamped into the input first, so the edges repeat
    (``lo == hi`` there). The value at the coordinate is
    ``x[lo] * (1 - w_hi) + x[hi] * w_hi``.
    """
    c = np.clip(coords, 0, in_size - 1)
    lo = np.minimum(np.floor(c).astype(np.int64), in_size - 1)
    hi = np.minimum(lo + 1, in_size - 1)
    return lo, hi, (c - lo).astype(dtype)


def _linear_along(x: np.ndarray, axis: int, coords: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` at the (float) input coordinates ``coords``."""
    lo, hi, w_hi = linear_weights(coords, x.shape[axis], x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    w_hi = w_hi.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - w_hi) + np.take(x, hi, axis=axis) * w_hi


def _output_shape(x: np.ndarray, scales, sizes, axes: list[int], policy: str) -> tuple[list[int], list]:
    """The output shape and the per-axis scale used for coordinates (float32, as onnxruntime keeps it)."""
    out = list(x.shape)
    used = [np.float32(1)] * x.ndim
    if scales is not None:
        scales = np.asarray(scales, dtype=np.float32).reshape(-1)
        if scales.size != len(axes):
            raise InputError(f"Resize: {scales.size} scales for {len(axes)} axes (input {list(x.shape)})")
        if np.any(scales <= 0):
            raise InputError(f"Resize: scales {scales.tolist()} must be positive")
        for a, s in zip(axes, scales):
            out[a] = int(np.floor(np.float32(x.shape[a]) * s))
            used[a] = s
        return out, used
    sizes_l = [int(v) for v in np.asarray(sizes).reshape(-1)]
    if len(sizes_l) != len(axes):
        raise InputError(f"Resize: {len(sizes_l)} sizes for {len(axes)} axes (input {list(x.shape)})")
    if policy == "stretch":
        for a, n in zip(axes, sizes_l):
            out[a] = n
            used[a] = np.float32(n) / np.float32(x.shape[a])
        return out, used
    ratios = [np.float32(n) / np.float32(x.shape[a]) for a, n in zip(axes, sizes_l)]
    scale = min(ratios) if policy == "not_larger" else max(ratios)
    for a in axes:
        out[a] = int(np.floor(np.float32(x.shape[a]) * scale + np.float32(0.5)))
        used[a] = scale
    return out, used


def resize(x: np.ndarray, out_shape: list[int], scales: list[np.float32], mode: str, coordinate_mode: str,
           nearest_mode: str) -> np.ndarray:
    """Resize ``x`` to ``out_shape``, one axis at a time (separable: the same as n-linear interpolation).

    When the output shape equals the input shape, onnxruntime returns the
    input unchanged even if a scale is not 1 (e.g. 2 rows times 1.25 is
    still 2 rows); minicnn does the same.
    """
    if tuple(out_shape) == x.shape:
        return x.copy()
    y = x
    for axis, (n_in, n_out) in enumerate(zip(x.shape, out_shape)):
        if n_in == n_out and scales[axis] == 1:
            continue
        if n_in == 0 or n_out < 0:
            raise InputError(f"Resize: cannot resize axis {axis} from {n_in} to {n_out} cells")
        coords = source_coordinates(n_out, n_in, scales[axis], coordinate_mode)
        if mode == "nearest":
            y = np.take(y, nearest_indices(coords, n_in, nearest_mode, scales[axis]), axis=axis)
        else:
            y = _linear_along(y, axis, coords)
    return y.astype(x.dtype, copy=False)


def _check_modes(op: str, mode: str, coordinate_mode: str, nearest_mode: str) -> None:
    if mode not in MODES:
        raise UnsupportedOpError(f"{op}: mode={mode!r} is not supported (supported: {', '.join(MODES)})")
    if coordinate_mode not in COORDINATE_MODES:
        raise UnsupportedOpError(f"{op}: coordinate_transformation_mode={coordinate_mode!r} is not supported "
                                 f"(supported: {', '.join(COORDINATE_MODES)})")
    if nearest_mode not in NEAREST_MODES:
        raise UnsupportedOpError(f"{op}: nearest_mode={nearest_mode!r} is not one of {', '.join(NEAREST_MODES)}")


def _resize_plan(X, roi, scales, sizes, antialias, axes, coordinate_transformation_mode, keep_aspect_ratio_policy,
                 mode, nearest_mode, opset) -> tuple:
    """Resize's inputs and attributes checked and resolved: ``(x, out_shape, scales, mode, coordinate_mode,
    nearest_mode)``, the arguments of :func:`resize`."""
    x = np.asarray(X)
    if opset < 11:
        # Resize-10 is Resize(X, scales): the second input is the scales, and the coordinates are asymmetric.
        _check_modes("Resize", mode, "asymmetric", "floor")
        scale_arr = _given(roi)
        if scale_arr is None:
            raise InputError("Resize (opset 10) needs scales")
        out, used = _output_shape(x, scale_arr, None, list(range(x.ndim)), "stretch")
        return x, out, used, mode, "asymmetric", "simple"
    _check_modes("Resize", mode, coordinate_transformation_mode, nearest_mode)
    if antialias:
        raise UnsupportedOpError("Resize: antialias=1 is not supported")
    if keep_aspect_ratio_policy not in ASPECT_POLICIES:
        raise UnsupportedOpError(f"Resize: keep_aspect_ratio_policy={keep_aspect_ratio_policy!r} is not one of "
                                 f"{', '.join(ASPECT_POLICIES)}")
    scales, sizes = _given(scales), _given(sizes)
    if (scales is None) == (sizes is None):
        raise InputError("Resize needs exactly one of scales and sizes")
    axes_l = list(range(x.ndim)) if axes is None else [int(a) % x.ndim for a in axes]
    out, used = _output_shape(x, scales, sizes, axes_l, keep_aspect_ratio_policy)
    return x, out, used, mode, coordinate_transformation_mode, nearest_mode


def _upsample_plan(X, scales, mode) -> tuple:
    x = np.asarray(X)
    _check_modes("Upsample", mode, "asymmetric", "floor")
    if _given(scales) is None:
        raise InputError("Upsample needs scales")
    out, used = _output_shape(x, _given(scales), None, list(range(x.ndim)), "stretch")
    return x, out, used, mode, "asymmetric", "simple"


@register("Resize")
def Resize(X, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor", opset=13):
    """Resize ``X`` by ``scales`` or to ``sizes`` (see the module docstring for every mode).

    ``cubic_coeff_a``, ``exclude_outside`` and ``extrapolation_value`` only
    matter for the modes that are not supported.
    """
    return resize(*_resize_plan(X, roi, scales, sizes, antialias, axes, coordinate_transformation_mode,
                                keep_aspect_ratio_policy, mode, nearest_mode, opset))


@register("Upsample")
def Upsample(X, scales=None, *, mode="nearest"):
    """Enlarge ``X`` by ``scales`` (an input from opset 9, an attribute before): Resize-10's behaviour."""
    return resize(*_upsample_plan(X, scales, mode))


# ---------------------------------------------------------------------------
# The fast path (backend "numba"): nearest and linear over H and W of float32 NCHW
# ---------------------------------------------------------------------------
def spatial_only(x_shape: tuple, dtype, out_shape: list[int], scales: list, mode: str) -> bool:
    """Whether resizing a ``dtype`` tensor of ``x_shape`` changes only H and W of an NCHW tensor (what kernels do).

    Linear needs both H and W to change: the reference skips an axis whose
    size and scale are unchanged, the kernels always do both.
    """
    if (dtype != np.float32 or len(x_shape) != 4 or tuple(out_shape) == tuple(x_shape)
            or list(out_shape[:2]) != list(x_shape[:2]) or scales[0] != 1 or scales[1] != 1
            or min(out_shape) < 1):
        return False
    return not (mode == "linear" and any(x_shape[a] == out_shape[a] and scales[a] == 1 for a in (2, 3)))


_RESIZE_DEFAULTS = {name: p.default for name, p in inspect.signature(Resize).parameters.items()
                    if p.kind is p.KEYWORD_ONLY}


def resolve_node(op_type: str, x_shape: tuple, args: list, attrs: dict, opset: int) -> tuple | None:
    """A Resize or Upsample node's geometry for an input of ``x_shape``, from its constant inputs ``args``.

    Returns ``(out_shape, scales, mode, coordinate_mode, nearest_mode)`` (the
    arguments of :func:`resize` after the input) when the resize changes
    only H and W of a float32 NCHW tensor; None otherwise, or if the node is
    malformed (running it will then say why). The layout pass uses it to
    run such a resize on NCHW16c tensors (``minicnn.ops.blocked``).
    """
    x = np.broadcast_to(np.float32(0), x_shape)  # a shape without memory: the plans only read x.shape
    try:
        if op_type == "Resize":
            X, roi, scales, sizes = ([x] + list(args) + [None] * 3)[:4]
            kw = {**_RESIZE_DEFAULTS, **attrs}  # Resize's own defaults, for the attributes the node leaves out
            plan = _resize_plan(X, roi, scales, sizes, kw["antialias"], kw["axes"],
                                kw["coordinate_transformation_mode"], kw["keep_aspect_ratio_policy"], kw["mode"],
                                kw["nearest_mode"], opset)
        elif op_type == "Upsample":
            scales = args[0] if args else attrs.get("scales")
            plan = _upsample_plan(x, scales, attrs.get("mode", "nearest"))
        else:
            return None
    except (InputError, UnsupportedOpError):
        return None
    _, out_shape, used, mode, coordinate_mode, nearest_mode = plan
    if not spatial_only(x_shape, np.float32, out_shape, used, mode):
        return None
    return list(out_shape), used, mode, coordinate_mode, nearest_mode


def spatial_indices(x_shape: tuple, out_shape: list[int], scales: list, mode: str, coordinate_mode: str,
                    nearest_mode: str) -> tuple:
    """The kernels' index arrays over H and W: ``(rows, cols)`` for nearest, the two ``linear_weights`` otherwise."""
    coords = [(source_coordinates(out_shape[a], x_shape[a], scales[a], coordinate_mode), a) for a in (2, 3)]
    if mode == "nearest":
        return tuple(nearest_indices(c, x_shape[a], nearest_mode, scales[a]) for c, a in coords)
    return tuple(linear_weights(c, x_shape[a]) for c, a in coords)


def _resize_runner(x_shape: tuple, dtype, out_shape: list[int], scales: list[np.float32], mode: str,
                   coordinate_mode: str, nearest_mode: str) -> Callable | None:
    """The kernel for resizing H x W of a float32 NCHW tensor, index arrays computed once: ``run(x)``, or None.

    The index and weight arrays are the reference's own
    (``source_coordinates``, then ``nearest_indices`` or ``linear_weights``).
    None where the kernels do not apply (other axes, other dtypes, linear
    over only one of H and W): the caller runs the reference.
    """
    if not spatial_only(x_shape, dtype, out_shape, scales, mode):
        return None
    from ..kernels import cpu_resize

    indices = spatial_indices(x_shape, out_shape, scales, mode, coordinate_mode, nearest_mode)
    out_shape = tuple(out_shape)
    if mode == "nearest":
        rows, cols = indices

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            cpu_resize.nearest_2d(np.ascontiguousarray(x), rows, cols, out)
            return out
    else:
        (r_lo, r_hi, r_w), (c_lo, c_hi, c_w) = indices

        def run(x):
            out = np.empty(out_shape, dtype=np.float32)
            cpu_resize.linear_2d(np.ascontiguousarray(x), r_lo, r_hi, r_w, c_lo, c_hi, c_w, out)
            return out
    return run


def resize_fast(x: np.ndarray, out_shape: list[int], scales: list[np.float32], mode: str, coordinate_mode: str,
                nearest_mode: str) -> np.ndarray:
    """:func:`resize` with its H x W cases done by ``cpu_resize.nearest_2d`` and ``cpu_resize.linear_2d``."""
    run = _resize_runner(x.shape, x.dtype, out_shape, scales, mode, coordinate_mode, nearest_mode)
    if run is None:
        return resize(x, out_shape, scales, mode, coordinate_mode, nearest_mode)
    return run(x)


def _prepared(plan: tuple, constant: list) -> Callable | None:
    """A session's prepared Resize/Upsample: the runner for this input shape, when scales and sizes are constant."""
    if not all(constant[1:]):
        return None
    x = plan[0]
    run = _resize_runner(x.shape, x.dtype, *plan[1:])
    return None if run is None else (lambda X, *_constant_inputs: run(X))


@register("Resize", backend="numba")
def Resize_numba(X, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
                 coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
                 extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
                 nearest_mode="round_prefer_floor", opset=13):
    return resize_fast(*_resize_plan(X, roi, scales, sizes, antialias, axes, coordinate_transformation_mode,
                                     keep_aspect_ratio_policy, mode, nearest_mode, opset))


@register("Upsample", backend="numba")
def Upsample_numba(X, scales=None, *, mode="nearest"):
    return resize_fast(*_upsample_plan(X, scales, mode))


@register_preparer("Resize", backend="numba")
def prepare_Resize(args, constant, *, antialias=0, axes=None, coordinate_transformation_mode="half_pixel",
                   cubic_coeff_a=-0.75, exclude_outside=0, extrapolation_value=0.0,
                   keep_aspect_ratio_policy="stretch", mode="nearest", nearest_mode="round_prefer_floor", opset=13):
    X, roi, scales, sizes = (list(args) + [None] * 4)[:4]
    return _prepared(_resize_plan(X, roi, scales, sizes, antialias, axes, coordinate_transformation_mode,
                                  keep_aspect_ratio_policy, mode, nearest_mode, opset), constant)


@register_preparer("Upsample", backend="numba")
def prepare_Upsample(args, constant, *, mode="nearest", scales=None):
    # Opset 9 has scales as the second input; before that, as an attribute (then ``args`` is just X).
    if len(args) > 1:
        scales = args[1]
    return _prepared(_upsample_plan(args[0], scales, mode), constant)
