"""Graph rewrites done once at load time, none of which changes the maths.

1. ``fold_constants``: a node whose inputs are all weights (initializers) is
   computed once and its output becomes a weight. Exports are full of these
   (``Constant``, reshapes of constants, ...).
2. ``eliminate_common_subexpressions``: a node that computes what an
   earlier node computed (same op, attributes and inputs, weights compared
   by value) is dropped, and its readers read the earlier output. PyTorch
   exports repeat a module called twice: RetinaFace's SSH context module
   runs its ``conv5X5_1`` convolution twice on the same input, with two
   copies of the same weights.
3. ``fold_batchnorm``: in inference, BatchNormalization is a per-channel
   ``y = a*x + b``. Right after a convolution it folds into the convolution's
   own weights and bias: W' = W * a, B' = (B - mean) * a + beta with
   a = gamma / sqrt(var + eps). One pass over the data disappears.
4. ``fold_affine``: the same idea for a per-channel ``Mul`` / ``Add`` / ``Sub``
   by a constant right after a convolution (some exporters write an inference
   BatchNorm that way: ``Conv -> Mul(scale) -> Add(offset)``): a scale
   multiplies the weights and bias, an offset adds to the bias.
5. ``fuse_residual_adds``: ``Conv -> Add(other tensor)``, the shortcut of a
   residual block, becomes one ``FusedConv`` node with the other tensor as its
   ``residual`` input, added while each block of output is still in cache.
6. ``fuse_activations``: Conv (or a FusedConv from step 5) followed by Relu /
   LeakyRelu / PRelu / Sigmoid / Clip becomes one ``FusedConv`` node, so the
   activation is applied while the convolution's output is still in cache
   (the "epilogue"). A residual block ``Conv -> Add -> Relu`` ends up as one
   node.

Every rewrite keeps the *name* of the tensor it finally produces: the fused
node writes the activation's output name, so comparing with onnxruntime by
tensor name still works (the tensors that vanished, and the outputs of
eliminated repeats, are simply not compared).
Run a session with ``optimize=False`` to step through the graph exactly as
the file has it.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

import numpy as np

from .graph import MINICNN_DOMAIN, Graph, Node
from .executor import run_node
from .ops.registry import get_op

log = logging.getLogger(__name__)

FUSABLE_ACTIVATIONS = ("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Clip")


def optimize(graph: Graph) -> Graph:
    """All rewrites in order; returns a new Graph (the input is not modified)."""
    nodes = [replace(n, inputs=list(n.inputs), outputs=list(n.outputs), attrs=dict(n.attrs)) for n in graph.nodes]
    graph = replace(graph, nodes=nodes, initializers=dict(graph.initializers))
    fold_constants(graph)
    eliminate_common_subexpressions(graph)
    fold_batchnorm(graph)
    fold_affine(graph)
    fuse_residual_adds(graph)
    fuse_activations(graph)
    return graph


def _graph_outputs(graph: Graph) -> set[str]:
    return {vi.name for vi in graph.outputs}


def fold_constants(graph: Graph) -> int:
    """Evaluate nodes whose inputs are all initializers; returns how many were folded."""
    outputs = _graph_outputs(graph)
    kept, folded = [], 0
    for node in graph.nodes:
        inputs_const = all(not n or n in graph.initializers for n in node.inputs)
        # Keep graph outputs as nodes so a caller still sees them produced.
        if inputs_const and not (set(node.outputs) & outputs) and node.op_type not in ("Dropout",):
            fn = get_op(node.op_type, "numpy")
            if fn is not None:
                args = [graph.initializers[n] if n else None for n in node.inputs]
                results = run_node(node, fn, args, graph.opset)
                for name, value in zip(node.outputs, results):
                    if name:
                        graph.initializers[name] = np.asarray(value)
                folded += 1
                continue
        kept.append(node)
    graph.nodes[:] = kept
    if folded:
        log.debug("folded %d constant nodes", folded)
    return folded


def _value_key(value) -> tuple:
    """A hashable key equal for equal values: arrays by dtype, shape and a SHA-256 of their bytes."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return "array", array.dtype.str, array.shape, hashlib.sha256(array.tobytes()).hexdigest()
    if isinstance(value, (list, tuple)):
        return ("seq",) + tuple(_value_key(v) for v in value)
    return "value", type(value).__name__, repr(value)


def eliminate_common_subexpressions(graph: Graph) -> int:
    """Drop every node that repeats an earlier one; its readers read the earlier node's outputs. Returns the count.

    Two nodes compute the same thing when they have the same op (and
    domain), the same attributes and the same inputs, where an input is the
    same tensor, or an initializer with the same dtype, shape and values
    (exports often store a weight once per use). Every op minicnn runs is
    deterministic, so that is enough. Nodes are visited in order, and a
    repeat's outputs are renamed as they are dropped, so a repeated chain
    (a convolution, then its activation) goes as a whole. A node that writes
    a graph output is kept.
    """
    outputs = _graph_outputs(graph)
    renamed: dict[str, str] = {}
    initializer_keys: dict[str, tuple] = {}
    seen: dict[tuple, Node] = {}
    kept, removed = [], 0

    def input_key(name: str):
        if name in graph.initializers:
            if name not in initializer_keys:
                initializer_keys[name] = _value_key(np.asarray(graph.initializers[name]))
            return initializer_keys[name]
        return name

    for node in graph.nodes:
        node.inputs = [renamed.get(n, n) for n in node.inputs]
        key = (node.domain, node.op_type, tuple(sorted((k, _value_key(v)) for k, v in node.attrs.items())),
               tuple(input_key(n) for n in node.inputs), len(node.outputs))
        earlier = seen.get(key)
        if (earlier is not None and not set(node.outputs) & outputs
                and all(theirs or not mine for mine, theirs in zip(node.outputs, earlier.outputs))):
            renamed.update((mine, theirs) for mine, theirs in zip(node.outputs, earlier.outputs) if mine)
            removed += 1
            continue
        seen.setdefault(key, node)
        kept.append(node)
    graph.nodes[:] = kept
    if removed:
        log.debug("dropped %d nodes that repeat an earlier one", removed)
    return removed


def _single_consumer(graph: Graph, tensor: str, consumers: dict[str, list[Node]]) -> Node | None:
    """The only node reading ``tensor``, if exactly one does and it is not a graph output."""
    readers = consumers.get(tensor, [])
    if len(readers) != 1 or tensor in _graph_outputs(graph):
        return None
    return readers[0]


def _scale_and_shift(conv: Node, init: dict, scale: np.ndarray, shift: np.ndarray, absorbed: Node,
                     tag: str) -> None:
    """Make ``conv`` compute ``conv(x) * scale + shift`` (per output channel) and write ``absorbed``'s output.

    New weights ``W * scale`` and bias ``B * scale + shift`` (B zero if
    absent), computed in float64 and stored in the weights' dtype as new
    initializers named after ``tag`` (the old ones may be shared).
    """
    w = init[conv.inputs[1]]
    has_bias = len(conv.inputs) > 2 and conv.inputs[2]
    b = init[conv.inputs[2]].astype(np.float64) if has_bias else np.zeros(w.shape[0])
    w_name, b_name = f"{tag}.folded_W", f"{tag}.folded_B"
    init[w_name] = (w.astype(np.float64) * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
    init[b_name] = (b * scale + shift).astype(w.dtype)
    conv.inputs = [conv.inputs[0], w_name, b_name]
    conv.outputs = [absorbed.outputs[0]]


def fold_batchnorm(graph: Graph) -> int:
    """Fold ``Conv -> BatchNormalization`` into the Conv's weights; returns the count."""
    consumers = graph.consumers()
    init = graph.initializers
    removed: set[int] = set()
    folded = 0
    for conv in graph.nodes:
        if conv.op_type != "Conv" or conv.inputs[1] not in init:
            continue
        bn = _single_consumer(graph, conv.outputs[0], consumers)
        if bn is None or bn.op_type != "BatchNormalization" or len(bn.outputs) > 1 and any(bn.outputs[1:]):
            continue
        if not all(n in init for n in bn.inputs[1:5]):
            continue
        gamma, beta, mean, var = (init[n].astype(np.float64) for n in bn.inputs[1:5])
        a = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        _scale_and_shift(conv, init, a, beta - mean * a, bn, conv.name)
        removed.add(id(bn))
        folded += 1
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if folded:
        log.debug("folded %d BatchNormalization nodes into convolutions", folded)
    return folded


def _per_channel(value: np.ndarray, c_out: int, rank: int) -> np.ndarray | None:
    """``value`` as one number per output channel (shape (c_out,)) if it broadcasts over a conv output that way.

    A conv output is (N, C, spatial...) with ``rank`` dims; a constant of
    shape (1, C, 1, 1), (C, 1, 1), (1,) or () adds or multiplies the same
    number everywhere in a channel. Anything else (a different rank, a
    spatial pattern, a batch dim) returns None: it cannot fold.
    """
    if value.ndim > rank or not np.issubdtype(value.dtype, np.floating):
        return None
    shape = (1,) * (rank - value.ndim) + value.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, c_out):
        return None
    return np.broadcast_to(value.reshape(-1).astype(np.float64), (c_out,))


def fold_affine(graph: Graph) -> int:
    """Fold ``Conv -> Mul / Add / Sub`` by per-channel constants into the Conv's weights; returns the count.

    ``conv(x) * s = conv_{W*s, B*s}(x)`` and ``conv(x) + o = conv_{W, B+o}(x)``:
    each channel's output is linear in its filter and bias. Only the forms
    where the convolution's output is the operand that keeps its shape fold
    (``Sub(const, conv)`` would negate the weights: not worth the special case).
    """
    consumers = graph.consumers()
    init = graph.initializers
    removed: set[int] = set()
    folded = 0
    for conv in graph.nodes:
        if conv.op_type != "Conv" or conv.inputs[1] not in init or id(conv) in removed:
            continue
        if len(conv.inputs) > 2 and conv.inputs[2] and conv.inputs[2] not in init:
            continue
        while True:
            op = _single_consumer(graph, conv.outputs[0], consumers)
            if op is None or op.op_type not in ("Mul", "Add", "Sub") or len(op.inputs) != 2:
                break
            a, b = op.inputs
            if op.op_type == "Sub" and a != conv.outputs[0]:
                break
            other = b if a == conv.outputs[0] else a
            w = init[conv.inputs[1]]
            value = _per_channel(init[other], w.shape[0], w.ndim) if other in init and other != conv.outputs[0] else None
            if value is None or init[other].dtype != w.dtype:
                break
            ones, zeros = np.ones(w.shape[0]), np.zeros(w.shape[0])
            scale, shift = {"Mul": (value, zeros), "Add": (ones, value), "Sub": (ones, -value)}[op.op_type]
            _scale_and_shift(conv, init, scale, shift, op, f"{conv.name}.{op.name}")
            removed.add(id(op))
            folded += 1
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if folded:
        log.debug("folded %d per-channel Mul/Add/Sub nodes into convolutions", folded)
    return folded


def fuse_residual_adds(graph: Graph) -> int:
    """Replace ``Conv -> Add(conv output, other)`` by ``FusedConv(..., residual=other)``; returns the count.

    The fused node takes the Add's place in the node order, where both the
    convolution's input and the other tensor already exist (in BlazeFace the
    shortcut is computed after the convolution). ``other`` is usually the
    output's shape; if it merely broadcasts, FusedConv still computes
    ``Add(Conv(x), other)`` exactly (see ``minicnn.ops.conv.FusedConv``).
    """
    if get_op("FusedConv") is None:
        return 0
    consumers = graph.consumers()
    producers = graph.producers()
    init = graph.initializers
    removed: set[int] = set()
    fused = 0
    for i, add in enumerate(graph.nodes):
        if add.op_type != "Add" or len(add.inputs) != 2 or add.inputs[0] == add.inputs[1]:
            continue
        for position in (0, 1):
            name, other = add.inputs[position], add.inputs[1 - position]
            conv = producers.get(name)
            if (conv is None or conv.op_type != "Conv" or id(conv) in removed or other in init
                    or _single_consumer(graph, name, consumers) is not add):
                continue
            inputs = list(conv.inputs) + [""] * (3 - len(conv.inputs))
            graph.nodes[i] = Node(conv.name, "FusedConv", inputs + ["", other], [add.outputs[0]],
                                  dict(conv.attrs, activation=""), MINICNN_DOMAIN)
            removed.add(id(conv))
            fused += 1
            break
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if fused:
        log.debug("fused %d residual Adds into convolutions", fused)
    return fused


def fuse_activations(graph: Graph) -> int:
    """Replace ``Conv -> activation`` pairs by one ``FusedConv`` node; returns the count.

    A ``FusedConv`` without an activation yet (a residual Add, from
    :func:`fuse_residual_adds`) takes the activation that follows it the same way.
    """
    if get_op("FusedConv") is None:
        return 0
    consumers = graph.consumers()
    init = graph.initializers
    removed: set[int] = set()
    fused = 0
    for i, conv in enumerate(graph.nodes):
        if not (conv.op_type == "Conv" or conv.op_type == "FusedConv" and not conv.attrs.get("activation")):
            continue
        act = _single_consumer(graph, conv.outputs[0], consumers)
        if act is None or act.op_type not in FUSABLE_ACTIVATIONS:
            continue
        attrs = dict(conv.attrs, activation=act.op_type)
        inputs = list(conv.inputs) + [""] * (4 - len(conv.inputs))  # X, W, B, slope[, residual]
        if act.op_type == "LeakyRelu":
            attrs["alpha"] = float(act.attrs.get("alpha", 0.01))
        elif act.op_type == "PRelu":
            slope = act.inputs[1]
            if slope not in init or init[slope].size not in (1, init[conv.inputs[1]].shape[0]):
                continue  # a slope that is not one value per output channel stays a PRelu node
            inputs[3] = slope
        elif act.op_type == "Clip":
            bounds = [n for n in act.inputs[1:]]
            if any(n and n not in init for n in bounds):
                continue
            lo = init[bounds[0]] if len(bounds) > 0 and bounds[0] else act.attrs.get("min")
            hi = init[bounds[1]] if len(bounds) > 1 and bounds[1] else act.attrs.get("max")
            attrs["clip_min"] = float(lo) if lo is not None else float("-inf")
            attrs["clip_max"] = float(hi) if hi is not None else float("inf")
        while inputs[-1] == "":
            inputs.pop()
        graph.nodes[i] = Node(conv.name, "FusedConv", inputs, [act.outputs[0]], attrs, MINICNN_DOMAIN)
        removed.add(id(act))
        fused += 1
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if fused:
        log.debug("fused %d activations into convolutions", fused)
    return fused
