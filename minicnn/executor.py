"""Running a graph node by node.

Two pieces:

* ``run_node`` calls one op on arrays and turns any failure into an error
  that names the node, its op and its input shapes.
* ``Plan`` is what a session keeps per input shape. The first run at a new
  shape executes every node and notices which tensors are *constant for that
  shape*: weights, anything ``Shape`` returns (the shape is fixed now), and
  anything computed only from constants (the Gather/Unsqueeze/Concat chains
  that exports use to build Reshape targets). Later runs at that shape skip
  all of those and execute only the nodes that touch real data, freeing each
  intermediate tensor as soon as its last reader has run. An op with a
  preparer (``minicnn.ops.registry.register_preparer``: convolutions,
  pools and Resize/Upsample on the numba backend) is also prepared during
  that first run, so later runs skip its shape-only Python work: attribute
  parsing, checks, choosing a kernel, laying out its weights or computing
  its index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import MiniCNNError, NodeExecutionError, UnsupportedOpError
from .graph import Graph, Node
from .ops.registry import takes_opset


def _describe(args: list) -> str:
    parts = []
    for a in args:
        if a is None:
            parts.append("None")
        elif isinstance(a, np.ndarray):
            parts.append(f"{a.dtype}{list(a.shape)}")
        else:
            parts.append(type(a).__name__)
    return ", ".join(parts)


def _node_kwargs(node: Node, fn: Callable, opset: int) -> dict:
    """The keyword arguments ``fn`` gets for ``node``: its attributes, and the opset where ``fn`` asks for it."""
    kwargs = dict(node.attrs)
    if takes_opset(fn):
        kwargs["opset"] = opset
    if node.op_type == "Split" and "num_outputs" not in kwargs:
        # Before opset 18 an even Split's piece count is only implied by how many outputs the node has.
        kwargs["num_outputs"] = len(node.outputs)
    return kwargs


def run_node(node: Node, fn: Callable, args: list, opset: int) -> tuple:
    """Run ``fn`` (the op of ``node``) on ``args``; always returns a tuple of outputs."""
    return _call(node, fn, args, _node_kwargs(node, fn, opset))


def _call(node: Node, fn: Callable, args: list, kwargs: dict) -> tuple:
    """``fn(*args, **kwargs)`` for ``node``, with any failure turned into an error naming the node."""
    try:
        result = fn(*args, **kwargs)
    except MiniCNNError as exc:
        raise type(exc)(f"node {node.name!r} ({node.op_type}) on inputs [{_describe(args)}]: {exc}") from exc
    except TypeError as exc:
        # Most often an attribute the op does not know: name it rather than showing a bare traceback.
        raise NodeExecutionError(
            f"node {node.name!r} ({node.op_type}) with attributes {sorted(node.attrs)} "
            f"on inputs [{_describe(args)}] failed: {exc}"
        ) from exc
    except (ValueError, IndexError, ArithmeticError, MemoryError) as exc:
        raise NodeExecutionError(
            f"node {node.name!r} ({node.op_type}) failed on inputs [{_describe(args)}]: {exc}"
        ) from exc
    results = result if isinstance(result, tuple) else (result,)
    if len(results) < len(node.outputs) and any(node.outputs[len(results):]):
        wanted = [o for o in node.outputs if o]
        raise UnsupportedOpError(
            f"node {node.name!r} ({node.op_type}) asks for {len(wanted)} outputs "
            f"{node.outputs}; minicnn's {node.op_type} produces only {len(results)} (inference form)"
        )
    return results


@dataclass
class Step:
    """One node as executed by a plan: the op to call and where its tensors live."""

    node: Node
    fn: Callable
    free_after: list[str] = field(default_factory=list)  # tensors whose last reader is this node
    prepared: Callable | None = None  # the op prepared for this plan's shapes (see registry.register_preparer)
    dynamic: tuple[int, ...] = ()  # which inputs change from run to run ...
    shapes: list = field(default_factory=list)  # ... and their shapes when the step was prepared
    kwargs: dict = field(default_factory=dict)  # what ``fn`` is called with besides the inputs (``_node_kwargs``)


@dataclass
class Plan:
    """The graph specialised to one set of input shapes (see module docstring)."""

    steps: list[Step]
    constants: dict[str, np.ndarray]  # initializers + tensors folded for this shape
    graph: Graph  # the specialised graph: steps' nodes, constants as initializers

    def execute(self, feeds: dict[str, np.ndarray], keep: set[str] | None) -> dict[str, np.ndarray]:
        """Run the steps; returns the tensors in ``keep`` (every tensor if ``keep`` is None)."""
        env = dict(feeds)
        consts = self.constants
        # Plain loops, not comprehensions: this loop is the whole Python cost of a step besides its op (about 1 us,
        # timed with no-op ops), and in Python 3.11 each comprehension is a function call of its own.
        for step in self.steps:
            node = step.node
            args = []
            for n in node.inputs:
                args.append(env[n] if n in env else consts[n] if n else None)
            prepared = step.prepared
            if prepared is not None:
                for i, shape in zip(step.dynamic, step.shapes):
                    if args[i].shape != shape:
                        prepared = None  # a shape that depends on the data (a Reshape to a computed shape)
                        break
            if prepared is not None:
                results = _call(node, prepared, args, {})
            else:
                results = _call(node, step.fn, args, step.kwargs)
            for name, value in zip(node.outputs, results):
                if name:
                    env[name] = value
            if keep is not None:
                for name in step.free_after:
                    if name not in keep:
                        env.pop(name, None)
        return env


def mark_last_readers(steps: list[Step], constants: dict, outputs: set[str]) -> None:
    """Set each step's ``free_after``: the tensors it is the last to read (constants and ``outputs`` excepted)."""
    last_reader: dict[str, Step] = {}
    for step in steps:
        step.free_after = []
        for n in step.node.inputs:
            if n and n not in constants:
                last_reader[n] = step
    for name, step in last_reader.items():
        if name not in outputs:
            step.free_after.append(name)


def build_plan(graph: Graph, fns: dict[str, Callable], feeds: dict[str, np.ndarray],
               preparers: dict[str, Callable] | None = None) -> tuple[Plan, dict]:
    """Execute every node once at these input shapes, recording what is constant.

    ``preparers`` (op type -> preparer) are called on each node of their op
    type right after it ran. Returns the plan and every tensor of this first
    run (so the first call costs one run, not two).
    """
    constants = dict(graph.initializers)
    env: dict[str, np.ndarray] = dict(feeds)
    steps: list[Step] = []
    preparers = preparers or {}
    for node in graph.nodes:
        args = [env[n] if n in env else constants[n] if n else None for n in node.inputs]
        results = run_node(node, fns[node.op_type], args, graph.opset)
        shape_only = node.op_type == "Shape" or all(not n or n in constants for n in node.inputs)
        for name, value in zip(node.outputs, results):
            if name:
                (constants if shape_only else env)[name] = value
        if not shape_only:
            step = Step(node, fns[node.op_type], kwargs=_node_kwargs(node, fns[node.op_type], graph.opset))
            prepare = preparers.get(node.op_type)
            if prepare is not None:
                constant = [not n or n in constants for n in node.inputs]
                try:
                    step.prepared = prepare(args, constant, **_node_kwargs(node, prepare, graph.opset))
                except MiniCNNError as exc:  # the op has just run on these inputs: a preparer bug, named
                    raise type(exc)(f"node {node.name!r} ({node.op_type}): preparing it failed: {exc}") from exc
                step.dynamic = tuple(i for i, c in enumerate(constant) if not c)
                step.shapes = [args[i].shape for i in step.dynamic]
            steps.append(step)
    # Graph outputs that came out constant (e.g. a Shape output) must still be returned.
    outputs = {vi.name for vi in graph.outputs}
    mark_last_readers(steps, constants, outputs)
    folded = [n for n in constants if n not in graph.initializers]
    spec_graph = Graph(
        nodes=[s.node for s in steps],
        initializers={k: v for k, v in constants.items() if k not in outputs or k in graph.initializers},
        inputs=graph.inputs,
        outputs=graph.outputs,
        opset=graph.opset,
        name=graph.name,
        source=graph.source,
    )
    env.update({n: constants[n] for n in folded})
    return Plan(steps, constants, spec_graph), env
