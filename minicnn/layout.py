"""The layout pass: run chains of convolutions and pools in the channel-blocked NCHW16c layout.

Why. In NCHW each channel is its own plane, so a 1x1 or depthwise layer
walks C (and M) separate streams through memory; in NCHW16c a pixel's 16
channels are contiguous and one AVX-512 register holds them, which is how
onnxruntime runs these layers (``minicnn.kernels.cpu_blocked`` has the
measurements). Changing layout costs a pass over the tensor each way, so it
pays only if the tensor then stays blocked for a while: the pass blocks
whole chains and converts at their ends.

How. :func:`block_graph` walks a session plan's graph (every tensor's shape
is known then, from the plan's first run) and rewrites:

* ``Conv`` / ``FusedConv`` that a blocked kernel computes (1x1 without
  padding, depthwise, or dense: see ``minicnn.ops.blocked.blocked_conv_kind``)
  into ``Conv_NCHW16c``; its input (and residual) is converted if it is not
  blocked yet, except that a dense convolution reads an NCHW input as it
  is (a stem reading the image, above all). A dense convolution whose
  output channels would fill less than :data:`MIN_LANES_USED` of their
  blocks' lanes (a detector head with 2 outputs) stays in NCHW, unless it
  is small (:data:`SMALL_DENSE_LANE_MACS`);
* ``MaxPool`` and ``AveragePool`` whose input is already blocked into
  ``MaxPool_NCHW16c`` and ``AveragePool_NCHW16c``, a ``GlobalAveragePool``
  of a blocked input into ``GlobalAveragePool_NCHW16c`` (which writes its
  ``(N, C, 1, 1)`` result in NCHW: no conversion of the whole tensor), a
  ``Resize`` or ``Upsample`` of H and W with constant scales or sizes (the
  detectors' upsampling) into ``Resize_NCHW16c``, and a ``Pad`` that only
  appends zero channels (BlazeFace's shortcuts) into ``PadChannels_NCHW16c``;
* elementwise ops whose data inputs are all blocked and of one shape
  (``Add``, ``Relu``, ``Sigmoid``, ...) stay what they are, run on the
  blocked arrays: an elementwise op does not care how its values are laid
  out, as long as all operands use the same layout;
* everything else stays in NCHW: an input that exists only blocked gets a
  ``FromNCHW16c`` first, and so does every graph output.

A blocked tensor is named after the NCHW tensor it stands for, with
:data:`SUFFIX`. The graph it returns computes the same outputs as the one it
was given, up to float32 round-off (different summation order); sessions
use it for ``run`` and keep the NCHW graph for ``steps``, ``intermediates``
and ``minicnn compare``, so what a learner sees is always the file's layout.
"""

from __future__ import annotations

import logging

import numpy as np

from .errors import MiniCNNError
from .graph import MINICNN_DOMAIN, Graph, Node
from .kernels.cpu_blocked import BLOCK, blocks
from .ops.blocked import CONV_ATTRS, blocked_conv_kind
from .ops.conv import conv_geometry
from .ops.resize import resolve_node
from .ops.shape import _pad_geometry

log = logging.getLogger(__name__)

SUFFIX = "@NCHW16c"
# Ops computed value by value: they run unchanged on blocked operands of one shape.
ELEMENTWISE = ("Add", "Sub", "Mul", "Relu", "LeakyRelu", "Sigmoid", "Clip", "Max", "Min")


def _conv_kind(node: Node, graph: Graph, shapes: dict, output_goes_blocked: bool = False) -> str | None:
    """Which blocked kernel runs this convolution (``blocked_conv_kind``), or None if it stays in NCHW.

    ``output_goes_blocked``: the input is NCHW and every reader of the
    output runs blocked anyway (see :data:`MIN_LANES_USED`).
    """
    if node.op_type not in ("Conv", "FusedConv") or node.inputs[1] not in graph.initializers:
        return None
    x_shape = shapes.get(node.inputs[0])
    w = graph.initializers[node.inputs[1]]
    if x_shape is None or len(x_shape) != 4 or w.dtype != np.float32:
        return None
    if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] not in graph.initializers:
        return None
    attrs = {k: v for k, v in node.attrs.items() if k in CONV_ATTRS}
    kind = blocked_conv_kind(x_shape, w.shape, **attrs)
    if kind is None:
        return None
    out_shape = (x_shape[0], w.shape[0]) + tuple(conv_geometry(x_shape, w.shape, **attrs).out_hw)
    if node.op_type == "FusedConv" and len(node.inputs) > 4 and node.inputs[4]:
        if tuple(shapes.get(node.inputs[4]) or ()) != out_shape:
            return None  # a residual that broadcasts against the convolution's output (or makes it broadcast)
    if kind == "dense" and w.shape[0] < MIN_LANES_USED * BLOCK * blocks(w.shape[0]):
        lanes_in_and_out = BLOCK * blocks(w.shape[1]) * BLOCK * blocks(w.shape[0])
        if (np.prod(out_shape[2:]) * lanes_in_and_out * np.prod(w.shape[2:]) > SMALL_DENSE_LANE_MACS
                and not output_goes_blocked):
            return None  # most of the output lanes would be padding
    return kind


# A dense convolution computes 16 output channels per block whatever M is: the pass blocks it only if at least
# this share of the lanes holds real channels. Measured (1 thread, best of 20, 3x3 on a 64x80x80 input, blocked
# vs NCHW kernel): M=16 1.16 vs 1.41 ms, M=20 2.18 vs 1.76, M=8 1.13 vs 0.74, M=2 1.14 vs 0.44; a 3-channel
# stem with M=24 (BlazeFace's 5x5) still won, 0.21 vs 0.43 ms, the NCHW kernel being slow on 3 channels.
# Except when the convolution reads an NCHW input (no padding lanes in) and every reader of its output runs
# blocked anyway (a depthwise, 1x1 or pooling layer): the NCHW path would then convert the output, padding lanes
# and all, right after. The expression model's second layer (8 -> 8, 3x3 on 62x62, then a depthwise and a
# strided 1x1 layer): blocked 78.7 us at 1 thread and 42.2 at 2, against 104.1 and 102.9 for the NCHW kernel
# and the conversion (best of 500, interleaved).
MIN_LANES_USED = 0.75
# ... unless the layer is small: at most this many multiply-adds counting the padding lanes, in and out (output
# pixels x 16 x output blocks x 16 x input blocks x KH x KW). Then the NCHW path's fixed costs (a reorder of the
# input, the kernel's set-up) outweigh the padding. Measured (1 thread, best of 500, 3x3 pad 1 from an NCHW16c
# input, blocked vs reorder + NCHW kernel): 128 -> 7 on 4x4 (FER's last convolution, 0.3M) 10 vs 28 us, 128 -> 7
# on 8x8 (1.2M) 26 vs 43, 64 -> 4 on 10x10 (0.9M) 22 vs 24; larger, the NCHW kernel wins: 64 -> 2 on 20x20 (3.7M)
# 71 vs 54, 32 -> 4 on 40x40 (7.4M) 138 vs 101.
SMALL_DENSE_LANE_MACS = 1_500_000


def _channel_pad(node: Node, graph: Graph, shapes: dict) -> int | None:
    """How many zero channels a constant ``Pad`` appends, if that is all it does (else None)."""
    if node.op_type != "Pad" or node.attrs.get("mode", "constant") not in ("constant", b"constant"):
        return None
    init = graph.initializers
    extra = [n for n in node.inputs[1:] if n]
    if any(n not in init for n in extra):
        return None
    pads = init[node.inputs[1]] if len(node.inputs) > 1 and node.inputs[1] else node.attrs.get("pads")
    fill = init[node.inputs[2]] if len(node.inputs) > 2 and node.inputs[2] else node.attrs.get("value", 0.0)
    axes = init[node.inputs[3]] if len(node.inputs) > 3 and node.inputs[3] else None
    shape = shapes.get(node.inputs[0])
    if pads is None or shape is None or len(shape) != 4 or np.any(np.asarray(fill) != 0):
        return None
    try:
        crop, widths = _pad_geometry(shape, pads, axes, "constant")
    except MiniCNNError:
        return None
    if any(s != slice(0, d) for s, d in zip(crop, shape)) or widths[0] != (0, 0) or widths[2:] != [(0, 0), (0, 0)]:
        return None
    return widths[1][1] if widths[1][0] == 0 and widths[1][1] > 0 else None


def _resize(node: Node, graph: Graph, shapes: dict) -> dict | None:
    """``Resize_NCHW16c``'s attributes for a Resize/Upsample of H and W with constant scales or sizes, else None."""
    if node.op_type not in ("Resize", "Upsample") or not node.inputs or node.inputs[0] not in shapes:
        return None
    extra = node.inputs[1:]
    if any(n and n not in graph.initializers for n in extra):
        return None
    resolved = resolve_node(node.op_type, tuple(shapes[node.inputs[0]]),
                            [graph.initializers[n] if n else None for n in extra], node.attrs, graph.opset)
    if resolved is None:
        return None
    out_shape, scales, mode, coordinate_mode, nearest_mode = resolved
    return {"out_hw": [int(v) for v in out_shape[2:]], "scales": [float(v) for v in scales[2:]], "mode": mode,
            "coordinate_transformation_mode": coordinate_mode, "nearest_mode": nearest_mode}


def block_graph(graph: Graph, shapes: dict[str, tuple]) -> Graph | None:
    """``graph`` with its blockable chains in NCHW16c, or None if nothing was worth blocking.

    ``shapes`` maps every tensor name of ``graph`` to its shape at the input
    shape being planned (a plan's first run provides them).
    """
    blocked: dict[str, str] = {}   # NCHW name -> name of its blocked version
    in_nchw: set[str] = set(graph.initializers) | {vi.name for vi in graph.inputs}  # tensors available as NCHW
    nodes: list[Node] = []
    converted = 0

    def as_blocked(name: str) -> str:
        nonlocal converted
        if name not in blocked:
            blocked[name] = name + SUFFIX
            nodes.append(Node(f"{name}.to_nchw16c", "ToNCHW16c", [name], [name + SUFFIX], {}, MINICNN_DOMAIN))
            converted += 1
        return blocked[name]

    def as_nchw(name: str) -> str:
        nonlocal converted
        if name and name not in in_nchw and name in blocked:
            nodes.append(Node(f"{name}.from_nchw16c", "FromNCHW16c", [blocked[name]], [name],
                              {"channels": int(shapes[name][1])}, MINICNN_DOMAIN))
            in_nchw.add(name)
            converted += 1
        return name

    readers: dict[str, list[Node]] = {}
    for node in graph.nodes:
        for n in node.inputs:
            readers.setdefault(n, []).append(node)
    graph_outputs = {vi.name for vi in graph.outputs}

    def goes_blocked(node: Node) -> bool:
        """Whether ``node`` reads an NCHW input and every reader of its output would run blocked on it anyway."""
        if not node.inputs or node.inputs[0] in blocked or node.outputs[0] in graph_outputs:
            return False
        found = readers.get(node.outputs[0], [])
        return bool(found) and all(_conv_kind(r, graph, shapes) in ("pointwise", "depthwise")
                                   or r.op_type in ("MaxPool", "AveragePool") for r in found)

    rewritten = 0
    for node in graph.nodes:
        data = [n for n in node.inputs if n and n not in graph.initializers]
        if (kind := _conv_kind(node, graph, shapes, node.op_type in ("Conv", "FusedConv") and goes_blocked(node))) \
                is not None:
            inputs = list(node.inputs) + [""] * (5 - len(node.inputs))
            # A dense convolution reads NCHW as fast as NCHW16c (a tap is then one channel, not 16): it takes its
            # input in whichever layout it exists, and a stem never pads its 3 channels to 16 (5x the work).
            if kind != "dense" or inputs[0] in blocked:
                inputs[0] = as_blocked(inputs[0])
            if inputs[4]:
                inputs[4] = as_blocked(inputs[4])
            while inputs[-1] == "":
                inputs.pop()
            attrs = dict(node.attrs)
            attrs.setdefault("activation", "")
            out = node.outputs[0]
            nodes.append(Node(node.name, "Conv_NCHW16c", inputs, [out + SUFFIX], attrs, MINICNN_DOMAIN))
            blocked[out] = out + SUFFIX
            rewritten += 1
        elif (node.op_type in ("MaxPool", "AveragePool") and len(data) == 1 and data[0] in blocked
              and len(shapes[data[0]]) == 4 and not any(node.outputs[1:])):
            out = node.outputs[0]
            nodes.append(Node(node.name, node.op_type + "_NCHW16c", [blocked[data[0]]], [out + SUFFIX],
                              dict(node.attrs), MINICNN_DOMAIN))
            blocked[out] = out + SUFFIX
            rewritten += 1
        elif node.op_type == "GlobalAveragePool" and data and data[0] in blocked and len(shapes[data[0]]) == 4:
            nodes.append(Node(node.name, "GlobalAveragePool_NCHW16c", [blocked[data[0]]], list(node.outputs),
                              {"channels": int(shapes[data[0]][1])}, MINICNN_DOMAIN))
            in_nchw.update(o for o in node.outputs if o)  # (N, C, 1, 1): written in NCHW directly
            rewritten += 1
        elif node.inputs and node.inputs[0] in blocked and (attrs := _resize(node, graph, shapes)) is not None:
            out = node.outputs[0]
            nodes.append(Node(node.name, "Resize_NCHW16c", [blocked[node.inputs[0]]], [out + SUFFIX], attrs,
                              MINICNN_DOMAIN))
            blocked[out] = out + SUFFIX
            rewritten += 1
        elif node.inputs and node.inputs[0] in blocked and (extra := _channel_pad(node, graph, shapes)) is not None:
            out = node.outputs[0]
            attrs = {"channels": int(shapes[node.inputs[0]][1]), "extra": extra}
            nodes.append(Node(node.name, "PadChannels_NCHW16c", [blocked[node.inputs[0]]], [out + SUFFIX], attrs,
                              MINICNN_DOMAIN))
            blocked[out] = out + SUFFIX
        elif (node.op_type in ELEMENTWISE and data and all(n in blocked for n in data)
              and len({shapes[n] for n in data} | {shapes[node.outputs[0]]}) == 1
              and all(np.size(graph.initializers[n]) == 1 for n in node.inputs if n in graph.initializers)):
            out = node.outputs[0]
            inputs = [blocked[n] if n in blocked else n for n in node.inputs]
            nodes.append(Node(node.name, node.op_type, inputs, [out + SUFFIX], dict(node.attrs), node.domain))
            blocked[out] = out + SUFFIX
        else:
            for n in node.inputs:
                as_nchw(n)
            nodes.append(node)
            in_nchw.update(o for o in node.outputs if o)
    for vi in graph.outputs:
        as_nchw(vi.name)
    if not rewritten:
        return None
    log.debug("layout: %d nodes in NCHW16c, %d layout conversions", rewritten, converted)
    return Graph(nodes=nodes, initializers=graph.initializers, inputs=graph.inputs, outputs=graph.outputs,
                 opset=graph.opset, name=graph.name, source=graph.source)
