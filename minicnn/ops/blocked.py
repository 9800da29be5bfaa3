"""Ops on channel-blocked tensors (NCHW16c), which ``minicnn.layout`` puts into a session's fast plan.

None of these is an ONNX op. A tensor in NCHW16c is ``(N, ceil(C/16), H, W,
16)``: channel ``c`` of pixel ``(i, j)`` at ``[n, c // 16, i, j, c % 16]``,
the channels beyond C padding (see ``minicnn.kernels.cpu_blocked`` for why
this layout is fast). The layout pass rewrites chains of convolutions and
pools into these ops, with a ``ToNCHW16c`` where a chain starts and a
``FromNCHW16c`` where an ordinary op (or a graph output) reads its result.

Each op here has its readable reference, which says exactly what it means
in terms of the ordinary ops: undo the layout, run the NCHW op, redo the
layout. The numba fast paths run the NCHW16c kernels directly.

What padding channels hold: the reference's ``ToNCHW16c`` writes zeros; a
fast convolution writes its activation of 0 there (0, or 0.5 after a
Sigmoid), a pool pools those values. Either way they are finite, and every
weight that reads them is zero, so they never reach a real channel; tests
compare real channels only.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..kernels import cpu_blocked
from .conv import FusedConv, conv_geometry, per_channel_slope
from .pool import AveragePool, GlobalAveragePool, MaxPool, pool_geometry
from .resize import resize, spatial_indices
from .registry import register, register_preparer

BLOCK = cpu_blocked.BLOCK


def _check_blocked(X, op: str) -> None:
    if not isinstance(X, np.ndarray) or X.ndim != 5 or X.shape[-1] != BLOCK or X.dtype != np.float32:
        shape = list(X.shape) if isinstance(X, np.ndarray) else type(X).__name__
        raise InputError(f"{op}: expected a float32 NCHW16c tensor (N, C/16, H, W, 16), got {shape}")


# ---------------------------------------------------------------------------
# Changing layout
# ---------------------------------------------------------------------------
@register("ToNCHW16c")
def ToNCHW16c(X):
    """NCHW -> NCHW16c, missing channels zero."""
    if X.ndim != 4 or X.dtype != np.float32:
        raise InputError(f"ToNCHW16c: expected a float32 (N, C, H, W) tensor, got {X.dtype}{list(X.shape)}")
    return cpu_blocked.to_blocked(X)


@register("ToNCHW16c", backend="numba")
def ToNCHW16c_numba(X):
    if X.ndim != 4 or X.dtype != np.float32:
        return ToNCHW16c(X)  # raises the reference's error
    return cpu_blocked.to_blocked_fast(X)


def _check_channels(X, channels, op: str) -> None:
    """An NCHW16c ``X`` that holds ``channels`` real channels."""
    _check_blocked(X, op)
    if not 0 < channels <= X.shape[1] * BLOCK:
        raise InputError(f"{op}: channels={channels} does not fit {list(X.shape)}")


def _check_range(X, channels, first) -> None:
    _check_blocked(X, "FromNCHW16c")
    if not (0 <= first and 0 < channels and first + channels <= X.shape[1] * BLOCK):
        raise InputError(f"FromNCHW16c: channels {first}:{first + channels} do not fit {list(X.shape)}")


@register("FromNCHW16c")
def FromNCHW16c(X, *, channels, first=0):
    """NCHW16c -> NCHW: channels ``first:first + channels`` (the padding dropped).

    ``first`` is not 0 where the layout pass turned a ``Split`` of a blocked
    tensor on the channel axis into one of these per piece.
    """
    _check_range(X, int(channels), int(first))
    return cpu_blocked.from_blocked(X, int(channels), int(first))


@register("FromNCHW16c", backend="numba")
def FromNCHW16c_numba(X, *, channels, first=0):
    _check_range(X, int(channels), int(first))
    return cpu_blocked.from_blocked_fast(X, int(channels), int(first))


# ---------------------------------------------------------------------------
# Convolution: 1x1 (pointwise), depthwise and dense, bias, residual and activation fused
# ---------------------------------------------------------------------------
CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")


def blocked_conv_kind(x_shape, w_shape, **conv_attrs) -> str | None:
    """Which NCHW16c kernel computes this 2-D convolution: "pointwise", "depthwise", "dense", or None (none).

    Pointwise: 1x1, no padding, one group (a strided one runs on the dense
    kernel, which steps over the pixels it does not read).
    Depthwise: one group per channel, one filter per group, dilation 1, any
    kernel, stride and padding. Dense: any other one-group convolution.
    Grouped convolutions between the two (several channels per group) have
    no blocked kernel.
    """
    if len(x_shape) != 4 or len(w_shape) != 4:
        return None
    g = conv_geometry(x_shape, w_shape, **conv_attrs)
    if g.group == 1:
        return "pointwise" if g.kernel == (1, 1) and g.pads == (0, 0, 0, 0) else "dense"
    if g.group == x_shape[1] == w_shape[0] and w_shape[1] == 1 and g.dilations == (1, 1):
        return "depthwise"
    return None


def _conv_input(X, W, attrs: dict, op: str) -> tuple:
    """The NCHW shape a Conv_NCHW16c input stands for; an NCHW input itself is allowed for dense convolutions."""
    if isinstance(X, np.ndarray) and X.ndim == 4 and X.dtype == np.float32:
        if blocked_conv_kind(X.shape, W.shape, **attrs) != "dense":
            raise InputError(f"{op}: an NCHW input {list(X.shape)} is read only by a dense convolution (one "
                             f"group, not an unpadded 1x1); weights {list(W.shape)}, group={attrs.get('group')}")
        return X.shape
    _check_blocked(X, op)
    n, cb, h, w, _ = X.shape
    c_in = W.shape[1] * int(attrs.get("group") or 1)
    if cpu_blocked.blocks(c_in) != cb:
        raise InputError(f"{op}: weights {list(W.shape)} read {c_in} channels, the input has {cb} blocks of 16")
    return (n, c_in, h, w)


@register("Conv_NCHW16c")
def Conv_NCHW16c(X, W, B=None, slope=None, residual=None, *, auto_pad="NOTSET", dilations=None, group=1,
                 kernel_shape=None, pads=None, strides=None, activation="", alpha=0.01, clip_min=-np.inf,
                 clip_max=np.inf):
    """``FusedConv`` with NCHW16c output and residual (the reference: unblock, FusedConv, reblock).

    The input is NCHW16c, or, for a dense convolution, NCHW (a stem reading
    the 3-channel image).
    """
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    nchw = _conv_input(X, W, attrs, "Conv_NCHW16c")
    c_out = W.shape[0]
    x = X if X.ndim == 4 else cpu_blocked.from_blocked(X, nchw[1])
    res = None
    if residual is not None:
        _check_blocked(residual, "Conv_NCHW16c (residual)")
        res = cpu_blocked.from_blocked(residual, c_out)
    y = FusedConv(x, W, B, slope, res, **attrs, activation=activation, alpha=alpha, clip_min=clip_min,
                  clip_max=clip_max)
    return cpu_blocked.to_blocked(y)


def _conv_runner(x_shape, W, B, slope, attrs: dict, activation: str, alpha: float, clip_min: float,
                 clip_max: float) -> cpu_blocked.BlockedLayer | None:
    """The layer for inputs of shape ``x_shape`` (NCHW16c, or NCHW for dense) with these weights:
    ``layer(X, residual)`` (``cpu_blocked.BlockedLayer``).

    None if no kernel applies (the caller runs the reference). A strided
    1x1 convolution runs on the dense kernel, which steps over the pixels
    it skips (7.2 us against 12.1 for copying every other pixel and then
    the 1x1 kernel, on 8 -> 16 channels of 60x60; 33 against 47 on 64 ->
    128 of 40x40: best of 2000, interleaved).
    """
    if W.dtype != np.float32:
        return None
    nchw = x_shape if len(x_shape) == 4 else (x_shape[0], W.shape[1] * int(attrs.get("group") or 1)) + x_shape[2:4]
    kind = blocked_conv_kind(nchw, W.shape, **attrs)
    if kind is None or (len(x_shape) == 4 and kind != "dense"):
        return None
    g = conv_geometry(nchw, W.shape, **attrs)
    slope_c = per_channel_slope(slope, W.shape[0]) if activation == "PRelu" else None
    lo, hi = clip_min, clip_max
    if kind == "pointwise" and g.strides == (1, 1):
        wb, b16, s16 = cpu_blocked.blocked_pointwise_weights(W, B, slope_c)
        return cpu_blocked.pointwise_runner(x_shape, wb, b16, s16, activation, alpha, lo, hi)
    if kind == "depthwise":
        wb, b16, s16 = cpu_blocked.blocked_depthwise_weights(W, B, slope_c)
        return cpu_blocked.depthwise_runner(x_shape, wb, b16, s16, g.strides, g.pads, g.out_hw, activation,
                                            alpha, lo, hi)
    wb, b16, s16 = cpu_blocked.blocked_dense_weights(W, B, slope_c, 1 if len(x_shape) == 4 else BLOCK)
    return cpu_blocked.dense_runner(x_shape, wb, b16, s16, g.strides, g.pads, g.dilations, g.out_hw, activation,
                                    alpha, lo, hi)


@register("Conv_NCHW16c", backend="numba")
def Conv_NCHW16c_numba(X, W, B=None, slope=None, residual=None, *, auto_pad="NOTSET", dilations=None, group=1,
                       kernel_shape=None, pads=None, strides=None, activation="", alpha=0.01, clip_min=-np.inf,
                       clip_max=np.inf):
    """``Conv_NCHW16c`` by the NCHW16c kernels (``cpu_blocked``); shapes they do not cover run the reference."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    _conv_input(X, W, attrs, "Conv_NCHW16c")
    run = _conv_runner(X.shape, W, B, slope, attrs, activation, alpha, clip_min, clip_max)
    if run is None:
        return Conv_NCHW16c(X, W, B, slope, residual, **attrs, activation=activation, alpha=alpha,
                            clip_min=clip_min, clip_max=clip_max)
    return run(X, residual)


@register_preparer("Conv_NCHW16c", backend="numba")
def prepare_Conv_NCHW16c(args, constant, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                         pads=None, strides=None, activation="", alpha=0.01, clip_min=-np.inf, clip_max=np.inf):
    """The weights laid out once per plan (see ``registry.register_preparer``)."""
    X, W, B, slope, residual = (list(args) + [None] * 5)[:5]
    if not all(constant[1:4]):
        return None
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    layer = _conv_runner(X.shape, W, B, slope, attrs, activation, alpha, clip_min, clip_max)
    if layer is None:
        return None
    return _prepared(lambda X, W, B=None, slope=None, residual=None: layer(X, residual), layer, residual_arg=4)


def _prepared(run, layer: cpu_blocked.BlockedLayer | None, residual_arg: int | None = None):
    """``run`` as a step's prepared op, naming the layer it runs and which input is its residual.

    ``minicnn.chains`` reads both to run consecutive layers in one
    compiled call; None (a dilated pool) when no layer applies.
    """
    if layer is None:
        return None
    run.layer, run.residual_arg = layer, residual_arg
    return run


# ---------------------------------------------------------------------------
# Pooling: max and average windows stay blocked; a global average writes NCHW
# ---------------------------------------------------------------------------
@register("MaxPool_NCHW16c")
def MaxPool_NCHW16c(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                    storage_order=0, strides=None):
    """``MaxPool`` on an NCHW16c tensor (the reference: unblock every lane, MaxPool, reblock)."""
    _check_blocked(X, "MaxPool_NCHW16c")
    y = MaxPool(cpu_blocked.from_blocked(X, X.shape[1] * BLOCK), auto_pad=auto_pad, ceil_mode=ceil_mode,
                dilations=dilations, kernel_shape=kernel_shape, pads=pads, storage_order=storage_order,
                strides=strides)
    return cpu_blocked.to_blocked(y)


@register("AveragePool_NCHW16c")
def AveragePool_NCHW16c(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None, kernel_shape=None,
                        pads=None, strides=None):
    """``AveragePool`` on an NCHW16c tensor (the reference: unblock every lane, AveragePool, reblock)."""
    _check_blocked(X, "AveragePool_NCHW16c")
    y = AveragePool(cpu_blocked.from_blocked(X, X.shape[1] * BLOCK), auto_pad=auto_pad, ceil_mode=ceil_mode,
                    count_include_pad=count_include_pad, dilations=dilations, kernel_shape=kernel_shape, pads=pads,
                    strides=strides)
    return cpu_blocked.to_blocked(y)


def _pool_runner(x_shape, op: str, attrs: dict, count_include_pad: int = 0):
    """``run(X)`` for NCHW16c inputs of shape ``x_shape``, or None (dilated pools run the reference)."""
    n, cb, h, w, _ = x_shape
    g = pool_geometry((n, cb * BLOCK, h, w), op, **attrs)
    if g.dilations != (1, 1):
        return None
    pads = g.pads_begin + g.pads_end
    average = op == "AveragePool"
    return cpu_blocked.pool_runner(x_shape, g.kernel, g.strides, pads, g.out, average, bool(count_include_pad))


@register("MaxPool_NCHW16c", backend="numba")
def MaxPool_NCHW16c_numba(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
                          storage_order=0, strides=None):
    _check_blocked(X, "MaxPool_NCHW16c")
    attrs = dict(auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    run = _pool_runner(X.shape, "MaxPool", attrs)
    return run(X) if run is not None else MaxPool_NCHW16c(X, **attrs)


@register("AveragePool_NCHW16c", backend="numba")
def AveragePool_NCHW16c_numba(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                              kernel_shape=None, pads=None, strides=None):
    _check_blocked(X, "AveragePool_NCHW16c")
    attrs = dict(auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    run = _pool_runner(X.shape, "AveragePool", attrs, count_include_pad)
    return run(X) if run is not None else AveragePool_NCHW16c(X, **attrs, count_include_pad=count_include_pad)


@register_preparer("MaxPool_NCHW16c", backend="numba")
def prepare_MaxPool_NCHW16c(args, constant, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None,
                            pads=None, storage_order=0, strides=None):
    layer = _pool_runner(args[0].shape, "MaxPool", dict(auto_pad=auto_pad, ceil_mode=ceil_mode, dilations=dilations,
                                                        kernel_shape=kernel_shape, pads=pads, strides=strides))
    return _prepared(lambda X: layer(X), layer)


@register_preparer("AveragePool_NCHW16c", backend="numba")
def prepare_AveragePool_NCHW16c(args, constant, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0,
                                dilations=None, kernel_shape=None, pads=None, strides=None):
    layer = _pool_runner(args[0].shape, "AveragePool", dict(auto_pad=auto_pad, ceil_mode=ceil_mode,
                                                            dilations=dilations, kernel_shape=kernel_shape,
                                                            pads=pads, strides=strides), count_include_pad)
    return _prepared(lambda X: layer(X), layer)


@register("GlobalAveragePool_NCHW16c")
def GlobalAveragePool_NCHW16c(X, *, channels):
    """``GlobalAveragePool`` of an NCHW16c tensor, the result in NCHW ``(N, channels, 1, 1)`` (padding dropped).

    The reference: unblock, GlobalAveragePool.
    """
    _check_channels(X, channels, "GlobalAveragePool_NCHW16c")
    return GlobalAveragePool(cpu_blocked.from_blocked(X, int(channels)))


@register("GlobalAveragePool_NCHW16c", backend="numba")
def GlobalAveragePool_NCHW16c_numba(X, *, channels):
    """The same by ``cpu_blocked.global_mean_nchw16c``: no NCHW copy of the whole tensor is made."""
    _check_channels(X, channels, "GlobalAveragePool_NCHW16c")
    n, _, h, w, _ = X.shape
    out = np.empty((n, int(channels), 1, 1), dtype=np.float32)
    cpu_blocked.global_mean_nchw16c(X.reshape(-1), out.reshape(-1), h * w, int(channels))
    return out


# ---------------------------------------------------------------------------
# Zero channels appended (BlazeFace's shortcuts: Pad on the channel axis only)
# ---------------------------------------------------------------------------
@register("PadChannels_NCHW16c")
def PadChannels_NCHW16c(X, *, channels, extra):
    """``Pad`` of ``extra`` zero channels after the ``channels`` real ones (the reference: unblock, pad, reblock)."""
    _check_blocked(X, "PadChannels_NCHW16c")
    x = cpu_blocked.from_blocked(X, int(channels))
    return cpu_blocked.to_blocked(np.pad(x, ((0, 0), (0, int(extra)), (0, 0), (0, 0))))


def _pad_channels_layer(X, channels, extra) -> cpu_blocked.BlockedLayer:
    _check_channels(X, channels, "PadChannels_NCHW16c")
    if X.shape[1] != cpu_blocked.blocks(channels) or int(extra) < 0:
        raise InputError(f"PadChannels_NCHW16c: channels={channels}, extra={extra} do not fit {list(X.shape)} "
                         f"(the input's last block must hold its last real channel)")
    return cpu_blocked.pad_channels_runner(X.shape, int(channels), int(extra))


@register("PadChannels_NCHW16c", backend="numba")
def PadChannels_NCHW16c_numba(X, *, channels, extra):
    """The same without leaving the layout (``cpu_blocked.pad_channel_planes``): copy the blocks, zero the new
    channels, lanes and blocks. A compiled job, so a session runs it inside a chain."""
    return _pad_channels_layer(X, channels, extra)(X)


@register_preparer("PadChannels_NCHW16c", backend="numba")
def prepare_PadChannels_NCHW16c(args, constant, *, channels, extra):
    layer = _pad_channels_layer(args[0], channels, extra)
    return _prepared(lambda X: layer(X), layer)


# ---------------------------------------------------------------------------
# Resize over H and W (the detectors' upsampling), its geometry resolved by the layout pass
# ---------------------------------------------------------------------------
def _resize_geometry(x_shape, out_hw, scales) -> tuple:
    """``(nchw_shape, out_shape, scales)`` of an NCHW16c Resize, every lane (padding too) counted as a channel."""
    n, cb, h, w, _ = x_shape
    nchw = (n, cb * BLOCK, h, w)
    out = [n, cb * BLOCK, int(out_hw[0]), int(out_hw[1])]
    return nchw, out, [np.float32(1), np.float32(1)] + [np.float32(s) for s in scales]


@register("Resize_NCHW16c")
def Resize_NCHW16c(X, *, out_hw, scales, mode, coordinate_transformation_mode, nearest_mode):
    """Resize of H and W on an NCHW16c tensor, with a Resize node's resolved geometry (``ops.resize.resolve_node``).

    ``scales`` are the (H, W) scales the coordinates use. The reference:
    unblock every lane, ``ops.resize.resize``, reblock.
    """
    _check_blocked(X, "Resize_NCHW16c")
    nchw, out, used = _resize_geometry(X.shape, out_hw, scales)
    y = resize(cpu_blocked.from_blocked(X, nchw[1]), out, used, mode, coordinate_transformation_mode, nearest_mode)
    return cpu_blocked.to_blocked(y)


def _resize_runner(x_shape, out_hw, scales, mode, coordinate_mode, nearest_mode):
    """``run(X)`` for NCHW16c inputs of ``x_shape``: the index arrays computed once."""
    nchw, out, used = _resize_geometry(x_shape, out_hw, scales)
    indices = spatial_indices(nchw, out, used, mode, coordinate_mode, nearest_mode)
    return cpu_blocked.resize_runner(x_shape, tuple(out[2:]), mode, indices)


@register("Resize_NCHW16c", backend="numba")
def Resize_NCHW16c_numba(X, *, out_hw, scales, mode, coordinate_transformation_mode, nearest_mode):
    """The same by ``cpu_blocked.resize_runner``: bit for bit the reference's values."""
    _check_blocked(X, "Resize_NCHW16c")
    return _resize_runner(X.shape, out_hw, scales, mode, coordinate_transformation_mode, nearest_mode)(X)


@register_preparer("Resize_NCHW16c", backend="numba")
def prepare_Resize_NCHW16c(args, constant, *, out_hw, scales, mode, coordinate_transformation_mode, nearest_mode):
    return _resize_runner(args[0].shape, out_hw, scales, mode, coordinate_transformation_mode, nearest_mode)
