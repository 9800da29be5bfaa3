"""A per-layer summary of a model, like Keras' ``model.summary()``.

For every node of the file (nothing folded or fused): its op, output shape,
number of parameters (elements of the weights it reads) and FLOPs, then the
totals. Shapes come from actually running the model once on zeros of the
given input shape, so they are exact for that shape.

FLOPs count a multiply-add as 2 (the usual convention): a convolution costs
``2 * N * Cout * Hout * Wout * (Cin / group) * kh * kw``; a matrix product
``2 * M * N * K``; element-wise ops and activations 1 per output element;
pooling one per window element. Bias additions are left out (they are tiny).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import InputError
from .graph import Node
from .session import InferenceSession

ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Clip", "Exp", "Abs", "Tanh",
    "HardSigmoid", "HardSwish", "Pow", "Sqrt", "Neg", "Reciprocal", "Max", "Min", "Sum", "Mean",
}
SOFTMAX_FLOPS_PER_ELEMENT = 3  # exp, sum, divide (the max-subtraction is a comparison)


@dataclass
class LayerRow:
    index: int
    name: str
    op: str
    output_shape: list[int]
    params: int
    flops: int


def node_flops(node: Node, inputs: list[np.ndarray | None], outputs: list[np.ndarray]) -> int:
    """FLOPs of one node given its actual input and output arrays (see module docstring)."""
    op = node.op_type
    out = outputs[0] if outputs else None
    if out is None:
        return 0
    if op in ("Conv", "FusedConv"):
        w = inputs[1]
        return 2 * int(out.size) * int(np.prod(w.shape[1:]))
    if op == "ConvTranspose":
        x, w = inputs[0], inputs[1]
        return 2 * int(x.size) * int(np.prod(w.shape[1:]))
    if op == "Gemm":
        a = inputs[0]
        k = a.shape[0] if node.attrs.get("transA", 0) else a.shape[1]
        return 2 * int(out.size) * int(k)
    if op == "MatMul":
        return 2 * int(out.size) * int(inputs[0].shape[-1])
    if op in ("MaxPool", "AveragePool"):
        return int(out.size) * int(np.prod(node.attrs.get("kernel_shape", [1])))
    if op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax"):
        return int(inputs[0].size)
    if op == "BatchNormalization":
        return 2 * int(out.size)
    if op == "Softmax":
        return SOFTMAX_FLOPS_PER_ELEMENT * int(out.size)
    if op in ELEMENTWISE:
        return int(out.size)
    return 0  # shape ops move data, they do no arithmetic


def summarize(model, input_shapes: dict[str, tuple[int, ...]] | tuple[int, ...] | None = None) -> list[LayerRow]:
    """Rows of the summary for ``model`` (path, bytes or ModelProto).

    ``input_shapes`` gives the shape of each input (a single tuple for a
    one-input model). Fixed dims in the file are used when it is omitted; a
    dynamic dim with no shape given is an error that says which input needs one.
    """
    sess = InferenceSession(model, backend="numba", optimize=False)
    inputs = sess.model_graph.inputs
    if isinstance(input_shapes, tuple):
        if len(inputs) != 1:
            raise InputError(f"the model has {len(inputs)} inputs; give a shape per input name")
        input_shapes = {inputs[0].name: input_shapes}
    input_shapes = dict(input_shapes or {})
    feeds = {}
    for vi in inputs:
        shape = input_shapes.get(vi.name)
        if shape is None:
            if vi.shape is None or not all(isinstance(d, int) and d > 0 for d in vi.shape):
                raise InputError(
                    f"input {vi.name!r} has dynamic shape {list(vi.shape or [])}: give one, e.g. --shape 1,3,640,640"
                )
            shape = vi.shape
        feeds[vi.name] = np.zeros(shape, dtype=vi.dtype or np.float32)
    init = sess.graph.initializers
    rows = []
    for step in sess.steps(feeds):
        node = step.node
        args = list(step.inputs.values())
        outs = list(step.outputs.values())
        params = sum(int(init[n].size) for n in node.inputs if n in init)
        shape = list(outs[0].shape) if outs else []
        rows.append(LayerRow(step.index, node.name, node.op_type, shape, params, node_flops(node, args, outs)))
    return rows


def format_summary(rows: list[LayerRow], title: str = "") -> str:
    """The table as text, totals last."""
    name_w = min(max([len(r.name) for r in rows] + [4]), 40)
    header = f"{'#':>4}  {'node':<{name_w}}  {'op':<18} {'output shape':<22} {'params':>10} {'MFLOPs':>10}"
    lines = [title, header, "-" * len(header)] if title else [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.index:>4}  {r.name[:name_w]:<{name_w}}  {r.op:<18} {str(r.output_shape):<22} "
            f"{r.params:>10,} {r.flops / 1e6:>10.2f}"
        )
    total_params = sum(r.params for r in rows)
    total_flops = sum(r.flops for r in rows)
    lines.append("-" * len(header))
    lines.append(f"{len(rows)} nodes, {total_params:,} parameters, {total_flops / 1e9:.3f} GFLOPs")
    return "\n".join(lines)


def summary_json(rows: list[LayerRow]) -> dict:
    return {
        "layers": [asdict(r) for r in rows],
        "total_params": sum(r.params for r in rows),
        "total_flops": sum(r.flops for r in rows),
    }
