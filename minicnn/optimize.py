"""Graph rewrites done once at load time, none of which changes the maths.

1. ``fold_constants``: a node whose inputs are all weights (initializers) is
   computed once and its output becomes a weight. Exports are full of these
   (``Constant``, reshapes of constants, ...).
2. ``fold_batchnorm``: in inference, BatchNormalization is a per-channel
   ``y = a*x + b``. Right after a convolution it folds into the convolution's
   own weights and bias: W' = W * a, B' = (B - mean) * a + beta with
   a = gamma / sqrt(var + eps). One pass over the data disappears.
3. ``fuse_activations``: Conv followed by Relu / LeakyRelu / PRelu / Sigmoid /
   Clip becomes one ``FusedConv`` node, so the activation is applied while the
   convolution's output is still in cache (the "epilogue").

Every rewrite keeps the *name* of the tensor it finally produces: the fused
node writes the activation's output name, so comparing with onnxruntime by
tensor name still works (the tensors that vanished are simply not compared).
Run a session with ``optimize=False`` to step through the graph exactly as
the file has it.
"""

from __future__ import annotations

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
    fold_batchnorm(graph)
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


def _single_consumer(graph: Graph, tensor: str, consumers: dict[str, list[Node]]) -> Node | None:
    """The only node reading ``tensor``, if exactly one does and it is not a graph output."""
    readers = consumers.get(tensor, [])
    if len(readers) != 1 or tensor in _graph_outputs(graph):
        return None
    return readers[0]


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
        eps = float(bn.attrs.get("epsilon", 1e-5))
        w = init[conv.inputs[1]]
        a = gamma / np.sqrt(var + eps)
        has_bias = len(conv.inputs) > 2 and conv.inputs[2]
        b = init[conv.inputs[2]].astype(np.float64) if has_bias else np.zeros(w.shape[0])
        new_w = (w.astype(np.float64) * a.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
        new_b = ((b - mean) * a + beta).astype(w.dtype)
        w_name, b_name = f"{conv.name}.folded_W", f"{conv.name}.folded_B"
        init[w_name], init[b_name] = new_w, new_b
        conv.inputs = [conv.inputs[0], w_name, b_name]
        conv.outputs = [bn.outputs[0]]
        removed.add(id(bn))
        folded += 1
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if folded:
        log.debug("folded %d BatchNormalization nodes into convolutions", folded)
    return folded


def fuse_activations(graph: Graph) -> int:
    """Replace ``Conv -> activation`` pairs by one ``FusedConv`` node; returns the count."""
    if get_op("FusedConv") is None:
        return 0
    consumers = graph.consumers()
    init = graph.initializers
    removed: set[int] = set()
    fused = 0
    for i, conv in enumerate(graph.nodes):
        if conv.op_type != "Conv":
            continue
        act = _single_consumer(graph, conv.outputs[0], consumers)
        if act is None or act.op_type not in FUSABLE_ACTIVATIONS:
            continue
        attrs = dict(conv.attrs, activation=act.op_type)
        inputs = list(conv.inputs) + [""] * (3 - len(conv.inputs))
        if act.op_type == "LeakyRelu":
            attrs["alpha"] = float(act.attrs.get("alpha", 0.01))
        elif act.op_type == "PRelu":
            slope = act.inputs[1]
            if slope not in init or init[slope].size not in (1, init[conv.inputs[1]].shape[0]):
                continue  # a slope that is not one value per output channel stays a PRelu node
            inputs.append(slope)
        elif act.op_type == "Clip":
            bounds = [n for n in act.inputs[1:]]
            if any(n and n not in init for n in bounds):
                continue
            lo = init[bounds[0]] if len(bounds) > 0 and bounds[0] else act.attrs.get("min")
            hi = init[bounds[1]] if len(bounds) > 1 and bounds[1] else act.attrs.get("max")
            attrs["clip_min"] = float(lo) if lo is not None else float("-inf")
            attrs["clip_max"] = float(hi) if hi is not None else float("inf")
        graph.nodes[i] = Node(conv.name, "FusedConv", inputs, [act.outputs[0]], attrs, MINICNN_DOMAIN)
        removed.add(id(act))
        fused += 1
    graph.nodes[:] = [n for n in graph.nodes if id(n) not in removed]
    if fused:
        log.debug("fused %d activations into convolutions", fused)
    return fused
