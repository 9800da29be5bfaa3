"""2-D convolution on the GPU, assembled from the kernels beside it.

A convolution with the ONNX ``Conv`` attributes (strides, pads, dilations,
group) plus the fused epilogue of minicnn's ``FusedConv`` (bias, residual,
activation) runs as:

* depthwise (``group == C_in``, one input channel per group): the direct
  kernel of ``cuda_depthwise``, epilogue fused (version 2) or as a second
  pass (version 1);
* everything else, per image and per group: ``cuda_im2col`` unfolds the input
  (skipped for 1x1 stride-1 unpadded convolutions, whose input already *is*
  the column matrix), ``cuda_sgemm`` multiplies the weights by it, and the
  epilogue (bias, residual, activation) runs either inside SGEMM version 4's
  store or as one ``cuda_epilogue`` pass after versions 1-3.

The variants, named as the benchmark reports them:

* dense: ``im2col + sgemm v1`` / ``v2`` / ``v3`` / ``v4 fused`` (``gemm_version``; default 4);
* depthwise: ``depthwise v1 + epilogue`` / ``depthwise v2 fused`` (``depthwise_version``; default 2).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

from .cuda_common import check_close, validation_main
from .cuda_depthwise import DEFAULT_VERSION as DEFAULT_DEPTHWISE
from .cuda_depthwise import VERSIONS as DEPTHWISE_VERSIONS
from .cuda_depthwise import run_depthwise
from .cuda_epilogue import epilogue_reference, run_epilogue
from .cuda_im2col import im2col_reference, output_size, run_im2col
from .cuda_sgemm import VERSIONS as GEMM_VERSIONS, run_sgemm

DEFAULT_GEMM = 4  # the SGEMM with the epilogue fused into its store


def is_depthwise(x_channels: int, w_shape: tuple[int, ...], group: int) -> bool:
    """One input channel per group, every group: the direct depthwise kernel applies."""
    return group == x_channels and w_shape[1] == 1 and group > 1


def output_shape(x_shape, w_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1)) -> tuple[int, ...]:
    """``(N, C_out, OH, OW)`` of a 2-D convolution."""
    n, _, h, w = x_shape
    c_out, _, kh, kw = w_shape
    return (n, c_out, output_size(h, kh, strides[0], pads[0], pads[2], dilations[0]),
            output_size(w, kw, strides[1], pads[1], pads[3], dilations[1]))


def needs_im2col(w_shape, strides, pads, dilations) -> bool:
    """False for a 1x1 convolution with stride 1 and no padding (its input is the column matrix)."""
    return not (w_shape[2] == 1 and w_shape[3] == 1 and tuple(strides) == (1, 1) and not any(pads))


def workspace_size(x_shape, w_shape, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group: int = 1) -> int:
    """float32 elements of scratch memory ``run_conv`` needs for one image's column matrix (0 if none)."""
    if is_depthwise(x_shape[1], w_shape, group) or not needs_im2col(w_shape, strides, pads, dilations):
        return 0
    _, _, oh, ow = output_shape(x_shape, w_shape, strides, pads, dilations)
    return x_shape[1] * w_shape[2] * w_shape[3] * oh * ow


def conv_reference(x: np.ndarray, w: np.ndarray, bias=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1),
                   group: int = 1, residual=None, activation: str = "", alpha: float = 0.01, slope=None,
                   lo: float = -np.inf, hi: float = np.inf) -> np.ndarray:
    """NumPy reference (float64): im2col per image and group, a matmul, then the epilogue."""
    n, c, _, _ = x.shape
    c_out, c_per_group, kh, kw = w.shape
    out_per_group = c_out // group
    shape = output_shape(x.shape, w.shape, strides, pads, dilations)
    y = np.empty(shape)
    for b in range(n):
        for g in range(group):
            cols = im2col_reference(x[b, g * c_per_group:(g + 1) * c_per_group].astype(np.float64),
                                    kh, kw, strides, pads, dilations)
            wg = w[g * out_per_group:(g + 1) * out_per_group].reshape(out_per_group, -1).astype(np.float64)
            y[b, g * out_per_group:(g + 1) * out_per_group] = (wg @ cols).reshape(out_per_group, *shape[2:])
    return epilogue_reference(y, bias, residual, activation, alpha, slope, lo, hi)


def run_conv(x, w, y, bias=None, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group: int = 1,
             residual=None, activation: str = "", alpha: float = 0.01, slope=None, lo: float = -np.inf,
             hi: float = np.inf, gemm_version: int = DEFAULT_GEMM, depthwise_version: int = DEFAULT_DEPTHWISE,
             workspace=None) -> None:
    """``y = act(conv(x, w) + bias + residual)`` on device arrays (x, w, y 4-D NCHW float32).

    ``workspace``: a flat float32 device array of at least ``workspace_size(...)``
    elements for the column matrix, or None to allocate one here.
    """
    n, c, _, _ = x.shape
    c_out, c_per_group, kh, kw = w.shape
    epilogue = dict(bias=bias, residual=residual, activation=activation, alpha=alpha, slope=slope, lo=lo, hi=hi)
    if is_depthwise(c, w.shape, group):
        if depthwise_version == 1:
            run_depthwise(x, w, y, strides, pads, dilations, version=1)
            run_epilogue(y, y, c_out, **epilogue)
        else:
            run_depthwise(x, w, y, strides, pads, dilations, version=depthwise_version, **epilogue)
        return
    _, _, oh, ow = y.shape
    rows = c_per_group * kh * kw  # rows of one group's column matrix
    out_per_group = c_out // group
    w2d = w.reshape(c_out, rows)
    unfold = needs_im2col(w.shape, strides, pads, dilations)
    if unfold:
        needed = c * kh * kw * oh * ow
        if workspace is None:
            workspace = cuda.device_array(needed, dtype=np.float32)
        elif workspace.size < needed:
            raise ValueError(f"conv: workspace holds {workspace.size} floats, needs {needed}")
        cols = workspace[:needed].reshape(c * kh * kw, oh * ow)
    fused = gemm_version == 4
    per_channel_slope = slope is not None and slope.size > 1
    for b in range(n):
        if unfold:
            run_im2col(x[b], cols, kh, kw, strides, pads, dilations)
        else:
            cols = x[b].reshape(c, oh * ow)
        y_image = y[b].reshape(c_out, oh * ow)
        residual_image = residual[b].reshape(c_out, oh * ow) if residual is not None else None
        for g in range(group):
            out_rows = slice(g * out_per_group, (g + 1) * out_per_group)
            group_epilogue = {}
            if fused:  # this group's slice of every per-channel value
                group_epilogue = dict(
                    bias=bias[out_rows] if bias is not None else None,
                    residual=residual_image[out_rows] if residual is not None else None,
                    slope=slope[out_rows] if per_channel_slope else slope,
                    activation=activation, alpha=alpha, lo=lo, hi=hi)
            run_sgemm(w2d[out_rows], cols[g * rows:(g + 1) * rows], y_image[out_rows], version=gemm_version,
                      **group_epilogue)
    if not fused and (bias is not None or residual is not None or activation):
        run_epilogue(y, y, c_out, **epilogue)


def variants(x_channels: int, w_shape, group: int) -> dict[str, dict]:
    """The CUDA variants that apply to this convolution: ``{name: run_conv keyword arguments}``."""
    if is_depthwise(x_channels, w_shape, group):
        names = {1: "depthwise v1 + epilogue", 2: "depthwise v2 fused"}
        return {names[v]: {"depthwise_version": v} for v in DEPTHWISE_VERSIONS}
    return {f"im2col + sgemm v{v}" + (" fused" if v == 4 else ""): {"gemm_version": v} for v in GEMM_VERSIONS}


# (x shape, w shape, strides, pads, dilations, group, activation)
VALIDATION_CASES = (
    ((1, 3, 9, 8), (4, 3, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1, "Relu"),
    ((2, 4, 5, 5), (6, 4, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1, "LeakyRelu"),
    ((1, 4, 6, 6), (4, 2, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2, "PRelu"),  # per-group slices of the slope
    ((1, 3, 7, 7), (3, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3, "Clip"),
)


def validate(cases=VALIDATION_CASES, seed: int = 0) -> dict[str, float]:
    """Every variant on dense, 1x1, grouped and depthwise cases with bias, residual and an activation.

    Tolerance ``1e-4 * sqrt(C_in/group * kh * kw)`` abs and rel (float32 sums).
    """
    rng = np.random.default_rng(seed)
    worst: dict[str, float] = {}
    for x_shape, w_shape, strides, pads, dilations, group, activation in cases:
        x = rng.standard_normal(x_shape).astype(np.float32)
        w = rng.standard_normal(w_shape).astype(np.float32)
        bias = rng.standard_normal(w_shape[0]).astype(np.float32)
        slope = (0.2 * rng.random(w_shape[0])).astype(np.float32)
        out_shape = output_shape(x_shape, w_shape, strides, pads, dilations)
        residual = rng.standard_normal(out_shape).astype(np.float32)
        extra = dict(activation=activation, alpha=0.1, lo=-0.5, hi=0.5)
        want = conv_reference(x, w, bias, strides, pads, dilations, group, residual, slope=slope, **extra)
        dev = {k: cuda.to_device(v) for k, v in dict(x=x, w=w, bias=bias, residual=residual, slope=slope).items()}
        tol = 1e-4 * np.sqrt(w_shape[1] * w_shape[2] * w_shape[3])
        for name, kwargs in variants(x_shape[1], w_shape, group).items():
            dy = cuda.device_array(out_shape, dtype=np.float32)
            run_conv(dev["x"], dev["w"], dy, dev["bias"], strides, pads, dilations, group,
                     residual=dev["residual"], slope=dev["slope"], **extra, **kwargs)
            label = f"conv [{name}] x{list(x_shape)} w{list(w_shape)} group={group} {activation}"
            worst[name] = max(worst.get(name, 0.0), check_close(label, dy.copy_to_host(), want, tol, tol))
    return worst


if __name__ == "__main__":
    validation_main("conv", validate)
