"""Convolution, taught three ways, plus ConvTranspose and the fused Conv + activation.

A 2-D convolution layer (ONNX ``Conv``) computes, for image ``n``, output
channel ``m`` and output pixel ``(i, j)``::

    Y[n, m, i, j] = B[m] + sum over c, u, v of
                    X[n, c, i*sh + u*dh - pad_top, j*sw + v*dw - pad_left] * W[m, c, u, v]

where ``c`` runs over the input channels of ``m``'s group, ``(u, v)`` over the
kernel, ``(sh, sw)`` are the strides, ``(dh, dw)`` the dilations, and reads
outside the image (the padding) count as zero. Note the ``+``: the kernel is
*not* flipped. What deep learning calls convolution is, strictly,
cross-correlation; a kernel therefore reacts most strongly where the image
looks like the kernel itself (see ``docs/tutorial.md``).

This file computes that same sum three ways, side by side:

1. :func:`conv_direct`: nested Python loops, the formula above written out.
   Hopelessly slow, obviously right; the tests run it on tiny shapes.
2. :func:`conv_im2col`: copy every receptive field into a column of a matrix
   ("im2col"), after which the whole layer is one matrix product that
   ``np.matmul`` hands to BLAS. This is the registered NumPy reference ``Conv``.
3. :func:`Conv_numba` (its kernels are in ``minicnn.kernels.cpu_conv``): the
   fast path. It picks a strategy per shape: 1x1 convolutions are a plain
   GEMM on the NCHW view, depthwise convolutions and 3x3 convolutions with
   few output channels run direct loop kernels, the rest im2col, a few
   output rows at a time, into a reused buffer; bias and activation are
   applied to each block of output while it is in cache.

All three are checked against onnxruntime on the same random cases
(``tests/test_ops_conv.py``).

``FusedConv`` is not an ONNX op: the load-time optimiser (``minicnn.optimize``)
folds ``Conv -> Relu`` (and LeakyRelu, PRelu, Sigmoid, Clip) into one node so
the activation is applied while the output is still in cache.

Only 1-D and 2-D convolutions are supported (a 1-D one runs as a 2-D one of
height 1); 3-D convolutions do not occur in the models minicnn targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError, UnsupportedOpError
from .registry import register, register_preparer

ACTIVATIONS = ("", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Clip")


# ---------------------------------------------------------------------------
# Geometry: the attributes, resolved once
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D convolution's shape facts with every ONNX default and ``auto_pad`` resolved.

    ``pads`` is (top, left, bottom, right). ``out_hw`` is the output's height
    and width. For a 1-D convolution, height is a dummy 1 with no padding.
    """

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_hw: tuple[int, int]
    group: int


def _spatial_list(value, n: int, name: str, default: int) -> list[int]:
    if value is None:
        return [default] * n
    value = [int(v) for v in value]
    if len(value) != n:
        raise InputError(f"{name}={value} should have {n} values for a {n}-D convolution")
    return value


def _check_rank(x_shape, w_shape, op: str) -> int:
    """Number of spatial dims (1 or 2), or a clear error."""
    if len(x_shape) != len(w_shape):
        raise InputError(f"{op}: input X{list(x_shape)} and weight W{list(w_shape)} must have the same rank")
    if len(x_shape) > 4:
        raise UnsupportedOpError(f"{op}: only 1-D and 2-D convolutions are supported, got X{list(x_shape)}")
    if len(x_shape) < 3:
        raise InputError(f"{op}: X{list(x_shape)} should be (N, C, H, W) or (N, C, L)")
    return len(x_shape) - 2


def _same_pads(size: int, kernel: int, stride: int, dilation: int, upper: bool) -> tuple[int, int]:
    """Padding for auto_pad SAME_*: the output has ceil(size / stride) elements.

    The total padding is split in two; SAME_UPPER puts the odd one at the end,
    SAME_LOWER at the beginning.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    small, big = total // 2, total - total // 2
    return (small, big) if upper else (big, small)


def conv_geometry(x_shape, w_shape, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                  pads=None, strides=None) -> ConvGeometry:
    """Resolve Conv's attributes for input shape ``x_shape`` and weight shape ``w_shape``.

    Raises ``InputError`` for shapes that do not fit together (naming both)
    and ``UnsupportedOpError`` for 3-D convolutions.
    """
    nd = _check_rank(x_shape, w_shape, "Conv")
    group = int(group)
    c_in, c_out = x_shape[1], w_shape[0]
    if group < 1 or c_in % group or c_out % group:
        raise InputError(f"Conv: group={group} must divide the input channels ({c_in}, X{list(x_shape)}) "
                         f"and the output channels ({c_out}, W{list(w_shape)})")
    if w_shape[1] * group != c_in:
        raise InputError(f"Conv: X{list(x_shape)} has {c_in} channels but W{list(w_shape)} with group={group} "
                         f"expects {w_shape[1] * group} (W is (C_out, C_in / group, kH, kW))")
    kernel = [int(k) for k in w_shape[2:]]
    if kernel_shape is not None and [int(k) for k in kernel_shape] != kernel:
        raise InputError(f"Conv: kernel_shape={list(kernel_shape)} disagrees with W{list(w_shape)}")
    strides_l = _spatial_list(strides, nd, "strides", 1)
    dil_l = _spatial_list(dilations, nd, "dilations", 1)
    if min(strides_l + dil_l) < 1:
        raise InputError(f"Conv: strides={strides_l} and dilations={dil_l} must be >= 1")
    sizes = [int(s) for s in x_shape[2:]]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", ""):
        pads_l = _spatial_list(pads, 2 * nd, "pads", 0)
        begins, ends = pads_l[:nd], pads_l[nd:]
    elif auto_pad == "VALID":
        begins, ends = [0] * nd, [0] * nd
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        both = [_same_pads(n, k, s, d, auto_pad == "SAME_UPPER") for n, k, s, d in zip(sizes, kernel, strides_l, dil_l)]
        begins, ends = [b for b, _ in both], [e for _, e in both]
    else:
        raise InputError(f"Conv: unknown auto_pad {auto_pad!r} (NOTSET, VALID, SAME_UPPER, SAME_LOWER)")
    if min(begins + ends) < 0:
        raise InputError(f"Conv: negative pads {begins + ends} are not allowed")
    out = []
    for n, k, s, d, b, e in zip(sizes, kernel, strides_l, dil_l, begins, ends):
        o = (n + b + e - ((k - 1) * d + 1)) // s + 1
        if o < 1:
            raise InputError(f"Conv: kernel {kernel} (dilations {dil_l}) does not fit in the padded input "
                             f"X{list(x_shape)} with pads {begins + ends}")
        out.append(o)
    if nd == 1:  # a 1-D convolution is a 2-D one of height 1
        kernel, strides_l, dil_l, begins, ends, out = ([1] + kernel, [1] + strides_l, [1] + dil_l, [0] + begins,
                                                       [0] + ends, [1] + out)
    return ConvGeometry(tuple(kernel), tuple(strides_l), tuple(dil_l), (begins[0], begins[1], ends[0], ends[1]),
                        tuple(out), group)


def as_2d(X: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """View a 1-D convolution's (N, C, L) tensors as (N, C, 1, L); 2-D ones pass through."""
    if X.ndim == 3:
        return X[:, :, None, :], W[:, :, None, :]
    return X, W


def _output_like(Y: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Drop the dummy height of a 1-D convolution's output."""
    return Y[:, :, 0, :] if X.ndim == 3 else Y


def _check_bias(B, c_out: int, op: str = "Conv") -> None:
    if B is not None and (B.ndim != 1 or B.shape[0] != c_out):
        raise InputError(f"{op}: bias B{list(B.shape)} should be ({c_out},), one value per output channel")


# ---------------------------------------------------------------------------
# 1. The definition, as loops
# ---------------------------------------------------------------------------
def conv_direct(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geometry: ConvGeometry) -> np.ndarray:
    """Convolution as six nested loops: the formula in the module docstring, term by term.

    For every output value we walk over the kernel taps ``(c, u, v)``, find
    the input pixel the tap lands on, skip it if it falls in the padding
    (padding is zero, so it adds nothing), and accumulate the product. With
    groups, output channel ``m`` only sees the input channels of its own group.

    ``X`` is (N, C, H, W), ``W`` is (M, C / group, kH, kW). Cost: one Python
    iteration per multiply-add, i.e. millions of times slower than BLAS.
    Use it to read, and on tiny inputs.
    """
    n_img, _, height, width = X.shape
    c_out, c_per_group, k_h, k_w = W.shape
    s_h, s_w = geometry.strides
    d_h, d_w = geometry.dilations
    pad_top, pad_left = geometry.pads[:2]
    out_h, out_w = geometry.out_hw
    m_per_group = c_out // geometry.group
    Y = np.zeros((n_img, c_out, out_h, out_w), dtype=np.result_type(X, W))
    for n in range(n_img):
        for m in range(c_out):
            first_c = (m // m_per_group) * c_per_group  # the input channels of m's group start here
            for i in range(out_h):
                for j in range(out_w):
                    total = B[m] if B is not None else 0.0
                    for c in range(c_per_group):
                        for u in range(k_h):
                            for v in range(k_w):
                                y = i * s_h + u * d_h - pad_top
                                x = j * s_w + v * d_w - pad_left
                                if 0 <= y < height and 0 <= x < width:
                                    total += X[n, first_c + c, y, x] * W[m, c, u, v]
                    Y[n, m, i, j] = total
    return Y


# ---------------------------------------------------------------------------
# 2. im2col + one matrix product
# ---------------------------------------------------------------------------
def im2col(X: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """Gather every receptive field of ``X`` (N, C, H, W) into columns: (N, C, kH, kW, OH, OW).

    Entry ``[n, c, u, v, i, j]`` is the input value that kernel tap ``(c, u, v)``
    sees when the kernel sits over output pixel ``(i, j)``. Padding the input
    once with zeros makes every read valid; then each tap ``(u, v)`` is a single
    strided slice of the padded image: start at ``(u*dh, v*dw)`` and step by
    the stride. Reshaped to (C*kH*kW, OH*OW), one column per output pixel, a
    convolution becomes ``W.reshape(M, C*kH*kW) @ columns``.

    The price: the columns hold kH*kW copies of the input (9x for 3x3).
    """
    n_img, channels = X.shape[:2]
    k_h, k_w = geometry.kernel
    s_h, s_w = geometry.strides
    d_h, d_w = geometry.dilations
    top, left, bottom, right = geometry.pads
    out_h, out_w = geometry.out_hw
    padded = np.pad(X, ((0, 0), (0, 0), (top, bottom), (left, right)))
    cols = np.empty((n_img, channels, k_h, k_w, out_h, out_w), dtype=X.dtype)
    for u in range(k_h):
        for v in range(k_w):
            rows = slice(u * d_h, u * d_h + s_h * (out_h - 1) + 1, s_h)
            columns = slice(v * d_w, v * d_w + s_w * (out_w - 1) + 1, s_w)
            cols[:, :, u, v] = padded[:, :, rows, columns]
    return cols


def conv_im2col(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geometry: ConvGeometry) -> np.ndarray:
    """Convolution as im2col followed by one (batched) matrix product per group.

    With ``G`` groups, the input channels split into ``G`` blocks and so do
    the output channels; block ``g`` of the output only reads block ``g`` of the
    input. Shapes, with K = C/G * kH * kW taps per output value and P = OH * OW
    output pixels::

        columns: (N, G, K, P)      weights: (G, M/G, K)
        Y = weights @ columns  ->  (N, G, M/G, P)  ->  reshape (N, M, OH, OW)

    ``np.matmul`` broadcasts the weights over the batch and sends each
    product to BLAS, which is where nearly all the time goes.
    """
    n_img, channels = X.shape[:2]
    c_out = W.shape[0]
    groups = geometry.group
    out_h, out_w = geometry.out_hw
    columns = im2col(X, geometry).reshape(n_img, groups, -1, out_h * out_w)
    weights = W.reshape(groups, c_out // groups, -1)
    Y = np.matmul(weights, columns).reshape(n_img, c_out, out_h, out_w)
    if B is not None:
        Y += B.reshape(1, c_out, 1, 1)
    return Y


@register("Conv")
def Conv(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
         strides=None):
    """ONNX Conv (1-D and 2-D), the readable reference: :func:`conv_im2col`."""
    geometry = conv_geometry(X.shape, W.shape, auto_pad=auto_pad, dilations=dilations, group=group,
                             kernel_shape=kernel_shape, pads=pads, strides=strides)
    _check_bias(B, W.shape[0])
    X2, W2 = as_2d(X, W)
    return _output_like(conv_im2col(X2, W2, B, geometry), X)


# ---------------------------------------------------------------------------
# FusedConv: convolution + optional residual + activation
# ---------------------------------------------------------------------------
def per_channel_slope(slope, c_out: int, dtype=np.float32) -> np.ndarray:
    """PRelu's slope as one value per output channel, shape (c_out,).

    The slope of a PRelu after a convolution is usually (C, 1, 1); a single
    value is shared by every channel. Anything else cannot be fused.
    """
    if slope is None:
        raise InputError("FusedConv: activation PRelu needs its slope input")
    flat = np.asarray(slope, dtype=dtype).reshape(-1)
    if flat.size == 1:
        return np.full(c_out, flat[0], dtype=dtype)
    if flat.size != c_out:
        raise InputError(f"FusedConv: PRelu slope{list(np.shape(slope))} should broadcast to ({c_out}, 1, 1)")
    return flat


def apply_activation(Y: np.ndarray, activation: str, *, alpha: float = 0.01, slope=None,
                     clip_min: float = -np.inf, clip_max: float = np.inf) -> np.ndarray:
    """The activations FusedConv knows, on an (N, M, ...) output (NumPy reference, returns a new array)."""
    if activation == "":
        return Y
    if activation == "Relu":
        return np.maximum(Y, 0)
    if activation == "LeakyRelu":
        return np.where(Y >= 0, Y, Y * Y.dtype.type(alpha))
    if activation == "PRelu":
        s = per_channel_slope(slope, Y.shape[1], Y.dtype).reshape((1, -1) + (1,) * (Y.ndim - 2))
        return np.where(Y >= 0, Y, Y * s)
    if activation == "Sigmoid":
        return 1 / (1 + np.exp(-Y))
    if activation == "Clip":
        return np.clip(Y, Y.dtype.type(clip_min), Y.dtype.type(clip_max))
    raise UnsupportedOpError(f"FusedConv: unknown activation {activation!r}; expected one of {ACTIVATIONS}")


def _check_residual(residual, shape) -> None:
    """A residual must broadcast with the convolution's output (ONNX Add's rule), or a clear error."""
    if residual is None or tuple(residual.shape) == tuple(shape):
        return
    try:
        np.broadcast_shapes(tuple(residual.shape), tuple(shape))
    except ValueError:
        raise InputError(f"FusedConv: residual{list(residual.shape)} does not broadcast with the convolution's "
                         f"output {list(shape)}") from None


@register("FusedConv")
def FusedConv(X, W, B=None, slope=None, residual=None, *, auto_pad="NOTSET", dilations=None, group=1,
              kernel_shape=None, pads=None, strides=None, activation="", alpha=0.01, clip_min=-np.inf,
              clip_max=np.inf):
    """minicnn's fused op: ``activation(Conv(X, W, B) + residual)``, the reference.

    ``slope`` is PRelu's slope (one value, or one per output channel);
    ``residual`` (optional) is added before the activation, which is how
    ``Conv -> Add -> Relu`` blocks fuse; it is normally the output's shape and
    may be anything ONNX's Add broadcasts with it (the result then has the
    broadcast shape, exactly as the unfused Add gives). ``clip_min``/``clip_max``
    are Clip's bounds. Both may also be passed positionally, in that order,
    as the node's 4th and 5th inputs.
    """
    if activation not in ACTIVATIONS:
        raise UnsupportedOpError(f"FusedConv: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    Y = Conv(X, W, B, auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
             strides=strides)
    _check_residual(residual, Y.shape)
    if residual is not None:
        Y = Y + residual
    return apply_activation(Y, activation, alpha=alpha, slope=slope, clip_min=clip_min, clip_max=clip_max)


# ---------------------------------------------------------------------------
# ConvTranspose: the gradient of a convolution, used for learned upsampling
# ---------------------------------------------------------------------------
def conv_transpose_geometry(x_shape, w_shape, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                            output_padding=None, output_shape=None, pads=None, strides=None) -> ConvGeometry:
    """Resolve ConvTranspose's attributes. ``pads`` (top, left, bottom, right) crop the full output.

    The full ("uncropped") output of a transposed convolution has
    ``stride * (in - 1) + (k - 1) * dilation + 1 + output_padding`` elements per
    axis; pads remove elements from its two ends. When ``output_shape`` is
    given (or auto_pad is SAME_*, which asks for ``in * stride``), the pads are
    computed from it: the total crop is split in two, SAME_UPPER putting the
    smaller half at the beginning, SAME_LOWER and NOTSET the larger one
    (as onnxruntime does).
    """
    nd = _check_rank(x_shape, w_shape, "ConvTranspose")
    group = int(group)
    c_in = x_shape[1]
    if group < 1 or c_in % group:
        raise InputError(f"ConvTranspose: group={group} must divide the input channels ({c_in}, X{list(x_shape)})")
    if w_shape[0] != c_in:
        raise InputError(f"ConvTranspose: X{list(x_shape)} has {c_in} channels but W{list(w_shape)} expects "
                         f"{w_shape[0]} (W is (C_in, C_out / group, kH, kW))")
    kernel = [int(k) for k in w_shape[2:]]
    if kernel_shape is not None and [int(k) for k in kernel_shape] != kernel:
        raise InputError(f"ConvTranspose: kernel_shape={list(kernel_shape)} disagrees with W{list(w_shape)}")
    strides_l = _spatial_list(strides, nd, "strides", 1)
    dil_l = _spatial_list(dilations, nd, "dilations", 1)
    extra = _spatial_list(output_padding, nd, "output_padding", 0)
    sizes = [int(s) for s in x_shape[2:]]
    full = [s * (n - 1) + (k - 1) * d + 1 + e for n, k, s, d, e in zip(sizes, kernel, strides_l, dil_l, extra)]
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad not in ("NOTSET", "", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise InputError(f"ConvTranspose: unknown auto_pad {auto_pad!r}")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        wanted = ([int(o) for o in output_shape][-nd:] if output_shape is not None
                  else [n * s for n, s in zip(sizes, strides_l)])
        totals = [f - o for f, o in zip(full, wanted)]
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            # SAME never crops a negative amount (as in onnxruntime): without output_shape the output
            # is then simply the full one; with it, the extra room is zero-filled at the end.
            totals = [max(t, 0) for t in totals]
            if output_shape is None:
                wanted = [f - t for f, t in zip(full, totals)]
        if auto_pad == "SAME_UPPER":
            begins = [t // 2 for t in totals]
        else:
            begins = [t - t // 2 for t in totals]
        ends = [f - b - o for f, b, o in zip(full, begins, wanted)]  # negative: the output grows
    elif auto_pad == "VALID":
        begins, ends = [0] * nd, [0] * nd
    else:
        pads_l = _spatial_list(pads, 2 * nd, "pads", 0)
        begins, ends = pads_l[:nd], pads_l[nd:]
    out = [f - b - e for f, b, e in zip(full, begins, ends)]
    if min(out) < 1:
        raise InputError(f"ConvTranspose: pads {begins + ends} leave no output for X{list(x_shape)}")
    if nd == 1:
        kernel, strides_l, dil_l, begins, ends, out = ([1] + kernel, [1] + strides_l, [1] + dil_l, [0] + begins,
                                                       [0] + ends, [1] + out)
    return ConvGeometry(tuple(kernel), tuple(strides_l), tuple(dil_l), (begins[0], begins[1], ends[0], ends[1]),
                        tuple(out), group)


def conv_transpose_direct(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geometry: ConvGeometry) -> np.ndarray:
    """ConvTranspose as loops: every input pixel *scatters* a scaled copy of the kernel.

    A convolution gathers: each output reads a window of inputs. Its
    transpose does the opposite: input pixel ``(y, x)`` of channel ``c`` adds
    ``X[c, y, x] * W[c, m, u, v]`` to output pixel ``(y*sh + u*dh - pad_top,
    x*sw + v*dw - pad_left)`` of every output channel ``m`` in its group.
    Contributions that land in the cropped border are dropped. ``X`` is
    (N, C, H, W), ``W`` is (C, M / group, kH, kW). Tiny inputs only.
    """
    n_img, c_in, height, width = X.shape
    _, m_per_group, k_h, k_w = W.shape
    groups = geometry.group
    c_per_group = c_in // groups
    s_h, s_w = geometry.strides
    d_h, d_w = geometry.dilations
    pad_top, pad_left = geometry.pads[:2]
    out_h, out_w = geometry.out_hw
    Y = np.zeros((n_img, m_per_group * groups, out_h, out_w), dtype=np.result_type(X, W))
    for n in range(n_img):
        for c in range(c_in):
            g = c // c_per_group
            for y in range(height):
                for x in range(width):
                    for m in range(m_per_group):
                        for u in range(k_h):
                            for v in range(k_w):
                                i = y * s_h + u * d_h - pad_top
                                j = x * s_w + v * d_w - pad_left
                                if 0 <= i < out_h and 0 <= j < out_w:
                                    Y[n, g * m_per_group + m, i, j] += X[n, c, y, x] * W[c, m, u, v]
    if B is not None:
        Y += B.reshape(1, -1, 1, 1)
    return Y


def conv_transpose_gemm(X: np.ndarray, W: np.ndarray, B: np.ndarray | None, geometry: ConvGeometry) -> np.ndarray:
    """ConvTranspose as one matrix product and a "col2im" scatter (the mirror image of im2col).

    1. GEMM: for each group, ``W_g^T (M/G * kH * kW, C/G) @ X_g (C/G, H*W)``
       gives, for every input pixel, the kernel-shaped patch it contributes.
    2. col2im: patch entry ``(u, v)`` of every input pixel goes to the output
       rows ``u*dh + sh*y`` and columns ``v*dw + sw*x``, one strided slice per
       tap, accumulated into the full output, which is then cropped by the pads.
    """
    n_img, c_in, height, width = X.shape
    _, m_per_group, k_h, k_w = W.shape
    groups = geometry.group
    c_out = m_per_group * groups
    s_h, s_w = geometry.strides
    d_h, d_w = geometry.dilations
    pad_top, pad_left, pad_bottom, pad_right = geometry.pads
    out_h, out_w = geometry.out_hw
    weights = W.reshape(groups, c_in // groups, m_per_group * k_h * k_w).transpose(0, 2, 1)
    patches = np.matmul(weights, X.reshape(n_img, groups, c_in // groups, height * width))
    patches = patches.reshape(n_img, c_out, k_h, k_w, height, width)
    # The full output may need extra room when pads are negative (output_shape larger than natural).
    lo_h, lo_w = min(pad_top, 0), min(pad_left, 0)
    full_h = max(s_h * (height - 1) + (k_h - 1) * d_h + 1, pad_top + out_h) - lo_h
    full_w = max(s_w * (width - 1) + (k_w - 1) * d_w + 1, pad_left + out_w) - lo_w
    full = np.zeros((n_img, c_out, full_h, full_w), dtype=patches.dtype)
    for u in range(k_h):
        for v in range(k_w):
            rows = slice(u * d_h - lo_h, u * d_h - lo_h + s_h * (height - 1) + 1, s_h)
            cols = slice(v * d_w - lo_w, v * d_w - lo_w + s_w * (width - 1) + 1, s_w)
            full[:, :, rows, cols] += patches[:, :, u, v]
    Y = full[:, :, pad_top - lo_h:pad_top - lo_h + out_h, pad_left - lo_w:pad_left - lo_w + out_w]
    Y = np.ascontiguousarray(Y)
    if B is not None:
        Y += B.reshape(1, c_out, 1, 1)
    return Y


@register("ConvTranspose")
def ConvTranspose(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                  output_padding=None, output_shape=None, pads=None, strides=None):
    """ONNX ConvTranspose (1-D and 2-D): :func:`conv_transpose_gemm`.

    The GEMM + col2im form is both the reference and fast enough (no zoo
    model spends time here), so there is no separate Numba kernel.
    """
    geometry = conv_transpose_geometry(X.shape, W.shape, auto_pad=auto_pad, dilations=dilations, group=group,
                                       kernel_shape=kernel_shape, output_padding=output_padding,
                                       output_shape=output_shape, pads=pads, strides=strides)
    _check_bias(B, W.shape[1] * geometry.group, "ConvTranspose")
    X2, W2 = as_2d(X, W)
    return _output_like(conv_transpose_gemm(X2, W2, B, geometry), X)


# ---------------------------------------------------------------------------
# 3. The fast path (backend "numba"): kernels in minicnn.kernels.cpu_conv
# ---------------------------------------------------------------------------
def _fast_conv(X, W, B, slope, residual, attrs: dict, activation: str, alpha: float, clip_min: float,
               clip_max: float):
    """Shared body of the numba-backend Conv and FusedConv: validate, then hand float32 arrays to the kernels.

    The kernels are compiled for float32 only (the dtype of every model
    minicnn targets); a float64 model runs the NumPy reference instead, which
    computes the same thing in float64.
    """
    geometry = conv_geometry(X.shape, W.shape, **attrs)
    _check_bias(B, W.shape[0])
    if activation not in ACTIVATIONS:
        raise UnsupportedOpError(f"FusedConv: unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    out_shape = (X.shape[0], W.shape[0]) + tuple(geometry.out_hw[-(X.ndim - 2):])
    _check_residual(residual, out_shape)
    if not (X.dtype == W.dtype == np.float32):
        return FusedConv(X, W, B, slope, residual, **attrs, activation=activation, alpha=alpha,
                         clip_min=clip_min, clip_max=clip_max)
    if residual is not None and tuple(residual.shape) != out_shape:
        # A residual that only broadcasts: the convolution by the kernels, then Add and the activation as
        # the reference does them (no zoo model has one; the optimiser cannot see shapes when it fuses).
        Y = _fast_conv(X, W, B, None, None, attrs, "", alpha, clip_min, clip_max)
        return apply_activation(Y + residual, activation, alpha=alpha, slope=slope, clip_min=clip_min,
                                clip_max=clip_max)
    from ..kernels import cpu_conv

    x2_shape, out2_shape, w2, bias, slope_c = _kernel_operands(X, W, B, slope, activation, geometry)
    if residual is not None:
        residual = np.ascontiguousarray(residual, dtype=np.float32).reshape(out2_shape)
    Y = cpu_conv.conv2d(np.ascontiguousarray(X).reshape(x2_shape), w2, bias, geometry, activation, alpha, slope_c,
                        clip_min, clip_max, residual)
    return _output_like(Y, X)


def _kernel_operands(X, W, B, slope, activation: str, geometry: ConvGeometry) -> tuple:
    """What the kernels take besides the data: 2-D input and output shapes, OIHW weights, bias and slope.

    A 1-D convolution's (N, C, L) input is seen as (N, C, 1, L) and its
    weights as (M, C, 1, k); the bias (zeros if absent) and PRelu's
    per-channel slope come as contiguous float32 (M,) arrays.
    """
    c_out = W.shape[0]
    x2_shape = X.shape if X.ndim == 4 else X.shape[:2] + (1,) + X.shape[2:]
    out2_shape = (X.shape[0], c_out) + tuple(geometry.out_hw)
    w2 = np.ascontiguousarray(W.reshape(c_out, W.shape[1], *geometry.kernel))
    bias = np.zeros(c_out, np.float32) if B is None else np.ascontiguousarray(B, dtype=np.float32)
    slope_c = per_channel_slope(slope, c_out) if activation == "PRelu" else None
    return x2_shape, out2_shape, w2, bias, slope_c


def _prepare_fast_conv(args: list, constant: list, attrs: dict, activation: str, alpha: float, clip_min: float,
                       clip_max: float):
    """What :func:`_fast_conv` works out from shapes and weights, done once: returns ``run(*args)`` or None.

    Prepared only with constant weights, bias and slope (always the case in
    an exported model), float32, and a residual of the output's own shape.
    ``run`` keeps one kernel runner per thread count (``threads.limit`` may
    change it between runs).
    """
    X, W, B, slope, residual = (list(args) + [None] * 5)[:5]
    if not all(constant[1:4]) or not (X.dtype == W.dtype == np.float32) or activation not in ACTIVATIONS:
        return None
    from .. import threads
    from ..kernels import cpu_conv

    geometry = conv_geometry(X.shape, W.shape, **attrs)
    out_shape = (X.shape[0], W.shape[0]) + tuple(geometry.out_hw[-(X.ndim - 2):])
    if residual is not None and tuple(residual.shape) != out_shape:
        return None
    x2_shape, out2_shape, w2, bias, slope_c = _kernel_operands(X, W, B, slope, activation, geometry)
    has_residual = residual is not None
    runners: dict[int, Callable] = {}

    def run(X, *_weights_and_residual):
        n_threads = threads.num_threads()
        runner = runners.get(n_threads)
        if runner is None:
            runner = runners[n_threads] = cpu_conv.conv2d_runner(x2_shape, w2, bias, geometry, activation, alpha,
                                                                 slope_c, clip_min, clip_max, has_residual,
                                                                 n_threads)
        res = None
        if has_residual:
            res = np.ascontiguousarray(_weights_and_residual[3]).reshape(out2_shape)
        return _output_like(runner(np.ascontiguousarray(X).reshape(x2_shape), res), X)

    return run


@register_preparer("Conv", backend="numba")
def prepare_Conv(args, constant, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
                 strides=None):
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    return _prepare_fast_conv(args, constant, attrs, "", 0.01, -np.inf, np.inf)


@register_preparer("FusedConv", backend="numba")
def prepare_FusedConv(args, constant, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
                      strides=None, activation="", alpha=0.01, clip_min=-np.inf, clip_max=np.inf):
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    return _prepare_fast_conv(args, constant, attrs, activation, alpha, clip_min, clip_max)


@register("Conv", backend="numba")
def Conv_numba(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None,
               strides=None):
    """ONNX Conv, fast path: see ``minicnn.kernels.cpu_conv`` for which kernel runs when."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    return _fast_conv(X, W, B, None, None, attrs, "", 0.01, -np.inf, np.inf)


@register("FusedConv", backend="numba")
def FusedConv_numba(X, W, B=None, slope=None, residual=None, *, auto_pad="NOTSET", dilations=None, group=1,
                    kernel_shape=None, pads=None, strides=None, activation="", alpha=0.01, clip_min=-np.inf,
                    clip_max=np.inf):
    """FusedConv, fast path: bias, residual and activation applied inside the convolution's last pass."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    return _fast_conv(X, W, B, slope, residual, attrs, activation, alpha, clip_min, clip_max)
