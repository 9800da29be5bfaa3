"""The layout pass: run chains of convolutions and pools in the channel-blocked NCHW16c layout.

Why. In NCHW each channel is its own plane, so a 1x1 or depthwise layer
walks C (and M) separate streams through memory; in NCHW16c a pixel's 16
channels are contiguous and one AVX-512 register holds them, which is how
onnxruntime runs these layers (``minicnn.kernels.cpu_blocked`` has the
measurements). Changing layout costs a pass over the tensor each way, so it
pays only if the tensor then stays blocked for a while: the pass blocks
whole chains and converts at their ends.

How. :func:`block_graph` walks a session plan's graph (every tensor's shape
is known then, from the plan's first run), after stacking sibling
convolutions (:func:`merge_sibling_convs`: a detector head's score, box and
keypoint convolutions of one feature map become one convolution and a
``Split``), and rewrites:

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
* a ``Split`` of a blocked tensor on the channel axis into one
  ``FromNCHW16c`` per piece, each converting its own channel range;
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


# What must match for sibling convolutions to become one (besides reading the same tensor).
_SIBLING_ATTRS = CONV_ATTRS + ("activation", "alpha", "clip_min", "clip_max")


def _sibling_key(node: Node, graph: Graph) -> tuple | None:
    """What a convolution must share with its siblings to be merged with them, or None if it cannot be.

    A one-group 2-D ``Conv`` or ``FusedConv`` with constant float32 weights
    and bias, no PRelu slope and no residual.
    """
    init = graph.initializers
    if node.op_type not in ("Conv", "FusedConv") or node.inputs[1] not in init or any(node.inputs[3:]):
        return None
    w = init[node.inputs[1]]
    if w.dtype != np.float32 or w.ndim != 4 or int(node.attrs.get("group", 1)) != 1:
        return None
    if len(node.inputs) > 2 and node.inputs[2] and node.inputs[2] not in init:
        return None
    attrs = tuple((k, repr(node.attrs.get(k))) for k in _SIBLING_ATTRS)
    return node.inputs[0], node.op_type, w.shape[1:], attrs


def merge_sibling_convs(graph: Graph, shapes: dict[str, tuple]) -> tuple[Graph, dict[str, tuple]]:
    """Convolutions that read one tensor with the same geometry become one, followed by a ``Split``.

    A detector's head reads each feature map with two to four convolutions
    (scores, boxes, keypoints: SCRFD's are 3x3 with 2, 8 and 20 outputs).
    Stacked, their filters make one convolution with 30 outputs, which
    reads the input once and fills 30 of the 32 lanes of two NCHW16c blocks,
    where the three separate ones would fill 2, 8 and 20 of 16 each (and
    stay in NCHW for that reason). Each original output is then a channel
    range of the stacked one: a ``Split`` on axis 1, which :func:`block_graph`
    turns into one ``FromNCHW16c`` per piece. Every output keeps its name,
    and each of its channels is computed from the same weights and input.
    Siblings are stacked only if that takes fewer blocks of 16 channels
    than they take apart (BlazeFace's 2 + 32 outputs take 3 either way, and
    stacked they ran no faster).

    Measured (SCRFD's 80x80 level, 64 channels in, 1 thread, best of 60,
    interleaved): the three NCHW convolutions and the input's conversion
    3.36 ms; the stacked blocked convolution 2.23 ms; at 2 threads 3.17
    against 1.19 ms (the split's conversions back to NCHW not counted).
    Whole models, stacked against not (one process, interleaved, best of
    30): SCRFD 640 20.8 -> 19.1 ms at 1 thread and 12.7 -> 10.2 at 2,
    YuNet 640 11.2 -> 10.3 and 7.1 -> 6.7; RetinaFace unchanged.

    Returns the new graph and ``shapes`` with the stacked tensors added
    (the arguments are not modified).
    """
    def saves_lanes(siblings: list[Node]) -> bool:
        sizes = [graph.initializers[n.inputs[1]].shape[0] for n in siblings]
        return blocks(sum(sizes)) < sum(blocks(m) for m in sizes)

    groups: dict[tuple, list[Node]] = {}
    for node in graph.nodes:
        key = _sibling_key(node, graph)
        if key is not None:
            groups.setdefault(key, []).append(node)
    groups = {k: v for k, v in groups.items()
              if len(v) > 1 and all(n.outputs[0] in shapes for n in v) and saves_lanes(v)}
    if not groups:
        return graph, shapes
    init, shapes = dict(graph.initializers), dict(shapes)
    replaced: dict[int, list[Node]] = {}  # id of a group's first node -> the nodes that take its place
    dropped: set[int] = set()
    for siblings in groups.values():
        first = siblings[0]
        weights = [graph.initializers[n.inputs[1]] for n in siblings]
        biases = [graph.initializers[n.inputs[2]] if len(n.inputs) > 2 and n.inputs[2]
                  else np.zeros(w.shape[0], np.float32) for n, w in zip(siblings, weights)]
        stacked = f"{first.outputs[0]}.stacked"
        init[stacked + ".W"] = np.concatenate(weights)
        init[stacked + ".B"] = np.concatenate(biases).astype(np.float32)
        sizes = [w.shape[0] for w in weights]
        shapes[stacked] = (shapes[first.outputs[0]][0], sum(sizes)) + tuple(shapes[first.outputs[0]][2:])
        name = " + ".join(n.name for n in siblings)
        replaced[id(first)] = [
            Node(name, first.op_type, [first.inputs[0], stacked + ".W", stacked + ".B"], [stacked],
                 dict(first.attrs), first.domain),
            Node(f"{name}.split", "Split", [stacked], [n.outputs[0] for n in siblings],
                 {"axis": 1, "split": sizes}, ""),
        ]
        dropped.update(id(n) for n in siblings[1:])
        log.debug("layout: %s stacked into one convolution of %d outputs", name, sum(sizes))
    nodes = []
    for node in graph.nodes:
        if id(node) in replaced:
            nodes.extend(replaced[id(node)])
        elif id(node) not in dropped:
            nodes.append(node)
    return Graph(nodes=nodes, initializers=init, inputs=graph.inputs, outputs=graph.outputs, opset=graph.opset,
                 name=graph.name, source=graph.source), shapes


def block_graph(graph: Graph, shapes: dict[str, tuple]) -> Graph | None:
    """``graph`` with its blockable chains in NCHW16c, or None if nothing was worth blocking.

    ``shapes`` maps every tensor name of ``graph`` to its shape at the input
    shape being planned (a plan's first run provides them). Sibling
    convolutions are stacked first (:func:`merge_sibling_convs`).
    """
    graph, shapes = merge_sibling_convs(graph, shapes)
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
        elif (node.op_type == "Split" and node.inputs[0] in blocked and len(shapes[node.inputs[0]]) == 4
              and int(node.attrs.get("axis", 0)) in (1, -3) and all(o and o in shapes for o in node.outputs)):
            first = 0  # each piece: its channel range of the blocked tensor, straight to NCHW
            for o in node.outputs:
                size = int(shapes[o][1])
                nodes.append(Node(f"{node.name}.{o}", "FromNCHW16c", [blocked[node.inputs[0]]], [o],
                                  {"channels": size, "first": first}, MINICNN_DOMAIN))
                in_nchw.add(o)
                converted += 1
                first += size
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
